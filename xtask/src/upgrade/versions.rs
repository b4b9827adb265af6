//! The versions an XLA commit pins for its PJRT builds, read straight from
//! git objects: the PJRT API version (`pjrt_c_api.h`), `.bazelversion`, and
//! the hermetic CUDA / cuDNN / NCCL / NVSHMEM versions, compute capabilities
//! and ROCm distribution its bazelrc configs select.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use git2::{Oid, Repository};

use super::bazelrc::BazelRc;
use crate::xla_headers::CORE_HEADER;
pub use crate::xla_headers::{parse_api_version, ApiVersion};

/// What XLA's `pjrt_cudaNN` config pins. A field is `None` when the config
/// does not set it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CudaConfig {
    pub cuda_version: Option<String>,
    pub cudnn_version: Option<String>,
    pub nccl_version: Option<String>,
    pub nvshmem_version: Option<String>,
    pub compute_capabilities: Option<Vec<String>>,
    /// Every `HERMETIC_*` variable the config sets, the ones above included:
    /// a setting pins.toml has no field for shows up here.
    pub hermetic: BTreeMap<String, String>,
}

/// The `HERMETIC_*` settings pins.toml's `[cudaNN]` records, by the field
/// that records each (nix/lib.nix passes them back to Bazel).
pub const RECORDED_CUDA_SETTINGS: &[(&str, &str)] = &[
    ("HERMETIC_CUDA_VERSION", "cuda_version"),
    ("HERMETIC_CUDNN_VERSION", "cudnn_version"),
    ("HERMETIC_NCCL_VERSION", "nccl_version"),
    ("HERMETIC_NVSHMEM_VERSION", "nvshmem_version"),
    ("HERMETIC_CUDA_COMPUTE_CAPABILITIES", "compute_capabilities"),
];

/// Everything version-like an XLA commit says about its PJRT builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlaVersions {
    pub pjrt_api: ApiVersion,
    /// `.bazelversion`, `None` when the file is absent.
    pub bazel: Option<String>,
    /// Per PJRT CUDA config (`cuda12` -> `pjrt_cuda12`); `None` when XLA
    /// defines no such config at this commit.
    pub cuda: BTreeMap<String, Option<CudaConfig>>,
    /// ROCM_DISTRO_VERSION of the hermetic ROCm config, and that config's name.
    pub rocm_distro: Option<(String, String)>,
    /// The rules_ml_toolchain commit XLA's WORKSPACE (or a workspace*.bzl)
    /// downloads; `None` before XLA used rules_ml_toolchain.
    pub rules_ml_toolchain: Option<String>,
}

/// Files that may declare XLA's rules_ml_toolchain archive, in load order.
pub const RULES_ML_TOOLCHAIN_FILES: &[&str] =
    &["WORKSPACE", "workspace4.bzl", "workspace3.bzl", "workspace2.bzl", "workspace1.bzl", "workspace0.bzl"];

/// The rules_ml_toolchain commit a Starlark file downloads
/// (`.../rules_ml_toolchain/archive/<40 hex>.tar.gz`), if any.
pub fn rules_ml_toolchain_commit(text: &str) -> Option<String> {
    let marker = "rules_ml_toolchain/archive/";
    text.match_indices(marker).find_map(|(at, _)| {
        let rest = &text[at + marker.len()..];
        let commit = rest.get(..40)?;
        (commit.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) && rest[40..].starts_with(".tar.gz"))
            .then(|| commit.to_string())
    })
}

/// The CUDA flavours pjrtpkgs builds: pins.toml section = `pjrt_<section>` config.
pub const CUDA_SECTIONS: &[&str] = &["cuda12", "cuda13"];

/// Configs that select hermetic ROCm, most specific first.
const ROCM_CONFIGS: &[&str] = &["rocm_ci_hermetic", "rocm_hermetic", "pjrt_rocm7", "rocm_ci", "rocm"];

