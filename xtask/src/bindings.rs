//! The Rust bindings of `crates/pjrt-sys`, generated from the public PJRT
//! headers at an XLA commit (for `bindgen` and `upgrade-xla`).

mod generate;
mod naming;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

pub use generate::{generate, Generated};

/// The generated file, relative to the project root.
pub const BINDINGS_PATH: &str = "crates/pjrt-sys/src/bindings.rs";

/// `[xla] commit` of pins.toml.
pub fn pinned_xla_commit(pins_toml: &Path) -> Result<String> {
    Ok(crate::pinfile::Pins::load(pins_toml)?.xla.commit)
}

/// "bindgen X.Y.Z" as `root`'s Cargo.lock pins it: the version is what
/// makes the output reproducible, so the preamble names it.
pub fn generator_name(root: &Path) -> Result<String> {
    let lock: PathBuf = root.join("Cargo.lock");
    let text = std::fs::read_to_string(&lock).with_context(|| format!("cannot read {}", lock.display()))?;
    let table: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", lock.display()))?;
    let version = table
        .get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .find(|p| p.get("name").and_then(|n| n.as_str()) == Some("bindgen"))
        .and_then(|p| p.get("version")?.as_str())
        .ok_or_else(|| anyhow!("{} pins no `bindgen` package", lock.display()))?;
    Ok(format!("bindgen {version}"))
}
