//! `cargo xtask smoke PLUGIN`: load a PJRT plugin, run a real computation
//! on it and check the numbers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use pjrt_sys::loader::{Plugin, BINDINGS_VERSION};
use serde::Serialize;

use crate::plugin::program::{expected, DIMS, INPUT_A, INPUT_B, PROGRAM};
use crate::plugin::session::{Client, DeviceInfo};
use crate::plugin::{client_options, compile_options};

/// Exit status when the plugin ran but computed wrong numbers.
pub const EXIT_MISMATCH: u8 = 2;

#[derive(Debug, clap::Args)]
#[command(
    about = "Load a plugin, run a real computation on it and check the numbers",
    long_about = "Load a PJRT plugin with the crates/pjrt-sys loader, check its PJRT API version, \
initialize it, create a client, list its devices, compile a small StableHLO program \
((a + b) * a on 2x2 f32), copy the inputs to the first device, execute, copy the result back \
and compare it with the same arithmetic done on the host. Reports the time of each phase.\n\n\
The plugin runs in a child process: if it crashes (even in GetPjrtApi) or hangs, the report \
is still written, naming the signal and the phase.\n\n\
PLUGIN is a path to a plugin shared library, or the name of a prebuilt plugin pinned in \
pins.toml ([prebuilt.NAME]), which is downloaded and verified first.\n\n\
Client options (--client-option NAME=VALUE) are PJRT named values passed to PJRT_Client_Create, \
typed as XLA's plugins declare them; GPU plugins get preallocate=false unless set.",
    after_help = "Examples:\n  cargo xtask smoke ./libpjrt_cpu.so\n  cargo xtask smoke xla-cpu-pjrt --json\n  \
cargo xtask smoke jax-cuda13-pjrt --client-option memory_fraction=0.5\n\n\
Exit status: 0 the numbers match, 2 wrong numbers, 1 any error (the plugin does not load or crashed, \
client creation fails, e.g. a GPU plugin on a machine without a GPU, ...)."
)]
pub struct Args {
    /// Path to a plugin `.so`, or the name of a pinned prebuilt plugin.
    #[arg(value_name = "PLUGIN")]
    pub plugin: String,
    /// Print a JSON report on stdout (also on failure, with an `error` field).
    #[arg(long)]
    pub json: bool,
    /// Nix system of a prebuilt plugin to fetch (default: this machine's).
    #[arg(long, value_name = "SYSTEM")]
    pub system: Option<String>,
    /// A PJRT client option, NAME=VALUE or NAME:TYPE=VALUE (TYPE: bool,
    /// int64, float, string, int64_list); repeatable.
    #[arg(long = "client-option", value_name = "K=V", value_parser = client_options::parse)]
    pub client_options: Vec<client_options::ClientOption>,
    /// Seconds the plugin may take before its process is killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
    /// Child mode: run the plugin at PLUGIN (a path) in this process.
    #[arg(long, hide = true)]
    pub child: bool,
    /// Child mode: the pinned backend of the plugin.
    #[arg(long, hide = true)]
    pub backend: Option<String>,
    /// Child mode: where to write events.
    #[arg(long, hide = true)]
    pub events: Option<PathBuf>,
}

/// Everything the smoke test learned; printed as text or JSON.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct Report {
    pub plugin: String,
    pub path: Option<PathBuf>,
    pub bindings_api_version: String,
    pub api_version: Option<String>,
    pub api_struct_size: Option<usize>,
    pub extensions: Vec<String>,
    #[serde(default)]
    pub client_options: Vec<String>,
    pub platform_name: Option<String>,
    pub platform_version: Option<String>,
    pub devices: Vec<DeviceInfo>,
    pub expected: Vec<f32>,
    pub result: Option<Vec<f32>>,
    pub timings_ms: Timings,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct Timings {
    /// dlopen, GetPjrtApi, version check and PJRT_Plugin_Initialize.
    pub load: Option<f64>,
    pub client: Option<f64>,
    pub compile: Option<f64>,
    /// Host to device copies of the inputs.
    pub transfer: Option<f64>,
    /// PJRT_LoadedExecutable_Execute until its completion event.
    pub execute: Option<f64>,
    /// Device to host copy of the result.
    pub readback: Option<f64>,
}

enum Failure {
    Mismatch(String),
    Error(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Error(e.into())
    }
}

/// The phases, in order, for naming where a crash happened.
const PHASES: &[(&str, &str)] = &[
    ("load", "loading the plugin (dlopen, GetPjrtApi, PJRT_Plugin_Initialize)"),
    ("client", "creating the client"),
    ("devices", "listing the devices"),
    ("compile", "compiling the program"),
    ("transfer", "copying the inputs to the device"),
    ("execute", "executing"),
    ("readback", "copying the result back"),
    ("teardown", "destroying the client and its objects"),
];

