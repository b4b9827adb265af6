//! The portability check against the real dynamic loader, on crafted ELF
//! files.
//!
//! `release` promises that a plugin it passes loads on every system of the
//! floor. The floor system is not here, but its loader is glibc's: this
//! test makes the floor *this machine* (a floor whose caps are this glibc's,
//! libstdc++'s, libgcc_s's and zlib's newest versions) and checks the
//! promise against this machine's `ld.so`, on plugins crafted to hit every
//! rule: stub libraries with the SONAMEs of system libraries
//! (`libc.so.6`...) and version scripts defining real, skipped, future,
//! private and foreign version nodes; plugins requiring any mix of them;
//! bundled copies (stubs, the system's own libc, a library missing a
//! version, one with no versions at all); absolute DT_NEEDED paths;
//! foreign search paths. The cases are drawn by proptest (which shrinks a
//! failure to a minimal one).
//!
//! The oracle: the archive's `lib/` copied elsewhere (the build directory
//! is gone, as on a user's machine; absolute paths point nowhere), then
//! `dlopen(RTLD_LAZY | RTLD_LOCAL)` by a C host and by a C++ host (which
//! has libstdc++ and libgcc_s loaded before the plugin). The property: a
//! plugin the check passes loads in both. Where the check refuses and the
//! loader loads, the check is stricter than this machine (a bundled
//! libstdc++ a C host would use; GLIBC_PRIVATE; a path that happens to
//! exist): those are counted and printed, not failures.
//!
//! A second property test flips bytes of a real plugin's dynamic section,
//! version tables and string table: reading, rewriting the search path and
//! judging never panic, and a rewrite that succeeds reads back as intended.
//!
//! PJRTPKGS_CORPUS_CASES sets the number of crafted cases (default 40).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use proptest::prelude::*;
use support::require_command;
use xtask::glibc_floor::Floor;
use xtask::plugin::elf::{self, ElfInfo};
use xtask::release::portability::{self, Neighbor};

/// A stub library: the SONAME it claims, and the version nodes it defines
/// (each with one function `pf_<node>`).
struct Stub {
    file: &'static str,
    soname: &'static str,
    nodes: &'static [&'static str],
}

const STUBS: &[Stub] = &[
    Stub {
        file: "pfc",
        soname: "libc.so.6",
        nodes: &[
            "GLIBC_2.2.5",
            "GLIBC_2.17",
            "GLIBC_2.19",
            "GLIBC_2.27",
            "GLIBC_2.34",
            "GLIBC_2.36",
            "GLIBC_2.99",
            "GLIBC_PRIVATE",
            "FOO_1.0",
        ],
    },
    Stub { file: "pfm", soname: "libm.so.6", nodes: &["GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.27", "GLIBC_2.29"] },
    Stub {
        file: "pfcxx",
        soname: "libstdc++.so.6",
        nodes: &["GLIBCXX_3.4", "GLIBCXX_3.4.24", "GLIBCXX_3.4.30", "GLIBCXX_3.4.99", "CXXABI_1.3.11", "CXXABI_1.3.99"],
    },
    Stub { file: "pfgcc", soname: "libgcc_s.so.1", nodes: &["GCC_3.0", "GCC_7.0.0", "GCC_12.0.0", "GCC_99.0"] },
    Stub { file: "pfz", soname: "libz.so.1", nodes: &["ZLIB_1.2.9", "ZLIB_1.2.12", "ZLIB_1.2.99"] },
    Stub { file: "pfextra", soname: "libextra.so.1", nodes: &["EXTRA_1.0", "EXTRA_2.0"] },
    // Linked by an absolute SONAME: the loader opens that path.
    Stub { file: "pfabs", soname: "/nonexistent-pjrtpkgs-build/lib/libabs.so.1", nodes: &["ABS_1.0"] },
];

