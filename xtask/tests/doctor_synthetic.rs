//! `cargo xtask doctor` on synthetic plugins built with cc, each broken in
//! one known way: a library missing, a symbol version newer than this
//! machine's libc, search-path precedence (RPATH, LD_LIBRARY_PATH, RUNPATH,
//! `$ORIGIN`, the RPATH of the loading chain), a constructor that executes
//! `ud2`, a plugin built for aarch64. Each verdict is checked, and where
//! the loader decides, against glibc's own loader (`LD_TRACE_LOADED_OBJECTS=1 ld.so`, which is
//! what `ldd` runs) and against the load in the child.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn cc_available() -> bool {
    support::require_command("cc")
}

/// Compiles `source` into the shared library `dir/name` with extra cc
/// arguments (after the source).
fn build(dir: &Path, name: &str, source: &str, args: &[&str]) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let out_path = dir.join(name);
    let out = Command::new("cc").args(["-shared", "-fPIC", "-O1", "-o"]).arg(&out_path).arg(&c).args(args).output().expect("cc runs");
    assert!(out.status.success(), "cc {name} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out_path
}

struct Doctor {
    code: Option<i32>,
    json: Value,
    stderr: String,
}

fn doctor(plugin: &Path, ld_library_path: Option<&str>, extra: &[&str]) -> Doctor {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("doctor").arg(plugin).arg("--json").args(extra).current_dir(plugin.parent().unwrap());
    match ld_library_path {
        Some(p) => cmd.env("LD_LIBRARY_PATH", p),
        None => cmd.env_remove("LD_LIBRARY_PATH"),
    };
    let out = cmd.output().expect("xtask runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("doctor printed no JSON ({e}); stderr:\n{stderr}"));
    Doctor { code: out.status.code(), json, stderr }
}

impl Doctor {
    fn finding(&self, check: &str) -> &Value {
        self.json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == check)
            .unwrap_or_else(|| panic!("no finding `{check}` in {:#}", self.json["findings"]))
    }

    fn library(&self, name: &str) -> &Value {
        self.json["libraries"].as_array().unwrap().iter().find(|l| l["name"] == name).unwrap_or_else(|| panic!("no library {name}"))
    }
}

/// What glibc's loader maps for `file`: name -> path (None: not found),
/// from the loader in trace mode (`LD_TRACE_LOADED_OBJECTS=1 ld.so FILE`,
/// which is what `ldd` runs).
fn ldd(file: &Path, ld_library_path: Option<&str>) -> Vec<(String, Option<String>)> {
    let mut cmd = Command::new(xtask::plugin::ldso::Host::detect().interpreter);
    cmd.arg(file).env("LD_TRACE_LOADED_OBJECTS", "1");
    match ld_library_path {
        Some(p) => cmd.env("LD_LIBRARY_PATH", p),
        None => cmd.env_remove("LD_LIBRARY_PATH"),
    };
    let out = cmd.output().expect("ld.so runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(" => ")?;
            let path = rest.rsplit_once(" (").map_or(rest, |(p, _)| p).trim();
            Some((name.to_owned(), (path != "not found").then(|| path.to_owned())))
        })
        .collect()
}

const DEP: &str = "int dep(void) { return 1; }\n";
const PLUGIN_CALLING_DEP: &str = "int dep(void);\nvoid* GetPjrtApi(void) { return (void*)(long)dep(); }\n";

/// A plugin in `dir` linked against `libgone.so`, which is then deleted.
fn plugin_whose_library_is_gone(dir: &Path) -> PathBuf {
    let lib = build(dir, "libgone.so", DEP, &[]);
    let plugin = build(dir, "plugin.so", PLUGIN_CALLING_DEP, &["-L", dir.to_str().unwrap(), "-lgone"]);
    std::fs::remove_file(lib).unwrap();
    plugin
}

