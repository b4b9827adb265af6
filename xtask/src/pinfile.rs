//! pins.toml: the typed model, validation and `cargo xtask pins`.
//!
//! Three layers, one idea each:
//! - this file: the typed model (`Pins`), loading it with errors that name
//!   the key and the line, and the `pins` verb;
//! - `check`: the rules a well-formed file must follow (formats, cross-field
//!   consistency, staleness), reported as located findings;
//! - `document`: edits that keep comments and ordering, written atomically.

mod check;
mod document;
mod release;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub use check::{check, Finding, Report, Severity};
pub(crate) use check::{is_hex_sha256, is_member_path, is_project_name, wheel_url_problems};
pub use document::PinsDocument;
pub use release::ReleasePin;

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

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate pins.toml: syntax, formats, cross-field rules and staleness.
    #[command(
        long_about = "Validate pins.toml: syntax and types (unknown keys are errors), formats (40-hex commits, SRI and hex sha256, versions, RFC 3339 dates, Nix systems, sm_XX/compute_XX, gfx targets), cross-field rules (Bazel major versions, prebuilt wheel names against version and system) and staleness ([bazel_deps] hashes that are the placeholder or were computed for another XLA commit).\n\nEvery finding names the key and its line:column.",
        after_help = "Exit status: 0 valid, 1 invalid (or unreadable), 3 valid but some pins are stale.\n\nExamples:\n  cargo xtask pins check\n  PJRTPKGS_ROOT=/tmp/scratch cargo xtask pins check"
    )]
    Check,
    /// Print pins.toml's values, resolved and validated.
    #[command(
        long_about = "Print the pinned values: a readable summary, or with --json the whole typed model (the same shape as pins.toml) plus the list of findings of `pins check`.",
        after_help = "Exit status: the same as `pins check` (0 valid, 1 invalid, 3 valid but some pins are stale).\n\nExamples:\n  cargo xtask pins show\n  cargo xtask pins show --json | jq -r .pins.xla.commit"
    )]
    Show {
        /// Machine-readable output: {"pins": ..., "findings": [...]}.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: Command) -> Result<ExitCode> {
    let path = crate::project::pins_toml()?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let report = check(&text, &path.display().to_string());
    match cmd {
        Command::Check => {
            for finding in &report.findings {
                eprintln!("{finding}");
            }
            let (errors, stale) = report.counts();
            if errors > 0 {
                eprintln!("{}: invalid ({errors} error(s), {stale} stale pin(s))", path.display());
            } else if stale > 0 {
                eprintln!("{}: valid, but {stale} stale pin(s): run `cargo xtask deps-hash refresh` to recompute them", path.display());
            } else {
                eprintln!("{}: valid", path.display());
            }
            Ok(ExitCode::from(report.exit_code()))
        }
        Command::Show { json } => {
            if json {
                let value = serde_json::json!({ "pins": report.pins, "findings": report.findings });
                crate::cli::emit_line(&serde_json::to_string_pretty(&value)?)?;
            } else {
                let Some(pins) = &report.pins else {
                    anyhow::bail!("{}", report.errors_text());
                };
                crate::cli::emit(&summary(pins))?;
                for finding in &report.findings {
                    eprintln!("{finding}");
                }
            }
            Ok(ExitCode::from(report.exit_code()))
        }
    }
}

/// The human-readable `pins show`.
fn summary(pins: &Pins) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let x = &pins.xla;
    let _ = writeln!(out, "xla        {} @ {}", x.repository, x.commit);
    let _ = writeln!(out, "           {} ({}), PJRT API {}, Bazel {}", x.date, x.hash, x.pjrt_api_version, x.bazel_version);
    let b = &pins.toolchains.bazel;
    let _ = writeln!(out, "bazel      {} (nixpkgs {})", b.version, b.nixpkgs_attribute);
    for (name, cuda) in [("cuda12", &pins.cuda12), ("cuda13", &pins.cuda13)] {
        if let Some(c) = cuda {
            let _ = writeln!(
                out,
                "{name:<10} CUDA {} cuDNN {} NCCL {} NVSHMEM {} (nixpkgs {}), {}",
                c.cuda_version,
                c.cudnn_version,
                c.nccl_version,
                c.nvshmem_version,
                c.nixpkgs_attribute,
                c.compute_capabilities.join(" ")
            );
        }
    }
    if let Some(r) = &pins.rocm7 {
        let _ = writeln!(out, "rocm7      {} (nixpkgs {}), {}", r.distro_version, r.nixpkgs_attribute, r.gpu_targets.join(" "));
    }
    for (name, p) in &pins.prebuilt {
        let systems: Vec<&str> = p.platforms.keys().map(String::as_str).collect();
        let _ = writeln!(out, "prebuilt   {name} {} ({}), PJRT API {}, {}", p.version, p.backend, p.pjrt_api_version, systems.join(" "));
    }
    if let Some(r) = &pins.release {
        let next = format!("v{}.{}", x.pjrt_api_version, r.build);
        let key = r.minisign_public_key.as_deref().unwrap_or("no signing key yet");
        let _ = writeln!(out, "release    next {next}, glibc floor {}, {key}", r.glibc_floor);
    }
    for (backend, systems) in &pins.bazel_deps {
        for (system, deps) in systems {
            let state = if deps.is_stale(&pins.xla.commit) { "STALE" } else { "ok" };
            let _ = writeln!(out, "bazel_deps {backend}.{system} {} [{state}]", deps.hash);
        }
    }
    out
}
