//! What a reading of XLA's and nixpkgs' sources showed the first real
//! `nix build .#pjrt-cuda12/-cuda13/-rocm7` would hit (issue 19, items 4-8;
//! items 1-3 are in nix_xla_rules.rs), checked with real Nix against the
//! nixpkgs TEST DOUBLE, whose builder models nixpkgs at the flake's pin
//! (nix/tests/nixpkgs-double/README.md). Where a derivation's script decides
//! the outcome, the script itself is run with bash on a tree shaped as the
//! build would leave it.
//!
//! Skips without nix outside CI; fails under `CI=true`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::flake::*;

const N: [&str; 5] = ["--extra-experimental-features", "nix-command flakes", "--option", "substituters", ""];

/// A scratch copy whose double's bazel_7 defaults to `version` (nixpkgs'
/// attribute after a bump such as NixOS/nixpkgs#474010's 7.7.1).
fn scratch_with_bazel(version: &str) -> tempfile::TempDir {
    let dir = scratch();
    let file = dir.path().join("nix/tests/nixpkgs-double/bazel.nix");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("version ? \"7.6.0\""), "the double's bazel_7 no longer defaults to 7.6.0");
    std::fs::write(&file, text.replace("version ? \"7.6.0\"", &format!("version ? \"{version}\""))).unwrap();
    dir
}

