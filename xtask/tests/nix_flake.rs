//! The Nix side of pjrtpkgs, checked with the real Nix (2.8 or later), offline:
//! every `.nix` file parses, nix/pins.nix returns what pins.toml says, the
//! Bazel configuration of each backend is what pins.toml asks for, and the
//! flake evaluates for every system with nixpkgs replaced by the TEST DOUBLE
//! in nix/tests/nixpkgs-double (real derivations, so drvPaths are real).
//!
//! Skips without `nix` outside CI; fails under `CI=true`.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::flake::*;

/// Prebuilt pins shaped as `cargo xtask prebuilt update` writes them, for
/// checkouts where none are pinned yet. The URLs and hashes only need to be
/// well formed: nothing is downloaded.
fn ensure_prebuilt_pins(dir: &Path) {
    if pins(dir).get("prebuilt").is_some_and(|p| p.as_table().is_some_and(|t| !t.is_empty())) {
        return;
    }
    edit_pins(dir, |doc| {
        let mut prebuilt = toml_edit::Table::new();
        prebuilt.set_implicit(true);
        for (i, (name, backend, systems)) in [
            ("cpu", "cpu", &["x86_64-linux", "aarch64-linux", "aarch64-darwin"][..]),
            ("cuda12", "cuda12", &["x86_64-linux", "aarch64-linux"][..]),
            ("cuda13", "cuda13", &["x86_64-linux", "aarch64-linux"][..]),
            ("rocm7", "rocm7", &["x86_64-linux"][..]),
            ("tpu", "tpu", &["x86_64-linux"][..]),
        ]
        .into_iter()
        .enumerate()
        {
            let mut entry = toml_edit::Table::new();
            entry["version"] = toml_edit::value("0.0.1");
            entry["backend"] = toml_edit::value(backend);
            entry["pjrt_api_version"] = toml_edit::value("0.81");
            let mut platforms = toml_edit::Table::new();
            platforms.set_implicit(true);
            for (j, system) in systems.iter().enumerate() {
                let mut p = toml_edit::Table::new();
                p["url"] = toml_edit::value(format!("https://files.example/{name}-{system}.whl"));
                p["sha256"] = toml_edit::value(format!("{:064x}", (i * 16 + j + 1) as u64));
                p["library"] = toml_edit::value(format!("{name}/pjrt_plugin.so"));
                platforms[*system] = toml_edit::Item::Table(p);
            }
            entry["platforms"] = toml_edit::Item::Table(platforms);
            prebuilt[name] = toml_edit::Item::Table(entry);
        }
        doc["prebuilt"] = toml_edit::Item::Table(prebuilt);
    });
}

/// The flake package of one `[prebuilt.<name>]` wheel.
fn wheel_attr(name: &str) -> String {
    format!("prebuilt-{name}")
}

/// The per-backend package of the prebuilt plugins.
fn backend_attr(backend: &str) -> String {
    if backend == "tpu" {
        "pjrt-tpu".to_owned()
    } else {
        format!("pjrt-{backend}-bin")
    }
}

fn drv_paths(dir: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let v = flake_eval(dir, "packages", "ps: builtins.mapAttrs (s: p: builtins.mapAttrs (n: d: d.drvPath) p) ps");
    serde_json::from_value(v).unwrap()
}

