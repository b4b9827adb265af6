//! Where the project lives. Files the xtask owns (pins.toml, the bindings,
//! docs/) are found from the project root, so the verbs behave the same from
//! any directory of a checkout; paths a user types stay relative to the
//! current directory.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{bail, Result};

/// Overrides the project root, as `--project DIR` does; tests point it at a
/// scratch copy.
pub const ROOT_ENV: &str = "PJRTPKGS_ROOT";

static ROOT_OVERRIDE: OnceLock<PathBuf> = OnceLock::new();

/// Sets the project root for this process (`--project DIR`); it wins over
/// `$PJRTPKGS_ROOT` and the current directory. The first call wins.
pub fn set_root(dir: PathBuf) {
    let _ = ROOT_OVERRIDE.set(dir);
}

/// The project root: `--project DIR`, else `$PJRTPKGS_ROOT`, else the
/// nearest ancestor of the current directory holding `pins.toml`.
///
/// Never the directory the binary was built in: a release binary run inside
/// another clone must read and write the clone it stands in.
pub fn root() -> Result<PathBuf> {
    if let Some(dir) = ROOT_OVERRIDE.get() {
        return checked(dir.clone(), "--project");
    }
    if let Some(dir) = std::env::var_os(ROOT_ENV).filter(|d| !d.is_empty()) {
        return checked(PathBuf::from(dir), ROOT_ENV);
    }
    let cwd = std::env::current_dir()?;
    for dir in cwd.ancestors() {
        if dir.join("pins.toml").is_file() {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(
        "not inside a pjrtpkgs checkout: no pins.toml in {} or any directory above it; \
         run from a clone of pjrtpkgs, or pass --project DIR (or set {ROOT_ENV})",
        cwd.display()
    )
}

/// `dir` made absolute; an error naming `source` when it is not a directory.
fn checked(dir: PathBuf, source: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        bail!(
            "{source} names {}, which is not a directory; give the root of a pjrtpkgs checkout (the directory holding pins.toml)",
            dir.display()
        );
    }
    Ok(std::path::absolute(&dir)?)
}

pub fn pins_toml() -> Result<PathBuf> {
    Ok(root()?.join("pins.toml"))
}

/// Per-user cache for downloads and the XLA clone: `$PJRTPKGS_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/pjrtpkgs`, else `~/.cache/pjrtpkgs`. An empty
/// variable counts as unset, and so does a relative `XDG_CACHE_HOME` (the
/// XDG specification says to ignore it): an empty one would otherwise put
/// the cache in whatever directory the command runs from.
pub fn cache_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("PJRTPKGS_CACHE_DIR") {
        return Ok(std::path::absolute(dir)?);
    }
    if let Some(dir) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Ok(dir.join("pjrtpkgs"));
    }
    match var("HOME").filter(|h| h.is_absolute()) {
        Some(home) => Ok(home.join(".cache").join("pjrtpkgs")),
        None => bail!("no cache directory: set PJRTPKGS_CACHE_DIR, XDG_CACHE_HOME or HOME (to an absolute path)"),
    }
}
