//! Why a plugin will not load or run on this machine, found without
//! loading it: its ELF against this host, every library it needs or opens
//! (resolved as the loader would, each missing one with its provider), the
//! symbol versions and symbols it needs, the CPU extensions its code was
//! compiled for, and the GPU it needs. Each finding is ok, warn or fail,
//! with one line of why and one of what to do.
//!
//! `doctor` prints this; `smoke` and `conform` put [`Diagnosis::explain`]
//! in place of the loader's raw message when a plugin does not load. The
//! only things run are `ld.so --help` (see [`super::ldso::host`]) and, when
//! the caller passes one, the driver query of [`Options::query_cuda_driver`]
//! (libcuda is the driver's code: the caller runs it in a child).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::dlopens;
use super::gpu::{self, cuda_driver::DriverReport, fatbin::Fit};
use super::isa::{self, Confidence, IsaReport, Role as IsaRole};
use super::ldso::{Closure, Environment, Ident, Reason, Resolver, Via};
use super::providers::{self, Provider, Role};
use super::symbols::{self, SymbolReport};

/// The verdict of one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One thing found: what was checked, the verdict, one line of why and
/// one of what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// `elf`, `library libcupti.so.12`, `symbols.versions`, `cpu`, ...
    pub check: String,
    pub status: Status,
    pub why: String,
    /// Empty when there is nothing to do.
    pub todo: String,
}

/// How one library name was resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Library {
    pub name: String,
    /// The object that asked for it.
    pub requested_by: String,
    pub reason: Reason,
    pub path: Option<PathBuf>,
    /// How it was found (RPATH of X, LD_LIBRARY_PATH, RUNPATH, cache, ...).
    pub via: Option<String>,
    /// Where it comes from; for missing libraries.
    pub provider: Option<Provider>,
    /// Files of that name skipped (wrong class, machine).
    pub rejected: Vec<String>,
    /// Directories searched, for missing libraries.
    pub searched: Vec<String>,
}

/// The GPU part.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Gpu {
    /// `cuda`, `rocm` or `tpu`; `None` for a CPU plugin.
    pub kind: Option<&'static str>,
    pub cuda_major: Option<u32>,
    /// How the CUDA major was learnt.
    pub cuda_major_from: Option<String>,
    pub code: gpu::DeviceCode,
    pub driver: Option<DriverReport>,
    /// The GPUs amdgpu's KFD lists (`None`: no KFD).
    pub amd_gpus: Option<Vec<String>>,
}

/// This machine, as far as the diagnosis is concerned.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub machine: String,
    pub cpu: Option<String>,
    pub loader: PathBuf,
    /// Where the loader's configuration came from.
    pub loader_config: String,
    pub ld_library_path: Option<String>,
}

/// Everything found.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub plugin: PathBuf,
    /// `ELF 64-bit LSB x86_64`.
    pub elf: Option<String>,
    pub host: Host,
    pub findings: Vec<Finding>,
    pub libraries: Vec<Library>,
    pub symbols: Option<SymbolReport>,
    pub isa: Option<IsaReport>,
    pub gpu: Gpu,
    /// Milliseconds the static part took.
    pub static_ms: f64,
}

/// Asks the libcuda at a path for its version and devices.
pub type DriverQuery<'a> = dyn Fn(&Path) -> anyhow::Result<DriverReport> + 'a;

/// What the caller knows about the plugin, and what it lets the diagnosis
/// do.
#[derive(Default)]
pub struct Options<'a> {
    /// Its name in pins.toml, when it was given by name.
    pub pinned_name: Option<String>,
    /// Its pinned backend (`cuda12`, `rocm7`, `cpu`, ...).
    pub backend: Option<String>,
    /// nixpkgs attribute sets from pins.toml ([cuda12] / [cuda13] / [rocm7]
    /// `nixpkgs_attribute`), by CUDA major and for ROCm.
    pub cuda_nixpkgs_sets: Vec<(u32, String)>,
    pub rocm_nixpkgs_set: Option<String>,
    /// Asks libcuda (at the path given) for its version and devices; run
    /// in a child by the caller. `None`: the driver is not asked.
    pub query_cuda_driver: Option<&'a DriverQuery<'a>>,
    /// Where amdgpu's KFD topology is (default: [`gpu::kfd::TOPOLOGY`]).
    pub kfd_topology: Option<PathBuf>,
}