#[test]
fn a_missing_library_is_named_with_its_search_and_fails() {
    if !cc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plugin = plugin_whose_library_is_gone(dir.path());

    let d = doctor(&plugin, None, &[]);
    assert_eq!(d.code, Some(2), "{:#}\n{}", d.json, d.stderr);
    let f = d.finding("library libgone.so");
    assert_eq!(f["status"], "fail");
    assert!(f["why"].as_str().unwrap().contains("DT_NEEDED"), "{f}");
    assert_eq!(d.library("libgone.so")["path"], Value::Null);
    // The real loader agrees, and so does the load in the child.
    assert!(ldd(&plugin, None).contains(&("libgone.so".to_owned(), None)));
    let load = d.finding("load");
    assert_eq!(load["status"], "fail");
    assert!(load["why"].as_str().unwrap().contains("libgone.so: cannot open shared object file"), "{load}");
    assert_eq!(d.json["status"], "fail");
}

#[test]
fn a_symbol_version_newer_than_this_libc_fails_with_the_newest_here() {
    if !cc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A stand-in libc.so.6 that defines GLIBC_2.99, linked against so the
    // plugin requires that version of libc.so.6; at run time the real libc
    // is found, which does not define it.
    let stub_dir = dir.path().join("stub");
    std::fs::create_dir(&stub_dir).unwrap();
    let map = dir.path().join("future.map");
    std::fs::write(&map, "GLIBC_2.99 { global: glibc_from_the_future; local: *; };\n").unwrap();
    let stub = build(
        &stub_dir,
        "libc.so.6",
        "int glibc_from_the_future(void) { return 0; }\n",
        &["-nostdlib", "-Wl,-soname,libc.so.6", &format!("-Wl,--version-script={}", map.display())],
    );
    let plugin = build(
        dir.path(),
        "plugin.so",
        "int glibc_from_the_future(void);\nvoid* GetPjrtApi(void) { return (void*)(long)glibc_from_the_future(); }\n",
        &[stub.to_str().unwrap()],
    );

    let d = doctor(&plugin, None, &[]);
    assert_eq!(d.code, Some(2), "{:#}\n{}", d.json, d.stderr);
    let f = d.finding("symbol version GLIBC_2.99");
    assert_eq!(f["status"], "fail");
    let why = f["why"].as_str().unwrap();
    assert!(why.contains("glibc_from_the_future") && why.contains("libc.so.6"), "{why}");
    // The newest GLIBC_ version of the libc found here, as its own
    // version definitions say (not a table).
    let newest = d.json["symbols"]["missing_versions"][0]["newest_here"].as_str().unwrap().to_owned();
    assert!(newest.starts_with("GLIBC_2."), "{newest}");
    assert!(why.contains(&newest));
    let load = d.finding("load");
    assert!(load["why"].as_str().unwrap().contains("GLIBC_2.99' not found"), "the real loader refuses it too: {load}");
}

