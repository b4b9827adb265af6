//! Every plugin child (the API-version probe `release` and `prebuilt`
//! use, `smoke`'s and `conform`'s children) is isolated the same way, by
//! `xtask::plugin::child`: a scrubbed environment, a process group of its
//! own killed when the time is up and when the child ends, answers on a
//! channel the plugin does not share. Each synthetic plugin here is a few
//! lines of C built with cc, doing in its constructor or destructor what a
//! hostile or clumsy third-party wheel could.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// A `GetPjrtApi` reporting PJRT 0.81 (a struct too short for anything else:
/// smoke and conform then fail cleanly, after the constructor ran).
const API: &str = "#include <stddef.h>\n\
struct version { size_t struct_size; void* ext; int major; int minor; };\n\
struct api { size_t struct_size; void* ext; struct version v; };\n\
static struct api api;\n\
const struct api* GetPjrtApi(void) { api.struct_size = sizeof api; api.v.struct_size = sizeof api.v; api.v.major = 0; api.v.minor = 81; return &api; }\n";

fn build(dir: &Path, name: &str, body: &str) -> PathBuf {
    build_with(dir, name, body, API)
}

/// `build` with another `GetPjrtApi` (or none: "").
fn build_with(dir: &Path, name: &str, body: &str, api: &str) -> PathBuf {
    let source = dir.join(format!("{name}.c"));
    let library = dir.join(format!("lib{name}.so"));
    std::fs::write(&source, format!("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <unistd.h>\n{api}{body}"))
        .unwrap();
    let out = Command::new("cc").args(["-shared", "-fPIC", "-O0", "-o"]).arg(&library).arg(&source).output().expect("cc runs");
    assert!(out.status.success(), "cc: {}", String::from_utf8_lossy(&out.stderr));
    library
}

fn probe(library: &Path, timeout: Duration) -> anyhow::Result<String> {
    xtask::plugin::probe::probe_in_child(Path::new(XTASK), library, timeout)
}

