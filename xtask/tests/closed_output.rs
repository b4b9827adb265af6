//! Every verb with its stdout, then its stderr, closed before it writes
//! (`cargo xtask ... | true`, `| head -2`): a clear error and exit status 1
//! when the verb had something to write there, its usual exit status when it
//! had not; never a panic (101) or a signal.
//!
//! The table below holds one row per verb: a verb added later (as conform
//! and release were) is one more row. Each row runs three times: normally (what
//! it writes and how it exits), with stdout closed, with stderr closed.

mod support;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What a row needs besides the xtask; a missing one skips the row outside
/// CI and fails it under `CI=true`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Need {
    Nix,
    Libclang,
    XlaHistory,
}

struct Row {
    verb: &'static str,
    needs: &'static [Need],
    args: fn(&Ctx) -> Vec<OsString>,
}

fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(items: I) -> Vec<OsString> {
    items.into_iter().map(Into::into).collect()
}

/// One row per verb (and per form of a verb that writes differently).
const ROWS: &[Row] = &[
    Row { verb: "--help", needs: &[], args: |_| args(["--help"]) },
    Row { verb: "pins check", needs: &[], args: |_| args(["pins", "check"]) },
    Row { verb: "pins show", needs: &[], args: |_| args(["pins", "show"]) },
    Row { verb: "pins show --json", needs: &[], args: |_| args(["pins", "show", "--json"]) },
    Row { verb: "hash path", needs: &[], args: |_| args(["hash", "path", "--json", "docs"]) },
    Row { verb: "hash tarball", needs: &[], args: |c| args([OsString::from("hash"), "tarball".into(), c.tarball().into()]) },
    Row {
        verb: "hash git",
        needs: &[],
        args: |c| args([OsString::from("hash"), "git".into(), "HEAD".into(), "--repo".into(), c.git_repo().into()]),
    },
    Row { verb: "prebuilt fetch", needs: &[], args: |c| args(["prebuilt".into(), "fetch".into(), c.seeded_plugin()]) },
    // Offline: PyPI is a closed port, so this is the error path.
    Row { verb: "prebuilt update", needs: &[], args: |_| args(["prebuilt", "update", "xla-cpu-pjrt"]) },
    Row { verb: "diff-headers", needs: &[Need::Libclang], args: |c| c.xla_trees() },
    Row { verb: "bindgen --check", needs: &[Need::Libclang, Need::XlaHistory], args: |_| args(["bindgen", "--check"]) },
    Row { verb: "smoke --json", needs: &[], args: |c| args([OsString::from("smoke"), c.not_a_plugin().into(), "--json".into()]) },
    Row { verb: "smoke", needs: &[], args: |c| args([OsString::from("smoke"), c.not_a_plugin().into()]) },
    Row {
        verb: "upgrade-xla",
        needs: &[Need::XlaHistory],
        args: |c| {
            args([OsString::from("upgrade-xla"), c.pinned_commit().into(), "--dry-run".into(), "--xla-repo".into(), c.xla_repo().into()])
        },
    },
    Row {
        verb: "cache keygen",
        needs: &[Need::Nix],
        args: |c| args([OsString::from("cache"), "keygen".into(), c.key_name().into(), "--out".into(), c.dir("keys").into()]),
    },
    Row { verb: "cache push", needs: &[Need::Nix], args: |c| c.cache_push() },
    Row { verb: "cache verify", needs: &[Need::Nix], args: |c| c.cache_verify() },
    Row { verb: "deps-hash refresh", needs: &[], args: |_| args(["deps-hash", "refresh", "metal", "--system", "x86_64-linux"]) },
    Row { verb: "conform --json", needs: &[], args: |c| args([OsString::from("conform"), c.not_a_plugin().into(), "--json".into()]) },
    Row { verb: "conform", needs: &[], args: |c| args([OsString::from("conform"), c.not_a_plugin().into()]) },
    Row { verb: "doctor --json", needs: &[], args: |c| args([OsString::from("doctor"), c.not_a_plugin().into(), "--json".into()]) },
    Row { verb: "doctor", needs: &[], args: |c| args([OsString::from("doctor"), c.not_a_plugin().into()]) },
    Row { verb: "release check", needs: &[], args: |c| args([OsString::from("release"), "check".into(), c.not_a_plugin().into()]) },
    Row {
        verb: "release check --json",
        needs: &[],
        args: |c| args([OsString::from("release"), "check".into(), c.not_a_plugin().into(), "--json".into()]),
    },
    Row {
        verb: "release keygen",
        needs: &[],
        args: |c| {
            args([
                OsString::from("release"),
                "keygen".into(),
                "--name".into(),
                c.key_name().into(),
                "--out".into(),
                c.dir("release-keys").into(),
            ])
        },
    },
    Row {
        verb: "release verify",
        needs: &[],
        args: |c| args([OsString::from("release"), "verify".into(), c.dir("empty-release").into(), "--unsigned".into()]),
    },
];

