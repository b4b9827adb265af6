//! `deps-hash refresh` checks pins.toml before it starts the long Nix
//! build: an invalid file is an error naming the problem, and Nix never runs.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// Issue 13, new-user item: an invalid pins.toml fails at once (a `nix`
/// on PATH that records being run shows no build was started).
#[test]
fn invalid_pins_fail_before_nix_runs() {
    let project = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let text = std::fs::read_to_string(project.join("pins.toml")).unwrap();
    let root = tempfile::tempdir().unwrap();
    let bad = text.replacen("commit = \"964a0a45a0c3090cd484a3c51e8f9d05ed10b968\"", "commit = \"964a0a45\"", 1);
    assert_ne!(bad, text);
    std::fs::write(root.path().join("pins.toml"), bad).unwrap();

    let bin = tempfile::tempdir().unwrap();
    let marker = bin.path().join("nix-ran");
    let nix = bin.path().join("nix");
    std::fs::write(&nix, format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display())).unwrap();
    std::fs::set_permissions(&nix, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());

    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["deps-hash", "refresh", "cpu", "--system", "x86_64-linux"])
        .env("PJRTPKGS_ROOT", root.path())
        .env("PATH", path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!marker.exists(), "nix was started on an invalid pins.toml: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`xla.commit`") && stderr.contains("pins check"), "{stderr}");
}
