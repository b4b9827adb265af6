//! The tree an archive unpacks to, built in memory exactly as Nix's
//! extraction (libarchive, `archive_read_extract` with
//! `SECURE_SYMLINKS | SECURE_NODOTDOT`) builds it on disk, then serialised
//! as a NAR. Nothing is written to the file system but a spill file for
//! file contents beyond [`MEMORY_LIMIT`].
//!
//! The rules, each checked against `nix-prefetch-url --unpack` in
//! `tests/hash_tarball.rs`:
//! - paths are cleaned: empty and `.` components dropped, a leading `/`
//!   ignored; a `..` component is an error;
//! - missing parent directories are created;
//! - a later entry replaces an earlier one of the same path (a directory
//!   on a directory merges; anything replacing a non-empty directory is an
//!   error, an empty one is replaced);
//! - a parent component that is a symlink ("extract through symlink") or a
//!   regular file is an error;
//! - a hard link shares the target's file (a later entry replacing the
//!   target leaves the link with the old contents); a link to itself, to a
//!   directory or to a missing path is an error; a link to a symlink is a
//!   copy of the symlink;
//! - sockets, fifos and devices are errors (Nix refuses to hash them);
//! - names Nix cannot put on disk are errors: a path component longer than
//!   255 bytes (NAME_MAX), a symlink target of 4096 bytes or more (PATH_MAX),
//!   a path longer than [`MAX_PATH_LEN`] (Nix reads the tree back by full
//!   path from its temporary directory, and Linux refuses paths of 4096
//!   bytes: where the limit falls depends on that directory, so a hash that
//!   only some machines could reproduce is never printed).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};

use super::nar::NarSink;

/// File contents kept in memory up to this many bytes in all, then spilled
/// to an unnamed temporary file.
pub const MEMORY_LIMIT: u64 = 512 << 20;

/// Where a file's bytes live in the [`Spool`].
#[derive(Debug, Clone, Copy)]
struct Blob {
    in_file: bool,
    offset: u64,
    len: u64,
}

/// Append-only store of file contents.
#[derive(Default)]
struct Spool {
    memory: Vec<u8>,
    file: Option<(File, u64)>,
}

impl Spool {
    /// Reads all of `reader` (at most `size_hint` is expected, not trusted).
    fn append(&mut self, reader: &mut dyn Read, size_hint: u64) -> io::Result<Blob> {
        if self.file.is_none() && self.memory.len() as u64 + size_hint <= MEMORY_LIMIT {
            let offset = self.memory.len() as u64;
            let len = reader.read_to_end(&mut self.memory)? as u64;
            if self.memory.len() as u64 <= MEMORY_LIMIT {
                return Ok(Blob { in_file: false, offset, len });
            }
            // Longer than announced: move this blob to the file.
            let tail = self.memory.split_off(offset as usize);
            return self.append(&mut io::Cursor::new(tail), len);
        }
        if self.file.is_none() {
            let file = tempfile::tempfile()?;
            self.file = Some((file, 0));
        }
        let (file, end) = self.file.as_mut().expect("just created");
        let offset = *end;
        let mut writer = io::BufWriter::with_capacity(1 << 20, &*file);
        let len = io::copy(reader, &mut writer)?;
        writer.flush()?;
        drop(writer);
        *end += len;
        Ok(Blob { in_file: true, offset, len })
    }

    fn write_to<W: Write>(&self, blob: Blob, sink: &mut NarSink<W>) -> io::Result<()> {
        if !blob.in_file {
            let start = blob.offset as usize;
            return sink.contents(&self.memory[start..start + blob.len as usize]);
        }
        let (file, _) = self.file.as_ref().expect("a spilled blob has a file");
        let mut buf = vec![0; (1 << 20).min(blob.len as usize)];
        let mut done = 0;
        while done < blob.len {
            let n = buf.len().min((blob.len - done) as usize);
            file.read_exact_at(&mut buf[..n], blob.offset + done)?;
            sink.contents(&buf[..n])?;
            done += n as u64;
        }
        Ok(())
    }
}

/// A file's identity: hard links share one.
#[derive(Debug, Clone, Copy)]
struct Inode {
    executable: bool,
    blob: Blob,
}

#[derive(Debug)]
enum Node {
    Directory(BTreeMap<Vec<u8>, Node>),
    File(usize),
    Symlink(Vec<u8>),
}

/// The unpacked tree.
#[derive(Default)]
pub struct Tree {
    root: BTreeMap<Vec<u8>, Node>,
    inodes: Vec<Inode>,
    spool: Spool,
}

