//! All-or-nothing writes to the project: every new file content is staged in
//! memory, then `commit` writes all of them to temporary files next to their
//! targets (fsynced) and only then renames them into place. If a rename
//! fails, the renames already done are undone from the old contents, files
//! that did not exist are removed again, and directories created for them
//! too: the project is left as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// How a staged file differs from the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    Modify,
}

/// New contents for project files, keyed by path relative to the project root.
#[derive(Debug)]
pub struct Staged {
    root: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

/// What the project held before the commit, to roll back to.
struct Original {
    target: PathBuf,
    contents: Option<(Vec<u8>, std::fs::Permissions)>,
}

impl Staged {
    pub fn new(root: &Path) -> Self {
        Staged { root: root.to_path_buf(), files: BTreeMap::new() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stages `contents` for `rel` (a later call for the same path wins).
    pub fn write(&mut self, rel: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) {
        self.files.insert(rel.into(), contents.into());
    }

    /// The staged content of `rel`, else what the project holds now.
    pub fn read(&self, rel: &Path) -> Result<Option<Vec<u8>>> {
        if let Some(c) = self.files.get(rel) {
            return Ok(Some(c.clone()));
        }
        read_optional(&self.root.join(rel))
    }

    /// Staged files that differ from the project, sorted by path.
    pub fn changes(&self) -> Result<Vec<(PathBuf, Change)>> {
        let mut out = Vec::new();
        for (rel, contents) in &self.files {
            match read_optional(&self.root.join(rel))? {
                None => out.push((rel.clone(), Change::Create)),
                Some(old) if old != *contents => out.push((rel.clone(), Change::Modify)),
                Some(_) => {}
            }
        }
        Ok(out)
    }

    /// Writes every changed file, all or nothing. `fail_after` (testing
    /// hook) makes the commit fail after that many renames, exercising the
    /// rollback. Returns the paths written.
    pub fn commit(&self, fail_after: Option<usize>) -> Result<Vec<PathBuf>> {
        let changes = self.changes()?;
        let mut created_dirs: Vec<PathBuf> = Vec::new();
        let mut temps: Vec<(tempfile::TempPath, Original)> = Vec::new();

        // Phase 1: every new content in a temp file beside its target.
        let phase1 = (|| -> Result<()> {
            for (rel, _) in &changes {
                let target = self.root.join(rel);
                let dir = target.parent().context("a staged path has no parent directory")?.to_path_buf();
                create_dirs(&dir, &mut created_dirs)?;
                let contents = read_optional(&target)?;
                let perms = match &contents {
                    Some(_) => Some(std::fs::metadata(&target)?.permissions()),
                    None => None,
                };
                // Beside the target, with its permissions (`perms`) when it exists.
                let tmp = crate::fsutil::temp_beside(&target, &self.files[rel])?;
                let original = Original { target, contents: contents.zip(perms) };
                temps.push((tmp.into_temp_path(), original));
            }
            Ok(())
        })();
        if let Err(e) = phase1 {
            drop(temps); // removes the temp files
            remove_dirs(&created_dirs);
            return Err(e.context("staging the new files failed; the project is unchanged"));
        }

        // Phase 2: rename them all into place; undo on the first failure.
        let mut done: Vec<Original> = Vec::new();
        let mut pending = temps.into_iter();
        let mut failure = None;
        for (count, (tmp, original)) in pending.by_ref().enumerate() {
            if fail_after == Some(count) {
                failure = Some(anyhow::anyhow!("injected failure after {count} renames ({}=commit)", super::FAIL_AT_ENV));
                drop(tmp);
                break;
            }
            match tmp.persist(&original.target) {
                Ok(()) => done.push(original),
                Err(e) => {
                    failure = Some(anyhow::Error::new(e.error).context(format!("cannot replace {}", original.target.display())));
                    break;
                }
            }
        }
        let Some(failure) = failure else {
            return Ok(changes.into_iter().map(|(rel, _)| rel).collect());
        };
        drop(pending.collect::<Vec<_>>());
        let mut rollback_errors = Vec::new();
        for original in done.iter().rev() {
            if let Err(e) = restore(original) {
                rollback_errors.push(format!("{}: {e:#}", original.target.display()));
            }
        }
        remove_dirs(&created_dirs);
        if rollback_errors.is_empty() {
            Err(failure.context("writing the project files failed; every file written so far was restored, the project is unchanged"))
        } else {
            Err(failure.context(format!(
                "writing the project files failed AND restoring some of them failed; check these by hand (e.g. `git diff`): {}",
                rollback_errors.join("; ")
            )))
        }
    }
}

fn restore(original: &Original) -> Result<()> {
    match &original.contents {
        None => std::fs::remove_file(&original.target).with_context(|| format!("cannot remove {}", original.target.display())),
        Some((contents, perms)) => {
            crate::fsutil::write_atomic(&original.target, contents)?;
            std::fs::set_permissions(&original.target, perms.clone())?;
            Ok(())
        }
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Creates `dir` and its missing parents, remembering which it created.
fn create_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.exists() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    for m in missing.into_iter().rev() {
        std::fs::create_dir(&m).with_context(|| format!("cannot create directory {}", m.display()))?;
        created.push(m);
    }
    Ok(())
}

/// Removes the directories `create_dirs` made, deepest first, if empty.
fn remove_dirs(created: &[PathBuf]) {
    for d in created.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    out.insert(p.strip_prefix(dir).unwrap().join(""), Vec::new());
                    stack.push(p);
                } else {
                    out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn commit_writes_all_and_rollback_restores_everything() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "old a").unwrap();
        std::fs::write(dir.path().join("same.txt"), "same").unwrap();
        let before = snapshot(dir.path());

        let mut staged = Staged::new(dir.path());
        staged.write("a.txt", "new a");
        staged.write("same.txt", "same");
        staged.write("new/deep/b.txt", "b");
        staged.write("c.txt", "c");
        let changes = staged.changes().unwrap();
        assert_eq!(changes.len(), 3, "{changes:?}");

        for fail_after in 0..3 {
            let err = staged.commit(Some(fail_after)).unwrap_err();
            assert!(format!("{err:#}").contains("unchanged"), "{err:#}");
            assert_eq!(snapshot(dir.path()), before, "rollback after {fail_after} renames");
        }
        let written = staged.commit(None).unwrap();
        assert_eq!(written.len(), 3);
        assert_eq!(std::fs::read_to_string(dir.path().join("a.txt")).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(dir.path().join("new/deep/b.txt")).unwrap(), "b");
        assert!(staged.changes().unwrap().is_empty());
    }
}
