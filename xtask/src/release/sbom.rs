//! A software bill of materials per archive, CycloneDX 1.6 JSON
//! (`<archive stem>.cdx.json`, listed in `SHA256SUMS`): what is in the
//! archive (every file with its sha256), what the plugin was made from (XLA
//! and the LLVM, StableHLO and Shardy commits it pins, Bazel and the nixpkgs
//! revision for a source build; the wheel's name, version, PyPI URL and
//! sha256 for a repackaged one), what it needs at run time and does not
//! ship (CUDA, cuDNN, NCCL, NVSHMEM, ROCm), and the licences — the NVIDIA
//! parts are under NVIDIA's own terms, not Apache-2.0.
//!
//! Reproducible like everything else in a release: no wall-clock time (the
//! timestamp is the pinned XLA commit's date) and a serial number derived
//! from the archive's sha256. Tests check every SBOM with CycloneDX's own
//! schema validator (cyclonedx-python-lib), independently of this code.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The SBOM's file name beside `archive` (`x.tar.gz` -> `x.cdx.json`).
pub fn file_name(archive: &str) -> String {
    format!("{}.cdx.json", archive.trim_end_matches(".tar.gz"))
}

/// Where the plugin comes from.
pub enum Made {
    /// Built from XLA sources by the flake.
    Source {
        xla_commit: String,
        /// NAR hash of the XLA source (`fetchFromGitHub`'s), when it is the pinned commit.
        xla_hash: Option<String>,
        /// (`LLVM`, commit), (`StableHLO`, ...), (`Shardy`, ...) as XLA pins them.
        vendored: Vec<(&'static str, String)>,
        bazel: Option<String>,
        nixpkgs: Option<String>,
    },
    /// A binary plugin from a wheel on PyPI.
    Wheel {
        package: String,
        version: String,
        url: String,
        sha256: String,
        /// The plugin's path in the wheel.
        library: String,
        /// The wheel's declared licence (its METADATA), when known.
        license: Option<String>,
    },
}

/// A run-time dependency not shipped in the archive.
pub struct Needs {
    pub name: &'static str,
    pub version: String,
    pub license: Value,
    pub note: Option<String>,
}

pub struct Sbom<'a> {
    pub archive: &'a str,
    pub archive_sha256: &'a str,
    /// The archive's top directory (`pjrt-cpu-linux-x86_64-v0.81.1`).
    pub stem: &'a str,
    pub version: &'a str,
    pub tag: &'a str,
    pub backend: &'a str,
    pub system: &'a str,
    pub api_version: &'a str,
    /// Seconds since the epoch of the pinned XLA commit.
    pub date: i64,
    pub pjrtpkgs_commit: Option<&'a str>,
    /// Every file of the archive (path below the top directory, sha256), the plugin first.
    pub files: &'a [(String, String)],
    pub made: Made,
    pub needs: Vec<Needs>,
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A UUID (RFC 4122 layout, version 5 bits) derived from `seed`.
fn derived_uuid(seed: &str) -> String {
    let mut b: [u8; 16] = Sha256::digest(seed.as_bytes())[..16].try_into().expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn hashes(sha256: &str) -> Value {
    json!([{ "alg": "SHA-256", "content": sha256 }])
}

fn prop(name: &str, value: impl Into<String>) -> Value {
    json!({ "name": name, "value": value.into() })
}

/// A CycloneDX licence choice for an SPDX id, an SPDX expression, or a name.
pub fn license(text: &str) -> Value {
    let text = text.trim();
    let is_id = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c));
    if is_id && KNOWN_IDS.contains(&text) {
        json!([{ "license": { "id": text } }])
    } else if text.contains(" WITH ") || text.contains(" AND ") || text.contains(" OR ") {
        json!([{ "expression": text }])
    } else {
        json!([{ "license": { "name": text } }])
    }
}

/// SPDX ids written as ids (the CycloneDX schema checks ids against SPDX's
/// list; anything else is written as a name).
const KNOWN_IDS: &[&str] = &["Apache-2.0", "MIT", "BSD-3-Clause", "BSD-2-Clause", "NCSA", "Unlicense"];

pub fn nvidia(name: &'static str, version: String, note: Option<String>) -> Needs {
    let license = match name {
        "CUDA runtime" => {
            json!([{ "license": { "name": "NVIDIA CUDA Toolkit End User License Agreement", "url": "https://docs.nvidia.com/cuda/eula/index.html" } }])
        }
        "cuDNN" => json!([{ "license": { "name": "NVIDIA cuDNN Software License Agreement" } }]),
        "NCCL" => json!([{ "license": { "id": "BSD-3-Clause" } }]),
        "NVSHMEM" => json!([{ "license": { "name": "NVIDIA Software License Agreement (NVSHMEM)" } }]),
        _ => json!([{ "license": { "name": "see the component's own licence" } }]),
    };
    Needs { name, version, license, note }
}

