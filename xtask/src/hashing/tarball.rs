//! The hash of an unpacked archive, as `nix-prefetch-url --unpack` computes
//! it: tar (plain, gzip or xz) or zip, recognised by content like
//! libarchive does, never by file name; tar is read as a stream, straight
//! from the network for a URL.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use anyhow::{bail, Context, Result};
use tar::EntryType;

use super::nar::{HashWriter, NarSink};
use super::unpack::{show, Tree};
use super::NarHash;

/// The NAR hash of the archive at `source` (a file path, a `file://`,
/// `http://` or `https://` URL) once unpacked; see [`Tree::write_nar`] for
/// what is hashed when the archive has one or several top-level entries.
pub fn hash_archive(source: &str) -> Result<NarHash> {
    let tree = unpack(source)?;
    let mut sink = NarSink::new(HashWriter::default())?;
    tree.write_nar(&mut sink)?;
    Ok(sink.into_inner().finish().0)
}

/// Reads the archive at `source` into a [`Tree`].
pub fn unpack(source: &str) -> Result<Tree> {
    if source.starts_with("http://") || source.starts_with("https://") {
        return unpack_url(source);
    }
    let path = match source.strip_prefix("file://") {
        Some(rest) => file_url_path(source, rest)?,
        None => source,
    };
    let file = File::open(path).with_context(|| format!("cannot open the archive {path}"))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        bail!("{path} is a directory, not an archive; `cargo xtask hash path {path}` hashes a directory");
    }
    unpack_file(Path::new(path), file)
}

/// The path of a `file://` URL (`rest` is what follows `file://`): an
/// absolute path (`file:///tmp/x`) or `localhost/...`. Anything else names
/// another host (`file://tmp/x` is host `tmp`, path `/x`), which curl and
/// Nix refuse, so it is an error here too rather than a relative path.
fn file_url_path<'a>(source: &str, rest: &'a str) -> Result<&'a str> {
    if rest.starts_with('/') {
        return Ok(rest);
    }
    if let Some(path) = rest.strip_prefix("localhost").filter(|p| p.starts_with('/')) {
        return Ok(path);
    }
    let host = rest.split('/').next().unwrap_or(rest);
    bail!(
        "`{source}` names the host `{host}`, not a local file: write file:///{rest} (three slashes) for the absolute path /{rest}, or give a plain path"
    )
}

fn unpack_file(path: &Path, file: File) -> Result<Tree> {
    let what = path.display().to_string();
    let (head, stream) = peek(BufReader::with_capacity(1 << 20, file), HEAD_LEN).with_context(|| format!("cannot read {what}"))?;
    let kind = sniff(&head, &what)?;
    if kind == Kind::Zip {
        let (_, reader) = stream.into_inner();
        let mut file = reader.into_inner();
        file.rewind()?;
        return read_zip(file, &what);
    }
    read_stream(kind, stream, &what)
}

fn unpack_url(url: &str) -> Result<Tree> {
    let what = format!("download {url}");
    let response = crate::http::get(url, &what)?;
    let body = response.into_body();
    let bar = crate::progress::bytes_bar(format!("downloading {url}"), body.content_length());
    // Network errors are told apart from damaged archives: the tar and zip
    // readers would report a broken transfer as a damaged archive.
    let network_error = std::rc::Rc::new(std::cell::RefCell::new(None));
    let body = WatchedRead { inner: bar.wrap_read(body.into_reader()), error: network_error.clone() };
    let tree = (|| {
        let (head, mut stream) = peek(BufReader::with_capacity(1 << 20, body), HEAD_LEN)?;
        let kind = sniff(&head, url)?;
        if kind == Kind::Zip {
            // Zip keeps its index at the end: it needs a seekable copy.
            let mut spill = tempfile::tempfile().context("cannot create a temporary file for the zip download")?;
            io::copy(&mut stream, &mut spill)?;
            spill.rewind()?;
            read_zip(spill, url)
        } else {
            read_stream(kind, stream, url)
        }
    })();
    bar.finish_and_clear();
    match (tree, network_error.take()) {
        (Ok(tree), _) => Ok(tree),
        (Err(_), Some(err)) => Err(crate::http::read_error(err, &what)),
        (Err(err), None) => Err(err),
    }
}

