//! The NAR serialisation (Nix ARchive) and the NAR hash of a path on disk.
//!
//! A NAR is a sequence of strings, each a u64 little-endian length followed
//! by the bytes, zero-padded to a multiple of 8:
//!
//! ```text
//! nar  = "nix-archive-1" node
//! node = "(" "type" ( "regular" ["executable" ""] "contents" BYTES
//!                   | "symlink" "target" BYTES
//!                   | "directory" { "entry" "(" "name" NAME "node" node ")" } )
//!        ")"
//! ```
//!
//! Directory entries are sorted by name, bytewise. [`NarSink`] writes this
//! grammar to any [`Write`]; the path, tarball and git hashers all feed it.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::NarHash;

/// Writes `s` as one NAR string token: u64 little-endian length, bytes, zero padding.
fn push_token(out: &mut impl Write, s: &[u8]) -> io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s)?;
    out.write_all(&ZEROS[..padding(s.len() as u64)])
}

const ZEROS: [u8; 8] = [0; 8];

fn padding(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

fn tokens(list: &[&[u8]]) -> Vec<u8> {
    let mut buf = Vec::new();
    for t in list {
        push_token(&mut buf, t).expect("writing to a Vec cannot fail");
    }
    buf
}

/// Fixed token runs, built once: the serializer then does one `write_all`
/// per structural step instead of one per token.
struct Tokens {
    magic: Vec<u8>,
    regular: Vec<u8>,
    executable: Vec<u8>,
    symlink: Vec<u8>,
    directory: Vec<u8>,
    entry: Vec<u8>,
    node: Vec<u8>,
    close: Vec<u8>,
}

fn tokens_table() -> &'static Tokens {
    static TABLE: std::sync::OnceLock<Tokens> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| Tokens {
        magic: tokens(&[b"nix-archive-1"]),
        // The length of the contents follows, written by the caller.
        regular: tokens(&[b"(", b"type", b"regular", b"contents"]),
        executable: tokens(&[b"(", b"type", b"regular", b"executable", b"", b"contents"]),
        symlink: tokens(&[b"(", b"type", b"symlink", b"target"]),
        directory: tokens(&[b"(", b"type", b"directory"]),
        // The name follows.
        entry: tokens(&[b"entry", b"(", b"name"]),
        node: tokens(&[b"node"]),
        close: tokens(&[b")"]),
    })
}

/// A streaming NAR encoder over any [`Write`].
///
/// The caller walks its tree depth first and calls, for each node, either
/// [`regular`](Self::regular) (or [`begin_regular`](Self::begin_regular),
/// the contents written through [`contents`](Self::contents) and
/// [`end_regular`](Self::end_regular)), [`symlink`](Self::symlink), or
/// [`begin_directory`](Self::begin_directory), then per child in bytewise
/// name order [`begin_entry`](Self::begin_entry) ... [`end_entry`](Self::end_entry),
/// then [`end_directory`](Self::end_directory). The encoder does not sort:
/// unsorted input is a caller bug and yields a NAR Nix would never produce.
pub struct NarSink<W: Write> {
    out: W,
    tokens: &'static Tokens,
    /// Bytes of the current regular file still expected, and its length.
    pending: Option<(u64, u64)>,
}

impl<W: Write> NarSink<W> {
    /// Starts a NAR on `out` (writes the `nix-archive-1` magic).
    pub fn new(mut out: W) -> io::Result<Self> {
        let tokens = tokens_table();
        out.write_all(&tokens.magic)?;
        Ok(NarSink { out, tokens, pending: None })
    }

    /// A regular file with the given contents.
    pub fn regular(&mut self, executable: bool, contents: &[u8]) -> io::Result<()> {
        self.begin_regular(executable, contents.len() as u64)?;
        self.contents(contents)?;
        self.end_regular()
    }

    /// Starts a regular file of `size` bytes; exactly `size` bytes must then
    /// be written with [`contents`](Self::contents) before
    /// [`end_regular`](Self::end_regular).
    pub fn begin_regular(&mut self, executable: bool, size: u64) -> io::Result<()> {
        let head = if executable { &self.tokens.executable } else { &self.tokens.regular };
        self.out.write_all(head)?;
        self.out.write_all(&size.to_le_bytes())?;
        self.pending = Some((size, size));
        Ok(())
    }

    /// Part of the contents of the current regular file.
    pub fn contents(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some((left, _)) = self.pending.as_mut() else {
            return Err(io::Error::other("NAR contents written outside a regular file"));
        };
        if bytes.len() as u64 > *left {
            return Err(io::Error::other("more NAR contents than the announced file size"));
        }
        *left -= bytes.len() as u64;
        self.out.write_all(bytes)
    }

