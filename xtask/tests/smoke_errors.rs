//! `cargo xtask smoke` failures that need no network: clear messages and
//! exit status 1, never a crash.

use std::path::Path;
use std::process::Command;

fn smoke(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("smoke").args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn missing_file_is_an_error() {
    let (code, _, stderr) = smoke(&["/nonexistent/libpjrt.so"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("/nonexistent/libpjrt.so does not exist"), "{stderr}");
}

/// A real shared library that is not a PJRT plugin (the C math library).
#[test]
fn library_without_get_pjrt_api_is_refused() {
    let candidates = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
        "/usr/lib/aarch64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
        "/usr/lib/libm.so.6",
    ];
    let Some(libm) = candidates.iter().find(|p| Path::new(p).is_file()) else {
        eprintln!("SKIPPED: no libm.so.6 found");
        return;
    };
    let (code, stdout, stderr) = smoke(&[libm, "--json"]);
    assert_eq!(code, Some(1), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], false);
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("no GetPjrtApi symbol, not a PJRT plugin"), "{error}");
    assert!(stderr.contains("error: smoke test of"), "{stderr}");
}

#[test]
fn unknown_prebuilt_name_is_an_error() {
    let (code, _, stderr) = smoke(&["no-such-plugin"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no-such-plugin"), "{stderr}");
}
