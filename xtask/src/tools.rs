//! The external programs the xtask runs, located once on `PATH` (protoc:
//! `$PROTOC`, else the build vendored with the xtask).
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
    /// Google's protobuf compiler, for the protobuf part of diff-headers.
    Protoc,
}

impl Tool {
    /// The program's name on `PATH`.
    pub fn program(self) -> &'static str {
        match self {
            Tool::Git => "git",
            Tool::Nix => "nix",
            Tool::Cargo => "cargo",
            Tool::Clang => "clang",
            Tool::Protoc => "protoc",
        }
    }

    /// Where a user gets it.
    fn install_hint(self) -> &'static str {
        match self {
            Tool::Git => "install git (Debian: `apt-get install git`)",
            Tool::Nix => "install Nix (https://nixos.org/download, or Debian's `nix-bin`)",
            Tool::Cargo => "install Rust with rustup (https://rustup.rs)",
            Tool::Clang => "install clang (Debian: `apt-get install clang`)",
            Tool::Protoc => {
                "set PROTOC to a protoc of release 27 or newer (editions support; nixpkgs' `protobuf`, or a release from \
                 https://github.com/protocolbuffers/protobuf/releases)"
            }
        }
    }

    /// The program's full path. Cargo honours `$CARGO`, which cargo sets for
    /// the programs it runs, so `cargo xtask` uses the cargo that runs it.
    /// protoc honours `$PROTOC` (the variable prost-build reads too), else
    /// it is the static build vendored with the xtask (never `PATH`'s:
    /// Debian's is too old to read protobuf editions).
    pub fn locate(self) -> Result<PathBuf> {
        let env = match self {
            Tool::Cargo => Some("CARGO"),
            Tool::Protoc => Some("PROTOC"),
            _ => None,
        };
        if let Some(path) = env.and_then(std::env::var_os).filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        if self == Tool::Protoc {
            return vendored_protoc().ok_or_else(|| {
                anyhow!(
                    "`protoc` is needed but this build of the xtask carries none for {}-{} (or its vendored copy is gone): {}",
                    std::env::consts::ARCH,
                    std::env::consts::OS,
                    self.install_hint()
                )
            });
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

/// The protoc shipped in the `protoc-bin-vendored-*` crate of this
/// platform, if there is one and it is still where cargo unpacked it (a
/// binary moved off the build machine, as in a Nix store, has none there:
/// it needs `PROTOC`).
fn vendored_protoc() -> Option<PathBuf> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    let locate: fn() -> PathBuf = protoc_bin_vendored_linux_x86_64::protoc_bin_path;
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    let locate: fn() -> PathBuf = protoc_bin_vendored_linux_aarch_64::protoc_bin_path;
    #[cfg(all(target_os = "macos", target_arch = "aarch64"))]
    let locate: fn() -> PathBuf = protoc_bin_vendored_macos_aarch_64::protoc_bin_path;
    #[cfg(not(any(
        all(target_os = "linux", target_arch = "x86_64"),
        all(target_os = "linux", target_arch = "aarch64"),
        all(target_os = "macos", target_arch = "aarch64")
    )))]
    let locate: fn() -> PathBuf = PathBuf::new;
    // The crate asserts that its binary exists: a missing one panics there
    // (the message goes to stderr) and is caught here, to become an error.
    let path = std::panic::catch_unwind(locate).ok()?;
    path.is_file().then_some(path)
}
