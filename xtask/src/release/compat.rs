//! `compat.json`: the release's compatibility feed, one entry per archive —
//! what a binding needs to decide, before downloading anything, whether a
//! plugin is one it can use: the PJRT API version and `PJRT_Api` size the
//! plugin reports, its extensions, the StableHLO versions it accepts, the
//! conformance counts and failing checks, and what it needs to load (the
//! glibc floor, system libraries, a GPU driver).
//!
//! It is listed in `SHA256SUMS`, so the signature covers it. The schema is
//! this module's types (documented in docs/release.md): `release verify`
//! reads the file back into them — an unknown key, a missing one or a
//! wrong type is a problem — and checks it against `SHA256SUMS`.
//!
//! The plugin facts come from running `cargo xtask conform PLUGIN --json`
//! (the conform verb, as a child process: one verb does not import
//! another) on the plugin exactly as archived, when it can run on this
//! machine; otherwise they are `null`, with a note saying why.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The file name.
pub const FILE: &str = "compat.json";
/// The schema version written, and the only one read.
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compat {
    pub schema: u32,
    pub release: ReleaseInfo,
    /// The XLA commit pinned for the release (source builds are built from it).
    pub xla: XlaInfo,
    pub archives: Vec<ArchiveCompat>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseInfo {
    /// `v0.93.1`: the signed trusted comment names the same tag.
    pub tag: String,
    pub build: u32,
    /// `YYYYMMDD` of a pre-release.
    pub dev: Option<String>,
    pub glibc_floor: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XlaInfo {
    pub commit: String,
    pub pjrt_api_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveCompat {
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// The archive's CycloneDX SBOM, a file of the release.
    pub sbom: String,
    pub backend: String,
    /// `x86_64-linux`.
    pub system: String,
    /// `source` or `prebuilt`.
    pub origin: String,
    /// The archive's version (`0.81.1`).
    pub version: String,
    pub pjrt: Pjrt,
    pub stablehlo: Option<Stablehlo>,
    pub conform: Conform,
    pub loads_with: LoadsWith,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pjrt {
    /// `MAJOR.MINOR`, as `GetPjrtApi()` reports it.
    pub api_version: String,
    pub api_major: u32,
    pub api_minor: u32,
    /// `PJRT_Api.struct_size` as reported; `null` when the plugin was not run.
    pub api_struct_size: Option<u64>,
    /// The extension chain; `null` when the plugin was not run.
    pub extensions: Option<Vec<Extension>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    /// `PJRT_Extension_Type` value.
    #[serde(rename = "type")]
    pub kind: i64,
    /// Its name in the newest header pjrtpkgs knows; `null` when newer.
    pub name: Option<String>,
    pub struct_size: u64,
}

/// The StableHLO (VHLO) versions the plugin accepts, from its
/// `stablehlo_minimum_version` / `stablehlo_current_version` attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stablehlo {
    pub minimum: Option<String>,
    pub current: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conform {
    /// Whether `conform` ran on the archived plugin.
    pub ran: bool,
    /// PASS / FAIL / UNSUPPORTED / SKIP counts.
    pub counts: Option<BTreeMap<String, u64>>,
    /// The ids of the checks that FAILed, sorted.
    pub failing: Vec<String>,
    /// Why it did not run, or what to know about the run.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadsWith {
    pub glibc_floor: String,
    /// The highest symbol version of each family it needs from the system.
    pub max_versions: BTreeMap<String, String>,
    /// DT_NEEDED of the plugin.
    pub needed: Vec<String>,
    /// Those shipped in the archive's lib/.
    pub bundled: Vec<String>,
    /// Those the system must provide.
    pub system: Vec<String>,
    pub driver: Option<Driver>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Driver {
    pub vendor: String,
    pub library: String,
    /// The oldest driver that runs the plugin's CUDA major (NVIDIA's
    /// minor-version compatibility), when known.
    pub minimum: Option<String>,
    pub note: String,
}

/// The GPU driver a backend needs. CUDA 12.x runs on drivers from 525.60.13,
/// CUDA 13.x from 580.65.06 (NVIDIA's CUDA release notes, "minor version
/// compatibility"); ROCm 7's kernel driver is the amdgpu of that ROCm.
pub fn driver_for(backend: &str) -> Option<Driver> {
    let nvidia = |minimum: &str, cuda: &str| Driver {
        vendor: "NVIDIA".to_owned(),
        library: "libcuda.so.1".to_owned(),
        minimum: Some(minimum.to_owned()),
        note: format!("any driver running CUDA {cuda}.x (minor-version compatibility)"),
    };
    match backend {
        "cuda12" => Some(nvidia("525.60.13", "12")),
        "cuda13" => Some(nvidia("580.65.06", "13")),
        "rocm7" => Some(Driver {
            vendor: "AMD".to_owned(),
            library: "amdgpu (kernel)".to_owned(),
            minimum: None,
            note: "the amdgpu kernel driver of ROCm 7".to_owned(),
        }),
        _ => None,
    }
}

impl Compat {
    /// The JSON written: pretty, keys in the order of the types, one newline at the end.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("serializable");
        text.push('\n');
        text
    }

    /// Reads `bytes` as this schema; the error says where it departs.
    pub fn parse(bytes: &[u8]) -> Result<Compat, String> {
        let compat: Compat = serde_json::from_slice(bytes).map_err(|e| format!("does not follow the compat.json schema: {e}"))?;
        if compat.schema != SCHEMA {
            return Err(format!("is schema {}; this pjrtpkgs reads schema {SCHEMA}", compat.schema));
        }
        Ok(compat)
    }

    /// What is wrong with it beside `listed` (SHA256SUMS: name -> sha256)
    /// and the tag the release is verified as.
    pub fn problems(&self, listed: &BTreeMap<String, String>, tag: Option<&str>) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(tag) = tag.filter(|t| *t != self.release.tag) {
            problems.push(format!("{FILE} describes release {}, not {tag}", self.release.tag));
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in &self.archives {
            if !seen.insert(a.file.as_str()) {
                problems.push(format!("{FILE} lists {} twice", a.file));
            }
            match listed.get(&a.file) {
                None => problems.push(format!("{FILE} describes {}, which SHA256SUMS does not list", a.file)),
                Some(sha) if *sha != a.sha256 => {
                    problems.push(format!("{FILE} gives {} the sha256 {}, SHA256SUMS {sha}", a.file, a.sha256))
                }
                Some(_) => {}
            }
            if !listed.contains_key(&a.sbom) {
                problems.push(format!("{FILE} names the SBOM {} of {}, which SHA256SUMS does not list", a.sbom, a.file));
            }
            if a.pjrt.api_version != format!("{}.{}", a.pjrt.api_major, a.pjrt.api_minor) {
                problems.push(format!("{FILE}: {} says PJRT {} and {}.{}", a.file, a.pjrt.api_version, a.pjrt.api_major, a.pjrt.api_minor));
            }
        }
        for name in listed.keys().filter(|n| n.ends_with(".tar.gz")) {
            if !seen.contains(name.as_str()) {
                problems.push(format!("{name} is listed in SHA256SUMS but {FILE} does not describe it"));
            }
        }
        problems
    }
}
