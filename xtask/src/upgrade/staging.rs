//! All-or-nothing writes to the project, crash included.
//!
//! Every new file content is staged in memory. `commit` then
//! 1. writes a journal (`.pjrtpkgs-upgrade-journal.json`, atomically)
//!    naming every target, its temporary file, its backup and the sha256 of
//!    its old and new contents, in state `staging`;
//! 2. writes each new content to a temporary file beside its target
//!    (`.pjrtpkgs-upgrade-<name>.tmp`, fsynced) and hard-links each existing
//!    target to a backup (`.pjrtpkgs-upgrade-<name>.orig`);
//! 3. switches the journal to `committing` — the commit point;
//! 4. renames the temporary files over their targets, fsyncs the
//!    directories, removes the backups and finally the journal.
//!
//! A failure in 2 or 4 undoes what was done (from the backups). A crash
//! anywhere (SIGKILL, power loss) leaves the journal, and the next run
//! ([`recover`]) finishes the job: before the commit point it rolls back
//! (removes temporaries, backups and directories it created), after it it
//! rolls forward (renames the remaining temporaries). Every file is checked
//! against the journal's hashes first; a file changed by hand since is never
//! overwritten.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The commit journal, at the project root.
pub const JOURNAL: &str = ".pjrtpkgs-upgrade-journal.json";
/// Where the journal is written before it is renamed into place.
const JOURNAL_TMP: &str = ".pjrtpkgs-upgrade-journal.tmp";

/// How a staged file differs from the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    Modify,
}

impl Change {
    pub fn word(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Modify => "modify",
        }
    }
}

/// New contents for project files, keyed by path relative to the project root.
#[derive(Debug)]
pub struct Staged {
    root: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
    /// What each file held when its new content was computed: the commit
    /// refuses to overwrite a file that changed since.
    bases: BTreeMap<PathBuf, Option<Vec<u8>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum State {
    /// Temporaries and backups are being written; no target touched yet.
    Staging,
    /// Past the commit point: targets are being replaced.
    Committing,
    /// A rename failed: targets are being restored from the backups.
    RollingBack,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// Relative to the project root, like every path here.
    target: String,
    temp: String,
    backup: Option<String>,
    /// `None`: the target did not exist.
    old_sha256: Option<String>,
    new_sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    tool: String,
    state: State,
    entries: Vec<Entry>,
    /// Directories the commit creates, parents first.
    created_dirs: Vec<String>,
}

/// Testing hooks of `commit` (debug builds only, see `FAIL_AT_ENV`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Fail (in process, no crash) after this many renames.
    pub fail_after: Option<usize>,
}

