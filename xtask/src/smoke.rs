//! `cargo xtask smoke PLUGIN`: load a PJRT plugin, run a real computation
//! on it and check the numbers.

pub mod compile_options;
mod session;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use pjrt_sys::loader::{Plugin, BINDINGS_VERSION};
use serde::Serialize;

use session::{Client, DeviceInfo};

/// Exit status when the plugin ran but computed wrong numbers.
pub const EXIT_MISMATCH: u8 = 2;

/// The program: `(a + b) * a` on 2x2 f32 tensors, StableHLO as MLIR text.
pub const PROGRAM: &str = r#"module @smoke {
  func.func public @main(%a: tensor<2x2xf32>, %b: tensor<2x2xf32>) -> tensor<2x2xf32> {
    %sum = stablehlo.add %a, %b : tensor<2x2xf32>
    %product = stablehlo.multiply %sum, %a : tensor<2x2xf32>
    return %product : tensor<2x2xf32>
  }
}
"#;
const INPUT_A: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
const INPUT_B: [f32; 4] = [0.5, -1.0, 10.0, 0.25];
const DIMS: [i64; 2] = [2, 2];

/// What the program computes, evaluated here on the host.
fn expected() -> Vec<f32> {
    INPUT_A.iter().zip(INPUT_B).map(|(a, b)| (a + b) * a).collect()
}

#[derive(Debug, clap::Args)]
#[command(
    about = "Load a plugin, run a real computation on it and check the numbers",
    long_about = "Load a PJRT plugin with the crates/pjrt-sys loader, check its PJRT API version, \
initialize it, create a client, list its devices, compile a small StableHLO program \
((a + b) * a on 2x2 f32), copy the inputs to the first device, execute, copy the result back \
and compare it with the same arithmetic done on the host. Reports the time of each phase.\n\n\
PLUGIN is a path to a plugin shared library, or the name of a prebuilt plugin pinned in \
pins.toml ([prebuilt.NAME]), which is downloaded and verified first.",
    after_help = "Examples:\n  cargo xtask smoke ./libpjrt_cpu.so\n  cargo xtask smoke xla-cpu-pjrt --json\n\n\
Exit status: 0 the numbers match, 2 wrong numbers, 1 any error (the plugin does not load, \
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
}

/// Everything the smoke test learned; printed as text or JSON.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub plugin: String,
    pub path: Option<PathBuf>,
    pub bindings_api_version: String,
    pub api_version: Option<String>,
    pub api_struct_size: Option<usize>,
    pub extensions: Vec<String>,
    pub platform_name: Option<String>,
    pub platform_version: Option<String>,
    pub devices: Vec<DeviceInfo>,
    pub expected: Vec<f32>,
    pub result: Option<Vec<f32>>,
    pub timings_ms: Timings,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
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

pub fn run(args: Args) -> Result<ExitCode> {
    let mut report = Report {
        plugin: args.plugin.clone(),
        bindings_api_version: format!("{}.{}", BINDINGS_VERSION.0, BINDINGS_VERSION.1),
        expected: expected(),
        ..Default::default()
    };
    let outcome =
        resolve_plugin(&args.plugin, args.system.as_deref()).map_err(Failure::Error).and_then(|path| smoke(&path, &mut report, !args.json));
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
            ExitCode::from(crate::cli::EXIT_ERROR)
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let t = &report.timings_ms;
        let ms = |v: Option<f64>| v.map(|v| format!("{v:.2} ms")).unwrap_or_else(|| "-".into());
        if report.ok {
            println!("result:     {:?} (matches)", report.result.as_deref().unwrap_or_default());
        }
        println!(
            "timings:    load {}, client {}, compile {}, transfer {}, execute {}, readback {}",
            ms(t.load),
            ms(t.client),
            ms(t.compile),
            ms(t.transfer),
            ms(t.execute),
            ms(t.readback)
        );
    }
    if let Some(error) = &report.error {
        eprintln!("error: smoke test of {} failed: {error}", args.plugin);
    }
    Ok(code)
}

/// A path (anything with a `/` or ending in `.so`, or an existing file)
/// is used as is; anything else names a pinned prebuilt plugin.
fn resolve_plugin(plugin: &str, system: Option<&str>) -> Result<PathBuf> {
    let path = Path::new(plugin);
    if plugin.contains('/') || plugin.ends_with(".so") || path.is_file() {
        if !path.is_file() {
            anyhow::bail!("plugin file {plugin} does not exist");
        }
        return Ok(path.to_path_buf());
    }
    crate::prebuilt::fetch_plugin(plugin, system)
}

fn millis(since: Instant) -> Option<f64> {
    Some(since.elapsed().as_secs_f64() * 1000.0)
}

fn smoke(path: &Path, report: &mut Report, text: bool) -> Result<(), Failure> {
    report.path = Some(path.to_path_buf());
    let say = |line: String| {
        if text {
            println!("{line}");
        }
    };
    let start = Instant::now();
    let plugin = Plugin::load(path)?;
    let (major, minor) = plugin.api_version();
    report.api_version = Some(format!("{major}.{minor}"));
    report.api_struct_size = Some(plugin.struct_size());
    say(format!("plugin:     {}", path.display()));
    say(format!(
        "PJRT API:   {major}.{minor} (bindings {}.{}, PJRT_Api {} bytes)",
        BINDINGS_VERSION.0,
        BINDINGS_VERSION.1,
        plugin.struct_size()
    ));
    report.extensions =
        plugin.extensions().iter().map(|e| e.name().map(str::to_string).unwrap_or_else(|| format!("unknown type {}", e.kind))).collect();
    say(format!("extensions: {}", report.extensions.join(", ")));
    plugin.initialize()?;
    report.timings_ms.load = millis(start);

    let start = Instant::now();
    let client = Client::create(&plugin)?;
    report.timings_ms.client = millis(start);
    report.platform_name = Some(client.platform_name()?);
    report.platform_version = Some(client.platform_version()?);
    say(format!(
        "platform:   {} {}",
        report.platform_name.as_deref().unwrap_or_default(),
        report.platform_version.as_deref().unwrap_or_default()
    ));
    let devices = client.addressable_devices()?;
    for &device in &devices {
        let info = client.describe(device)?;
        say(format!("device:     {} {} ({})", info.id, info.kind, info.description));
        report.devices.push(info);
    }
    let Some(&device) = devices.first() else {
        return Err(Failure::Error(anyhow::anyhow!("the client has no addressable device")));
    };

    let start = Instant::now();
    let executable = client.compile(PROGRAM, "mlir", &compile_options::single_device())?;
    report.timings_ms.compile = millis(start);

    let start = Instant::now();
    let a = client.buffer_from_f32(&INPUT_A, &DIMS, device)?;
    let b = client.buffer_from_f32(&INPUT_B, &DIMS, device)?;
    report.timings_ms.transfer = millis(start);

    let start = Instant::now();
    let outputs = executable.execute(&[&a, &b])?;
    report.timings_ms.execute = millis(start);
    let [output] = outputs.as_slice() else {
        return Err(Failure::Mismatch(format!("the program has one output, the plugin returned {}", outputs.len())));
    };

    let start = Instant::now();
    let result = output.to_f32()?;
    report.timings_ms.readback = millis(start);
    report.result = Some(result.clone());
    if result != report.expected {
        return Err(Failure::Mismatch(format!(
            "(a + b) * a with a = {INPUT_A:?}, b = {INPUT_B:?}: the plugin computed {result:?}, expected {:?}",
            report.expected
        )));
    }
    Ok(())
}
