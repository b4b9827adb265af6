//! Where the project lives. Every path the xtask reads or writes is relative
//! to the project root, so the verbs behave the same from any directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// Overrides the project root; tests point it at a scratch copy.
pub const ROOT_ENV: &str = "PJRTPKGS_ROOT";

/// The project root: `$PJRTPKGS_ROOT`, else the parent of the xtask crate
/// when it is a pjrtpkgs checkout, else the nearest ancestor of the current
/// directory holding `pins.toml`.
pub fn root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(ROOT_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let from_build = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf);
    if let Some(dir) = from_build.filter(|d| d.join("pins.toml").is_file()) {
        return Ok(dir);
    }
    let cwd = std::env::current_dir()?;
    for dir in cwd.ancestors() {
        if dir.join("pins.toml").is_file() {
            return Ok(dir.to_path_buf());
        }
    }
    bail!("cannot find the pjrtpkgs project root (no pins.toml above {}); run from a checkout or set {ROOT_ENV}", cwd.display())
}

pub fn pins_toml() -> Result<PathBuf> {
    Ok(root()?.join("pins.toml"))
}

/// Per-user cache for downloads and the XLA clone: `$PJRTPKGS_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/pjrtpkgs`, else `~/.cache/pjrtpkgs`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PJRTPKGS_CACHE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("pjrtpkgs"));
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("pjrtpkgs")),
        None => bail!("no cache directory: set PJRTPKGS_CACHE_DIR, XDG_CACHE_HOME or HOME"),
    }
}
