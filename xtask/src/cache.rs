//! `cargo xtask cache`: publish the flake's outputs to a Nix binary cache,
//! signed, and check what a cache holds.
//!
//! Nix does the building, signing and uploading (`nix build`, `nix copy`,
//! `nix store sign`); the check (`verify`) is done here, independently of
//! Nix, so a cache is judged by a second implementation of the format.

pub mod decode;
mod keygen;
pub mod narinfo;
mod push;
pub mod remote;
pub mod verify;

use std::process::ExitCode;

use anyhow::{Context, Result};

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
    let (_, base) = narinfo::split_store_path(path)
        .with_context(|| format!("`{}` is not a store path (/nix/store/<32-char hash>-<name>)", narinfo::shown(path)))?;
    Ok(format!("{}.narinfo", &base[..32]))
}
