//! The command line: one subcommand per verb, each verb's arguments defined
//! by its own module. The one module above the verbs: it parses and
//! dispatches; what verbs share lives below them ([`crate::output`] and the
//! rest, see docs/architecture.md).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::output::{closed_output, EXIT_ERROR, STDOUT_CLOSED};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "pjrtpkgs maintainer tool: pins, Nix-exact hashes, PJRT header diffs, bindings, smoke tests, XLA upgrades, the binary cache and release archives",
    long_about = None,
    after_help = "The project is the checkout you stand in (the nearest directory above holding pins.toml), or --project DIR. \
The files the xtask owns (pins.toml, the bindings, docs/) are found from there; paths you type are relative to the current directory.\n\n\
Exit status: each verb documents its own; 1 always means it could not do its job, a usage error or a stdout closed before the output was written (`| head`) included.\n\
Network: connects and reads wait at most --http-timeout seconds (default 30, or $PJRTPKGS_HTTP_TIMEOUT).\n\n\
Run `cargo xtask <verb> --help` for the details of one verb.",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// The pjrtpkgs checkout to work on (default: the nearest directory
    /// above the current one holding pins.toml).
    #[arg(long, global = true, value_name = "DIR", env = "PJRTPKGS_ROOT")]
    pub project: Option<std::path::PathBuf>,
    /// Seconds any network connect or read may wait before the download is
    /// abandoned (default 30; also $PJRTPKGS_HTTP_TIMEOUT).
    #[arg(long, global = true, value_name = "SECONDS", value_parser = crate::http::parse_timeout)]
    pub http_timeout: Option<Duration>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // Verbs whose module sets `about`/`long_about` carry no doc comment here:
    // a variant's doc comment would replace the module's long description.
    /// Validate or print pins.toml, the single source of truth.
    #[command(subcommand)]
    Pins(crate::pins::Command),
    /// Nix-exact hashes of a tree, an archive or a git commit.
    #[command(subcommand)]
    Hash(crate::hash::Command),
    /// Pin binary PJRT plugins from PyPI, or download and verify one.
    #[command(subcommand)]
    Prebuilt(crate::prebuilt::Command),
    DiffHeaders(crate::diff_headers::Args),
    Bindgen(crate::bindgen::Args),
    Smoke(crate::smoke::Args),
    Conform(crate::conform::Args),
    UpgradeXla(crate::upgrade::Args),
    /// Sign and publish outputs to a Nix binary cache, or check one.
    #[command(subcommand)]
    Cache(crate::cache::Command),
    /// Bazel dependency hashes of the source builds: refresh with Nix.
    #[command(subcommand)]
    DepsHash(crate::deps_hash::Command),
    Release(crate::release::Args),
    Doctor(crate::doctor::Args),
}

/// The whole program: parse, run the verb, turn every way it can end into
/// an exit status. Usage errors exit with [`EXIT_ERROR`], not clap's 2 (which
/// would read as "breaking" from diff-headers or "wrong numbers" from smoke).
pub fn main() -> ExitCode {
    closed_output::install_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and --version go to stdout, usage errors to stderr.
            let printed = err.print();
            return match (err.use_stderr(), printed) {
                (true, _) => ExitCode::from(EXIT_ERROR),
                (false, Ok(())) => ExitCode::SUCCESS,
                (false, Err(e)) => report(&anyhow::Error::new(e).context(STDOUT_CLOSED)),
            };
        }
    };
    match std::panic::catch_unwind(|| dispatch(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(err)) => report(&err),
        Err(payload) => match closed_output::stream(&*payload) {
            Some(stream) => report(&anyhow::anyhow!("{}", closed_output::message(stream))),
            None => std::panic::resume_unwind(payload),
        },
    }
}

/// Prints `err` on stderr (if stderr still works) and returns [`EXIT_ERROR`].
fn report(err: &anyhow::Error) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {err:#}");
    ExitCode::from(EXIT_ERROR)
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(dir) = cli.project {
        crate::project::set_root(dir);
    }
    crate::http::set_timeout(match cli.http_timeout {
        Some(t) => t,
        None => crate::http::timeout_from_env()?,
    });
    match cli.command {
        Command::Pins(cmd) => crate::pins::run(cmd),
        Command::Hash(cmd) => crate::hash::run(cmd),
        Command::Prebuilt(cmd) => crate::prebuilt::run(cmd),
        Command::DiffHeaders(args) => crate::diff_headers::run(args),
        Command::Bindgen(args) => crate::bindgen::run(args),
        Command::Smoke(args) => crate::smoke::run(args),
        Command::Conform(args) => crate::conform::run(args),
        Command::UpgradeXla(args) => crate::upgrade::run(args),
        Command::Cache(cmd) => crate::cache::run(cmd),
        Command::DepsHash(cmd) => crate::deps_hash::run(cmd),
        Command::Release(args) => crate::release::run(args),
        Command::Doctor(args) => crate::doctor::run(args),
    }
}
