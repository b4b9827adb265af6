//! Access to an XLA git repository: the one named by `--xla-repo` /
//! `XLA_REPO` (a work tree or a bare git directory), or pjrtpkgs' own cached
//! clone of upstream XLA, created and fetched on demand.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use git2::{ObjectType, Oid, Repository};

/// Upstream XLA, the default remote of the cached clone.
pub const UPSTREAM_URL: &str = "https://github.com/openxla/xla";

/// The `--xla-repo` option shared by every verb that reads XLA history.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct XlaRepoArg {
    /// XLA repository to read: a work tree or a bare git directory. Without it,
    /// pjrtpkgs keeps its own clone of upstream XLA in its cache directory
    /// and fetches what it needs.
    #[arg(long = "xla-repo", env = "XLA_REPO", value_name = "DIR")]
    pub xla_repo: Option<PathBuf>,
}

/// Opens the repository at `dir` (work tree, `.git` directory or bare).
pub fn open(dir: &Path) -> Result<Repository> {
    Repository::open(dir)
        .with_context(|| format!("{} is not a git repository (expected an XLA work tree or bare git directory)", dir.display()))
}

/// The repository named by the option, or the cached clone, in which `rev`
/// resolves: the cached clone fetches `rev` from upstream when it lacks it.
pub fn open_for(arg: &XlaRepoArg, revs: &[&str]) -> Result<Repository> {
    if let Some(dir) = &arg.xla_repo {
        return open(dir);
    }
    let dir = crate::project::cache_dir()?.join("xla.git");
    let repo = if dir.join("HEAD").is_file() {
        open(&dir)?
    } else {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let repo = Repository::init_bare(&dir).with_context(|| format!("cannot create a bare clone at {}", dir.display()))?;
        repo.remote("origin", UPSTREAM_URL)?;
        repo
    };
    for rev in revs {
        if rev.starts_with('-') {
            // It would reach `git fetch` as an option (`--upload-pack=...` runs a program).
            bail!("`{rev}` is not a revision: a commit, tag or branch never starts with `-`");
        }
        // A commit id names the same commit forever; a branch or tag name
        // moves upstream, so it is fetched again on every run: the copy
        // fetched last time would silently pin an old commit.
        let stale = !looks_like_sha(rev) && git2::Reference::is_valid_name(&format!("refs/heads/{rev}"));
        if stale || resolve_commit(&repo, rev).is_err() {
            if looks_like_sha(rev) && rev.len() < 40 {
                // The git protocol fetches full commit ids, branches and tags only.
                bail!(
                    "cannot resolve the abbreviated commit `{rev}` in pjrtpkgs' clone of upstream XLA: only full 40-hex commit ids, \
                     branches and tags can be fetched; give the full id, or pass --xla-repo DIR / set XLA_REPO to a clone that has it"
                );
            }
            let url = repo.find_remote("origin").ok().and_then(|r| r.url().ok().map(str::to_string)).unwrap_or_else(|| UPSTREAM_URL.into());
            eprintln!("fetching {rev} from {url} into {} ...", dir.display());
            let status = crate::tools::Tool::Git
                .command()?
                .arg("--git-dir")
                .arg(&dir)
                .args(["fetch", "--depth=1", "--no-tags", "--end-of-options", "origin", rev])
                .status()
                .context("cannot run git to fetch from upstream XLA (is git installed?)")?;
            if !status.success() {
                bail!("cannot fetch {rev} from {url} (git exited with {status}); pass --xla-repo DIR or set XLA_REPO to use a local clone");
            }
            if !looks_like_sha(rev) {
                // A branch or tag was fetched by name: FETCH_HEAD resolves it.
                let fetched = repo.refname_to_id("FETCH_HEAD")?;
                repo.reference(&format!("refs/pjrtpkgs/{rev}"), fetched, true, "fetched by pjrtpkgs")?;
            }
        }
    }
    Ok(repo)
}

/// The tree of `commit`, with errors naming the repository.
pub fn commit_tree(repo: &Repository, commit: Oid) -> Result<git2::Tree<'_>> {
    repo.find_commit(commit)
        .with_context(|| format!("commit {commit} is not in {}", repo.path().display()))?
        .tree()
        .with_context(|| format!("the tree of commit {commit} is missing from {}", repo.path().display()))
}

/// The file at `path` in `tree`, `None` if absent (or not a file). A path
/// that names a blob the repository does not have is an error, not
/// absence: a partial clone must not silently lose a header.
pub fn read_path(repo: &Repository, tree: &git2::Tree, path: &str) -> Result<Option<Vec<u8>>> {
    let Ok(entry) = tree.get_path(Path::new(path)) else { return Ok(None) };
    if entry.kind() != Some(ObjectType::Blob) {
        return Ok(None);
    }
    let blob = repo.find_blob(entry.id()).with_context(|| {
        format!(
            "blob {} ({path}) is missing from {}: the repository is incomplete (a partial, shallow or damaged clone); \
                 point --xla-repo / XLA_REPO at a complete clone",
            entry.id(),
            repo.path().display()
        )
    })?;
    Ok(Some(blob.content().to_vec()))
}

fn looks_like_sha(rev: &str) -> bool {
    (4..=40).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Resolves anything git resolves (full or short sha, tag, branch,
/// `main~3`) to a commit id, with an error naming the revision.
pub fn resolve_commit(repo: &Repository, rev: &str) -> Result<Oid> {
    let candidates = [rev.to_string(), format!("refs/pjrtpkgs/{rev}"), format!("origin/{rev}")];
    for candidate in &candidates {
        if let Ok(obj) = repo.revparse_single(candidate) {
            if let Ok(commit) = obj.peel(ObjectType::Commit) {
                return Ok(commit.id());
            }
        }
    }
    bail!(
        "unknown revision `{rev}` in {}: not a commit, tag or branch there (fetch it first, or check the spelling)",
        repo.path().display()
    )
}