/// `nix eval --json` of every package, shell and check of `system`: their
/// drvPaths, and Nix's stderr (warnings).
fn eval_everything(dir: &Path, system: &str) -> Result<(Value, String), String> {
    let mut stderr = String::new();
    let mut all = serde_json::Map::new();
    for output in ["packages", "devShells", "checks"] {
        let out = Command::new("nix")
            .current_dir(dir)
            .args(N)
            .args(["eval", "--json", "--override-input", "nixpkgs", "path:./nix/tests/nixpkgs-double"])
            .arg(format!(".#{output}.{system}"))
            .args(["--apply", "set: builtins.mapAttrs (n: d: d.drvPath) set"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(format!("{output}.{system}: {err}"));
        }
        stderr.push_str(&err);
        all.insert(output.to_owned(), serde_json::from_slice(&out.stdout).unwrap());
    }
    Ok((Value::Object(all), stderr))
}

/// Item 4: a patch release of nixpkgs' bazel_7 that pins.toml does not
/// record yet (7.7.1, NixOS/nixpkgs#474010) leaves every package, shell and
/// check evaluating, with a warning, and version_info.json records the Bazel
/// that runs; only another MAJOR version stops evaluation. `pins check` warns
/// (exit 0) on a below-major difference and fails on a major one.
#[test]
fn bazel_patch_release_of_nixpkgs_only_warns() {
    if !support::require_nix() {
        return;
    }
    let pinned = pins(&support::project_root())["toolchains"]["bazel"]["version"].as_str().unwrap().to_owned();
    assert_ne!(pinned, "7.7.1", "pick another version for this test: the pin already says 7.7.1");
    let dir = scratch_with_bazel("7.7.1");
    for system in ["x86_64-linux", "aarch64-linux"] {
        let (all, stderr) = eval_everything(dir.path(), system).unwrap_or_else(|e| panic!("Bazel 7.7.1 stops evaluation: {e}"));
        for output in ["packages", "devShells", "checks"] {
            assert!(all[output].as_object().is_some_and(|o| !o.is_empty()), "{system}: no {output}");
        }
        assert!(all["packages"]["pjrt-cpu"].is_string() && all["checks"]["smoke-cuda13"].is_string(), "{all}");
        assert!(stderr.contains(&format!("bazel_7 is Bazel 7.7.1, pins.toml [toolchains.bazel] version says {pinned}")), "{stderr}");
    }
    let info: Value =
        serde_json::from_str(&try_flake_eval_raw(dir.path(), "packages.x86_64-linux.pjrt-cuda13.versionInfoJson").unwrap()).unwrap();
    assert_eq!(info["toolchains"]["version"], "7.7.1", "{info}");
    // Another major: the source builds refuse to evaluate, naming the problem.
    let dir = scratch_with_bazel("8.0.0");
    let err = try_flake_eval_raw(dir.path(), "packages.x86_64-linux.pjrt-cpu.drvPath").unwrap_err();
    assert!(err.contains("another major version"), "{err}");
    assert!(try_flake_eval_raw(dir.path(), "packages.x86_64-linux.pjrt-cpu-bin.drvPath").is_ok());

    // pins check: a warning below the major version, an error above it.
    let text = std::fs::read_to_string(support::project_root().join("pins.toml")).unwrap();
    let with = |v: &str| {
        let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
        doc["toolchains"]["bazel"]["version"] = toml_edit::value(v);
        xtask::pinfile::check(&doc.to_string(), "pins.toml")
    };
    let xla = pins(&support::project_root())["xla"]["bazel_version"].as_str().unwrap().to_owned();
    let other = format!("{}.99.0", xla.split('.').next().unwrap());
    let report = with(&other);
    assert!(!report.has_errors(), "{:?}", report.findings);
    assert!(
        report.findings.iter().any(|f| f.key == "toolchains.bazel.version" && f.severity == xtask::pinfile::Severity::Warning),
        "{:?}",
        report.findings
    );
    assert!(report.findings.iter().any(|f| f.to_string().contains(": warning: `toolchains.bazel.version`")));
    assert!(with("99.0.0").has_errors());
}

/// Item 5: the dependency archive is a plain tar, as buildBazelPackage
/// writes and unpacks it since NixOS/nixpkgs#497817: every byte of the
/// archived files is visible to Nix's reference scan of the fixed output.
/// The archive our fetch installPhase writes unpacks with the double's
/// `tar xf` and names the Bazel the build checks.
#[test]
fn deps_archive_is_plain_tar_as_build_bazel_package_unpacks_it() {
    if !support::require_nix() {
        return;
    }
    let dir = scratch();
    let attr = "packages.x86_64-linux.pjrt-cuda12";
    let (drv, closure) = derivation_of(dir.path(), attr);
    let deps = deps_of(dir.path(), attr, &closure);
    assert!(env_str(deps, "name").ends_with("-deps.tar"), "{}", env_str(deps, "name"));
    let work = tempfile::tempdir().unwrap();
    let top = work.path();
    let ext = top.join("output/external");
    let marker = format!("visible-to-the-reference-scan-{}", std::process::id());
    std::fs::create_dir_all(ext.join("some_repo")).unwrap();
    std::fs::write(ext.join("some_repo/BUILD"), &marker).unwrap();
    std::fs::write(ext.join("@some_repo.marker"), "abc").unwrap();
    std::os::unix::fs::symlink(top.join("output/external/some_repo/BUILD"), ext.join("some_repo/link")).unwrap();
    let archive = top.join("deps.tar");
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", "runHook() { :; }; eval \"$installPhase\""]).current_dir(top);
    cmd.env("installPhase", env_str(deps, "installPhase"))
        .env("bazelOut", top.join("output"))
        .env("NIX_BUILD_TOP", top)
        .env("out", &archive);
    let run = cmd.output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let bytes = std::fs::read(&archive).unwrap();
    assert!(!bytes.starts_with(&[0x1f, 0x8b]), "the deps archive is gzip: Nix's reference scan cannot read it");
    assert!(bytes.windows(marker.len()).any(|w| w == marker.as_bytes()), "archived bytes are not visible in the archive");
    // The build unpacks it as the double's buildBazelPackage does.
    let build = &closure[&drv];
    let pre = env_str(build, "preConfigure");
    assert!(pre.contains("tar xf $deps") && !pre.contains("tar xfz"), "{pre}");
    let unpacked = top.join("build/output");
    std::fs::create_dir_all(&unpacked).unwrap();
    let tar = Command::new("tar").arg("xf").arg(&archive).current_dir(&unpacked).status().unwrap();
    assert!(tar.success());
    let bazel = env_str(deps, "installPhase").split("echo '").nth(1).unwrap().split('\'').next().unwrap().to_owned();
    assert_eq!(std::fs::read_to_string(unpacked.join("external/.nix-bazel-version")).unwrap().trim(), bazel);
    assert!(pre.contains(&format!("test \"{bazel}\" = ")), "the build checks another Bazel than the fetch records: {pre}");
}