#[test]
fn every_verb_survives_closed_stdout_and_stderr() {
    let ctx = Ctx::new();
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for row in ROWS {
        if !row.needs.iter().all(|need| ctx.has(*need)) {
            continue;
        }
        // Arguments are made anew for each run: keygen never overwrites a key.
        let normal = ctx.run(&(row.args)(&ctx), Closed::Nothing);
        let Some(code) = crashed(row, "nothing closed", &normal, &mut failures) else { continue };

        let closed_stdout = ctx.run(&(row.args)(&ctx), Closed::Stdout);
        if crashed(row, "stdout closed", &closed_stdout, &mut failures).is_some() {
            let stderr = String::from_utf8_lossy(&closed_stdout.stderr);
            let got = closed_stdout.status.code();
            if normal.stdout.is_empty() {
                if got != Some(code) {
                    failures.push(format!("{}: stdout closed, nothing written there: exit {got:?}, not {code}: {stderr}", row.verb));
                }
            } else if got != Some(1) || !stderr.contains("stdout was closed before it was all written") {
                failures.push(format!("{}: stdout closed early: exit {got:?} (want 1 and a clear error): {stderr}", row.verb));
            }
        }

        let closed_stderr = ctx.run(&(row.args)(&ctx), Closed::Stderr);
        if crashed(row, "stderr closed", &closed_stderr, &mut failures).is_some() {
            let want = if normal.stderr.is_empty() { code } else { 1 };
            if closed_stderr.status.code() != Some(want) {
                failures.push(format!("{}: stderr closed: exit {:?}, want {want}", row.verb, closed_stderr.status.code()));
            }
        }
        checked.push(format!("{} (exit {code}, {} bytes on stdout)", row.verb, normal.stdout.len()));
    }
    eprintln!("checked with stdout and stderr closed: {}", checked.join(", "));
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
    // The rows that need nothing always run.
    assert!(checked.len() >= ROWS.iter().filter(|r| r.needs.is_empty()).count());
}

/// The exit code, or None (and a failure recorded) when the run panicked or
/// was killed by a signal.
fn crashed(row: &Row, how: &str, out: &Output, failures: &mut Vec<String>) -> Option<i32> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first_lines: String = stderr.lines().take(3).collect::<Vec<_>>().join(" | ");
    match out.status.code() {
        None => failures.push(format!("{} ({how}): killed by a signal: {:?} {first_lines}", row.verb, out.status)),
        Some(101) => failures.push(format!("{} ({how}): panicked (exit 101) {first_lines}", row.verb)),
        Some(_) if stderr.contains("panicked") => failures.push(format!("{} ({how}): panicked {first_lines}", row.verb)),
        Some(code) => return Some(code),
    }
    None
}

#[derive(Clone, Copy)]
enum Closed {
    Nothing,
    Stdout,
    Stderr,
}

/// The write end of a pipe whose read end is already closed: every write
/// to it fails with EPIPE, as when the reader (`head`, `true`) has exited.
fn broken_pipe() -> Stdio {
    let mut reader = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
    let write_end = reader.stdin.take().unwrap();
    reader.wait().unwrap();
    Stdio::from(write_end)
}

/// Scratch inputs, made on first use.
struct Ctx {
    dir: tempfile::TempDir,
    nix: bool,
    libclang: bool,
    xla: Option<PathBuf>,
}

impl Ctx {
    fn new() -> Ctx {
        let nix = support::require_nix();
        let libclang = support::require_libclang();
        let xla = support::xla_repo();
        Ctx { dir: tempfile::tempdir().unwrap(), nix, libclang, xla }
    }

    fn has(&self, need: Need) -> bool {
        match need {
            Need::Nix => self.nix,
            Need::Libclang => self.libclang,
            Need::XlaHistory => self.xla.is_some(),
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    fn run(&self, args: &[OsString], closed: Closed) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(args)
            .current_dir(support::project_root())
            .env_remove("PJRTPKGS_ROOT")
            .env("PJRTPKGS_CACHE_DIR", self.dir("cache"))
            .env("PJRTPKGS_PYPI_URL", "http://127.0.0.1:9")
            .env("NIX_CONFIG", format!("experimental-features = nix-command flakes\nsubstituters =\n{}", support::build_users_setting()))
            .stdin(Stdio::null());
        match closed {
            Closed::Nothing => cmd.output().unwrap(),
            Closed::Stdout => {
                let child = cmd.stdout(broken_pipe()).stderr(Stdio::piped()).spawn().unwrap();
                child.wait_with_output().unwrap()
            }
            Closed::Stderr => {
                let child = cmd.stdout(Stdio::piped()).stderr(broken_pipe()).spawn().unwrap();
                child.wait_with_output().unwrap()
            }
        }
    }

    fn tarball(&self) -> PathBuf {
        let path = self.dir.path().join("a.tar");
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, "top/file", &b"hi"[..]).unwrap();
        std::fs::write(&path, builder.into_inner().unwrap()).unwrap();
        path
    }

