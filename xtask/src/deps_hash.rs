//! `cargo xtask deps-hash refresh [BACKEND] [--system SYS]`: compute the hash
//! of the Bazel dependency archive of a source build and pin it. The
//! computation is [`crate::bazel_deps`]'s.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::bazel_deps::refresh;
use crate::nix::Nix;
use crate::project;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Compute the Bazel dependency hash of source builds with Nix and pin it.
    #[command(
        long_about = "Builds the fixed-output derivation holding a source build's Bazel dependencies \
(`packages.<system>.pjrt-<backend>.deps`) with the placeholder hash, reads the real hash from \
Nix's mismatch error and writes it, with the XLA commit it belongs to, to pins.toml \
[bazel_deps.<backend>.<system>]. Needs Nix with flakes and network access (Bazel downloads \
XLA's dependencies); takes a long time.",
        after_help = "Examples:\n  cargo xtask deps-hash refresh cpu\n  cargo xtask deps-hash refresh cuda13 --system aarch64-linux\n  cargo xtask deps-hash refresh            # every backend, this system\n\n\
Without BACKEND it refreshes the backends built from source on SYSTEM, those with a \
[bazel_deps.<backend>.<system>] table (rocm7 is built for x86_64-linux only).\n\n\
Output: a JSON list of {backend, system, hash} on stdout once every backend is done; each hash is \
written to pins.toml (and reported on stderr) as soon as it is known.\n\n\
Exit status: 0 pinned, 1 error (unknown backend, Nix failed for another reason than a hash \
mismatch, pins.toml unreadable)."
    )]
    Refresh {
        /// Backend: cpu, cuda12, cuda13 or rocm7 (when omitted: every backend with a
        /// [bazel_deps.<backend>.<system>] table in pins.toml).
        backend: Option<String>,
        /// Nix system (default: the system Nix runs on).
        #[arg(long)]
        system: Option<String>,
    },
}

pub fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Refresh { backend, system } => {
            let system = match system {
                Some(s) => s,
                None => current_system()?,
            };
            let backends: Vec<String> = match backend {
                Some(b) => vec![b],
                None => pinned_backends(&system)?,
            };
            let mut results = Vec::new();
            for backend in &backends {
                let hash = refresh(backend, &system).with_context(|| {
                    let done: Vec<&str> = results.iter().filter_map(|r: &serde_json::Value| r["backend"].as_str()).collect();
                    match done.as_slice() {
                        [] => format!("deps-hash refresh of {backend} on {system} failed"),
                        done => format!("deps-hash refresh of {backend} on {system} failed ({} already pinned)", done.join(", ")),
                    }
                })?;
                eprintln!("pinned [bazel_deps.{backend}.{system}] = {hash}");
                results.push(serde_json::json!({ "backend": backend, "system": system, "hash": hash }));
            }
            crate::output::emit_line(&serde_json::to_string_pretty(&results)?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The backends built from source on `system`: those with a
/// `[bazel_deps.<backend>.<system>]` table, which the flake requires for
/// every source build it exposes (ROCm, for one, is x86_64 only).
fn pinned_backends(system: &str) -> Result<Vec<String>> {
    let pins = crate::pinfile::Pins::load(&project::pins_toml()?)?;
    let backends: Vec<String> =
        pins.bazel_deps.iter().filter(|(_, systems)| systems.contains_key(system)).map(|(backend, _)| backend.clone()).collect();
    if backends.is_empty() {
        bail!("pins.toml has no [bazel_deps.<backend>.{system}] table: nothing is built from source on {system}");
    }
    Ok(backends)
}

fn current_system() -> Result<String> {
    Nix { store: None }.current_system()
}
