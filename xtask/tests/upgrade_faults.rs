//! `upgrade-xla` under faults (issue 13): killed at every rename of its
//! commit, interrupted by SIGINT/SIGTERM, run twice at once, a file edited
//! while it runs, a report directory that is a symlink out of the project,
//! odd CHANGELOG.md files, and a branch name that moved upstream. Each test
//! fails on the code before the fix (run them with `PJRTPKGS_TEST_XTASK` set
//! to an older build to see it).

mod support;
mod upgrade_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::require_command;
use upgrade_support::{snapshot, text, Scratch, SyntheticXla};

fn base_project(xla: &SyntheticXla) -> Scratch {
    Scratch::new(&upgrade_support::pins_for(&xla.base, "2024-03-29T15:40:47-07:00", "0.1", "7.4.1"))
}

/// Issue 13 item 6: SIGKILL at EVERY rename the run makes (strace injects
/// the signal on entry to the Nth rename syscall, before it happens), then
/// a plain rerun: the project must end exactly as an uninterrupted upgrade
/// leaves it, with no stray temporary file and nothing half-written. On the
/// old code a kill between its renames left CHANGELOG.md written and
/// pins.toml not, which the rerun then refused as local edits, plus
/// `.pjrtpkgs-*.tmp` files.
#[test]
fn killed_at_every_rename_then_rerun_ends_as_a_clean_upgrade() {
    if !require_command("git") || !require_command("strace") {
        return;
    }
    let xla = SyntheticXla::build();
    let reference = {
        let s = base_project(&xla);
        let out = s.upgrade(xla.path(), &[&xla.compatible], &[]);
        assert!(out.status.success(), "{}", text(&out).1);
        snapshot(s.path())
    };
    let mut kills = 0;
    for n in 1.. {
        assert!(n < 50, "the upgrade still renames after 50 kills");
        let s = base_project(&xla);
        let mut cmd = s.command(&[]);
        cmd.args(["upgrade-xla", &xla.compatible, "--xla-repo"]).arg(xla.path());
        // No -f: only the xtask's main thread (which commits) is traced,
        // not git or cargo.
        let program = cmd.get_program().to_owned();
        let mut traced = Command::new("strace");
        traced
            .args(["-o", "/dev/null", "-e", "trace=rename,renameat,renameat2"])
            .arg("-e")
            .arg(format!("inject=rename,renameat,renameat2:signal=KILL:when={n}"))
            .arg(program)
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => traced.env(k, v),
                None => traced.env_remove(k),
            };
        }
        let out = traced.output().unwrap();
        if out.status.success() {
            // Fewer than n renames: every one of them has been killed at.
            break;
        }
        kills += 1;
        let rerun = s.upgrade(xla.path(), &[&xla.compatible], &[]);
        let (_, stderr) = text(&rerun);
        assert!(rerun.status.success(), "rerun after a kill at rename {n} failed:\n{stderr}");
        assert_eq!(snapshot(s.path()), reference, "after a kill at rename {n} and a rerun:\n{stderr}");
    }
    assert!(kills >= 4, "only {kills} renames: the commit writes 4 files");
}

fn staging_dirs(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("pjrtpkgs-upgrade-"))
        .collect()
}

/// Starts an upgrade with its own TMPDIR and waits until its compile
/// staging directory exists (the run is then in the `compile` step).
fn start_until_compiling(s: &Scratch, xla: &SyntheticXla, tmp: &Path) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = s.command(&[("TMPDIR", tmp.to_str().unwrap())]);
    // Its own process group, so that a test can kill it with its children.
    cmd.process_group(0);
    cmd.args(["upgrade-xla", &xla.compatible, "--xla-repo"]).arg(xla.path()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let t = Instant::now();
    while staging_dirs(tmp).is_empty() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the upgrade ended ({status}) before its compile step was seen");
        }
        assert!(t.elapsed() < Duration::from_secs(120), "no staging directory after 120 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

/// Issue 13 item 6: staging directories piled up in /tmp after SIGINT or
/// SIGTERM. Interrupted in its compile step, the run removes them, stops,
/// exits 128+N and leaves the project as it was.
#[test]
fn sigint_and_sigterm_leave_no_staging_directory() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let s = base_project(&xla);
        let before = snapshot(s.path());
        let tmp = tempfile::tempdir().unwrap();
        let child = start_until_compiling(&s, &xla, tmp.path());
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(staging_dirs(tmp.path()), Vec::<PathBuf>::new(), "signal {signal} left staging directories: {stderr}");
        assert_eq!(out.status.code(), Some(code), "signal {signal}: {stderr}");
        assert_eq!(snapshot(s.path()), before, "signal {signal} changed the project");
    }
}

