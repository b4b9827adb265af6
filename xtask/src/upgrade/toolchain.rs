//! The MLIR toolchain an XLA commit builds with, read from its tree: the
//! LLVM commit (`third_party/llvm/workspace.bzl`), the StableHLO commit
//! (`third_party/stablehlo/workspace.bzl`) and the StableHLO version its
//! plugins accept, and the Shardy commit (`third_party/shardy/workspace.bzl`,
//! since July 2024). Compared between two commits, a move of any of them is
//! a decision for whoever maintains MLIR bindings.
//!
//! What XLA's tree records about the StableHLO *version*: only the commit it
//! downloads. The version plugins report (`stablehlo_current_version` and
//! `stablehlo_minimum_version` of `PJRT_Plugin_Attributes`, from
//! `mlir::vhlo::Version::getCurrentVersion()` / `getMinimumVersion()`) lives
//! in StableHLO's own `stablehlo/dialect/Version.h`. XLA's tree carries it
//! only when its `third_party/stablehlo/temporary.patch` touches that file
//! (a hunk's new side then holds the version the plugins are built with).
//! Otherwise it is read from a StableHLO clone when one is given
//! (`--stablehlo-repo` / `STABLEHLO_REPO`), and is reported as unknown when
//! none is.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use git2::{Oid, Repository};

pub const LLVM_WORKSPACE: &str = "third_party/llvm/workspace.bzl";
pub const STABLEHLO_WORKSPACE: &str = "third_party/stablehlo/workspace.bzl";
pub const STABLEHLO_PATCH: &str = "third_party/stablehlo/temporary.patch";
pub const SHARDY_WORKSPACE: &str = "third_party/shardy/workspace.bzl";
/// Where StableHLO declares its version, relative to its repository root.
pub const STABLEHLO_VERSION_H: &str = "stablehlo/dialect/Version.h";

/// Ranges longer than this are not walked to count XLA's integrates (the
/// report then gives only the compare link): it keeps a years-long jump fast.
const MAX_WALK: usize = 50_000;

/// One vendored project XLA pins by commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Project {
    Llvm,
    Stablehlo,
    Shardy,
}

impl Project {
    pub const ALL: [Project; 3] = [Project::Llvm, Project::Stablehlo, Project::Shardy];

    pub fn name(self) -> &'static str {
        match self {
            Project::Llvm => "LLVM",
            Project::Stablehlo => "StableHLO",
            Project::Shardy => "Shardy",
        }
    }

    /// The `workspace.bzl` that pins it, and the variable holding the commit.
    fn workspace(self) -> (&'static str, &'static str) {
        match self {
            Project::Llvm => (LLVM_WORKSPACE, "LLVM_COMMIT"),
            Project::Stablehlo => (STABLEHLO_WORKSPACE, "STABLEHLO_COMMIT"),
            Project::Shardy => (SHARDY_WORKSPACE, "SHARDY_COMMIT"),
        }
    }

    /// The upstream GitHub repository (for compare links).
    pub fn github(self) -> &'static str {
        match self {
            Project::Llvm => "https://github.com/llvm/llvm-project",
            Project::Stablehlo => "https://github.com/openxla/stablehlo",
            Project::Shardy => "https://github.com/openxla/shardy",
        }
    }
}

/// A StableHLO (VHLO) version, `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StablehloVersion(pub u32, pub u32, pub u32);

impl fmt::Display for StablehloVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Where a StableHLO version was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSource {
    /// A hunk of XLA's `third_party/stablehlo/temporary.patch` on Version.h.
    XlaPatch,
    /// `stablehlo/dialect/Version.h` at the pinned commit of a StableHLO
    /// clone (which one is not recorded: the report is the same on every
    /// machine).
    StablehloRepo,
}

/// The StableHLO versions plugins built from a commit accept: portable
/// artifacts from `minimum` up to `current`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    Known {
        current: StablehloVersion,
        minimum: Option<StablehloVersion>,
        source: VersionSource,
    },
    /// Why it cannot be told (what to do is part of the text).
    Unknown(String),
}

impl Accepted {
    pub fn current(&self) -> Option<StablehloVersion> {
        match self {
            Accepted::Known { current, .. } => Some(*current),
            Accepted::Unknown(_) => None,
        }
    }
}

