//! `cargo xtask smoke` on real PJRT plugins from PyPI, pinned (with their
//! sha256) in pins.toml `[prebuilt.*]`: bindings from the pinned headers
//! (API 0.93) against older (0.81) and newer (0.106, 0.115) CPU plugins, and
//! a CUDA plugin on a machine that may have no GPU.
//!
//! Needs the network (PyPI) and the pins: skipped without them, failed
//! without them under CI=true.

mod support;

use std::path::PathBuf;
use std::process::Command;

use pjrt_sys::loader::{Error, Plugin};

use support::require;

fn network() -> bool {
    require("network access to pypi.org", support::reachable("pypi.org"))
}

/// The project whose pins.toml the xtask reads (PJRTPKGS_ROOT or this checkout).
fn project_root() -> PathBuf {
    xtask::project::root().unwrap()
}

/// `[prebuilt.NAME] pjrt_api_version`, when pins.toml pins NAME.
fn pinned_api_version(name: &str) -> Option<String> {
    let pins: toml::Table = std::fs::read_to_string(project_root().join("pins.toml")).unwrap().parse().unwrap();
    let version = pins.get("prebuilt")?.get(name)?.get("pjrt_api_version")?.as_str()?.to_string();
    Some(version)
}

/// Prerequisites of a test on the prebuilt plugin `name`: its API version.
fn prebuilt(name: &str) -> Option<String> {
    let pinned = pinned_api_version(name);
    if !require(&format!("[prebuilt.{name}] in pins.toml"), pinned.is_some()) || !network() {
        return None;
    }
    pinned
}

struct Smoke {
    code: Option<i32>,
    report: serde_json::Value,
    stderr: String,
}

fn smoke(name: &str) -> Smoke {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["smoke", name, "--json"]).output().expect("run xtask");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("smoke {name} --json printed no JSON ({e}); stderr:\n{stderr}"));
    Smoke { code: out.status.code(), report, stderr }
}

fn check_cpu_plugin(name: &str) {
    let Some(api) = prebuilt(name) else { return };
    let s = smoke(name);
    let r = &s.report;
    assert_eq!(s.code, Some(0), "smoke {name} failed: {r:#}\n{}", s.stderr);
    assert_eq!(r["ok"], true);
    assert_eq!(r["api_version"].as_str(), Some(api.as_str()), "API version of {name} differs from pins.toml");
    assert_eq!(r["bindings_api_version"].as_str(), Some("0.93"));
    assert_eq!(r["platform_name"], "cpu");
    assert!(!r["devices"].as_array().unwrap().is_empty());
    assert_eq!(r["result"], r["expected"]);
    for phase in ["load", "client", "compile", "execute"] {
        assert!(r["timings_ms"][phase].as_f64().is_some_and(|t| t >= 0.0), "no {phase} time: {r:#}");
    }
    eprintln!("{name}: API {api}, timings {}", r["timings_ms"]);
}

#[test]
fn cpu_plugin_older_than_bindings_xla_cpu_pjrt() {
    check_cpu_plugin("xla-cpu-pjrt");
}

#[test]
fn cpu_plugin_newer_than_bindings_fastatomstruct() {
    check_cpu_plugin("fastatomstruct-xla-cpu");
}

#[test]
fn cpu_plugin_newer_than_bindings_lammps() {
    check_cpu_plugin("lammps-jax-pjrt-cpu");
}

/// Without a GPU, the CUDA plugin still loads and reports its version;
/// client creation then fails with the plugin's message, not a crash.
#[test]
fn cuda_plugin_loads_and_reports_its_version() {
    let name = "jax-cuda12-pjrt";
    let Some(api) = prebuilt(name) else { return };
    let s = smoke(name);
    let r = &s.report;
    assert_eq!(r["api_version"].as_str(), Some(api.as_str()), "{r:#}\n{}", s.stderr);
    // A GPU plugin does not reserve most of the GPU's memory by default.
    assert_eq!(r["client_options"], serde_json::json!(["preallocate=false (GPU default)"]), "{r:#}");
    match s.code {
        Some(0) => assert_eq!(r["ok"], true, "a machine with a GPU: the smoke test must pass"),
        Some(1) => {
            let error = r["error"].as_str().unwrap();
            assert!(error.contains("PJRT_Client_Create failed"), "{error}");
            assert!(r["timings_ms"]["load"].as_f64().is_some());
            assert!(s.stderr.contains("error: smoke test of jax-cuda12-pjrt failed"), "{}", s.stderr);
        }
        other => panic!("smoke {name} ended with {other:?} (a crash?)\n{}", s.stderr),
    }
}

/// A plugin older than the bindings has a shorter `PJRT_Api`: members past
/// its `struct_size` are an error, never read.
#[test]
fn members_beyond_an_old_plugins_struct_size_are_an_error() {
    let name = "xla-cpu-pjrt";
    if prebuilt(name).is_none() {
        return;
    }
    let s = smoke(name);
    let path = PathBuf::from(s.report["path"].as_str().expect("smoke reports the plugin path"));
    let plugin = Plugin::load(&path).unwrap();
    assert_eq!(plugin.api_version(), (0, 81));
    assert!(plugin.struct_size() < std::mem::size_of::<pjrt_sys::PJRT_Api>());
    // Added in 0.9x, after this plugin was built.
    let err = pjrt_sys::api_fn!(&plugin, PJRT_Device_GetAttributes).unwrap_err();
    match &err {
        Error::Unsupported { what, needed_size, struct_size, .. } => {
            assert_eq!(*what, "PJRT_Device_GetAttributes");
            assert!(needed_size > struct_size);
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert!(err.to_string().contains("does not provide PJRT_Device_GetAttributes"), "{err}");
    assert!(pjrt_sys::api_fn!(&plugin, PJRT_Client_Create).is_ok());
    // The extension chain is walked within each element's struct_size.
    let extensions = plugin.extensions();
    assert!(extensions.iter().any(|e| e.name() == Some("Layouts")), "{extensions:?}");
    assert!(extensions.iter().all(|e| e.struct_size >= std::mem::size_of::<pjrt_sys::PJRT_Extension_Base>()));
}

/// xla-cpu-pjrt pins an aarch64 wheel too: on x86_64 its library is named
/// for what it is, from its ELF header, instead of dlopen's raw error.
#[test]
fn plugin_for_another_architecture_says_so() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("SKIP: this test runs the aarch64 wheel on an x86_64 machine");
        return;
    }
    if prebuilt("xla-cpu-pjrt").is_none() {
        return;
    }
    let out =
        Command::new(env!("CARGO_BIN_EXE_xtask")).args(["smoke", "xla-cpu-pjrt", "--system", "aarch64-linux", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("it is built for aarch64, this machine is x86_64: use the plugin's x86_64 build"), "{error}");
}