pub fn read(repo: &Repository, commit: Oid) -> Result<XlaVersions> {
    let tree = crate::xla_repo::commit_tree(repo, commit)?;
    // Absent or unreadable files count as absent, as BazelRc expects.
    let mut read_file = |path: &str| -> Option<String> {
        let bytes = crate::xla_repo::read_path(repo, &tree, path).ok()??;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    let header = read_file(CORE_HEADER)
        .with_context(|| format!("commit {commit} has no {CORE_HEADER}: it is not an XLA commit with the PJRT C API"))?;
    let pjrt_api = parse_api_version(&header).with_context(|| format!("in {CORE_HEADER} at {commit}"))?;
    let bazel = read_file(".bazelversion").and_then(|t| parse_bazelversion(&t));
    let rc = BazelRc::load(".bazelrc", &["tensorflow.bazelrc"], &mut read_file)
        .with_context(|| format!("cannot read the bazelrc files of commit {commit}"))?;
    let rules_ml_toolchain = RULES_ML_TOOLCHAIN_FILES.iter().find_map(|f| read_file(f).and_then(|t| rules_ml_toolchain_commit(&t)));
    from_bazelrc(&rc).map(|(cuda, rocm_distro)| XlaVersions { pjrt_api, bazel, cuda, rocm_distro, rules_ml_toolchain })
}

type RcVersions = (BTreeMap<String, Option<CudaConfig>>, Option<(String, String)>);

fn from_bazelrc(rc: &BazelRc) -> Result<RcVersions> {
    let mut cuda = BTreeMap::new();
    for section in CUDA_SECTIONS {
        let config = format!("pjrt_{section}");
        let found = if rc.has_config(&config) {
            let env = rc.repo_env(&config)?;
            Some(CudaConfig {
                cuda_version: env.get("HERMETIC_CUDA_VERSION").cloned(),
                cudnn_version: env.get("HERMETIC_CUDNN_VERSION").cloned(),
                nccl_version: env.get("HERMETIC_NCCL_VERSION").cloned(),
                nvshmem_version: env.get("HERMETIC_NVSHMEM_VERSION").cloned(),
                compute_capabilities: env
                    .get("HERMETIC_CUDA_COMPUTE_CAPABILITIES")
                    .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()),
                hermetic: env.iter().filter(|(k, _)| k.starts_with("HERMETIC_")).map(|(k, v)| (k.clone(), v.clone())).collect(),
            })
        } else {
            None
        };
        cuda.insert(section.to_string(), found);
    }
    let mut rocm = None;
    for config in ROCM_CONFIGS.iter().map(|c| c.to_string()).chain(rc.configs()) {
        if rc.has_config(&config) {
            if let Some(v) = rc.repo_env(&config)?.get("ROCM_DISTRO_VERSION") {
                rocm = Some((v.clone(), config));
                break;
            }
        }
    }
    Ok((cuda, rocm))
}

/// The first line of `.bazelversion` that is not blank or a `#` comment.
pub fn parse_bazelversion(text: &str) -> Option<String> {
    text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).map(|l| l.split_whitespace().next().unwrap_or(l).to_string())
}

/// The sections of XLA's `xla/pjrt/c/CHANGELOG.md` for the versions in
/// `(old, new]`, newest first, as written there (heading included).
pub fn changelog_sections(changelog: &str, old: ApiVersion, new: ApiVersion) -> Vec<(ApiVersion, String)> {
    let mut sections: Vec<(ApiVersion, String)> = Vec::new();
    let mut current: Option<(ApiVersion, String)> = None;
    for line in changelog.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            if let Some(done) = current.take() {
                sections.push(done);
            }
            let version = heading.split_whitespace().next().and_then(|v| v.parse::<ApiVersion>().ok());
            if let Some(v) = version {
                current = Some((v, String::new()));
            }
        }
        if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    sections.extend(current);
    let mut crossed: Vec<_> =
        sections.into_iter().filter(|(v, _)| *v > old && *v <= new).map(|(v, t)| (v, t.trim_end().to_string())).collect();
    crossed.sort_by_key(|s| std::cmp::Reverse(s.0));
    crossed.dedup_by(|a, b| a.0 == b.0);
    crossed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_ml_toolchain_from_workspace() {
        let ws = "tf_http_archive(\n    name = \"rules_ml_toolchain\",\n    strip_prefix = \"rules_ml_toolchain-de6fc6c38ea0368a198daa3f8c7cb829cc8db185\",\n    urls = tf_mirror_urls(\n        \"https://github.com/google-ml-infra/rules_ml_toolchain/archive/de6fc6c38ea0368a198daa3f8c7cb829cc8db185.tar.gz\",\n    ),\n)\n";
        assert_eq!(rules_ml_toolchain_commit(ws).as_deref(), Some("de6fc6c38ea0368a198daa3f8c7cb829cc8db185"));
        assert_eq!(rules_ml_toolchain_commit("rules_ml_toolchain/archive/v1.0.tar.gz"), None);
        assert_eq!(rules_ml_toolchain_commit("rules_ml_toolchain/archive/de6fc6c3"), None);
    }

    #[test]
    fn api_version_and_bazelversion() {
        assert_eq!(parse_bazelversion("6.5.0\n# NOTE: Update\n").as_deref(), Some("6.5.0"));
        assert_eq!(parse_bazelversion("# c\n\n7.7.0\n").as_deref(), Some("7.7.0"));
        assert!("0.9".parse::<ApiVersion>().unwrap() < "0.10".parse::<ApiVersion>().unwrap());
    }

    #[test]
    fn changelog_sections_of_crossed_versions() {
        let log = "# PJRT C API changelog\n\n## 0.50\n* Added a.\n\n## 0.49 (Apr 19, 2024)\n* Added b.\n  more b\n\n## 0.48\n* c\n";
        let old = ApiVersion { major: 0, minor: 48 };
        let new = ApiVersion { major: 0, minor: 50 };
        let s = changelog_sections(log, old, new);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].1, "## 0.50\n* Added a.");
        assert_eq!(s[1].1, "## 0.49 (Apr 19, 2024)\n* Added b.\n  more b");
    }
}