impl Sbom<'_> {
    /// The JSON document, pretty-printed, with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.document()).expect("serializable");
        text.push('\n');
        text
    }

    pub fn document(&self) -> Value {
        let mut components: Vec<Value> = Vec::new();
        let mut plugin_deps: Vec<String> = Vec::new();
        let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();

        // The archive's files.
        let mut archive_deps = Vec::new();
        for (i, (path, sha)) in self.files.iter().enumerate() {
            let is_lib = path.starts_with("lib/");
            let bom_ref = if i == 0 { "plugin".to_owned() } else { format!("file:{path}") };
            let mut c = json!({
                "bom-ref": bom_ref,
                "type": if is_lib { "library" } else { "file" },
                "name": path,
                "hashes": hashes(sha),
            });
            if i == 0 {
                c["version"] = self.version.into();
                c["description"] = format!("PJRT plugin ({}), PJRT C API {}", self.backend, self.api_version).into();
                c["properties"] = json!([prop("pjrt:api_version", self.api_version), prop("pjrt:backend", self.backend)]);
                if let Made::Wheel { license: Some(l), .. } = &self.made {
                    c["licenses"] = license(l);
                } else if let Made::Source { .. } = self.made {
                    c["licenses"] = license("Apache-2.0");
                }
            }
            archive_deps.push(bom_ref);
            components.push(c);
        }

        match &self.made {
            Made::Source { xla_commit, xla_hash, vendored, bazel, nixpkgs } => {
                let mut xla = json!({
                    "bom-ref": "xla",
                    "type": "library",
                    "group": "openxla",
                    "name": "xla",
                    "version": xla_commit,
                    "purl": format!("pkg:github/openxla/xla@{xla_commit}"),
                    "licenses": license("Apache-2.0"),
                    "externalReferences": [{ "type": "vcs", "url": "https://github.com/openxla/xla" }],
                });
                if let Some(h) = xla_hash {
                    xla["properties"] = json!([prop("nix:narHash", h.clone())]);
                }
                components.push(xla);
                plugin_deps.push("xla".to_owned());
                let mut xla_deps = Vec::new();
                for (project, commit) in vendored {
                    let (group, name, repo, lic) = match *project {
                        "LLVM" => ("llvm", "llvm-project", "https://github.com/llvm/llvm-project", "Apache-2.0 WITH LLVM-exception"),
                        "StableHLO" => ("openxla", "stablehlo", "https://github.com/openxla/stablehlo", "Apache-2.0"),
                        _ => ("openxla", "shardy", "https://github.com/openxla/shardy", "Apache-2.0"),
                    };
                    let bom_ref = name.to_owned();
                    components.push(json!({
                        "bom-ref": bom_ref,
                        "type": "library",
                        "group": group,
                        "name": name,
                        "version": commit,
                        "purl": format!("pkg:github/{group}/{name}@{commit}"),
                        "licenses": license(lic),
                        "externalReferences": [{ "type": "vcs", "url": repo }],
                        "properties": [prop("pjrtpkgs:pinned_by", format!("XLA {xla_commit}"))],
                    }));
                    xla_deps.push(bom_ref);
                }
                deps.insert("xla".to_owned(), xla_deps);
                if let Some(v) = bazel {
                    components.push(json!({
                        "bom-ref": "bazel", "type": "application", "name": "bazel", "version": v, "scope": "excluded",
                        "licenses": license("Apache-2.0"),
                        "purl": format!("pkg:github/bazelbuild/bazel@{v}"),
                        "description": "build tool (not in the archive)",
                    }));
                }
                if let Some(rev) = nixpkgs {
                    components.push(json!({
                        "bom-ref": "nixpkgs", "type": "platform", "name": "nixpkgs", "version": rev, "scope": "excluded",
                        "licenses": license("MIT"),
                        "purl": format!("pkg:github/NixOS/nixpkgs@{rev}"),
                        "description": "the package set the build ran in (flake.lock)",
                    }));
                }
            }
            Made::Wheel { package, version, url, sha256, library, license: lic } => {
                let mut wheel = json!({
                    "bom-ref": "wheel",
                    "type": "library",
                    "name": package,
                    "version": version,
                    "purl": format!("pkg:pypi/{}@{version}", package.to_ascii_lowercase().replace('_', "-")),
                    "hashes": hashes(sha256),
                    "externalReferences": [{ "type": "distribution", "url": url }],
                    "description": format!("the wheel the plugin was extracted from ({library})"),
                });
                if let Some(l) = lic {
                    wheel["licenses"] = license(l);
                }
                components.push(wheel);
                plugin_deps.push("wheel".to_owned());
            }
        }

        for n in &self.needs {
            let bom_ref = format!("runtime:{}", n.name);
            let mut c = json!({
                "bom-ref": bom_ref,
                "type": "library",
                "name": n.name,
                "version": n.version,
                "scope": "required",
                "licenses": n.license,
                "description": "needed at run time, not in the archive",
            });
            if let Some(note) = &n.note {
                c["properties"] = json!([prop("pjrtpkgs:note", note.clone())]);
            }
            components.push(c);
            plugin_deps.push(bom_ref);
        }

        deps.insert("archive".to_owned(), archive_deps);
        deps.insert("plugin".to_owned(), plugin_deps);
        let dependencies: Vec<Value> = deps.into_iter().map(|(r, on)| json!({ "ref": r, "dependsOn": on })).collect();

        let mut tool = json!({ "type": "application", "name": "pjrtpkgs xtask", "group": "pjrtpkgs" });
        if let Some(c) = self.pjrtpkgs_commit {
            tool["version"] = c.into();
        }
        json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "serialNumber": format!("urn:uuid:{}", derived_uuid(&format!("{} {}", self.archive, self.archive_sha256))),
            "version": 1,
            "metadata": {
                "timestamp": super::version::rfc3339_utc(self.date),
                "tools": { "components": [tool] },
                "component": {
                    "bom-ref": "archive",
                    "type": "library",
                    "name": self.stem,
                    "version": self.version,
                    "description": format!("{} (pjrtpkgs release {}, {})", self.archive, self.tag, self.system),
                    "hashes": hashes(self.archive_sha256),
                    "properties": [prop("pjrtpkgs:release_tag", self.tag), prop("pjrtpkgs:system", self.system)],
                },
            },
            "components": components,
            "dependencies": dependencies,
        })
    }
}