/// The roots XLA's CandidateCudaRoots (xla/tsl/platform/default/
/// cuda_root_path.cc at the pinned commit) tries next to the library it is
/// in, for a plugin built for CUDA 13 and for another CUDA: the first
/// element of each `paths_to_add` list.
fn xla_cuda_roots_next_to_plugin(repo: &Path) -> (String, String) {
    let commit = pins(&support::project_root())["xla"]["commit"].as_str().unwrap().to_owned();
    let file = "xla/tsl/platform/default/cuda_root_path.cc";
    let text = support::git_show(repo, &commit, file).unwrap_or_else(|| panic!("{file} missing at {commit}"));
    let at = text.find("StartsWith(TF_CUDA_VERSION, \"13\")").unwrap_or_else(|| panic!("{file}: no CUDA 13 branch"));
    let lists: Vec<&str> = text[at..].split("std::vector<const char*>{").skip(1).take(2).collect();
    let first = |l: &str| l.split('"').nth(1).unwrap().to_owned();
    (first(lists[0]), first(lists[1]))
}

/// Item 6: a prebuilt CUDA plugin JIT-compiles with nothing else installed:
/// ptxas, nvlink and libdevice are where XLA looks next to the plugin
/// (read from XLA's own cuda_root_path.cc), version_info.json names the
/// directory for bindings that copy the plugin elsewhere, and NVSHMEM 3 is
/// there (NVIDIA's pinned wheel, only the libraries XLA's rules import).
#[test]
fn prebuilt_cuda_plugins_carry_jit_tools_and_nvshmem() {
    if !support::require_nix() {
        return;
    }
    let dir = scratch();
    let toml = pins(dir.path());
    let pinned_libs: std::collections::BTreeSet<String> =
        toml["rules_ml_toolchain"]["nvshmem_libraries"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    let roots = support::xla_repo().map(|repo| xla_cuda_roots_next_to_plugin(&repo));
    for (backend, major) in [("cuda12", "12"), ("cuda13", "13")] {
        let attr = format!("packages.x86_64-linux.pjrt-{backend}-bin");
        let (drv, closure) = derivation_of(dir.path(), &attr);
        let build = &closure[&drv];
        let root = env_str(build, "cudaToolRoot").to_owned();
        if let Some((cuda13, other)) = &roots {
            let want = if major == "13" { cuda13 } else { other };
            assert_eq!(format!("../{root}"), *want, "{attr}: XLA looks for its CUDA tools at <plugin dir>/{want}");
        }
        // NVIDIA's NVSHMEM wheel, exactly as pinned.
        let wheel = &toml[backend]["nvshmem_wheel"]["x86_64-linux"];
        let nvshmem = producer(&closure, env_str(build, "nvshmemSrc"));
        assert_eq!(nvshmem["env"]["url"], wheel["url"].as_str().unwrap(), "{attr}");
        assert_eq!(nvshmem["outputs"]["out"]["hash"], wheel["sha256"].as_str().unwrap(), "{attr}");
        assert!(env_str(build, "appendRunpaths").split_whitespace().any(|p| p == "$ORIGIN"), "{attr}: NVSHMEM is dlopen'ed from $ORIGIN");
        let info: Value = serde_json::from_str(env_str(build, "versionInfoJson")).unwrap();
        assert_eq!(info["cuda_data_dir"], env_str(build, "cudaDataDir"), "{attr}: {info}");
        assert_eq!(info["toolchains"]["nvshmem"], toml[backend]["nvshmem_version"].as_str().unwrap());

        // Run the install step on a toolkit and a wheel shaped as nixpkgs'
        // cuda_nvcc (one output: bin/, nvvm/) and NVIDIA's wheel lay them out.
        let work = tempfile::tempdir().unwrap();
        let nvcc = work.path().join("cuda_nvcc");
        for f in ["bin/ptxas", "bin/nvlink", "nvvm/libdevice/libdevice.10.bc"] {
            std::fs::create_dir_all(nvcc.join(f).parent().unwrap()).unwrap();
            std::fs::write(nvcc.join(f), f).unwrap();
        }
        let zip_path = work.path().join("nvshmem.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        for name in support::flake::NVSHMEM_SHIPPED {
            zip.start_file(format!("nvidia/nvshmem/lib/{name}.so.3"), zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut zip, name.as_bytes()).unwrap();
        }
        zip.start_file("nvidia/nvshmem/include/nvshmem.h", zip::write::SimpleFileOptions::default()).unwrap();
        zip.finish().unwrap();
        let out = work.path().join("out");
        std::fs::create_dir_all(out.join("lib")).unwrap();
        let run = Command::new("bash")
            .args(["-euo", "pipefail", "-c", "eval \"$postInstall\""])
            .current_dir(work.path())
            .env("postInstall", env_str(build, "postInstall"))
            .env("cudaToolRoot", &root)
            .env("cudaDataDir", &nvcc)
            .env("nvshmemSrc", &zip_path)
            .env("out", &out)
            .output()
            .unwrap();
        assert!(run.status.success(), "{attr}: {}", String::from_utf8_lossy(&run.stderr));
        let lib = out.join("lib");
        for tool in ["bin/ptxas", "bin/nvlink", "nvvm/libdevice/libdevice.10.bc"] {
            let p: PathBuf = lib.join("..").join(&root).join(tool);
            assert!(p.is_file(), "{attr}: XLA would not find {tool} at {}", p.display());
        }
        let installed: std::collections::BTreeSet<String> = std::fs::read_dir(&lib)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().split(".so").next().unwrap().to_owned())
            .collect();
        assert_eq!(installed, pinned_libs, "{attr}: NVSHMEM libraries installed vs [rules_ml_toolchain] nvshmem_libraries");
    }
}

