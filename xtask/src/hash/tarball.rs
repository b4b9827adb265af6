//! The hash of an unpacked archive, as `nix-prefetch-url --unpack` computes
//! it: tar (plain, gzip or xz) or zip, recognised by content like
//! libarchive does, never by file name; tar is read as a stream, straight
//! from the network for a URL.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
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
    if let Some(url) = source.strip_prefix("http://").or(source.strip_prefix("https://")).map(|_| source) {
        return unpack_url(url);
    }
    let path = source.strip_prefix("file://").unwrap_or(source);
    let file = File::open(path).with_context(|| format!("cannot open the archive {path}"))?;
    unpack_file(Path::new(path), file)
}

fn unpack_file(path: &Path, file: File) -> Result<Tree> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let kind = sniff(&mut reader).with_context(|| format!("cannot read {}", path.display()))?;
    let what = path.display().to_string();
    if kind == Kind::Zip {
        let mut file = reader.into_inner();
        file.rewind()?;
        return read_zip(file, &what);
    }
    read_stream(kind, reader, &what)
}

fn unpack_url(url: &str) -> Result<Tree> {
    let response =
        crate::http::agent().get(url).call().with_context(|| format!("cannot download {url} (check the URL and your network)"))?;
    let body = response.into_body();
    let bar = crate::progress::bytes_bar(format!("downloading {url}"), body.content_length());
    let mut reader = BufReader::with_capacity(1 << 20, bar.wrap_read(body.into_reader()));
    let kind = sniff(&mut reader).with_context(|| format!("cannot download {url}"))?;
    let tree = if kind == Kind::Zip {
        // Zip keeps its index at the end: it needs a seekable copy.
        let mut spill = tempfile::tempfile().context("cannot create a temporary file for the zip download")?;
        io::copy(&mut reader, &mut spill).with_context(|| format!("cannot download {url}"))?;
        spill.rewind()?;
        read_zip(spill, url)
    } else {
        read_stream(kind, reader, url)
    };
    bar.finish_and_clear();
    tree
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
fn sniff(reader: &mut impl BufRead) -> Result<Kind> {
    let head = reader.fill_buf()?;
    Ok(match head {
        [] => Kind::Empty,
        [0x1f, 0x8b, ..] => Kind::Gzip,
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Kind::Xz,
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => Kind::Zip,
        [b'B', b'Z', b'h', ..] => bail!("bzip2-compressed archives are not supported (only tar, tar.gz, tar.xz and zip)"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => bail!("zstd-compressed archives are not supported (only tar, tar.gz, tar.xz and zip)"),
        _ => Kind::Tar,
    })
}

fn read_stream(kind: Kind, reader: impl BufRead, what: &str) -> Result<Tree> {
    match kind {
        // libarchive's "empty" format: no entries, an empty directory.
        Kind::Empty => Ok(Tree::new()),
        Kind::Gzip => read_tar(flate2::bufread::MultiGzDecoder::new(reader), what),
        Kind::Xz => read_tar(xz2::bufread::XzDecoder::new_multi_decoder(reader), what),
        Kind::Tar => read_tar(reader, what),
        Kind::Zip => unreachable!("zip needs a seekable file"),
    }
}

fn read_tar(reader: impl Read, what: &str) -> Result<Tree> {
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
            EntryType::Symlink => {
                let target = link.ok_or_else(|| anyhow::anyhow!("symlink `{}` has no target", show(&path)))?;
                tree.symlink(&path, &target).with_context(entry_error)?;
            }
            EntryType::Link => {
                let target = link.ok_or_else(|| anyhow::anyhow!("hard link `{}` has no target", show(&path)))?;
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
                let mut target = Vec::new();
                entry.read_to_end(&mut target).with_context(entry_error)?;
                tree.symlink(&path, &target).with_context(entry_error)?;
            }
            _ => bail!("{what}: `{}` is a device or socket; Nix cannot hash those", show(&path)),
        }
    }
    Ok(tree)
}
