//! pins.toml: the typed model and its validation, read by every verb (the
//! `pins` verb prints and checks it).
//!
//! Three layers, one idea each:
//! - this file: the typed model (`Pins`), loading it with errors that name
//!   the key and the line;
//! - `check`: the rules a well-formed file must follow (formats, cross-field
//!   consistency, staleness), reported as located findings;
//! - `document`: edits that keep comments and ordering, written atomically.
//!
//! `release` and `runtime` hold one table each, with its rules; `formats`
//! the value formats both they and `check` use.

mod check;
mod document;
mod formats;
mod release;
mod runtime;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub use check::{check, Finding, Report, Severity};
pub use document::PinsDocument;
pub(crate) use formats::{is_hex_sha256, is_member_path, is_project_name, wheel_url_problems};
pub use release::ReleasePin;
pub use runtime::{RuntimePin, RuntimeWheel, SHARED_WHEEL_TABLES};

/// The placeholder SRI hash meaning "unknown or stale". Nix rejects it with a
/// hash mismatch that names the real hash.
pub const STALE_HASH: &str = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// The value of `pjrt_api_version` for a prebuilt plugin whose version could
/// not be read (see `pjrt_api_version_note` for why).
pub const UNKNOWN: &str = "unknown";

/// The schema this xtask reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Nix systems pjrtpkgs knows about.
pub const SYSTEMS: &[&str] = &["x86_64-linux", "aarch64-linux", "aarch64-darwin", "x86_64-darwin"];

/// Backends of the source builds ([bazel_deps]).
pub const SOURCE_BACKENDS: &[&str] = &["cpu", "cuda12", "cuda13", "rocm7"];

/// Backends of prebuilt plugins.
pub const PREBUILT_BACKENDS: &[&str] = &["cpu", "cuda12", "cuda13", "rocm7", "tpu"];

/// Exit status of `pins check` when the file is valid but some pins are stale.
pub const EXIT_STALE: u8 = 3;

/// All of pins.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pins {
    pub schema_version: u32,
    pub xla: XlaPin,
    pub toolchains: Toolchains,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda12: Option<CudaPin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda13: Option<CudaPin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rocm7: Option<RocmPin>,
    /// What XLA's rules_ml_toolchain says the Nix layer must follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_ml_toolchain: Option<RulesMlToolchainPin>,
    /// Binary plugins from PyPI, by PyPI project name.
    #[serde(default)]
    pub prebuilt: BTreeMap<String, PrebuiltPin>,
    /// Fixed-output Bazel dependency hashes, by backend then Nix system.
    #[serde(default)]
    pub bazel_deps: BTreeMap<String, BTreeMap<String, BazelDepsPin>>,
    /// Archives for non-Nix consumers (`cargo xtask release`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleasePin>,
}

/// [xla]: the XLA source every plugin is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XlaPin {
    pub repository: String,
    /// 40 hex digits.
    pub commit: String,
    /// SRI sha256 NAR hash of the commit's tree.
    pub hash: String,
    /// RFC 3339 committer date.
    pub date: String,
    /// "MAJOR.MINOR" from pjrt_c_api.h.
    pub pjrt_api_version: String,
    /// `.bazelversion` at `commit`.
    pub bazel_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toolchains {
    pub bazel: BazelToolchain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BazelToolchain {
    pub version: String,
    pub nixpkgs_attribute: String,
}

/// [cuda12] / [cuda13].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CudaPin {
    pub cuda_version: String,
    pub cudnn_version: String,
    pub nccl_version: String,
    pub nvshmem_version: String,
    pub nixpkgs_attribute: String,
    /// `sm_XX` / `compute_XX`, never probed from the build host.
    pub compute_capabilities: Vec<String>,
    /// XLA settings (`HERMETIC_*` --repo_env names of its pjrt_cudaNN
    /// config) the source build deliberately gives differently -> why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, String>,
    /// NVIDIA's NVSHMEM wheel at `nvshmem_version`, by Nix system, for the
    /// prebuilt plugins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nvshmem_wheel: BTreeMap<String, WheelPin>,
}