impl Options<'_> {
    /// Options for a plugin, pinned as `pinned_name` when it is, with the
    /// nixpkgs attribute sets of pins.toml when there is a checkout (a
    /// plugin given by path outside one is diagnosed without them).
    pub fn from_pins(pinned_name: Option<&str>, backend: Option<&str>) -> Options<'static> {
        let pins = crate::project::pins_toml().ok().and_then(|p| crate::pinfile::Pins::load(&p).ok());
        let mut options =
            Options { pinned_name: pinned_name.map(str::to_owned), backend: backend.map(str::to_owned), ..Default::default() };
        if let Some(pins) = pins {
            if options.backend.is_none() {
                options.backend = pinned_name.and_then(|n| pins.prebuilt.get(n)).map(|p| p.backend.clone());
            }
            options.cuda_nixpkgs_sets = [(12, &pins.cuda12), (13, &pins.cuda13)]
                .into_iter()
                .filter_map(|(major, pin)| pin.as_ref().map(|p| (major, p.nixpkgs_attribute.clone())))
                .collect();
            options.rocm_nixpkgs_set = pins.rocm7.as_ref().map(|p| p.nixpkgs_attribute.clone());
        }
        options
    }
}

impl Diagnosis {
    /// The worst status of all findings.
    pub fn status(&self) -> Status {
        self.findings.iter().map(|f| f.status).max().unwrap_or(Status::Ok)
    }

    /// The failed findings as one message, for a verb whose plugin did not
    /// load or could not make a client: the libraries not found, with who
    /// provides them, then every other failure, then what to do first.
    /// `None` when the diagnosis found nothing wrong.
    pub fn explain(&self) -> Option<String> {
        let failures: Vec<&Finding> = self.findings.iter().filter(|f| f.status == Status::Fail).collect();
        // What to do first: what stops the load, then the CPU, then the GPU
        // driver, then the libraries opened later.
        let needed = |name: &str| self.libraries.iter().any(|l| l.name == name && l.reason == Reason::Needed);
        let rank = |f: &&Finding| match f.check.as_str() {
            "elf" => 0,
            c if c.strip_prefix("library ").is_some_and(needed) => 1,
            c if c.starts_with("symbol") => 2,
            "cpu" => 3,
            c if c.starts_with("gpu") || c == "tpu" => 4,
            _ => 5,
        };
        let first = failures.iter().copied().min_by_key(rank)?;
        let mut parts = Vec::new();
        let needs = self.needs();
        if !needs.is_empty() {
            parts.push(format!("not found here: {}", needs.join(", ")));
        }
        parts.extend(failures.iter().filter(|f| !f.check.starts_with("library ")).map(|f| format!("{}: {}", f.check, f.why)));
        let todo = if first.todo.is_empty() { String::new() } else { format!("; to do: {}", first.todo) };
        Some(format!("`cargo xtask doctor` finds: {}{todo}", parts.join("; ")))
    }

    /// What stops the plugin from loading here: each library not found
    /// (with who provides it), then each other failure that is not about
    /// the GPU ("check: why"). What the compatibility matrix lists for a
    /// plugin that does not load.
    pub fn blockers(&self) -> Vec<String> {
        let mut out = self.needs();
        out.extend(
            self.findings
                .iter()
                .filter(|f| f.status == Status::Fail && !f.check.starts_with("library ") && !f.check.starts_with("gpu") && f.check != "tpu")
                .map(|f| format!("{}: {}", f.check, f.why)),
        );
        out
    }

    /// Missing libraries that stop the plugin from loading or running, by
    /// name: what the compatibility matrix lists for a plugin that does not
    /// load.
    pub fn needs(&self) -> Vec<String> {
        self.libraries
            .iter()
            .filter(|l| l.path.is_none())
            .filter(|l| self.findings.iter().any(|f| f.status == Status::Fail && f.check == format!("library {}", l.name)))
            .map(|l| match &l.provider {
                Some(p) if p.nvidia_driver => format!("{} (the NVIDIA driver)", l.name),
                Some(p) => {
                    let from: Vec<String> = p
                        .wheel
                        .iter()
                        .map(|w| format!("PyPI {w}"))
                        .chain(p.rocm_package.iter().map(|r| format!("ROCm {r}")))
                        .chain(p.nixpkgs.iter().map(|n| format!("nixpkgs {n}")))
                        .collect();
                    if from.is_empty() {
                        l.name.clone()
                    } else {
                        format!("{} ({})", l.name, from.join(", "))
                    }
                }
                None => l.name.clone(),
            })
            .collect()
    }
}

/// The message for a plugin that did not load (or could not make a client)
/// at `path`: the static diagnosis's failures in place of the loader's raw
/// words, which follow. Without a failure to show, the raw message.
pub fn explain_failure(path: &Path, pinned_name: Option<&str>, backend: Option<&str>, raw: &str) -> String {
    let pinned_name = pinned_name.map(str::to_owned).or_else(|| pinned_name_of(path));
    match diagnose(path, &Options::from_pins(pinned_name.as_deref(), backend)).explain() {
        Some(why) => format!("{why} (raw error: {raw})"),
        None => raw.to_owned(),
    }
}

