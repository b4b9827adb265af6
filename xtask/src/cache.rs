//! `cargo xtask cache`: publish the flake's outputs to a Nix binary cache,
//! signed, and check what a cache holds.
//!
//! Nix does the building, signing and uploading (`nix build`, `nix copy`,
//! `nix store sign`); the check (`verify`) is done here, independently of
//! Nix, so a cache is judged by a second implementation of the format.

mod keygen;
mod push;
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

/// A key file (`--key`, `--trusted-key-file`): a regular file of at most
/// 64 KiB, read whole. A FIFO, a device or a large file given by mistake is
/// refused instead of blocking or filling memory.
pub fn read_key_file(file: &std::path::Path, what: &str) -> Result<String> {
    use std::io::Read as _;
    const MAX: u64 = 64 << 10;
    let meta = std::fs::metadata(file).with_context(|| format!("cannot read the {what} {}", file.display()))?;
    if !meta.is_file() {
        anyhow::bail!("the {what} {} is not a regular file; pass the key file itself", file.display());
    }
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX + 1).read_to_string(&mut text))
        .with_context(|| format!("cannot read the {what} {} as text", file.display()))?;
    if text.len() as u64 > MAX {
        anyhow::bail!("the {what} {} is larger than 64 KiB: not a key file", file.display());
    }
    Ok(text)
}
