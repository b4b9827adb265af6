//! The external programs the xtask runs, located once on `PATH`.
//!
//! A caller asks for a [`Tool`] and gets either its full path or one clear
//! error naming the program and where to get it. Nobody guesses what a
//! failed spawn meant: a check that needs a tool it cannot find refuses
//! instead of passing.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{anyhow, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Git,
    Nix,
    Cargo,
    Clang,
}

impl Tool {
    /// The program's name on `PATH`.
    pub fn program(self) -> &'static str {
        match self {
            Tool::Git => "git",
            Tool::Nix => "nix",
            Tool::Cargo => "cargo",
            Tool::Clang => "clang",
        }
    }

    /// Where a user gets it.
    fn install_hint(self) -> &'static str {
        match self {
            Tool::Git => "install git (Debian: `apt-get install git`)",
            Tool::Nix => "install Nix (https://nixos.org/download, or Debian's `nix-bin`)",
            Tool::Cargo => "install Rust with rustup (https://rustup.rs)",
            Tool::Clang => "install clang (Debian: `apt-get install clang`)",
        }
    }

    /// The program's full path. Cargo honours `$CARGO`, which cargo sets for
    /// the programs it runs, so `cargo xtask` uses the cargo that runs it.
    pub fn locate(self) -> Result<PathBuf> {
        if self == Tool::Cargo {
            if let Some(cargo) = std::env::var_os("CARGO").filter(|c| !c.is_empty()) {
                return Ok(PathBuf::from(cargo));
            }
        }
        which::which(self.program()).map_err(|e| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            anyhow!(
                "`{}` is needed but cannot be found on PATH ({e}; PATH={}): {}",
                self.program(),
                path.to_string_lossy(),
                self.install_hint()
            )
        })
    }

    /// A [`Command`] for the located program.
    pub fn command(self) -> Result<Command> {
        Ok(Command::new(self.locate()?))
    }
}