/// What a case bundles for a SONAME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copy {
    Stub,
    /// libc.so.6: this machine's own libc.
    System,
    /// libextra: a variant that lacks EXTRA_2.0.
    Short,
    /// libextra: a variant without version definitions.
    Unversioned,
}

#[derive(Debug, Clone)]
struct Case {
    /// (stub index, node index) the plugin calls, so requires.
    refs: Vec<(usize, usize)>,
    /// RUNPATH of the plugin.
    runpath: Option<&'static str>,
    /// (stub index, what) shipped in lib/ under its SONAME.
    bundle: Vec<(usize, Copy)>,
}

fn case() -> impl Strategy<Value = Case> {
    let refs = proptest::collection::vec((0..STUBS.len()).prop_flat_map(|s| (Just(s), 0..STUBS[s].nodes.len())), 0..5);
    let runpath = prop_oneof![4 => Just(Some("$ORIGIN")), 2 => Just(None), 1 => Just(Some("/nonexistent-pjrtpkgs-build/lib")), 1 => Just(Some("$ORIGIN/../other"))];
    let copy = |s: usize| match STUBS[s].soname {
        "libc.so.6" => prop_oneof![Just(Copy::Stub), Just(Copy::System)].boxed(),
        "libextra.so.1" => prop_oneof![2 => Just(Copy::Stub), 1 => Just(Copy::Short), 1 => Just(Copy::Unversioned)].boxed(),
        _ => Just(Copy::Stub).boxed(),
    };
    let bundle = proptest::collection::vec((0..STUBS.len() - 1).prop_flat_map(move |s| (Just(s), copy(s))), 0..3);
    (refs, runpath, bundle).prop_map(|(mut refs, runpath, mut bundle)| {
        refs.sort();
        refs.dedup();
        bundle.sort_by_key(|b| b.0);
        bundle.dedup_by_key(|b| b.0);
        // A plugin calling libextra usually ships it (else it is a missing library).
        if refs.iter().any(|r| STUBS[r.0].soname == "libextra.so.1")
            && bundle.iter().all(|b| STUBS[b.0].soname != "libextra.so.1")
            && refs.len() % 2 == 0
        {
            let extra = STUBS.iter().position(|s| s.soname == "libextra.so.1").unwrap();
            bundle.push((extra, Copy::Stub));
        }
        Case { refs, runpath, bundle }
    })
}

