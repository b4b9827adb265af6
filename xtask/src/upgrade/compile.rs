//! Compiles the regenerated `crates/pjrt-sys` in a staging copy, so a
//! binding that does not build stops the upgrade before anything is written.
//!
//! The copy is a one-member workspace (the project's `[workspace.package]`
//! and Cargo.lock, `members = ["crates/pjrt-sys"]`) in a temporary
//! directory, checked with `cargo check --offline`. Its target directory is
//! `$PJRTPKGS_UPGRADE_TARGET_DIR`, else `<cache>/upgrade-target`: shared
//! between runs, so only pjrt-sys itself is rebuilt.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::staging::Staged;

pub const CRATE_DIR: &str = "crates/pjrt-sys";
pub const TARGET_DIR_ENV: &str = "PJRTPKGS_UPGRADE_TARGET_DIR";

pub fn target_dir() -> Result<PathBuf> {
    match std::env::var_os(TARGET_DIR_ENV) {
        Some(d) => Ok(PathBuf::from(d)),
        None => Ok(crate::project::cache_dir()?.join("upgrade-target")),
    }
}

/// `cargo check`s pjrt-sys as `staged` would leave it.
pub fn check_staged(staged: &Staged) -> Result<()> {
    let root = staged.root();
    // Removed on drop and on SIGINT/SIGTERM; a SIGKILLed run's is swept by the next.
    let dir = super::interrupt::StagingDir::new("compile")?;
    crate::fsutil::copy_tree(&root.join(CRATE_DIR), &dir.path().join(CRATE_DIR))
        .with_context(|| format!("cannot copy {} to a staging directory", root.join(CRATE_DIR).display()))?;
    // Overlay the staged files that live in the crate (those that differ
    // from the project; the others were copied as they are).
    for rel in staged_in_crate(staged)? {
        if let Some(contents) = staged.read(&rel)? {
            let target = dir.path().join(&rel);
            std::fs::create_dir_all(target.parent().unwrap())?;
            std::fs::write(&target, contents)?;
        }
    }
    std::fs::write(dir.path().join("Cargo.toml"), workspace_manifest(root)?)?;
    if let Ok(lock) = std::fs::read(root.join("Cargo.lock")) {
        std::fs::write(dir.path().join("Cargo.lock"), lock)?;
    }
    let target = target_dir()?;
    let mut cargo = crate::tools::Tool::Cargo.command()?;
    cargo
        .args(["check", "--offline", "--quiet", "--package", "pjrt-sys", "--manifest-path"])
        .arg(dir.path().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target);
    let output = super::interrupt::output(&mut cargo).context("cannot run cargo to compile the regenerated bindings")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
        bail!(
            "the regenerated {CRATE_DIR} does not compile (cargo check exited with {}); nothing was written. \
             The new headers may need changes to the hand-written parts of {CRATE_DIR}. cargo said:\n{}",
            output.status,
            tail.join("\n")
        );
    }
    Ok(())
}

fn staged_in_crate(staged: &Staged) -> Result<Vec<PathBuf>> {
    Ok(staged.changes()?.into_iter().map(|(p, _)| p).filter(|p| p.starts_with(CRATE_DIR)).collect())
}

/// The project's root manifest reduced to a workspace of pjrt-sys alone.
fn workspace_manifest(root: &Path) -> Result<String> {
    let path = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text.parse().with_context(|| format!("{} is not valid TOML", path.display()))?;
    let ws =
        doc.get_mut("workspace").and_then(|w| w.as_table_like_mut()).with_context(|| format!("{} has no [workspace]", path.display()))?;
    let mut members = toml_edit::Array::new();
    members.push(CRATE_DIR);
    ws.insert("members", toml_edit::value(members));
    ws.remove("default-members");
    Ok(doc.to_string())
}