/// A reader that keeps the first error of `inner` (the network) aside.
struct WatchedRead<R> {
    inner: R,
    error: std::rc::Rc<std::cell::RefCell<Option<io::Error>>>,
}

impl<R: Read> Read for WatchedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            let mut slot = self.error.borrow_mut();
            if slot.is_none() {
                let kind = if crate::http::is_timeout(e) { io::ErrorKind::TimedOut } else { e.kind() };
                *slot = Some(io::Error::new(kind, e.to_string()));
            }
        })
    }
}

/// How many bytes are read ahead to recognise the format: one tar block.
const HEAD_LEN: usize = 512;

/// A stream whose first bytes were read ahead, put back in front.
type Peeked<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// The first `n` bytes of `reader` (fewer only at its end), and the whole
/// stream with them put back in front.
fn peek<R: Read>(mut reader: R, n: usize) -> io::Result<(Vec<u8>, Peeked<R>)> {
    let mut head = Vec::with_capacity(n);
    (&mut reader).take(n as u64).read_to_end(&mut head)?;
    Ok((head.clone(), io::Cursor::new(head).chain(reader)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    Gzip,
    Xz,
    Zip,
    Tar,
}

/// Recognises the format from the first bytes, as libarchive does.
fn sniff(head: &[u8], what: &str) -> Result<Kind> {
    Ok(match head {
        [] => Kind::Empty,
        [0x1f, 0x8b, ..] => Kind::Gzip,
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Kind::Xz,
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => Kind::Zip,
        [b'B', b'Z', b'h', ..] => bail!("{what}: bzip2-compressed archives are not supported (only tar, tar.gz, tar.xz and zip)"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => bail!("{what}: zstd-compressed archives are not supported (only tar, tar.gz, tar.xz and zip)"),
        _ => Kind::Tar,
    })
}

fn read_stream(kind: Kind, reader: impl Read, what: &str) -> Result<Tree> {
    match kind {
        // libarchive's "empty" format: no entries, an empty directory.
        Kind::Empty => Ok(Tree::new()),
        Kind::Gzip => read_tar(flate2::read::MultiGzDecoder::new(reader), Some("gzip"), what),
        Kind::Xz => read_tar(xz2::read::XzDecoder::new_multi_decoder(reader), Some("xz"), what),
        Kind::Tar => read_tar(reader, None, what),
        Kind::Zip => unreachable!("zip needs a seekable file"),
    }
}

/// Whether `block` is a tar header (its checksum holds, as libarchive's tar
/// reader requires) or the all-zero block that ends an archive.
fn is_tar_block(block: &[u8]) -> bool {
    if block.len() < HEAD_LEN {
        return false;
    }
    let block = &block[..HEAD_LEN];
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let field = &block[148..156];
    let digits: String = field.iter().map(|&b| b as char).filter(|c| !matches!(c, ' ' | '\0')).collect();
    let Ok(stored) = u32::from_str_radix(&digits, 8) else { return false };
    let unsigned: u32 = block.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) }).sum();
    let signed: i32 = block.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { i32::from(b as i8) }).sum();
    stored == unsigned || i64::from(stored) == i64::from(signed)
}

fn read_tar(reader: impl Read, compression: Option<&str>, what: &str) -> Result<Tree> {
    let (head, reader) = match peek(reader, HEAD_LEN) {
        Ok(peeked) => peeked,
        Err(e) => {
            let format = compression.unwrap_or("tar");
            return Err(e).with_context(|| format!("{what}: damaged {format} data"));
        }
    };
    if head.is_empty() {
        return Ok(Tree::new());
    }
    if !is_tar_block(&head) {
        match compression {
            None => bail!(
                "{what} is not an archive: by its first bytes it is none of tar, gzip- or xz-compressed tar, zip; `cargo xtask hash path FILE` hashes a plain file"
            ),
            Some(format) => bail!("{what} is {format}-compressed, but what it holds is not a tar archive"),
        }
    }
    read_tar_entries(reader, what)
}

