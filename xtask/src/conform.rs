//! `cargo xtask conform PLUGIN`: a version-aware conformance suite for a
//! PJRT plugin; `--matrix`: the plugin x API version x check table of every
//! pinned plugin that runs here; `--history`: the table of the PJRT C API's
//! history that makes the suite version-aware.
//!
//! The parent process never loads the plugin. The checks run in child
//! processes (forked from one load of the plugin, see `zygote`, or this
//! executable in `--child CHECKS` mode), dealt into lanes (see `lanes`),
//! each reporting its checks as they begin and end; when a child crashes or
//! hangs, the check it was in fails with the signal's name and a new child
//! resumes after it. The report always completes.

// PJRT constants keep their C names, as the header spells them.
#![allow(non_upper_case_globals)]

pub(crate) mod checks;
pub(crate) mod harness;
mod history;
mod lanes;
mod matrix;
mod report;
mod together;
mod worker;
mod zygote;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pjrt_sys::history as api_history;
use pjrt_sys::loader::BINDINGS_VERSION;

use crate::plugin::child;
use crate::plugin::client_options::{self, ClientOption};
use crate::xla_repo::XlaRepoArg;
use harness::Ctx;
use report::{CheckResult, Report};

pub use history::{recorded_tip, TABLE_PATH as HISTORY_TABLE_PATH};
pub use matrix::MATRIX_PATH;

/// Exit status when a check failed (with `--baseline`: when a check fails
/// that did not fail in the baseline).
pub const EXIT_FAILED: u8 = 2;