#[test]
fn every_nix_file_parses() {
    if !support::require_command("nix-instantiate") {
        return;
    }
    let root = support::project_root();
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() && !name.starts_with('.') && name != "target" {
                stack.push(path);
            } else if name.ends_with(".nix") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 10, "expected the flake's .nix files, found {files:?}");
    for f in files {
        let out = Command::new("nix-instantiate").arg("--parse").arg(&f).output().unwrap();
        assert!(out.status.success(), "{} does not parse:\n{}", f.display(), String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn pins_nix_returns_the_values_of_pins_toml() {
    if !support::require_command("nix-instantiate") {
        return;
    }
    let dir = scratch();
    ensure_prebuilt_pins(dir.path());
    let toml = pins(dir.path());
    let nix = nix_expr(dir.path(), "import ./nix/pins.nix { }").unwrap();
    assert_eq!(nix["xla"]["commit"], toml["xla"]["commit"].as_str().unwrap());
    assert_eq!(nix["xla"]["hash"], toml["xla"]["hash"].as_str().unwrap());
    assert_eq!(nix["xla"]["pjrtApiVersion"], toml["xla"]["pjrt_api_version"].as_str().unwrap());
    assert_eq!(nix["toolchains"]["bazel"]["version"], toml["toolchains"]["bazel"]["version"].as_str().unwrap());
    for backend in ["cuda12", "cuda13"] {
        let caps: Vec<&str> = toml[backend]["compute_capabilities"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(nix[backend]["computeCapabilities"], serde_json::json!(caps));
        assert_eq!(nix[backend]["attribute"], toml[backend]["nixpkgs_attribute"].as_str().unwrap());
    }
    let targets: Vec<&str> = toml["rocm7"]["gpu_targets"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(nix["rocm7"]["gpuTargets"], serde_json::json!(targets));
    for (name, entry) in toml["prebuilt"].as_table().unwrap() {
        for (system, p) in entry["platforms"].as_table().unwrap() {
            let got = &nix["prebuilt"][name]["platforms"][system];
            assert_eq!(got["url"], p["url"].as_str().unwrap());
            assert_eq!(got["sha256"], p["sha256"].as_str().unwrap());
            assert_eq!(got["library"], p["library"].as_str().unwrap());
        }
    }
    for (backend, systems) in toml["bazel_deps"].as_table().unwrap() {
        for (system, d) in systems.as_table().unwrap() {
            assert_eq!(nix["bazelDeps"][backend][system]["hash"], d["hash"].as_str().unwrap());
        }
    }
}

/// The placeholder hash marks a deps pin stale; so does a pin computed for
/// another XLA commit.
#[test]
fn pins_nix_marks_stale_bazel_deps() {
    if !support::require_command("nix-instantiate") {
        return;
    }
    let dir = scratch();
    edit_pins(dir.path(), |doc| {
        let commit = doc["xla"]["commit"].as_str().unwrap().to_owned();
        doc["bazel_deps"]["cpu"]["x86_64-linux"]["hash"] = toml_edit::value("sha256-wbLvzCLpFw4+QF86zIBroAeFrwqUTe31aJV7tcjhSZE=");
        doc["bazel_deps"]["cpu"]["x86_64-linux"]["xla_commit"] = toml_edit::value(commit);
        let mut other = toml_edit::Table::new();
        other["hash"] = toml_edit::value("sha256-wbLvzCLpFw4+QF86zIBroAeFrwqUTe31aJV7tcjhSZE=");
        other["xla_commit"] = toml_edit::value("0000000000000000000000000000000000000000");
        doc["bazel_deps"]["cpu"]["aarch64-linux"] = toml_edit::Item::Table(other);
    });
    let v = nix_expr(dir.path(), "(import ./nix/pins.nix { }).bazelDeps.cpu").unwrap();
    assert_eq!(v["x86_64-linux"]["stale"], false);
    assert_eq!(v["aarch64-linux"]["stale"], true);
    let placeholder = nix_expr(support::project_root().as_path(), "(import ./nix/pins.nix { }).placeholderHash").unwrap();
    edit_pins(dir.path(), |doc| {
        doc["bazel_deps"]["cpu"]["x86_64-linux"]["hash"] = toml_edit::value(placeholder.as_str().unwrap());
    });
    let v = nix_expr(dir.path(), "(import ./nix/pins.nix { }).bazelDeps.cpu").unwrap();
    assert_eq!(v["x86_64-linux"]["stale"], true);
}

fn bazel_config(dir: &Path, backend: &str, system: &str) -> Result<Value, String> {
    nix_expr(
        dir,
        &format!(
            r#"(import ./nix/lib.nix).bazelConfig {{
                 backend = "{backend}"; system = "{system}"; pins = import ./nix/pins.nix {{ }};
                 paths = {{ dynamicLinker = "/LD"; hostRpath = "/RPATH"; cuda = "/CUDA"; cudnn = "/CUDNN";
                           nccl = "/NCCL"; cudaRelease = "12.9.1"; cudnnRelease = "9.13.0";
                           rocm = "/ROCM"; clang = "/CLANG"; }};
               }}"#
        ),
    )
}

/// Every flag of the build (shared flags + build-only flags).
fn flags(v: &Value) -> Vec<String> {
    let mut all = strings(&v["flags"]);
    all.extend(strings(&v["buildFlags"]));
    all
}

#[test]
fn bazel_config_of_each_backend_follows_pins() {
    if !support::require_command("nix-instantiate") {
        return;
    }
    let root = support::project_root();
    let toml = pins(&root);
    let join =
        |key: &str, field: &str| toml[key][field].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>().join(",");
    for system in ["x86_64-linux", "aarch64-linux"] {
        let cpu = flags(&bazel_config(&root, "cpu", system).unwrap());
        assert!(cpu.iter().all(|f| !f.contains("LOCAL_CUDA_PATH") && !f.contains("ROCM")), "{cpu:?}");
        assert!(cpu.contains(&"--noenable_bzlmod".to_owned()));
        assert!(cpu.iter().any(|f| f == "--host_linkopt=-Wl,--dynamic-linker=/LD"));
        for backend in ["cuda12", "cuda13"] {
            let f = flags(&bazel_config(&root, backend, system).unwrap());
            let caps = format!("--repo_env=HERMETIC_CUDA_COMPUTE_CAPABILITIES={}", join(backend, "compute_capabilities"));
            assert!(f.contains(&caps), "{backend}: {caps} missing from {f:?}");
            for (var, path) in [("LOCAL_CUDA_PATH", "/CUDA"), ("LOCAL_CUDNN_PATH", "/CUDNN"), ("LOCAL_NCCL_PATH", "/NCCL")] {
                assert!(f.contains(&format!("--repo_env={var}={path}")), "{backend}: {var}");
            }
        }
        let rocm = flags(&bazel_config(&root, "rocm7", system).unwrap());
        assert!(rocm.contains(&format!("--repo_env=TF_ROCM_AMDGPU_TARGETS={}", join("rocm7", "gpu_targets"))), "{rocm:?}");
        assert!(rocm.contains(&"--repo_env=ROCM_PATH=/ROCM".to_owned()));
        for backend in ["cpu", "cuda12", "cuda13", "rocm7"] {
            let v = bazel_config(&root, backend, system).unwrap();
            let text = v.to_string();
            for probe in ["nvidia-smi", "rocm_agent_enumerator", "/opt/rocm", "/usr/local/cuda"] {
                assert!(!text.contains(probe), "{backend} on {system} mentions {probe}: {text}");
            }
        }
    }
    // The pinned capabilities change only the CUDA flags that name them.
    let dir = scratch();
    edit_pins(dir.path(), |doc| {
        doc["cuda13"]["compute_capabilities"] = toml_edit::value(toml_edit::Array::from_iter(["sm_90"]));
    });
    let changed = bazel_config(dir.path(), "cuda13", "x86_64-linux").unwrap();
    assert!(flags(&changed).contains(&"--repo_env=HERMETIC_CUDA_COMPUTE_CAPABILITIES=sm_90".to_owned()));
    assert_eq!(bazel_config(dir.path(), "cuda12", "x86_64-linux"), bazel_config(&root, "cuda12", "x86_64-linux"));
    // The dependency fetch does not follow them: its archive (and hash) stays the same.
    let before = bazel_config(&root, "cuda13", "x86_64-linux").unwrap();
    assert_eq!(changed["fetchFlags"], before["fetchFlags"]);
    assert_eq!(strings(&changed["fetchFlags"]), ["--repo_env=HERMETIC_CUDA_COMPUTE_CAPABILITIES=sm_80"]);
    assert_eq!(changed["configureArgs"]["fetch"], before["configureArgs"]["fetch"]);
}

#[test]
fn bazel_config_rejects_unknown_backends_and_systems() {
    if !support::require_command("nix-instantiate") {
        return;
    }
    let root = support::project_root();
    let err = bazel_config(&root, "metal", "x86_64-linux").unwrap_err();
    assert!(err.contains("unknown backend 'metal'"), "{err}");
    let err = bazel_config(&root, "cpu", "aarch64-darwin").unwrap_err();
    assert!(err.contains("no source build for aarch64-darwin"), "{err}");
}

#[test]
fn every_output_evaluates_for_every_system() {
    if !support::require_command("nix") {
        return;
    }
    let dir = scratch();
    ensure_prebuilt_pins(dir.path());
    let toml = pins(dir.path());
    let per_system = "builtins.mapAttrs (s: p: builtins.mapAttrs (n: d: d.drvPath) p)";
    let all = serde_json::json!({
        "packages": flake_eval(dir.path(), "packages", per_system),
        "devShells": flake_eval(dir.path(), "devShells", per_system),
        "checks": flake_eval(dir.path(), "checks", per_system),
        "formatter": flake_eval(dir.path(), "formatter", "builtins.mapAttrs (s: d: d.drvPath)"),
        "hydraJobs": flake_eval(dir.path(), "hydraJobs", &format!("builtins.mapAttrs (k: {per_system})")),
        "overlay": flake_eval(dir.path(), "overlays", "o: builtins.isFunction o.default"),
    });
    for system in ["x86_64-linux", "aarch64-linux"] {
        let p = &all["packages"][system];
        for name in ["pjrt-cpu", "pjrt-cuda12", "pjrt-cuda13", "default", "xla-src", "xtask"] {
            assert!(p[name].as_str().is_some_and(|d| d.ends_with(".drv")), "{system}: {name} missing: {p}");
        }
        // ROCm is built for x86_64 only.
        assert_eq!(p["pjrt-rocm7"].is_string(), system == "x86_64-linux", "{system}: pjrt-rocm7: {p}");
        assert_eq!(p["default"], p["pjrt-cpu"]);
        for shell in ["default", "cuda12", "cuda13", "rocm7"] {
            assert!(all["devShells"][system][shell].is_string(), "{system}: devShell {shell}");
        }
        // A TPU shell where the TPU plugin exists.
        assert_eq!(all["devShells"][system]["tpu"].is_string(), p["pjrt-tpu"].is_string(), "{system}: devShell tpu");
        assert!(all["hydraJobs"]["packages"][system]["pjrt-cpu"].is_string());
        assert!(all["formatter"][system].is_string());
    }
    // Every pinned wheel is a package of exactly its systems, and each
    // backend with a wheel on a system has its per-backend package there.
    for system in ["x86_64-linux", "aarch64-linux", "aarch64-darwin"] {
        let mut backends = std::collections::BTreeSet::new();
        for (name, entry) in toml["prebuilt"].as_table().unwrap() {
            let pinned = entry["platforms"].get(system).is_some();
            let present = all["packages"].get(system).and_then(|p| p.get(wheel_attr(name))).is_some();
            assert_eq!(pinned, present, "{name} on {system}");
            if pinned {
                backends.insert(entry["backend"].as_str().unwrap().to_owned());
            }
        }
        for backend in &backends {
            let alias = &all["packages"][system][backend_attr(backend)];
            assert!(alias.is_string(), "{system}: {} missing", backend_attr(backend));
        }
        if backends.contains("cpu") {
            assert!(all["checks"][system]["smoke-cpu-bin"].is_string(), "{}", all["checks"]);
        }
    }
    assert_eq!(all["overlay"], true);
}

#[test]
fn overlay_adds_the_package_set() {
    if !support::require_command("nix") {
        return;
    }
    let dir = scratch();
    let out = nix(
        dir.path(),
        &[
            "eval", "--impure", "--json", "--override-input", "nixpkgs", "path:./nix/tests/nixpkgs-double", ".#overlays.default",
            "--apply",
            &format!(
                "o: builtins.attrNames (import {}/nix/tests/nixpkgs-double {{ system = \"x86_64-linux\"; overlays = [ o ]; }}).pjrtPackages",
                dir.path().display()
            ),
        ],
    );
    let names: Vec<String> = serde_json::from_str(&out).unwrap();
    for name in ["pjrt-cpu", "pjrt-cuda12", "pjrt-cuda13", "pjrt-rocm7", "xla-src", "xtask"] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
}

#[test]
fn dev_shells_export_the_plugin_variables() {
    if !support::require_command("nix") {
        return;
    }
    let dir = scratch();
    ensure_prebuilt_pins(dir.path());
    let shells = drv_shells(dir.path());
    let packages = drv_paths(dir.path());
    let out_of = |closure: &BTreeMap<String, Value>, attr: &str| -> Option<String> {
        packages["x86_64-linux"].get(attr).map(|drv| closure[drv]["outputs"]["out"]["path"].as_str().unwrap().to_owned())
    };
    // shell -> the ryft-xla-sys variables it must export, with their package.
    let expected: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::from([
        ("default", vec![]),
        ("cuda12", vec![("PJRT_PLUGIN_CUDA_12_LIB", "pjrt-cuda12-bin")]),
        ("cuda13", vec![("PJRT_PLUGIN_CUDA_13_LIB", "pjrt-cuda13-bin")]),
        ("rocm7", vec![("PJRT_PLUGIN_ROCM_7_LIB", "pjrt-rocm7-bin")]),
        ("tpu", vec![("PJRT_PLUGIN_TPU_LIB", "pjrt-tpu")]),
    ]);
    assert_eq!(shells.keys().map(String::as_str).collect::<Vec<_>>(), expected.keys().copied().collect::<Vec<_>>());
    for (shell, drv) in &shells {
        let closure = show_derivation(dir.path(), drv);
        let env = &closure[drv]["env"];
        for (var, attr) in &expected[shell.as_str()] {
            let value = env[*var].as_str().unwrap_or_else(|| panic!("{shell}: {var} not exported"));
            let out = out_of(&closure, attr).unwrap();
            assert!(value.starts_with(&out) && value.ends_with(".so"), "{shell}: {var}={value}");
        }
        // Only its own plugin variables: the others are not set at all.
        for var in ["PJRT_PLUGIN_CUDA_12_LIB", "PJRT_PLUGIN_CUDA_13_LIB", "PJRT_PLUGIN_ROCM_7_LIB", "PJRT_PLUGIN_TPU_LIB"] {
            if !expected[shell.as_str()].iter().any(|(v, _)| *v == var) {
                assert!(env.get(var).is_none(), "{shell} exports {var}");
            }
        }
        // GoMLX's search path: the CPU plugin, plus the shell's own.
        let dirs = env["PJRT_PLUGIN_LIBRARY_PATH"].as_str().unwrap();
        let cpu = out_of(&closure, "pjrt-cpu-bin").unwrap();
        assert!(dirs.split(':').next() == Some(format!("{cpu}/lib").as_str()), "{shell}: {dirs}");
        assert!(dirs.split(':').all(|d| d.starts_with("/nix/store/") && d.ends_with("/lib")), "{dirs}");
    }
}

fn drv_shells(dir: &Path) -> BTreeMap<String, String> {
    serde_json::from_value(flake_eval(dir, "devShells.x86_64-linux", "builtins.mapAttrs (n: d: d.drvPath)")).unwrap()
}

#[test]
fn prebuilt_packages_fetch_the_pinned_url_and_hash() {
    if !support::require_command("nix") {
        return;
    }
    let dir = scratch();
    ensure_prebuilt_pins(dir.path());
    let toml = pins(dir.path());
    let packages = drv_paths(dir.path());
    for (name, entry) in toml["prebuilt"].as_table().unwrap() {
        let attr = wheel_attr(name);
        for (system, pin) in entry["platforms"].as_table().unwrap() {
            let drv = &packages[system][&attr];
            let closure = show_derivation(dir.path(), drv);
            // The wheel, and for a CUDA plugin NVIDIA's NVSHMEM wheel as pinned.
            let nvshmem = entry["backend"]
                .as_str()
                .filter(|b| b.starts_with("cuda"))
                .and_then(|b| toml.get(b)?.get("nvshmem_wheel")?.get(system.as_str()))
                .map(|w| w["url"].as_str().unwrap().to_owned());
            let fixed: Vec<&Value> =
                closure.values().filter(|d| is_fixed_output(d) && nvshmem.as_deref() != d["env"]["url"].as_str()).collect();
            assert_eq!(fixed.len(), 1, "{attr} on {system}: one download expected besides NVSHMEM, got {fixed:?}");
            if let Some(url) = &nvshmem {
                assert!(closure.values().any(|d| is_fixed_output(d) && d["env"]["url"] == url.as_str()), "{attr}: no NVSHMEM wheel");
            }
            let fetch = fixed[0];
            assert_eq!(fetch["env"]["url"], pin["url"].as_str().unwrap(), "{attr} on {system}");
            assert_eq!(fetch["outputs"]["out"]["hash"], pin["sha256"].as_str().unwrap(), "{attr} on {system}");
            // The library's path inside the wheel comes from the pin too.
            assert_eq!(closure[drv]["env"]["pluginPath"], pin["library"].as_str().unwrap());
        }
    }
}

fn changed(before: &BTreeMap<String, BTreeMap<String, String>>, after: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (system, pkgs) in before {
        for (name, drv) in pkgs {
            if after[system].get(name) != Some(drv) {
                out.push(format!("{system}.{name}"));
            }
        }
    }
    out
}

#[test]
fn changing_one_pin_changes_only_its_packages() {
    if !support::require_command("nix") {
        return;
    }
    let dir = scratch();
    ensure_prebuilt_pins(dir.path());
    let before = drv_paths(dir.path());

    // A new wheel for CUDA 13 on x86_64: only that wheel's package (and the
    // CUDA 13 alias, when it is the only CUDA 13 wheel) changes.
    let toml = pins(dir.path());
    let cuda13: Vec<&String> = toml["prebuilt"]
        .as_table()
        .unwrap()
        .iter()
        .filter(|(_, e)| e["backend"].as_str() == Some("cuda13") && e["platforms"].get("x86_64-linux").is_some())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(cuda13.len(), 1, "expected one CUDA 13 wheel for x86_64-linux: {cuda13:?}");
    let name = cuda13[0].clone();
    edit_pins(dir.path(), |doc| {
        doc["prebuilt"][&name]["platforms"]["x86_64-linux"]["sha256"] = toml_edit::value("f".repeat(64));
    });
    let after = drv_paths(dir.path());
    let mut expected = vec!["x86_64-linux.pjrt-cuda13-bin".to_owned(), format!("x86_64-linux.{}", wheel_attr(&name))];
    expected.sort();
    assert_eq!(changed(&before, &after), expected);

    // New CUDA 13 targets: only the CUDA 13 source builds change.
    edit_pins(dir.path(), |doc| {
        doc["cuda13"]["compute_capabilities"] = toml_edit::value(toml_edit::Array::from_iter(["sm_90"]));
    });
    let after2 = drv_paths(dir.path());
    assert_eq!(changed(&after, &after2), ["aarch64-linux.pjrt-cuda13", "x86_64-linux.pjrt-cuda13"]);

    // A refreshed CPU deps hash on x86_64: only that build (and `default`).
    edit_pins(dir.path(), |doc| {
        doc["bazel_deps"]["cpu"]["x86_64-linux"]["hash"] = toml_edit::value("sha256-wbLvzCLpFw4+QF86zIBroAeFrwqUTe31aJV7tcjhSZE=");
    });
    let after3 = drv_paths(dir.path());
    assert_eq!(changed(&after2, &after3), ["x86_64-linux.default", "x86_64-linux.pjrt-cpu"]);
}

#[test]
fn source_builds_fetch_only_through_their_pinned_deps_derivation() {
    if !support::require_command("nix") {
        return;
    }
    let dir = scratch();
    edit_pins(dir.path(), |doc| {
        let mut t = toml_edit::Table::new();
        t["hash"] = toml_edit::value("sha256-BXPlzvYSCOudbKgHU/IhHaHG5umNBGgD0hKl7jnOxcc=");
        doc["bazel_deps"]["cuda12"]["aarch64-linux"] = toml_edit::Item::Table(t);
    });
    let toml = pins(dir.path());
    let packages = drv_paths(dir.path());
    let xla_src = &packages["x86_64-linux"]["xla-src"];
    for system in ["x86_64-linux", "aarch64-linux"] {
        for backend in ["cpu", "cuda12", "cuda13", "rocm7"] {
            if backend == "rocm7" && system != "x86_64-linux" {
                continue;
            }
            let drv = &packages[system][&format!("pjrt-{backend}")];
            let closure = show_derivation(dir.path(), drv);
            let build = &closure[drv];
            // The build itself: not fixed-output, no impure variables.
            assert!(!is_fixed_output(build), "{backend}/{system} build is fixed-output");
            assert!(build["env"].get("impureEnvVars").is_none(), "{backend}/{system} build has impure variables");
            let deps_path = build["env"]["deps"].as_str().unwrap();
            let (deps_drv, deps) =
                closure.iter().find(|(_, d)| d["outputs"]["out"]["path"] == deps_path).expect("deps derivation in the closure");
            // Exactly two downloads: the pinned XLA source and this deps archive.
            let fixed: Vec<&String> = closure.iter().filter(|(_, d)| is_fixed_output(d)).map(|(k, _)| k).collect();
            let src_drv = if system == "x86_64-linux" { xla_src.clone() } else { packages[system]["xla-src"].clone() };
            assert_eq!(fixed.len(), 2, "{backend}/{system}: {fixed:?}");
            assert!(fixed.contains(&deps_drv) && fixed.contains(&&src_drv), "{backend}/{system}: {fixed:?}");
            assert!(closure[&src_drv]["outputs"]["out"]["hash"].as_str().is_some());
            // Its hash is the pin's (every source build has one: see
            // every_source_build_has_its_bazel_deps_table).
            let pinned = toml["bazel_deps"][backend][system]["hash"].as_str().unwrap();
            assert_eq!(deps["env"]["outputHash"], pinned, "{backend}/{system}");
            assert_eq!(deps["env"]["allowedRequisites"], "", "{backend}/{system}: deps may reference no store path");
            // The plugin may not keep the deps archive, the source or Bazel alive.
            let disallowed = build["env"]["disallowedReferences"].as_str().unwrap();
            assert!(disallowed.contains(deps_path), "{backend}/{system}: {disallowed}");
            let src_out = closure[&src_drv]["outputs"]["out"]["path"].as_str().unwrap();
            assert!(disallowed.contains(src_out), "{backend}/{system}: {disallowed}");
        }
    }
}

/// The source builds the flake exposes and the `[bazel_deps.<backend>.<system>]`
/// tables of pins.toml are the same set: an unknown hash is the written-out
/// placeholder, never an absent table. Removing a table (or its `hash`) makes
/// that one package fail to evaluate, naming the table and the command that
/// fills it; the other packages still evaluate.
#[test]
fn every_source_build_has_its_bazel_deps_table() {
    if !support::require_nix() {
        return;
    }
    let dir = scratch();
    // (backend, system) of every package that has a deps derivation.
    let built = flake_eval(
        dir.path(),
        "packages",
        "ps: builtins.concatLists (builtins.attrValues (builtins.mapAttrs (s: p: \
           map (n: { backend = p.${n}.backend; system = s; }) \
             (builtins.filter (n: p.${n} ? deps) (builtins.attrNames p))) ps))",
    );
    let built: std::collections::BTreeSet<(String, String)> = built
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["backend"].as_str().unwrap().to_owned(), e["system"].as_str().unwrap().to_owned()))
        .collect();
    assert!(!built.is_empty(), "no source builds found in the flake's packages");
    let toml = pins(dir.path());
    let pinned: std::collections::BTreeSet<(String, String)> = toml["bazel_deps"]
        .as_table()
        .unwrap()
        .iter()
        .flat_map(|(backend, systems)| systems.as_table().unwrap().keys().map(move |s| (backend.clone(), s.clone())))
        .collect();
    assert_eq!(built, pinned, "source builds of the flake vs [bazel_deps] tables of pins.toml");

    let eval = |attr: &str| {
        Command::new("nix")
            .current_dir(dir.path())
            .args(["--extra-experimental-features", "nix-command flakes", "--option", "substituters", ""])
            .args(["eval", "--raw", "--override-input", "nixpkgs", "path:./nix/tests/nixpkgs-double"])
            .arg(format!(".#packages.{attr}.drvPath"))
            .output()
            .expect("cannot run nix")
    };
    let before = eval("x86_64-linux.pjrt-cuda13");
    assert!(before.status.success(), "{}", String::from_utf8_lossy(&before.stderr));
    edit_pins(dir.path(), |doc| {
        doc["bazel_deps"]["cuda13"].as_table_like_mut().unwrap().remove("aarch64-linux");
        doc["bazel_deps"]["rocm7"]["x86_64-linux"].as_table_like_mut().unwrap().remove("hash");
    });
    for (attr, table) in
        [("aarch64-linux.pjrt-cuda13", ("cuda13", "aarch64-linux")), ("x86_64-linux.pjrt-rocm7", ("rocm7", "x86_64-linux"))]
    {
        let out = eval(attr);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{attr} evaluated without its [bazel_deps] hash");
        let (backend, system) = table;
        assert!(stderr.contains(&format!("[bazel_deps.{backend}.{system}]")), "{attr}: {stderr}");
        assert!(stderr.contains(&format!("cargo xtask deps-hash refresh {backend} --system {system}")), "{attr}: {stderr}");
    }
    let after = eval("x86_64-linux.pjrt-cuda13");
    assert!(after.status.success(), "{}", String::from_utf8_lossy(&after.stderr));
    assert_eq!(before.stdout, after.stdout, "a missing table elsewhere changed x86_64-linux.pjrt-cuda13");
}