pub fn run(args: Args) -> Result<ExitCode> {
    if args.child {
        return run_child(&args);
    }
    let mut report = Report {
        plugin: args.plugin.clone(),
        bindings_api_version: format!("{}.{}", BINDINGS_VERSION.0, BINDINGS_VERSION.1),
        expected: expected(),
        ..Default::default()
    };
    let code = match crate::plugin::locate::resolve(&args.plugin, args.system.as_deref()) {
        Err(e) => {
            report.error = Some(format!("{e:#}"));
            ExitCode::from(crate::output::EXIT_ERROR)
        }
        Ok((path, backend)) => {
            report.path = Some(path.clone());
            in_child(&path, backend.as_deref(), &args, &mut report)?
        }
    };
    if args.json {
        crate::output::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        let t = &report.timings_ms;
        let ms = |v: Option<f64>| v.map(|v| format!("{v:.2} ms")).unwrap_or_else(|| "-".into());
        let mut text = String::new();
        if report.ok {
            text.push_str(&format!("result:     {:?} (matches)\n", report.result.as_deref().unwrap_or_default()));
        }
        text.push_str(&format!(
            "timings:    load {}, client {}, compile {}, transfer {}, execute {}, readback {}\n",
            ms(t.load),
            ms(t.client),
            ms(t.compile),
            ms(t.transfer),
            ms(t.execute),
            ms(t.readback)
        ));
        crate::output::emit(&text)?;
    }
    if let Some(error) = &report.error {
        eprintln!("error: smoke test of {} failed: {error}", args.plugin);
    }
    Ok(code)
}

/// Runs the smoke test in a child process and reads its report back: the
/// last report the child wrote stands, with the crash (signal, phase) as
/// its error when it did not finish.
fn in_child(path: &Path, backend: Option<&str>, args: &Args, report: &mut Report) -> Result<ExitCode> {
    let mut argv: Vec<std::ffi::OsString> = vec!["--child".into()];
    if let Some(backend) = backend {
        argv.extend(["--backend".into(), backend.into()]);
    }
    for o in &args.client_options {
        argv.extend(["--client-option".into(), format!("{}:{}={}", o.name, o.type_name, o.value).into()]);
    }
    argv.push("--".into());
    argv.push(path.into());
    let mut phase = PHASES[0].0.to_string();
    let mut last: Option<Report> = None;
    let text = !args.json;
    // A closed stdout ends the run with the error once the child is done.
    let mut write_error: Option<anyhow::Error> = None;
    let ending = crate::plugin::child::run("smoke", &argv, backend, std::time::Duration::from_secs(args.timeout), |event| {
        if let Some(line) = event.get("say").and_then(|s| s.as_str()) {
            if text && write_error.is_none() {
                write_error = crate::output::emit_line(line).err();
            }
        }
        if let Some(p) = event.get("phase").and_then(|s| s.as_str()) {
            phase = p.to_string();
        }
        if let Some(r) = event.get("report") {
            if let Ok(r) = serde_json::from_value(r.clone()) {
                last = Some(r);
            }
        }
    })?;
    if let Some(e) = write_error {
        return Err(e);
    }
    if let Some(child_report) = last {
        let plugin = std::mem::take(&mut report.plugin);
        *report = child_report;
        report.plugin = plugin;
    }
    let code = match ending {
        crate::plugin::child::Ending::Exited(0) if report.ok => ExitCode::SUCCESS,
        crate::plugin::child::Ending::Exited(code) if code == EXIT_MISMATCH as i32 => ExitCode::from(EXIT_MISMATCH),
        crate::plugin::child::Ending::Exited(_) if report.error.is_some() => ExitCode::from(crate::output::EXIT_ERROR),
        ending => {
            let during = PHASES.iter().find(|(p, _)| *p == phase).map_or(phase.as_str(), |(_, what)| what);
            let meaning = match ending {
                crate::plugin::child::Ending::Signaled(s) => format!(" ({})", crate::plugin::diagnosis::explain_signal(s).0),
                _ => String::new(),
            };
            report.ok = false;
            report.error = Some(format!("the plugin {} while {during}{meaning}: no result", ending.describe()));
            ExitCode::from(crate::output::EXIT_ERROR)
        }
    };
    // It did not load, or made no client: say why, as `doctor` finds it,
    // in place of the loader's or the plugin's raw words.
    if !report.ok && (report.api_version.is_none() || report.timings_ms.client.is_none()) {
        if let Some(raw) = report.error.take() {
            // `locate` gives a backend for pinned plugins only.
            let pinned = backend.is_some().then_some(args.plugin.as_str());
            report.error = Some(crate::plugin::diagnosis::explain_failure(path, pinned, backend, &raw));
        }
    }
    Ok(code)
}

