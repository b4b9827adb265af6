//! `deps-hash` against the real Nix: the hash-mismatch path is exercised
//! with a builtin fixed-output derivation (builtin:fetchurl of a file://
//! URL), so the parser is checked on what this Nix really prints.
//!
//! Skips without `nix` outside CI; fails under `CI=true`.

mod support;

use std::path::Path;
use std::process::Command;

use xtask::bazel_deps::{mismatch_of_build, parse_hash_mismatch};
use xtask::nix::Nix;
use xtask::pinfile::STALE_HASH;

/// `nix` with flakes enabled. The fixture fetches a `file://` URL from a
/// temporary directory, which a sandboxed build cannot see: the test is
/// about what Nix prints on a mismatch, not about the sandbox.
fn nix_command() -> Command {
    let mut cmd = Nix { store: None }.command().unwrap();
    let config = std::env::var("NIX_CONFIG").unwrap_or_default();
    cmd.env("NIX_CONFIG", format!("{config}\nsandbox = false\n{}", support::build_users_setting()));
    cmd
}

/// A file with content no other test run shares, and the Nix expression of
/// a fixed-output derivation fetching it with `hash`.
fn fixture(dir: &Path, content: &str, hash: &str) -> std::path::PathBuf {
    let file = dir.join("payload.txt");
    std::fs::write(&file, content).unwrap();
    let expr = dir.join("fod.nix");
    std::fs::write(
        &expr,
        format!(
            r#"derivation {{
                 name = "deps-hash-test"; system = "builtin"; builder = "builtin:fetchurl";
                 url = "file://{}"; outputHashMode = "flat"; outputHashAlgo = "sha256";
                 outputHash = "{hash}"; preferLocalBuild = true;
               }}"#,
            file.display()
        ),
    )
    .unwrap();
    expr
}

fn build(expr: &Path) -> Command {
    let mut cmd = nix_command();
    cmd.args(["build", "--no-link", "--option", "substituters", "", "-f"]).arg(expr);
    cmd
}

fn nix_hash_file(file: &Path) -> String {
    let out = nix_command().args(["hash", "file", "--type", "sha256", "--sri"]).arg(file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn unique_content() -> String {
    let dir = tempfile::tempdir().unwrap();
    format!("pjrtpkgs deps-hash test {:?} {:?}\n", dir.path(), std::time::SystemTime::now())
}

#[test]
fn reads_the_hash_from_real_nix_output() {
    if !support::require_command("nix") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let expr = fixture(dir.path(), &unique_content(), STALE_HASH);
    let out = build(&expr).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = nix_hash_file(&dir.path().join("payload.txt"));
    assert_eq!(parse_hash_mismatch(&stderr).as_deref(), Some(expected.as_str()), "{stderr}");
    assert_eq!(mismatch_of_build(build(&expr)).unwrap(), expected);
}

/// A stale pin whose output path is already in the store: a plain build
/// succeeds without looking at the source again; `--rebuild` catches it.
#[test]
fn finds_the_new_hash_when_the_old_output_exists() {
    if !support::require_command("nix") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let old = unique_content();
    let old_hash = {
        std::fs::write(dir.path().join("payload.txt"), &old).unwrap();
        nix_hash_file(&dir.path().join("payload.txt"))
    };
    let expr = fixture(dir.path(), &old, &old_hash);
    let out = build(&expr).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Upstream changed; the pin still names the old, present output.
    std::fs::write(dir.path().join("payload.txt"), format!("{old}changed\n")).unwrap();
    let new_hash = nix_hash_file(&dir.path().join("payload.txt"));
    assert_ne!(new_hash, old_hash);
    assert_eq!(mismatch_of_build(build(&expr)).unwrap(), new_hash);
}

#[test]
fn a_correct_hash_is_reported_as_no_mismatch() {
    if !support::require_command("nix") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let content = unique_content();
    std::fs::write(dir.path().join("payload.txt"), &content).unwrap();
    let hash = nix_hash_file(&dir.path().join("payload.txt"));
    let expr = fixture(dir.path(), &content, &hash);
    let err = mismatch_of_build(build(&expr)).unwrap_err().to_string();
    assert!(err.contains("without reporting a hash mismatch"), "{err}");
}

#[test]
fn build_failures_are_not_taken_for_mismatches() {
    if !support::require_command("nix") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let expr = fixture(dir.path(), "x", STALE_HASH);
    std::fs::remove_file(dir.path().join("payload.txt")).unwrap();
    let err = mismatch_of_build(build(&expr)).unwrap_err().to_string();
    assert!(err.contains("failed without a hash mismatch"), "{err}");
}

/// Old Nix printed nix32 (`got: sha256:…`); the parser's conversion must
/// agree with Nix's own.
#[test]
fn nix32_conversion_agrees_with_nix() {
    if !support::require_command("nix") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, unique_content()).unwrap();
    let out = nix_command().args(["hash", "file", "--type", "sha256", "--base32"]).arg(&file).output().unwrap();
    let nix32 = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let message =
        format!("hash mismatch in fixed-output derivation '/nix/store/x':\n  wanted: sha256:{}\n  got:\tsha256:{nix32}\n", "0".repeat(52));
    assert_eq!(parse_hash_mismatch(&message).unwrap(), nix_hash_file(&file));
}

/// Without a BACKEND, `refresh` takes its list from the pins.toml tables of
/// the system: a system with none is an error before any build starts.
#[test]
fn refresh_without_backend_needs_a_table_for_the_system() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(support::project_root().join("pins.toml"), dir.path().join("pins.toml")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["deps-hash", "refresh", "--system", "riscv64-linux"])
        .env("PJRTPKGS_ROOT", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no [bazel_deps.<backend>.riscv64-linux] table"), "{stderr}");
}
