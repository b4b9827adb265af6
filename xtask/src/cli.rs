//! The command line: one subcommand per verb, each verb's arguments defined
//! by its own module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for "the command could not do its job" (bad input, I/O, ...).
/// Verbs with a verdict (diff-headers, --check modes) document their own
/// codes on top of this one.
pub const EXIT_ERROR: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "pjrtpkgs maintainer tool: pins, Nix-exact hashes, PJRT header diffs, bindings, smoke tests, XLA upgrades and the binary cache",
    long_about = None,
    after_help = "The project is the checkout you stand in (the nearest directory above holding pins.toml), or --project DIR. \
The files the xtask owns (pins.toml, the bindings, docs/) are found from there; paths you type are relative to the current directory.\n\
Run `cargo xtask <verb> --help` for the details of one verb.",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// The pjrtpkgs checkout to work on (default: the nearest directory
    /// above the current one holding pins.toml).
    #[arg(long, global = true, value_name = "DIR", env = "PJRTPKGS_ROOT")]
    pub project: Option<std::path::PathBuf>,
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
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(dir) = cli.project {
        crate::project::set_root(dir);
    }
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
    }
}