    /// Ends the current regular file (padding and closing parenthesis).
    pub fn end_regular(&mut self) -> io::Result<()> {
        match self.pending.take() {
            Some((0, size)) => {
                self.out.write_all(&ZEROS[..padding(size)])?;
                self.out.write_all(&self.tokens.close)
            }
            Some((left, size)) => {
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("file of {size} bytes ended {left} bytes early")))
            }
            None => Err(io::Error::other("end_regular without begin_regular")),
        }
    }

    /// A symbolic link (never followed: the target is stored as is).
    pub fn symlink(&mut self, target: &[u8]) -> io::Result<()> {
        self.out.write_all(&self.tokens.symlink)?;
        self.token(target)?;
        self.out.write_all(&self.tokens.close)
    }

    pub fn begin_directory(&mut self) -> io::Result<()> {
        self.out.write_all(&self.tokens.directory)
    }

    /// Starts the directory entry `name`; its node follows.
    pub fn begin_entry(&mut self, name: &[u8]) -> io::Result<()> {
        self.out.write_all(&self.tokens.entry)?;
        self.token(name)?;
        self.out.write_all(&self.tokens.node)
    }

    pub fn end_entry(&mut self) -> io::Result<()> {
        self.out.write_all(&self.tokens.close)
    }

    pub fn end_directory(&mut self) -> io::Result<()> {
        self.out.write_all(&self.tokens.close)
    }

    /// The underlying writer, e.g. to write file contents without a copy.
    /// Bytes written this way must be accounted with [`contents_written`](Self::contents_written).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Records `n` bytes of contents written directly through [`get_mut`](Self::get_mut).
    pub fn contents_written(&mut self, n: u64) -> io::Result<()> {
        match self.pending.as_mut() {
            Some((left, _)) if *left >= n => {
                *left -= n;
                Ok(())
            }
            _ => Err(io::Error::other("contents written outside or beyond a regular file")),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn token(&mut self, s: &[u8]) -> io::Result<()> {
        push_token(&mut self.out, s)
    }
}

/// A [`Write`] that SHA-256-hashes what it is given
/// (`HashWriter::default()`, then `finish().0`).
pub type HashWriter = super::Hashing<io::Sink>;

/// The NAR hash of `path`, exactly what `nix hash path` prints: symlinks
/// are stored, never followed (`path` itself included); a file is
/// executable when its owner-execute bit is set; sockets, fifos and devices
/// are refused, as Nix refuses them.
///
/// Walking the tree and reading files (system calls) run on a helper
/// thread; this thread only hashes, so the two overlap.
pub fn hash_path(path: &Path) -> Result<NarHash> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let progress = crate::progress::bytes_spinner(format!("hashing {}", path.display()));

    let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(CHUNKS);
    let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(CHUNKS);
    for _ in 0..CHUNKS {
        free_tx.send(vec![0; CHUNK]).expect("the receiver is alive");
    }
    let root = path.to_path_buf();
    let walker = std::thread::Builder::new()
        .name("nar-walk".into())
        // The walk recurses once per directory level; paths stop at PATH_MAX
        // (4096 bytes, about 2000 levels), which this stack holds with room.
        .stack_size(64 << 20)
        .spawn(move || -> Result<()> {
            let out = ChunkWriter { buf: None, filled: 0, full: full_tx, free: free_rx };
            let mut sink = NarSink::new(out).map_err(stopped)?;
            let mut path = root;
            let mut walk = Walk { sink: &mut sink };
            walk.node(&mut path, &meta)?;
            sink.get_mut().flush_chunk().map_err(stopped)?;
            Ok(())
        })
        .context("cannot start the directory walking thread")?;

    let mut hasher = Sha256::new();
    for (buf, len) in full_rx {
        hasher.update(&buf[..len]);
        progress.inc(len as u64);
        // The walker may be done and gone: then the buffer is simply dropped.
        let _ = free_tx.send(buf);
    }
    let walked = walker.join().map_err(|_| anyhow::anyhow!("the directory walking thread panicked"))?;
    progress.finish_and_clear();
    walked?;
    Ok(NarHash(hasher.finalize().into()))
}

const CHUNK: usize = 1 << 20;
const CHUNKS: usize = 4;

/// The hashing side hung up; only happens when this thread is failing anyway.
fn stopped(e: io::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("hashing stopped")
}

