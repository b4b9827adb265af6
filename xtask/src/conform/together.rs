//! `cargo xtask conform --together PLUGIN PLUGIN...`: several plugins in one
//! process, as a binding that offers CPU and GPU loads them. Each is loaded
//! (with the `dlopen` flags a binding would use), a client is created on
//! each and a computation run on each, in a child process; the report says
//! what crashed or aborted (and in which call), which exported symbols two
//! plugins both define and which copy each plugin's references bind to
//! (glibc's own account: `LD_DEBUG=bindings` with `LD_BIND_NOW`), and which
//! platform names collide.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::plugin::child;
use crate::plugin::client_options::{self, ClientOption, NamedValues};
use crate::plugin::session::Client;

/// The flags `dlopen` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dlopen {
    /// `RTLD_NOW | RTLD_LOCAL`: each plugin's symbols stay its own. What a
    /// binding should use (and what jax and pypjrt do).
    Local,
    /// `RTLD_NOW | RTLD_GLOBAL`: a plugin's exported symbols serve every
    /// library loaded after it.
    Global,
    /// `RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND`: a plugin looks in itself
    /// before the global scope.
    Deepbind,
}

impl Dlopen {
    pub fn flags(self) -> i32 {
        match self {
            Dlopen::Local => libc::RTLD_NOW | libc::RTLD_LOCAL,
            Dlopen::Global => libc::RTLD_NOW | libc::RTLD_GLOBAL,
            Dlopen::Deepbind => libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_DEEPBIND,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Dlopen::Local => "RTLD_NOW|RTLD_LOCAL",
            Dlopen::Global => "RTLD_NOW|RTLD_GLOBAL",
            Dlopen::Deepbind => "RTLD_NOW|RTLD_LOCAL|RTLD_DEEPBIND",
        }
    }
}

/// One plugin in the process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Member {
    pub plugin: String,
    pub path: PathBuf,
    pub api_version: Option<String>,
    /// `ok`, or what went wrong loading it.
    pub load: Option<String>,
    pub client: Option<String>,
    pub platform: Option<String>,
    /// `ok` (the right numbers), or what went wrong.
    pub compute: Option<String>,
}

/// An exported symbol (other than `GetPjrtApi`) that several plugins define.
#[derive(Debug, Clone, Serialize)]
pub struct Shared {
    pub symbol: String,
    /// The plugins that define it (file names).
    pub defined_by: Vec<String>,
    /// For each plugin whose references to it the dynamic linker bound: the
    /// file it bound them to.
    pub bound: BTreeMap<String, String>,
}

/// glibc's own libraries, shown together in the text report.
const GLIBC: &[&str] = &["libc.so", "libm.so", "libdl.so", "libpthread.so", "librt.so", "ld-linux"];

/// A library (DT_NEEDED) two or more plugins need: loaded once, its state
/// (abseil's logging, a protobuf registry) is theirs to share.
#[derive(Debug, Clone, Serialize)]
pub struct SharedLibrary {
    /// The name the plugins need it by (a soname).
    pub name: String,
    /// The plugins that need it (file names).
    pub needed_by: Vec<String>,
    /// The files of that name the process had loaded once every plugin was
    /// in: one means one copy for all of them.
    pub loaded: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Together {
    pub dlopen: String,
    pub members: Vec<Member>,
    /// How the process ended: `exited 0`, or the crash and the call it was in.
    pub ending: String,
    pub crashed: Option<String>,
    /// Exported symbols two or more plugins define (count), and the first
    /// ones with their bindings.
    pub shared_symbols: usize,
    pub shared: Vec<Shared>,
    /// Plugins whose references to a shared symbol bound to another plugin's copy.
    pub interposed: Vec<String>,
    /// Platform names that more than one plugin reports.
    pub platform_collisions: Vec<String>,
    /// Libraries two or more plugins need (the C runtime included).
    pub shared_libraries: Vec<SharedLibrary>,
}

impl Together {
    /// Whether anything went wrong: a crash, a plugin that did not compute
    /// where it had a client, interposition, a platform-name collision.
    pub fn troubled(&self) -> bool {
        self.crashed.is_some()
            || !self.interposed.is_empty()
            || !self.platform_collisions.is_empty()
            || self.members.iter().any(|m| m.client.as_deref() == Some("ok") && m.compute.as_deref() != Some("ok"))
    }