/// flake.nix carries the binary-cache `nixConfig` of docs/cache.md and
/// nix/cache-config.md, commented out (no public cache yet), and the block is
/// a valid flake attribute once uncommented.
#[test]
fn cache_nix_config_is_the_documented_block_commented_out() {
    if !support::require_nix() {
        return;
    }
    let root = support::project_root();
    let flake = std::fs::read_to_string(root.join("flake.nix")).unwrap();
    let commented: Vec<&str> =
        flake.lines().skip_while(|l| l.trim() != "# nixConfig = {").take_while(|l| l.trim_start().starts_with('#')).collect();
    assert!(commented.last().is_some_and(|l| l.trim() == "# };"), "no commented-out nixConfig block in flake.nix: {commented:?}");
    let block: String = commented.iter().map(|l| l.replacen("# ", "", 1) + "\n").collect();
    for doc in ["docs/cache.md", "nix/cache-config.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        assert!(text.contains(&block), "{doc} does not show flake.nix's nixConfig block:\n{block}");
    }
    let dir = scratch();
    let uncommented = flake.replace(&commented.join("\n"), block.trim_end());
    assert!(uncommented.contains("\n  nixConfig = {\n"), "{uncommented}");
    std::fs::write(dir.path().join("flake.nix"), uncommented).unwrap();
    let linux = flake_eval(dir.path(), "lib.linuxSystems", "x: x");
    assert!(linux.as_array().is_some_and(|a| !a.is_empty()), "{linux}");
}

