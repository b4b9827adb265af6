//! The hash `fetchFromGitHub { rev = COMMIT; }` pins, computed straight
//! from git objects: GitHub serves `git archive COMMIT` and fetchzip strips
//! its top-level directory, so the result is the NAR of the commit's tree
//! as `git archive` writes it:
//!
//! - `100644` regular file, `100755` executable file (git's rule: owner
//!   execute bit), `120000` symlink whose target is the blob;
//! - `040000` directory; a tree with nothing but (empty) trees below it is
//!   left out, as `git archive` writes a directory only when it writes
//!   something inside it (checked against git 2.47);
//! - `160000` submodule (gitlink): `git archive` writes an empty directory,
//!   so the NAR has an empty directory there (GitHub does not include
//!   submodule contents either).
//!
//! Entries are re-sorted bytewise: git orders a directory `foo` as if it
//! were `foo/`, NAR orders it as `foo`.
//!
//! `.gitattributes` with `export-ignore` or `export-subst` would make
//! `git archive` (and GitHub) differ from the tree: such commits are
//! refused rather than given a wrong hash.

use std::collections::HashMap;

use anyhow::{bail, Result};
use git2::{ErrorCode, Oid, Repository};

use super::nar::{HashWriter, NarSink};
use super::NarHash;

const MODE_TYPE: i32 = 0o170000;
const MODE_TREE: i32 = 0o040000;
const MODE_BLOB: i32 = 0o100000;
const MODE_LINK: i32 = 0o120000;
const MODE_GITLINK: i32 = 0o160000;

/// The NAR hash of the tree of `commit` in `repo` (work tree or bare).
/// Fails, naming the object and its path, when an object the tree needs is
/// missing (partial or damaged clones): never a hash of an incomplete tree.
pub fn hash_commit(repo: &Repository, commit: Oid) -> Result<NarHash> {
    let commit_obj = repo.find_commit(commit).map_err(|e| missing_or(e, commit, "commit", "", repo, commit))?;
    let tree_id = commit_obj.tree_id();
    let mut walk = TreeWalk {
        repo,
        commit,
        sink: NarSink::new(HashWriter::default())?,
        path: Vec::new(),
        progress: crate::progress::bytes_spinner(format!("hashing the tree of {commit}")),
        content_memo: HashMap::new(),
    };
    walk.tree(tree_id)?;
    walk.progress.finish_and_clear();
    Ok(walk.sink.into_inner().finish().0)
}

struct TreeWalk<'r> {
    repo: &'r Repository,
    /// The commit being hashed, for the fetch command an error suggests.
    commit: Oid,
    sink: NarSink<HashWriter>,
    /// Path of the tree being walked, for error messages.
    path: Vec<u8>,
    progress: indicatif::ProgressBar,
    content_memo: HashMap<Oid, bool>,
}

struct Child {
    name: Vec<u8>,
    id: Oid,
    mode: i32,
}

impl<'r> TreeWalk<'r> {
    fn tree(&mut self, id: Oid) -> Result<()> {
        let tree = self.repo.find_tree(id).map_err(|e| missing_or(e, id, "tree", &self.display_path(), self.repo, self.commit))?;
        let mut children: Vec<Child> =
            tree.iter().map(|e| Child { name: e.name_bytes().to_vec(), id: e.id(), mode: e.filemode_raw() }).collect();
        drop(tree);
        children.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        self.sink.begin_directory()?;
        for child in children {
            let parent_len = self.path.len();
            if !self.path.is_empty() {
                self.path.push(b'/');
            }
            self.path.extend_from_slice(&child.name);
            if child.mode & MODE_TYPE == MODE_TREE && !self.has_content(child.id)? {
                // git archive writes a directory only once something is
                // written inside it: trees with no file, link or
                // submodule anywhere below are left out.
                self.path.truncate(parent_len);
                continue;
            }
            self.sink.begin_entry(&child.name)?;
            match child.mode & MODE_TYPE {
                MODE_TREE => self.tree(child.id)?,
                MODE_GITLINK => {
                    self.sink.begin_directory()?;
                    self.sink.end_directory()?;
                }
                MODE_LINK => {
                    let blob = self.blob(child.id)?;
                    self.sink.symlink(blob.content())?;
                }
                MODE_BLOB => {
                    let blob = self.blob(child.id)?;
                    let content = blob.content();
                    if child.name == b".gitattributes" {
                        check_attributes(content, &self.display_path())?;
                    }
                    self.progress.inc(content.len() as u64);
                    self.sink.regular(child.mode & 0o100 != 0, content)?;
                }
                _ => bail!(
                    "`{}` has the git mode {:o}, which git archive does not know; the repository may be damaged",
                    self.display_path(),
                    child.mode
                ),
            }
            self.sink.end_entry()?;
            self.path.truncate(parent_len);
        }
        self.sink.end_directory()?;
        Ok(())
    }

    /// Whether the tree `id` holds, at any depth, something that is not a
    /// tree (memoised: a tree's answer never changes).
    fn has_content(&mut self, id: Oid) -> Result<bool> {
        if let Some(&known) = self.content_memo.get(&id) {
            return Ok(known);
        }
        let tree = self.repo.find_tree(id).map_err(|e| missing_or(e, id, "tree", &self.display_path(), self.repo, self.commit))?;
        let mut subtrees = Vec::new();
        let mut found = false;
        for entry in tree.iter() {
            if entry.filemode_raw() & MODE_TYPE == MODE_TREE {
                subtrees.push(entry.id());
            } else {
                found = true;
                break;
            }
        }
        drop(tree);
        if !found {
            for sub in subtrees {
                if self.has_content(sub)? {
                    found = true;
                    break;
                }
            }
        }
        self.content_memo.insert(id, found);
        Ok(found)
    }

    fn blob(&self, id: Oid) -> Result<git2::Blob<'r>> {
        self.repo.find_blob(id).map_err(|e| missing_or(e, id, "blob", &self.display_path(), self.repo, self.commit))
    }

    fn display_path(&self) -> String {
        if self.path.is_empty() {
            "/".into()
        } else {
            String::from_utf8_lossy(&self.path).into_owned()
        }
    }
}

/// The error for an object that cannot be read: a precise "missing" one
/// when git says so, else git's own message with the same context.
fn missing_or(err: git2::Error, id: Oid, kind: &str, path: &str, repo: &Repository, commit: Oid) -> anyhow::Error {
    let at = if path.is_empty() { String::new() } else { format!(" at `{path}`") };
    if err.code() == ErrorCode::NotFound {
        anyhow::anyhow!(
            "{kind} {id}{at} is missing from the repository {}: it is incomplete (a partial, shallow or damaged clone), \
             so its hash would be wrong. Fetch the commit fully (in that repository: `git fetch --refetch origin {commit}`) or use a complete clone",
            repo.path().display()
        )
    } else {
        anyhow::Error::new(err).context(format!("cannot read {kind} {id}{at} from {}", repo.path().display()))
    }
}

/// Refuses `.gitattributes` that change what `git archive` writes.
fn check_attributes(content: &[u8], path: &str) -> Result<()> {
    let text = String::from_utf8_lossy(content);
    for word in ["export-ignore", "export-subst"] {
        if text.lines().any(|line| !line.trim_start().starts_with('#') && line.contains(word)) {
            bail!(
                "`{path}` uses `{word}`: GitHub's archive of this commit differs from its tree, so this hash would not match \
                 fetchFromGitHub; hash the downloaded archive with `cargo xtask hash tarball URL` instead"
            );
        }
    }
    Ok(())
}