/// SIGKILL cannot be caught: the staging directory of a killed run is
/// removed by the next run (it names a process that no longer exists).
#[test]
fn staging_directory_of_a_killed_run_is_swept() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    let tmp = tempfile::tempdir().unwrap();
    let mut child = start_until_compiling(&s, &xla, tmp.path());
    // The whole group (its `cargo check` too, which would go on writing
    // into the directory): as the OOM killer or `kill -9 -PGID` would.
    // SAFETY: kill(2) on our child's process group.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
    child.wait().unwrap();
    assert_eq!(staging_dirs(tmp.path()).len(), 1, "SIGKILL leaves it");
    let out = s.upgrade(xla.path(), &[&xla.compatible, "--dry-run"], &[("TMPDIR", tmp.path().to_str().unwrap())]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(staging_dirs(tmp.path()), Vec::<PathBuf>::new(), "the next run sweeps it");
}

/// Two runs at once on one checkout would interleave their writes: the
/// second stops at once, naming the reason, and writes nothing.
#[test]
fn a_second_run_on_a_locked_project_stops() {
    if !require_command("git") {
        return;
    }
    use std::os::fd::AsRawFd;
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    let before = snapshot(s.path());
    // What a running upgrade-xla holds: an exclusive flock on the project directory.
    let dir = std::fs::File::open(s.path()).unwrap();
    // SAFETY: flock(2) on a descriptor we own.
    assert_eq!(unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    let out = s.upgrade(xla.path(), &[&xla.compatible], &[]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("another upgrade-xla is running"), "{stderr}");
    assert_eq!(snapshot(s.path()), before);
    drop(dir);
    let out = s.upgrade(xla.path(), &[&xla.compatible], &[]);
    assert!(out.status.success(), "{}", text(&out).1);
}

/// A file edited while the upgrade runs (by hand, or by another verb) is
/// never overwritten by contents computed from its old version. Without git
/// (nothing to check uncommitted edits against) the old code wrote over it.
#[test]
fn an_edit_made_during_the_run_is_kept() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    std::fs::remove_dir_all(s.path().join(".git")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let child = start_until_compiling(&s, &xla, tmp.path());
    let edited = format!("{}\n# edited while upgrade-xla ran\n", s.read("pins.toml"));
    std::fs::write(s.path().join("pins.toml"), &edited).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(s.read("pins.toml"), edited, "the edit was overwritten: {stderr}");
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("pins.toml changed while upgrade-xla ran"), "{stderr}");
    assert!(!s.path().join("docs").exists(), "nothing else written either");
}

/// A report directory that is a symlink pointing out of the project (a
/// hostile checkout, or a clumsy one) is refused, never written through.
#[test]
fn report_directory_linked_out_of_the_project_is_refused() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(s.path().join("docs")).unwrap();
    std::os::unix::fs::symlink(outside.path(), s.path().join("docs/upgrades")).unwrap();
    support::git(s.path(), &["add", "-A"]);
    support::git(s.path(), &["commit", "-q", "-m", "docs/upgrades is a link"]);
    let before = snapshot(s.path());
    let out = s.upgrade(xla.path(), &[&xla.compatible], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "wrote outside the project: {stderr}");
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("is a symbolic link"), "{stderr}");
    assert_eq!(snapshot(s.path()), before);
}

/// CHANGELOG.md and pins.toml with CRLF line endings keep them (the old
/// code rewrote every line to LF, so the whole file showed as changed); a
/// CHANGELOG.md that is not UTF-8 is refused rather than having its bytes
/// replaced by U+FFFD.
#[test]
fn changelog_and_pins_bytes_are_respected() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    let crlf = "# Changelog\r\n\r\n## 0.1.0\r\n\r\n- First release.\r\n";
    std::fs::write(s.path().join("CHANGELOG.md"), crlf).unwrap();
    let pins_crlf = s.read("pins.toml").replace('\n', "\r\n");
    std::fs::write(s.path().join("pins.toml"), &pins_crlf).unwrap();
    support::git(s.path(), &["commit", "-qam", "CRLF changelog and pins"]);
    let out = s.upgrade(xla.path(), &[&xla.compatible], &[]);
    assert!(out.status.success(), "{}", text(&out).1);
    let after = s.read("CHANGELOG.md");
    assert!(after.ends_with("## 0.1.0\r\n\r\n- First release.\r\n"), "{after:?}");
    assert_eq!(after.matches('\n').count(), after.matches("\r\n").count(), "every line ends in CRLF: {after:?}");
    let pins = s.read("pins.toml");
    assert_eq!(pins.matches('\n').count(), pins.matches("\r\n").count(), "pins.toml stays CRLF");
    // Only the upgraded values changed: [xla] (5 values), the toolchain
    // version and the two stale hashes, not the file's ~180 lines.
    let numstat = support::git(s.path(), &["diff", "--numstat", "HEAD", "--", "pins.toml"]);
    let changed: usize = numstat.split_whitespace().next().unwrap().parse().unwrap();
    assert!(changed <= 12, "{changed} lines of pins.toml changed: {numstat}");

    let s = base_project(&xla);
    let latin1 = b"# Changelog\n\n## 0.1.0\n\n- Premi\xe8re version.\n".to_vec();
    std::fs::write(s.path().join("CHANGELOG.md"), &latin1).unwrap();
    support::git(s.path(), &["commit", "-qam", "Latin-1 changelog"]);
    let before = snapshot(s.path());
    let out = s.upgrade(xla.path(), &[&xla.compatible], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(std::fs::read(s.path().join("CHANGELOG.md")).unwrap(), latin1, "{stderr}");
    assert!(!out.status.success() && stderr.contains("not UTF-8"), "{stderr}");
    assert_eq!(snapshot(s.path()), before);
}