/// No unused bindings or arguments in the Nix code (deadnix, from crates.io:
/// `cargo install deadnix --version 1.3.1 --locked`).
#[test]
fn nix_code_has_no_dead_bindings() {
    if !support::require_command("deadnix") {
        return;
    }
    let root = support::project_root();
    let out = Command::new("deadnix").current_dir(&root).args(["--fail", "flake.nix", "nix", "overlays"]).output().unwrap();
    assert!(out.status.success(), "deadnix:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

// ---------------------------------------------------------------------------
// The audit of the Nix layer against nixpkgs (issue 12): one test per finding,
// each failing on the code the audit read (a2bad20) and passing now. The
// nixpkgs behaviour each relies on is modelled by the TEST DOUBLE, which
// names the nixpkgs file it copies (nix/tests/nixpkgs-double/README.md).
// ---------------------------------------------------------------------------

const GPU_SOURCE_BUILDS: [(&str, &str); 5] = [
    ("x86_64-linux", "cuda12"),
    ("aarch64-linux", "cuda12"),
    ("x86_64-linux", "cuda13"),
    ("aarch64-linux", "cuda13"),
    ("x86_64-linux", "rocm7"),
];

/// The double itself: nixpkgs refuses to evaluate a CUDA redistributable
/// unless config.cudaSupport (buildRedist's brokenAssertions), refuses unfree
/// packages unless allowUnfree (check-meta.nix), has the real version strings
/// and release labels, and overrides bazel_7 with enableNixHacks.
#[test]
fn double_models_nixpkgs_refusals_and_versions() {
    if !support::require_command("nix-instantiate") {
        return;
    }
    let root = support::project_root();
    let eval = |config: &str, expr: &str| {
        nix_expr(
            &root,
            &format!("let p = import ./nix/tests/nixpkgs-double {{ system = \"x86_64-linux\"; config = {config}; }}; in {expr}"),
        )
    };
    let err = eval("{ allowUnfree = true; }", "p.cudaPackages_12_9.cuda_cudart.drvPath").unwrap_err();
    assert!(err.contains("is marked as broken, refusing to evaluate"), "{err}");
    let err = eval("{ cudaSupport = true; }", "p.cudaPackages_12_9.cuda_cudart.drvPath").unwrap_err();
    assert!(err.contains("has an unfree license"), "{err}");
    // NCCL is free, but built from CUDA: it cannot evaluate either.
    let err = eval("{ allowUnfree = true; }", "p.cudaPackages_13_0.nccl.drvPath").unwrap_err();
    assert!(err.contains("is marked as broken"), "{err}");
    let ok = "{ allowUnfree = true; cudaSupport = true; }";
    assert!(eval(ok, "p.cudaPackages_12_9.cuda_cudart.include.drvPath").is_ok());
    assert_eq!(eval(ok, "p.cudaPackages_12_9.cuda_cudart.version").unwrap(), "12.9.79");
    assert_eq!(eval(ok, "p.cudaPackages_12_9.manifests.cuda.release_label").unwrap(), "12.9.1");
    assert_eq!(eval(ok, "p.cudaPackages_12_9.cudnn.version").unwrap(), "9.13.0.50");
    assert_eq!(eval(ok, "p.cudaPackages_12_9.manifests.cudnn.release_label").unwrap(), "9.13.0");
    assert_eq!(eval(ok, "p.cudaPackages_13_0.manifests.cuda.release_label").unwrap(), "13.0.2");
    // Headers, static libraries and stubs are outputs of their own.
    let outputs = eval(ok, "p.cudaPackages_12_9.cuda_cudart.outputs").unwrap();
    for o in ["include", "lib", "static", "stubs", "dev"] {
        assert!(outputs.as_array().unwrap().contains(&Value::from(o)), "{outputs}");
    }
    assert_eq!(eval(ok, "(p.lib.getOutput \"include\" p.cudaPackages_12_9.cuda_cudart).outputName").unwrap(), "include");
    // Only the overridden Bazel carries the buildBazelPackage hacks.
    assert_eq!(eval("{ }", "p.bazel_7.enableNixHacks").unwrap(), false);
    let patches = eval("{ }", "(p.bazel_7.override { enableNixHacks = true; }).patches").unwrap().to_string();
    assert!(patches.contains("nix-build-bazel-package-hacks.patch"), "{patches}");
    assert_eq!(eval("{ }", "(p.bazel_7.override { enableNixHacks = true; }).name").unwrap(), eval("{ }", "p.bazel_7.name").unwrap());
    // runHook postFixup: implicit hook first, then the hooks array, where
    // autoPatchelf sets the RUNPATH anew (appendRunpaths survive it).
    let fixup = eval(
        "{ }",
        r#"(p.stdenv.mkDerivation { name = "x"; nativeBuildInputs = [ p.autoPatchelfHook ];
              appendRunpaths = [ "/kept" ]; postFixup = "patchelf --add-rpath /lost $out/lib/x.so"; }).doubleFixup"#,
    )
    .unwrap();
    assert_eq!(fixup["order"], serde_json::json!(["postFixup (implicit hook)", "autoPatchelfPostFixup"]));
    let runpath = strings(&fixup["sharedLibrary"]);
    assert!(runpath.contains(&"/kept".to_owned()) && !runpath.contains(&"/lost".to_owned()), "{runpath:?}");
}

