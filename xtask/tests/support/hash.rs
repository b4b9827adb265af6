//! Support for the `hash_*` tests: running the real Nix and the xtask
//! binary, and building odd trees.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn nix_cmd() -> Command {
    let mut cmd = Command::new("nix");
    cmd.args(["--extra-experimental-features", "nix-command", "--option", "substituters", ""]);
    cmd
}

fn stdout_line(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `nix hash path [--base32|--base16] PATH`.
pub fn nix_hash_path(path: &Path, format: Option<&str>) -> String {
    let mut cmd = nix_cmd();
    cmd.args(["hash", "path"]);
    if let Some(f) = format {
        cmd.arg(f);
    }
    stdout_line(cmd.arg(path).output().unwrap(), "nix hash path")
}

/// `nix hash to-base32 --type ALGO HEX`: Nix's own nix32 of a digest.
pub fn nix_to_base32(algo: &str, hex: &str) -> String {
    stdout_line(nix_cmd().args(["hash", "to-base32", "--type", algo, hex]).output().unwrap(), "nix hash to-base32")
}

/// `git archive COMMIT` of `repo` (a work tree or a git directory) unpacked
/// into a fresh directory (what GitHub serves and fetchFromGitHub unpacks).
pub fn git_archive_tree(repo: &Path, commit: &str, into: &Path) -> PathBuf {
    let out = into.join(format!("archive-{commit}"));
    fs::create_dir_all(&out).unwrap();
    let mut archive =
        Command::new("git").arg("-C").arg(repo).args(["archive", "--format=tar", commit]).stdout(Stdio::piped()).spawn().unwrap();
    let status = Command::new("tar").arg("-x").arg("-C").arg(&out).stdin(archive.stdout.take().unwrap()).status().unwrap();
    assert!(archive.wait().unwrap().success() && status.success(), "git archive {commit} | tar -x failed");
    out
}

/// `nix hash path` (SRI) of `git archive COMMIT` unpacked: the
/// fetchFromGitHub hash of the commit, computed by git, tar and Nix alone.
/// `repo` is a work tree or a git directory.
pub fn nix_hash_of_commit(repo: &Path, commit: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    nix_hash_path(&git_archive_tree(repo, commit, tmp.path()), None)
}

/// What `nix hash path` says of `path`: the SRI hash, or Err when it fails.
pub fn try_nix_hash_path(path: &Path) -> Result<String, String> {
    let out = nix_cmd().args(["hash", "path"]).arg(path).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap().trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `nix-prefetch-url --unpack file://ARCHIVE`: nix32, or Err with Nix's message.
pub fn nix_prefetch_unpack(archive: &Path) -> Result<String, String> {
    let url = format!("file://{}", archive.canonicalize().unwrap().display());
    let out = Command::new("nix-prefetch-url").args(["--unpack", &url]).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap().trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The xtask binary under test.
pub fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

/// Runs `xtask ARGS`: stdout on success, stderr on failure.
pub fn run_xtask<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I) -> Result<String, String> {
    let out = xtask().args(args).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap().trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub fn write(path: &Path, data: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree with every case NAR hashing must get right: executable bits
/// (owner only counts), empty files and directories, symlinks (dangling,
/// absolute, to directories), names that are not UTF-8 and names whose
/// order differs between bytes, git and locale collation, sizes around the
/// 8-byte padding and above the 1 MiB read chunk, deep nesting.
pub fn edge_case_tree(root: &Path) {
    fs::create_dir_all(root).unwrap();
    write(&root.join("plain"), b"hello\n", 0o644);
    write(&root.join("owner-exec"), b"#!/bin/sh\n", 0o744);
    write(&root.join("group-exec"), b"g", 0o654);
    write(&root.join("other-exec"), b"o", 0o645);
    write(&root.join("only-exec"), b"x", 0o100);
    write(&root.join("empty"), b"", 0o644);
    write(&root.join("read-only"), b"r", 0o444);
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    for len in [1usize, 7, 8, 9, 15, 16, 17, 63, 64, 65] {
        write(&root.join(format!("pad/{len}")), &vec![b'p'; len], 0o644);
    }
    let big: Vec<u8> = (0..(3 << 20) + 5).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    write(&root.join("big.bin"), &big, 0o755);
    std::os::unix::fs::symlink("plain", root.join("link-to-file")).unwrap();
    std::os::unix::fs::symlink("pad", root.join("link-to-dir")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("absolute")).unwrap();
    for name in ["foo.c", "foo-bar", "Foo", "_foo", "~foo", "foo bar"] {
        write(&root.join("order").join(name), name.as_bytes(), 0o644);
    }
    fs::create_dir_all(root.join("order/foo.d/inner")).unwrap();
    write(&root.join("order/foo/x"), b"x", 0o644);
    let non_utf8 = OsStr::from_bytes(b"caf\xe9-\xff\xfe");
    write(&root.join("names").join(non_utf8), b"latin-1 name", 0o644);
    write(&root.join("names").join("caf\u{e9}-utf8"), b"utf-8 name", 0o644);
    let mut deep = root.join("deep");
    for level in 0..64 {
        deep.push(format!("d{level}"));
    }
    write(&deep.join("bottom"), b"deep", 0o644);
}

/// A random tree for property tests.
#[derive(Debug, Clone)]
pub enum Gen {
    File { data: Vec<u8>, mode: u32 },
    Symlink(Vec<u8>),
    Dir(std::collections::BTreeMap<Vec<u8>, Gen>),
}

pub mod strategy {
    use super::Gen;
    use proptest::prelude::*;

    /// Names from a small alphabet (collisions and shared prefixes are
    /// likely) with non-ASCII and non-UTF-8 bytes; never `.`, `..`, `/`, NUL.
    pub fn name() -> impl Strategy<Value = Vec<u8>> {
        let alphabet: Vec<u8> = b"aAb.-_ z~".iter().copied().chain([0xc3, 0xa9, 0xff, 0x80]).collect();
        prop::collection::vec(prop::sample::select(alphabet), 1..5).prop_filter("not . or ..", |n| n != b"." && n != b"..")
    }

    pub fn leaf() -> impl Strategy<Value = Gen> {
        prop_oneof![
            4 => (prop::collection::vec(any::<u8>(), 0..40), prop::sample::select(vec![0o644u32, 0o755, 0o700, 0o654, 0o645, 0o444]))
                .prop_map(|(data, mode)| Gen::File { data, mode }),
            1 => name().prop_map(Gen::Symlink),
        ]
    }

    pub fn tree() -> impl Strategy<Value = Gen> {
        leaf().prop_recursive(4, 48, 6, |inner| prop::collection::btree_map(name(), inner, 0..6).prop_map(Gen::Dir))
    }

    /// A tree whose top is a directory.
    pub fn dir_tree() -> impl Strategy<Value = Gen> {
        prop::collection::btree_map(name(), tree(), 0..6).prop_map(Gen::Dir)
    }
}

impl Gen {
    /// Writes the tree at `path` (which must not exist).
    pub fn materialize(&self, path: &Path) {
        match self {
            Gen::File { data, mode } => write(path, data, *mode),
            Gen::Symlink(target) => std::os::unix::fs::symlink(OsStr::from_bytes(target), path).unwrap(),
            Gen::Dir(children) => {
                fs::create_dir_all(path).unwrap();
                for (name, child) in children {
                    child.materialize(&path.join(OsStr::from_bytes(name)));
                }
            }
        }
    }
}