/// The pinned name of a plugin fetched into the cache
/// (`<cache>/prebuilt/<name>/<version>-<system>-<sha>/.../<library>`, the
/// layout of [`super::locate`]), for a verb that was handed only its path.
pub fn pinned_name_of(path: &Path) -> Option<String> {
    let prebuilt = crate::project::cache_dir().ok()?.join("prebuilt");
    let rest = path.strip_prefix(&prebuilt).ok()?;
    let mut parts = rest.components();
    let name = parts.next()?.as_os_str().to_str()?.to_owned();
    (name != "wheels" && parts.count() >= 2).then_some(name)
}

/// What a signal that killed a plugin's process means, and what to do.
pub fn explain_signal(signal: i32) -> (&'static str, &'static str) {
    match signal {
        4 => (
            "an illegal instruction: code for a CPU extension this CPU lacks, or a deliberate trap (ud2) the code reached",
            "run it on a CPU with the extensions it was compiled for (`cargo xtask doctor` measures them), or use a build for an older CPU level",
        ),
        11 => (
            "an invalid memory access: a bug in the plugin, or a library it uses that is not the version it was built against",
            "check that the libraries found are the ones the plugin expects (`cargo xtask doctor`); report it to the plugin's authors with the phase",
        ),
        6 => (
            "the plugin aborted itself: a failed check or an uncaught C++ exception (its message is on stderr)",
            "read the message on stderr; it usually names what is missing or wrong",
        ),
        7 => ("a bus error: memory the plugin mapped is gone (a file truncated under it) or misaligned", "check the plugin file is complete (fetch it again)"),
        8 => ("an arithmetic fault (division by zero) in the plugin", "report it to the plugin's authors with the phase"),
        5 => ("a trap: a debugger breakpoint or __builtin_trap in the plugin", "report it to the plugin's authors with the phase"),
        9 => ("killed from outside, often by the kernel's out-of-memory killer", "check `dmesg` for the OOM killer; free memory or lower the plugin's allocation"),
        _ => ("a signal the plugin did not handle", "report it to the plugin's authors with the phase"),
    }
}

fn finding(check: impl Into<String>, status: Status, why: impl Into<String>, todo: impl Into<String>) -> Finding {
    Finding { check: check.into(), status, why: why.into(), todo: todo.into() }
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_owned())
}

/// Runs the static diagnosis of the library at `path` (see the module
/// comment) in this machine's environment.
pub fn diagnose(path: &Path, options: &Options<'_>) -> Diagnosis {
    diagnose_in(path, options, &Environment::current())
}

