//! The one HTTP client configuration of the xtask (PyPI, archive URLs,
//! binary caches).

use ureq::config::ConfigBuilder;
use ureq::typestate::AgentScope;

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
    ureq::Agent::config_builder()
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .user_agent(concat!("pjrtpkgs-xtask/", env!("CARGO_PKG_VERSION")))
}

/// An agent with [`config`]'s settings, built once (the CA bundle is read
/// once per process); clones share its connection pool.
pub fn agent() -> ureq::Agent {
    static AGENT: std::sync::OnceLock<ureq::Agent> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| config().build().new_agent()).clone()
}
