//! An input of `release` (a Nix build result, a wheel's extracted plugin),
//! read without ever leaving it.
//!
//! The input's own directory may be reached through symbolic links (`nix
//! build` makes `./result` one). Below it, every name is resolved by the
//! kernel beneath the directory (`openat2` with `RESOLVE_BENEATH`): a
//! symbolic link that stays inside is followed, one that leads out (an
//! absolute link to `/etc/passwd`, a `../` out of the tree) is refused by
//! name. Only regular files are read, and only after their size is known to
//! be within the cap of what they are: a FIFO, a device or a socket is
//! named and refused (opening one can block forever), a 64 GB sparse file
//! is refused unread. On a kernel without `openat2` (before Linux 5.6) the
//! same rule is kept by resolving the path and checking it lies below the
//! input.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

/// What a name below the input is, its links followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File {
        size: u64,
    },
    Dir,
    /// Anything else, named: "a FIFO", "a device", "a socket".
    Other(&'static str),
}

fn kind_of(file_type: FileType, size: u64) -> Kind {
    match file_type {
        FileType::RegularFile => Kind::File { size },
        FileType::Directory => Kind::Dir,
        other => Kind::Other(crate::fsutil::file_type_name(other)),
    }
}

/// An input directory, open.
#[derive(Debug)]
pub struct InputDir {
    path: PathBuf,
    root: OwnedFd,
}

impl InputDir {
    pub fn open(path: &Path) -> Result<InputDir> {
        let root = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .with_context(|| format!("cannot open the directory {}", path.display()))?;
        Ok(InputDir { path: path.to_path_buf(), root })
    }

    /// `rel` below the input, for messages.
    pub fn display(&self, rel: &Path) -> String {
        self.path.join(rel).display().to_string()
    }

    /// Opens `rel` beneath the input with `flags` (links inside followed).
    /// `Ok(None)`: it does not exist.
    fn open_beneath(&self, rel: &Path, flags: OFlags) -> Result<Option<OwnedFd>> {
        if rel.is_absolute() {
            bail!("{} is not a path inside the input", rel.display());
        }
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        // openat2 refuses O_PATH with any flag but O_CLOEXEC, O_DIRECTORY, O_NOFOLLOW.
        let flags = if flags.contains(OFlags::PATH) { flags | OFlags::CLOEXEC } else { flags | OFlags::CLOEXEC | OFlags::NOCTTY };
        match rustix::fs::openat2(&self.root, rel, flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(Some(fd)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(rustix::io::Errno::XDEV) => bail!(
                "{}: a symbolic link on the way leads outside {}: refused (everything released must come from the input itself)",
                self.display(rel),
                self.path.display()
            ),
            Err(rustix::io::Errno::LOOP) => bail!("{}: too many symbolic links (a loop?)", self.display(rel)),
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => self.open_checked(rel, flags),
            Err(e) => Err(e).with_context(|| format!("cannot open {}", self.display(rel))),
        }
    }

    /// The fallback without `openat2`: resolve, check, open the resolved path.
    fn open_checked(&self, rel: &Path, flags: OFlags) -> Result<Option<OwnedFd>> {
        let root = std::fs::canonicalize(&self.path).with_context(|| format!("cannot resolve {}", self.path.display()))?;
        let full = match std::fs::canonicalize(self.path.join(rel)) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot resolve {}", self.display(rel))),
        };
        if !full.starts_with(&root) {
            bail!("{} leads to {}, outside {}: refused", self.display(rel), full.display(), self.path.display());
        }
        match rustix::fs::open(&full, flags | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot open {}", self.display(rel))),
        }
    }

    /// What `rel` is; `None` when it does not exist. Nothing is opened for
    /// reading (`O_PATH`).
    pub fn kind(&self, rel: &Path) -> Result<Option<Kind>> {
        let Some(fd) = self.open_beneath(rel, OFlags::PATH)? else { return Ok(None) };
        let stat = rustix::fs::fstat(&fd).with_context(|| format!("cannot stat {}", self.display(rel)))?;
        Ok(Some(kind_of(FileType::from_raw_mode(stat.st_mode), stat.st_size as u64)))
    }

