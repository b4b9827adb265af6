//! Test support shared by the integration tests (a directory, so Cargo does
//! not build it as a test of its own): one policy for prerequisites.
//!
//! A test that needs an external tool, libclang, the network or real XLA
//! history skips outside CI (saying so on stderr) and fails under `CI=true`,
//! where `.ci/run` has installed everything. The one sanctioned exception is
//! XLA history on a CI machine that has none: `.ci/run` then sets
//! `PJRTPKGS_SKIP_XLA_HISTORY` to the reason, and those tests skip loudly.

#![allow(dead_code)]

pub mod fake_plugin;
pub mod flake;
pub mod hash;
pub mod scratch;

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The checkout under test (the workspace root).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether a prerequisite is `present`. A missing one fails the test under
/// `CI=true` and skips it elsewhere; `what` names it and what to install.
pub fn require(what: &str, present: bool) -> bool {
    if !present {
        assert!(!under_ci(), "{what} is required under CI=true but is missing: install it");
        eprintln!("SKIP: {what} is missing");
    }
    present
}

/// Whether `cmd` can be run (`cmd --version` starts; its exit status does
/// not count, as some tools, nginx among them, have no `--version`).
pub fn have_command(cmd: &str) -> bool {
    Command::new(cmd).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// `require` for a command, naming where `.ci/run` gets it.
pub fn require_command(cmd: &str) -> bool {
    let source = match cmd {
        "nix" | "nix-instantiate" | "nix-prefetch-url" | "nix-store" => "Debian's nix-bin",
        "nginx" => "Debian's nginx-light",
        "deadnix" => "`cargo install deadnix --version 1.3.1 --locked`",
        "clang" => "Debian's clang",
        "cc" => "Debian's gcc",
        "readelf" => "Debian's binutils",
        "zizmor" => ".ci/python-tools.txt, which .ci/run installs in a virtual environment",
        _ => "the Debian package of that name",
    };
    require(&format!("`{cmd}` (from {source})"), have_command(cmd))
}

/// The reference Nix: `nix` and `nix-prefetch-url`.
pub fn require_nix() -> bool {
    require_command("nix") && require_command("nix-prefetch-url")
}

/// A `build-users-group` line for `NIX_CONFIG` on machines without the
/// `nixbld` group (Debian's nix-bin installs none, and as root Nix defaults
/// to building as that group): build as ourselves there. Empty where the
/// group exists, so the machine's own setting stands.
pub fn build_users_setting() -> &'static str {
    let has_group = std::fs::read_to_string("/etc/group").is_ok_and(|g| g.lines().any(|l| l.starts_with("nixbld:")));
    if has_group {
        ""
    } else {
        "build-users-group =\n"
    }
}

/// libclang, loaded at run time by diff-headers and bindgen.
pub fn require_libclang() -> bool {
    match xtask::header_diff::libclang_available() {
        Ok(()) => true,
        Err(e) => require(&format!("libclang (from Debian's libclang-dev: {e:#})"), false),
    }
}

/// Whether `host` accepts a TCP connection on port 443 within 10 s.
pub fn reachable(host: &str) -> bool {
    (host, 443)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(10)).is_ok())
}

/// Real XLA history: `XLA_REPO`, a clone of openxla/xla (bare or not).
///
/// Unset outside CI, the test skips. Unset under `CI=true`, it fails,
/// unless `PJRTPKGS_SKIP_XLA_HISTORY` gives the reason it may not run.
pub fn xla_repo() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XLA_REPO") {
        let dir = PathBuf::from(dir);
        assert!(Path::new(&dir).exists(), "XLA_REPO={} does not exist: point it at a clone of openxla/xla", dir.display());
        return Some(dir);
    }
    if under_ci() {
        match std::env::var("PJRTPKGS_SKIP_XLA_HISTORY") {
            Ok(reason) if !reason.is_empty() => {
                eprintln!("\n!!! SKIPPED (reason: {reason}) !!!\n!!! the real-XLA-history tests did not run: XLA_REPO is unset !!!\n");
                return None;
            }
            _ => panic!(
                "CI=true but XLA_REPO is unset: point it at a clone of openxla/xla (bare or not), \
                 or set PJRTPKGS_SKIP_XLA_HISTORY to the reason these tests may be skipped"
            ),
        }
    }
    eprintln!("\n!!! SKIP: XLA_REPO is unset; the real-XLA-history tests did not run (point it at a clone of openxla/xla) !!!\n");
    None
}

/// `git -C DIR ARGS` (DIR a work tree or a bare git directory) with a fixed
/// identity and no user configuration: its trimmed stdout. Fails the test
/// when git does.
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_dated(dir, None, args)
}

/// [`git`] with author and committer dates set to `date` when given.
pub fn git_dated(dir: &Path, date: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Synthetic XLA")
        .env("GIT_AUTHOR_EMAIL", "xla@example.invalid")
        .env("GIT_COMMITTER_NAME", "Synthetic XLA")
        .env("GIT_COMMITTER_EMAIL", "xla@example.invalid")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    if let Some(date) = date {
        cmd.env("GIT_AUTHOR_DATE", date).env("GIT_COMMITTER_DATE", date);
    }
    let out = cmd.output().expect("git runs");
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A clone of google-ml-infra/rules_ml_toolchain (bare or not):
/// `RULES_ML_TOOLCHAIN_REPO`, optional everywhere. Without it the tests use
/// what pins.toml `[rules_ml_toolchain]` records (checked against the commit
/// XLA's WORKSPACE pins) instead of reading the rules themselves, and say so.
pub fn rules_ml_toolchain_repo() -> Option<PathBuf> {
    match std::env::var_os("RULES_ML_TOOLCHAIN_REPO").filter(|d| !d.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            assert!(dir.exists(), "RULES_ML_TOOLCHAIN_REPO={} does not exist", dir.display());
            Some(dir)
        }
        None => {
            eprintln!(
                "NOTE: RULES_ML_TOOLCHAIN_REPO is unset: using pins.toml [rules_ml_toolchain] (checked against XLA's WORKSPACE) \
                 instead of rules_ml_toolchain's own template"
            );
            None
        }
    }
}

/// `git -C DIR show COMMIT:PATH`, `None` when the file is not there.
pub fn git_show(dir: &Path, commit: &str, path: &str) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["show", &format!("{commit}:{path}")])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
