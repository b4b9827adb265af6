//! pins.toml: the typed model, validation and `cargo xtask pins`.
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate pins.toml.
    Check,
}

pub fn run(_cmd: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`pins` is not implemented yet")
}
