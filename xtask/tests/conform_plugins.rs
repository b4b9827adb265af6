//! `cargo xtask conform` on the real plugins pinned in pins.toml (PyPI
//! wheels, sha256-verified): the three CPU plugins at PJRT 0.81, 0.106 and
//! 0.115 against bindings at 0.93, and the CUDA 12 plugin, which on a
//! machine without a GPU must fail cleanly at client creation after its
//! version and extensions are reported. None may crash the suite; the
//! compatibility matrix must be current.
//!
//! Needs the network (PyPI): skipped without it, failed without it under CI=true.

mod support;

use std::process::Command;

use support::require;

fn prebuilt(name: &str) -> Option<String> {
    let pins: toml::Table = std::fs::read_to_string(support::project_root().join("pins.toml")).unwrap().parse().unwrap();
    let api = pins.get("prebuilt")?.get(name)?.get("pjrt_api_version")?.as_str()?.to_string();
    require("network access to pypi.org", support::reachable("pypi.org")).then_some(api)
}

struct Run {
    code: Option<i32>,
    report: serde_json::Value,
    stdout: String,
    stderr: String,
}

fn conform(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("conform").args(args).output().expect("run xtask");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = if args.contains(&"--json") {
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("conform {args:?} printed no JSON ({e}); stderr:\n{stderr}"))
    } else {
        serde_json::Value::Null
    };
    Run { code: out.status.code(), report, stdout, stderr }
}

fn status<'a>(report: &'a serde_json::Value, id: &str) -> (&'a str, &'a str) {
    let c = report["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no check {id}"));
    (c["status"].as_str().unwrap(), c["detail"].as_str().unwrap())
}

/// What every CPU plugin must do, whatever its version: load, compute,
/// round-trip f32 bit for bit, and leave a complete report.
fn check_cpu_plugin(name: &str) -> Option<serde_json::Value> {
    let api = prebuilt(name)?;
    let run = conform(&[name, "--json"]);
    let r = run.report;
    // 2: these plugins fail some checks (see docs/compat-matrix.md); never 101 or a signal.
    assert!(matches!(run.code, Some(0) | Some(2)), "conform {name} ended with {:?}\n{}", run.code, run.stderr);
    assert_eq!(r["api_version"].as_str(), Some(api.as_str()));
    assert_eq!(r["platform"], "cpu");
    let checks = r["checks"].as_array().unwrap();
    assert!(checks.len() >= 63, "{} checks", checks.len());
    for id in [
        "api.load",
        "client.create",
        "execute.smoke",
        "execute.two_outputs",
        "buffer.roundtrip_f32",
        "buffer.roundtrip_bf16",
        "execute.donation",
    ] {
        assert_eq!(status(&r, id).0, "PASS", "{name} {id}: {}", status(&r, id).1);
    }
    // Every check that did not pass says why.
    for c in checks {
        assert!(c["status"] == "PASS" || !c["detail"].as_str().unwrap().is_empty(), "{c}");
    }
    Some(r)
}

#[test]
fn cpu_plugin_older_than_the_bindings_0_81() {
    let Some(r) = check_cpu_plugin("xla-cpu-pjrt") else { return };
    // Past its PJRT_Api or its Layouts extension: UNSUPPORTED, never called
    // (pypjrt's conform reads GetParameterLayouts past the struct: SIGSEGV).
    let (s, d) = status(&r, "layouts.executable_parameter_layouts");
    assert_eq!(s, "UNSUPPORTED");
    assert!(d.contains("lies past the end of the plugin's PJRT_Layouts_Extension (72 bytes"), "{d}");
    let (s, d) = status(&r, "device.attributes");
    assert_eq!(s, "UNSUPPORTED");
    assert!(d.contains("PJRT_Device_GetAttributes lies past the end of the plugin's PJRT_Api (984 bytes") && d.contains("0.92"), "{d}");
    assert_eq!(status(&r, "buffer.roundtrip_f6e2m3fn").0, "UNSUPPORTED", "F6 types arrived in 0.114");
    assert_eq!(status(&r, "api.members_past_struct_size_refused").0, "PASS");
    assert_eq!(r["api_struct_size"], 984);
}

