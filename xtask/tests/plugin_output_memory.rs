//! What a plugin prints while its API version is probed is read and
//! dropped, all but a capped tail: a plugin printing a flood costs the
//! probing process no memory (1 GiB on stdout used to take 2.17 GB). Its own
//! test binary (one test), so the peak memory measured is this test's.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Peak resident memory of this process so far, in bytes (Linux VmHWM).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn a_plugin_flooding_stdout_costs_no_memory() {
    if !cfg!(target_os = "linux") || !support::require_command("cc") {
        return;
    }
    const MIB: usize = 256;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("flood.c");
    let library = dir.path().join("libflood.so");
    std::fs::write(
        &source,
        format!(
            "#include <stdio.h>\n#include <stddef.h>\n#include <string.h>\n\
             __attribute__((constructor)) static void flood(void) {{ static char mib[1 << 20]; memset(mib, 'x', sizeof mib); for (int i = 0; i < {MIB}; i++) fwrite(mib, 1, sizeof mib, stdout); fflush(stdout); }}\n\
             struct version {{ size_t struct_size; void* ext; int major; int minor; }};\n\
             struct api {{ size_t struct_size; void* ext; struct version v; }};\n\
             static struct api api;\n\
             const struct api* GetPjrtApi(void) {{ api.struct_size = sizeof api; api.v.struct_size = sizeof api.v; api.v.minor = 81; return &api; }}\n"
        ),
    )
    .unwrap();
    let out = Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&library).arg(&source).output().unwrap();
    assert!(out.status.success(), "cc: {}", String::from_utf8_lossy(&out.stderr));

    let before = peak_rss();
    let version = xtask::plugin::probe::probe_in_child(Path::new(env!("CARGO_BIN_EXE_xtask")), &library, Duration::from_secs(120)).unwrap();
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 32 << 20, "probing a plugin that prints {MIB} MiB grew this process by {} MiB", grown >> 20);
    assert_eq!(version, "0.81");
}