/// [`diagnose`] in a given environment (the loader's configuration, the
/// LD_LIBRARY_PATH and current directory to model).
pub fn diagnose_in(path: &Path, options: &Options<'_>, env: &Environment) -> Diagnosis {
    let start = Instant::now();
    let mut d = Diagnosis {
        plugin: path.to_path_buf(),
        elf: None,
        host: Host {
            machine: super::ldso::object::machine_name(env.host.ident.machine),
            cpu: cpu_model(),
            loader: env.host.interpreter.clone(),
            loader_config: env.host.source.clone(),
            ld_library_path: env.ld_library_path.clone(),
        },
        findings: Vec::new(),
        libraries: Vec::new(),
        symbols: None,
        isa: None,
        gpu: Gpu::default(),
        static_ms: 0.0,
    };
    let ident = match Ident::of_file(path) {
        Ok(Some(ident)) => ident,
        Ok(None) => {
            d.findings.push(finding(
                "elf",
                Status::Fail,
                format!("{} is not an ELF file", path.display()),
                "give the plugin's shared library (a .so file)",
            ));
            return finish(d, start);
        }
        Err(e) => {
            d.findings.push(finding("elf", Status::Fail, format!("{e:#}"), "check the path and its permissions"));
            return finish(d, start);
        }
    };
    d.elf = Some(ident.describe());
    if let Some(why) = ident.mismatch(&env.host.ident) {
        d.findings.push(finding(
            "elf",
            Status::Fail,
            format!("{}: {why}; no process on this machine can load it", ident.describe()),
            format!(
                "use the plugin's {}-linux build (pins.toml lists each system's wheel: `cargo xtask prebuilt fetch NAME`)",
                d.host.machine
            ),
        ));
        return finish(d, start);
    }
    if ident.file_type != 3 {
        d.findings.push(finding(
            "elf",
            Status::Fail,
            format!("ELF type {} is not a shared library: dlopen refuses it", ident.file_type),
            "give the plugin's shared library (a .so file)",
        ));
        return finish(d, start);
    }
    d.findings.push(finding("elf", Status::Ok, format!("{}, a shared library, as this machine runs", ident.describe()), ""));

    let mut resolver = Resolver::new(env);
    let mut closure = resolver.resolve(path);
    let Some(plugin) = closure.plugin().object.as_ref() else {
        let why = closure.plugin().unreadable.clone().unwrap_or_default();
        d.findings.push(finding(
            "elf",
            Status::Fail,
            format!("cannot read it as the loader would: {why}"),
            "the file is damaged or not a shared library: fetch it again",
        ));
        return finish(d, start);
    };

    if !plugin.exports.contains("GetPjrtApi") {
        d.findings.push(finding(
            "pjrt",
            Status::Fail,
            "it exports no GetPjrtApi, the entry point of every PJRT plugin: not a PJRT plugin (or its symbol table is hidden)",
            "give the plugin's library (in a wheel, the one exporting GetPjrtApi: `nm -D --defined-only FILE | grep GetPjrtApi`)",
        ));
    }

    // What runs on the GPU, and for which CUDA release; the CPU code.
    d.gpu.code = gpu::device_code(plugin);
    let strings = dlopens::scan(plugin);
    let (cuda_major, from) = cuda_major(options, &d.gpu.code, plugin.rpath.as_deref().or(plugin.runpath.as_deref()), &strings);
    d.isa = isa::measure(plugin, isa::cpu_flags().as_ref());
    d.gpu.cuda_major = cuda_major;
    d.gpu.cuda_major_from = from;
    d.gpu.kind = match options.backend.as_deref() {
        Some(b) if b.starts_with("cuda") => Some("cuda"),
        Some(b) if b.starts_with("rocm") => Some("rocm"),
        Some("tpu") => Some("tpu"),
        Some(_) => None,
        None if d.gpu.code.cuda.as_ref().is_some_and(|c| !c.is_empty()) || !strings.xla_cuda_stubs.is_empty() => Some("cuda"),
        None if d.gpu.code.amd.is_some() => Some("rocm"),
        None => None,
    };

    // Libraries opened at run time: the plugin's guesses, then those of
    // every non-system library they bring, until nothing new turns up.
    let mut guesses: Vec<(String, String)> = Vec::new();
    for stub in &strings.xla_cuda_stubs {
        if let Some(name) = cuda_major.and_then(|m| providers::cuda_soname(stub, m)) {
            guesses.push((name, format!("XLA's {stub} stub (xla/tsl/cuda/{stub}_stub.cc) is linked in and opens it")));
        }
    }
    for name in without_unversioned_twins(&strings.sonames) {
        guesses.push((name.clone(), format!("the binary contains the string `{name}`")));
    }
    closure.dlopen(&mut resolver, 1, &guesses);
    let mut scanned = 2usize;
    while scanned < closure.objects.len() {
        let index = scanned;
        scanned += 1;
        let loaded = &closure.objects[index];
        if loaded.interpreter || env.host.system_dirs.iter().any(|d| loaded.path.starts_with(d)) {
            continue;
        }
        let Some(object) = &loaded.object else { continue };
        let found = dlopens::scan(object);
        let by = loaded.display_name();
        let more: Vec<(String, String)> =
            without_unversioned_twins(&found.sonames).into_iter().map(|n| (n.clone(), format!("{by} contains the string `{n}`"))).collect();
        closure.dlopen(&mut resolver, index, &more);
    }

    let context = providers::Context {
        cuda_major,
        pinned_name: options.pinned_name.clone(),
        cuda_nixpkgs_set: cuda_major.and_then(|m| options.cuda_nixpkgs_sets.iter().find(|(k, _)| *k == m).map(|(_, s)| s.clone())),
        rocm_nixpkgs_set: options.rocm_nixpkgs_set.clone(),
    };
    library_findings(&mut d, &closure, &context);

    let report = symbols::check(&closure);
    symbol_findings(&mut d, &report);
    d.symbols = Some(report);

    isa_finding(&mut d);

    gpu_findings(&mut d, &closure, options);
    finish(d, start)
}

/// `libfoo.so` next to `libfoo.so.1`: the usual "try the development
/// name, then the versioned one"; only the versioned one is kept.
fn without_unversioned_twins(names: &std::collections::BTreeSet<String>) -> Vec<&String> {
    names.iter().filter(|n| !(n.ends_with(".so") && names.iter().any(|m| m.starts_with(&format!("{n}."))))).collect()
}

fn finish(mut d: Diagnosis, start: Instant) -> Diagnosis {
    d.static_ms = start.elapsed().as_secs_f64() * 1000.0;
    d
}

