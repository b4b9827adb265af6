//! `hash tarball` against the real `nix-prefetch-url --unpack`, on archives
//! built here with every oddity Nix's extraction has an answer for.

mod support;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use support::hash::{nix_hash_path, nix_prefetch_unpack, run_xtask, strategy, Gen};
use support::{require_command, require_nix};
use xtask::hashing::tarball::hash_archive;

/// One raw tar member: any name bytes, any type flag.
struct Member {
    name: Vec<u8>,
    kind: u8,
    mode: u32,
    data: Vec<u8>,
    link: Vec<u8>,
}

fn file(name: &str, data: &[u8], mode: u32) -> Member {
    Member { name: name.into(), kind: b'0', mode, data: data.into(), link: vec![] }
}
fn dir(name: &str) -> Member {
    Member { name: name.into(), kind: b'5', mode: 0o755, data: vec![], link: vec![] }
}
fn symlink(name: &str, target: &str) -> Member {
    Member { name: name.into(), kind: b'2', mode: 0o777, data: vec![], link: target.into() }
}
fn hardlink(name: &str, target: &str) -> Member {
    Member { name: name.into(), kind: b'1', mode: 0o644, data: vec![], link: target.into() }
}
fn typed(name: &str, kind: u8, data: &[u8]) -> Member {
    Member { name: name.into(), kind, mode: 0o644, data: data.into(), link: vec![] }
}

/// A GitHub-style pax global header carrying the commit.
fn pax_global_header() -> Member {
    let record = format!("52 comment={}\n", "0123456789abcdef0123456789abcdef01234567");
    assert_eq!(record.len(), 52);
    Member { name: b"pax_global_header".to_vec(), kind: b'g', mode: 0o666, data: record.into_bytes(), link: vec![] }
}

