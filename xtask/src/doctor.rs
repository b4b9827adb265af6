//! `cargo xtask doctor PLUGIN`: why a plugin will not load or run on this
//! machine, said before it crashes. The static diagnosis
//! ([`crate::plugin::diagnosis`]) never loads the plugin; then a child
//! process loads it, reads its PJRT version and creates a client, so that a
//! crash (SIGILL from an instruction this CPU lacks) is named and explained
//! instead of killing the diagnosis.

mod load;
mod render;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::plugin::diagnosis::{self, Diagnosis, Finding, Status};
use crate::plugin::gpu::cuda_driver::{self, DriverReport};

/// Exit status when something fails: the plugin will not load or run here.
pub const EXIT_FAIL: u8 = 2;

#[derive(Debug, clap::Args)]
#[command(
    about = "Why a plugin will not load or run here: libraries and their providers, symbol versions, CPU, GPU driver and targets",
    long_about = "Diagnose a PJRT plugin on this machine, first without loading it, so that a plugin that would crash is still diagnosed:\n\
- its ELF class and machine against this host;\n\
- every library it needs (DT_NEEDED, transitively) resolved as glibc's loader would (RPATH/RUNPATH, $ORIGIN, LD_LIBRARY_PATH, \
/etc/ld.so.cache, the default directories, glibc-hwcaps), and the libraries it opens at run time (a guess from the names in the binary); \
each missing one with what provides it (PyPI wheel, nixpkgs attribute, ROCm package, or the NVIDIA driver) and the command that gets it;\n\
- every symbol version it needs (GLIBC_, GLIBCXX_, CXXABI_, GCC_) against the libraries found here, and its undefined symbols;\n\
- the CPU extensions its code was compiled for against this CPU, telling the compiled-for baseline from kernels chosen at run time, \
with how sure that is;\n\
- for GPU plugins: the NVIDIA driver (its version, asked of libcuda in a child) against the CUDA release the plugin was built for, \
each device's compute capability against the SASS/PTX the plugin carries; for ROCm, the gfx targets it carries against the GPUs \
amdgpu lists.\n\
Then, in a child process, as `smoke` does: load it, read its PJRT version, create a client; a signal is named and explained.\n\n\
Each finding is ok, warn or FAIL, with one line of why and one of what to do.\n\n\
PLUGIN is a path to a plugin shared library, or the name of a prebuilt plugin pinned in pins.toml ([prebuilt.NAME]), \
downloaded and verified first.",
    after_help = "Examples:\n  cargo xtask doctor jax-cuda12-pjrt\n  cargo xtask doctor ./libpjrt_cpu.so --json\n  \
cargo xtask doctor xla-cpu-pjrt --system aarch64-linux   # a plugin built for another machine\n\n\
Exit status: 0 nothing fails (warnings may remain), 2 something fails (the plugin will not load or run here), \
1 the doctor could not do its job (no such file, not pinned, network)."
)]
pub struct Args {
    /// Path to a plugin `.so`, or the name of a pinned prebuilt plugin.
    #[arg(value_name = "PLUGIN")]
    pub plugin: String,
    /// Print the diagnosis as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Nix system of a prebuilt plugin to fetch (default: this machine's).
    #[arg(long, value_name = "SYSTEM")]
    pub system: Option<String>,
    /// Only the static part: do not load the plugin in a child process.
    #[arg(long)]
    pub no_load: bool,
    /// Seconds the child process may take to load the plugin and create a
    /// client before it is killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
    /// Child mode: `load` (the plugin at PLUGIN) or `cuda-driver` (the
    /// libcuda at PLUGIN).
    #[arg(long, hide = true, value_name = "MODE")]
    pub child: Option<String>,
    /// Child mode: the pinned backend of the plugin.
    #[arg(long, hide = true)]
    pub backend: Option<String>,
    /// Child mode: where to write events.
    #[arg(long, hide = true)]
    pub events: Option<PathBuf>,
}