impl Staged {
    pub fn new(root: &Path) -> Self {
        Staged { root: root.to_path_buf(), files: BTreeMap::new(), bases: BTreeMap::new() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stages `contents` for `rel` (a later call for the same path wins),
    /// computed from what the file holds now.
    pub fn write(&mut self, rel: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) {
        let rel = rel.into();
        let now = read_optional(&self.root.join(&rel)).ok().flatten();
        self.write_from(rel, now, contents);
    }

    /// Stages `contents` for `rel`, computed from `base` (what the file held
    /// when it was read; `None`: absent). The first base of a path stays.
    pub fn write_from(&mut self, rel: impl Into<PathBuf>, base: Option<Vec<u8>>, contents: impl Into<Vec<u8>>) {
        let rel = rel.into();
        self.bases.entry(rel.clone()).or_insert(base);
        self.files.insert(rel, contents.into());
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

    /// The changes among `paths`.
    pub fn changes_of(&self, paths: &[PathBuf]) -> Result<Vec<(PathBuf, Change)>> {
        Ok(self.changes()?.into_iter().filter(|(p, _)| paths.contains(p)).collect())
    }

    /// Writes every changed file, all or nothing (see the module docs).
    /// Returns the paths written.
    pub fn commit(&self, faults: Faults) -> Result<Vec<PathBuf>> {
        let changes = self.changes()?;
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        for (rel, _) in &changes {
            refuse_symlinked_dirs(&self.root, rel)?;
            if read_optional(&self.root.join(rel))? != self.bases.get(rel).cloned().flatten() {
                bail!(
                    "{} changed while upgrade-xla ran (an edit, or another tool): nothing was written, so that change is kept; \
                     rerun to upgrade from it",
                    rel.display()
                );
            }
        }
        let mut entries = Vec::new();
        let mut created_dirs: Vec<String> = Vec::new();
        for (rel, _) in &changes {
            let target = self.root.join(rel);
            let old = read_optional(&target)?;
            let rel_s = rel_str(rel)?;
            entries.push(Entry {
                temp: side_name(&rel_s, "tmp"),
                backup: old.as_ref().map(|_| side_name(&rel_s, "orig")),
                old_sha256: old.as_deref().map(sha256),
                new_sha256: sha256(&self.files[rel]),
                target: rel_s,
            });
            let mut missing = Vec::new();
            for dir in rel.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()) {
                if self.root.join(dir).is_dir() {
                    break;
                }
                missing.push(rel_str(dir)?);
            }
            for d in missing.into_iter().rev() {
                if !created_dirs.contains(&d) {
                    created_dirs.push(d);
                }
            }
        }
        let mut journal = Journal { tool: "cargo xtask upgrade-xla".into(), state: State::Staging, entries, created_dirs };
        write_journal(&self.root, &journal)?;

        // Temporaries and backups; no target is touched yet.
        let staged = (|| -> Result<()> {
            for d in &journal.created_dirs {
                let dir = self.root.join(d);
                std::fs::create_dir(&dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
            }
            for e in &journal.entries {
                let target = self.root.join(&e.target);
                write_new_file(&self.root.join(&e.temp), &self.files[Path::new(&e.target)], std::fs::metadata(&target).ok())?;
                if let Some(backup) = &e.backup {
                    link_or_copy(&target, &self.root.join(backup))?;
                }
            }
            sync_dirs(&self.root, &journal)
        })();
        if let Err(e) = staged {
            let undo = roll_back(&self.root, &journal);
            return Err(with_undo(e.context("staging the new files failed"), undo));
        }

        journal.state = State::Committing;
        write_journal(&self.root, &journal)?;
        let mut failure = None;
        for (count, e) in journal.entries.iter().enumerate() {
            if faults.fail_after == Some(count) {
                failure = Some(anyhow::anyhow!("injected failure after {count} renames ({}=commit)", super::FAIL_AT_ENV));
                break;
            }
            let (temp, target) = (self.root.join(&e.temp), self.root.join(&e.target));
            if let Err(err) = std::fs::rename(&temp, &target) {
                failure = Some(anyhow::Error::new(err).context(format!("cannot replace {}", target.display())));
                break;
            }
        }
        match failure {
            None => {
                finish(&self.root, &journal)?;
                Ok(changes.into_iter().map(|(rel, _)| rel).collect())
            }
            Some(e) => {
                journal.state = State::RollingBack;
                let _ = write_journal(&self.root, &journal);
                let undo = roll_back(&self.root, &journal);
                Err(with_undo(e.context("writing the project files failed"), undo))
            }
        }
    }
}

fn with_undo(err: anyhow::Error, undo: Result<()>) -> anyhow::Error {
    match undo {
        Ok(()) => err.context("every file was restored: the project is unchanged"),
        Err(u) => err.context(format!("AND undoing it failed, check `git status` and `git diff`: {u:#}")),
    }
}

/// Whether an interrupted commit left a journal in `root`.
pub fn pending(root: &Path) -> bool {
    root.join(JOURNAL).exists()
}

/// Completes or undoes the commit an interrupted run left in `root` (see
/// the module docs). `allowed` says which paths upgrade-xla writes: a
/// journal naming anything else is refused, whoever wrote it. Returns what
/// was done, `None` when there was nothing to recover.
pub fn recover(root: &Path, allowed: impl Fn(&Path) -> bool) -> Result<Option<String>> {
    let _ = std::fs::remove_file(root.join(JOURNAL_TMP));
    let path = root.join(JOURNAL);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let journal: Journal = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} (left by an interrupted upgrade-xla) is damaged; check `git status` / `git diff`, restore what needs it, then delete it",
            path.display()
        )
    })?;
    validate(&journal, &allowed).with_context(|| format!("refusing to act on {}", path.display()))?;
    let files: Vec<&str> = journal.entries.iter().map(|e| e.target.as_str()).collect();
    match journal.state {
        State::Staging | State::RollingBack => {
            roll_back(root, &journal).context("cannot undo the interrupted upgrade-xla commit")?;
            Ok(Some(format!("undid an interrupted upgrade-xla commit (it had not reached its commit point): {}", files.join(", "))))
        }
        State::Committing => {
            roll_forward(root, &journal)?;
            Ok(Some(format!("completed an interrupted upgrade-xla commit: {}", files.join(", "))))
        }
    }
}

