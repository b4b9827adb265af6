//! Property tests over the parsers that read untrusted input: tar (plain,
//! gzip, xz) and zip archives (`hash tarball`), wheels (finding and
//! extracting the plugin), pins.toml (`pins check`). Inputs are valid seeds
//! with random edits (bytes flipped, set, inserted, removed, the end cut
//! off) and random member names. Properties: no panic, ever; an error or a
//! result; extraction never writes outside its directory; a pins.toml that
//! passes holds only names that are safe file names.
//! (PyPI's JSON is fuzzed by a unit test in src/wheels/pypi.rs.)
//!
//! `PJRTPKGS_FUZZ_CASES=N` sets the number of cases per property (default
//! 256, enough for CI; run with 20000 or more to hunt).

use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PJRTPKGS_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() }
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(at, bit)| Edit::Flip(at, bit)),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Set(at, b)),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64)).prop_map(|(at, b)| Edit::Insert(at, b)),
        1 => (any::<usize>(), 1..600usize).prop_map(|(at, n)| Edit::Remove(at, n)),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = data.len().max(1);
        match e {
            Edit::Flip(at, bit) if !data.is_empty() => data[at % len] ^= bit,
            Edit::Set(at, b) if !data.is_empty() => data[at % len] = *b,
            Edit::Insert(at, bytes) => {
                let at = at % (data.len() + 1);
                data.splice(at..at, bytes.iter().copied());
            }
            Edit::Remove(at, n) if !data.is_empty() => {
                let at = at % len;
                let end = (at + n).min(data.len());
                data.drain(at..end);
            }
            Edit::Truncate(at) => data.truncate(at % (data.len() + 1)),
            _ => {}
        }
    }
    data
}

/// Member names an attacker would try, and ordinary ones.
fn member_name() -> impl Strategy<Value = String> {
    let part = prop::sample::select(vec![
        "top",
        "a",
        "include",
        "..",
        ".",
        "",
        "lib.so",
        "x.h",
        "pjrt_c_api.h",
        "/",
        "//",
        "include/..",
        "é",
        "a b",
        "-x",
    ]);
    prop::collection::vec(part, 1..6).prop_map(|parts| parts.join("/"))
}

// ---- seeds -----------------------------------------------------------------