/// Audit 1: every CUDA output evaluates (its nixpkgs instance has
/// cudaSupport), while the CPU outputs, the default shell and the CPU smoke
/// check reach nothing of CUDA and nothing unfree.
#[test]
fn audit1_cuda_outputs_evaluate_and_cpu_outputs_stay_free() {
    if !support::require_nix() {
        return;
    }
    let dir = scratch();
    for system in ["x86_64-linux", "aarch64-linux"] {
        for attr in [
            format!("packages.{system}.pjrt-cuda12"),
            format!("packages.{system}.pjrt-cuda13"),
            format!("packages.{system}.pjrt-cuda12-bin"),
            format!("packages.{system}.pjrt-cuda13-bin"),
            format!("devShells.{system}.cuda12"),
            format!("devShells.{system}.cuda13"),
            format!("devShells.{system}.default"),
            format!("checks.{system}.smoke-cuda12-bin"),
        ] {
            if let Err(e) = try_flake_eval_raw(dir.path(), &format!("{attr}.drvPath")) {
                panic!("{attr} does not evaluate:\n{e}");
            }
        }
        // Free and CUDA-free: no derivation of CUDA, cuDNN, NCCL or libtpu.
        for attr in [
            format!("packages.{system}.pjrt-cpu"),
            format!("packages.{system}.pjrt-cpu-bin"),
            format!("devShells.{system}.default"),
            format!("checks.{system}.smoke-cpu-bin"),
        ] {
            let (_, closure) = derivation_of(dir.path(), &attr);
            let gpu: Vec<&str> = closure
                .values()
                .map(|d| env_str(d, "name"))
                .filter(|n| ["cuda", "cudnn", "nccl", "libtpu"].iter().any(|g| n.contains(g)))
                .collect();
            assert!(gpu.is_empty(), "{attr} depends on {gpu:?}");
        }
    }
    // The CPU derivations do not depend on the GPU instance's config: the same
    // drvPaths as from one instance that allows everything.
    let expr = format!(
        "let p = import {root}/nix/tests/nixpkgs-double {{ system = \"x86_64-linux\"; config = {{ allowUnfree = true; cudaSupport = true; }}; }};
             set = import {root}/nix/packages.nix {{ pkgs = p; pins = import {root}/nix/pins.nix {{ }};
                     projectSource = import {root}/nix/project-source.nix {root}; }};
         in {{ cpu = set.pjrt-cpu.drvPath; bin = set.pjrt-cpu-bin.drvPath; }}",
        root = dir.path().display()
    );
    let single = nix_expr(dir.path(), &expr).unwrap();
    let packages = drv_paths(dir.path());
    assert_eq!(single["cpu"], packages["x86_64-linux"]["pjrt-cpu"].as_str());
    assert_eq!(single["bin"], packages["x86_64-linux"]["pjrt-cpu-bin"].as_str());
}

