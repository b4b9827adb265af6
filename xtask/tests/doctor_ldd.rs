//! The doctor's model of the dynamic loader against glibc's loader itself
//! (`LD_TRACE_LOADED_OBJECTS=1 ld.so FILE`, what `ldd` runs): on every
//! pinned plugin, on an even sample of this machine's libraries, and on the
//! libraries a CUDA plugin opens at run time, laid out as NVIDIA's wheels
//! lay them out beside it. Every name the real loader lists must resolve to
//! the same path (or both not found); every library the model loads must be
//! one the real loader loads. The only difference is explained where it is
//! skipped: a file for another machine, which glibc refuses to trace at all.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::plugin::ldso::{Environment, Reason, Resolver};

/// name -> path (None: not found), as glibc's loader traces `file`; `None`
/// when it refuses to trace it.
fn real_loader(env: &Environment, file: &Path) -> Option<BTreeMap<String, Option<String>>> {
    let out = Command::new(&env.host.interpreter)
        .arg(file)
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD")
        .output()
        .expect("ld.so runs");
    if !out.status.success() {
        return None;
    }
    let mut map = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((name, rest)) = line.trim().split_once(" => ") else { continue };
        let path = rest.rsplit_once(" (").map_or(rest, |(p, _)| p).trim();
        map.insert(name.to_owned(), (path != "not found").then(|| path.to_owned()));
    }
    Some(map)
}

/// Compares the model with the real loader on `file`; returns how many
/// names were compared, or `None` when the real loader refuses the file.
fn compare(env: &Environment, file: &Path) -> Option<usize> {
    let real = real_loader(env, file)?;
    let closure = Resolver::new(env).resolve(file);
    let mut ours: BTreeMap<String, Option<String>> = BTreeMap::new();
    for r in closure.requests.iter().filter(|r| r.reason == Reason::Needed) {
        let path = r.object.map(|i| closure.objects[i].path.display().to_string());
        ours.entry(r.name.clone()).or_insert(path);
    }
    for (name, path) in &real {
        assert_eq!(ours.get(name), Some(path), "{}: `{name}`: glibc {path:?}, the model {:?}", file.display(), ours.get(name));
    }
    let real_paths: Vec<&String> = real.values().flatten().collect();
    for (name, path) in &ours {
        let interpreter = closure.objects[0].names.contains(name);
        match path {
            Some(p) if !interpreter => {
                assert!(real_paths.contains(&p), "{}: the model loads {p} for `{name}`, glibc does not", file.display())
            }
            None => assert_eq!(real.get(name), Some(&None), "{}: the model misses `{name}`, glibc does not", file.display()),
            _ => {}
        }
    }
    Some(real.len())
}

#[test]
fn same_paths_as_glibc_on_a_sample_of_this_machines_libraries() {
    let env = Environment { ld_library_path: None, ..Environment::current() };
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in &env.host.system_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if name.contains(".so") && p.is_file() && !p.is_symlink() {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut seen = std::collections::HashSet::new();
    files.retain(|p| std::fs::canonicalize(p).map(|c| seen.insert(c)).unwrap_or(false));
    let step = (files.len() / 60).max(1);
    let (mut compared, mut names, mut refused) = (0, 0, Vec::new());
    for file in files.iter().step_by(step) {
        match compare(&env, file) {
            Some(n) => {
                compared += 1;
                names += n;
            }
            None => refused.push(file.display().to_string()),
        }
    }
    eprintln!("{compared} libraries, {names} names resolved identically; glibc refused to trace {}: {refused:?}", refused.len());
    assert!(compared >= 20, "too few libraries compared ({compared} of {})", files.len());
}

/// The plugins pinned for this machine, fetched (network) when needed.
fn pinned_plugins() -> Vec<(String, PathBuf)> {
    let root = xtask::project::root().unwrap();
    let pins: toml::Table = std::fs::read_to_string(root.join("pins.toml")).unwrap().parse().unwrap();
    let system = xtask::pinfile::host_system();
    let mut found = Vec::new();
    for (name, pin) in pins["prebuilt"].as_table().unwrap() {
        if pin.get("platforms").and_then(|p| p.get(&system)).is_none() {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["prebuilt", "fetch", name]).output().unwrap();
        assert!(out.status.success(), "prebuilt fetch {name}: {}", String::from_utf8_lossy(&out.stderr));
        found.push((name.clone(), PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())));
    }
    found
}

