//! `cargo xtask prebuilt` (being written).
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Not implemented yet.
    Todo,
}

pub fn run(_cmd: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`prebuilt` is not implemented yet")
}

/// TEMPORARY (bindgen helper, until wip/pins lands): fetch a pinned plugin.
pub fn fetch_plugin(name: &str, _system: Option<&str>) -> anyhow::Result<std::path::PathBuf> {
    anyhow::bail!("prebuilt plugin `{name}`: prebuilt plugins are not available yet; pass a path to a .so")
}
