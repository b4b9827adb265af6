//! The Nix layer against XLA's OWN build rules, read from real XLA history
//! at the pinned commit (`XLA_REPO`; pins.toml [xla] commit), so that an XLA
//! upgrade that moves what XLA builds with makes these tests fail until the
//! Nix layer and pins.toml follow (`upgrade-xla`'s report names what to
//! change). Nothing of XLA's values is written here.
//!
//! - (a) every `--repo_env=HERMETIC_*` XLA's `pjrt_cudaNN` config (and the
//!   configs it includes) sets is recorded in pins.toml and reaches Bazel
//!   unchanged, or is a deliberate override listed in pins.toml;
//! - (b) the NVSHMEM libraries a CUDA build installs are exactly those
//!   rules_ml_toolchain's nvidia_nvshmem BUILD template imports (the template
//!   itself with `RULES_ML_TOOLCHAIN_REPO`, else pins.toml's record of it,
//!   whose commit is checked against XLA's WORKSPACE);
//! - (c) XLA's own find_rocm_config.py accepts the ROCm tree laid out as our
//!   derivation lays it out, and every library rocm_configure.bzl requires
//!   is in it.
//!
//! The flake is evaluated with real Nix against the nixpkgs TEST DOUBLE; the
//! install scripts of the derivations are run with bash on trees shaped as
//! Bazel leaves them. Skips without nix / XLA_REPO outside CI only.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::flake::*;
use xtask::upgrade::bazelrc::{repo_env_of, BazelRc};
use xtask::upgrade::versions::{rules_ml_toolchain_commit, RECORDED_CUDA_SETTINGS, RULES_ML_TOOLCHAIN_FILES};

const CUDA_BUILDS: [(&str, &str); 4] =
    [("x86_64-linux", "cuda12"), ("aarch64-linux", "cuda12"), ("x86_64-linux", "cuda13"), ("aarch64-linux", "cuda13")];

fn pinned_commit() -> String {
    pins(&support::project_root())["xla"]["commit"].as_str().unwrap().to_owned()
}

/// XLA's bazelrc files at the pinned commit, as Bazel reads them.
fn xla_bazelrc(repo: &Path, commit: &str) -> BazelRc {
    BazelRc::load(".bazelrc", &["tensorflow.bazelrc"], &mut |p| support::git_show(repo, commit, p))
        .unwrap_or_else(|e| panic!("XLA's bazelrc at {commit}: {e:#}"))
}