/// The function a stub defines for `node` (unique across stubs: two stubs
/// may define the same node).
fn symbol(stub: &str, node: &str) -> String {
    format!("{stub}_{}", node.replace(['.', '+', '-'], "_"))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The stubs, the two host programs and this machine's floor.
struct Lab {
    dir: tempfile::TempDir,
    floor: Floor,
    system_libc: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::Builder::new().prefix("loader-corpus-").tempdir().unwrap();
        let stubs = dir.path().join("stubs");
        std::fs::create_dir_all(&stubs).unwrap();
        // `name`: the file; `of`: the stub whose functions it defines (all of
        // them); `nodes`: the versions it defines (the functions of nodes it
        // lacks go into its first node, or are unversioned).
        let build = |name: &str, of: &Stub, nodes: &[&str]| {
            let src: String = of.nodes.iter().map(|n| format!("void {}(void) {{}}\n", symbol(of.file, n))).collect();
            let c = stubs.join(format!("{name}.c"));
            std::fs::write(&c, src).unwrap();
            let mut cmd = Command::new("cc");
            cmd.args(["-shared", "-fPIC", "-nostdlib", "-o"])
                .arg(stubs.join(format!("lib{name}.so")))
                .arg(&c)
                .arg(format!("-Wl,-soname,{}", of.soname));
            if !nodes.is_empty() {
                // Each node its own; the last hides everything else.
                let mut map = String::new();
                for (i, n) in nodes.iter().enumerate() {
                    let mut globals = symbol(of.file, n);
                    if i == 0 {
                        for missing in of.nodes.iter().filter(|m| !nodes.contains(m)) {
                            globals.push_str(&format!("; {}", symbol(of.file, missing)));
                        }
                    }
                    let local = if i + 1 == nodes.len() { " local: *;" } else { "" };
                    map.push_str(&format!("{n} {{ global: {globals};{local} }};\n"));
                }
                let map_file = stubs.join(format!("{name}.map"));
                std::fs::write(&map_file, map).unwrap();
                cmd.arg(format!("-Wl,--version-script={}", map_file.display()));
            }
            run(&mut cmd);
        };
        for s in STUBS {
            build(s.file, s, s.nodes);
        }
        let extra = STUBS.iter().find(|s| s.soname == "libextra.so.1").unwrap();
        build("pfextra-short", extra, &["EXTRA_1.0"]);
        build("pfextra-unversioned", extra, &[]);

        // The hosts: dlopen the plugin; a C++ one has libstdc++/libgcc_s loaded first.
        let host = "#include <dlfcn.h>\n#include <stdio.h>\nint main(int c, char** v) { void* h = dlopen(v[1], RTLD_LAZY | RTLD_LOCAL); \
                    if (!h) { printf(\"%s\\n\", dlerror()); return 1; } return 0; }\n";
        std::fs::write(dir.path().join("host.c"), host).unwrap();
        run(Command::new("cc").arg("-o").arg(dir.path().join("host-c")).arg(dir.path().join("host.c")).arg("-ldl"));
        let host_cxx = format!(
            "#include <string>\n#include <stdexcept>\nstd::string keep(\"libstdc++\");\n{}",
            host.replace("int main(", "int main_c(")
        )
            + "int main(int c, char** v) { try { if (c > 2) throw std::runtime_error(keep); } catch (...) {} return main_c(c, v); }\n";
        std::fs::write(dir.path().join("host.cc"), host_cxx).unwrap();
        run(Command::new("c++").arg("-o").arg(dir.path().join("host-cxx")).arg(dir.path().join("host.cc")).arg("-ldl"));

        let system_libc =
            PathBuf::from(String::from_utf8(Command::new("cc").arg("-print-file-name=libc.so.6").output().unwrap().stdout).unwrap().trim());
        Lab { floor: this_machine_floor(), system_libc: std::fs::canonicalize(system_libc).unwrap(), dir }
    }

    /// Builds the case's plugin and lib/, in a fresh directory: (lib dir, plugin).
    fn build(&self, n: usize, case: &Case) -> (PathBuf, PathBuf) {
        let work = self.dir.path().join(format!("case-{n}"));
        let build = work.join("build");
        std::fs::create_dir_all(&build).unwrap();
        let calls: String = case
            .refs
            .iter()
            .map(|(s, i)| {
                format!("extern void {0}(void);\nvoid call_{0}(void) {{ {0}(); }}\n", symbol(STUBS[*s].file, STUBS[*s].nodes[*i]))
            })
            .collect();
        let src = format!("{calls}\nstatic int api[8];\nvoid* GetPjrtApi(void) {{ return api; }}\n");
        std::fs::write(build.join("plugin.c"), src).unwrap();
        let mut cmd = Command::new("cc");
        cmd.args(["-shared", "-fPIC", "-o"])
            .arg(build.join("plugin.so"))
            .arg(build.join("plugin.c"))
            .arg("-L")
            .arg(self.dir.path().join("stubs"));
        let mut linked: Vec<usize> = case.refs.iter().map(|r| r.0).collect();
        linked.dedup();
        for s in linked {
            cmd.arg(format!("-l{}", STUBS[s].file));
        }
        if let Some(r) = case.runpath {
            cmd.arg(format!("-Wl,-rpath,{r}"));
        }
        run(&mut cmd);
        // The archive's lib/, elsewhere; the build directory goes away.
        let lib = work.join("extracted/lib");
        std::fs::create_dir_all(&lib).unwrap();
        let plugin = lib.join("pjrt_c_api_cpu_plugin.so");
        std::fs::copy(build.join("plugin.so"), &plugin).unwrap();
        for (s, copy) in &case.bundle {
            let from = match copy {
                Copy::System => self.system_libc.clone(),
                Copy::Short => self.dir.path().join("stubs/libpfextra-short.so"),
                Copy::Unversioned => self.dir.path().join("stubs/libpfextra-unversioned.so"),
                Copy::Stub => self.dir.path().join(format!("stubs/lib{}.so", STUBS[*s].file)),
            };
            std::fs::copy(from, lib.join(STUBS[*s].soname)).unwrap();
        }
        std::fs::remove_dir_all(&build).unwrap();
        (lib, plugin)
    }

    /// The check's verdict on the archive's lib/, as `release` judges it:
    /// every file, each beside the others. The problems, empty when it passes.
    fn judge(&self, lib: &Path, plugin: &Path) -> Vec<String> {
        let read = |p: &Path| elf::read(&std::fs::read(p).unwrap());
        let plugin_elf = match read(plugin) {
            Ok(e) => e,
            Err(e) => return vec![format!("{e:#}")],
        };
        let mut bundled: Vec<(String, ElfInfo)> = Vec::new();
        let mut problems = Vec::new();
        for entry in std::fs::read_dir(lib).unwrap() {
            let path = entry.unwrap().path();
            if path == plugin {
                continue;
            }
            match read(&path) {
                Ok(e) => bundled.push((path.file_name().unwrap().to_string_lossy().into_owned(), e)),
                Err(e) => problems.push(format!("{}: {e:#}", path.display())),
            }
        }
        let neighbors: Vec<Neighbor> = bundled.iter().map(|(name, e)| Neighbor { name, elf: Some(e) }).collect();
        problems.extend(portability::check(&plugin_elf, &self.floor, true, &neighbors, &[]).1);
        for (name, e) in &bundled {
            problems.extend(portability::check(e, &self.floor, false, &neighbors, &[]).1.into_iter().map(|p| format!("{name}: {p}")));
        }
        problems
    }

    /// Whether each host loads the plugin (its dlerror when not), from a
    /// directory that holds nothing, with no LD_LIBRARY_PATH.
    fn load(&self, plugin: &Path) -> [Result<(), String>; 2] {
        ["host-c", "host-cxx"].map(|host| {
            let out = Command::new(self.dir.path().join(host))
                .arg(plugin)
                .current_dir("/")
                .env_remove("LD_LIBRARY_PATH")
                .env_remove("LD_PRELOAD")
                .output()
                .unwrap();
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            }
        })
    }
}

