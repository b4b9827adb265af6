//! `cargo xtask deps-hash refresh [BACKEND] [--system SYS]`: compute the hash
//! of the Bazel dependency archive of a source build and pin it.
//!
//! Nix computes the hash: the deps derivation is built from a scratch copy
//! of the project whose pins.toml carries the placeholder hash, so the build
//! always runs (no store path can match the placeholder) and Nix names the
//! real hash in its mismatch error. That hash and the XLA commit are then
//! written to pins.toml `[bazel_deps.<backend>.<system>]`, atomically.

mod parse;

use std::path::Path;
use std::process::{Command as Process, ExitCode};
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub use parse::parse_hash_mismatch;

use crate::nix::Nix;
use crate::pinfile::{PinsDocument, SOURCE_BACKENDS};
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
            crate::cli::emit_line(&serde_json::to_string_pretty(&results)?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Computes the deps hash of `backend` on `system` with Nix and writes it
/// (with the current XLA commit) to the project's pins.toml. Returns the SRI hash.
pub fn refresh(backend: &str, system: &str) -> Result<String> {
    refresh_in(&project::root()?, backend, system)
}

/// [`refresh`] for the project at `root` (a checkout, or a copy of one such
/// as `upgrade-xla` stages): its flake is built, its pins.toml rewritten.
pub fn refresh_in(root: &Path, backend: &str, system: &str) -> Result<String> {
    if !SOURCE_BACKENDS.contains(&backend) {
        bail!("unknown backend '{backend}': expected one of {}", SOURCE_BACKENDS.join(", "));
    }
    let pins_path = root.join("pins.toml");
    // Checked before the (long) Nix build, which would only fail on it later.
    crate::pinfile::Pins::load(&pins_path).with_context(|| {
        format!("{} must be valid before its Bazel dependencies are hashed: fix it first (`cargo xtask pins check`)", pins_path.display())
    })?;

    // The project as it is, but with the placeholder for this deps pin.
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    copy_flake_inputs(root, scratch.path())?;
    let mut placeholder = PinsDocument::read(&pins_path)?;
    placeholder.mark_bazel_deps_hash_stale(backend, system);
    std::fs::write(scratch.path().join("pins.toml"), placeholder.to_string())?;

    let attr = format!("path:{}#packages.{system}.pjrt-{backend}.deps", scratch.path().display());
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(format!("building the Bazel dependencies of {backend} on {system} (this takes long)"));
    spinner.enable_steady_tick(Duration::from_millis(200));
    let mut build = Nix { store: None }.command()?;
    build.args(["build", "--no-link", "--print-build-logs", &attr]);
    let hash = mismatch_of_build(build);
    spinner.finish_and_clear();
    let hash = hash.with_context(|| format!("cannot compute the Bazel dependency hash of {backend} on {system}"))?;

    // Re-read: the file may have changed during the (long) build.
    let mut doc = PinsDocument::read(&pins_path)?;
    let commit = doc
        .xla_commit()
        .with_context(|| format!("{} has no [xla] commit (a string); fix it first (`cargo xtask pins check`)", pins_path.display()))?
        .to_owned();
    doc.set_bazel_deps_hash(backend, system, &hash, &commit);
    doc.write(&pins_path)?;
    Ok(hash)
}

/// Runs a `nix build` of a fixed-output derivation whose declared hash is
/// wrong and returns the real hash from Nix's mismatch error. Fails when the
/// build fails for another reason, or when Nix reports no mismatch: then an
/// output with the declared hash already exists, and the build is re-run
/// with `--rebuild`, which makes Nix re-fetch and compare.
pub fn mismatch_of_build(mut build: Process) -> Result<String> {
    let out = build.output().context("cannot run nix; is it installed and on PATH?")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(hash) = parse_hash_mismatch(&stderr) {
        return Ok(hash);
    }
    if !out.status.success() {
        bail!("nix build failed without a hash mismatch:\n{}", tail(&stderr, 40));
    }
    let out = build.arg("--rebuild").output().context("cannot run nix")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(hash) = parse_hash_mismatch(&stderr) {
        return Ok(hash);
    }
    bail!(
        "nix built the derivation without reporting a hash mismatch, even with --rebuild; \
the declared hash is already right, or this Nix reports mismatches differently:\n{}",
        tail(&stderr, 40)
    )
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

/// Copies the files the flake reads from the project at `root` to `to`:
/// enough to evaluate and build it elsewhere (build outputs left out).
pub fn copy_flake_inputs(root: &Path, to: &Path) -> Result<()> {
    for entry in [
        "flake.nix",
        "flake.lock",
        "pins.toml",
        "Cargo.toml",
        "Cargo.lock",
        ".cargo",
        "nix",
        "overlays",
        "xtask/Cargo.toml",
        "xtask/src",
        "crates",
    ] {
        crate::fsutil::copy_tree(&root.join(entry), &to.join(entry))
            .with_context(|| format!("cannot copy {} to a scratch directory", root.join(entry).display()))?;
    }
    Ok(())
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_rejects_unknown_backends() {
        let err = refresh("metal", "x86_64-linux").unwrap_err().to_string();
        assert!(err.contains("unknown backend 'metal'"), "{err}");
    }
}