/// The CUDA major the plugin was built for, and how that is known.
fn cuda_major(
    options: &Options<'_>,
    code: &gpu::DeviceCode,
    search_path: Option<&str>,
    strings: &dlopens::Strings,
) -> (Option<u32>, Option<String>) {
    if let Some(m) = options.backend.as_deref().and_then(|b| b.strip_prefix("cuda")).and_then(|m| m.parse().ok()) {
        return (Some(m), Some(format!("pins.toml: backend {}", options.backend.as_deref().unwrap_or_default())));
    }
    if let Some(cuda) = &code.cuda {
        if let (Some(m), Some((a, b))) = (cuda.cuda_major(), cuda.ptx_isa.iter().next_back()) {
            return (Some(m), Some(format!("its PTX is ISA {a}.{b}")));
        }
    }
    if let Some(path) = search_path {
        for (hint, major) in [("nvidia/cu13/", 13), ("nvidia/cu12/", 12), ("nvidia/cuda_runtime/", 12)] {
            if path.contains(hint) {
                return (Some(major), Some(format!("its search path names `{}`", hint.trim_end_matches('/'))));
            }
        }
    }
    for name in &strings.sonames {
        if let Some(v) = name.strip_prefix("libcudart.so.").and_then(|v| v.split('.').next()).and_then(|v| v.parse().ok()) {
            return (Some(v), Some(format!("it names {name}")));
        }
    }
    (None, None)
}

fn provider_line(p: &Provider) -> String {
    let mut parts = vec![p.what.to_owned()];
    if p.nvidia_driver {
        parts.push("part of the NVIDIA driver".to_owned());
    }
    if let Some(w) = &p.wheel {
        parts.push(format!("PyPI {w}"));
    }
    if let Some(r) = &p.rocm_package {
        parts.push(format!("ROCm package {r}"));
    }
    if let Some(n) = &p.nixpkgs {
        parts.push(format!("nixpkgs {n}"));
    }
    if let Some(deb) = p.debian_package {
        parts.push(format!("Debian {deb}"));
    }
    parts.join("; ")
}

fn library_findings(d: &mut Diagnosis, closure: &Closure, context: &providers::Context) {
    let gpu_kind = d.gpu.kind;
    let mut seen = std::collections::HashSet::new();
    let (mut needed_found, mut opened_found) = (0, 0);
    let mut optional: Vec<String> = Vec::new();
    for request in &closure.requests {
        if !seen.insert(request.name.clone()) {
            continue;
        }
        let requested_by = closure.objects[request.from].display_name();
        let provider = request.object.is_none().then(|| providers::lookup(&request.name, context)).flatten();
        d.libraries.push(Library {
            name: request.name.clone(),
            requested_by: requested_by.clone(),
            reason: request.reason.clone(),
            path: request.object.map(|i| closure.objects[i].path.clone()),
            via: request.via.as_ref().map(|v: &Via| v.describe(closure)),
            provider: provider.clone(),
            rejected: request.rejected.iter().map(|r| format!("{} ({})", r.path.display(), r.why)).collect(),
            searched: if request.object.is_none() { request.searched.clone() } else { Vec::new() },
        });
        if request.object.is_some() {
            match request.reason {
                Reason::Needed => needed_found += 1,
                Reason::Dlopen { .. } => opened_found += 1,
            }
            continue;
        }
        let rejected = if request.rejected.is_empty() {
            String::new()
        } else {
            format!(
                " (skipped: {})",
                request.rejected.iter().map(|r| format!("{}: {}", r.path.display(), r.why)).collect::<Vec<_>>().join(", ")
            )
        };
        let (how, status) = match (&request.reason, &provider) {
            (Reason::Needed, _) => (format!("{requested_by} needs it (DT_NEEDED): the plugin does not load without it"), Status::Fail),
            (Reason::Dlopen { evidence }, Some(p)) => {
                // A GPU library named by what does not look like a GPU
                // plugin is a guess too weak to fail on.
                let gpu_library = p.nvidia_driver || p.wheel.is_some() || p.rocm_package.is_some();
                let status = match &p.role {
                    Role::Required if gpu_library && gpu_kind.is_none() => Status::Warn,
                    Role::Required => Status::Fail,
                    Role::Optional { common: true, .. } => Status::Warn,
                    Role::Optional { common: false, .. } => Status::Ok,
                };
                let effect = match &p.role {
                    Role::Required if p.nvidia_driver => "no CUDA device can be used without it".to_owned(),
                    Role::Required => "the plugin loads but fails when it needs it".to_owned(),
                    Role::Optional { when, .. } => format!("only needed for {when}"),
                };
                (format!("opened at run time ({evidence}; a guess from the binary's strings): {effect}"), status)
            }
            (Reason::Dlopen { evidence }, None) => (
                format!("maybe opened at run time ({evidence}; a guess from the binary's strings); what needs it is unknown"),
                Status::Warn,
            ),
        };
        let source = provider.as_ref().map(|p| format!(" — {}", provider_line(p))).unwrap_or_default();
        let todo = match &provider {
            Some(p) => p.commands.join(", or "),
            None => format!(
                "find the package that ships {} (e.g. `apt-file search {}`) if the plugin fails for want of it",
                request.name, request.name
            ),
        };
        if let (Status::Ok, Some(Provider { role: Role::Optional { when, .. }, .. })) = (status, &provider) {
            optional.push(format!("{} ({when})", request.name));
            continue;
        }
        d.findings.push(finding(format!("library {}", request.name), status, format!("not found; {how}{rejected}{source}"), todo));
    }
    if !optional.is_empty() {
        d.findings.push(finding(
            "libraries.optional",
            Status::Ok,
            format!("not found, and only needed for features that are off unless asked for: {}", optional.join(", ")),
            "",
        ));
    }
    if !d.findings.iter().any(|f| f.check.starts_with("library ") && f.status != Status::Ok) {
        d.findings.push(finding(
            "libraries",
            Status::Ok,
            format!(
                "{needed_found} needed libraries found (all, transitively){}",
                if opened_found > 0 { format!("; {opened_found} opened at run time found") } else { String::new() }
            ),
            "",
        ));
    }
}

