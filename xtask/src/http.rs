//! The one HTTP client configuration of the xtask (PyPI, archive URLs,
//! binary caches).
//!
//! Timeouts: connecting (DNS included) and every single read or write may
//! wait at most [`timeout`] (default [`DEFAULT_TIMEOUT`], `--http-timeout
//! SECONDS` or `$PJRTPKGS_HTTP_TIMEOUT`), so a server that accepts and never
//! answers, or stalls in the middle of a body, fails the download instead of
//! hanging it. There is no limit on a whole download: a slow but moving
//! transfer of a large wheel goes on.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Result;
use ureq::config::ConfigBuilder;
use ureq::typestate::AgentScope;

/// How long a connect or a single read/write may wait, unless overridden.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable that overrides [`DEFAULT_TIMEOUT`] (seconds).
pub const TIMEOUT_ENV: &str = "PJRTPKGS_HTTP_TIMEOUT";

static TIMEOUT: OnceLock<Duration> = OnceLock::new();

/// Sets the timeout for this process (`--http-timeout`); the first call
/// wins and must come before the first [`agent`].
pub fn set_timeout(timeout: Duration) {
    let _ = TIMEOUT.set(timeout);
}

/// The timeout in force: [`set_timeout`]'s, else `$PJRTPKGS_HTTP_TIMEOUT`'s
/// (an invalid value falls back to the default here; the command line
/// rejects it before), else [`DEFAULT_TIMEOUT`].
pub fn timeout() -> Duration {
    *TIMEOUT.get_or_init(|| timeout_from_env().unwrap_or(DEFAULT_TIMEOUT))
}

/// `$PJRTPKGS_HTTP_TIMEOUT` parsed, or the default when it is unset.
pub fn timeout_from_env() -> Result<Duration> {
    match std::env::var(TIMEOUT_ENV) {
        Ok(value) if !value.trim().is_empty() => {
            parse_timeout(&value).map_err(|e| anyhow::anyhow!("{TIMEOUT_ENV}={value:?} is not a timeout: {e}"))
        }
        _ => Ok(DEFAULT_TIMEOUT),
    }
}

/// Parses a timeout in seconds (`30`, `2.5`): positive and at most a day.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!("{text} seconds is out of range: give a number of seconds above 0 and at most 86400"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The agent settings every download starts from. It trusts the system's CA
/// bundle when there is one (`SSL_CERT_FILE`, `NIX_SSL_CERT_FILE`, Debian's
/// and Fedora's paths), so it works behind TLS-intercepting proxies like curl
/// and pip do; else the bundled Mozilla roots. Callers add their own settings.
pub fn config() -> ConfigBuilder<AgentScope> {
    use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};
    let env_files = ["SSL_CERT_FILE", "NIX_SSL_CERT_FILE"].into_iter().filter_map(std::env::var_os).map(std::path::PathBuf::from);
    let known =
        ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"].map(std::path::PathBuf::from);
    let certs: Vec<_> = env_files
        .chain(known)
        .find_map(|path| std::fs::read(path).ok())
        .map(|pem| {
            parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(cert)) => Some(cert.to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let roots = if certs.is_empty() { RootCerts::WebPki } else { RootCerts::new_with_certs(&certs) };
    let timeout = Some(timeout());
    ureq::Agent::config_builder()
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .user_agent(concat!("pjrtpkgs-xtask/", env!("CARGO_PKG_VERSION")))
        .timeout_resolve(timeout)
        .timeout_connect(timeout)
        .timeout_per_read(timeout)
        .timeout_per_write(timeout)
}

/// An agent with [`config`]'s settings (timeouts included), built once (the
/// CA bundle is read once per process); clones share its connection pool.
pub fn agent() -> ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| config().build().new_agent()).clone()
}

/// `GET url`, with an error that says what failed and, for a timeout, how
/// long was waited and how to wait longer. `what` names the fetch ("download
/// URL", "query PyPI (URL)").
pub fn get(url: &str, what: &str) -> Result<ureq::http::Response<ureq::Body>> {
    agent().get(url).call().map_err(|e| {
        let note = timeout_note_of(matches!(e, ureq::Error::Timeout(_)));
        anyhow::Error::new(e).context(format!("cannot {what}{note}"))
    })
}

/// The error for a failed read of a response body (`what` as in [`get`]).
pub fn read_error(err: std::io::Error, what: &str) -> anyhow::Error {
    let note = timeout_note_of(is_timeout(&err));
    anyhow::Error::new(err).context(format!("cannot {what}: the transfer broke off{note}"))
}

/// Whether a read error of a response body is one of our timeouts.
pub fn is_timeout(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::TimedOut
        || err.get_ref().and_then(|e| e.downcast_ref::<ureq::Error>()).is_some_and(|e| matches!(e, ureq::Error::Timeout(_)))
}

fn timeout_note_of(timed_out: bool) -> String {
    if timed_out {
        format!(" (the server sent nothing for {} s; wait longer with --http-timeout SECONDS or {TIMEOUT_ENV})", timeout().as_secs_f64())
    } else {
        String::new()
    }
}