/// One pinned wheel file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelPin {
    pub url: String,
    /// Lowercase hex, as PyPI gives it.
    pub sha256: String,
}

/// [rules_ml_toolchain]: the commit XLA's WORKSPACE pins, and what its
/// rules at that commit say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesMlToolchainPin {
    pub commit: String,
    /// The shared libraries `gpu/nvshmem/nvidia_nvshmem.BUILD.tpl` imports.
    pub nvshmem_libraries: Vec<String>,
}

/// [rocm7].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RocmPin {
    pub distro_version: String,
    pub nixpkgs_attribute: String,
    /// `gfxNNN` AMDGPU targets, never probed from the build host.
    pub gpu_targets: Vec<String>,
}

/// [prebuilt.<name>]: one PyPI project repackaged as a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrebuiltPin {
    pub version: String,
    pub backend: String,
    /// "MAJOR.MINOR" as the plugin's `GetPjrtApi()` reports it, or "unknown".
    pub pjrt_api_version: String,
    /// Why `pjrt_api_version` is "unknown" (or how it was obtained, when not
    /// read on every platform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pjrt_api_version_note: Option<String>,
    /// The XLA commit the wheel was built from, when known (written by hand;
    /// nix/pins.nix reads it: the package then ships that commit's headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xla_commit: Option<String>,
    /// By Nix system.
    pub platforms: BTreeMap<String, PrebuiltPlatform>,
    /// The runtime libraries its release pairs with it (GPU plugins), for
    /// `prebuilt fetch NAME --with-runtime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimePin>,
}

/// [prebuilt.<name>.platforms.<system>]: one wheel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrebuiltPlatform {
    pub url: String,
    /// Lowercase hex, as PyPI gives it.
    pub sha256: String,
    /// The plugin's path inside the wheel.
    pub library: String,
}

/// [bazel_deps.<backend>.<system>].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BazelDepsPin {
    /// SRI hash, or `STALE_HASH` when unknown.
    pub hash: String,
    /// The XLA commit `hash` was computed for; absent = never computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xla_commit: Option<String>,
}

impl BazelDepsPin {
    /// Whether the hash must be recomputed before the build can succeed.
    pub fn is_stale(&self, xla_commit: &str) -> bool {
        self.hash == STALE_HASH || self.xla_commit.as_deref() != Some(xla_commit)
    }
}

impl Pins {
    /// Reads and validates `path`. Stale pins are not an error; invalid ones are.
    pub fn load(path: &Path) -> Result<Pins> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Pins::parse(&text, &path.display().to_string())
    }

    /// Parses and validates `text`; `origin` names it in errors (a path).
    /// Every error names the key and its line:column.
    pub fn parse(text: &str, origin: &str) -> Result<Pins> {
        let report = check(text, origin);
        match report.pins {
            Some(pins) if !report.has_errors() => Ok(pins),
            _ => Err(anyhow::anyhow!("{}", report.errors_text())),
        }
    }

    /// The pins of the prebuilt plugin `name`, with a helpful error.
    pub fn prebuilt(&self, name: &str) -> Result<&PrebuiltPin> {
        self.prebuilt.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.prebuilt.keys().map(String::as_str).collect();
            anyhow::anyhow!(
                "no prebuilt plugin named `{name}` in pins.toml (pinned: {}); pin it with `cargo xtask prebuilt update {name}`",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )
        })
    }
}

/// The major component of a dotted version (`7` of `7.7.0`).
pub fn version_major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

/// `MAJOR.MINOR` of a dotted version (`12.9` of `12.9.1`).
pub fn version_major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The Nix system of the machine running the xtask.
pub fn host_system() -> String {
    let arch = std::env::consts::ARCH;
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    format!("{arch}-{os}")
}