/// A journal may only name files upgrade-xla writes, through their fixed
/// temporary and backup names, and directories above them.
fn validate(journal: &Journal, allowed: &impl Fn(&Path) -> bool) -> Result<()> {
    for e in &journal.entries {
        let t = Path::new(&e.target);
        if !is_plain_relative(t) || !allowed(t) {
            bail!("it names `{}`, which upgrade-xla never writes", e.target);
        }
        if e.temp != side_name(&e.target, "tmp") || e.backup.as_ref().is_some_and(|b| *b != side_name(&e.target, "orig")) {
            bail!("its temporary or backup file for `{}` is not the one upgrade-xla uses", e.target);
        }
        if e.backup.is_some() != e.old_sha256.is_some() {
            bail!("its entry for `{}` is inconsistent", e.target);
        }
    }
    for d in &journal.created_dirs {
        let d = Path::new(d);
        if !is_plain_relative(d) || !journal.entries.iter().any(|e| Path::new(&e.target).starts_with(d)) {
            bail!("it names the directory `{}`, which holds no file upgrade-xla writes", d.display());
        }
    }
    Ok(())
}

fn is_plain_relative(p: &Path) -> bool {
    p.components().count() > 0 && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// What a target holds now, against the journal.
#[derive(Debug, PartialEq, Eq)]
enum Holds {
    Old,
    New,
    Other,
}

fn holds(root: &Path, e: &Entry) -> Result<Holds> {
    let now = read_optional_nofollow(&root.join(&e.target))?.map(|b| sha256(&b));
    Ok(if now.as_deref() == Some(e.new_sha256.as_str()) {
        Holds::New
    } else if now == e.old_sha256 {
        Holds::Old
    } else {
        Holds::Other
    })
}

/// Past the commit point: every target must hold its new content, or its
/// old one with the new content waiting in its temporary file.
fn roll_forward(root: &Path, journal: &Journal) -> Result<()> {
    let mut pending = Vec::new();
    let mut conflicts = Vec::new();
    for e in &journal.entries {
        match holds(root, e)? {
            Holds::New => {}
            Holds::Old if read_optional_nofollow(&root.join(&e.temp))?.map(|b| sha256(&b)).as_deref() == Some(&e.new_sha256) => {
                pending.push(e)
            }
            _ => conflicts.push(e.target.as_str()),
        }
    }
    if !conflicts.is_empty() {
        let temps: Vec<&str> = journal.entries.iter().map(|e| e.temp.as_str()).collect();
        bail!(
            "an interrupted upgrade-xla commit cannot be completed: {} changed since (or its new content is gone). Nothing was \
             touched. Put the files back as you want them (`git checkout -- {}` restores the last commit), then remove {JOURNAL} \
             and the leftovers {} and rerun",
            conflicts.join(", "),
            conflicts.join(" "),
            temps.join(", ")
        );
    }
    for e in pending {
        std::fs::rename(root.join(&e.temp), root.join(&e.target)).with_context(|| format!("cannot replace {}", e.target))?;
    }
    finish(root, journal)
}

/// Before the commit point, or after a failed rename: back to the old
/// contents (from the backups), temporaries and created directories gone.
fn roll_back(root: &Path, journal: &Journal) -> Result<()> {
    let mut problems = Vec::new();
    for e in journal.entries.iter().rev() {
        let target = root.join(&e.target);
        if journal.state != State::Staging {
            match holds(root, e)? {
                Holds::New => {
                    let restored = match &e.backup {
                        Some(b) => std::fs::rename(root.join(b), &target),
                        None => std::fs::remove_file(&target),
                    };
                    if let Err(err) = restored {
                        problems.push(format!("{}: {err}", e.target));
                    }
                }
                Holds::Old => {}
                Holds::Other => problems.push(format!("{} holds neither its old nor its new content; left as it is", e.target)),
            }
        }
        for side in std::iter::once(&e.temp).chain(e.backup.iter()) {
            remove_if_present(&root.join(side), &mut problems);
        }
    }
    for d in journal.created_dirs.iter().rev() {
        let _ = std::fs::remove_dir(root.join(d));
    }
    if !problems.is_empty() {
        bail!("{}; {JOURNAL} is kept", problems.join("; "));
    }
    let _ = sync_dir(root);
    remove_journal(root)
}

/// After the last rename: make it durable, then drop backups and journal.
fn finish(root: &Path, journal: &Journal) -> Result<()> {
    sync_dirs(root, journal)?;
    let mut problems = Vec::new();
    for e in &journal.entries {
        if let Some(b) = &e.backup {
            remove_if_present(&root.join(b), &mut problems);
        }
    }
    remove_journal(root)
}

fn remove_if_present(path: &Path, problems: &mut Vec<String>) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("cannot remove {}: {e}", path.display())),
    }
}