/// Audit 2: the offline build runs `bazel.override { enableNixHacks = true; }`
/// (buildBazelPackage), so the restored repositories with emptied markers
/// count as fetched; the fetch itself runs the plain Bazel.
#[test]
fn audit2_offline_build_uses_bazel_with_nix_hacks() {
    if !support::require_nix() {
        return;
    }
    let dir = scratch();
    for (system, backend) in [("x86_64-linux", "cpu"), ("aarch64-linux", "cpu")].into_iter().chain(GPU_SOURCE_BUILDS) {
        let attr = format!("packages.{system}.pjrt-{backend}");
        let (drv, closure) = derivation_of(dir.path(), &attr);
        let bazels = |d: &Value| -> Vec<String> {
            env_str(d, "nativeBuildInputs")
                .split_whitespace()
                .filter(|p| p.contains("-bazel-"))
                .map(|p| env_str(producer(&closure, p), "patches").to_owned())
                .collect()
        };
        let build = bazels(&closure[&drv]);
        assert_eq!(build.len(), 1, "{attr}: {build:?}");
        assert!(build[0].contains("nix-build-bazel-package-hacks.patch"), "{attr}: the build's Bazel has no Nix hacks: {}", build[0]);
        let deps = deps_of(dir.path(), &attr, &closure);
        let fetch = bazels(deps);
        assert!(fetch.len() == 1 && !fetch[0].contains("nix-build-bazel-package-hacks"), "{attr}: {fetch:?}");
    }
}

/// Audit 3: what autoPatchelf's RUNPATH rewrite leaves of the plugin's
/// RUNPATH (runHook: postFixup first, then postFixupHooks) still holds the
/// driver directory and every dlopen'ed GPU library directory.
#[test]
fn audit3_plugin_runpath_keeps_driver_and_dlopened_libraries() {
    if !support::require_nix() {
        return;
    }
    let dir = scratch();
    // package -> the library directories its RUNPATH must end up with.
    let cases: [(&str, &[&str]); 7] = [
        (
            "packages.x86_64-linux.pjrt-cuda12-bin",
            &[
                "/run/opengl-driver/lib",
                "-cuda12.9-cuda_cudart-12.9.79-lib/lib",
                "-cuda12.9-cudnn-9.13.0.50-lib/lib",
                "-cuda12.9-nccl-2.30.7-1/lib",
            ],
        ),
        (
            "packages.aarch64-linux.pjrt-cuda13-bin",
            &["/run/opengl-driver/lib", "-cuda13.0-cuda_cudart-13.0.96-lib/lib", "-cuda13.0-libnvjitlink-13.0.88-lib/lib"],
        ),
        ("packages.x86_64-linux.pjrt-rocm7-bin", &["-rocprofiler-sdk-7.2.1/lib", "-clr-7.2.1/lib"]),
        (
            "packages.x86_64-linux.pjrt-cuda12",
            &[
                "/run/opengl-driver/lib",
                "-cuda12.9-cuda_cupti-12.9.79-lib/lib",
                "-cuda12.9-nccl-2.30.7-1/lib",
                "-rdma-core-0-double-lib/lib",
            ],
        ),
        ("packages.aarch64-linux.pjrt-cuda12", &["/run/opengl-driver/lib", "-cuda12.9-libcublas-12.9.1.4-lib/lib"]),
        ("packages.x86_64-linux.pjrt-cuda13", &["/run/opengl-driver/lib", "-cuda13.0-cudnn-9.13.0.50-lib/lib"]),
        ("packages.x86_64-linux.pjrt-rocm7", &["-rocblas-7.2.1/lib", "-rocprofiler-sdk-7.2.1/lib"]),
    ];
    for (attr, wanted) in cases {
        let fixup = flake_eval(dir.path(), &format!("{attr}.doubleFixup"), "x: x");
        let runpath = strings(&fixup["sharedLibrary"]);
        for w in wanted {
            assert!(
                runpath.iter().any(|d| d.ends_with(w)),
                "{attr}: RUNPATH after fixup lacks {w}: {runpath:?} (hooks: {})",
                fixup["order"]
            );
        }
    }
}