/// Item 7: the LOCAL_CUDA_PATH view refuses CCCL headers (XLA brings its own
/// CCCL), as nixpkgs' xla cuda-local.nix does: its postBuild, run on a
/// joined tree, fails with one and passes without.
#[test]
fn local_cuda_view_refuses_cccl_headers() {
    if !support::require_nix() {
        return;
    }
    let dir = scratch();
    for backend in ["cuda12", "cuda13"] {
        let attr = format!("packages.x86_64-linux.pjrt-{backend}");
        let (drv, closure) = derivation_of(dir.path(), &attr);
        let flags = env_str(&closure[&drv], "bazelFlags").to_owned();
        let path = flags.split_whitespace().find_map(|f| f.strip_prefix("--repo_env=LOCAL_CUDA_PATH=")).unwrap();
        let post = env_str(producer(&closure, path), "postBuild").to_owned();
        let run = |files: &[&str]| {
            let out = tempfile::tempdir().unwrap();
            for f in files {
                std::fs::create_dir_all(out.path().join(f).parent().unwrap()).unwrap();
                std::fs::write(out.path().join(f), "").unwrap();
            }
            Command::new("bash").args(["-euo", "pipefail", "-c", &post]).env("out", out.path()).output().unwrap()
        };
        assert!(run(&["include/cuda_runtime.h", "bin/ptxas"]).status.success(), "{attr}: a clean CUDA view is refused");
        for cccl in ["include/thrust/version.h", "include/cub/cub.cuh", "include/cuda/std/version", "include/nv/target"] {
            let result = run(&["include/cuda_runtime.h", cccl]);
            let stderr = String::from_utf8_lossy(&result.stderr);
            assert!(!result.status.success() && stderr.contains("CCCL"), "{attr}: {cccl} in the local CUDA view passes: {stderr}");
        }
    }
}

/// An edit of a scratch pins.toml.
type PinsEdit = Box<dyn Fn(&mut toml_edit::DocumentMut)>;