/// A tar archive with the members exactly as given (names longer than a
/// ustar header use GNU long-name members, as GNU tar writes them).
fn tar(members: &[Member]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for m in members {
        for (value, kind) in [(&m.name, tar::EntryType::GNULongName), (&m.link, tar::EntryType::GNULongLink)] {
            if value.len() > 99 {
                let mut long = tar::Header::new_gnu();
                long.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
                long.set_entry_type(kind);
                long.set_size(value.len() as u64 + 1);
                long.set_cksum();
                let mut bytes = value.clone();
                bytes.push(0);
                builder.append(&long, &bytes[..]).unwrap();
            }
        }
        let mut h = tar::Header::new_gnu();
        let n = m.name.len().min(99);
        h.as_gnu_mut().unwrap().name[..n].copy_from_slice(&m.name[..n]);
        let n = m.link.len().min(99);
        h.as_gnu_mut().unwrap().linkname[..n].copy_from_slice(&m.link[..n]);
        h.set_entry_type(tar::EntryType::new(m.kind));
        h.set_mode(m.mode);
        h.set_size(m.data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        builder.append(&h, &m.data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Our result for `archive` equals nix-prefetch-url's: the same nix32 hash
/// (through the library and the CLI), or an error from both.
fn assert_matches_nix(archive: &Path, case: &str) {
    if let Err(e) = compare_with_nix(archive, case) {
        panic!("{e}");
    }
}

fn compare_with_nix(archive: &Path, case: &str) -> Result<(), String> {
    compare_with(nix_prefetch_unpack(archive), archive, case)
}

/// Our result for `archive` against `nix`, what nix-prefetch-url said of it.
fn compare_with(nix: Result<String, String>, archive: &Path, case: &str) -> Result<(), String> {
    let ours = hash_archive(archive.to_str().unwrap());
    match (&nix, &ours) {
        (Ok(expected), Ok(got)) => {
            if &got.to_nix32() != expected {
                return Err(format!("{case}: hash differs from nix-prefetch-url"));
            }
            let cli = run_xtask([OsStr::new("hash"), "tarball".as_ref(), "--base32".as_ref(), archive.as_os_str()]);
            if cli.as_deref() != Ok(expected.as_str()) {
                return Err(format!("{case}: CLI says {cli:?}"));
            }
            Ok(())
        }
        (Err(_), Err(_)) => Ok(()),
        _ => {
            let short = |s: String| s.chars().take(300).collect::<String>();
            Err(format!("{case}: nix says {}, we say {}", short(format!("{nix:?}")), short(format!("{ours:?}"))))
        }
    }
}

fn edge_cases() -> Vec<(&'static str, Vec<Member>)> {
    let long_dir = "top/".to_string() + &"long-directory-name/".repeat(8);
    vec![
        (
            "github-style",
            vec![
                pax_global_header(),
                dir("repo-abc/"),
                file("repo-abc/README", b"hi\n", 0o664),
                dir("repo-abc/bin/"),
                file("repo-abc/bin/tool", b"#!/bin/sh\n", 0o775),
                symlink("repo-abc/link", "README"),
            ],
        ),
        (
            "exec-bits",
            vec![
                dir("top/"),
                file("top/u", b"1", 0o100),
                file("top/g", b"2", 0o010),
                file("top/o", b"3", 0o001),
                file("top/none", b"4", 0o000),
                file("top/all", b"5", 0o777),
            ],
        ),
        ("duplicate-later-wins", vec![file("top/a", b"one", 0o644), file("top/a", b"two", 0o755)]),
        ("hardlink-then-overwrite", vec![file("top/a", b"one", 0o755), hardlink("top/b", "top/a"), file("top/a", b"two", 0o644)]),
        ("hardlink-to-symlink", vec![symlink("top/s", "target"), hardlink("top/h", "top/s")]),
        ("hardlink-missing", vec![hardlink("top/h", "top/nope")]),
        ("hardlink-self", vec![file("top/a", b"a", 0o644), hardlink("top/a", "top/a")]),
        ("hardlink-to-dir", vec![dir("top/d/"), hardlink("top/h", "top/d")]),
        ("hardlink-through-symlink", vec![file("top/d/a", b"a", 0o644), symlink("top/l", "d"), hardlink("top/h", "top/l/a")]),
        ("file-over-empty-dir", vec![dir("top/d/"), file("top/d", b"file", 0o644)]),
        ("file-over-nonempty-dir", vec![file("top/d/x", b"x", 0o644), file("top/d", b"file", 0o644)]),
        ("dir-over-file", vec![file("top/d", b"file", 0o644), dir("top/d/")]),
        ("dir-over-symlink", vec![dir("top/d/"), symlink("top/l", "d"), dir("top/l/"), file("top/l/y", b"y", 0o644)]),
        ("symlink-over-file", vec![file("top/a", b"a", 0o644), symlink("top/a", "b")]),
        ("file-below-file", vec![file("top/f", b"f", 0o644), file("top/f/x", b"x", 0o644)]),
        ("through-symlink", vec![dir("top/d/"), symlink("top/l", "d"), file("top/l/x", b"x", 0o644)]),
        ("dotdot", vec![file("top/../x", b"x", 0o644)]),
        ("dot-and-slashes", vec![dir("./"), dir("./top/"), file("./top/./a", b"a", 0o644), file("top//b", b"b", 0o644)]),
        ("absolute", vec![file("/top/a", b"a", 0o644)]),
        ("implicit-parents", vec![file("top/x/y/z", b"z", 0o644)]),
        ("single-file", vec![file("only", b"hello", 0o755)]),
        ("single-symlink", vec![symlink("only", "nowhere")]),
        ("several-top-level", vec![file("a", b"a", 0o644), file("b/c", b"c", 0o644)]),
        ("no-members", vec![]),
        ("old-style-dir", vec![typed("top/", b'0', b""), typed("top/olddir/", 0, b""), file("top/f", b"f", 0o644)]),
        ("unknown-and-contiguous-types", vec![typed("top/z", b'Z', b"zz"), typed("top/c", b'7', b"cc")]),
        ("fifo", vec![typed("top/p", b'6', b"")]),
        ("empty-file-and-dir", vec![file("top/empty", b"", 0o644), dir("top/empty-dir/")]),
        ("non-utf8-names", vec![Member { name: b"top/caf\xe9\xff".to_vec(), kind: b'0', mode: 0o644, data: b"x".to_vec(), link: vec![] }]),
        ("long-names", vec![file(&(long_dir.clone() + "file-with-a-long-name"), b"deep", 0o644), symlink("top/l", &long_dir)]),
        (
            "byte-order",
            vec![
                file("top/foo.c", b"1", 0o644),
                file("top/foo/x", b"2", 0o644),
                file("top/Foo", b"3", 0o644),
                file("top/foo-bar", b"4", 0o644),
                file("top/\u{e9}", b"5", 0o644),
            ],
        ),
        // Links without a target: libarchive extracts a regular empty file
        // with the entry's mode.
        ("empty-symlink-target", vec![Member { mode: 0o755, ..symlink("top/s", "") }, file("top/f", b"x", 0o644)]),
        ("empty-hardlink-target", vec![Member { mode: 0o755, ..hardlink("top/h", "") }, file("top/f", b"x", 0o644)]),
        // Names Nix cannot put on disk (NAME_MAX 255, PATH_MAX 4096) are
        // errors; just below the limits they hash.
        ("name-255", vec![file(&format!("top/{}", "n".repeat(255)), b"x", 0o644)]),
        ("name-256", vec![file(&format!("top/{}", "n".repeat(256)), b"x", 0o644)]),
        ("path-3900", vec![file(&format!("top/{}f", "abcdefghi/".repeat(389)), b"x", 0o644)]),
        ("depth-1979", vec![file(&format!("top/{}f", "d/".repeat(1979)), b"x", 0o644)]),
        ("depth-5000", vec![file(&format!("top/{}f", "d/".repeat(5000)), b"x", 0o644)]),
        ("symlink-target-4095", vec![symlink("top/s", &"t".repeat(4095)), file("top/f", b"x", 0o644)]),
        ("symlink-target-4096", vec![symlink("top/s", &"t".repeat(4096)), file("top/f", b"x", 0o644)]),
        (
            "padding-sizes",
            (0..20)
                .map(|n| (format!("top/{n}"), n))
                .map(|(name, n)| Member { name: name.into_bytes(), kind: b'0', mode: 0o644, data: vec![b'x'; n], link: vec![] })
                .collect(),
        ),
    ]
}

#[test]
fn edge_case_tarballs_match_nix() {
    if !require_nix() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, (case, members)) in edge_cases().into_iter().enumerate() {
        let raw = tar(&members);
        // Every compression on a few cases, plain tar on the rest: the
        // format is recognised by content, not name, so names say nothing.
        let variants: Vec<(&str, Vec<u8>)> = if i % 5 == 0 {
            vec![("tar", raw.clone()), ("tar.gz", gzip(&raw)), ("tar.xz", xz(&raw))]
        } else {
            vec![(
                ["tar.gz", "tar.xz", "tar"][i % 3],
                match i % 3 {
                    0 => gzip(&raw),
                    1 => xz(&raw),
                    _ => raw.clone(),
                },
            )]
        };
        for (ext, bytes) in variants {
            let path = dir.path().join(format!("{case}.{ext}"));
            std::fs::write(&path, bytes).unwrap();
            if let Err(e) = compare_with_nix(&path, &format!("{case}.{ext}")) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{} case(s) differ from Nix:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn big_files_spill_and_stream() {
    if !require_nix() {
        return;
    }
    // Larger than the chunking of every layer (tar blocks, decoder
    // buffers, the 1 MiB read chunk), and not a multiple of 8.
    let big: Vec<u8> = (0..(5 << 20) + 3).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big.tar.xz");
    std::fs::write(&path, xz(&tar(&[dir("top/"), file("top/big", &big, 0o755), file("top/small", b"s", 0o644)]))).unwrap();
    assert_matches_nix(&path, "big");
}

/// The archive of a generated tree: `top/` holding it, members in the
/// order given, with or without directory members.
fn tree_members(tree: &Gen, prefix: &[u8], with_dirs: bool, out: &mut Vec<Member>) {
    match tree {
        Gen::File { data, mode } => out.push(Member { name: prefix.to_vec(), kind: b'0', mode: *mode, data: data.clone(), link: vec![] }),
        Gen::Symlink(target) => out.push(Member { name: prefix.to_vec(), kind: b'2', mode: 0o777, data: vec![], link: target.clone() }),
        Gen::Dir(children) => {
            if with_dirs || children.is_empty() {
                let mut name = prefix.to_vec();
                name.push(b'/');
                out.push(Member { name, kind: b'5', mode: 0o755, data: vec![], link: vec![] });
            }
            for (child_name, child) in children {
                let mut path = prefix.to_vec();
                path.push(b'/');
                path.extend_from_slice(child_name);
                tree_members(child, &path, with_dirs, out);
            }
        }
    }
}

/// The zip of a generated tree, written by the zip crate (Unix modes).
fn zip_of(tree: &Gen) -> Option<Vec<u8>> {
    fn add(w: &mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>, tree: &Gen, path: &str) {
        let options = zip::write::SimpleFileOptions::default();
        match tree {
            Gen::File { data, mode } => {
                w.start_file(path, options.unix_permissions(*mode)).unwrap();
                w.write_all(data).unwrap();
            }
            Gen::Symlink(target) => w.add_symlink(path, std::str::from_utf8(target).unwrap(), options).unwrap(),
            Gen::Dir(children) => {
                w.add_directory(format!("{path}/"), options).unwrap();
                for (name, child) in children {
                    add(w, child, &format!("{path}/{}", std::str::from_utf8(name).unwrap()));
                }
            }
        }
    }
    fn utf8(tree: &Gen) -> bool {
        match tree {
            Gen::File { .. } => true,
            Gen::Symlink(t) => std::str::from_utf8(t).is_ok(),
            Gen::Dir(c) => c.iter().all(|(n, t)| std::str::from_utf8(n).is_ok() && utf8(t)),
        }
    }
    if !utf8(tree) {
        return None; // the zip crate writes UTF-8 names only; Info-ZIP is tested below
    }
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    add(&mut w, tree, "top");
    Some(w.finish().unwrap().into_inner())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    /// A random tree as tar.gz (with and without directory members) and as
    /// zip hashes like nix-prefetch-url, and like `hash path` of the tree.
    #[test]
    fn random_archives_match_nix(tree in strategy::dir_tree(), with_dirs in any::<bool>()) {
        if !require_nix() {
            return Ok(());
        }
        let dir = tempfile::tempdir().unwrap();
        let mut members = Vec::new();
        tree_members(&tree, b"top", with_dirs, &mut members);
        let tgz = dir.path().join("t.tar.gz");
        std::fs::write(&tgz, gzip(&tar(&members))).unwrap();
        assert_matches_nix(&tgz, "random tar.gz");
        let on_disk = dir.path().join("top");
        tree.materialize(&on_disk);
        prop_assert_eq!(hash_archive(tgz.to_str().unwrap()).unwrap(), xtask::hashing::nar::hash_path(&on_disk).unwrap());
        if let Some(zip) = zip_of(&tree) {
            let path = dir.path().join("t.zip");
            std::fs::write(&path, zip).unwrap();
            assert_zip_matches_nix(&path, &on_disk, "random zip");
        }
    }
}

/// What Nix 2.8 (Debian 12's nix-bin, the peer CI runs) says of a zip
/// member whose name carries the UTF-8 flag and is not ASCII: it never sets
/// a locale, libarchive cannot convert the name to "C", and the unpack
/// fails. Later Nix warns and keeps the UTF-8 bytes (NixOS/nix#14780, its
/// `tarfile.cc` read on master, 2025-12), as `hash tarball` does.
const NIX_2_8_UTF8_ZIP_NAME: &str = "Pathname cannot be converted from UTF-8 to current locale";

/// A zip of the tree at `tree_on_disk` hashes like nix-prefetch-url; where
/// the Nix here refuses its UTF-8 names (above), like `nix hash path` of the
/// tree itself, which is what a Nix that keeps the bytes unpacks.
fn assert_zip_matches_nix(archive: &Path, tree_on_disk: &Path, case: &str) {
    match nix_prefetch_unpack(archive) {
        Err(e) if e.contains(NIX_2_8_UTF8_ZIP_NAME) => {
            let ours = hash_archive(archive.to_str().unwrap()).unwrap_or_else(|e| panic!("{case}: we fail: {e:#}"));
            assert_eq!(ours.to_sri(), nix_hash_path(tree_on_disk, None), "{case}: differs from nix hash path of the tree");
        }
        nix => {
            if let Err(e) = compare_with(nix, archive, case) {
                panic!("{e}");
            }
        }
    }
}

/// A UTF-8-flagged non-ASCII name (the zip crate sets the flag; Info-ZIP
/// does not): the case CI's random test once drew, kept as a fixed one.
#[test]
fn utf8_flagged_zip_names_hash_as_their_bytes() {
    if !require_nix() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = Gen::Dir([("\u{c0}".as_bytes().to_vec(), Gen::File { data: vec![], mode: 0o644 })].into_iter().collect());
    let on_disk = dir.path().join("top");
    tree.materialize(&on_disk);
    let path = dir.path().join("t.zip");
    std::fs::write(&path, zip_of(&tree).unwrap()).unwrap();
    assert_zip_matches_nix(&path, &on_disk, "UTF-8 zip name");
}

#[test]
fn info_zip_archive_matches_nix() {
    if !require_nix() || !require_command("zip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("top");
    support::hash::edge_case_tree(&root);
    let archive = dir.path().join("info.zip");
    // -y stores symlinks as links; -r recurses; names are stored as bytes.
    let status =
        std::process::Command::new("zip").current_dir(dir.path()).args(["-q", "-r", "-y"]).arg(&archive).arg("top").status().unwrap();
    assert!(status.success());
    assert_matches_nix(&archive, "Info-ZIP");
}

/// Serves `body` once over HTTP on localhost; returns the URL.
fn serve_once(body: Vec<u8>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let head =
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/x-gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
    });
    format!("http://127.0.0.1:{port}/repo/archive/abc.tar.gz")
}

#[test]
fn url_streams_like_the_file() {
    let members = [pax_global_header(), dir("repo-abc/"), file("repo-abc/a", b"a", 0o644), file("repo-abc/x", b"x", 0o755)];
    let bytes = gzip(&tar(&members));
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("a.tar.gz");
    std::fs::write(&path, &bytes).unwrap();
    let from_file = hash_archive(path.to_str().unwrap()).unwrap();
    let url = serve_once(bytes);
    assert_eq!(run_xtask(["hash", "tarball", &url]).unwrap(), from_file.to_sri());
    let file_url = format!("file://{}", path.display());
    assert_eq!(hash_archive(&file_url).unwrap(), from_file);
}

#[test]
fn unsupported_and_damaged_archives_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bz = dir.path().join("a.tar.bz2");
    std::fs::write(&bz, b"BZh91AY&SY....").unwrap();
    let err = run_xtask([OsStr::new("hash"), "tarball".as_ref(), bz.as_os_str()]).unwrap_err();
    assert!(err.contains("bzip2"), "{err}");
    let truncated = dir.path().join("t.tar.gz");
    let full = gzip(&tar(&[file("top/a", &[7u8; 5000], 0o644)]));
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    assert!(run_xtask([OsStr::new("hash"), "tarball".as_ref(), truncated.as_os_str()]).is_err());
    let missing = run_xtask(["hash", "tarball", "/nonexistent/a.tar.gz"]).unwrap_err();
    assert!(missing.contains("/nonexistent/a.tar.gz"), "{missing}");
}

/// Not an archive, a directory, a `file://` URL naming a host: each says
/// what it is, never "damaged tar archive".
#[test]
fn non_archives_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some text, longer than nothing\n".repeat(40)).unwrap();
    let err = run_xtask([OsStr::new("hash"), "tarball".as_ref(), text.as_os_str()]).unwrap_err();
    assert!(err.contains("is not an archive") && !err.contains("damaged"), "{err}");
    let gz = dir.path().join("notes.txt.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&text).unwrap())).unwrap();
    let err = run_xtask([OsStr::new("hash"), "tarball".as_ref(), gz.as_os_str()]).unwrap_err();
    assert!(err.contains("gzip-compressed, but what it holds is not a tar archive"), "{err}");
    let err = run_xtask([OsStr::new("hash"), "tarball".as_ref(), dir.path().as_os_str()]).unwrap_err();
    assert!(err.contains("is a directory, not an archive"), "{err}");
    let err = run_xtask(["hash", "tarball", "file://tmp/a.tar.gz"]).unwrap_err();
    assert!(err.contains("names the host `tmp`") && err.contains("file:///tmp/a.tar.gz"), "{err}");
}