/// Fills fixed-size buffers and hands them to the hashing thread; empty
/// buffers come back on `free`, so nothing is allocated per file.
struct ChunkWriter {
    buf: Option<Vec<u8>>,
    filled: usize,
    full: mpsc::SyncSender<(Vec<u8>, usize)>,
    free: mpsc::Receiver<Vec<u8>>,
}

impl ChunkWriter {
    fn hung_up() -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, "the hashing thread stopped")
    }

    /// The current buffer, with room for at least one byte.
    fn room(&mut self) -> io::Result<&mut [u8]> {
        if self.buf.as_ref().is_some_and(|b| self.filled == b.len()) {
            self.flush_chunk()?;
        }
        if self.buf.is_none() {
            self.buf = Some(self.free.recv().map_err(|_| Self::hung_up())?);
            self.filled = 0;
        }
        let filled = self.filled;
        Ok(&mut self.buf.as_mut().expect("just set")[filled..])
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        if let Some(buf) = self.buf.take() {
            if self.filled > 0 {
                self.full.send((buf, self.filled)).map_err(|_| Self::hung_up())?;
            } else {
                self.buf = Some(buf);
            }
        }
        self.filled = 0;
        Ok(())
    }

    /// Reads exactly `size` bytes of `file` straight into the buffers.
    /// Returns how many bytes were read before an early end of file.
    fn fill_from(&mut self, file: &mut File, size: u64) -> io::Result<u64> {
        let mut left = size;
        while left > 0 {
            let room = self.room()?;
            let want = room.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match file.read(&mut room[..want]) {
                Ok(0) => return Ok(size - left),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.filled += n;
            left -= n as u64;
        }
        Ok(size)
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.room()?;
        let n = room.len().min(data.len());
        room[..n].copy_from_slice(&data[..n]);
        self.filled += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Walk<'a> {
    sink: &'a mut NarSink<ChunkWriter>,
}

impl Walk<'_> {
    fn node(&mut self, path: &mut PathBuf, meta: &Metadata) -> Result<()> {
        let file_type = meta.file_type();
        if file_type.is_symlink() {
            let target = fs::read_link(&*path).with_context(|| format!("cannot read the symlink {}", path.display()))?;
            self.sink.symlink(target.as_os_str().as_bytes()).map_err(stopped)
        } else if file_type.is_file() {
            self.file(path, meta)
        } else if file_type.is_dir() {
            self.directory(path)
        } else {
            anyhow::bail!(
                "{} is a socket, fifo or device: NARs (and Nix) only hold regular files, directories and symlinks",
                path.display()
            )
        }
    }

    fn file(&mut self, path: &Path, meta: &Metadata) -> Result<()> {
        let executable = meta.permissions().mode() & 0o100 != 0;
        let size = meta.size();
        let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        self.sink.begin_regular(executable, size).map_err(stopped)?;
        let read = self.sink.get_mut().fill_from(&mut file, size).with_context(|| format!("cannot read {}", path.display()))?;
        if read != size {
            anyhow::bail!(
                "{} shrank from {size} to {read} bytes while being hashed; hash it again once nothing writes to it",
                path.display()
            );
        }
        self.sink.contents_written(size).map_err(stopped)?;
        self.sink.end_regular().map_err(stopped)
    }

    fn directory(&mut self, path: &mut PathBuf) -> Result<()> {
        let mut entries = fs::read_dir(&*path)
            .and_then(|dir| dir.collect::<io::Result<Vec<_>>>())
            .with_context(|| format!("cannot list the directory {}", path.display()))?;
        entries.sort_unstable_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
        self.sink.begin_directory().map_err(stopped)?;
        for entry in entries {
            let name = entry.file_name();
            path.push(&name);
            // lstat relative to the open directory: never follows symlinks.
            let meta = entry.metadata().with_context(|| format!("cannot read {}", path.display()))?;
            self.sink.begin_entry(name.as_bytes()).map_err(stopped)?;
            self.node(path, &meta)?;
            self.sink.end_entry().map_err(stopped)?;
            path.pop();
        }
        self.sink.end_directory().map_err(stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_length_prefixed_and_padded() {
        let mut buf = Vec::new();
        push_token(&mut buf, b"abc").unwrap();
        assert_eq!(buf, [3, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0]);
        buf.clear();
        push_token(&mut buf, b"").unwrap();
        assert_eq!(buf, [0; 8]);
    }

    #[test]
    fn short_contents_are_an_error() {
        let mut sink = NarSink::new(Vec::new()).unwrap();
        sink.begin_regular(false, 4).unwrap();
        sink.contents(b"abc").unwrap();
        assert!(sink.end_regular().is_err());
        assert!(sink.contents(b"toolong").is_err());
    }
}