#[test]
fn same_paths_as_glibc_on_every_pinned_plugin() {
    if !support::require("network access to pypi.org", support::reachable("pypi.org")) {
        return;
    }
    let env = Environment { ld_library_path: None, ..Environment::current() };
    let plugins = pinned_plugins();
    assert!(plugins.len() >= 7, "{plugins:?}");
    for (name, path) in plugins {
        let n = compare(&env, &path).unwrap_or_else(|| panic!("glibc refused to trace {name}"));
        eprintln!("{name}: {n} names, same paths as glibc");
    }
}

/// The CUDA 12 wheel's RPATH (`$ORIGIN/../nvidia/cuda_runtime/lib`...)
/// against libraries laid out as NVIDIA's wheels lay them out: a probe
/// library with that RPATH that needs each library the plugin opens is
/// resolved by both; some are present, some not.
#[test]
fn the_libraries_a_cuda_plugin_opens_resolve_as_glibc_resolves_them_beside_nvidia_wheels() {
    if !support::require_command("cc") || !support::require("network access to pypi.org", support::reachable("pypi.org")) {
        return;
    }
    let env = Environment { ld_library_path: None, ..Environment::current() };
    let Some((_, plugin)) = pinned_plugins().into_iter().find(|(n, _)| n == "jax-cuda12-pjrt") else { return };
    let object = xtask::plugin::ldso::ObjectFile::open(&plugin).unwrap();
    let rpath = object.rpath.clone().expect("the CUDA 12 wheel has a DT_RPATH");
    let strings = xtask::plugin::dlopens::scan(&object);
    let names: Vec<String> = strings
        .xla_cuda_stubs
        .iter()
        .filter_map(|s| xtask::plugin::providers::cuda_soname(s, 12))
        .filter(|n| n != "libcuda.so.1" && n != "libnvidia-ml.so.1")
        .collect();
    assert!(names.len() >= 8, "{names:?}");

    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site-packages");
    let plugin_dir = site.join("jax_plugins").join("xla_cuda12");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    let stubs = dir.path().join("stubs");
    std::fs::create_dir(&stubs).unwrap();
    // Every other library gets a stub where the wheel would put it.
    let wheel_dir = |soname: &str| -> &str {
        match soname.split(".so").next().unwrap() {
            "libcudart" => "cuda_runtime",
            "libcublas" | "libcublasLt" => "cublas",
            "libcufft" => "cufft",
            "libcupti" => "cuda_cupti",
            "libcudnn" => "cudnn",
            "libnvJitLink" => "nvjitlink",
            "libnccl" => "nccl",
            "libcusparse" => "cusparse",
            _ => "cuda_nvrtc",
        }
    };
    let mut link: Vec<String> = Vec::new();
    for (i, soname) in names.iter().enumerate() {
        let c = stubs.join("s.c");
        std::fs::write(&c, "int stub_symbol(void) { return 0; }\n").unwrap();
        let stub = stubs.join(soname);
        let ok =
            Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&stub).arg(&c).arg(format!("-Wl,-soname,{soname}")).status().unwrap();
        assert!(ok.success());
        link.push(stub.display().to_string());
        if i % 2 == 0 {
            let lib = site.join("nvidia").join(wheel_dir(soname)).join("lib");
            std::fs::create_dir_all(&lib).unwrap();
            std::fs::copy(&stub, lib.join(soname)).unwrap();
        }
    }
    let probe_c = dir.path().join("probe.c");
    std::fs::write(&probe_c, "int probe(void) { return 0; }\n").unwrap();
    let probe = plugin_dir.join("probe.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&probe)
        .arg(&probe_c)
        .args(["-Wl,--no-as-needed", "-Wl,--disable-new-dtags"])
        .arg(format!("-Wl,-rpath,{rpath}"))
        .args(&link)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let n = compare(&env, &probe).expect("glibc traces the probe");
    assert!(n >= names.len());

    // The doctor's own dlopen resolution from the plugin's place gives the
    // same answers as glibc gave for the probe.
    let real = real_loader(&env, &probe).unwrap();
    let fake_plugin = plugin_dir.join("xla_cuda_plugin.so");
    std::fs::hard_link(&plugin, &fake_plugin).or_else(|_| std::os::unix::fs::symlink(&plugin, &fake_plugin)).unwrap();
    let mut resolver = Resolver::new(&env);
    let mut closure = resolver.resolve(&fake_plugin);
    for name in &names {
        let i = resolver.dlopen(&mut closure, 1, name, "test");
        let got = closure.requests[i].object.map(|o| closure.objects[o].path.display().to_string());
        assert_eq!(Some(&got), real.get(name), "{name}");
    }
    eprintln!(
        "{} libraries the CUDA 12 plugin opens: {} found beside it, as glibc finds them",
        names.len(),
        real.values().filter(|p| p.is_some()).count()
    );
}
