//! The PJRT headers an archive ships under `include/`, laid out as in XLA
//! (`include/xla/pjrt/c/pjrt_c_api.h`, so `-I include` and XLA's own
//! `#include "xla/pjrt/c/..."` lines work), and where they come from:
//!
//! 1. a source build: every public PJRT header of the commit it was built
//!    from (the pinned one), read from git;
//! 2. a binary plugin that shipped its own `pjrt_c_api.h` declaring the very
//!    version the plugin reports: those headers;
//! 3. else the headers of the newest commit of the XLA history (`--xla-ref`,
//!    default `main`) whose `pjrt_c_api.h` declares that version;
//! 4. else, for a plugin newer than that history knows, the headers of the
//!    newest older version of the same major: PJRT only appends to its
//!    structs, so code built against them runs on the plugin (it just does
//!    not see the newest members). version_info.json says so.

use std::path::Path;

use anyhow::{bail, Context, Result};
use git2::{Oid, Repository};
use serde_json::{json, Value};

use super::input::{Input, MAX_TEXT_BYTES};
use super::input_tree::Kind;
use crate::xla_headers::{parse_api_version, public_headers, ApiVersion, CORE_HEADER};

/// Header files for an archive (paths relative to `include/`) and the
/// `headers` object of version_info.json describing them.
pub struct HeaderSet {
    pub files: Vec<(String, Vec<u8>)>,
    pub info: Value,
}

/// Every public PJRT header of `commit`.
pub fn of_commit(repo: &Repository, commit: &str) -> Result<HeaderSet> {
    let oid = Oid::from_str(commit).with_context(|| format!("`{commit}` is not a commit id"))?;
    let headers = public_headers(repo, oid)?;
    let core = headers.iter().find(|h| h.path == CORE_HEADER).expect("public_headers returns the core header");
    let version = parse_api_version(&String::from_utf8_lossy(&core.contents))?;
    Ok(HeaderSet {
        files: headers.into_iter().map(|h| (h.path, h.contents)).collect(),
        info: json!({ "source": "xla", "xla_commit": commit, "pjrt_api_version": version.to_string() }),
    })
}

/// The `pjrt_c_api*.h` files of the input's directory `dir`, when its
/// `pjrt_c_api.h` declares `want`. Read without leaving the input (a header
/// that is a link out of it, a FIFO, a huge file: refused, by name).
pub fn own(input: &Input, dir: &Path, want: ApiVersion) -> Result<Option<HeaderSet>> {
    let core = input.dir.read(&dir.join("pjrt_c_api.h"), MAX_TEXT_BYTES, "a header")?;
    match parse_api_version(&String::from_utf8_lossy(&core)) {
        Ok(v) if v == want => {}
        _ => return Ok(None),
    }
    let mut files = Vec::new();
    for name in input.dir.list(dir)? {
        if !(name.starts_with("pjrt_c_api") && name.ends_with(".h")) {
            continue;
        }
        let rel = dir.join(&name);
        if input.dir.kind(&rel)? == Some(Kind::Dir) {
            continue;
        }
        files.push((format!("xla/pjrt/c/{name}"), input.dir.read(&rel, MAX_TEXT_BYTES, "a header")?));
    }
    files.sort();
    Ok(Some(HeaderSet { files, info: json!({ "source": "plugin", "pjrt_api_version": want.to_string() }) }))
}

/// The versions `pjrt_c_api.h` declared along an XLA history: for each
/// commit that touched it, newest first.
pub struct History {
    commits: Vec<(String, ApiVersion)>,
    tip: String,
    tip_id: Oid,
}

impl History {
    /// Reads the history of `pjrt_c_api.h` up to `tip` (a branch, tag or commit).
    pub fn read(repo: &Repository, tip: &str) -> Result<History> {
        let tip_id = crate::xla_repo::resolve_commit(repo, tip)?;
        let output = crate::tools::Tool::Git
            .command()?
            .arg("--git-dir")
            .arg(repo.path())
            .args(["log", "--format=%H"])
            .arg(tip_id.to_string())
            .args(["--", CORE_HEADER])
            .output()
            .context("cannot run git log")?;
        if !output.status.success() {
            bail!("git log of {CORE_HEADER} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        let mut commits = Vec::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let oid = Oid::from_str(line.trim())?;
            let tree = crate::xla_repo::commit_tree(repo, oid)?;
            let Some(header) = crate::xla_repo::read_path(repo, &tree, CORE_HEADER)? else { continue };
            if let Ok(v) = parse_api_version(&String::from_utf8_lossy(&header)) {
                commits.push((line.trim().to_owned(), v));
            }
        }
        Ok(History { commits, tip: tip.to_owned(), tip_id })
    }

    /// The newest commit whose headers are those of `commits[i]`: the tip
    /// when no newer commit touched `pjrt_c_api.h`, else the parent of the
    /// next newer commit that did (later commits may still have changed the
    /// extension headers within the same version).
    fn last_commit_declaring(&self, repo: &Repository, i: usize) -> Result<String> {
        let (touched, want) = &self.commits[i];
        let candidate = match i.checked_sub(1) {
            None => Some(self.tip_id),
            Some(newer) => repo.find_commit(Oid::from_str(&self.commits[newer].0)?)?.parent_id(0).ok(),
        };
        if let Some(candidate) = candidate {
            let tree = crate::xla_repo::commit_tree(repo, candidate)?;
            if let Some(header) = crate::xla_repo::read_path(repo, &tree, CORE_HEADER)? {
                if parse_api_version(&String::from_utf8_lossy(&header)).is_ok_and(|v| v == *want) {
                    return Ok(candidate.to_string());
                }
            }
        }
        Ok(touched.clone())
    }

    /// Headers for a plugin of version `want` (rules 3 and 4 of the module).
    pub fn headers_for(&self, repo: &Repository, want: ApiVersion) -> Result<HeaderSet> {
        if let Some(i) = self.commits.iter().position(|(_, v)| *v == want) {
            let commit = self.last_commit_declaring(repo, i)?;
            let mut set = of_commit(repo, &commit)?;
            set.info["note"] = format!(
                "the plugin does not record its XLA commit; these are the headers of the newest commit on {} declaring PJRT API {want}",
                self.tip
            )
            .into();
            return Ok(set);
        }
        let older = self.commits.iter().filter(|(_, v)| v.major == want.major && *v < want).max_by_key(|(_, v)| *v);
        let newest_known = self.commits.iter().map(|(_, v)| *v).max();
        match older {
            Some((commit, v)) if newest_known.is_some_and(|n| n < want) => {
                let mut set = of_commit(repo, commit)?;
                set.info["note"] = format!(
                    "the XLA history up to {} ends at PJRT API {v}, older than the plugin's {want}: these headers are the \
                     ABI-compatible subset (PJRT only appends), without what {want} added",
                    self.tip
                )
                .into();
                Ok(set)
            }
            _ => bail!(
                "no commit on {} declares PJRT API {want} in {CORE_HEADER} (the history holds {}): pass --xla-ref with a history that has it",
                self.tip,
                match (self.commits.iter().map(|(_, v)| *v).min(), newest_known) {
                    (Some(a), Some(b)) => format!("{a} to {b}"),
                    _ => "none".to_owned(),
                }
            ),
        }
    }
}