/// Three copies of libdep.so: in a/ (the RPATH), b/ (LD_LIBRARY_PATH) and
/// c/ (the RUNPATH); which one each plugin gets is the loader's precedence.
#[test]
fn rpath_beats_ld_library_path_beats_runpath_and_origin_is_the_plugins_directory() {
    if !cc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["a", "b", "c", "lib"] {
        std::fs::create_dir(root.join(sub)).unwrap();
    }
    for sub in ["a", "b", "c"] {
        build(&root.join(sub), "libdep.so", DEP, &[]);
    }
    let link = ["-L", root.join("a").to_str().unwrap(), "-ldep"].map(str::to_owned);
    let with = |extra: &[&str]| -> Vec<String> { link.iter().cloned().chain(extra.iter().map(|s| s.to_string())).collect() };
    let rpath =
        build(&root.join("lib"), "rpath.so", PLUGIN_CALLING_DEP, &to_refs(&with(&["-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/../a"])));
    let runpath =
        build(&root.join("lib"), "runpath.so", PLUGIN_CALLING_DEP, &to_refs(&with(&["-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/../c"])));
    let b = root.join("b").display().to_string();

    let cases: [(&Path, Option<&str>, &str); 4] =
        [(&rpath, Some(b.as_str()), "a"), (&rpath, None, "a"), (&runpath, Some(b.as_str()), "b"), (&runpath, None, "c")];
    for (plugin, llp, expected) in cases {
        let d = doctor(plugin, llp, &["--no-load"]);
        let got = d.library("libdep.so")["path"].as_str().unwrap_or_else(|| panic!("libdep.so not found: {:#}", d.json)).to_owned();
        let want = root.join(expected).join("libdep.so");
        assert_eq!(
            std::fs::canonicalize(&got).unwrap(),
            std::fs::canonicalize(&want).unwrap(),
            "{} with LD_LIBRARY_PATH={llp:?}",
            plugin.display()
        );
        // Exactly the path glibc's loader prints.
        let real = ldd(plugin, llp);
        let real = real.iter().find(|(n, _)| n == "libdep.so").and_then(|(_, p)| p.clone()).unwrap();
        assert_eq!(got, real, "{} with LD_LIBRARY_PATH={llp:?}", plugin.display());
        assert_eq!(d.json["status"], "ok", "{:#}", d.json["findings"]);
    }
}

/// DT_RPATH reaches the dependencies of dependencies (the loader walks the
/// chain of objects that loaded them); DT_RUNPATH only serves its own
/// object's direct needs.
#[test]
fn rpath_serves_the_whole_loading_chain_runpath_only_its_own_object() {
    if !cc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("deps")).unwrap();
    let deps = root.join("deps");
    build(&deps, "libleaf.so", "int leaf(void) { return 2; }\n", &[]);
    // libmid needs libleaf but has no search path of its own.
    build(&deps, "libmid.so", "int leaf(void);\nint dep(void) { return leaf(); }\n", &["-L", deps.to_str().unwrap(), "-lleaf"]);
    let link = |tags: &str| {
        vec!["-L".to_owned(), deps.display().to_string(), "-lmid".to_owned(), tags.to_owned(), "-Wl,-rpath,$ORIGIN/deps".to_owned()]
    };
    let rpath = build(root, "rpath.so", PLUGIN_CALLING_DEP, &to_refs(&link("-Wl,--disable-new-dtags")));
    let runpath = build(root, "runpath.so", PLUGIN_CALLING_DEP, &to_refs(&link("-Wl,--enable-new-dtags")));

    let d = doctor(&rpath, None, &["--no-load"]);
    assert!(d.library("libleaf.so")["path"].as_str().is_some(), "RPATH of the plugin finds its grandchild: {:#}", d.json["libraries"]);
    assert!(d.library("libleaf.so")["via"].as_str().unwrap().starts_with("RPATH of rpath.so"));
    assert_eq!(d.json["status"], "ok");

    let d = doctor(&runpath, None, &["--no-load"]);
    assert_eq!(d.library("libleaf.so")["path"], Value::Null, "RUNPATH does not reach libmid's needs");
    assert_eq!(d.finding("library libleaf.so")["status"], "fail");
    assert_eq!(d.library("libleaf.so")["requested_by"], "libmid.so");
    for plugin in [&rpath, &runpath] {
        let ours = doctor(plugin, None, &["--no-load"]);
        for (name, path) in ldd(plugin, None) {
            assert_eq!(ours.library(&name)["path"].as_str(), path.as_deref(), "{name} of {}", plugin.display());
        }
    }
}