/// The longest file name Linux file systems take (NAME_MAX).
pub const MAX_NAME_LEN: usize = 255;

/// The longest symlink target Linux takes (PATH_MAX less its NUL).
pub const MAX_SYMLINK_TARGET_LEN: usize = 4095;

/// The longest member path accepted: PATH_MAX (4096, its NUL included)
/// less room for the temporary directory Nix unpacks into
/// (`/tmp/nix-<pid>-<n>/unpacked/`, or a build's `$TMPDIR`).
pub const MAX_PATH_LEN: usize = 3968;

/// Splits an archive path into clean components, as libarchive does.
fn components(path: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut len = 0;
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => bail!("archive member `{}` contains `..` (Nix refuses it: Path contains '..')", show(path)),
            _ if part.len() > MAX_NAME_LEN => bail!(
                "a name in its path is {} bytes long; file systems take at most {MAX_NAME_LEN}, so Nix cannot unpack it (File name too long)",
                part.len()
            ),
            _ => {
                len += part.len() + usize::from(!out.is_empty());
                if len > MAX_PATH_LEN {
                    bail!(
                        "its path is longer than {MAX_PATH_LEN} bytes; Nix unpacks it under a temporary directory and cannot read it back there (File name too long, PATH_MAX 4096)"
                    );
                }
                out.push(part.to_vec())
            }
        }
    }
    Ok(out)
}