/// A tar archive using the features that parsers get wrong: directories,
/// executables, symlinks, hard links, GNU long names, a pax global header.
fn tar_seed(names: &[String]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |kind: tar::EntryType, name: &[u8], link: &[u8], data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        if name.len() > 99 || link.len() > 99 {
            for (value, long_kind) in [(name, tar::EntryType::GNULongName), (link, tar::EntryType::GNULongLink)] {
                if value.len() > 99 {
                    let mut long = tar::Header::new_gnu();
                    long.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
                    long.set_entry_type(long_kind);
                    long.set_size(value.len() as u64 + 1);
                    long.set_cksum();
                    let mut bytes = value.to_vec();
                    bytes.push(0);
                    builder.append(&long, &bytes[..]).unwrap();
                }
            }
        }
        let n = name.len().min(99);
        h.as_gnu_mut().unwrap().name[..n].copy_from_slice(&name[..n]);
        let n = link.len().min(99);
        h.as_gnu_mut().unwrap().linkname[..n].copy_from_slice(&link[..n]);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_cksum();
        builder.append(&h, data).unwrap();
    };
    add(tar::EntryType::XGlobalHeader, b"pax_global_header", b"", b"52 comment=0123456789abcdef0123456789abcdef01234567\n", 0o666);
    add(tar::EntryType::Directory, b"top/", b"", b"", 0o755);
    add(tar::EntryType::Regular, b"top/file", b"", b"contents\n", 0o644);
    add(tar::EntryType::Regular, b"top/bin/tool", b"", b"#!/bin/sh\n", 0o755);
    add(tar::EntryType::Symlink, b"top/link", b"file", b"", 0o777);
    add(tar::EntryType::Link, b"top/hard", b"top/file", b"", 0o644);
    add(tar::EntryType::Regular, format!("top/{}", "long/".repeat(30)).as_bytes(), b"", b"deep", 0o644);
    for name in names {
        add(tar::EntryType::Regular, name.as_bytes(), b"", b"fuzz", 0o644);
    }
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A wheel-like zip: a plugin library, headers under include/, a symlink,
/// a directory, and members named `names`.
fn zip_seed(names: &[String]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.add_directory("pkg/", stored).unwrap();
    w.start_file("pkg/libplugin.so", deflated.unix_permissions(0o755)).unwrap();
    w.write_all(b"\x7fELF....GetPjrtApi\0....").unwrap();
    w.start_file("pkg/include/xla/pjrt/c/pjrt_c_api.h", stored).unwrap();
    w.write_all(b"#define PJRT_API_MINOR 1\n").unwrap();
    w.add_symlink("pkg/link", "libplugin.so", stored).unwrap();
    for (i, name) in names.iter().enumerate() {
        // The zip crate refuses some names itself; those are simply left out.
        if w.start_file(name.as_str(), if i % 2 == 0 { stored } else { deflated }).is_ok() {
            w.write_all(b"fuzz GetPjrtApi\0").unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

// ---- properties ------------------------------------------------------------

/// Every regular file under `dir`, with symlinks listed, never followed.
fn entries_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

proptest! {
    #![proptest_config(config())]

    /// tar, tar.gz, tar.xz: edited archives hash or fail, never panic; the
    /// same input always gives the same answer.
    #[test]
    fn tar_archives_never_panic(names in prop::collection::vec(member_name(), 0..4), edits in prop::collection::vec(edit(), 0..6), format in 0..4u8) {
        let raw = tar_seed(&names);
        let bytes = match format {
            0 => apply(raw, &edits),
            1 => gzip(&apply(raw, &edits)),
            2 => apply(gzip(&raw), &edits),
            _ => xz(&apply(raw, &edits)),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.archive");
        std::fs::write(&path, &bytes).unwrap();
        let first = xtask::hashing::tarball::hash_archive(path.to_str().unwrap()).map_err(|e| format!("{e:#}"));
        let again = xtask::hashing::tarball::hash_archive(path.to_str().unwrap()).map_err(|e| format!("{e:#}"));
        prop_assert_eq!(first, again);
    }

    /// zip (hash tarball and wheels): edited archives never panic; finding
    /// the plugin never panics; extracting writes only below its directory.
    #[test]
    fn zip_archives_and_wheels_never_panic_nor_escape(names in prop::collection::vec(member_name(), 0..4), edits in prop::collection::vec(edit(), 0..6), library in member_name()) {
        let bytes = apply(zip_seed(&names), &edits);
        let outer = tempfile::tempdir().unwrap();
        let path = outer.path().join("fuzz-1.0-py3-none-manylinux_2_27_x86_64.whl");
        std::fs::write(&path, &bytes).unwrap();
        let _ = xtask::hashing::tarball::hash_archive(path.to_str().unwrap());
        let _ = xtask::wheels::wheel::find_library(&path);
        let dest = outer.path().join("dest");
        std::fs::create_dir_all(&dest).unwrap();
        for member in [library.as_str(), "pkg/libplugin.so"] {
            let _ = xtask::wheels::wheel::extract(&path, member, &dest);
        }
        let outside: Vec<PathBuf> = entries_under(outer.path()).into_iter().filter(|p| p != &path && !p.starts_with(&dest)).collect();
        prop_assert!(outside.is_empty(), "written outside: {:?}", outside);
    }

    /// pins.toml: edited files are checked without panicking, findings point
    /// into the file, and a file that passes names only safe files.
    #[test]
    fn pins_files_never_panic_and_pass_only_safe_names(edits in prop::collection::vec(edit(), 0..4), name in member_name()) {
        let project = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let base = std::fs::read_to_string(project.join("pins.toml")).unwrap();
        let seed = base.replacen("prebuilt.libtpu", &format!("prebuilt.\"{}\"", name.replace(['\\', '"'], "")), 3);
        let text = String::from_utf8_lossy(&apply(seed.into_bytes(), &edits)).into_owned();
        let report = xtask::pinfile::check(&text, "fuzz.toml");
        let lines = text.lines().count().max(1);
        for f in &report.findings {
            prop_assert!(f.line.is_none_or(|l| l >= 1 && l <= lines + 1), "{}", f);
        }
        let _ = xtask::pinfile::PinsDocument::parse(&text);
        if let (Some(pins), false) = (&report.pins, report.has_errors()) {
            for (name, pin) in &pins.prebuilt {
                prop_assert!(xtask::fsutil::single_component(name, "name").is_ok(), "{:?} passed", name);
                prop_assert!(xtask::fsutil::single_component(&pin.version, "version").is_ok(), "{:?} passed", pin.version);
                for (system, platform) in &pin.platforms {
                    prop_assert!(xtask::fsutil::single_component(system, "system").is_ok());
                    let last = platform.library.rsplit('/').next().unwrap();
                    prop_assert!(xtask::fsutil::single_component(last, "library").is_ok(), "{:?} passed", platform.library);
                    prop_assert!(!platform.library.split('/').any(|c| c == ".." || c == "."), "{:?} passed", platform.library);
                }
            }
        }
    }
}