/// The toolchain of one XLA commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// Commit per project; `None` when XLA does not vendor it at that commit
    /// (Shardy before July 2024) or its workspace.bzl names no commit.
    pub commits: Vec<(Project, Option<String>)>,
    pub stablehlo_version: Accepted,
}

impl Toolchain {
    pub fn commit(&self, p: Project) -> Option<&str> {
        self.commits.iter().find(|(q, _)| *q == p).and_then(|(_, c)| c.as_deref())
    }
}

/// A clone of openxla/stablehlo to read Version.h from (optional).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StablehloRepoArg {
    /// StableHLO repository (work tree or bare clone of openxla/stablehlo)
    /// to read the StableHLO version plugins accept, when XLA's own tree
    /// does not record it.
    #[arg(long = "stablehlo-repo", env = "STABLEHLO_REPO", value_name = "DIR")]
    pub stablehlo_repo: Option<std::path::PathBuf>,
}

/// Reads the toolchain of `commit`. `stablehlo` is an opened StableHLO clone.
pub fn read(repo: &Repository, commit: Oid, stablehlo: Option<&Repository>) -> Result<Toolchain> {
    let tree = crate::xla_repo::commit_tree(repo, commit)?;
    let read = |path: &str| -> Result<Option<String>> {
        Ok(crate::xla_repo::read_path(repo, &tree, path)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
    };
    let mut commits = Vec::new();
    for p in Project::ALL {
        let (path, var) = p.workspace();
        let pinned = read(path)?.and_then(|text| bzl_string(&text, var)).filter(|c| is_commit_id(c));
        commits.push((p, pinned));
    }
    let stablehlo_commit = commits[1].1.clone();
    let patch = read(STABLEHLO_PATCH)?;
    let stablehlo_version = accepted(stablehlo_commit.as_deref(), patch.as_deref(), stablehlo);
    Ok(Toolchain { commits, stablehlo_version })
}

/// The versions plugins accept: the patched Version.h when XLA's patch
/// carries it, else Version.h of the pinned commit in the StableHLO clone.
fn accepted(commit: Option<&str>, patch: Option<&str>, stablehlo: Option<&Repository>) -> Accepted {
    let Some(commit) = commit else {
        return Accepted::Unknown(format!("XLA's {STABLEHLO_WORKSPACE} names no StableHLO commit"));
    };
    if let Some(new_side) = patch.and_then(|p| patched_file(p, STABLEHLO_VERSION_H)) {
        if let Some(current) = declared_version(&new_side, "getCurrentVersion") {
            return Accepted::Known { current, minimum: declared_version(&new_side, "getMinimumVersion"), source: VersionSource::XlaPatch };
        }
    }
    let Some(sh) = stablehlo else {
        return Accepted::Unknown(format!(
            "not recorded in XLA's tree (its {STABLEHLO_PATCH} does not touch {STABLEHLO_VERSION_H}); \
             pass --stablehlo-repo DIR or set STABLEHLO_REPO to a clone of openxla/stablehlo to read it"
        ));
    };
    let from_repo = || -> Result<Option<(StablehloVersion, Option<StablehloVersion>)>> {
        let oid = resolve(sh, commit)?;
        let tree = crate::xla_repo::commit_tree(sh, oid)?;
        let Some(bytes) = crate::xla_repo::read_path(sh, &tree, STABLEHLO_VERSION_H)? else { return Ok(None) };
        let text = String::from_utf8_lossy(&bytes);
        Ok(declared_version(&text, "getCurrentVersion").map(|c| (c, declared_version(&text, "getMinimumVersion"))))
    };
    match from_repo() {
        Ok(Some((current, minimum))) => Accepted::Known { current, minimum, source: VersionSource::StablehloRepo },
        Ok(None) => Accepted::Unknown(format!("{STABLEHLO_VERSION_H} at StableHLO {commit} declares no getCurrentVersion()")),
        Err(e) => Accepted::Unknown(format!("cannot read {STABLEHLO_VERSION_H} at StableHLO {commit}: {e:#}")),
    }
}

fn resolve(repo: &Repository, commit: &str) -> Result<Oid> {
    repo.revparse_single(commit)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .with_context(|| format!("StableHLO commit {commit} is not in {} (fetch it there)", repo.path().display()))
}

/// The string assigned to `var` in a Starlark file (`VAR = "value"`).
pub fn bzl_string(text: &str, var: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix(var)?.trim_start().strip_prefix('=')?.trim();
        let inner = rest.strip_prefix('"')?;
        Some(inner[..inner.find('"')?].to_string())
    })
}