#[test]
fn a_constructor_that_executes_ud2_is_a_named_sigill() {
    if !cc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plugin = build(
        dir.path(),
        "plugin.so",
        "__attribute__((constructor)) static void boom(void) { __asm__ volatile(\"ud2\"); }\nvoid* GetPjrtApi(void) { return 0; }\n",
        &[],
    );
    let d = doctor(&plugin, None, &[]);
    assert_eq!(d.code, Some(2), "{:#}\n{}", d.json, d.stderr);
    // Without loading it, nothing is wrong: the static part passes.
    for check in ["elf", "libraries", "symbols", "cpu"] {
        assert_eq!(d.finding(check)["status"], "ok", "{check}: {:#}", d.finding(check));
    }
    let load = d.finding("load");
    assert_eq!(load["status"], "fail");
    let why = load["why"].as_str().unwrap();
    assert!(why.contains("SIGILL (signal 4)") && why.contains("loading the plugin") && why.contains("illegal instruction"), "{why}");
    assert_eq!(d.json["load"]["signal"], 4);
}

#[test]
fn a_plugin_built_for_aarch64_fails_at_the_elf_header_and_is_not_loaded() {
    if !cc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plugin = build(dir.path(), "plugin.so", "void* GetPjrtApi(void) { return 0; }\n", &[]);
    // e_machine (offset 18, little-endian) = EM_AARCH64 (183).
    let mut bytes = std::fs::read(&plugin).unwrap();
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(&plugin, bytes).unwrap();

    let d = doctor(&plugin, None, &[]);
    assert_eq!(d.code, Some(2));
    let elf = d.finding("elf");
    assert_eq!(elf["status"], "fail");
    assert!(elf["why"].as_str().unwrap().contains("built for aarch64"), "{elf}");
    assert_eq!(d.json["load"], Value::Null, "a plugin no process here can map is not loaded");
    assert_eq!(d.json["findings"].as_array().unwrap().len(), 1);
}

#[test]
fn doctor_errors_are_exit_1_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["doctor", "/nonexistent/plugin.so"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let dir = tempfile::tempdir().unwrap();
    let not_elf = dir.path().join("plugin.so");
    std::fs::write(&not_elf, "#!/bin/sh\n").unwrap();
    let d = doctor(&not_elf, None, &[]);
    assert_eq!(d.code, Some(2));
    assert!(d.finding("elf")["why"].as_str().unwrap().contains("not an ELF file"));
}

fn to_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `smoke` and `conform` say why a plugin does not load, as the doctor
/// finds it, instead of only the loader's words (which still follow).
#[test]
fn smoke_and_conform_carry_the_diagnosis_of_a_plugin_that_does_not_load() {
    if !cc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plugin = plugin_whose_library_is_gone(dir.path());

    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("smoke").arg(&plugin).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = report["error"].as_str().unwrap();
    assert!(error.starts_with("`cargo xtask doctor` finds: not found here: libgone.so"), "{error}");
    assert!(error.contains("raw error:") && error.contains("libgone.so: cannot open shared object file"), "{error}");

    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("conform").arg(&plugin).arg("--json").output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let load = report["checks"].as_array().unwrap().iter().find(|c| c["id"] == "api.load").unwrap();
    assert_eq!(load["status"], "FAIL");
    let detail = load["detail"].as_str().unwrap();
    assert!(detail.contains("`cargo xtask doctor` finds: not found here: libgone.so"), "{detail}");
}

/// A hostile plugin: every byte of its headers, section table and dynamic
/// section mutated in turn, and the file cut short at many lengths. The
/// static diagnosis must give findings, never panic.
#[test]
fn mangled_plugins_are_diagnosed_without_panicking() {
    if !cc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plugin = build(dir.path(), "plugin.so", PLUGIN_CALLING_DEP, &["-L", dir.path().to_str().unwrap()]);
    let original = std::fs::read(&plugin).unwrap();
    let env = xtask::plugin::ldso::Environment::current();
    let options = xtask::plugin::diagnosis::Options::default();
    let target = dir.path().join("mangled.so");
    // A fixed pseudo-random walk (xorshift): the same mutations every run.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let interesting = [0..64usize, original.len().saturating_sub(4096)..original.len()];
    for round in 0..400 {
        let mut bytes = original.clone();
        if round % 8 == 0 {
            bytes.truncate((next() as usize) % original.len());
        } else {
            for _ in 0..4 {
                let range = &interesting[(next() % 2) as usize];
                let at = range.start + (next() as usize) % (range.end - range.start).max(1);
                if at < bytes.len() {
                    bytes[at] = next() as u8;
                }
            }
        }
        std::fs::write(&target, &bytes).unwrap();
        let d = xtask::plugin::diagnosis::diagnose_in(&target, &options, &env);
        assert!(!d.findings.is_empty(), "round {round}: no finding");
    }
}