fn symbol_findings(d: &mut Diagnosis, report: &SymbolReport) {
    for m in &report.missing_versions {
        let newest = m.newest_here.as_ref().map(|v| format!(", whose newest is {v}")).unwrap_or_default();
        let symbols = if m.symbols.is_empty() { String::new() } else { format!(" (for {})", m.symbols.join(", ")) };
        let family = symbols::split_version(&m.version).0;
        let todo = match family {
            "GLIBC" => format!("run it on a system whose glibc provides {} (a newer distribution), or use a build made for an older glibc", m.version),
            "GLIBCXX" | "CXXABI" => format!(
                "put a libstdc++.so.6 that defines {} first on the search path (a newer GCC's, e.g. via LD_LIBRARY_PATH), or use a build made for an older one",
                m.version
            ),
            "GCC" => format!("put a libgcc_s.so.1 that defines {} first on the search path, or use a build made for an older GCC", m.version),
            _ => format!("provide a {} that defines {}", m.library, m.version),
        };
        d.findings.push(finding(
            format!("symbol version {}", m.version),
            if m.weak { Status::Warn } else { Status::Fail },
            format!(
                "{} needs {} from {}{symbols}; the {} found here ({}) does not define it{newest}",
                m.object, m.version, m.library, m.library, m.resolved
            ),
            todo,
        ));
    }
    for lib in &report.unversioned {
        d.findings.push(finding(
            "symbol versions",
            Status::Warn,
            format!(
                "{lib} defines no symbol versions but versions are required of it (the loader says \"no version information available\")"
            ),
            "make sure it is the library the plugin was built against",
        ));
    }
    if !report.undefined.is_empty() {
        let names: Vec<String> = report.undefined.iter().take(5).map(|u| format!("{} (needed by {})", u.symbol, u.object)).collect();
        d.findings.push(finding(
            "symbols",
            Status::Fail,
            format!("{} undefined symbols are defined by no library found here: {}", report.undefined.len(), names.join(", ")),
            "a library the plugin was built against is missing or is another version: check the libraries above",
        ));
    }
    if report.missing_versions.iter().all(|m| m.weak) && report.undefined.is_empty() {
        let undefined = match &report.undefined_not_checked {
            Some(why) => format!("; undefined symbols not checked: {why}"),
            None => format!("; all {} undefined symbols are defined", report.symbols_checked),
        };
        d.findings.push(finding(
            "symbols",
            Status::Ok,
            format!("all {} required symbol versions are defined by the libraries found here{undefined}", report.versions_checked),
            "",
        ));
    }
}