/// The sha256 of each `(path, contents)`.
pub fn file_hashes<'a>(files: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<(String, String)> {
    files.map(|(p, c)| (p.to_owned(), sha256_hex(c))).collect()
}

/// The commits an XLA tree pins its vendored MLIR projects to
/// (`third_party/<p>/workspace.bzl`, `<P>_COMMIT = "..."`), those it has.
pub fn vendored_commits(repo: &git2::Repository, commit: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let tree = crate::xla_repo::commit_tree(repo, git2::Oid::from_str(commit)?)?;
    let mut out = Vec::new();
    for (project, path, var) in [
        ("LLVM", "third_party/llvm/workspace.bzl", "LLVM_COMMIT"),
        ("StableHLO", "third_party/stablehlo/workspace.bzl", "STABLEHLO_COMMIT"),
        ("Shardy", "third_party/shardy/workspace.bzl", "SHARDY_COMMIT"),
    ] {
        let Some(text) = crate::xla_repo::read_path(repo, &tree, path)? else { continue };
        let text = String::from_utf8_lossy(&text);
        let value = text.lines().find_map(|l| {
            let (name, rest) = l.split_once('=')?;
            (name.trim() == var).then(|| rest.trim().trim_matches('"').to_owned())
        });
        if let Some(v) = value.filter(|v| v.len() == 40 && v.bytes().all(|b| b.is_ascii_hexdigit())) {
            out.push((project, v));
        }
    }
    Ok(out)
}

/// The nixpkgs revision flake.lock pins (the root's `nixpkgs` input).
pub fn nixpkgs_revision(root: &std::path::Path) -> Option<String> {
    let lock: Value = serde_json::from_str(&std::fs::read_to_string(root.join("flake.lock")).ok()?).ok()?;
    let root_node = lock["root"].as_str()?;
    let node = lock["nodes"][root_node]["inputs"]["nixpkgs"].as_str()?;
    lock["nodes"][node]["locked"]["rev"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_and_licences() {
        let u = derived_uuid("x");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "5");
        assert!("89ab".contains(&u[19..20]));
        assert_eq!(u, derived_uuid("x"));
        assert_eq!(license("Apache-2.0"), json!([{ "license": { "id": "Apache-2.0" } }]));
        assert_eq!(license("Apache-2.0 WITH LLVM-exception"), json!([{ "expression": "Apache-2.0 WITH LLVM-exception" }]));
        assert_eq!(license("Proprietary"), json!([{ "license": { "name": "Proprietary" } }]));
        assert_eq!(file_name("pjrt-cpu-linux-x86_64-v0.81.1.tar.gz"), "pjrt-cpu-linux-x86_64-v0.81.1.cdx.json");
    }
}