#[test]
fn cpu_plugin_newer_than_the_bindings_0_106() {
    let Some(r) = check_cpu_plugin("fastatomstruct-xla-cpu") else { return };
    assert_eq!(status(&r, "api.struct_size_matches_version").0, "PASS");
    assert_eq!(status(&r, "layouts.executable_parameter_layouts").0, "PASS");
    assert_eq!(status(&r, "device.attributes").0, "PASS");
}

/// The plugin lets a C++ exception (`std::bad_variant_access`) escape
/// `PJRT_Client_Create` when an option has the wrong type. Whatever Rust
/// code surrounds the call, the plugin's own runtime must see no handler and
/// terminate, naming the exception: SIGABRT, as for a C caller. Unwinding
/// into the harness's frames gave SIGABRT or SIGSEGV depending on the build.
#[test]
fn an_escaping_cxx_exception_ends_in_terminate_not_in_our_frames() {
    if prebuilt("fastatomstruct-xla-cpu").is_none() {
        return;
    }
    let run = conform(&["fastatomstruct-xla-cpu", "--json"]);
    let (s, d) = status(&run.report, "errors.mistyped_client_option");
    assert_eq!(s, "FAIL");
    assert!(d.contains("SIGABRT"), "{d}");
    assert!(run.stderr.contains("terminating due to uncaught exception of type std::bad_variant_access"), "{}", run.stderr);
}