#[derive(Debug, clap::Args)]
#[command(
    about = "Version-aware conformance checks of a PJRT plugin; the plugin x API compatibility matrix",
    long_about = "Run the conformance suite on a PJRT plugin: the API struct and its version, plugin attributes, \
the client and platform, devices and their descriptions, memories and their kinds, a host -> device -> host \
round trip of every element type (bit for bit), shapes and layouts, compiling StableHLO, executable properties, \
serialization, execution with several arguments and outputs, buffer donation, events and their callbacks, \
errors (each must be a PJRT_Error with a code, never a crash), the extension chain and the extensions' own \
entry points.\n\n\
Version-aware: every PJRT call goes through a gate that knows, from XLA's history \
(crates/pjrt-sys/src/history_table.rs), which PJRT version introduced it; a member past the plugin's \
struct_size is UNSUPPORTED and never called. The checks run in child processes: a check that \
crashes or hangs the plugin FAILs with the signal's name and the report still completes.\n\n\
Results: PASS, FAIL, UNSUPPORTED (the plugin does not offer it), SKIP (a prerequisite is missing), each \
with a reason.\n\n\
PLUGIN is a path to a plugin shared library, or the name of a prebuilt plugin pinned in pins.toml \
([prebuilt.NAME]), downloaded and verified first.\n\n\
--matrix runs every pinned plugin that runs on this machine and writes docs/compat-matrix.md; \
--history regenerates the history table from an XLA repository. With --check, either fails (exit 2) \
when the checked-in file is stale.",
    after_help = "Examples:\n  cargo xtask conform xla-cpu-pjrt\n  cargo xtask conform ./libpjrt_cpu.so --json > report.json\n  \
cargo xtask conform ./libpjrt_cpu.so --baseline report.json\n  cargo xtask conform jax-cuda12-pjrt --client-option memory_fraction=0.2\n  \
cargo xtask conform --matrix --check\n  XLA_REPO=~/src/xla cargo xtask conform --history --check\n\n\
Exit status: 0 no check failed (with --baseline: no check fails that did not fail in the baseline; \
--matrix/--history: written or up to date), 2 a check failed (with --baseline: a new failure; \
--check: the file is stale), 1 error (the plugin file is missing, bad arguments, an unreadable baseline)."
)]
pub struct Args {
    /// Path to a plugin `.so`, or the name of a pinned prebuilt plugin.
    #[arg(value_name = "PLUGIN", required_unless_present_any = ["matrix", "history", "together"])]
    pub plugin: Option<String>,
    /// Print the JSON report on stdout (schema in docs/conform.md).
    #[arg(long)]
    pub json: bool,
    /// Compare with an earlier JSON report: print what changed; exit 2 only
    /// for checks that fail now and did not then.
    #[arg(long, value_name = "REPORT.json")]
    pub baseline: Option<PathBuf>,
    /// A PJRT client option, NAME=VALUE or NAME:TYPE=VALUE (TYPE: bool,
    /// int64, float, string, int64_list); repeatable. GPU plugins get
    /// preallocate=false unless set here.
    #[arg(long = "client-option", value_name = "K=V", value_parser = client_options::parse)]
    pub client_options: Vec<ClientOption>,
    /// Print every check, not only those that did not pass.
    #[arg(long, short)]
    pub verbose: bool,
    /// Seconds a process of checks may run before it is killed (the check
    /// it was in fails, the others go on).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
    /// Nix system of a prebuilt plugin to fetch (default: this machine's).
    #[arg(long, value_name = "SYSTEM")]
    pub system: Option<String>,
    /// At most N processes side by side, each a lane of checks (default:
    /// the number of CPUs, at least 3; 1 for GPU and TPU plugins).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Start every process afresh, each loading the plugin, instead of
    /// forking them from one load (for a plugin that misbehaves when its
    /// process is forked after loading it).
    #[arg(long)]
    pub no_fork: bool,
    /// Run every pinned plugin that runs here; write docs/compat-matrix.md.
    #[arg(long, conflicts_with_all = ["plugin", "baseline", "json"])]
    pub matrix: bool,
    /// Regenerate crates/pjrt-sys/src/history_table.rs from XLA history.
    #[arg(long, conflicts_with_all = ["plugin", "matrix", "baseline", "json"])]
    pub history: bool,
    /// With --history: the XLA commit whose history to tabulate (default:
    /// the one the table records).
    #[arg(long, value_name = "REV", requires = "history")]
    pub tip: Option<String>,
    /// With --matrix or --history: write nothing, exit 2 if the file is stale.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub xla_repo: XlaRepoArg,
    /// Load these plugins (paths or pinned names) into one process, a client
    /// and a computation on each; report crashes, symbol interposition and
    /// platform-name collisions.
    #[arg(long, value_name = "PLUGIN", num_args = 2.., conflicts_with_all = ["plugin", "matrix", "history", "baseline"])]
    pub together: Vec<String>,
    /// With --together: the flags dlopen gets (local: RTLD_NOW|RTLD_LOCAL, what a binding should use).
    #[arg(long, value_enum, default_value_t = together::Dlopen::Local)]
    pub dlopen: together::Dlopen,
    /// Child mode of --together.
    #[arg(long, hide = true)]
    pub together_child: bool,
    /// Child mode of --together: each plugin's pinned backend ("-": none).
    #[arg(long, hide = true)]
    pub together_backend: Vec<String>,
    /// Child mode: run these checks (comma-separated group names and check
    /// ids, in order) on PLUGIN (a path) in this process.
    #[arg(long, value_name = "CHECKS", hide = true)]
    pub child: Option<String>,
    /// Fork-server mode: load PLUGIN, then fork a worker for each order
    /// written in --orders (see conform/zygote.rs).
    #[arg(long, hide = true)]
    pub zygote: bool,
    /// Fork-server mode: the directory the orders are written in.
    #[arg(long, value_name = "DIR", hide = true)]
    pub orders: Option<PathBuf>,
    /// Child mode: the pinned backend of the plugin (cuda12, cpu...).
    #[arg(long, hide = true)]
    pub backend: Option<String>,
    /// Child mode: where to write events.
    #[arg(long, hide = true)]
    pub events: Option<PathBuf>,
    /// Child mode: the file that records the PJRT call in flight.
    #[arg(long, hide = true)]
    pub in_flight: Option<PathBuf>,
    /// Child mode: WHAT=REASON, a prerequisite ("plugin", "client") whose
    /// making crashed an earlier child: checks that need it skip.
    #[arg(long, hide = true, value_parser = parse_broken)]
    pub broken: Vec<(String, String)>,
}

