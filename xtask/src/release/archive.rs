//! Bit-for-bit reproducible `.tar.gz` archives: entries sorted by path,
//! every directory listed, a fixed mtime, owner and group 0 with no names,
//! modes 0755 (directories, shared libraries) or 0644, ustar headers, and a
//! gzip stream with no name and no timestamp, compressed at level 6 by
//! zlib-rs (flate2's backend, named in xtask/Cargo.toml) at the version
//! Cargo.lock pins: another deflate implementation gives other bytes.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{bail, Context, Result};

/// One file of an archive.
pub struct Entry {
    /// `/`-separated, relative, no `..`.
    pub path: String,
    pub contents: Vec<u8>,
    pub executable: bool,
}

/// Writes `entries` as a gzip-compressed tar stream to `out`. Every
/// directory above an entry gets its own header. Returns `out`.
pub fn write_tar_gz<W: Write>(entries: &[Entry], mtime: u64, out: W) -> Result<W> {
    let mut paths = BTreeSet::new();
    for entry in entries {
        let p = &entry.path;
        if p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            bail!("`{p}` is not a clean relative path for an archive");
        }
        if !paths.insert(p.as_str()) {
            bail!("`{p}` is in the archive twice");
        }
    }
    let mut dirs = BTreeSet::new();
    for entry in entries {
        let mut at = 0;
        while let Some(i) = entry.path[at..].find('/') {
            dirs.insert(&entry.path[..at + i]);
            at += i + 1;
        }
    }
    if let Some(clash) = dirs.iter().find(|d| paths.contains(*d)) {
        bail!("`{clash}` is both a file and a directory");
    }

    enum Item<'a> {
        Dir(&'a str),
        File(&'a Entry),
    }
    let mut items: Vec<(&str, Item)> = dirs.iter().map(|d| (*d, Item::Dir(d))).collect();
    items.extend(entries.iter().map(|e| (e.path.as_str(), Item::File(e))));
    // Byte order of the paths: a directory sorts before its contents.
    items.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

    let gz = flate2::GzBuilder::new().mtime(0).operating_system(3).write(out, flate2::Compression::new(6));
    let mut tar = tar::Builder::new(gz);
    for (_, item) in items {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        let (path, data, mode): (String, &[u8], u32) = match item {
            Item::Dir(d) => {
                header.set_entry_type(tar::EntryType::Directory);
                (format!("{d}/"), &[], 0o755)
            }
            Item::File(e) => {
                header.set_entry_type(tar::EntryType::Regular);
                (e.path.clone(), &e.contents, if e.executable { 0o755 } else { 0o644 })
            }
        };
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        tar.append_data(&mut header, &path, data).with_context(|| format!("cannot archive {path}"))?;
    }
    let gz = tar.into_inner().context("cannot finish the tar stream")?;
    gz.finish().context("cannot finish the gzip stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_with_directories_and_fixed_metadata() {
        let entries = vec![
            Entry { path: "p/share/x.json".into(), contents: b"{}".to_vec(), executable: false },
            Entry { path: "p/lib/a.so".into(), contents: vec![1, 2, 3], executable: true },
        ];
        let bytes = write_tar_gz(&entries, 1_771_655_807, Vec::new()).unwrap();
        assert_eq!(bytes, write_tar_gz(&entries, 1_771_655_807, Vec::new()).unwrap());
        // gzip header: no name (FLG 0), MTIME 0, OS 3.
        assert_eq!(&bytes[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let listed: Vec<(String, u32, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (e.path().unwrap().to_string_lossy().into_owned(), h.mode().unwrap(), h.mtime().unwrap(), h.uid().unwrap())
            })
            .collect();
        let want = [("p/", 0o755), ("p/lib/", 0o755), ("p/lib/a.so", 0o755), ("p/share/", 0o755), ("p/share/x.json", 0o644)];
        assert_eq!(listed.len(), want.len());
        for ((path, mode, mtime, uid), (want_path, want_mode)) in listed.iter().zip(want) {
            assert_eq!((path.as_str(), *mode, *mtime, *uid), (want_path, want_mode, 1_771_655_807, 0));
        }
        assert!(write_tar_gz(&[Entry { path: "../x".into(), contents: vec![], executable: false }], 0, Vec::new()).is_err());
    }
}
