//! What diff-headers and bindgen say about bad inputs: a directory that
//! holds no XLA tree, a LIBCLANG_PATH whose libclang.so is not libclang.
//! Clear errors with exit status 1, never "unknown revision" or a panic.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xtask(args: &[&std::ffi::OsStr], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args).current_dir(support::project_root());
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().unwrap()
}

/// A small XLA source tree with a core header.
fn xla_tree(root: &Path) -> PathBuf {
    let core = root.join("xla/pjrt/c/pjrt_c_api.h");
    std::fs::create_dir_all(core.parent().unwrap()).unwrap();
    std::fs::write(&core, "#define PJRT_API_MAJOR 0\n#define PJRT_API_MINOR 1\ntypedef struct PJRT_Api { int a; } PJRT_Api;\n").unwrap();
    root.to_path_buf()
}

/// Issue 13, new-user item: two directories that hold no XLA tree are named
/// as such (it used to say "unknown revision").
#[test]
fn directories_without_xla_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&new).unwrap();
    let out = xtask(&["diff-headers".as_ref(), old.as_os_str(), new.as_os_str()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is a directory, but not an XLA source tree"), "{stderr}");
    assert!(!stderr.contains("unknown revision"), "{stderr}");
}

/// A real shared library that is not libclang, as LIBCLANG_PATH/libclang.so.
fn fake_libclang(dir: &Path) -> Option<PathBuf> {
    let candidates = ["/lib/x86_64-linux-gnu/libm.so.6", "/lib/aarch64-linux-gnu/libm.so.6", "/lib64/libm.so.6", "/usr/lib/libm.so.6"];
    let libm = candidates.iter().map(Path::new).find(|p| p.is_file())?;
    let fake = dir.join("fake-libclang");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::copy(libm, fake.join("libclang.so")).unwrap();
    Some(fake)
}

/// Issue 13, item 9: a LIBCLANG_PATH holding a library that is not
/// libclang is an error naming it, not a panic (exit 101).
#[test]
fn a_libclang_that_is_not_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fake) = fake_libclang(dir.path()) else {
        assert!(!support::under_ci(), "no libm.so.6 to stand in for libclang");
        return;
    };
    let (old, new) = (xla_tree(&dir.path().join("old")), xla_tree(&dir.path().join("new")));
    let out = xtask(&["diff-headers".as_ref(), old.as_os_str(), new.as_os_str()], &[("LIBCLANG_PATH", &fake)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "diff-headers: {stderr}");
    assert!(stderr.contains("is not a usable libclang") && stderr.contains("LIBCLANG_PATH"), "{stderr}");

    if let Some(xla) = support::xla_repo() {
        let out = xtask(&["bindgen".as_ref(), "--check".as_ref()], &[("LIBCLANG_PATH", &fake), ("XLA_REPO", &xla)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "bindgen --check: {stderr}");
        assert!(stderr.contains("is not a usable libclang"), "{stderr}");
    }
}
