//! `conform --together`: several plugins in one process. Fake plugins
//! (built with the system C compiler) that export the same symbol show
//! interposition under RTLD_GLOBAL and none under the default RTLD_LOCAL,
//! as glibc's dynamic linker itself reports its bindings; a plugin that
//! aborts while its client is made is reported with the call it was in.
//! The real CPU plugins together: xtask/tests/conform_plugins.rs.

mod support;

use std::mem::offset_of;
use std::process::Command;

use pjrt_sys::PJRT_Api;
use support::fake_plugin::{Behaviour, Fake};
use support::require_command;

fn together(plugins: &[&std::path::Path], extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut args = vec!["conform".to_string(), "--json".into(), "--together".into()];
    args.extend(plugins.iter().map(|p| p.display().to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(&args).output().expect("run xtask");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {stderr}"));
    (out.status.code(), json, stderr)
}

const SHARED: &str = "int pjrt_fake_shared(void) { return 1; }\nint pjrt_fake_use_shared(void) { return pjrt_fake_shared(); }\n";

#[test]
fn exported_symbols_interpose_under_rtld_global_only() {
    if !require_command("cc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = Fake { extra_c: SHARED, ..Fake::new(81) }.build(dir.path(), "plugin_a");
    let b = Fake { extra_c: SHARED, ..Fake::new(106) }.build(dir.path(), "plugin_b");

    let (_, r, stderr) = together(&[&a, &b], &[]);
    assert_eq!(r["dlopen"], "RTLD_NOW|RTLD_LOCAL", "the default a binding should use");
    assert_eq!(r["crashed"], serde_json::Value::Null, "{stderr}");
    let shared = r["shared"].as_array().unwrap();
    let fake = shared.iter().find(|s| s["symbol"] == "pjrt_fake_shared").unwrap_or_else(|| panic!("{shared:?}"));
    assert_eq!(fake["defined_by"], serde_json::json!(["plugin_a.so", "plugin_b.so"]));
    assert_eq!(fake["bound"]["plugin_b.so"], "plugin_b.so", "RTLD_LOCAL: each binds its own: {fake}");
    assert!(!shared.iter().any(|s| s["symbol"] == "GetPjrtApi"), "GetPjrtApi is every plugin's");
    assert_eq!(r["interposed"], serde_json::json!([]));
    assert_eq!(r["members"][1]["api_version"], "0.106");

    let (code, r, _) = together(&[&a, &b], &["--dlopen", "global"]);
    let fake = r["shared"].as_array().unwrap().iter().find(|s| s["symbol"] == "pjrt_fake_shared").unwrap().clone();
    assert_eq!(fake["bound"]["plugin_b.so"], "plugin_a.so", "RTLD_GLOBAL: the first plugin's copy serves the second: {fake}");
    assert_eq!(r["interposed"], serde_json::json!(["plugin_b.so binds its own exported symbols to plugin_a.so's copies"]));
    assert_eq!(code, Some(2));
}

#[test]
fn an_abort_while_making_a_client_names_the_call() {
    if !require_command("cc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = Fake::new(81).build(dir.path(), "quiet");
    let b =
        Fake { members: vec![(offset_of!(PJRT_Api, PJRT_Client_Create), Behaviour::Abort)], ..Fake::new(81) }.build(dir.path(), "aborts");
    let (code, r, stderr) = together(&[&a, &b], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    let crashed = r["crashed"].as_str().unwrap_or_else(|| panic!("{r}"));
    assert!(crashed.contains("crashed with SIGABRT (signal 6) in PJRT_Client_Create"), "{crashed}");
    assert_eq!(r["members"][0]["load"], "ok");
    assert_eq!(r["members"][1]["load"], "ok");
}

/// Two plugins that need the same library (by soname), each shipping its
/// own copy in a directory of its RUNPATH: the process loads one copy, the
/// first plugin's, and the second plugin uses it (what happens to two
/// plugins built against different abseils). The report names the library,
/// both plugins, and the one file loaded.
#[test]
fn a_library_two_plugins_need_is_loaded_once() {
    if !require_command("cc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut plugins = Vec::new();
    for name in ["plugin_a", "plugin_b"] {
        let own = dir.path().join(format!("{name}-libs"));
        std::fs::create_dir(&own).unwrap();
        let source = own.join("shared.c");
        std::fs::write(&source, "int pjrt_fake_state(void) { static int calls; return ++calls; }\n").unwrap();
        let library = own.join("libpjrtfakeshared.so");
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-Wl,-soname,libpjrtfakeshared.so", "-o"])
            .arg(&library)
            .arg(&source)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // --no-as-needed: the fake calls nothing in it, and must need it all the same.
        let link = vec!["-Wl,--no-as-needed".into(), library.display().to_string(), format!("-Wl,-rpath,{}", own.display())];
        plugins.push(Fake { link, ..Fake::new(81) }.build(dir.path(), name));
    }
    let (_, r, stderr) = together(&[&plugins[0], &plugins[1]], &[]);
    let libraries = r["shared_libraries"].as_array().unwrap_or_else(|| panic!("{r}: {stderr}"));
    let shared = libraries.iter().find(|l| l["name"] == "libpjrtfakeshared.so").unwrap_or_else(|| panic!("{libraries:?}"));
    assert_eq!(shared["needed_by"], serde_json::json!(["plugin_a.so", "plugin_b.so"]));
    let first = dir.path().join("plugin_a-libs/libpjrtfakeshared.so");
    assert_eq!(shared["loaded"], serde_json::json!([first]), "one copy, the first plugin's: {shared}");
}
