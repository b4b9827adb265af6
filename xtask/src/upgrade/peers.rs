//! The other verbs' engines, as `upgrade-xla` uses them: hashing, pins.toml
//! editing, header diffing and binding generation.
//! Kept in one place so the orchestration reads as the steps it runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use git2::{Oid, Repository};

pub use crate::header_diff::{AbiVerdict, Verdict};

/// The verdict word as the report shouts it.
pub fn verdict_word(v: Verdict) -> String {
    v.as_str().to_ascii_uppercase()
}

/// The PJRT header diff between the pinned and the target commit.
#[derive(Debug, Clone)]
pub struct HeaderDiff {
    pub verdict: Verdict,
    /// Whether code built against the old headers still runs against the
    /// new ones: a Breaking verdict made only of renames keeps the ABI.
    pub abi: AbiVerdict,
    pub warnings: Vec<String>,
    /// The C API headers' diff.
    pub markdown: String,
    /// The protobuf schemas' diff (compile_options.proto, xla.proto, ...).
    pub protos: Option<crate::header_diff::proto::ProtoReport>,
}

/// NAR hash (SRI) of the commit's tree, as `fetchFromGitHub` computes it.
pub fn source_hash(repo: &Repository, commit: Oid) -> Result<String> {
    Ok(crate::hashing::git::hash_commit(repo, commit)?.to_sri())
}

pub use crate::pinfile::XlaPin;

/// pins.toml with the new `[xla]`, optionally a new `[toolchains.bazel]
/// version` (same major: the attribute stays), and every Bazel dependency
/// hash marked stale. Comments and layout are kept; the result is validated.
pub fn updated_pins(text: &str, xla: &XlaPin, bazel_toolchain: Option<&str>) -> Result<String> {
    let mut doc = crate::pinfile::PinsDocument::parse(text)?;
    doc.reset_release_build_for(&xla.pjrt_api_version);
    doc.set_xla(xla);
    if let Some(v) = bazel_toolchain {
        doc.set_bazel_version(v);
    }
    doc.mark_bazel_deps_stale();
    let mut out = doc.to_string();
    // The TOML editor writes LF: a CRLF pins.toml stays CRLF, so that only
    // the changed values show in the diff.
    if text.contains("\r\n") && !out.contains("\r\n") {
        out = out.replace('\n', "\r\n");
    }
    crate::pinfile::Pins::parse(&out, "pins.toml (as upgraded)").context("the upgraded pins.toml would be invalid")?;
    Ok(out)
}

pub fn header_diff(repo: &Repository, old: Oid, new: Oid) -> Result<HeaderDiff> {
    let report = crate::header_diff::diff_commits(repo, old, new)?;
    Ok(HeaderDiff {
        verdict: report.verdict(),
        abi: report.abi_verdict(),
        warnings: report.warnings().to_vec(),
        markdown: report.headers_markdown(),
        protos: report.protos,
    })
}

/// The generated binding files for `commit`: (path relative to the project
/// root, contents). Nothing is written.
pub fn generate_bindings(root: &Path, repo: &Repository, commit: Oid) -> Result<Vec<(PathBuf, String)>> {
    let generated = crate::bindings::generate(repo, commit, &crate::bindings::generator_name(root)?)?;
    Ok(vec![(PathBuf::from(crate::bindings::BINDINGS_PATH), generated.source)])
}

/// The binding files `generate_bindings` writes, for the early
/// uncommitted-edits check.
pub fn binding_paths() -> Vec<PathBuf> {
    vec![PathBuf::from(crate::bindings::BINDINGS_PATH)]
}
