//! Reading a Nix binary cache, independently of Nix.

pub mod decode;
pub mod narinfo;
pub mod remote;

use anyhow::{Context, Result};

/// `<hash>.narinfo` for a store path `/nix/store/<hash>-<name>`.
pub fn narinfo_name(path: &str) -> Result<String> {
    let (_, base) = narinfo::split_store_path(path)
        .with_context(|| format!("`{}` is not a store path (/nix/store/<32-char hash>-<name>)", narinfo::shown(path)))?;
    Ok(format!("{}.narinfo", &base[..32]))
}