    pub fn to_text(&self) -> String {
        let mut out = format!("conform --together ({}):\n", self.dlopen);
        for m in &self.members {
            let _ = writeln!(
                out,
                "  {:<28} PJRT {:<6} load: {}; client: {}; platform: {}; compute: {}",
                m.plugin,
                m.api_version.as_deref().unwrap_or("?"),
                m.load.as_deref().unwrap_or("not reached"),
                m.client.as_deref().unwrap_or("not reached"),
                m.platform.as_deref().unwrap_or("-"),
                m.compute.as_deref().unwrap_or("not reached"),
            );
        }
        let _ = writeln!(out, "  process: {}", self.ending);
        let _ = writeln!(out, "  exported symbols (besides GetPjrtApi) defined by two or more plugins: {}", self.shared_symbols);
        for s in self.shared.iter().take(10) {
            let bound: Vec<String> = s.bound.iter().map(|(from, to)| format!("{from} -> {to}")).collect();
            let _ = writeln!(
                out,
                "    {} (in {}){}",
                s.symbol,
                s.defined_by.join(", "),
                if bound.is_empty() { String::new() } else { format!(": {}", bound.join(", ")) }
            );
        }
        let _ = writeln!(out, "  libraries (DT_NEEDED) two or more plugins need: {}", self.shared_libraries.len());
        let (glibc, others): (Vec<&SharedLibrary>, Vec<&SharedLibrary>) =
            self.shared_libraries.iter().partition(|l| GLIBC.iter().any(|g| l.name.starts_with(g)) && l.loaded.len() == 1);
        if !glibc.is_empty() {
            let names: Vec<&str> = glibc.iter().map(|l| l.name.as_str()).collect();
            let _ = writeln!(out, "    glibc's, one copy each: {}", names.join(", "));
        }
        for l in others {
            let copies = match l.loaded.as_slice() {
                [] => "not loaded".to_string(),
                [one] => format!("one copy, {}", one.display()),
                more => format!("{} copies: {}", more.len(), more.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")),
            };
            let _ = writeln!(out, "    {} (needed by {}): {copies}", l.name, l.needed_by.join(", "));
        }
        let _ =
            writeln!(out, "  interposition: {}", if self.interposed.is_empty() { "none".to_string() } else { self.interposed.join("; ") });
        let _ = writeln!(
            out,
            "  platform names: {}",
            if self.platform_collisions.is_empty() { "no collision".to_string() } else { self.platform_collisions.join("; ") }
        );
        out
    }
}

/// The dynamic symbols a library defines and exports (global or weak,
/// default or protected visibility), from its `.dynsym`, and the libraries
/// it needs (DT_NEEDED).
fn read_library(path: &Path) -> Result<(BTreeSet<String>, Vec<String>)> {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = object::File::parse(&*data).with_context(|| format!("{} is not an object file", path.display()))?;
    let exported = file
        .dynamic_symbols()
        .filter(|s| s.is_definition() && s.is_global() && !s.is_undefined())
        .filter_map(|s| s.name().ok().map(str::to_string))
        .filter(|n| !n.is_empty())
        .collect();
    let needed = crate::plugin::elf::read(&data).map(|elf| elf.needed).unwrap_or_default();
    Ok((exported, needed))
}

/// Runs the plugins together in a child process and assembles the report.
pub fn run(plugins: &[(String, PathBuf, Option<String>)], dlopen: Dlopen, options: &[ClientOption], timeout: Duration) -> Result<Together> {
    let mut report = Together {
        dlopen: dlopen.describe().to_string(),
        members: plugins
            .iter()
            .map(|(label, path, _)| Member { plugin: label.clone(), path: path.clone(), ..Default::default() })
            .collect(),
        ..Default::default()
    };
    // Who defines what, and needs what, read from the files.
    let mut definers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut needers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, path, _) in plugins {
        let (exported, needed) = read_library(path)?;
        for symbol in exported {
            if symbol != "GetPjrtApi" {
                definers.entry(symbol).or_default().push(file_name(path));
            }
        }
        for library in needed {
            needers.entry(library).or_default().push(file_name(path));
        }
    }
    definers.retain(|_, files| files.len() > 1);
    needers.retain(|_, files| files.len() > 1);
    let mut objects: Vec<PathBuf> = Vec::new();
    let debug = tempfile::Builder::new().prefix("pjrtpkgs-ld-debug-").tempdir()?;
    let in_flight = tempfile::Builder::new().prefix("pjrtpkgs-in-flight-").tempfile()?;
    in_flight.as_file().set_len(pjrt_sys::in_flight::FILE_SIZE)?;
    let mut argv: Vec<OsString> = vec!["--together-child".into(), "--dlopen".into(), format!("{dlopen:?}").to_lowercase().into()];
    argv.extend(["--in-flight".into(), in_flight.path().into()]);
    for (_, _, backend) in plugins {
        argv.extend(["--together-backend".into(), backend.clone().unwrap_or_else(|| "-".into()).into()]);
    }
    for o in options {
        argv.extend(["--client-option".into(), format!("{}:{}={}", o.name, o.type_name, o.value).into()]);
    }
    argv.push("--together".into());
    argv.extend(plugins.iter().map(|(_, path, _)| path.into()));
    // glibc's dynamic linker reports every binding it makes, all at load.
    let env = [
        ("LD_DEBUG", OsString::from("bindings")),
        ("LD_DEBUG_OUTPUT", debug.path().join("ld").into_os_string()),
        ("LD_BIND_NOW", OsString::from("1")),
    ];
    let members = &mut report.members;
    let ending = child::run_with_env("conform", &argv, None, timeout, &env, |event| {
        if event["event"] == "objects" {
            objects = event["paths"].as_array().into_iter().flatten().filter_map(|p| p.as_str()).map(PathBuf::from).collect();
            return;
        }
        let Some(i) = event["index"].as_u64().map(|i| i as usize).filter(|i| *i < members.len()) else { return };
        let m = &mut members[i];
        let text = |key: &str| event[key].as_str().map(str::to_string);
        match event["event"].as_str() {
            Some("loaded") => {
                m.load = text("load");
                m.api_version = text("api_version");
            }
            Some("client") => {
                m.client = text("client");
                m.platform = text("platform");
            }
            Some("computed") => m.compute = text("compute"),
            _ => {}
        }
    })?;
    let record = pjrt_sys::in_flight::Record::read(in_flight.path()).unwrap_or_default();
    report.ending = ending.describe();
    if !matches!(ending, child::Ending::Exited(0)) {
        let place = match (&record.call, record.in_call) {
            (Some(call), true) => format!("in {call}"),
            (Some(call), false) => format!("outside any plugin call, after {call} returned (the harness's fault)"),
            _ => "before any plugin call (the harness's fault)".into(),
        };
        report.crashed = Some(format!("the process {} {place}", ending.describe()));
        report.ending = report.crashed.clone().unwrap_or_default();
    }
    // The bindings glibc made for the shared symbols.
    let mut bound: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for entry in std::fs::read_dir(debug.path()).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
        for line in text.lines() {
            // "  1234:\tbinding file /a.so [0] to /b.so [0]: normal symbol `foo' [V]"
            let Some(rest) = line.split_once("binding file ").map(|(_, r)| r) else { continue };
            let Some((from, rest)) = rest.split_once(" [") else { continue };
            let Some((_, rest)) = rest.split_once(" to ") else { continue };
            let Some((to, rest)) = rest.split_once(" [") else { continue };
            let Some(symbol) = rest.split_once('`').and_then(|(_, r)| r.split_once('\'')).map(|(s, _)| s) else { continue };
            if definers.contains_key(symbol) {
                bound.entry(symbol.to_string()).or_default().insert(file_name(Path::new(from)), file_name(Path::new(to)));
            }
        }
    }
    report.shared_symbols = definers.len();
    let mut interposed = BTreeSet::new();
    for (symbol, files) in &definers {
        let b = bound.remove(symbol).unwrap_or_default();
        for (from, to) in &b {
            if files.contains(from) && from != to {
                interposed.insert(format!("{from} binds its own exported symbols to {to}'s copies"));
            }
        }
        if report.shared.len() < 200 {
            report.shared.push(Shared { symbol: symbol.clone(), defined_by: files.clone(), bound: b });
        }
    }
    report.interposed = interposed.into_iter().collect();
    let mut platforms: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in &report.members {
        if let Some(p) = &m.platform {
            platforms.entry(p.as_str()).or_default().push(m.plugin.as_str());
        }
    }
    report.shared_libraries = needers
        .into_iter()
        .map(|(name, needed_by)| {
            let loaded = objects.iter().filter(|p| p.file_name().is_some_and(|f| f.to_string_lossy() == name)).cloned().collect();
            SharedLibrary { name, needed_by, loaded }
        })
        .collect();
    report.platform_collisions =
        platforms.iter().filter(|(_, v)| v.len() > 1).map(|(p, v)| format!("`{p}` is reported by {}", v.join(" and "))).collect();
    Ok(report)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// Child mode: loads every plugin into this process, then a client and a
/// computation on each, emitting events.
pub fn run_child(
    paths: &[PathBuf],
    backends: &[String],
    dlopen: Dlopen,
    user_options: &[ClientOption],
    events: &mut child::Events,
) -> Result<()> {
    let mut plugins = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let loaded = pjrt_sys::loader::Plugin::load_with_flags(path, Some(dlopen.flags()));
        let version = loaded.as_ref().ok().map(|p| format!("{}.{}", p.api_version().0, p.api_version().1));
        let loaded = loaded.and_then(|p| {
            p.initialize()?;
            Ok(p)
        });
        let load = loaded.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| super::harness::load_failure(path, e));
        events.emit(&serde_json::json!({ "event": "loaded", "index": i, "load": load, "api_version": version }));
        plugins.push(loaded.ok().map(|p| &*Box::leak(Box::new(p))));
    }
    events.emit(&serde_json::json!({ "event": "objects", "paths": loaded_objects() }));
    for (i, plugin) in plugins.iter().enumerate() {
        let Some(plugin) = plugin else { continue };
        let backend = backends.get(i).filter(|b| b.as_str() != "-").map(String::as_str);
        let gpu = client_options::is_gpu(backend, &plugin.extensions());
        let named = NamedValues::new(&client_options::resolve(user_options, gpu));
        let client = Client::create_with(plugin, &named);
        let platform = client.as_ref().ok().and_then(|c| c.platform_name().ok());
        let status = client.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| format!("{e:#}"));
        events.emit(&serde_json::json!({ "event": "client", "index": i, "client": status, "platform": platform }));
        let Ok(client) = client else { continue };
        let compute = compute(&client).map(|()| "ok".to_string()).unwrap_or_else(|e| format!("{e:#}"));
        events.emit(&serde_json::json!({ "event": "computed", "index": i, "compute": compute }));
        // Kept alive: the plugins live side by side to the end.
        std::mem::forget(client);
    }
    Ok(())
}