fn remove_journal(root: &Path) -> Result<()> {
    std::fs::remove_file(root.join(JOURNAL)).with_context(|| format!("cannot remove {}", root.join(JOURNAL).display()))?;
    sync_dir(root)
}

fn write_journal(root: &Path, journal: &Journal) -> Result<()> {
    let text = serde_json::to_string_pretty(journal)? + "\n";
    let tmp = root.join(JOURNAL_TMP);
    write_new_file(&tmp, text.as_bytes(), None)?;
    std::fs::rename(&tmp, root.join(JOURNAL)).with_context(|| format!("cannot write {}", root.join(JOURNAL).display()))?;
    sync_dir(root)
}

/// `path` as a fresh file (an existing one, or a symlink there, is replaced,
/// never followed), fsynced, with `like`'s permissions, else 0644.
fn write_new_file(path: &Path, contents: &[u8], like: Option<std::fs::Metadata>) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(meta) = like {
        std::fs::set_permissions(path, meta.permissions()).with_context(|| format!("cannot set the permissions of {}", path.display()))?;
    }
    Ok(())
}

/// A hard link (free, and it keeps the old inode whole); a copy where the
/// file system has none.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    let _ = std::fs::remove_file(to);
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let contents = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    write_new_file(to, &contents, std::fs::metadata(from).ok())
}

fn sync_dirs(root: &Path, journal: &Journal) -> Result<()> {
    let mut dirs: Vec<PathBuf> = journal.entries.iter().filter_map(|e| Path::new(&e.target).parent().map(|p| root.join(p))).collect();
    dirs.extend(journal.created_dirs.iter().filter_map(|d| Path::new(d).parent().map(|p| root.join(p))));
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        sync_dir(&d)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).with_context(|| format!("cannot sync directory {}", dir.display()))
}

/// A directory on the way to a target that is a symlink would send the
/// write elsewhere, possibly out of the project: refused.
fn refuse_symlinked_dirs(root: &Path, rel: &Path) -> Result<()> {
    let mut dir = root.to_path_buf();
    let parent = rel.parent().unwrap_or(Path::new(""));
    for c in parent.components() {
        dir.push(c);
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
            bail!(
                "{} is a symbolic link: upgrade-xla writes {} only inside the project, never through a link; replace the link \
                 by a directory and rerun",
                dir.display(),
                rel.display()
            );
        }
    }
    let target = root.join(rel);
    if std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!("{} is a symbolic link: upgrade-xla would replace the link by a file; make it a plain file and rerun", target.display());
    }
    Ok(())
}