/// Child mode: the smoke test itself, writing its progress as events.
fn run_child(args: &Args) -> Result<ExitCode> {
    let mut events = crate::plugin::child::Events::open(args.events.as_deref())?;
    let path = PathBuf::from(&args.plugin);
    let mut report = Report {
        plugin: args.plugin.clone(),
        path: Some(path.clone()),
        bindings_api_version: format!("{}.{}", BINDINGS_VERSION.0, BINDINGS_VERSION.1),
        expected: expected(),
        ..Default::default()
    };
    let outcome = smoke(&path, args.backend.as_deref(), &args.client_options, &mut report, &mut events);
    let code = match outcome {
        Ok(()) => {
            report.ok = true;
            ExitCode::SUCCESS
        }
        Err(Failure::Mismatch(msg)) => {
            report.error = Some(msg);
            ExitCode::from(EXIT_MISMATCH)
        }
        Err(Failure::Error(e)) => {
            report.error = Some(format!("{e:#}"));
            ExitCode::from(crate::output::EXIT_ERROR)
        }
    };
    events.emit(&serde_json::json!({ "phase": "done", "report": report }));
    Ok(code)
}

fn millis(since: Instant) -> Option<f64> {
    Some(since.elapsed().as_secs_f64() * 1000.0)
}

fn smoke(
    path: &Path,
    backend: Option<&str>,
    user_options: &[client_options::ClientOption],
    report: &mut Report,
    events: &mut crate::plugin::child::Events,
) -> Result<(), Failure> {
    // Each phase is announced before it starts, with what is known so far:
    // a crash in it leaves both behind.
    macro_rules! phase {
        ($name:expr) => {
            events.emit(&serde_json::json!({ "phase": $name, "report": &*report }))
        };
    }
    macro_rules! say {
        ($line:expr) => {
            events.emit(&serde_json::json!({ "say": $line }))
        };
    }
    phase!("load");
    let start = Instant::now();
    let plugin = Plugin::load(path)?;
    let (major, minor) = plugin.api_version();
    report.api_version = Some(format!("{major}.{minor}"));
    report.api_struct_size = Some(plugin.struct_size());
    say!(format!("plugin:     {}", path.display()));
    say!(format!(
        "PJRT API:   {major}.{minor} (bindings {}.{}, PJRT_Api {} bytes)",
        BINDINGS_VERSION.0,
        BINDINGS_VERSION.1,
        plugin.struct_size()
    ));
    report.extensions = plugin.extensions().iter().map(|e| crate::plugin::session::extension_name(e.kind)).collect();
    say!(format!("extensions: {}", report.extensions.join(", ")));
    plugin.initialize()?;
    report.timings_ms.load = millis(start);

    let gpu = client_options::is_gpu(backend, &plugin.extensions());
    let options = client_options::resolve(user_options, gpu);
    report.client_options = options.iter().map(|o| o.to_string()).collect();
    if !options.is_empty() {
        say!(format!("options:    {}", report.client_options.join(", ")));
    }
    let named = client_options::NamedValues::new(&options);
    phase!("client");
    let start = Instant::now();
    let client = Client::create_with(&plugin, &named)?;
    report.timings_ms.client = millis(start);
    phase!("devices");
    report.platform_name = Some(client.platform_name()?);
    report.platform_version = Some(client.platform_version()?);
    say!(format!(
        "platform:   {} {}",
        report.platform_name.as_deref().unwrap_or_default(),
        report.platform_version.as_deref().unwrap_or_default()
    ));
    let devices = client.addressable_devices()?;
    for &device in &devices {
        let info = client.describe(device)?;
        say!(format!("device:     {} {} ({})", info.id, info.kind, info.description));
        report.devices.push(info);
    }
    let Some(&device) = devices.first() else {
        return Err(Failure::Error(anyhow::anyhow!("the client has no addressable device")));
    };

    phase!("compile");
    let start = Instant::now();
    let executable = client.compile(PROGRAM, "mlir", &compile_options::single_device())?;
    report.timings_ms.compile = millis(start);

    phase!("transfer");
    let start = Instant::now();
    let a = client.buffer_from_f32(&INPUT_A, &DIMS, device)?;
    let b = client.buffer_from_f32(&INPUT_B, &DIMS, device)?;
    report.timings_ms.transfer = millis(start);

    phase!("execute");
    let start = Instant::now();
    let outputs = executable.execute(&[&a, &b])?;
    report.timings_ms.execute = millis(start);
    let [output] = outputs.as_slice() else {
        return Err(Failure::Mismatch(format!("the program has one output, the plugin returned {}", outputs.len())));
    };

    phase!("readback");
    let start = Instant::now();
    let result = output.to_f32()?;
    report.timings_ms.readback = millis(start);
    report.result = Some(result.clone());
    phase!("teardown");
    drop(outputs);
    drop(a);
    drop(b);
    drop(executable);
    drop(client);
    if result != report.expected {
        return Err(Failure::Mismatch(format!(
            "(a + b) * a with a = {INPUT_A:?}, b = {INPUT_B:?}: the plugin computed {result:?}, expected {:?}",
            report.expected
        )));
    }
    Ok(())
}