    /// The regular file `rel`, whole; refused by name when it is something
    /// else, unread when larger than `cap` (`what` says what it is, for the
    /// message).
    pub fn read(&self, rel: &Path, cap: u64, what: &str) -> Result<Vec<u8>> {
        match self.kind(rel)? {
            None => bail!("{} is missing", self.display(rel)),
            Some(Kind::File { size }) if size > cap => bail!(
                "{} is {size} bytes, larger than {} for {what}: refused unread (a sparse or runaway file?)",
                self.display(rel),
                cap_text(cap)
            ),
            Some(Kind::File { .. }) => {}
            Some(Kind::Dir) => bail!("{} is a directory, not a file", self.display(rel)),
            Some(Kind::Other(k)) => bail!("{} is {k}, not a regular file: refused", self.display(rel)),
        }
        // Opened for reading without blocking (it was a regular file a
        // moment ago; if it was swapped for a FIFO, O_NONBLOCK keeps the
        // open from waiting), then checked again.
        let fd = self.open_beneath(rel, OFlags::RDONLY | OFlags::NONBLOCK)?.with_context(|| format!("{} vanished", self.display(rel)))?;
        let stat = rustix::fs::fstat(&fd).with_context(|| format!("cannot stat {}", self.display(rel)))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile || stat.st_size as u64 > cap {
            bail!("{} changed while it was being opened: refused", self.display(rel));
        }
        let mut data = Vec::with_capacity(stat.st_size as usize);
        std::fs::File::from(fd).take(cap + 1).read_to_end(&mut data).with_context(|| format!("cannot read {}", self.display(rel)))?;
        if data.len() as u64 > cap {
            bail!("{} grew past {} while it was read: refused", self.display(rel), cap_text(cap));
        }
        Ok(data)
    }

    /// The names in the directory `rel` (links not followed here: ask
    /// [`kind`](Self::kind) of each), sorted.
    pub fn list(&self, rel: &Path) -> Result<Vec<String>> {
        let fd =
            self.open_beneath(rel, OFlags::RDONLY | OFlags::DIRECTORY)?.with_context(|| format!("{} is missing", self.display(rel)))?;
        let dir = rustix::fs::Dir::read_from(&fd).with_context(|| format!("cannot list {}", self.display(rel)))?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.with_context(|| format!("cannot list {}", self.display(rel)))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
            if names.len() > MAX_ENTRIES {
                bail!("{} holds more than {MAX_ENTRIES} entries: not a plugin's directory", self.display(rel));
            }
        }
        names.sort();
        Ok(names)
    }
}

/// A directory of a plugin's input holding more is refused.
const MAX_ENTRIES: usize = 10_000;

fn cap_text(cap: u64) -> String {
    if cap >= 1 << 30 {
        format!("{} GiB", cap >> 30)
    } else {
        format!("{} MiB", cap >> 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_stay_inside_and_special_files_are_named() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("secret");
        std::fs::write(&outside, "s").unwrap();
        let input = t.path().join("input");
        std::fs::create_dir_all(input.join("a")).unwrap();
        std::fs::write(input.join("a/file"), "hello").unwrap();
        std::os::unix::fs::symlink("file", input.join("a/inner")).unwrap();
        std::os::unix::fs::symlink("../a/file", input.join("a/up-and-in")).unwrap();
        std::os::unix::fs::symlink(&outside, input.join("a/absolute")).unwrap();
        std::os::unix::fs::symlink("../../secret", input.join("a/escape")).unwrap();
        std::os::unix::fs::symlink("loop", input.join("a/loop")).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, input.join("a/fifo"), FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        let dir = InputDir::open(&input).unwrap();
        let read = |rel: &str| dir.read(Path::new(rel), 1 << 20, "a test file");
        assert_eq!(read("a/file").unwrap(), b"hello");
        assert_eq!(read("a/inner").unwrap(), b"hello");
        assert_eq!(read("a/up-and-in").unwrap(), b"hello");
        for (rel, why) in
            [("a/absolute", "outside"), ("a/escape", "outside"), ("a/loop", "symbolic links"), ("a/fifo", "a FIFO"), ("a", "directory")]
        {
            let e = format!("{:#}", read(rel).unwrap_err());
            assert!(e.contains(why) && e.contains(rel), "{rel}: {e}");
        }
        assert_eq!(dir.kind(Path::new("a/missing")).unwrap(), None);
        assert!(format!("{:#}", dir.read(Path::new("a/file"), 3, "a header").unwrap_err()).contains("larger than"));
        assert_eq!(dir.list(Path::new("a")).unwrap(), ["absolute", "escape", "fifo", "file", "inner", "loop", "up-and-in"]);
    }
}