fn isa_finding(d: &mut Diagnosis) {
    let Some(isa) = &d.isa else {
        if d.host.machine != "x86_64" {
            d.findings.push(finding(
                "cpu",
                Status::Ok,
                format!("instruction sets are only measured on x86_64 (this is {})", d.host.machine),
                "",
            ));
        }
        return;
    };
    let level = &isa.compiled_for;
    let baseline: Vec<String> = isa
        .uses
        .iter()
        .filter(|u| u.role == IsaRole::Baseline)
        .map(|u| {
            format!(
                "{} ({})",
                u.extension,
                match u.evidence {
                    isa::Evidence::Witness => "replaces its older form",
                    isa::Evidence::Level => "by level",
                    isa::Evidence::Share => "widespread",
                }
            )
        })
        .collect();
    let sure = match isa.confidence {
        Confidence::High => "sure",
        Confidence::Medium => "fairly sure",
        Confidence::Low => "unsure",
    };
    let sample = format!("{} of {} functions decoded", isa.functions_sampled, isa.functions_total);
    let dispatched: Vec<&str> = isa.missing_dispatched.clone();
    let dispatched_note = if dispatched.is_empty() {
        String::new()
    } else {
        format!("; {} this CPU lacks only in kernels chosen at run time (not needed)", dispatched.join(", "))
    };
    let base = if baseline.is_empty() { String::new() } else { format!(": {}", baseline.join(", ")) };
    if !isa.missing_baseline.is_empty() {
        d.findings.push(finding(
            "cpu",
            Status::Fail,
            format!(
                "compiled for {level}{base}; this CPU lacks {}: the plugin will die with SIGILL (an instruction this CPU lacks) ({sure}, {sample})",
                isa.missing_baseline.join(", ")
            ),
            format!("run it on a CPU with {}, or use a build for an older CPU level", isa.missing_baseline.join(", ")),
        ));
    } else if !isa.missing_unclear.is_empty() {
        d.findings.push(finding(
            "cpu",
            Status::Warn,
            format!(
                "compiled for {level}{base}; {} (missing on this CPU) appear in some functions and may be required ({sure}, {sample}){dispatched_note}",
                isa.missing_unclear.join(", ")
            ),
            "if it dies with SIGILL, run it on a CPU with those extensions",
        ));
    } else {
        d.findings.push(finding(
            "cpu",
            Status::Ok,
            format!("compiled for {level}{base}; this CPU has all of it ({sure}, {sample}){dispatched_note}"),
            "",
        ));
    }
}

fn gpu_findings(d: &mut Diagnosis, closure: &Closure, options: &Options<'_>) {
    match d.gpu.kind {
        Some("cuda") => cuda_findings(d, closure, options),
        Some("rocm") => rocm_findings(d, options),
        Some("tpu") => {
            // TPU v2-v4 VMs show /dev/accel*; v5 and later VFIO groups
            // (/dev/vfio/<n>; /dev/vfio/vfio alone is only the VFIO module).
            let names = |dir: &str| -> Vec<String> {
                std::fs::read_dir(dir).map(|r| r.flatten().filter_map(|e| e.file_name().into_string().ok()).collect()).unwrap_or_default()
            };
            let mut devices: Vec<String> = names("/dev").into_iter().filter(|n| n.starts_with("accel")).collect();
            devices.extend(names("/dev/vfio").into_iter().filter(|n| n != "vfio").map(|n| format!("vfio/{n}")));
            devices.sort();
            if devices.is_empty() {
                d.findings.push(finding(
                    "tpu",
                    Status::Fail,
                    "no TPU device (/dev/accel*, /dev/vfio) on this machine: the plugin loads but cannot create a client",
                    "run it on a Cloud TPU VM",
                ));
            } else {
                d.findings.push(finding("tpu", Status::Ok, format!("TPU device nodes: /dev/{}", devices.join(", /dev/")), ""));
            }
        }
        _ => {}
    }
}