/// `dir/.pjrtpkgs-upgrade-<name>.<ext>` beside `rel`.
fn side_name(rel: &str, ext: &str) -> String {
    match rel.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.pjrtpkgs-upgrade-{name}.{ext}"),
        None => format!(".pjrtpkgs-upgrade-{rel}.{ext}"),
    }
}

fn rel_str(p: &Path) -> Result<String> {
    p.to_str().map(str::to_string).with_context(|| format!("{} is not UTF-8", p.display()))
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Like `read_optional`, but a symlink is never followed (it reads as
/// content nobody staged).
fn read_optional_nofollow(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Ok(Some(b"\0symlink".to_vec())),
        _ => read_optional(path),
    }
}

/// An exclusive lock on the project for one upgrade-xla run: a second run
/// on the same checkout stops at once instead of interleaving its writes.
/// An advisory `flock` on the project directory itself: no lock file to
/// leave behind, released when the process ends, however it ends.
pub struct ProjectLock(#[allow(dead_code)] std::fs::File);

pub fn lock_project(root: &Path) -> Result<ProjectLock> {
    use std::os::fd::AsRawFd;
    let dir = std::fs::File::open(root).with_context(|| format!("cannot open {}", root.display()))?;
    // SAFETY: flock(2) on a descriptor we own; no memory is touched.
    let r = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            bail!("another upgrade-xla is running on {}; wait for it to finish, then rerun", root.display());
        }
        return Err(err).with_context(|| format!("cannot lock {}", root.display()));
    }
    Ok(ProjectLock(dir))
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

    fn staged(dir: &Path) -> Staged {
        let mut staged = Staged::new(dir);
        staged.write("a.txt", "new a");
        staged.write("same.txt", "same");
        staged.write("new/deep/b.txt", "b");
        staged.write("c.txt", "c");
        staged
    }

    #[test]
    fn commit_writes_all_and_rollback_restores_everything() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "old a").unwrap();
        std::fs::write(dir.path().join("same.txt"), "same").unwrap();
        let before = snapshot(dir.path());

        let staged = staged(dir.path());
        let changes = staged.changes().unwrap();
        assert_eq!(changes.len(), 3, "{changes:?}");

        for fail_after in 0..3 {
            let err = staged.commit(Faults { fail_after: Some(fail_after) }).unwrap_err();
            assert!(format!("{err:#}").contains("unchanged"), "{err:#}");
            assert_eq!(snapshot(dir.path()), before, "rollback after {fail_after} renames");
        }
        let written = staged.commit(Faults::default()).unwrap();
        assert_eq!(written.len(), 3);
        assert_eq!(std::fs::read_to_string(dir.path().join("a.txt")).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(dir.path().join("new/deep/b.txt")).unwrap(), "b");
        assert!(staged.changes().unwrap().is_empty());
        assert!(!pending(dir.path()));
    }

    #[test]
    fn journal_naming_other_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal {
            tool: "x".into(),
            state: State::Committing,
            entries: vec![Entry {
                target: "../outside".into(),
                temp: "../.pjrtpkgs-upgrade-outside.tmp".into(),
                backup: None,
                old_sha256: None,
                new_sha256: sha256(b"x"),
            }],
            created_dirs: vec![],
        };
        std::fs::write(dir.path().join(JOURNAL), serde_json::to_string(&j).unwrap()).unwrap();
        let err = recover(dir.path(), |_| true).unwrap_err();
        assert!(format!("{err:#}").contains("never writes"), "{err:#}");
        let j = Journal { entries: vec![Entry { target: "pins.toml".into(), temp: "/etc/passwd".into(), ..j.entries[0].clone() }], ..j };
        std::fs::write(dir.path().join(JOURNAL), serde_json::to_string(&j).unwrap()).unwrap();
        let err = recover(dir.path(), |_| true).unwrap_err();
        assert!(format!("{err:#}").contains("not the one upgrade-xla uses"), "{err:#}");
    }
}