/// A floor whose caps are this machine's newest versions, read from its
/// own libraries (Debian 12: glibc 2.36, GLIBCXX_3.4.30, CXXABI_1.3.13,
/// GCC_12.0.0, ZLIB_1.2.12).
fn this_machine_floor() -> Floor {
    let newest = |lib: &str, family: &str| -> &'static str {
        let path = String::from_utf8(Command::new("cc").arg(format!("-print-file-name={lib}")).output().unwrap().stdout).unwrap();
        let info = elf::read(&std::fs::read(std::fs::canonicalize(path.trim()).unwrap()).unwrap()).unwrap();
        let prefix = format!("{family}_");
        let best = info
            .defined_versions
            .iter()
            .filter_map(|v| v.strip_prefix(&prefix))
            .filter(|n| xtask::glibc_floor::parse_dotted(n).is_some())
            .max_by(|a, b| xtask::glibc_floor::compare_versions(a, b))
            .unwrap_or_else(|| panic!("{lib} defines no {family} version"))
            .to_owned();
        Box::leak(best.into_boxed_str())
    };
    let caps = vec![
        ("GLIBC", newest("libc.so.6", "GLIBC")),
        ("GLIBCXX", newest("libstdc++.so.6", "GLIBCXX")),
        ("CXXABI", newest("libstdc++.so.6", "CXXABI")),
        ("GCC", newest("libgcc_s.so.1", "GCC")),
        ("ZLIB", newest("libz.so.1", "ZLIB")),
    ];
    Floor { tag: "this-machine", caps: Box::leak(caps.into_boxed_slice()), named: &["TM_1", "FLOAT128"] }
}

