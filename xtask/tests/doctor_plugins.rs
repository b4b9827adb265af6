//! `cargo xtask doctor` on the real plugins pinned in pins.toml, on a
//! machine without a GPU: the CPU plugins clean; the CUDA wheels naming each
//! library they open that is missing here with its wheel, nixpkgs attribute
//! and the command that gets it, and failing at the driver; the ROCm wheel
//! naming the libraries it needs to load at all.
//!
//! Needs the network (PyPI) the first time: skipped without it, failed
//! without it under CI=true.

mod support;

use std::process::Command;

use serde_json::Value;

fn network() -> bool {
    support::require("network access to pypi.org", support::reachable("pypi.org"))
}

struct Doctor {
    code: Option<i32>,
    json: Value,
}

fn doctor(args: &[&str]) -> Doctor {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("doctor").args(args).arg("--json").output().expect("xtask runs");
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor {args:?} printed no JSON ({e}):\n{}", String::from_utf8_lossy(&out.stderr)));
    Doctor { code: out.status.code(), json }
}

impl Doctor {
    fn findings(&self) -> &Vec<Value> {
        self.json["findings"].as_array().unwrap()
    }

    fn finding(&self, check: &str) -> &Value {
        self.findings().iter().find(|f| f["check"] == check).unwrap_or_else(|| panic!("no `{check}` in {:#}", self.json["findings"]))
    }
}

/// There is a GPU of this kind here (then the GPU findings differ).
fn has_nvidia_gpu() -> bool {
    std::path::Path::new("/proc/driver/nvidia/version").exists()
}

#[test]
fn the_pinned_cpu_plugins_are_clean() {
    if !network() {
        return;
    }
    for name in ["xla-cpu-pjrt", "fastatomstruct-xla-cpu", "lammps-jax-pjrt-cpu"] {
        let d = doctor(&[name]);
        assert_eq!(d.code, Some(0), "{name}: {:#}", d.json["findings"]);
        let unclean: Vec<&Value> = d.findings().iter().filter(|f| f["status"] != "ok").collect();
        assert!(unclean.is_empty(), "{name}: {unclean:#?}");
        assert_eq!(d.finding("client")["status"], "ok");
        assert!(d.finding("load")["why"].as_str().unwrap().contains("PJRT API 0."));
        // Its code was measured, not assumed.
        assert!(d.json["isa"]["functions_sampled"].as_u64().unwrap() >= 1000, "{name}");
    }
}

#[test]
fn the_cuda_wheels_name_each_missing_library_with_its_provider() {
    if !network() || has_nvidia_gpu() {
        return;
    }
    for (name, major, runtime_wheel, set) in [
        ("jax-cuda12-pjrt", 12, "nvidia-cuda-runtime-cu12", "cudaPackages_12_9"),
        ("jax-cuda13-pjrt", 13, "nvidia-cuda-runtime", "cudaPackages_13_0"),
    ] {
        let d = doctor(&[name]);
        assert_eq!(d.code, Some(2), "{name}");
        let lib = d.json["libraries"].as_array().unwrap().iter().find(|l| l["name"] == format!("libcudart.so.{major}")).unwrap();
        // Unless NVIDIA's wheels were laid out beside it (`prebuilt fetch
        // NAME --with-runtime`), the CUDA runtime is missing.
        if lib["path"].is_null() {
            let cudart = d.finding(&format!("library libcudart.so.{major}"));
            assert_eq!(cudart["status"], "fail");
            assert_eq!(lib["provider"]["wheel"], runtime_wheel);
            assert_eq!(lib["provider"]["nixpkgs"], format!("{set}.cuda_cudart"));
            assert!(cudart["todo"].as_str().unwrap().starts_with(&format!("cargo xtask prebuilt fetch {name} --with-runtime")), "{cudart}");
            assert!(cudart["why"].as_str().unwrap().contains("xla/tsl/cuda/cudart_stub.cc"), "evidence named: {cudart}");
        }
        let libcuda = d.finding("library libcuda.so.1");
        assert!(libcuda["why"].as_str().unwrap().contains("part of the NVIDIA driver"), "{libcuda}");
        // Every library it opens that is missing has a provider.
        for lib in d.json["libraries"].as_array().unwrap().iter().filter(|l| l["path"].is_null()) {
            assert!(!lib["provider"].is_null(), "{name}: no provider for {}", lib["name"]);
        }
        assert_eq!(d.finding("gpu.driver")["status"], "fail");
        assert_eq!(d.json["gpu"]["cuda_major"], major);
        assert!(!d.json["gpu"]["code"]["cuda"]["sass"].as_array().unwrap().is_empty(), "its SASS targets were read");
        // It loads (libraries it opens are opened later) and fails at the client.
        assert_eq!(d.finding("load")["status"], "ok");
        assert_eq!(d.finding("client")["status"], "fail");
    }
}

#[test]
fn the_rocm_wheel_names_what_it_needs_to_load() {
    if !network() || std::path::Path::new("/opt/rocm/lib").exists() {
        return;
    }
    let d = doctor(&["jax-rocm7-pjrt"]);
    assert_eq!(d.code, Some(2));
    let f = d.finding("library librocprofiler-sdk.so.1");
    assert_eq!(f["status"], "fail");
    assert!(f["why"].as_str().unwrap().contains("DT_NEEDED") && f["why"].as_str().unwrap().contains("ROCm package rocprofiler-sdk"), "{f}");
    assert!(d.finding("library librocm_sysdeps_drm.so.2")["todo"].as_str().unwrap().contains("rocm-sdk-core"));
    let load = d.finding("load");
    assert_eq!(load["status"], "fail");
    assert!(load["why"].as_str().unwrap().contains("cannot open shared object file"), "the load confirms it: {load}");
    assert!(d.json["gpu"]["code"]["amd"]["targets"].as_array().unwrap().iter().any(|t| t == "gfx90a"), "{}", d.json["gpu"]["code"]);
}

#[test]
fn a_plugin_for_another_machine_stops_at_its_elf_header() {
    if !network() || std::env::consts::ARCH != "x86_64" {
        return;
    }
    let d = doctor(&["xla-cpu-pjrt", "--system", "aarch64-linux"]);
    assert_eq!(d.code, Some(2));
    assert!(d.finding("elf")["why"].as_str().unwrap().contains("built for aarch64, this machine is x86_64"));
    assert_eq!(d.json["load"], Value::Null);
}