/// Item 8: a pins.toml value that would run as shell in a builder (nixpkgs'
/// buildBazelPackage splices bazelBuildFlags into its build phase; install
/// scripts use library names) stops evaluation, naming the key; and valid
/// flags reach Bazel as the words they are, through the double's build phase
/// (spliced, as the real one) run with bash and a recording `bazel`.
#[test]
fn hostile_pins_stop_evaluation_and_flags_reach_bazel_whole() {
    if !support::require_nix() {
        return;
    }
    let hostile = "$(touch${IFS}/tmp/pjrtpkgs-pwned)";
    let cases: [(&str, &str, PinsEdit); 5] = [
        (
            "cuda13.compute_capabilities",
            "packages.x86_64-linux.pjrt-cuda13",
            Box::new(move |d| {
                d["cuda13"]["compute_capabilities"].as_array_mut().unwrap().push(format!("compute_120;{hostile}"));
            }),
        ),
        (
            "cuda13.nvshmem_version",
            "packages.x86_64-linux.pjrt-cuda13",
            Box::new(move |d| d["cuda13"]["nvshmem_version"] = toml_edit::value(format!("3.3.20 {hostile}"))),
        ),
        (
            "rules_ml_toolchain.nvshmem_libraries",
            "packages.x86_64-linux.pjrt-cuda12",
            Box::new(move |d| d["rules_ml_toolchain"]["nvshmem_libraries"].as_array_mut().unwrap().push(format!("x;{hostile}"))),
        ),
        (
            "rocm7.gpu_targets",
            "packages.x86_64-linux.pjrt-rocm7",
            Box::new(move |d| d["rocm7"]["gpu_targets"].as_array_mut().unwrap().push(format!("gfx90a {hostile}"))),
        ),
        (
            "cuda12.nvshmem_wheel.x86_64-linux.url",
            "packages.x86_64-linux.pjrt-cuda12-bin",
            Box::new(move |d| d["cuda12"]["nvshmem_wheel"]["x86_64-linux"]["url"] = toml_edit::value(format!("https://x/{hostile}.whl"))),
        ),
    ];
    for (key, attr, edit) in cases {
        let dir = scratch();
        edit_pins(dir.path(), |d| edit(d));
        match try_flake_eval_raw(dir.path(), &format!("{attr}.drvPath")) {
            Ok(drv) => panic!("{attr} evaluated with a hostile `{key}`: {drv}"),
            Err(e) => assert!(e.contains(&format!("`{key}`")) && e.contains("pins check"), "{attr}: {e}"),
        }
    }

    // Valid pins: the double's build phase (flags spliced as nixpkgs splices
    // them) hands Bazel exactly the configured flags, one word each.
    let dir = scratch();
    let attr = "packages.x86_64-linux.pjrt-cuda13";
    let (drv, closure) = derivation_of(dir.path(), attr);
    let build = &closure[&drv];
    let info: Value = serde_json::from_str(env_str(build, "versionInfoJson")).unwrap();
    let configured: Vec<String> = info["bazel_flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect();
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = work.path().join("args");
    std::fs::write(bin.join("bazel"), format!("#!/bin/sh\nprintf '%s\\0' \"$@\" > '{}'\n", record.display())).unwrap();
    std::fs::set_permissions(bin.join("bazel"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", "runHook() { :; }; eval \"$buildPhase\""]).current_dir(work.path()).env_clear();
    for (k, v) in build["env"].as_object().unwrap() {
        if let Some(v) = v.as_str() {
            cmd.env(k, v);
        }
    }
    cmd.env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()))
        .env("bazelOut", work.path().join("output"))
        .env("bazelUserRoot", work.path().join("tmp"))
        .env("NIX_BUILD_CORES", "2");
    let run = cmd.output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let args: Vec<String> = std::fs::read_to_string(&record).unwrap().split('\0').filter(|a| !a.is_empty()).map(str::to_owned).collect();
    let build_at = args.iter().position(|a| a == "build").expect("no build command");
    for flag in &configured {
        assert!(args[build_at..].contains(flag), "{attr}: Bazel did not get `{flag}` as one argument: {args:?}");
    }
    assert!(args.iter().any(|a| a == "//xla/pjrt/c:pjrt_c_api_gpu_plugin.so"), "{args:?}");
}