fn cuda_findings(d: &mut Diagnosis, closure: &Closure, options: &Options<'_>) {
    let targets = d.gpu.code.cuda.clone().unwrap_or_default();
    let built = match (&d.gpu.cuda_major, &d.gpu.cuda_major_from) {
        (Some(m), Some(from)) => format!("built for CUDA {m} ({from})"),
        _ => "CUDA release unknown".to_owned(),
    };
    let carries = if targets.is_empty() { "no prebuilt GPU code".to_owned() } else { format!("GPU code for {}", targets.describe()) };
    let libcuda = closure
        .requests
        .iter()
        .find(|r| r.name == "libcuda.so.1" && r.object.is_some())
        .and_then(|r| r.object)
        .map(|i| closure.objects[i].path.clone());
    let Some(libcuda) = libcuda else {
        let branch = d.gpu.cuda_major.and_then(providers::minimum_driver).map(|b| format!(" ({b} or newer)")).unwrap_or_default();
        d.findings.push(finding(
            "gpu.driver",
            Status::Fail,
            format!("no NVIDIA driver: libcuda.so.1 is nowhere the loader looks; the plugin ({built}, {carries}) cannot create a client"),
            format!("install the NVIDIA driver{branch} on a machine with an NVIDIA GPU"),
        ));
        return;
    };
    let Some(query) = options.query_cuda_driver else {
        d.findings.push(finding(
            "gpu.driver",
            Status::Ok,
            format!("libcuda.so.1 is {} (not asked for its version)", libcuda.display()),
            "",
        ));
        return;
    };
    let report = match query(&libcuda) {
        Ok(r) => r,
        Err(e) => {
            d.findings.push(finding(
                "gpu.driver",
                Status::Fail,
                format!("asking {} for its version failed: {e:#}", libcuda.display()),
                "check the NVIDIA driver installation (`nvidia-smi`)",
            ));
            return;
        }
    };
    d.gpu.driver = Some(report.clone());
    if let Some(error) = &report.error {
        d.findings.push(finding(
            "gpu.driver",
            Status::Fail,
            format!("{}: {error}", libcuda.display()),
            "check the NVIDIA driver installation (`nvidia-smi`)",
        ));
        return;
    }
    let (major, minor) = report.cuda_version().unwrap_or((0, 0));
    match d.gpu.cuda_major {
        Some(needed) if major < needed => d.findings.push(finding(
            "gpu.driver",
            Status::Fail,
            format!("the driver ({}) supports CUDA up to {major}.{minor}; the plugin is {built}", libcuda.display()),
            format!("upgrade the NVIDIA driver to {} or newer", providers::minimum_driver(needed).unwrap_or("a newer branch")),
        )),
        _ => d.findings.push(finding(
            "gpu.driver",
            Status::Ok,
            format!("the driver ({}) supports CUDA up to {major}.{minor}; the plugin is {built}", libcuda.display()),
            "",
        )),
    }
    if let Some(error) = &report.init_error {
        d.findings.push(finding(
            "gpu.devices",
            Status::Fail,
            format!("cuInit failed with {error}: no CUDA device can be used"),
            "check that the GPU is visible (`nvidia-smi`, CUDA_VISIBLE_DEVICES, the container's device access)",
        ));
        return;
    }
    if report.devices.is_empty() {
        d.findings.push(finding(
            "gpu.devices",
            Status::Fail,
            "the driver lists no CUDA device",
            "check that the GPU is visible (`nvidia-smi`)",
        ));
        return;
    }
    for (i, device) in report.devices.iter().enumerate() {
        let cc = format!("{}.{}", device.major, device.minor);
        let (status, why) = match gpu::fatbin::fits(&targets, device.major, device.minor) {
            _ if targets.is_empty() => (Status::Ok, format!("{} (compute capability {cc}); the plugin carries no prebuilt GPU code to match", device.name)),
            Fit::Sass => (Status::Ok, format!("{} (compute capability {cc}): the plugin has machine code for it ({carries})", device.name)),
            Fit::PtxOnly => (
                Status::Warn,
                format!("{} (compute capability {cc}): only PTX fits ({carries}); the driver compiles it at first use (slow start, needs a driver that knows that PTX)", device.name),
            ),
            Fit::None => (Status::Fail, format!("{} (compute capability {cc}): the plugin has no code for it ({carries})", device.name)),
        };
        let todo = if status == Status::Fail { "use a build that targets this GPU's compute capability" } else { "" };
        d.findings.push(finding(format!("gpu.device {i}"), status, why, todo));
    }
}

fn rocm_findings(d: &mut Diagnosis, options: &Options<'_>) {
    let targets = d.gpu.code.amd.clone().unwrap_or_default();
    let carries = if targets.targets.is_empty() {
        "no GPU code found".to_owned()
    } else {
        format!("GPU code for {}", targets.targets.iter().cloned().collect::<Vec<_>>().join(", "))
    };
    let topology = options.kfd_topology.clone().unwrap_or_else(|| PathBuf::from(gpu::kfd::TOPOLOGY));
    d.gpu.amd_gpus = gpu::kfd::gpus(&topology);
    match &d.gpu.amd_gpus {
        None => d.findings.push(finding(
            "gpu.driver",
            Status::Fail,
            format!("no AMD GPU driver: {} does not exist (amdgpu's KFD is not loaded); the plugin carries {carries}", topology.display()),
            "run it on a machine with an AMD GPU and the amdgpu driver",
        )),
        Some(gpus) if gpus.is_empty() => d.findings.push(finding(
            "gpu.driver",
            Status::Fail,
            format!("the amdgpu driver lists no GPU; the plugin carries {carries}"),
            "check that the GPU is visible (`rocminfo`, the container's /dev/kfd and /dev/dri access)",
        )),
        Some(gpus) => {
            for gpu_name in gpus {
                let ok = targets.targets.is_empty() || gpu::offload_bundle::covers(&targets, gpu_name);
                d.findings.push(finding(
                    format!("gpu {gpu_name}"),
                    if ok { Status::Ok } else { Status::Fail },
                    if ok {
                        format!("{gpu_name}: the plugin has code for it ({carries})")
                    } else {
                        format!("{gpu_name}: the plugin has no code for it ({carries})")
                    },
                    if ok { "" } else { "use a build that targets this GPU" },
                ));
            }
        }
    }
    if !targets.unreadable.is_empty() {
        d.findings.push(finding(
            "gpu.code",
            Status::Warn,
            format!("{} of {} offload bundles could not be read: {}", targets.unreadable.len(), targets.bundles, targets.unreadable[0]),
            "",
        ));
    }
}