/// The named outputs of `paths` (store paths of a symlinkJoin) in `closure`.
fn joined_outputs(closure: &BTreeMap<String, Value>, join: &Value) -> Vec<(String, String)> {
    env_str(join, "paths")
        .split_whitespace()
        .map(|p| {
            let d = producer(closure, p);
            let output = d["outputs"].as_object().unwrap().iter().find(|(_, o)| o["path"] == p).unwrap().0.clone();
            (env_str(d, "pname").to_owned(), output)
        })
        .collect()
}

/// Audit 4: the LOCAL_CUDA_PATH / LOCAL_CUDNN_PATH trees are joined from the
/// outputs nixpkgs puts the files XLA reads in: `include` for headers,
/// `static` (cudart), `stubs` (NVML), nvdisasm/nvprune, cuda_crt from CUDA 13.
#[test]
fn audit4_local_cuda_trees_hold_headers_static_stubs_and_tools() {
    if !support::require_nix() {
        return;
    }
    let dir = scratch();
    for (system, backend) in GPU_SOURCE_BUILDS.into_iter().filter(|(_, b)| b.starts_with("cuda")) {
        let attr = format!("packages.{system}.pjrt-{backend}");
        let (drv, closure) = derivation_of(dir.path(), &attr);
        let flags = env_str(&closure[&drv], "bazelFlags").to_owned();
        let tree = |var: &str| -> Vec<(String, String)> {
            let path = flags.split_whitespace().find_map(|f| f.strip_prefix(&format!("--repo_env={var}="))).unwrap();
            joined_outputs(&closure, producer(&closure, path))
        };
        let cuda = tree("LOCAL_CUDA_PATH");
        let has = |pname: &str, output: &str| cuda.iter().any(|(p, o)| p == pname && o == output);
        for pname in ["cuda_cudart", "cuda_cupti", "cuda_nvrtc", "cuda_nvml_dev", "libcublas", "libcusparse", "libnvjitlink"] {
            assert!(has(pname, "include"), "{attr}: LOCAL_CUDA_PATH has no headers of {pname}: {cuda:?}");
        }
        assert!(has("cuda_cudart", "static") && has("cuda_nvml_dev", "stubs"), "{attr}: {cuda:?}");
        // nixpkgs keeps NVCC (headers, bin/, nvvm/) in its single `out`.
        assert!(has("cuda_nvdisasm", "bin") && has("cuda_nvprune", "bin") && has("cuda_nvcc", "out"), "{attr}: {cuda:?}");
        assert_eq!(has("cuda_crt", "include"), backend == "cuda13", "{attr}: cuda_crt: {cuda:?}");
        let cudnn = tree("LOCAL_CUDNN_PATH");
        assert!(cudnn.contains(&("cudnn".to_owned(), "include".to_owned())), "{attr}: {cudnn:?}");
        assert!(cudnn.contains(&("cudnn".to_owned(), "lib".to_owned())), "{attr}: {cudnn:?}");
        let nccl = tree("LOCAL_NCCL_PATH");
        assert!(nccl.contains(&("nccl".to_owned(), "dev".to_owned())), "{attr}: {nccl:?}");
    }
}

/// Audit 5: XLA is told the release labels of nixpkgs' CUDA/cuDNN manifests
/// (12.9.1, 9.13.0), not a component's package version (12.9.79, 9.13.0.50),
/// and version_info.json records the same.
#[test]
fn audit5_xla_gets_release_labels_not_component_versions() {
    if !support::require_nix() {
        return;
    }
    let dir = scratch();
    ensure_prebuilt_pins(dir.path());
    for (system, backend) in GPU_SOURCE_BUILDS.into_iter().filter(|(_, b)| b.starts_with("cuda")) {
        let (cuda, cudnn) = if backend == "cuda12" { ("12.9.1", "9.13.0") } else { ("13.0.2", "9.13.0") };
        let attr = format!("packages.{system}.pjrt-{backend}");
        let (drv, closure) = derivation_of(dir.path(), &attr);
        let build = &closure[&drv];
        let flags = env_str(build, "bazelFlags");
        assert!(flags.contains(&format!("--repo_env=HERMETIC_CUDA_VERSION={cuda} ")), "{attr}: {flags}");
        assert!(flags.contains(&format!("--repo_env=HERMETIC_CUDNN_VERSION={cudnn} ")), "{attr}: {flags}");
        let configure = env_str(build, "preConfigure");
        assert!(
            configure.contains(&format!("--cuda_version={cuda}'")) && configure.contains(&format!("--cudnn_version={cudnn}'")),
            "{attr}: {configure}"
        );
        let info: Value = serde_json::from_str(env_str(build, "versionInfoJson")).unwrap();
        assert_eq!(info["toolchains"]["cuda"], cuda, "{attr}: {info}");
        assert_eq!(info["toolchains"]["cudnn"], cudnn, "{attr}: {info}");
        let (drv, closure) = derivation_of(dir.path(), &format!("packages.{system}.pjrt-{backend}-bin"));
        let info: Value = serde_json::from_str(env_str(&closure[&drv], "versionInfoJson")).unwrap();
        assert_eq!(info["toolchains"]["cuda"], cuda, "{backend}-bin: {info}");
        assert_eq!(info["toolchains"]["cudnn"], cudnn, "{backend}-bin: {info}");
    }
}

/// Every `substituteInPlace FILE --replace-fail 'PATTERN' ...` of `script`
/// on a file of the XLA source (not under $bazelOut): (file, pattern).
fn xla_substitutions(script: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let joined = script.replace("\\\n", " ");
    for line in joined.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("substituteInPlace ") else { continue };
        let file = rest.split_whitespace().next().unwrap().trim_matches('"').to_owned();
        if file.contains("$bazelOut") {
            continue;
        }
        for part in rest.split("--replace-fail ").skip(1) {
            let quote = part.chars().next().unwrap();
            let pattern = part[1..].split(quote).next().unwrap().to_owned();
            found.push((file.clone(), pattern));
        }
    }
    found
}