fn cases() -> u32 {
    std::env::var("PJRTPKGS_CORPUS_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(40)
}

#[test]
fn a_plugin_the_check_passes_is_one_the_loader_loads() {
    if !require_command("cc")
        || !require_command("c++")
        || !support::require(
            "libz.so.1 (zlib1g)",
            Path::new("/lib/x86_64-linux-gnu/libz.so.1").exists() || Path::new("/usr/lib/x86_64-linux-gnu/libz.so.1").exists(),
        )
    {
        return;
    }
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("SKIP: the crafted corpus is x86_64 (its stubs mimic x86_64 glibc)");
        return;
    }
    let lab = Lab::new();
    let tally: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let count = |key: String| *tally.lock().unwrap().entry(key).or_default() += 1;
    let n = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(case in case())| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (lib, plugin) = lab.build(i, &case);
        let problems = lab.judge(&lib, &plugin);
        let [c, cxx] = lab.load(&plugin);
        let verdict = match (problems.is_empty(), &c, &cxx) {
            (true, Ok(()), Ok(())) => "passed, loads".to_owned(),
            (true, _, _) => "passed, DOES NOT LOAD".to_owned(),
            (false, Err(_), Err(_)) => "refused, fails to load".to_owned(),
            (false, Ok(()), Err(_)) => "refused, loads in a C host only".to_owned(),
            (false, Err(_), Ok(())) => "refused, loads in a C++ host only".to_owned(),
            (false, Ok(()), Ok(())) => format!("refused, loads here ({})", problems[0].split(':').next().unwrap_or("")),
        };
        count(verdict);
        prop_assert!(!problems.is_empty() || (c.is_ok() && cxx.is_ok()),
            "the check passes {case:?}, but the loader refuses it: C host {c:?}, C++ host {cxx:?}");
        let _ = std::fs::remove_dir_all(lib.parent().unwrap().parent().unwrap());
    });
    let tally = tally.into_inner().unwrap();
    eprintln!("{} crafted plugins, this machine's ld.so as the oracle:", tally.values().sum::<usize>());
    for (k, v) in &tally {
        eprintln!("  {v:5}  {k}");
    }
    // Not vacuous: both verdicts occur, and the loader does refuse some.
    assert!(tally.keys().any(|k| k.starts_with("passed")) && tally.keys().any(|k| k.starts_with("refused, fails")), "{tally:?}");
}

/// A small real plugin, built once.
fn sample_plugin(dir: &Path) -> Vec<u8> {
    let c = dir.join("sample.c");
    std::fs::write(
        &c,
        "#include <stdlib.h>\nstatic int api[8];\nvoid* GetPjrtApi(void) { return api; }\nchar* home(void) { return getenv(\"HOME\"); }\n",
    )
    .unwrap();
    let so = dir.join("sample.so");
    run(Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&c)
        .arg("-Wl,-rpath,/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x/lib"));
    std::fs::read(so).unwrap()
}

/// The byte ranges of the sections the loader model reads.
fn interesting_ranges(data: &[u8]) -> Vec<(usize, usize)> {
    use object::read::elf::{FileHeader as _, SectionHeader as _};
    let header = object::elf::FileHeader64::<object::Endianness>::parse(data).unwrap();
    let endian = header.endian().unwrap();
    let sections = header.sections(endian, data).unwrap();
    let mut ranges = vec![(0, 64)];
    for s in sections.iter() {
        let t = s.sh_type(endian);
        if [
            object::elf::SHT_DYNAMIC,
            object::elf::SHT_STRTAB,
            object::elf::SHT_GNU_VERNEED,
            object::elf::SHT_GNU_VERDEF,
            object::elf::SHT_GNU_VERSYM,
            object::elf::SHT_DYNSYM,
        ]
        .contains(&t)
        {
            let (o, n) = (s.sh_offset(endian) as usize, s.sh_size(endian) as usize);
            if n > 0 && o + n <= data.len() {
                ranges.push((o, o + n));
            }
        }
    }
    ranges
}