/// Without --xla-repo, a branch name is fetched into pjrtpkgs' clone again
/// on every run: the old code resolved the copy fetched the first time, so
/// `upgrade-xla main` a week later said "already at" an old commit.
#[test]
fn branch_name_is_fetched_again_in_the_cached_clone() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    // pjrtpkgs' own clone (as `open_for` creates it), its origin the
    // synthetic history instead of GitHub.
    let clone = s.cache.path().join("xla.git");
    support::git(s.cache.path(), &["init", "-q", "--bare", "xla.git"]);
    support::git(&clone, &["remote", "add", "origin", &format!("file://{}", xla.path().display())]);
    support::git(xla.path(), &["branch", "-f", "nightly", &xla.base]);
    let run = || {
        let mut cmd = s.command(&[]);
        cmd.args(["upgrade-xla", "nightly"]);
        cmd.output().unwrap()
    };
    let out = run();
    let (_, stderr) = text(&out);
    assert!(out.status.success() && stderr.contains("already at"), "{stderr}");
    // Upstream moves the branch; the next run must see it.
    support::git(xla.path(), &["branch", "-f", "nightly", &xla.compatible]);
    let out = run();
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let pins: toml::Table = s.read("pins.toml").parse().unwrap();
    assert_eq!(pins["xla"]["commit"].as_str(), Some(xla.compatible.as_str()), "{stderr}");
}

/// Attacker: a "commit" that is a git option. `upgrade-xla -- --upload-pack=CMD`
/// reached `git fetch` as an option in pjrtpkgs' own clone, which runs CMD.
#[test]
fn a_revision_that_is_an_option_runs_nothing() {
    if !require_command("git") {
        return;
    }
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    let clone = s.cache.path().join("xla.git");
    support::git(s.cache.path(), &["init", "-q", "--bare", "xla.git"]);
    support::git(&clone, &["remote", "add", "origin", &format!("file://{}", xla.path().display())]);
    let marker = s.cache.path().join("ran");
    let evil = format!("--upload-pack=touch {};false", marker.display());
    let mut cmd = s.command(&[]);
    cmd.args(["upgrade-xla", "--", &evil]);
    let out = cmd.output().unwrap();
    let (_, stderr) = text(&out);
    assert!(!marker.exists(), "the option ran a program: {stderr}");
    assert!(!out.status.success() && stderr.contains("not a revision"), "{stderr}");
}

/// Attacker: a commit journal with a "new" pins.toml, committed to the
/// repository (dotfiles are easy to miss in review). Completing it would
/// rename the attacker's file over pins.toml; a journal git tracks is
/// refused instead.
#[test]
fn a_committed_journal_is_refused() {
    if !require_command("git") {
        return;
    }
    use sha2::Digest;
    let xla = SyntheticXla::build();
    let s = base_project(&xla);
    let pins = s.read("pins.toml");
    let evil = pins.replace("x86_64-linux", "x86_64-evil");
    let sha = |b: &[u8]| hex::encode(sha2::Sha256::digest(b));
    let journal = serde_json::json!({
        "tool": "cargo xtask upgrade-xla",
        "state": "committing",
        "entries": [{
            "target": "pins.toml", "temp": ".pjrtpkgs-upgrade-pins.toml.tmp", "backup": ".pjrtpkgs-upgrade-pins.toml.orig",
            "old_sha256": sha(pins.as_bytes()), "new_sha256": sha(evil.as_bytes()),
        }],
        "created_dirs": [],
    });
    std::fs::write(s.path().join(".pjrtpkgs-upgrade-journal.json"), journal.to_string()).unwrap();
    std::fs::write(s.path().join(".pjrtpkgs-upgrade-pins.toml.tmp"), &evil).unwrap();
    support::git(s.path(), &["add", "-A"]);
    support::git(s.path(), &["commit", "-q", "-m", "innocent-looking change"]);
    let out = s.upgrade(xla.path(), &[&xla.compatible], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(s.read("pins.toml"), pins, "the committed journal replaced pins.toml: {stderr}");
    assert!(!out.status.success() && stderr.contains("is committed to the repository"), "{stderr}");
}