/// Audit 6: the downloaded hermetic binaries get the Nix dynamic linker
/// before Bazel runs them: rules_python's standalone Python during the
/// fetch itself (our rules_python patch + NIX_DYNAMIC_LINKER), LLVM, Python
/// and xxd again in the build (the archive scrub breaks the first patchelf).
/// The source edits match the real XLA files at the pinned commit.
#[test]
fn audit6_hermetic_binaries_are_patched_before_bazel_runs_them() {
    if !support::require_nix() {
        return;
    }
    let dir = scratch();
    for (system, backend) in [("x86_64-linux", "cpu"), ("aarch64-linux", "cpu")].into_iter().chain(GPU_SOURCE_BUILDS) {
        let attr = format!("packages.{system}.pjrt-{backend}");
        let (drv, closure) = derivation_of(dir.path(), &attr);
        let build = &closure[&drv];
        let deps = deps_of(dir.path(), &attr, &closure);
        let linker = env_str(build, "bazelFlags")
            .split_whitespace()
            .find_map(|f| f.strip_prefix("--host_linkopt=-Wl,--dynamic-linker="))
            .unwrap()
            .to_owned();
        for d in [deps, build] {
            let flags = env_str(d, "bazelFlags");
            assert!(
                flags.contains(&format!("--repo_env=NIX_DYNAMIC_LINKER={linker} ")),
                "{attr} ({}): no --repo_env=NIX_DYNAMIC_LINKER for the hermetic Python: {flags}",
                env_str(d, "name")
            );
            let post_patch = env_str(d, "postPatch");
            assert!(
                post_patch.contains("rules-python-nix-patchelf.patch third_party/py/")
                    && post_patch.contains("third_party/py/python_init_rules.bzl"),
                "{attr}: {post_patch}"
            );
        }
        // patchelf is on the fetch's PATH (the patched rules_python calls it).
        let fetch_tools = env_str(deps, "nativeBuildInputs");
        assert!(fetch_tools.split_whitespace().any(|p| p.contains("-patchelf-")), "{attr}: {fetch_tools}");
        let post_configure = env_str(build, "postConfigure");
        for tool in ["external/llvm*_linux_*", "external/python_3_*", "external/xxd", "patchelf --set-interpreter"] {
            assert!(post_configure.contains(tool), "{attr}: postConfigure does not patch {tool}");
        }
        if let Some(repo) = support::xla_repo() {
            let script = format!("{}\n{}", env_str(build, "postPatch"), post_configure);
            let edits = xla_substitutions(&script);
            assert!(edits.iter().any(|(f, _)| f == "third_party/py/python_init_rules.bzl"), "{attr}: {edits:?}");
            for (file, pattern) in edits {
                assert!(xla_file(&repo, &file).contains(&pattern), "{attr}: {file} at the pinned XLA commit has no {pattern:?}");
            }
            // The patch was written for (and checked against) rules_python 1.6.3.
            assert!(xla_file(&repo, "third_party/py/python_init_rules.bzl").contains("rules_python-1.6.3"));
        }
    }
    let patch = std::fs::read_to_string(support::project_root().join("nix/patches/rules-python-nix-patchelf.patch")).unwrap();
    assert!(patch.starts_with("--- a/python/private/python_repository.bzl\n"), "{patch}");
    assert!(patch.contains("NIX_DYNAMIC_LINKER") && patch.contains("--set-interpreter"), "{patch}");
}

/// Audit 7: the CUDA/ROCm build gaps. nccl_archive is fetched; repositories
/// generated from local CUDA/ROCm trees leave the archive; symlinks to the
/// store are refused; the legacy NVCC define; libcuda.so.1 left to the host;
/// librocprofiler-sdk.so.1 provided; XLA's configure.py runs (CPU, CUDA);
/// ROCm's clang reaches @local_config_rocm's crosstool (XLA's own configs).
#[test]
fn audit7_cuda_and_rocm_build_gaps_are_closed() {
    if !support::require_nix() {
        return;
    }
    let dir = scratch();
    ensure_prebuilt_pins(dir.path());
    for (system, backend) in [("x86_64-linux", "cpu"), ("aarch64-linux", "cpu")].into_iter().chain(GPU_SOURCE_BUILDS) {
        let attr = format!("packages.{system}.pjrt-{backend}");
        let (drv, closure) = derivation_of(dir.path(), &attr);
        let build = &closure[&drv];
        let deps = deps_of(dir.path(), &attr, &closure);
        let cuda = backend.starts_with("cuda");
        let targets = env_str(deps, "bazelTargets");
        assert_eq!(targets.contains("@nccl_archive//..."), cuda, "{attr}: fetch targets {targets}");
        let install = env_str(deps, "installPhase");
        assert!(
            install.contains("-type l") && install.contains("/nix/store/[a-z0-9]{32}-"),
            "{attr}: symlinks are not checked for store paths"
        );
        let flags = format!("{} {}", env_str(build, "bazelFlags"), env_str(build, "bazelBuildFlags"));
        assert_eq!(flags.contains("--define=using_cuda_nvcc=true"), cuda, "{attr}: {flags}");
        let ignored = build["env"]["autoPatchelfIgnoreMissingDeps"].as_str().unwrap_or("");
        assert_eq!(ignored == "libcuda.so.1", cuda, "{attr}: autoPatchelfIgnoreMissingDeps = {ignored:?}");
        let configure = env_str(build, "preConfigure");
        match backend {
            "cpu" => assert!(configure.contains("./configure.py '--backend=CPU' '--host_compiler=CLANG'"), "{attr}: {configure}"),
            "rocm7" => {
                assert!(!configure.contains("configure.py"), "{attr}: {configure}");
                assert!(install.contains("local_config_rocm"), "{attr}: local_config_rocm kept in the archive");
                for f in ["--config=rocm_base", "--action_env=CLANG_COMPILER_PATH=", "--repo_env=ROCM_PATH="] {
                    assert!(flags.contains(f), "{attr}: {f} missing: {flags}");
                }
                assert!(!flags.contains("TF_ROCM_MULTIPLE_PATHS"), "{attr}: {flags}");
            }
            _ => {
                assert!(configure.contains("./configure.py '--backend=CUDA'"), "{attr}: {configure}");
                for repository in ["cuda_cudart", "cuda_nvcc", "cuda_cudnn", "cuda_nccl", "local_config_cuda"] {
                    assert!(install.contains(repository), "{attr}: {repository} is kept in the deps archive");
                    assert!(env_str(build, "postConfigure").contains(repository), "{attr}: {repository} not regenerated");
                }
            }
        }
    }
    let fixup = flake_eval(dir.path(), "packages.x86_64-linux.pjrt-rocm7-bin.doubleFixup", "x: x");
    assert!(strings(&fixup["sharedLibrary"]).iter().any(|d| d.contains("-rocprofiler-sdk-")), "{fixup}");
    // ROCm's clang: rocm_base turns on clang_local, which turns C++ toolchain
    // resolution off, so --crosstool_top=@local_config_rocm//crosstool is the
    // compiler, configured from CLANG_COMPILER_PATH.
    if let Some(repo) = support::xla_repo() {
        let bazelrc = xla_file(&repo, ".bazelrc");
        assert!(bazelrc.contains("common:clang_local --noincompatible_enable_cc_toolchain_resolution"), "{bazelrc}");
        let tf = xla_file(&repo, "tensorflow.bazelrc");
        assert!(tf.contains("common:rocm_base --config=clang_local"));
        assert!(tf.contains("common:rocm_base --crosstool_top=@local_config_rocm//crosstool:toolchain"));
        let rocm = xla_file(&repo, "third_party/gpus/rocm_configure.bzl");
        assert!(
            rocm.contains("get_host_environ(repository_ctx, _CLANG_COMPILER_PATH)"),
            "rocm_configure.bzl no longer reads CLANG_COMPILER_PATH"
        );
        // And why TF_ROCM_MULTIPLE_PATHS cannot take nixpkgs' split outputs.
        assert!(rocm.contains("fail(\"File already present: \" + relative_path)"));
    }
}