/// The files of every object loaded in this process (dl_iterate_phdr).
fn loaded_objects() -> Vec<String> {
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: glibc hands a valid dl_phdr_info; data is the Vec below.
        let (info, names) = unsafe { (&*info, &mut *(data as *mut Vec<String>)) };
        if !info.dlpi_name.is_null() {
            // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
            let name = unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }.to_string_lossy().into_owned();
            if !name.is_empty() {
                names.push(name);
            }
        }
        0
    }
    let mut names: Vec<String> = Vec::new();
    // SAFETY: the callback only reads what glibc passes and writes to `names`.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut names as *mut Vec<String> as *mut libc::c_void) };
    names
}

/// `(a + b) * a` on the client's first device, checked against the expected numbers.
fn compute(client: &Client<'_>) -> Result<()> {
    use crate::plugin::compile_options;
    use crate::plugin::program::{expected, DIMS, INPUT_A, INPUT_B, PROGRAM};
    let device = *client.addressable_devices()?.first().context("the client has no addressable device")?;
    let exe = client.compile(PROGRAM, "mlir", &compile_options::single_device())?;
    let a = client.buffer_from_f32(&INPUT_A, &DIMS, device)?;
    let b = client.buffer_from_f32(&INPUT_B, &DIMS, device)?;
    let out = exe.execute(&[&a, &b])?;
    let result = out.first().context("no output")?.to_f32()?;
    let expected = expected();
    anyhow::ensure!(result == expected, "computed {result:?}, expected {expected:?}");
    Ok(())
}