/// What the doctor prints as JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    /// PLUGIN as given.
    pub plugin: String,
    /// The pinned name and backend, for a pinned plugin.
    pub pinned: Option<Pinned>,
    /// The worst finding, static and loaded together.
    pub status: Status,
    pub exit_code: u8,
    #[serde(flatten)]
    pub diagnosis: Diagnosis,
    /// The child's part: load, version, client.
    pub load: Option<load::Outcome>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pinned {
    pub name: String,
    pub version: String,
    pub backend: String,
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.child.as_deref() {
        Some("load") => return load::child(Path::new(&args.plugin), args.backend.as_deref(), args.events.as_deref()),
        Some("cuda-driver") => {
            let report = cuda_driver::query(Path::new(&args.plugin));
            crate::plugin::child::Events::open(args.events.as_deref())?.emit(&serde_json::json!({ "driver": report }));
            return Ok(ExitCode::SUCCESS);
        }
        Some(other) => anyhow::bail!("unknown child mode `{other}`"),
        None => {}
    }
    let (path, pinned) = locate(&args.plugin, args.system.as_deref())?;
    let mut options = diagnosis::Options::from_pins(pinned.as_ref().map(|p| p.name.as_str()), pinned.as_ref().map(|p| p.backend.as_str()));
    let timeout = Duration::from_secs(args.timeout);
    let query = |libcuda: &Path| query_driver(libcuda, timeout);
    options.query_cuda_driver = Some(&query);
    let mut diagnosis = diagnosis::diagnose(&path, &options);

    // A file no process here can map is not worth a child.
    let loadable = !diagnosis.findings.iter().any(|f| f.check == "elf" && f.status == Status::Fail);
    let load = (!args.no_load && loadable).then(|| load::in_child(&path, options.backend.as_deref(), timeout)).transpose()?;
    if let Some(outcome) = &load {
        let loaded: Vec<Finding> = outcome.findings(&diagnosis);
        diagnosis.findings.extend(loaded);
    }
    let status = diagnosis.status();
    let exit_code = if status == Status::Fail { EXIT_FAIL } else { 0 };
    let report = Report { plugin: args.plugin.clone(), pinned, status, exit_code, diagnosis, load };
    if args.json {
        crate::output::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        crate::output::emit(&render::text(&report))?;
    }
    Ok(ExitCode::from(exit_code))
}

/// PLUGIN as a path, or a pinned name fetched and verified.
fn locate(plugin: &str, system: Option<&str>) -> Result<(PathBuf, Option<Pinned>)> {
    let (path, _) = crate::plugin::locate::resolve(plugin, system)?;
    let path_given = plugin.contains('/') || plugin.ends_with(".so") || Path::new(plugin).is_file();
    if path_given {
        return Ok((path, None));
    }
    let pins = crate::pinfile::Pins::load(&crate::project::pins_toml()?)?;
    let pin = pins.prebuilt(plugin)?;
    Ok((path, Some(Pinned { name: plugin.to_owned(), version: pin.version.clone(), backend: pin.backend.clone() })))
}

/// Asks the libcuda at `libcuda` for its version and devices, in a child
/// process (the driver's code runs there, not here).
fn query_driver(libcuda: &Path, timeout: Duration) -> Result<DriverReport> {
    let argv: Vec<std::ffi::OsString> = vec!["--child".into(), "cuda-driver".into(), "--".into(), libcuda.into()];
    let mut report: Option<DriverReport> = None;
    let ending = crate::plugin::child::run("doctor", &argv, None, timeout, |event| {
        if let Some(value) = event.get("driver") {
            report = serde_json::from_value(value.clone()).ok();
        }
    })
    .context("cannot run the driver query in a child process")?;
    report.ok_or_else(|| anyhow::anyhow!("the child asking {} {}", libcuda.display(), ending.describe()))
}