/// An archive path for error messages.
/// An archive path for error messages, shortened in the middle when long.
pub fn show(path: &[u8]) -> String {
    const KEEP: usize = 120;
    if path.len() <= 2 * KEEP + 40 {
        return String::from_utf8_lossy(path).into_owned();
    }
    format!(
        "{}...({} bytes)...{}",
        String::from_utf8_lossy(&path[..KEEP]),
        path.len() - 2 * KEEP,
        String::from_utf8_lossy(&path[path.len() - KEEP..])
    )
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// The directory holding `parts[..len-1]`, creating missing ones.
    fn parent_of<'a>(root: &'a mut BTreeMap<Vec<u8>, Node>, parts: &[Vec<u8>], path: &[u8]) -> Result<&'a mut BTreeMap<Vec<u8>, Node>> {
        let mut dir = root;
        for part in &parts[..parts.len().saturating_sub(1)] {
            let node = dir.entry(part.clone()).or_insert_with(|| Node::Directory(BTreeMap::new()));
            dir = match node {
                Node::Directory(children) => children,
                Node::Symlink(_) => {
                    bail!("archive member `{}` lies below a symlink (Nix refuses it: Cannot extract through symlink)", show(path))
                }
                Node::File(_) => bail!("archive member `{}` lies below a regular file (Nix's extraction fails on it)", show(path)),
            };
        }
        Ok(dir)
    }

    /// Puts a non-directory `node` at `path`, replacing what is there.
    fn put(&mut self, path: &[u8], node: Node) -> Result<()> {
        let parts = components(path)?;
        let Some(name) = parts.last() else { bail!("archive member `{}` is not a directory but names the top of the archive", show(path)) };
        let dir = Self::parent_of(&mut self.root, &parts, path)?;
        if let Some(Node::Directory(children)) = dir.get(name) {
            if !children.is_empty() {
                bail!(
                    "archive member `{}` replaces a non-empty directory (Nix's extraction fails: Can't replace existing directory with non-directory)",
                    show(path)
                );
            }
        }
        dir.insert(name.clone(), node);
        Ok(())
    }

    /// A directory entry: merges with an existing directory, replaces anything else.
    pub fn directory(&mut self, path: &[u8]) -> Result<()> {
        let parts = components(path)?;
        let Some(name) = parts.last() else { return Ok(()) };
        let dir = Self::parent_of(&mut self.root, &parts, path)?;
        if !matches!(dir.get(name), Some(Node::Directory(_))) {
            dir.insert(name.clone(), Node::Directory(BTreeMap::new()));
        }
        Ok(())
    }

    /// A regular file whose contents are all of `reader`.
    pub fn file(&mut self, path: &[u8], executable: bool, size_hint: u64, reader: &mut dyn Read) -> Result<()> {
        // Check the path before reading the contents: fail fast, spool less.
        components(path)?;
        let blob = self.spool.append(reader, size_hint).with_context(|| format!("cannot read archive member `{}`", show(path)))?;
        self.inodes.push(Inode { executable, blob });
        let inode = self.inodes.len() - 1;
        self.put(path, Node::File(inode))
    }

    pub fn symlink(&mut self, path: &[u8], target: &[u8]) -> Result<()> {
        if target.len() > MAX_SYMLINK_TARGET_LEN {
            bail!(
                "its symlink target is {} bytes long; Linux takes at most {MAX_SYMLINK_TARGET_LEN}, so Nix cannot unpack it",
                target.len()
            );
        }
        self.put(path, Node::Symlink(target.to_vec()))
    }

    /// A hard link at `path` to the earlier member `target`. `data`, when
    /// the entry carries contents (pax and cpio allow it), replaces the
    /// shared file's contents and mode, as libarchive does.
    pub fn hard_link(&mut self, path: &[u8], target: &[u8], data: Option<(bool, u64, &mut dyn Read)>) -> Result<()> {
        let parts = components(path)?;
        let target_parts = components(target)?;
        if parts == target_parts {
            bail!("archive member `{}` is a hard link to itself (Nix's extraction fails on it)", show(path));
        }
        let missing = || anyhow::anyhow!("hard link `{}` points to `{}`, which is not in the archive before it", show(path), show(target));
        let (target_name, target_dirs) = target_parts
            .split_last()
            .ok_or_else(|| anyhow::anyhow!("hard link `{}` points to the top of the archive, a directory", show(path)))?;
        let mut dir = &self.root;
        for part in target_dirs {
            dir = match dir.get(part) {
                Some(Node::Directory(children)) => children,
                Some(Node::Symlink(_)) => bail!(
                    "hard link `{}` points through a symlink to `{}` (Nix refuses it: Cannot extract through symlink)",
                    show(path),
                    show(target)
                ),
                _ => return Err(missing()),
            };
        }
        let node = match dir.get(target_name) {
            Some(Node::File(inode)) => Node::File(*inode),
            Some(Node::Symlink(to)) => Node::Symlink(to.clone()),
            Some(Node::Directory(_)) => bail!("hard link `{}` points to the directory `{}`", show(path), show(target)),
            None => return Err(missing()),
        };
        if let (Node::File(inode), Some((executable, size_hint, reader))) = (&node, data) {
            let blob = self.spool.append(reader, size_hint).with_context(|| format!("cannot read archive member `{}`", show(path)))?;
            self.inodes[*inode] = Inode { executable, blob };
        }
        self.put(path, node)
    }

    /// Serialises the tree as `nix-prefetch-url --unpack` hashes it: when
    /// the archive holds exactly one top-level entry (directory, file or
    /// symlink), that entry; otherwise the whole unpacked directory.
    pub fn write_nar<W: Write>(&self, sink: &mut NarSink<W>) -> Result<()> {
        let result = if self.root.len() == 1 {
            let node = self.root.values().next().expect("one entry");
            self.node(node, sink)
        } else {
            self.directory_node(&self.root, sink)
        };
        result.context("cannot serialise the unpacked archive")
    }

    fn node<W: Write>(&self, node: &Node, sink: &mut NarSink<W>) -> io::Result<()> {
        match node {
            Node::Directory(children) => self.directory_node(children, sink),
            Node::Symlink(target) => sink.symlink(target),
            Node::File(inode) => {
                let Inode { executable, blob } = self.inodes[*inode];
                sink.begin_regular(executable, blob.len)?;
                self.spool.write_to(blob, sink)?;
                sink.end_regular()
            }
        }
    }

    fn directory_node<W: Write>(&self, children: &BTreeMap<Vec<u8>, Node>, sink: &mut NarSink<W>) -> io::Result<()> {
        sink.begin_directory()?;
        // BTreeMap<Vec<u8>, _> iterates in bytewise order, NAR's order.
        for (name, child) in children {
            sink.begin_entry(name)?;
            self.node(child, sink)?;
            sink.end_entry()?;
        }
        sink.end_directory()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_like_libarchive() {
        assert_eq!(components(b"./a//b/./c/").unwrap(), [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(components(b"/abs").unwrap(), [b"abs".to_vec()]);
        assert!(components(b"a/../b").is_err());
        assert!(components(b"./").unwrap().is_empty());
    }

    #[test]
    fn hard_link_keeps_old_contents_when_target_is_replaced() {
        let mut tree = Tree::new();
        tree.file(b"t/a", false, 3, &mut &b"one"[..]).unwrap();
        tree.hard_link(b"t/b", b"t/a", None).unwrap();
        tree.file(b"t/a", false, 3, &mut &b"two"[..]).unwrap();
        let Some(Node::Directory(t)) = tree.root.get(&b"t"[..]) else { panic!() };
        let (Some(Node::File(a)), Some(Node::File(b))) = (t.get(&b"a"[..]), t.get(&b"b"[..])) else { panic!() };
        assert_ne!(a, b);
    }
}