fn is_commit_id(s: &str) -> bool {
    (7..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The new side (context and added lines) of the hunks a unified diff
/// `patch` applies to `file` (a path that ends with it), `None` when the
/// patch does not touch it.
pub fn patched_file(patch: &str, file: &str) -> Option<String> {
    let mut out = String::new();
    let mut inside = false;
    let mut found = false;
    for line in patch.lines() {
        if line.starts_with("diff ") {
            inside = line.split_whitespace().any(|w| w.ends_with(&format!("/{file}")));
            found |= inside;
            continue;
        }
        if !inside || line.starts_with("+++") || line.starts_with("---") || line.starts_with("@@") {
            continue;
        }
        if let Some(l) = line.strip_prefix('+').or_else(|| line.strip_prefix(' ')) {
            out.push_str(l);
            out.push('\n');
        }
    }
    found.then_some(out)
}

/// The `Version(MAJOR, MINOR, PATCH)` returned by `function` in Version.h
/// text, comments such as `/*major=*/` allowed.
pub fn declared_version(text: &str, function: &str) -> Option<StablehloVersion> {
    let name = format!("{function}()");
    let rest = &text[text.find(&name)? + name.len()..];
    let open = rest.find("Version(")? + "Version(".len();
    // The body of the function must not end before the constructor.
    if rest[..open].contains('}') {
        return None;
    }
    let args = &rest[open..open + rest[open..].find(')')?];
    let mut clean = String::new();
    let mut chars = args.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '/' && chars.peek() == Some(&'*') {
            chars.next();
            let mut prev = ' ';
            for d in chars.by_ref() {
                if prev == '*' && d == '/' {
                    break;
                }
                prev = d;
            }
        } else {
            clean.push(c);
        }
    }
    let parts: Vec<u32> = clean.split(',').map(|p| p.trim().parse().ok()).collect::<Option<_>>()?;
    match parts[..] {
        [a, b, c] => Some(StablehloVersion(a, b, c)),
        _ => None,
    }
}

/// One project's move between two XLA commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub project: Project,
    pub old: Option<String>,
    pub new: Option<String>,
    /// How many XLA commits in the range changed its workspace.bzl (its
    /// integrates), when the history between the commits is available.
    pub xla_integrates: Option<usize>,
    /// Commits of the StableHLO clone in `old..new`, when one is given.
    pub upstream_commits: Option<usize>,
}

impl Move {
    /// `https://github.com/llvm/llvm-project/compare/OLD...NEW`.
    pub fn compare_url(&self) -> Option<String> {
        Some(format!("{}/compare/{}...{}", self.project.github(), self.old.as_deref()?, self.new.as_deref()?))
    }
}

/// The toolchain of both commits and what moved.
#[derive(Debug, Clone)]
pub struct Moves {
    pub old: Toolchain,
    pub new: Toolchain,
    /// Only the projects whose commit changed (appeared, or went away).
    pub moved: Vec<Move>,
    /// Why integrates could not be counted (shallow clone, very long range).
    pub history_note: Option<String>,
}

impl Moves {
    pub fn stablehlo_version_changed(&self) -> bool {
        self.old.stablehlo_version.current() != self.new.stablehlo_version.current() && self.new.stablehlo_version.current().is_some()
    }

    /// The decisions for MLIR bindings: one line per move, and one for a new
    /// StableHLO version. `(title, message)`.
    pub fn decisions(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for m in &self.moved {
            let (o, n) = (short_or(&m.old, "not vendored"), short_or(&m.new, "not vendored"));
            let crossed = crossed_text(m);
            let consequence = match m.project {
                Project::Llvm => "MLIR bindings (MLIR C API, Python or other language bindings) built against the old LLVM must move to this commit: rebuild them and check for MLIR API changes",
                Project::Stablehlo => "StableHLO/VHLO bindings and anything that serializes StableHLO for these plugins must move to this commit",
                Project::Shardy => "bindings that emit Shardy (`sdy`) sharding annotations must move to this commit",
            };
            out.push((format!("{} commit", m.project.name()), format!("`{o}` → `{n}`{crossed}: {consequence}.")));
        }
        if self.stablehlo_version_changed() {
            let old = version_text(&self.old.stablehlo_version);
            let new = version_text(&self.new.stablehlo_version);
            out.push((
                "StableHLO version".to_string(),
                format!(
                    "{old} → {new}: plugins built from the new commit accept portable artifacts up to {new}; producers that target a \
                     fixed StableHLO version should check theirs (`stablehlo_current_version` / `stablehlo_minimum_version` plugin attributes)."
                ),
            ));
        }
        out
    }
}

