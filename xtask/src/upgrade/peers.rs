//! The other verbs' engines, as `upgrade-xla` uses them: hashing, pins.toml
//! editing, header diffing, binding generation and Nix dependency hashes.
//! Kept in one place so the orchestration reads as the steps it runs.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use git2::{Oid, Repository};

/// The verdict of the PJRT header diff, worst first when sorted descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Unchanged,
    Compatible,
    Breaking,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Unchanged => "UNCHANGED",
            Verdict::Compatible => "COMPATIBLE",
            Verdict::Breaking => "BREAKING",
        }
    }
}

/// The PJRT header diff between the pinned and the target commit.
#[derive(Debug, Clone)]
pub struct HeaderDiff {
    pub verdict: Verdict,
    pub warnings: Vec<String>,
    pub markdown: String,
}

/// NAR hash (SRI) of the commit's tree, as `fetchFromGitHub` computes it.
pub fn source_hash(repo: &Repository, commit: Oid) -> Result<String> {
    let _ = (repo, commit);
    Err(anyhow!("hash engine not merged yet"))
}

/// `[xla]` of pins.toml, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlaPin {
    pub repository: String,
    pub commit: String,
    pub hash: String,
    pub date: String,
    pub pjrt_api_version: String,
    pub bazel_version: String,
}

pub fn load_xla_pin(pins_toml: &Path) -> Result<XlaPin> {
    let text = std::fs::read_to_string(pins_toml).with_context(|| format!("cannot read {}", pins_toml.display()))?;
    let table: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", pins_toml.display()))?;
    let xla = table.get("xla").and_then(|x| x.as_table()).context("pins.toml has no [xla] table")?;
    let field = |k: &str| -> Result<String> {
        xla.get(k).and_then(|v| v.as_str()).map(str::to_string).with_context(|| format!("pins.toml [xla] has no `{k}`"))
    };
    Ok(XlaPin {
        repository: field("repository")?,
        commit: field("commit")?,
        hash: field("hash")?,
        date: field("date")?,
        pjrt_api_version: field("pjrt_api_version")?,
        bazel_version: field("bazel_version")?,
    })
}

/// pins.toml with the new `[xla]`, optionally a new `[toolchains.bazel]
/// version`, and every Bazel dependency hash marked stale. Comments and
/// layout are kept.
pub fn updated_pins(text: &str, xla: &XlaPin, bazel_toolchain: Option<&str>) -> Result<String> {
    let _ = (text, xla, bazel_toolchain);
    Err(anyhow!("pins editor not merged yet"))
}

/// pins.toml with one Bazel dependency hash filled in.
pub fn with_deps_hash(text: &str, backend: &str, system: &str, hash: &str, xla_commit: &str) -> Result<String> {
    let _ = (text, backend, system, hash, xla_commit);
    Err(anyhow!("pins editor not merged yet"))
}

/// `(backend, system)` of every `[bazel_deps.<backend>.<system>]` in pins.toml.
pub fn bazel_deps_entries(text: &str) -> Result<Vec<(String, String)>> {
    let table: toml::Table = text.parse().context("pins.toml is not valid TOML")?;
    let mut out = Vec::new();
    if let Some(deps) = table.get("bazel_deps").and_then(|d| d.as_table()) {
        for (backend, systems) in deps {
            for (system, _) in systems.as_table().into_iter().flatten() {
                out.push((backend.clone(), system.clone()));
            }
        }
    }
    Ok(out)
}

pub fn header_diff(repo: &Repository, old: Oid, new: Oid) -> Result<HeaderDiff> {
    let _ = (repo, old, new);
    Err(anyhow!("diff-headers engine not merged yet"))
}

/// The generated binding files for `commit`: (path relative to the project
/// root, contents). Nothing is written.
pub fn generate_bindings(root: &Path, repo: &Repository, commit: Oid) -> Result<Vec<(PathBuf, String)>> {
    let generated = crate::bindgen::generate(repo, commit, &generator_name(root)?)?;
    Ok(vec![(PathBuf::from(crate::bindgen::BINDINGS_PATH), generated.source)])
}

/// The binding files `generate_bindings` writes, for the early
/// uncommitted-edits check.
pub fn binding_paths() -> Vec<PathBuf> {
    vec![PathBuf::from(crate::bindgen::BINDINGS_PATH)]
}

/// "bindgen X.Y.Z" as the project's Cargo.lock pins it (what `cargo xtask
/// bindgen` names in the preamble, so both produce identical files).
fn generator_name(root: &Path) -> Result<String> {
    let lock = root.join("Cargo.lock");
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

/// The Bazel dependency hash Nix reports for `backend` on `system`, built
/// from the project at `root`.
pub fn refresh_deps_hash(root: &Path, backend: &str, system: &str) -> Result<String> {
    let _ = (root, backend, system);
    Err(anyhow!("deps-hash engine not merged yet"))
}
