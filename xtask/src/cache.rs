//! `cargo xtask cache`: publish the flake's outputs to a Nix binary cache,
//! signed, and check what a cache holds.
//!
//! Nix does the building, signing and uploading (`nix build`, `nix copy`,
//! `nix store sign`); the check (`verify`) is done here, independently of
//! Nix, so a cache is judged by a second implementation of the format.

mod keygen;
pub mod narinfo;
mod push;
pub mod remote;
pub mod verify;

use std::process::ExitCode;

use anyhow::{bail, Result};

/// Exit status of `cache verify` when the cache lacks or spoils some path.
pub const EXIT_PROBLEMS: u8 = 2;

#[derive(Debug, clap::Subcommand)]
// No doc comments on the variants: they would replace each verb's own
// `about`/`long_about`.
pub enum Command {
    Keygen(keygen::Args),
    Push(push::Args),
    Verify(verify::Args),
}

pub fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Keygen(args) => keygen::run(args),
        Command::Push(args) => push::run(args),
        Command::Verify(args) => verify::run(args),
    }
}

/// `<hash>.narinfo` for a store path `/nix/store/<hash>-<name>`.
pub fn narinfo_name(path: &str) -> Result<String> {
    let base = path.rsplit('/').next().unwrap_or(path);
    match base.split_once('-') {
        Some((hash, name)) if hash.len() == 32 && !name.is_empty() => Ok(format!("{hash}.narinfo")),
        _ => bail!("`{path}` is not a store path (/nix/store/<32-char hash>-<name>)"),
    }
}