/// Runs the xtask with `args` (its own project dir, no pins needed), both
/// outputs piped and read to their end, as `cargo xtask ... 2>&1 | cat` would.
fn xtask<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> (Output, Duration) {
    let started = Instant::now();
    let mut command = Command::new(XTASK);
    command.args(args).envs(env.iter().copied()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = command.output().unwrap();
    (out, started.elapsed())
}

/// Whether the process `pid` still runs (a zombie waiting for init counts as gone).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

fn gone_within(pid: i32, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().parse().unwrap()
}

const SECRETS: &[(&str, &str)] = &[
    ("PJRTPKGS_RELEASE_KEY_PASSWORD", "hunter2-release"),
    ("GITHUB_TOKEN", "ghp-secret-token"),
    ("CARGO_REGISTRY_TOKEN", "cargo-secret"),
    ("MY_SERVICE_PASSWORD", "service-secret"),
    ("SIGNING_KEY", "signing-secret"),
];
const NEEDED: &[(&str, &str)] = &[("XLA_FLAGS", "--xla_dump_to=/nowhere"), ("CUDA_VISIBLE_DEVICES", "7"), ("TF_CPP_MIN_LOG_LEVEL", "1")];

/// A plugin whose constructor writes the environment it sees to `dump`.
fn env_dumper(dir: &Path, name: &str, dump: &Path) -> PathBuf {
    build(
        dir,
        name,
        &format!(
            "extern char **environ;\n__attribute__((constructor)) static void dump(void) {{ FILE* f = fopen(\"{}\", \"a\"); if (!f) return; for (char** e = environ; *e; e++) fprintf(f, \"%s\\n\", *e); fclose(f); }}\n",
            dump.display()
        ),
    )
}

fn assert_scrubbed(dump: &Path, what: &str) {
    let seen = std::fs::read_to_string(dump).unwrap_or_else(|e| panic!("{what}: the plugin's constructor did not run ({e})"));
    for (name, value) in SECRETS {
        assert!(!seen.contains(value), "{what}: the plugin saw {name}:\n{seen}");
    }
    for (name, value) in NEEDED {
        assert!(seen.lines().any(|l| l == format!("{name}={value}")), "{what}: the plugin did not get {name}:\n{seen}");
    }
    assert!(seen.lines().any(|l| l.starts_with("PATH=")), "{what}: no PATH:\n{seen}");
}

/// Fault (a): `release` probed a third-party wheel with the whole
/// environment, `PJRTPKGS_RELEASE_KEY_PASSWORD` included. The probe, smoke
/// and conform children (`--together`'s too) now see what plugins need and
/// no secret.
#[test]
fn plugin_children_get_a_scrubbed_environment() {
    if !support::require_command("cc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in SECRETS.iter().chain(NEEDED) {
        std::env::set_var(name, value);
    }
    let dump = dir.path().join("probe.env");
    let library = env_dumper(dir.path(), "probe", &dump);
    assert_eq!(probe(&library, Duration::from_secs(60)).unwrap(), "0.81");
    assert_scrubbed(&dump, "probe");

    let env: Vec<(&str, &str)> = SECRETS.iter().chain(NEEDED).copied().collect();
    for verb in ["smoke", "conform", "--together"] {
        let dump = dir.path().join(format!("{verb}.env"));
        let library = env_dumper(dir.path(), verb.trim_start_matches('-'), &dump);
        xtask(&verb_args(verb, &library), &env);
        assert_scrubbed(&dump, verb);
    }
}

/// The command line of `verb` on `library`: `smoke LIB`, `conform LIB`, or
/// for "--together" `conform --together LIB LIB` (the plugin beside itself).
fn verb_args(verb: &str, library: &Path) -> Vec<String> {
    let library = library.to_str().unwrap().to_string();
    let timeout = ["--timeout".to_string(), "60".to_string()];
    match verb {
        "--together" => ["conform".into(), "--together".into(), library.clone(), library].into_iter().chain(timeout).collect(),
        _ => [verb.to_string(), library].into_iter().chain(timeout).collect(),
    }
}

/// A plugin whose constructor forks a process that outlives it by
/// `seconds` (writing its pid to `pid_file`), keeping stdout and stderr.
fn forker(dir: &Path, name: &str, pid_file: &Path, seconds: u32, then: &str) -> PathBuf {
    build(
        dir,
        name,
        &format!(
            "__attribute__((constructor)) static void spawn(void) {{ pid_t p = fork(); if (p == 0) {{ for (int i = 0; i < {seconds}; i++) sleep(1); _exit(0); }} FILE* f = fopen(\"{}\", \"w\"); fprintf(f, \"%d\\n\", (int)p); fclose(f); {then} }}\n",
            pid_file.display()
        ),
    )
}

/// Fault (b): `release` waited as long as a daemon the plugin's
/// constructor forked (151 s; forever for an endless one): the probe read
/// its pipes to the end, and the daemon held them. Now the child's group
/// dies with it, the probe answers at once and nothing is left behind.
#[test]
fn a_daemon_forked_by_a_plugin_dies_with_the_probe() {
    if !support::require_command("cc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("daemon.pid");
    let library = forker(dir.path(), "daemon", &pid_file, 40, "");
    let started = Instant::now();
    assert_eq!(probe(&library, Duration::from_secs(60)).unwrap(), "0.81");
    assert!(started.elapsed() < Duration::from_secs(15), "the probe waited {:?} for the daemon", started.elapsed());
    let pid = read_pid(&pid_file);
    assert!(gone_within(pid, Duration::from_secs(5)), "the daemon {pid} outlived the probe");

    // The same daemon forked by a constructor that then never returns: the
    // probe's timeout kills the group, daemon included.
    let pid_file = dir.path().join("stuck.pid");
    let library = forker(dir.path(), "stuck", &pid_file, 40, "for (;;) pause();");
    let started = Instant::now();
    let err = probe(&library, Duration::from_secs(2)).unwrap_err();
    assert!(format!("{err:#}").contains("did not finish within 2 s"), "{err:#}");
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    let pid = read_pid(&pid_file);
    assert!(gone_within(pid, Duration::from_secs(5)), "the daemon {pid} outlived the probe's timeout");
}

/// Fault (b) for smoke and conform (and `conform --together`): the orphan
/// kept `2>&1 | cat` open until it ended. Now each returns as soon as its
/// child does, the orphan dead.
#[test]
fn smoke_and_conform_leave_no_orphan_holding_their_output() {
    if !support::require_command("cc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for verb in ["smoke", "conform", "--together"] {
        let pid_file = dir.path().join(format!("{verb}.pid"));
        let library = forker(dir.path(), verb.trim_start_matches('-'), &pid_file, 40, "");
        let (out, took) = xtask(&verb_args(verb, &library), &[]);
        assert!(took < Duration::from_secs(20), "{verb} kept its output open {took:?} (stderr: {})", String::from_utf8_lossy(&out.stderr));
        let pid = read_pid(&pid_file);
        assert!(gone_within(pid, Duration::from_secs(5)), "{verb} left the plugin's process {pid} running");
    }
}

/// Fault (c): the version was the last line of the child's stdout, which
/// the plugin shares; a destructor printing "0.50" renamed a release. The
/// answer now has a channel of its own (and destructors do not run).
#[test]
fn what_a_plugin_prints_is_never_its_version() {
    if !support::require_command("cc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let library = build(
        dir.path(),
        "liar",
        "__attribute__((constructor)) static void early(void) { printf(\"0.40\\n\"); fflush(stdout); }\n\
         __attribute__((destructor)) static void late(void) { printf(\"0.50\\n\"); fflush(stdout); }\n",
    );
    assert_eq!(probe(&library, Duration::from_secs(60)).unwrap(), "0.81");

    // A plugin that fails after printing a flood on stderr: the error is the
    // loader's reason, not the flood, and says nothing of megabytes.
    let library = build_with(
        dir.path(),
        "noisy",
        "__attribute__((constructor)) static void noise(void) { static char line[1 << 16]; memset(line, 'y', sizeof line - 1); for (int i = 0; i < 64; i++) fprintf(stderr, \"%s\\n\", line); }\n",
        "",
    );
    let err = format!("{:#}", probe(&library, Duration::from_secs(60)).unwrap_err());
    assert!(err.contains("does not export GetPjrtApi"), "{err}");
    assert!(err.len() < 4096, "the error carries {} bytes", err.len());

    // A plugin that crashes in its constructor after printing: the crash is
    // named, with the end of what it printed, cut and said to be cut.
    let library = build(
        dir.path(),
        "crasher",
        "__attribute__((constructor)) static void crash(void) { static char line[1 << 16]; memset(line, 'z', sizeof line - 1); for (int i = 0; i < 64; i++) fprintf(stderr, \"%s\\n\", line); fprintf(stderr, \"about to crash\\n\"); abort(); }\n",
    );
    let err = format!("{:#}", probe(&library, Duration::from_secs(60)).unwrap_err());
    assert!(err.contains("SIGABRT") && err.contains("about to crash") && err.contains("the rest cut"), "{err}");
    assert!(err.len() < 4096, "the error carries {} bytes", err.len());
}