fn short_or<'a>(c: &'a Option<String>, none: &'a str) -> &'a str {
    c.as_deref().map(|c| &c[..c.len().min(12)]).unwrap_or(none)
}

fn crossed_text(m: &Move) -> String {
    let mut parts = Vec::new();
    if let Some(n) = m.xla_integrates {
        parts.push(format!("{n} XLA commit{} changed it", if n == 1 { "" } else { "s" }));
    }
    if let Some(n) = m.upstream_commits {
        parts.push(format!("{n} {} commit{}", m.project.name(), if n == 1 { "" } else { "s" }));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// `0.19.8` (with the minimum when known), or `unknown`.
pub fn version_text(a: &Accepted) -> String {
    match a {
        Accepted::Known { current, .. } => current.to_string(),
        Accepted::Unknown(_) => "unknown".to_string(),
    }
}

/// Compares the toolchains of `old` and `new` (in history order: for a
/// downgrade, `old` is the later commit).
pub fn moves(repo: &Repository, old: Oid, new: Oid, stablehlo: Option<&Repository>) -> Result<Moves> {
    let old_t = read(repo, old, stablehlo)?;
    let new_t = read(repo, new, stablehlo)?;
    let changed: Vec<Project> = Project::ALL.into_iter().filter(|p| old_t.commit(*p) != new_t.commit(*p)).collect();
    let (counts, history_note) = if changed.is_empty() {
        (HashMap::new(), None)
    } else {
        match integrates(repo, old, new, &changed) {
            Ok(c) => (c, None),
            Err(e) => (HashMap::new(), Some(format!("{e:#}"))),
        }
    };
    let moved = changed
        .into_iter()
        .map(|p| {
            let (o, n) = (old_t.commit(p).map(str::to_string), new_t.commit(p).map(str::to_string));
            let upstream_commits = match (p, stablehlo, &o, &n) {
                (Project::Stablehlo, Some(sh), Some(o), Some(n)) => commits_between(sh, o, n).ok(),
                _ => None,
            };
            Move { project: p, old: o, new: n, xla_integrates: counts.get(&p).copied(), upstream_commits }
        })
        .collect();
    Ok(Moves { old: old_t, new: new_t, moved, history_note })
}

/// Commits in `old..new` of a StableHLO clone (or `new..old`, backwards).
fn commits_between(repo: &Repository, old: &str, new: &str) -> Result<usize> {
    let (o, n) = (resolve(repo, old)?, resolve(repo, new)?);
    let (from, to) = if repo.graph_descendant_of(o, n)? { (n, o) } else { (o, n) };
    let (ahead, _) = repo.graph_ahead_behind(to, from)?;
    Ok(ahead)
}

/// For each project, how many commits between `old` and `new` (either
/// order) changed its workspace.bzl: the integrates XLA made in between.
fn integrates(repo: &Repository, old: Oid, new: Oid, projects: &[Project]) -> Result<HashMap<Project, usize>> {
    if repo.is_shallow() {
        // The walk would stop at the shallow boundary and undercount.
        anyhow::bail!("{} is a shallow clone: the history between the commits is not there to count", repo.path().display());
    }
    let (from, to) = if repo.graph_descendant_of(old, new).unwrap_or(false) { (new, old) } else { (old, new) };
    let mut walk = repo.revwalk()?;
    walk.push(to)?;
    walk.hide(from).context("the history between the two commits is not in the XLA repository (a shallow clone?)")?;
    let mut counts: HashMap<Project, usize> = HashMap::new();
    let third_party = Path::new("third_party");
    let entry_of = |tree: &git2::Tree, path: &str| tree.get_path(Path::new(path)).ok().map(|e| e.id());
    for (seen, id) in walk.enumerate() {
        if seen >= MAX_WALK {
            anyhow::bail!("more than {MAX_WALK} commits between them: not counted");
        }
        let commit = repo
            .find_commit(id.context("walking the history between the two commits failed (a shallow clone?)")?)
            .context("the history between the two commits is incomplete (a shallow clone?)")?;
        let tree = commit.tree()?;
        let parent_tree = match commit.parent(0) {
            Ok(p) => p.tree()?,
            Err(_) => continue,
        };
        // Most commits leave third_party/ alone: compare that subtree first.
        if tree.get_path(third_party).ok().map(|e| e.id()) == parent_tree.get_path(third_party).ok().map(|e| e.id()) {
            continue;
        }
        for p in projects {
            let (path, _) = p.workspace();
            if entry_of(&tree, path) != entry_of(&parent_tree, path) {
                *counts.entry(*p).or_default() += 1;
            }
        }
    }
    for p in projects {
        counts.entry(*p).or_default();
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_commit() {
        let text = "def repo(name):\n    LLVM_COMMIT = \"80aa52d8c5a8a1c26b4114c60c2159c743d236d8\"\n    LLVM_SHA256 = \"b9\"\n";
        assert_eq!(bzl_string(text, "LLVM_COMMIT").as_deref(), Some("80aa52d8c5a8a1c26b4114c60c2159c743d236d8"));
        assert_eq!(bzl_string(text, "SHARDY_COMMIT"), None);
        assert!(!is_commit_id("$(rm -rf /)") && is_commit_id("80aa52d8c5a8"));
    }

    #[test]
    fn versions_from_header_and_patch() {
        let one_line = "  static Version getCurrentVersion() { return Version(0, 19, 4); }\n  static Version getMinimumVersion() { return Version(0, 9, 0); }\n";
        assert_eq!(declared_version(one_line, "getCurrentVersion"), Some(StablehloVersion(0, 19, 4)));
        assert_eq!(declared_version(one_line, "getMinimumVersion"), Some(StablehloVersion(0, 9, 0)));
        let commented = "static Version getCurrentVersion() {\n    return Version(/*major=*/0, /*minor=*/18, /*patch=*/0);\n  }";
        assert_eq!(declared_version(commented, "getCurrentVersion"), Some(StablehloVersion(0, 18, 0)));
        assert_eq!(declared_version("getCurrentVersion() { return x; }\nVersion(1, 2, 3)", "getCurrentVersion"), None);

        // As XLA's temporary.patch writes it (the 2025-06-12 bump).
        let patch = "diff --ruN a/stablehlo/BUILD.bazel b/stablehlo/BUILD.bazel\n--- stablehlo/BUILD.bazel\n+++ stablehlo/BUILD.bazel\n@@ -1 +1 @@\n-getCurrentVersion() { return Version(9, 9, 9); }\n\
diff --ruN a/stablehlo/stablehlo/dialect/Version.h b/stablehlo/stablehlo/dialect/Version.h\n--- stablehlo/stablehlo/dialect/Version.h\n+++ stablehlo/stablehlo/dialect/Version.h\n@@ -38,7 +38,7 @@\n   /// current\n-  static Version getCurrentVersion() { return Version(1, 10, 10); }\n+  static Version getCurrentVersion() { return Version(1, 11, 0); }\n \n   static Version getMinimumVersion() { return Version(0, 9, 0); }\n";
        let new_side = patched_file(patch, STABLEHLO_VERSION_H).unwrap();
        assert_eq!(declared_version(&new_side, "getCurrentVersion"), Some(StablehloVersion(1, 11, 0)));
        assert_eq!(declared_version(&new_side, "getMinimumVersion"), Some(StablehloVersion(0, 9, 0)));
        assert_eq!(patched_file(patch, "stablehlo/dialect/Version.cpp"), None);
        match accepted(Some("ba4ab03e"), Some(patch), None) {
            Accepted::Known { current, source, .. } => assert_eq!((current, source), (StablehloVersion(1, 11, 0), VersionSource::XlaPatch)),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(accepted(Some("ba4ab03e"), Some("diff --ruN a/x b/x\n"), None), Accepted::Unknown(m) if m.contains("STABLEHLO_REPO"))
        );
    }
}