#[test]
fn cpu_plugin_newer_than_the_history_0_115() {
    let Some(r) = check_cpu_plugin("lammps-jax-pjrt-cpu") else { return };
    // Type 24, unknown to the 0.93 bindings, named from the history.
    let names: Vec<&str> = r["extensions"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert!(names.contains(&"XlaTransform"), "{names:?}");
    assert_eq!(status(&r, "extensions.types_named").0, "PASS");
    let (s, d) = status(&r, "api.version_in_history");
    assert_eq!(s, "UNSUPPORTED");
    assert!(d.contains("newer than the newest header"), "{d}");
}

/// Without a GPU: version and extensions reported, a clean FAIL at client
/// creation, no crash; with one, client creation passes.
#[test]
fn cuda12_plugin_without_a_gpu_fails_cleanly_at_client_creation() {
    let Some(api) = prebuilt("jax-cuda12-pjrt") else { return };
    let run = conform(&["jax-cuda12-pjrt", "--json"]);
    let r = &run.report;
    assert!(matches!(run.code, Some(0) | Some(2)), "{:?}\n{}", run.code, run.stderr);
    assert_eq!(r["api_version"].as_str(), Some(api.as_str()));
    assert_eq!(status(r, "api.load").0, "PASS");
    let names: Vec<&str> = r["extensions"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert!(names.contains(&"Gpu_Custom_Call") && names.contains(&"XlaTransform"), "{names:?}");
    assert_eq!(r["crashed"], serde_json::json!([]), "{}", r["crashed"]);
    assert_eq!(r["client_options"][0]["name"], "preallocate", "{}", r["client_options"]);
    assert_eq!(r["client_options"][0]["source"], "gpu_default");
    let (s, d) = status(r, "client.create");
    if s == "FAIL" {
        assert!(d.contains("PJRT_Client_Create failed"), "{d}");
        assert_eq!(status(r, "execute.smoke").0, "SKIP");
        assert_eq!(r["counts"]["FAIL"], 1, "only client creation fails without a GPU");
    } else {
        assert_eq!(s, "PASS", "{d}");
    }
}

/// `--baseline`: no change is no regression (exit 0); a check that passed
/// in the baseline and fails now is one (exit 2), named in the output.
#[test]
fn baseline_reports_changes_and_exits_on_regressions() {
    if prebuilt("lammps-jax-pjrt-cpu").is_none() {
        return;
    }
    let first = conform(&["lammps-jax-pjrt-cpu", "--json"]);
    let dir = tempfile::tempdir().unwrap();
    let same = dir.path().join("same.json");
    std::fs::write(&same, &first.stdout).unwrap();
    let run = conform(&["lammps-jax-pjrt-cpu", "--baseline", same.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("every check has the same result"), "{}", run.stdout);

    // A baseline in which a check that fails today passed.
    let mut edited = first.report.clone();
    let failing = edited["checks"].as_array().unwrap().iter().position(|c| c["status"] == "FAIL").expect("this plugin fails a check");
    let id = edited["checks"][failing]["id"].as_str().unwrap().to_string();
    edited["checks"][failing]["status"] = "PASS".into();
    let older = dir.path().join("older.json");
    std::fs::write(&older, serde_json::to_string(&edited).unwrap()).unwrap();
    let run = conform(&["lammps-jax-pjrt-cpu", "--baseline", older.to_str().unwrap()]);
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert!(run.stdout.contains(&id) && run.stdout.contains("PASS -> FAIL  REGRESSION"), "{}", run.stdout);

    let run = conform(&["lammps-jax-pjrt-cpu", "--baseline", dir.path().join("missing.json").to_str().unwrap()]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("cannot read the baseline report"), "{}", run.stderr);
}

/// Client options reach the plugin, typed: the CPU plugin takes
/// cpu_device_count (int64).
#[test]
fn client_options_reach_the_plugin() {
    if prebuilt("lammps-jax-pjrt-cpu").is_none() {
        return;
    }
    let run = conform(&["lammps-jax-pjrt-cpu", "--json", "--client-option", "cpu_device_count=3"]);
    let (s, d) = status(&run.report, "client.devices");
    assert_eq!((s, d), ("PASS", "3 device(s)"));
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["smoke", "lammps-jax-pjrt-cpu", "--json", "--client-option", "cpu_device_count=2"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["devices"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["client_options"], serde_json::json!(["cpu_device_count=2"]));
    // A misspelt one is refused by the plugin with a clear error.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["smoke", "lammps-jax-pjrt-cpu", "--json", "--client-option", "cpu_devices=2"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(report["error"].as_str().unwrap().contains("Unexpected option name"), "{report}");
}

/// docs/compat-matrix.md is what `conform --matrix` writes on a machine
/// like CI's (x86_64-linux, no GPU, no TPU).
#[test]
fn compat_matrix_is_current() {
    if prebuilt("xla-cpu-pjrt").is_none() {
        return;
    }
    if std::path::Path::new("/dev/nvidia0").exists() || std::path::Path::new("/dev/kfd").exists() {
        eprintln!("SKIP: this machine has a GPU; docs/compat-matrix.md describes one without");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["conform", "--matrix", "--check"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "conform --matrix --check: {stderr}");
}

/// The three pinned CPU plugins (PJRT 0.81, 0.106, 0.115) in one process,
/// loaded as a binding should (RTLD_LOCAL): each creates a client and
/// computes; no crash, no interposition; all three call themselves `cpu`.
#[test]
fn cpu_plugins_together_in_one_process() {
    if prebuilt("xla-cpu-pjrt").is_none() || prebuilt("fastatomstruct-xla-cpu").is_none() || prebuilt("lammps-jax-pjrt-cpu").is_none() {
        return;
    }
    let run = conform(&["--together", "xla-cpu-pjrt", "fastatomstruct-xla-cpu", "lammps-jax-pjrt-cpu", "--json"]);
    let r = &run.report;
    assert_eq!(run.code, Some(2), "a platform-name collision is reported: {}", run.stderr);
    assert_eq!(r["crashed"], serde_json::Value::Null, "{r}");
    let versions: Vec<&str> = r["members"].as_array().unwrap().iter().map(|m| m["api_version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["0.81", "0.106", "0.115"]);
    for m in r["members"].as_array().unwrap() {
        assert_eq!((m["load"].as_str(), m["client"].as_str(), m["compute"].as_str()), (Some("ok"), Some("ok"), Some("ok")), "{m}");
    }
    assert_eq!(r["interposed"], serde_json::json!([]));
    assert_eq!(
        r["platform_collisions"],
        serde_json::json!(["`cpu` is reported by xla-cpu-pjrt and fastatomstruct-xla-cpu and lammps-jax-pjrt-cpu"])
    );
}
