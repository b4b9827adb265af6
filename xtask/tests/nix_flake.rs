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

/// A scratch copy of the files the flake reads, so tests can edit pins.toml.
/// It is the copy `deps-hash refresh` makes, so every evaluation here also
/// shows that copy is enough to evaluate the flake.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    xtask::deps_hash::copy_flake_inputs(&support::project_root(), dir.path()).unwrap();
    dir
}

fn nix(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("nix")
        .current_dir(dir)
        .args(["--extra-experimental-features", "nix-command flakes", "--option", "substituters", ""])
        .args(args)
        .output()
        .expect("cannot run nix");
    assert!(out.status.success(), "nix {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `nix eval --json .#ATTR --apply APPLY` against the test double.
fn flake_eval(dir: &Path, attr: &str, apply: &str) -> Value {
    let out = nix(
        dir,
        &["eval", "--json", "--override-input", "nixpkgs", "path:./nix/tests/nixpkgs-double", &format!(".#{attr}"), "--apply", apply],
    );
    serde_json::from_str(&out).unwrap()
}

/// `nix-instantiate --eval --strict --json -E EXPR` in `dir`.
fn nix_expr(dir: &Path, expr: &str) -> Result<Value, String> {
    let out = Command::new("nix-instantiate")
        .current_dir(dir)
        .args(["--eval", "--strict", "--json", "-E", expr])
        .output()
        .expect("cannot run nix-instantiate");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn pins(dir: &Path) -> toml::Table {
    std::fs::read_to_string(dir.join("pins.toml")).unwrap().parse().unwrap()
}

fn edit_pins(dir: &Path, f: impl FnOnce(&mut toml_edit::DocumentMut)) {
    let path = dir.join("pins.toml");
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    f(&mut doc);
    std::fs::write(&path, doc.to_string()).unwrap();
}

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

/// `nix show-derivation -r DRV`: every derivation in the closure.
fn show_derivation(dir: &Path, drv: &str) -> BTreeMap<String, Value> {
    serde_json::from_str(&nix(dir, &["show-derivation", "-r", drv])).unwrap()
}

fn is_fixed_output(drv: &Value) -> bool {
    drv["outputs"]["out"].get("hash").is_some() || drv["env"].get("outputHash").is_some()
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
                           nccl = "/NCCL"; cudaVersion = "12.9.1"; cudnnVersion = "9.13.0";
                           rocm = "/ROCM"; rocmMultiplePaths = "/R1:/R2"; clang = "/CLANG"; }};
               }}"#
        ),
    )
}

fn flags(v: &Value) -> Vec<String> {
    v["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect()
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
    let f = flags(&bazel_config(dir.path(), "cuda13", "x86_64-linux").unwrap());
    assert!(f.contains(&"--repo_env=HERMETIC_CUDA_COMPUTE_CAPABILITIES=sm_90".to_owned()));
    assert_eq!(bazel_config(dir.path(), "cuda12", "x86_64-linux"), bazel_config(&root, "cuda12", "x86_64-linux"));
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
    for (shell, drv) in &shells {
        let closure = show_derivation(dir.path(), drv);
        let env = &closure[drv]["env"];
        for (var, attr) in [
            ("PJRT_PLUGIN_CUDA_12_LIB", "pjrt-cuda12-bin"),
            ("PJRT_PLUGIN_CUDA_13_LIB", "pjrt-cuda13-bin"),
            ("PJRT_PLUGIN_ROCM_7_LIB", "pjrt-rocm7-bin"),
            ("PJRT_PLUGIN_TPU_LIB", "pjrt-tpu"),
        ] {
            let value = env[var].as_str().unwrap_or_else(|| panic!("{shell}: {var} not exported"));
            if let Some(pkg) = packages["x86_64-linux"].get(attr) {
                let out = closure[pkg]["outputs"]["out"]["path"].as_str().unwrap();
                assert!(value.starts_with(out) && value.ends_with(".so"), "{shell}: {var}={value}");
            }
        }
        let dirs = env["PJRT_PLUGIN_LIBRARY_PATH"].as_str().unwrap();
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
            let fixed: Vec<&Value> = closure.values().filter(|d| is_fixed_output(d)).collect();
            assert_eq!(fixed.len(), 1, "{attr} on {system}: one download expected, got {fixed:?}");
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
            let deps_path = build["env"]["bazelDeps"].as_str().unwrap();
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