/// 300 functions that shift by a variable amount and count leading zeros,
/// the things a compiler told the CPU has BMI2 and LZCNT emits as SHLX and
/// LZCNT, and otherwise as SHL by CL and BSR. `dispatched` adds two more
/// built for AVX2+BMI2 only (`target` attribute), as a library of kernels
/// picked by CPUID would.
fn isa_source(dispatched: bool) -> String {
    let mut c = String::new();
    for i in 0..300 {
        c.push_str(&format!(
            "unsigned f{i}(unsigned x, unsigned n) {{ return (x << (n & 31)) ^ (unsigned)__builtin_clz(x | {i}u + 1u); }}\n"
        ));
    }
    if dispatched {
        for i in 0..2 {
            c.push_str(&format!(
                "__attribute__((target(\"avx2,bmi2,lzcnt\"))) unsigned k{i}(unsigned x, unsigned n) {{ return (x >> (n & 31)) + (unsigned)__builtin_clz(x | 3u); }}\n"
            ));
        }
    }
    c.push_str("void* GetPjrtApi(void) { return 0; }\n");
    c
}

/// This CPU's flags less some: the CPU the verdict is about.
fn cpu_without(missing: &[&str]) -> std::collections::HashSet<String> {
    let mut flags = xtask::plugin::isa::cpu_flags().expect("/proc/cpuinfo");
    for m in missing {
        flags.remove(*m);
    }
    flags
}

#[test]
fn code_compiled_for_x86_64_v3_fails_on_a_cpu_without_bmi2_and_avx2() {
    if !cc_available() {
        return;
    }
    use xtask::plugin::isa::{self, Confidence, Evidence, Role};
    let dir = tempfile::tempdir().unwrap();
    let v3 = build(dir.path(), "v3.so", &isa_source(false), &["-O2", "-march=x86-64-v3"]);
    let object = xtask::plugin::ldso::ObjectFile::open(&v3).unwrap();
    let old_cpu = cpu_without(&["avx2", "bmi2", "abm", "fma", "f16c", "movbe"]);
    let r = isa::measure(&object, Some(&old_cpu)).unwrap();
    assert_eq!(r.method, "eh_frame_hdr");
    assert!(r.functions_sampled >= 300, "{}", r.functions_sampled);
    assert!(r.bmi2_vs_shift_by_cl.new_form >= 250 && r.bmi2_vs_shift_by_cl.old_form == 0, "{:?}", r.bmi2_vs_shift_by_cl);
    assert_eq!(r.compiled_for, "x86-64-v3");
    let bmi2 = r.uses.iter().find(|u| u.extension == "BMI2").unwrap();
    assert_eq!((bmi2.role, bmi2.evidence), (Role::Baseline, Evidence::Witness));
    assert!(r.missing_baseline.contains(&"BMI2") && r.missing_baseline.contains(&"LZCNT"), "{:?}", r.missing_baseline);
    assert_eq!(r.confidence, Confidence::High);
    // On this CPU (which has them) nothing is missing.
    let here = isa::measure(&object, isa::cpu_flags().as_ref()).unwrap();
    if isa::cpu_flags().unwrap().contains("bmi2") {
        assert!(here.missing_baseline.is_empty(), "{:?}", here.missing_baseline);
    }
}

