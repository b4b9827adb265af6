//! `conform` on the oldest PJRT plugins on PyPI (PJRT 0.40, pinned in
//! tests/fixtures/old_plugins.toml, downloaded and sha256-verified): their
//! `PJRT_Api` has an untyped `extension_start` whose chain elements carry
//! no struct_size, and declares a size one member short (the header's
//! PJRT_Api_STRUCT_SIZE at 0.40). Every check must PASS or FAIL on the
//! plugin's own behaviour, or be UNSUPPORTED/SKIP with a reason: no crash,
//! no harness error. Without a GPU, client creation fails (the plugin's
//! answer), and what needs a client skips.
//!
//! Needs the network (PyPI): skipped without it, failed without it under CI=true.

mod support;

use std::process::Command;

#[test]
fn the_oldest_plugins_are_read_as_their_version_means() {
    if !support::require("network access to pypi.org", support::reachable("pypi.org")) {
        return;
    }
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("SKIP: the old wheels pinned are x86_64 only");
        return;
    }
    let fixtures: toml::Table =
        std::fs::read_to_string(support::project_root().join("xtask/tests/fixtures/old_plugins.toml")).unwrap().parse().unwrap();
    let cache = xtask::project::cache_dir().unwrap().join("prebuilt").join("wheels");
    for pin in fixtures["plugin"].as_array().unwrap() {
        let field = |k: &str| pin[k].as_str().unwrap().to_string();
        let (name, url, sha256, library) = (field("name"), field("url"), field("sha256"), field("library"));
        let wheel = cache.join(&sha256).join(url.rsplit('/').next().unwrap());
        xtask::wheels::download::fetch_verified(&url, &sha256, &wheel).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let plugin = xtask::wheels::wheel::extract(&wheel, &library, dir.path()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["conform", "--json"]).arg(&plugin).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name}: no JSON ({e}): {stderr}"));
        assert_eq!(r["api_version"].as_str(), Some(field("pjrt_api_version").as_str()), "{name}: the header names the version");
        assert_eq!(r["crashed"], serde_json::json!([]), "{name}");
        assert_eq!(r["counts"]["ERROR"], 0, "{name}: {}", r["counts"]);
        let names: Vec<&str> = r["extensions"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
        assert_eq!(names, ["Gpu_Custom_Call", "Profiler"], "{name}: read from the 0.40 chain");
        let status = |id: &str| r["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
        assert_eq!(status("extensions.chain")["status"], "PASS", "{name}");
        let size = status("api.struct_size_matches_version");
        assert_eq!(size["status"], "PASS", "{name}: 808 bytes is what 0.40's header declares: {size}");
        assert_eq!(status("extensions.struct_sizes_match_version")["status"], "UNSUPPORTED", "{name}: no struct_size before 0.45");
        for c in r["checks"].as_array().unwrap() {
            let detail = c["detail"].as_str().unwrap();
            assert!(c["status"] == "PASS" || !detail.is_empty(), "{name}: {c}");
            if c["status"] == "FAIL" {
                // Only the plugin's own answers: no GPU here.
                assert_eq!(c["id"], "client.create", "{name}: {c}");
                assert!(detail.contains("PJRT_Client_Create failed with"), "{name}: {c}");
            }
        }
    }
}