#[test]
fn mutated_dynamic_sections_never_panic_and_rewrites_read_back() {
    if !require_command("cc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sample = sample_plugin(dir.path());
    let ranges = interesting_ranges(&sample);
    let floor = Floor::named("manylinux_2_27").unwrap();
    let outcomes: Mutex<BTreeMap<&'static str, usize>> = Mutex::new(BTreeMap::new());
    let count = |k: &'static str| *outcomes.lock().unwrap().entry(k).or_default() += 1;
    let mutation = (0..ranges.len(), any::<u32>(), any::<u8>(), 1..4usize);
    let config = ProptestConfig { cases: cases() * 50, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(mutations in proptest::collection::vec(mutation, 1..6))| {
        let mut data = sample.clone();
        for (r, at, byte, len) in mutations {
            let (start, end) = ranges[r];
            let at = start + (at as usize % (end - start));
            for b in data.iter_mut().skip(at).take(len) {
                *b ^= byte | 1;
            }
        }
        let Ok(info) = elf::read(&data) else { count("not readable (refused)"); return Ok(()); };
        let _ = portability::check(&info, &floor, true, &[], &[]);
        match elf::set_search_path(&mut data, None) {
            Err(_) => count("read, rewrite refused"),
            Ok(_) => {
                let after = elf::read(&data);
                prop_assert!(after.is_ok(), "a rewritten file no longer reads");
                let after = after.unwrap();
                prop_assert_eq!(after.runpath, None);
                prop_assert_eq!(after.rpath, None);
                prop_assert_eq!(&after.needed, &info.needed);
                count("read, rewritten, reads back");
            }
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    eprintln!("{} mutated plugins: {outcomes:?}", outcomes.values().sum::<usize>());
    assert!(outcomes.len() >= 2, "{outcomes:?}");
}

/// The loader model's table of version nodes (x86_64) against this
/// machine's own libraries: every node the table lists exists here, and
/// every node here up to the newest the table knows of its family is in
/// the table (a newer machine has more, never fewer).
#[test]
fn the_node_table_matches_this_machines_libraries() {
    if !require_command("cc") || std::env::consts::ARCH != "x86_64" {
        return;
    }
    let mut checked = 0;
    for (arch, soname, nodes) in xtask::release::loader::NODES {
        if *arch != "x86_64" {
            continue;
        }
        let path = String::from_utf8(Command::new("cc").arg(format!("-print-file-name={soname}")).output().unwrap().stdout).unwrap();
        let Ok(path) = std::fs::canonicalize(path.trim()) else {
            eprintln!("{soname}: not on this machine");
            continue;
        };
        let here = elf::read(&std::fs::read(&path).unwrap()).unwrap().defined_versions;
        for node in *nodes {
            assert!(here.contains(&node.to_string()), "{soname}: the table lists {node}, which {} does not define", path.display());
        }
        let family = |v: &str| v.rsplit_once('_').map(|(f, _)| f.to_owned()).unwrap_or_default();
        for node in &here {
            let newest = nodes
                .iter()
                .filter(|n| family(n) == family(node))
                .filter_map(|n| n.rsplit_once('_').map(|(_, v)| v))
                .max_by(|a, b| xtask::glibc_floor::compare_versions(a, b));
            let number = node.rsplit_once('_').map(|(_, v)| v).unwrap_or("");
            let known = newest.is_some_and(|n| xtask::glibc_floor::compare_versions(number, n).is_le());
            assert!(!known || nodes.contains(&node.as_str()), "{soname}: {} defines {node}, missing from the table", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} libraries found");
}
