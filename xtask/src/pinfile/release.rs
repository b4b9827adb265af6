//! [release]: what `cargo xtask release` reads from pins.toml (the build
//! counter, the glibc floor, the signing key's public half) and the rules a
//! well-formed table follows.

use serde::{Deserialize, Serialize};

/// [release]: the archives for non-Nix consumers (docs/release.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasePin {
    /// Build number of the next release: its version is
    /// `v<PJRT major>.<PJRT minor>.<build>`. Counted up by `release bump`,
    /// back to 1 by `upgrade-xla` when the PJRT API version changes.
    pub build: u32,
    /// manylinux tag of the oldest system a released plugin must run on.
    pub glibc_floor: String,
    /// minisign public key (base64, the second line of a `.pub` file) that
    /// verifies `SHA256SUMS.minisig`; absent until a key exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minisign_public_key: Option<String>,
    /// Libraries a plugin may need without bundling them, beyond what every
    /// manylinux system provides (e.g. the GPU driver's `libcuda.so.1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_libraries: Vec<String>,
}

/// The rules of [release]; `report(key, message)` records an error.
pub(super) fn check(release: &ReleasePin, report: &mut dyn FnMut(&str, String)) {
    if release.build == 0 {
        report("release.build", "the build counter starts at 1".to_owned());
    }
    if let Err(e) = crate::glibc_floor::Floor::named(&release.glibc_floor) {
        report("release.glibc_floor", e);
    }
    if let Some(key) = &release.minisign_public_key {
        if let Err(e) = minisign::PublicKey::from_base64(key) {
            report(
                "release.minisign_public_key",
                format!("not a minisign public key ({e}): give the base64 line of the .pub file `cargo xtask release keygen` or `minisign -G` wrote"),
            );
        }
    }
    for lib in &release.system_libraries {
        let soname = lib.starts_with("lib") && lib.contains(".so") && !lib.contains('/');
        if !soname {
            report("release.system_libraries", format!("`{lib}` is not a library soname (libcuda.so.1)"));
        }
    }
}