/// The words bash makes of `text` (how the builder's scripts see spliced
/// flags); only ever called on values pins.nix has validated.
fn shell_words(text: &str) -> Vec<String> {
    let out = Command::new("bash").args(["-c", "eval \"set -- $1\"; printf '%s\\0' \"$@\"", "_", text]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().split('\0').filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

/// The Bazel options of a derivation's command line, `--config` expanded in
/// place from XLA's rc files; later settings win, as in Bazel.
fn effective_repo_env(rc: &BazelRc, words: &[String]) -> BTreeMap<String, String> {
    let mut options = Vec::new();
    for w in words {
        match w.strip_prefix("--config=") {
            Some(config) => options.extend(rc.expand(config).unwrap()),
            None => options.push(w.clone()),
        }
    }
    repo_env_of(&options)
}

/// (a) For each CUDA build: XLA's pjrt_cudaNN sets K=V for every HERMETIC_*
/// K; pins.toml records V in the field for K; the build's Bazel command line
/// ends with K=V, unless K is under [cudaNN.overrides]. The dependency fetch
/// gets the same versions (it downloads NVSHMEM), capabilities apart.
#[test]
fn a_cuda_builds_pass_xla_pjrt_cuda_settings_or_listed_overrides() {
    if !support::require_nix() {
        return;
    }
    let Some(repo) = support::xla_repo() else { return };
    let commit = pinned_commit();
    let rc = xla_bazelrc(&repo, &commit);
    let dir = scratch();
    let toml = pins(dir.path());
    let mut problems = Vec::new();
    let mut recorded_checked = BTreeSet::new();
    for (system, backend) in CUDA_BUILDS {
        let config = format!("pjrt_{backend}");
        assert!(rc.has_config(&config), "XLA at {commit} defines no `{config}` bazelrc config");
        let xla: BTreeMap<String, String> = rc.repo_env(&config).unwrap().into_iter().filter(|(k, _)| k.starts_with("HERMETIC_")).collect();
        assert!(!xla.is_empty(), "{config} sets no HERMETIC_* at {commit}");
        let pin = toml[backend].as_table().unwrap();
        let overrides: BTreeSet<String> =
            pin.get("overrides").and_then(|o| o.as_table()).map(|t| t.keys().cloned().collect()).unwrap_or_default();

        let attr = format!("packages.{system}.pjrt-{backend}");
        let (drv, closure) = derivation_of(dir.path(), &attr);
        let build = &closure[&drv];
        let mut words: Vec<String> = env_str(build, "bazelFlags").split_whitespace().map(str::to_owned).collect();
        words.extend(shell_words(env_str(build, "bazelBuildFlags")));
        let ours = effective_repo_env(&rc, &words);
        let deps = deps_of(dir.path(), &attr, &closure);
        let mut fetch_words: Vec<String> = env_str(deps, "bazelFlags").split_whitespace().map(str::to_owned).collect();
        fetch_words.extend(env_str(deps, "bazelFetchFlags").split_whitespace().map(str::to_owned));
        let fetch = effective_repo_env(&rc, &fetch_words);

        let check_record = recorded_checked.insert(backend);
        for (setting, value) in &xla {
            // pins.toml records XLA's value (once per backend)...
            match RECORDED_CUDA_SETTINGS.iter().find(|(s, _)| s == setting).filter(|_| check_record) {
                Some((_, field)) => {
                    let recorded = match &pin[*field] {
                        toml::Value::Array(a) => a.iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>().join(","),
                        v => v.as_str().unwrap().to_owned(),
                    };
                    if &recorded != value {
                        problems.push(format!("pins.toml [{backend}] {field} = {recorded}, XLA's {config} sets {setting}={value}"));
                    }
                }
                None if check_record && !RECORDED_CUDA_SETTINGS.iter().any(|(s, _)| s == setting) && !overrides.contains(setting) => {
                    problems.push(format!(
                        "XLA's {config} sets {setting}={value}: pins.toml [{backend}] records no such setting and lists no override of it"
                    ))
                }
                None => {}
            }
            // ...and the build passes it on, unless it is a listed override.
            if overrides.contains(setting) {
                if !ours.contains_key(setting) {
                    problems.push(format!("{attr}: {setting} is a listed override but the build does not set it"));
                }
                continue;
            }
            if ours.get(setting) != Some(value) {
                problems.push(format!("{attr}: Bazel gets {setting}={:?}, XLA's {config} sets {value}", ours.get(setting)));
            }
            if setting != "HERMETIC_CUDA_COMPUTE_CAPABILITIES" && fetch.get(setting) != Some(value) {
                problems.push(format!("{attr}.deps: the fetch gets {setting}={:?}, XLA's {config} sets {value}", fetch.get(setting)));
            }
        }
        for setting in overrides.iter().filter(|_| check_record) {
            if !xla.contains_key(setting) {
                problems.push(format!("pins.toml [{backend}.overrides] lists {setting}, which XLA's {config} no longer sets"));
            }
        }
    }
    assert!(problems.is_empty(), "the CUDA builds do not follow XLA's own pjrt configs at {commit}:\n  {}", problems.join("\n  "));
}

/// The shared libraries a rules_ml_toolchain BUILD template imports
/// (`shared_library = "lib/NAME.so.%{...}"`), in order.
fn template_imports(template: &str) -> Vec<String> {
    template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("shared_library = \"lib/"))
        .map(|rest| rest.split(".so").next().unwrap().to_owned())
        .collect()
}

/// rules_ml_toolchain's nvidia_nvshmem BUILD template at `commit`: the path
/// comes from its NVSHMEM_REDIST_VERSIONS_TO_BUILD_TEMPLATES (label of the
/// `nvidia_nvshmem` repository's template).
fn nvshmem_template(rmt: &Path, commit: &str) -> (String, String) {
    let versions = support::git_show(rmt, commit, "gpu/cuda/cuda_redist_versions.bzl")
        .unwrap_or_else(|| panic!("rules_ml_toolchain {commit} is not in {} (fetch it)", rmt.display()));
    let block = &versions[versions.find("\"nvidia_nvshmem\"").expect("no nvidia_nvshmem repository in cuda_redist_versions.bzl")..];
    let label = block.split('"').find(|s| s.starts_with("//")).expect("no template label for nvidia_nvshmem");
    let path = label.trim_start_matches("//").replace(':', "/");
    let text = support::git_show(rmt, commit, &path).unwrap_or_else(|| panic!("{path} missing at rules_ml_toolchain {commit}"));
    (path, text)
}

/// A Bazel output base after the fetch: external/nvidia_nvshmem with every
/// NVSHMEM library as the redistributable archive lays them out (NAME.so ->
/// NAME.so.3 -> NAME.so.3.0.0) and the BUILD file rules_ml_toolchain writes
/// from `template` (`%{comment}` and `%{multiline_comment}` emptied, each
/// `%{NAME_version}` the major version found in lib/).
fn nvshmem_output_base(root: &Path, template: &str) -> PathBuf {
    let repo = root.join("output/external/nvidia_nvshmem");
    std::fs::create_dir_all(repo.join("lib")).unwrap();
    for name in support::flake::NVSHMEM_SHIPPED {
        let lib = repo.join("lib");
        std::fs::write(lib.join(format!("{name}.so.3.0.0")), format!("{name} 3.0.0\n")).unwrap();
        std::os::unix::fs::symlink(format!("{name}.so.3.0.0"), lib.join(format!("{name}.so.3"))).unwrap();
        std::os::unix::fs::symlink(format!("{name}.so.3"), lib.join(format!("{name}.so"))).unwrap();
    }
    let mut build = template.replace("%{multiline_comment}", "").replace("%{comment}", "");
    while let Some(at) = build.find("%{") {
        let end = at + build[at..].find('}').unwrap();
        assert!(build[at..end].ends_with("_version"), "unexpected template variable {}", &build[at..=end]);
        build.replace_range(at..=end, "3");
    }
    std::fs::write(repo.join("BUILD"), build).unwrap();
    root.join("output")
}

/// Runs a plugin derivation's installPhase (and the hooks it runs) with bash
/// in `work`, as stdenv would: `runHook NAME` evaluates the variable NAME.
/// The environment is the derivation's own; `extra` adds what the build
/// would have set ($bazelOut, $out ...).
fn run_install(build: &Value, work: &Path, extra: &[(&str, &Path)]) -> std::process::Output {
    let mut cmd = Command::new("bash");
    cmd.args([
        "-euo",
        "pipefail",
        "-c",
        "runHook() { local v=\"$1\"; if [ -n \"${!v-}\" ]; then eval \"${!v}\"; fi; }; eval \"$installPhase\"",
    ]);
    cmd.current_dir(work).env_clear().env("PATH", std::env::var("PATH").unwrap());
    for (k, v) in build["env"].as_object().unwrap() {
        if let Some(v) = v.as_str() {
            cmd.env(k, v);
        }
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The NVSHMEM libraries (names without .so*) among the files in `dir`.
fn nvshmem_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("nvshmem"))
        .map(|n| n.split(".so").next().unwrap().to_owned())
        .collect()
}

/// (b) pins.toml [rules_ml_toolchain] is the commit XLA's WORKSPACE pins and
/// the libraries that commit's nvidia_nvshmem template imports; each CUDA
/// source build installs exactly those (with their soname links), out of
/// the BUILD file generated from the template, and refuses an archive or a
/// BUILD that disagrees.
#[test]
fn b_nvshmem_installed_is_what_xla_rules_import() {
    if !support::require_nix() {
        return;
    }
    let toml = pins(&support::project_root());
    let rmt_pin = toml["rules_ml_toolchain"].as_table().expect("pins.toml has no [rules_ml_toolchain]");
    let pinned_rmt = rmt_pin["commit"].as_str().unwrap().to_owned();
    let pinned_libs: Vec<String> =
        rmt_pin["nvshmem_libraries"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    let commit = pinned_commit();
    if let Some(repo) = support::xla_repo() {
        let pinned_by_xla = RULES_ML_TOOLCHAIN_FILES
            .iter()
            .find_map(|f| support::git_show(&repo, &commit, f).and_then(|t| rules_ml_toolchain_commit(&t)))
            .unwrap_or_else(|| panic!("XLA {commit} downloads no rules_ml_toolchain archive"));
        assert_eq!(
            pinned_rmt, pinned_by_xla,
            "pins.toml [rules_ml_toolchain] commit is not the one XLA {commit} builds with: read gpu/nvshmem/nvidia_nvshmem.BUILD.tpl at \
             {pinned_by_xla} and update the table (upgrade-xla's report says so)"
        );
    }
    // The template: rules_ml_toolchain's own, else one written from the pin.
    let template = match support::rules_ml_toolchain_repo() {
        Some(rmt) => {
            let (path, text) = nvshmem_template(&rmt, &pinned_rmt);
            assert_eq!(template_imports(&text), pinned_libs, "pins.toml [rules_ml_toolchain] nvshmem_libraries vs {path} at {pinned_rmt}");
            text
        }
        None => pinned_libs
            .iter()
            .map(|l| format!("cc_import(\n    name = \"{l}_shared_library\",\n    shared_library = \"lib/{l}.so.%{{{l}_version}}\",\n)\n"))
            .collect(),
    };
    let imports: BTreeSet<String> = template_imports(&template).into_iter().collect();
    assert!(imports.len() >= 3 && imports.iter().all(|i| support::flake::NVSHMEM_SHIPPED.contains(&i.as_str())), "{imports:?}");

    let dir = scratch();
    for backend in ["cuda12", "cuda13"] {
        let attr = format!("packages.x86_64-linux.pjrt-{backend}");
        let (drv, closure) = derivation_of(dir.path(), &attr);
        let build = &closure[&drv];
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join("out");
        let plugin_dir = work.path().join("bazel-bin").join(Path::new(env_str(build, "bazelOutput")).parent().unwrap());
        std::fs::create_dir_all(&plugin_dir).unwrap();
        std::fs::write(work.path().join("bazel-bin").join(env_str(build, "bazelOutput")), "plugin").unwrap();
        std::fs::create_dir_all(work.path().join("xla/pjrt/c")).unwrap();
        std::fs::write(work.path().join("xla/pjrt/c/pjrt_c_api.h"), "/* header */").unwrap();
        let base = nvshmem_output_base(work.path(), &template);
        let run = run_install(build, work.path(), &[("bazelOut", &base), ("out", &out)]);
        assert!(run.status.success(), "{attr}: install failed:\n{}", String::from_utf8_lossy(&run.stderr));
        let lib = out.join("lib");
        assert_eq!(nvshmem_in(&lib), imports, "{attr}: NVSHMEM libraries installed vs imported by XLA's rules");
        for name in &imports {
            // The soname the plugin dlopens resolves inside the package.
            let soname = lib.join(format!("{name}.so.3"));
            assert!(std::fs::canonicalize(&soname).is_ok_and(|p| p.starts_with(&lib)), "{attr}: {} does not resolve", soname.display());
        }

        // A BUILD importing a library the pin does not name: refused, naming the pin.
        let drift = tempfile::tempdir().unwrap();
        let extra =
            "cc_import(\n    name = \"x\",\n    shared_library = \"lib/nvshmem_bootstrap_mpi.so.%{nvshmem_bootstrap_mpi_version}\",\n)\n";
        let base = nvshmem_output_base(drift.path(), &format!("{template}{extra}"));
        let run = run_install(build, work.path(), &[("bazelOut", &base), ("out", &drift.path().join("out"))]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && stderr.contains("[rules_ml_toolchain] nvshmem_libraries"), "{attr}: {stderr}");
        // A BUILD whose imports rules_ml_toolchain commented out (no NVSHMEM found): refused.
        let commented = tempfile::tempdir().unwrap();
        let quoted = if template.contains("%{multiline_comment}") {
            template.replace("%{multiline_comment}", "\'\'\'").replace("%{comment}", "#")
        } else {
            format!("\'\'\'\n{template}\'\'\'\n")
        };
        let base = nvshmem_output_base(commented.path(), &quoted);
        let run = run_install(build, work.path(), &[("bazelOut", &base), ("out", &commented.path().join("out"))]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && stderr.contains("commented out"), "{attr}: {stderr}");
        // An imported library missing from the archive: refused, never silently skipped.
        let missing = tempfile::tempdir().unwrap();
        let base = nvshmem_output_base(missing.path(), &template);
        let first = imports.iter().next().unwrap();
        for f in std::fs::read_dir(base.join("external/nvidia_nvshmem/lib")).unwrap() {
            let f = f.unwrap();
            if f.file_name().to_string_lossy().starts_with(&format!("{first}.so")) {
                std::fs::remove_file(f.path()).unwrap();
            }
        }
        let run = run_install(build, work.path(), &[("bazelOut", &base), ("out", &missing.path().join("out"))]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && stderr.contains(first.as_str()), "{attr}: {stderr}");
    }
    let _ = pinned_libs;
}

/// The ROCm tree of the x86_64 ROCm source build laid out in `root` as its
/// symlinkJoin lays it out: each joined package's files (the double's model
/// of what the nixpkgs package installs), the first package winning, as
/// lndir does.
fn rocm_tree(dir: &Path, root: &Path) -> PathBuf {
    let attr = "packages.x86_64-linux.pjrt-rocm7";
    let (drv, closure) = derivation_of(dir, attr);
    let flags = env_str(&closure[&drv], "bazelFlags").to_owned();
    let tree = flags.split_whitespace().find_map(|f| f.strip_prefix("--repo_env=ROCM_PATH=")).expect("no ROCM_PATH").to_owned();
    let join = producer(&closure, &tree);
    // Store path -> files, for every ROCm package of the double.
    let files = nix_expr(
        dir,
        "let p = import ./nix/tests/nixpkgs-double { system = \"x86_64-linux\"; };
             r = p.rocmPackages;
             all = builtins.filter (v: v ? doubleFiles) (builtins.attrValues r ++ builtins.attrValues r.llvm);
         in builtins.listToAttrs (map (d: { name = builtins.unsafeDiscardStringContext d.outPath; value = d.doubleFiles; }) all)",
    )
    .unwrap();
    let out = root.join("rocm");
    for path in env_str(join, "paths").split_whitespace() {
        let provided = files.get(path).and_then(|f| f.as_object()).unwrap_or_else(|| panic!("no file model for {path} in the double"));
        for (rel, content) in provided {
            let target = out.join(rel);
            if target.exists() {
                continue;
            }
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(&target, content.as_str().unwrap()).unwrap();
        }
    }
    assert!(env_str(join, "postBuild").trim().is_empty(), "the ROCm tree has a postBuild this layout does not run");
    out
}

/// (c) XLA's find_rocm_config.py, at the pinned commit, accepts the ROCm tree
/// our derivation joins, and every library rocm_configure.bzl's _find_libs
/// requires ("Cannot find rocm library ...") and the clang it runs are in it.
#[test]
fn c_rocm_tree_satisfies_xla_rocm_configure() {
    if !support::require_nix() || !support::require_command("python3") {
        return;
    }
    let Some(repo) = support::xla_repo() else { return };
    let commit = pinned_commit();
    let dir = scratch();
    let work = tempfile::tempdir().unwrap();
    let tree = rocm_tree(dir.path(), work.path());

    let script = work.path().join("find_rocm_config.py");
    let text = support::git_show(&repo, &commit, "third_party/gpus/find_rocm_config.py").unwrap_or_else(|| {
        panic!("XLA at {commit} has no third_party/gpus/find_rocm_config.py: its ROCm configuration moved; read how it finds ROCm now and follow it in nix/")
    });
    std::fs::write(&script, text).unwrap();
    let out = Command::new("python3").arg(&script).env("ROCM_PATH", &tree).output().unwrap();
    assert!(
        out.status.success(),
        "XLA's find_rocm_config.py (at {commit}) rejects the ROCm tree of pjrt-rocm7:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = String::from_utf8_lossy(&out.stdout);
    for key in ["rocm_version_number", "hipruntime_version_number", "miopen_version_number", "rocrand_version_number"] {
        assert!(found.contains(key), "{found}");
    }

    let configure = support::git_show(&repo, &commit, "third_party/gpus/rocm_configure.bzl")
        .unwrap_or_else(|| panic!("XLA at {commit} has no third_party/gpus/rocm_configure.bzl"));
    let body = &configure[configure.find("def _find_libs(").unwrap_or_else(|| {
        panic!("rocm_configure.bzl at {commit} has no _find_libs: XLA finds ROCm libraries another way now; read it and follow it in nix/")
    })..];
    let body = &body[..body[1..].find("\ndef ").map(|i| i + 1).unwrap_or(body.len())];
    // Every `("NAME", ...)` row of _find_libs, but those marked optional
    // (`..., True)`): _select_rocm_lib_paths fails on a missing one.
    let required: Vec<&str> = body
        .lines()
        .filter(|l| !l.trim_end().ends_with(", True))"))
        .filter_map(|l| l.split_once("(\"").and_then(|(_, rest)| rest.split_once("\", ")).map(|(name, _)| name))
        .filter(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        .collect();
    assert!(required.len() >= 8, "cannot read _find_libs at {commit}: {body}");
    // The candidate places _rocm_lib_paths looks at.
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|name| {
            let file = format!("lib{name}.so");
            !["lib64", "lib64/stubs", "lib/x86_64-linux-gnu", "lib", ""].iter().any(|d| tree.join(d).join(&file).exists())
                && !tree.join("lib").join(format!("{file}.0")).exists()
        })
        .collect();
    assert!(missing.is_empty(), "rocm_configure.bzl at {commit} would fail: Cannot find rocm library {missing:?}");
    // The clang rocm_configure.bzl runs for its resource directory.
    for child in configure.split("get_child(\"").skip(1).filter_map(|s| s.split('"').next()) {
        assert!(tree.join(child).exists(), "rocm_configure.bzl runs {child}, which is not in the ROCm tree");
    }
}