    fn git_repo(&self) -> PathBuf {
        let repo = self.dir("repo");
        if !repo.join(".git").exists() {
            support::git(&repo, &["init", "-q"]);
            std::fs::write(repo.join("README"), "hi\n").unwrap();
            support::git(&repo, &["add", "README"]);
            support::git(&repo, &["commit", "-q", "-m", "one"]);
        }
        repo
    }

    /// A cache holding the extracted plugin `prebuilt fetch` looks for, so
    /// that it prints its path without the network.
    fn seeded_plugin(&self) -> OsString {
        let text = std::fs::read_to_string(support::project_root().join("pins.toml")).unwrap();
        let pins = xtask::pinfile::Pins::parse(&text, "pins.toml").unwrap();
        let system = xtask::pinfile::host_system();
        let (name, pin, platform) = pins
            .prebuilt
            .iter()
            .find_map(|(name, pin)| pin.platforms.get(&system).map(|p| (name, pin, p)))
            .expect("a plugin pinned for this system");
        let dir = self.dir.path().join("cache/prebuilt").join(name).join(format!("{}-{system}-{}", pin.version, &platform.sha256[..16]));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join(Path::new(&platform.library).file_name().unwrap());
        std::fs::write(&lib, b"a stand-in library").unwrap();
        let sha = xtask::wheels::download::sha256_file(&lib).unwrap();
        std::fs::write(dir.join(".library.sha256"), format!("{sha}\n")).unwrap();
        name.into()
    }

    /// Two small XLA source trees whose core headers differ by one field.
    fn xla_trees(&self) -> Vec<OsString> {
        let header = |extra: &str| {
            format!(
                "#ifndef H_\n#define H_\n#include <stddef.h>\n#define PJRT_API_MAJOR 0\n#define PJRT_API_MINOR 1\n\
                 typedef struct PJRT_Extension_Base PJRT_Extension_Base;\n\
                 typedef struct PJRT_Api {{\n  size_t struct_size;\n  PJRT_Extension_Base* extension_start;\n{extra}}} PJRT_Api;\n#endif\n"
            )
        };
        let mut out = vec![OsString::from("diff-headers")];
        for (name, extra) in [("old", ""), ("new", "  int added;\n")] {
            let tree = self.dir(name);
            let core = tree.join("xla/pjrt/c/pjrt_c_api.h");
            std::fs::create_dir_all(core.parent().unwrap()).unwrap();
            std::fs::write(&core, header(extra)).unwrap();
            out.push(tree.into());
        }
        out
    }

    fn not_a_plugin(&self) -> PathBuf {
        // A shared library without GetPjrtApi: the C math library.
        let candidates = ["/lib/x86_64-linux-gnu/libm.so.6", "/lib/aarch64-linux-gnu/libm.so.6", "/lib64/libm.so.6", "/usr/lib/libm.so.6"];
        match candidates.iter().map(Path::new).find(|p| p.is_file()) {
            Some(libm) => libm.to_path_buf(),
            None => {
                let path = self.dir.path().join("not-a-plugin.so");
                std::fs::write(&path, b"not a library").unwrap();
                path
            }
        }
    }

    fn xla_repo(&self) -> PathBuf {
        self.xla.clone().unwrap()
    }

    fn pinned_commit(&self) -> String {
        let text = std::fs::read_to_string(support::project_root().join("pins.toml")).unwrap();
        xtask::pinfile::Pins::parse(&text, "pins.toml").unwrap().xla.commit
    }

    fn key_name(&self) -> String {
        // A fresh name per run: keygen never overwrites a key.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        format!("closed-output-{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    fn store(&self) -> String {
        format!("local?root={}", self.dir("store").display())
    }

    /// A small path in a chroot store, to push and verify.
    fn store_path(&self) -> String {
        let file = self.dir.path().join("payload.txt");
        std::fs::write(&file, b"payload\n").unwrap();
        let out = Command::new("nix")
            .args(["--extra-experimental-features", "nix-command", "store", "add-file", "--store", &self.store()])
            .arg(&file)
            .env("NIX_CONFIG", support::build_users_setting())
            .output()
            .unwrap();
        assert!(out.status.success(), "nix store add-file: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn cache_url(&self) -> String {
        format!("file://{}", self.dir("binary-cache").display())
    }

    fn cache_push(&self) -> Vec<OsString> {
        args([
            "cache".into(),
            "push".into(),
            self.cache_url(),
            "--unsigned".into(),
            "--store".into(),
            self.store(),
            self.store_path(),
            "--json".into(),
        ])
    }

    fn cache_verify(&self) -> Vec<OsString> {
        // An unsigned cache holding the path: verify reports it (exit 2).
        let push = self.run(&self.cache_push(), Closed::Nothing);
        assert!(push.status.success(), "cache push: {}", String::from_utf8_lossy(&push.stderr));
        let key = self.dir.path().join("trusted.public");
        let mut file = std::fs::File::create(&key).unwrap();
        writeln!(file, "closed-output-1:{}", "A".repeat(43) + "=").unwrap();
        args(["cache".into(), "verify".into(), self.cache_url(), self.store_path(), "--trusted-key-file".into(), key.display().to_string()])
    }
}