#[test]
fn kernels_chosen_at_run_time_are_not_a_requirement() {
    if !cc_available() {
        return;
    }
    use xtask::plugin::isa::{self, Role};
    let dir = tempfile::tempdir().unwrap();
    let plain = build(dir.path(), "plain.so", &isa_source(true), &["-O2"]);
    let object = xtask::plugin::ldso::ObjectFile::open(&plain).unwrap();
    let old_cpu = cpu_without(&["avx2", "bmi2", "abm"]);
    let r = isa::measure(&object, Some(&old_cpu)).unwrap();
    assert!(r.bmi2_vs_shift_by_cl.old_form >= 250 && r.bmi2_vs_shift_by_cl.new_form <= 2, "{:?}", r.bmi2_vs_shift_by_cl);
    assert_eq!(r.compiled_for, "plain x86-64");
    let bmi2 = r.uses.iter().find(|u| u.extension == "BMI2").expect("the two kernels use BMI2");
    assert_eq!(bmi2.role, Role::Dispatched);
    assert!(r.missing_baseline.is_empty() && r.missing_unclear.is_empty(), "{r:#?}");
    assert!(r.missing_dispatched.contains(&"BMI2"), "{:?}", r.missing_dispatched);
}

/// Names in the binary's strings are a guess: a library that does not exist
/// anywhere is reported as maybe opened (a warning), and a GPU library named
/// by what does not look like a GPU plugin only warns too.
#[test]
fn library_names_in_strings_are_guesses_that_only_warn() {
    if !cc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plugin = build(
        dir.path(),
        "plugin.so",
        "const char* names[] = { \"libnowhere_to_be_found.so.7\", \"libcudart.so.12\", \"libz.so.1\" };\n\
         void* GetPjrtApi(void) { return (void*)names; }\n",
        &[],
    );
    let d = doctor(&plugin, None, &["--no-load"]);
    let unknown = d.finding("library libnowhere_to_be_found.so.7");
    assert_eq!(unknown["status"], "warn");
    assert!(unknown["why"].as_str().unwrap().contains("a guess from the binary's strings"), "{unknown}");
    assert_eq!(d.finding("library libcudart.so.12")["status"], "warn", "no CUDA code, no XLA stub: not a CUDA plugin");
    assert_eq!(d.json["gpu"]["kind"], Value::Null);
    assert_eq!(d.code, Some(0));
    // A name that is there resolves like any other.
    if d.library("libz.so.1")["path"].is_string() {
        assert!(d.library("libz.so.1")["reason"]["evidence"].as_str().unwrap().contains("libz.so.1"));
    }
}

/// A library of the right name but for another machine, first on the
/// search path: glibc skips it and goes on; so does the model, and the
/// finding says which file was skipped when nothing else is found.
#[test]
fn a_library_for_another_machine_is_skipped_and_the_search_goes_on() {
    if !cc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["first", "second"] {
        std::fs::create_dir(root.join(sub)).unwrap();
    }
    let good = build(&root.join("second"), "libdep.so", DEP, &[]);
    let mut bytes = std::fs::read(&good).unwrap();
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(root.join("first").join("libdep.so"), &bytes).unwrap();
    let plugin = build(
        root,
        "plugin.so",
        PLUGIN_CALLING_DEP,
        &["-L", root.join("second").to_str().unwrap(), "-ldep", "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/first:$ORIGIN/second"],
    );
    let d = doctor(&plugin, None, &["--no-load"]);
    let lib = d.library("libdep.so");
    assert!(lib["path"].as_str().unwrap().ends_with("second/libdep.so"), "{lib}");
    assert_eq!(lib["path"].as_str(), ldd(&plugin, None).iter().find(|(n, _)| n == "libdep.so").and_then(|(_, p)| p.as_deref()));
    assert!(lib["rejected"][0].as_str().unwrap().contains("built for aarch64"), "{lib}");

    // Only the wrong one left: not found, and the finding names it.
    std::fs::remove_file(&good).unwrap();
    let d = doctor(&plugin, None, &["--no-load"]);
    let f = d.finding("library libdep.so");
    assert_eq!(f["status"], "fail");
    assert!(f["why"].as_str().unwrap().contains("skipped:") && f["why"].as_str().unwrap().contains("built for aarch64"), "{f}");
}