fn read_tar_entries(reader: impl Read, what: &str) -> Result<Tree> {
    let mut archive = tar::Archive::new(reader);
    let mut tree = Tree::new();
    let entries = archive.entries().with_context(|| format!("{what} is not a tar archive (nor gzip, xz or zip)"))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{what}: damaged tar archive"))?;
        let path = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644);
        let size = entry.size();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let entry_error = || format!("{what}: cannot unpack `{}`", show(&path));
        match kind {
            // pax global header (GitHub's `comment=<commit>`) and GNU volume
            // labels describe the archive, they are not files.
            EntryType::XGlobalHeader => {}
            _ if kind.as_byte() == b'V' => {}
            // 'D' is a GNU incremental-dump directory.
            _ if kind.is_dir() || kind.as_byte() == b'D' => tree.directory(&path).with_context(entry_error)?,
            // A link without a target is a regular (empty) file to
            // libarchive, with the entry's mode (checked against Nix).
            EntryType::Symlink | EntryType::Link if link.as_ref().is_none_or(|l| l.is_empty()) => {
                tree.file(&path, mode & 0o100 != 0, size, &mut entry).with_context(entry_error)?
            }
            EntryType::Symlink => tree.symlink(&path, link.as_deref().unwrap_or_default()).with_context(entry_error)?,
            EntryType::Link => {
                let target = link.unwrap_or_default();
                let data: Option<(bool, u64, &mut dyn Read)> = if size > 0 { Some((mode & 0o100 != 0, size, &mut entry)) } else { None };
                tree.hard_link(&path, &target, data).with_context(entry_error)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                bail!("{what}: `{}` is a device or fifo; Nix cannot hash those (file has an unsupported type)", show(&path))
            }
            // Old tar: a "regular file" whose name ends in '/' is a directory.
            EntryType::Regular if path.ends_with(b"/") => tree.directory(&path).with_context(entry_error)?,
            // POSIX: unknown types are regular files; so are contiguous and
            // GNU sparse files (the tar crate expands the holes).
            _ => tree.file(&path, mode & 0o100 != 0, size, &mut entry).with_context(entry_error)?,
        }
    }
    Ok(tree)
}

/// The type bits of a Unix mode.
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFIFO: u32 = 0o010000;

fn read_zip(file: File, what: &str) -> Result<Tree> {
    let mut archive =
        zip::ZipArchive::new(BufReader::with_capacity(1 << 20, file)).with_context(|| format!("{what} is not a readable zip archive"))?;
    let mut tree = Tree::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).with_context(|| format!("{what}: damaged zip entry #{index}"))?;
        let path = entry.name_raw().to_vec();
        let entry_error = || format!("{what}: cannot unpack `{}`", show(&path));
        // libarchive's reading of the mode: Unix attributes when the entry
        // was made on Unix, DOS attributes mapped to 0775/0664, else 0664;
        // a name ending in '/' is a directory; no type means regular file.
        let mut mode = entry.unix_mode().unwrap_or(0o664);
        if mode == 0 {
            mode = 0o664;
        }
        if mode & S_IFMT == S_IFIFO {
            mode = (mode & !S_IFMT) | S_IFREG;
        }
        if mode & S_IFMT != S_IFDIR {
            if path.ends_with(b"/") {
                mode = (mode & !S_IFMT) | S_IFDIR;
            } else if mode & S_IFMT == 0 {
                mode |= S_IFREG;
            }
        }
        match mode & S_IFMT {
            S_IFDIR => tree.directory(&path).with_context(entry_error)?,
            S_IFREG => {
                let size = entry.size();
                tree.file(&path, mode & 0o100 != 0, size, &mut entry).with_context(entry_error)?
            }
            S_IFLNK => {
                // Read one byte past the limit: `symlink` refuses what is too long.
                let mut target = Vec::new();
                (&mut entry).take(super::unpack::MAX_SYMLINK_TARGET_LEN as u64 + 1).read_to_end(&mut target).with_context(entry_error)?;
                tree.symlink(&path, &target).with_context(entry_error)?;
            }
            _ => bail!("{what}: `{}` is a device or socket; Nix cannot hash those", show(&path)),
        }
    }
    Ok(tree)
}