fn parse_broken(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| format!("`{s}` is not WHAT=REASON"))
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.history {
        return history::run(&args.xla_repo, args.tip.as_deref(), args.check);
    }
    if args.check && !args.matrix {
        bail!("--check goes with --matrix or --history");
    }
    if args.matrix {
        return matrix::run(args.timeout, args.jobs, args.check);
    }
    if args.together_child {
        if let Some(path) = &args.in_flight {
            pjrt_sys::in_flight::install(path).with_context(|| format!("cannot map the in-flight record {}", path.display()))?;
        }
        let mut events = child::Events::open(args.events.as_deref())?;
        let paths: Vec<PathBuf> = args.together.iter().map(PathBuf::from).collect();
        together::run_child(&paths, &args.together_backend, args.dlopen, &args.client_options, &mut events)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.together.is_empty() {
        let mut plugins = Vec::new();
        for name in &args.together {
            let (path, backend) = crate::plugin::locate::resolve(name, args.system.as_deref())?;
            plugins.push((name.clone(), path, backend));
        }
        let report = together::run(&plugins, args.dlopen, &args.client_options, Duration::from_secs(args.timeout))?;
        if args.json {
            crate::output::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
        } else {
            crate::output::emit(&report.to_text())?;
        }
        return Ok(if report.troubled() { ExitCode::from(EXIT_FAILED) } else { ExitCode::SUCCESS });
    }
    let plugin = args.plugin.clone().expect("clap requires PLUGIN without --matrix/--history");
    if args.zygote {
        let orders = args.orders.as_deref().context("--zygote needs --orders")?;
        if let Some(path) = &args.in_flight {
            pjrt_sys::in_flight::install(path).with_context(|| format!("cannot map the in-flight record {}", path.display()))?;
        }
        return zygote::serve(Path::new(&plugin), args.backend.clone(), orders, child::Events::open(args.events.as_deref())?);
    }
    if let Some(group) = &args.child {
        return run_child(group, &args);
    }
    let baseline = args.baseline.as_deref().map(report::Baseline::read).transpose()?;
    let (path, backend) = crate::plugin::locate::resolve(&plugin, args.system.as_deref())?;
    let progress = !args.json;
    let settings = Settings {
        client_options: &args.client_options,
        timeout: Duration::from_secs(args.timeout),
        jobs: args.jobs,
        fork: !args.no_fork,
        progress,
    };
    let report = conform(&plugin, &path, backend.as_deref(), &settings)?;
    let changes = baseline.as_ref().map(|b| report::compare(b, &report));
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(changes) = &changes {
            value["baseline"] = serde_json::to_value(changes)?;
        }
        crate::output::emit(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
    } else {
        crate::output::emit(&report.to_text(args.verbose))?;
        if let (Some(changes), Some(path)) = (&changes, &args.baseline) {
            crate::output::emit(&changes.to_text(&format!(
                "{} ({})",
                path.display(),
                baseline.as_ref().map(|b| b.plugin.as_str()).unwrap_or("?")
            )))?;
        }
    }
    let failed = match &changes {
        Some(changes) => !changes.regressions.is_empty(),
        None => report.failed(),
    };
    Ok(if failed {
        ExitCode::from(EXIT_FAILED)
    } else if report.harness_failed() {
        // The harness broke somewhere (ERROR): say so with the error status,
        // the report printed all the same.
        ExitCode::from(crate::output::EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

/// How a run goes, besides the plugin.
pub struct Settings<'a> {
    pub client_options: &'a [ClientOption],
    /// The time limit of each process.
    pub timeout: Duration,
    /// At most this many processes side by side (None: one per CPU).
    pub jobs: Option<usize>,
    /// Fork the processes from one load of the plugin (see `zygote`).
    pub fork: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Runs every check on the plugin at `path`, in child processes, and
/// assembles the report.
pub fn conform(label: &str, path: &Path, backend: Option<&str>, settings: &Settings) -> Result<Report> {
    let Settings { client_options: options, timeout, jobs, fork, progress } = *settings;
    let start = Instant::now();
    let mut report = Report {
        schema_version: report::SCHEMA_VERSION,
        plugin: label.to_string(),
        path: Some(path.to_path_buf()),
        bindings_api_version: format!("{}.{}", BINDINGS_VERSION.0, BINDINGS_VERSION.1),
        history_newest_api_version: format!("0.{}", api_history::NEWEST_MINOR),
        ..Default::default()
    };
    let groups = checks::groups();
    let total: usize = groups.iter().map(|g| g.checks.len()).sum();
    let bar = if progress {
        indicatif::ProgressBar::with_draw_target(Some(total as u64), indicatif::ProgressDrawTarget::stderr_with_hz(8))
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} conform {pos}/{len} {wide_msg}").expect("valid template"));
    let groups: Vec<(&'static str, Vec<String>)> =
        groups.iter().map(|g| (g.name, g.checks.iter().map(|c| c.id.clone()).collect())).collect();
    // An accelerator plugin takes its device once per client: one process
    // at a time. So does a plugin whose extensions (reported by the lead
    // lane) say it is one: the gate stops the other lanes, whose checks then
    // run after the lead.
    let accelerator = backend.is_some_and(|b| b != "cpu");
    // At least three by default: the third lane holds the checks plugins
    // crash in, and mostly waits on the plugin's own crash handler (abseil
    // symbolizing its stack trace: some 17,000 small reads of the plugin
    // file on fastatomstruct's CHECK failure), not on a CPU.
    let default_jobs = || std::thread::available_parallelism().map_or(1, |n| n.get()).max(3);
    let jobs = if accelerator { 1 } else { jobs.unwrap_or_else(default_jobs) }.max(1);
    let plan = lanes::plan(&groups, jobs);
    let found_accelerator = |info: &[serde_json::Value]| {
        info.iter()
            .filter_map(|i| i.get("extensions")?.as_array())
            .flatten()
            .any(|e| matches!(e.get("name").and_then(|n| n.as_str()), Some("Gpu_Custom_Call" | "TpuTopology" | "TpuExecutable")))
    };
    // One load of the plugin, forked for every process, where it allows. A
    // load that crashes or hangs is api.load's failure, and not tried again.
    let mut plan = plan;
    let mut preset: Option<lanes::LaneRun> = None;
    let started = if fork { zygote::Zygote::start(path, backend, options, timeout)? } else { zygote::Started::Declined };
    let zygote = match started {
        zygote::Started::Serving(z) => Some(z),
        zygote::Started::Declined => None,
        zygote::Started::DiedLoading(ending, record) => {
            preset = Some(lanes::died_loading(ending, &record));
            plan[0].retain(|id| id != "api.load");
            None
        }
    };
    let initial_broken = preset.as_ref().map(|p| p.broken.clone()).unwrap_or_default();
    let setup = lanes::Setup { path, backend, options, timeout, bar: &bar, accelerator: &found_accelerator, zygote: zygote.as_ref() };
    let gate = lanes::Gate::default();
    let done: std::sync::Mutex<Vec<Option<Result<lanes::LaneRun>>>> = std::sync::Mutex::new((0..plan.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for (index, ids) in plan.iter().enumerate() {
            let role = match (index, plan.len()) {
                (_, 1) => lanes::Role::Alone,
                (0, _) => lanes::Role::Lead(&gate),
                _ => lanes::Role::Gated(&gate),
            };
            let (done, setup, gate, initial_broken) = (&done, &setup, &gate, &initial_broken);
            scope.spawn(move || {
                let run = lanes::run_lane(setup, ids, role, initial_broken);
                // Whatever happened to the lead, the others are not left waiting.
                if matches!(role, lanes::Role::Lead(_)) {
                    gate.open(lanes::Word::Stop);
                }
                done.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(run);
            });
        }
    });
    let mut runs: Vec<lanes::LaneRun> = preset.into_iter().collect();
    for run in done.into_inner().unwrap_or_else(|p| p.into_inner()) {
        runs.push(run.expect("every lane ran")?);
    }
    // The checks of stopped lanes, after the lead, in one process.
    let broken: BTreeMap<String, String> = runs.iter().flat_map(|r| r.broken.clone()).collect();
    let unreported: BTreeSet<String> = runs.iter().flat_map(|r| r.unreported.iter().cloned()).collect();
    if !unreported.is_empty() {
        let ids: Vec<String> = lanes::plan(&groups, 1).remove(0).into_iter().filter(|id| unreported.contains(id)).collect();
        runs.push(lanes::run_lane(&setup, &ids, lanes::Role::Alone, &broken)?);
    }
    // Back in the order of the groups.
    let mut results: BTreeMap<String, CheckResult> = BTreeMap::new();
    for run in runs {
        for info in &run.info {
            report.absorb_info(info);
        }
        results.extend(run.results.into_iter().map(|r| (r.id.clone(), r)));
        report.crashed.extend(run.crashed);
        report.broken.extend(run.broken);
        report.processes.started += run.processes.started;
        report.processes.forked += run.processes.forked;
    }
    // The fork server, serving or not.
    report.processes.started += usize::from(fork);
    let order: Vec<&String> = groups.iter().flat_map(|(_, ids)| ids.iter()).collect();
    report.crashed.sort_by_key(|id| order.iter().position(|o| *o == id));
    report.checks.extend(groups.iter().flat_map(|(_, ids)| ids.iter()).filter_map(|id| results.remove(id)));
    bar.finish_and_clear();
    report.wall_ms = start.elapsed().as_secs_f64() * 1000.0;
    report.count();
    Ok(report)
}

/// Child mode: runs the checks named in `checks` here, emitting events.
fn run_child(checks: &str, args: &Args) -> Result<ExitCode> {
    if let Some(path) = &args.in_flight {
        pjrt_sys::in_flight::install(path).with_context(|| format!("cannot map the in-flight record {}", path.display()))?;
    }
    let path = PathBuf::from(args.plugin.as_deref().expect("child mode has a plugin"));
    let events = child::Events::open(args.events.as_deref())?;
    let mut ctx = Ctx::new(path, args.backend.clone(), args.client_options.clone(), events);
    for (what, reason) in &args.broken {
        ctx.mark_broken(what, reason);
    }
    worker::run(&mut ctx, checks)?;
    worker::end()
}