/// A C source whose read-only data holds `strings`, as a library's does.
fn with_strings(strings: &[&str], body: &str) -> String {
    let list: Vec<String> = strings.iter().map(|s| format!("{s:?}")).collect();
    format!(
        "const char* const names[] = {{ {} }};\nconst char* const* strings_of_this_library(void) {{ return names; }}\n{body}",
        list.join(", ")
    )
}

/// A CUDA plugin laid out as pip lays out NVIDIA's wheels (the way
/// `prebuilt fetch NAME --with-runtime` does), with stand-ins for cuDNN and
/// CUPTI that carry the strings the real ones do: cuDNN names its
/// sub-libraries bare (`libcudnn_adv.so`) and appends its major (`%s.%d`);
/// CUPTI compares `libcudart.so` with the modules on a stack and names
/// graphics libraries for tracing other APIs. Returns (site, plugin).
fn cuda_site(root: &Path) -> (PathBuf, PathBuf) {
    let site = root.join("site");
    let dir = |rel: &str| {
        let d = site.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let lib = |rel: &str, soname: &str, source: &str, extra: &[&str]| {
        let mut args = vec![format!("-Wl,-soname,{soname}")];
        args.extend(extra.iter().map(|s| s.to_string()));
        build(&dir(rel), soname, source, &to_refs(&args))
    };
    lib("nvidia/cuda_runtime/lib", "libcudart.so.12", "int cudart(void) { return 12; }\n", &[]);
    let origin = ["-Wl,--disable-new-dtags,-rpath,$ORIGIN"];
    lib("nvidia/cudnn/lib", "libcudnn.so.9", &with_strings(&["libcudnn_adv.so", "libcudnn_ops.so", "%s.%d", "%s.%d.%d"], ""), &origin);
    lib("nvidia/cudnn/lib", "libcudnn_adv.so.9", "int adv(void) { return 9; }\n", &[]);
    // Its sub-library names another part bare, without `%s.%d`: only the
    // versioned soname is shipped beside it.
    lib("nvidia/cudnn/lib", "libcudnn_ops.so.9", &with_strings(&["libcudnn_engines_precompiled.so"], ""), &origin);
    lib("nvidia/cudnn/lib", "libcudnn_engines_precompiled.so.9", "int engines(void) { return 9; }\n", &[]);
    lib(
        "nvidia/cuda_cupti/lib",
        "libcupti.so.12",
        &with_strings(
            &[
                "libcupti.so",
                "libcudart.so",
                "libEGL_nvidia.so.0",
                "libOpenCL.so.1",
                "libnvperf_host.so",
                "libvendor_thing.so.4",
                "libcuda.so.1",
            ],
            "",
        ),
        &origin,
    );
    lib("nvidia/cuda_cupti/lib", "libnvperf_host.so", "int perf(void) { return 0; }\n", &[]);
    let plugin = build(
        &dir("jax_plugins/xla_cuda12"),
        "xla_cuda_plugin.so",
        &with_strings(
            &["xla/tsl/cuda/cuda_stub.cc", "xla/tsl/cuda/cudart_stub.cc", "xla/tsl/cuda/cudnn_stub.cc", "xla/tsl/cuda/cupti_stub.cc"],
            "void* GetPjrtApi(void) { return (void*)strings_of_this_library(); }\n",
        ),
        &["-Wl,--disable-new-dtags,-rpath,$ORIGIN/../../nvidia/cuda_runtime/lib:$ORIGIN/../../nvidia/cudnn/lib:$ORIGIN/../../nvidia/cuda_cupti/lib"],
    );
    (site, plugin)
}

/// Issue 20: beside its runtime, a CUDA plugin is missing nothing but the
/// driver. A library name in a dependency's strings is a requirement only
/// where that library credibly opens it for its own needs (a part of its
/// own package, found by its versioned soname; the driver); the rest are
/// listed, never failed or warned on. The doctor of 45b5df6 failed on
/// `libcudnn_adv.so`, `libcudnn_ops.so` and `libcudart.so` here, and warned
/// on every graphics library CUPTI names.
#[test]
fn a_dependencys_strings_are_not_its_requirements() {
    if !cc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (site, plugin) = cuda_site(dir.path());
    let d = doctor(&plugin, None, &["--no-load"]);
    assert_eq!(d.json["gpu"]["kind"], "cuda", "{:#}", d.json["gpu"]);
    assert_eq!(d.json["gpu"]["cuda_major"], 12);
    let findings = d.json["findings"].as_array().unwrap();
    // Nothing but the driver (missing here, or whatever gpu.* finds where
    // there is one) fails or warns.
    let unclean: Vec<&Value> = findings
        .iter()
        .filter(|f| f["status"] != "ok" && f["check"] != "library libcuda.so.1" && !f["check"].as_str().unwrap().starts_with("gpu."))
        .collect();
    assert!(unclean.is_empty(), "{unclean:#?}");
    let cudnn = site.join("nvidia/cudnn/lib");
    for (name, how) in
        [("libcudnn_adv.so.9", "`%s.%d`"), ("libcudnn_ops.so.9", "`%s.%d`"), ("libcudnn_engines_precompiled.so.9", "beside it")]
    {
        let lib = d.library(name);
        let path = std::fs::canonicalize(lib["path"].as_str().unwrap_or_else(|| panic!("{name} not found: {lib}"))).unwrap();
        assert_eq!(path, std::fs::canonicalize(cudnn.join(name)).unwrap());
        let evidence = lib["reason"]["evidence"].as_str().unwrap();
        assert!(evidence.contains(how) && evidence.contains("a part of its own package"), "{evidence}");
    }
    assert!(d.library("libnvperf_host.so")["path"].is_string());
    // CUPTI's names are listed as what they are, not looked for as needs.
    let mentions = d.json["mentions"].as_array().unwrap();
    let mention = |name: &str| mentions.iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("{name} not in {mentions:#?}"));
    for name in ["libcudart.so", "libEGL_nvidia.so.0", "libOpenCL.so.1", "libvendor_thing.so.4"] {
        assert_eq!(mention(name)["named_by"][0], "libcupti.so.12");
        assert!(!d.json["libraries"].as_array().unwrap().iter().any(|l| l["name"] == name), "{name} taken as needed");
    }
    assert!(mention("libEGL_nvidia.so.0")["feature"].as_str().unwrap().contains("CUPTI's tracing"));
    assert_eq!(mention("libvendor_thing.so.4")["feature"], Value::Null);
    assert_eq!(d.finding("libraries.mentioned")["status"], "ok");
    // libcuda.so.1 in CUPTI's strings is a requirement: the driver.
    if d.library("libcuda.so.1")["path"].is_null() {
        assert_eq!(d.finding("library libcuda.so.1")["status"], "fail");
    }
    assert_eq!(d.finding("libraries")["status"], "ok");

    // A part of its own package that is not there fails: the rule that
    // keeps mentions quiet still sees what a library does need.
    std::fs::remove_file(cudnn.join("libcudnn_adv.so.9")).unwrap();
    let d = doctor(&plugin, None, &["--no-load"]);
    let adv = d.finding("library libcudnn_adv.so.9");
    assert_eq!(adv["status"], "fail", "{adv}");
    assert!(adv["why"].as_str().unwrap().contains("libcudnn.so.9 names `libcudnn_adv.so`"), "{adv}");
    assert!(adv["todo"].as_str().unwrap().contains("nvidia-cudnn-cu12"), "{adv}");
}
