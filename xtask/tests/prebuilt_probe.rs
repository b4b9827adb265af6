//! Reading a plugin's PJRT API version runs the plugin in a child process;
//! a plugin that never returns from its initialisers is killed after the
//! probe's timeout instead of hanging `prebuilt update`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

/// Issue 13 (no hangs): a library whose constructor never returns.
#[test]
fn a_plugin_that_never_loads_is_killed() {
    if !support::require_command("clang") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("stuck.c");
    std::fs::write(
        &source,
        "#include <unistd.h>\n__attribute__((constructor)) static void stuck(void) { for (;;) sleep(1); }\nconst void* GetPjrtApi(void) { return 0; }\n",
    )
    .unwrap();
    let library = dir.path().join("libstuck.so");
    let out = std::process::Command::new("clang").args(["-shared", "-fPIC", "-o"]).arg(&library).arg(&source).output().unwrap();
    assert!(out.status.success(), "clang: {}", String::from_utf8_lossy(&out.stderr));

    let started = Instant::now();
    let err = xtask::plugin::probe::probe_in_child(Path::new(env!("CARGO_BIN_EXE_xtask")), &library, Duration::from_secs(2)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(format!("{err:#}").contains("did not finish within 2 s"), "{err:#}");
}
