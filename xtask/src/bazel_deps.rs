//! The hash of the Bazel dependency archive of a source build, computed
//! with Nix and pinned (for `deps-hash refresh` and `upgrade-xla --nix`).
//!
//! Nix computes the hash: the deps derivation is built from a scratch copy
//! of the project whose pins.toml carries the placeholder hash, so the build
//! always runs (no store path can match the placeholder) and Nix names the
//! real hash in its mismatch error. That hash and the XLA commit are then
//! written to pins.toml `[bazel_deps.<backend>.<system>]`, atomically.

mod parse;

use std::path::Path;
use std::process::Command as Process;
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub use parse::parse_hash_mismatch;

use crate::nix::Nix;
use crate::pinfile::{PinsDocument, SOURCE_BACKENDS};
use crate::project;

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
