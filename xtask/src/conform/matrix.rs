//! `cargo xtask conform --matrix [--check]`: every pinned plugin that has a
//! build for this machine, through the whole suite; the results as
//! docs/compat-matrix.md (plugin x API version x check).
//!
//! Only statuses go in the file, and the reasons of failures: what a
//! plugin computes (fingerprints, sizes, timings) would make `--check`
//! fail for nothing.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use pjrt_sys::history;

use super::harness::Status;
use super::report::Report;
use crate::pinfile::{host_system, Pins};

/// The generated page, relative to the project root.
pub const MATRIX_PATH: &str = "docs/compat-matrix.md";

/// Exit status of `--check` when the page is stale.
pub const EXIT_STALE: u8 = 2;

/// One column: a pinned plugin and what happened to it here.
struct Column {
    name: String,
    version: String,
    backend: String,
    outcome: Result<Report, String>,
    /// For a plugin that does not load here: what it needs, as `doctor`
    /// finds it.
    needs: Vec<String>,
}

pub fn run(timeout: u64, jobs: Option<usize>, check: bool) -> Result<ExitCode> {
    let root = crate::project::root()?;
    let pins = Pins::load(&crate::project::pins_toml()?)?;
    let system = host_system();
    let mut columns = Vec::new();
    for (name, pin) in &pins.prebuilt {
        if !pin.platforms.contains_key(&system) {
            continue;
        }
        eprintln!("conform --matrix: {name} {} ...", pin.version);
        let path = crate::plugin::locate::fetch_plugin(name, Some(&system)).map_err(|e| format!("{e:#}"));
        let outcome = path.clone().and_then(|path| {
            let settings =
                super::Settings { client_options: &[], timeout: Duration::from_secs(timeout), jobs, fork: true, progress: false };
            super::conform(name, &path, Some(&pin.backend), &settings).map_err(|e| format!("{e:#}"))
        });
        let needs = match (&path, &outcome) {
            (Ok(path), Ok(report)) if report.api_version.is_none() => {
                crate::plugin::diagnosis::diagnose(path, &crate::plugin::diagnosis::Options::from_pins(Some(name), Some(&pin.backend)))
                    .blockers()
            }
            _ => Vec::new(),
        };
        columns.push(Column { name: name.clone(), version: pin.version.clone(), backend: pin.backend.clone(), outcome, needs });
    }
    // Plugins together, as a binding loads them: the CPU plugins, then the
    // CPU plugins with a CUDA plugin beside them.
    let mut together = Vec::new();
    let cpu: Vec<(String, PathBuf, Option<String>)> = columns
        .iter()
        .filter(|c| c.backend == "cpu" && c.outcome.is_ok())
        .filter_map(|c| c.outcome.as_ref().ok()?.path.clone().map(|p| (c.name.clone(), p, Some(c.backend.clone()))))
        .collect();
    let cuda = columns
        .iter()
        .find(|c| c.backend.starts_with("cuda") && c.outcome.as_ref().is_ok_and(|r| r.api_version.is_some()))
        .and_then(|c| c.outcome.as_ref().ok()?.path.clone().map(|p| (c.name.clone(), p, Some(c.backend.clone()))));
    if cpu.len() >= 2 {
        let mut sets = vec![cpu.clone()];
        if let Some(cuda) = cuda {
            sets.push(cpu.iter().cloned().chain([cuda]).collect());
        }
        for set in sets {
            eprintln!("conform --matrix: together: {} ...", set.iter().map(|p| p.0.as_str()).collect::<Vec<_>>().join(", "));
            let outcome =
                super::together::run(&set, super::together::Dlopen::Local, &[], Duration::from_secs(timeout)).map_err(|e| format!("{e:#}"));
            together.push((set.iter().map(|p| p.0.clone()).collect::<Vec<_>>(), outcome));
        }
    }
    let page = render(&system, &columns, &together);
    let target = root.join(MATRIX_PATH);
    let current = std::fs::read_to_string(&target).unwrap_or_default();
    if check {
        if current == page {
            eprintln!("{MATRIX_PATH} is up to date ({} plugins on {system})", columns.len());
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("{MATRIX_PATH} is stale: run `cargo xtask conform --matrix` and commit the result. Differences:");
        for (old, new) in current.lines().zip(page.lines()).filter(|(a, b)| a != b).take(20) {
            eprintln!("  - {old}\n  + {new}");
        }
        if current.lines().count() != page.lines().count() {
            eprintln!("  ({} lines checked in, {} now)", current.lines().count(), page.lines().count());
        }
        return Ok(ExitCode::from(EXIT_STALE));
    }
    crate::fsutil::write_atomic(&target, page.as_bytes())?;
    eprintln!("wrote {MATRIX_PATH}: {} plugins on {system}", columns.len());
    Ok(ExitCode::SUCCESS)
}

fn cell(status: Option<Status>) -> &'static str {
    match status {
        Some(Status::Pass) => "PASS",
        Some(Status::Fail) => "**FAIL**",
        Some(Status::Unsupported) => "unsupported",
        Some(Status::Skip) => "skip",
        Some(Status::Error) => "harness error",
        None => "-",
    }
}

/// Markdown cell text: no pipes, no newlines.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A reason as the page shows it: the plugin's path (under this machine's
/// cache directory) shortened to its file name, so the page is the same on
/// every machine.
fn portable(text: &str, report: &Report) -> String {
    match &report.path {
        Some(path) => {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            escape(&text.replace(&path.display().to_string(), &name))
        }
        None => escape(text),
    }
}

/// A column's heading: the plugin and the PJRT version it reports.
fn heading(column: &Column, report: &Report) -> String {
    format!("{} {}", column.name, report.api_version.as_deref().unwrap_or("(does not load)"))
}

type TogetherRun = (Vec<String>, Result<super::together::Together, String>);

fn render(system: &str, columns: &[Column], together: &[TogetherRun]) -> String {
    let mut out = String::new();
    out.push_str("<!-- generated by `cargo xtask conform --matrix`, do not edit. -->\n\n");
    out.push_str("# PJRT plugin compatibility matrix\n\n");
    let _ = writeln!(
        out,
        "Every plugin pinned in `pins.toml` that has a build for {system}, run through `cargo xtask conform` \
         (bindings at PJRT {}.{}, API history to PJRT 0.{}, XLA {:.12}), on a machine without a GPU: \
         GPU plugins load, report their version and extensions, and fail at client creation, \
         which leaves the checks that need a client skipped. \
         What each check does and what the results mean: [conform.md](conform.md). \
         Regenerate with `cargo xtask conform --matrix`; CI runs `--matrix --check`.\n",
        pjrt_sys::loader::BINDINGS_VERSION.0,
        pjrt_sys::loader::BINDINGS_VERSION.1,
        history::NEWEST_MINOR,
        history::TIP_COMMIT
    );
    out.push_str(
        "## Plugins\n\n| plugin | version | backend | PJRT API | PJRT_Api bytes | extensions | pass | FAIL | unsupported | skip |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for c in columns {
        match &c.outcome {
            Ok(r) => {
                let n = |s: Status| r.counts.get(s.as_str()).copied().unwrap_or(0);
                let extensions: Vec<String> =
                    r.extensions.iter().map(|e| e.name.clone().unwrap_or_else(|| format!("type {}", e.kind))).collect();
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    c.name,
                    c.version,
                    c.backend,
                    r.api_version.as_deref().unwrap_or("-"),
                    r.api_struct_size.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                    if extensions.is_empty() { "-".into() } else { extensions.join(", ") },
                    n(Status::Pass),
                    n(Status::Fail),
                    n(Status::Unsupported),
                    n(Status::Skip)
                );
            }
            Err(e) => {
                let _ = writeln!(out, "| {} | {} | {} | not run: {} | | | | | | |", c.name, c.version, c.backend, escape(e));
            }
        }
    }
    if columns.iter().any(|c| !c.needs.is_empty()) {
        out.push_str("\n## What the plugins that do not load here need\n\n");
        out.push_str("As `cargo xtask doctor PLUGIN` finds it without loading the plugin: each library the loader does not find, with what provides it.\n\n");
        for c in columns.iter().filter(|c| !c.needs.is_empty()) {
            let _ = writeln!(out, "- {} {}: {}", c.name, c.version, escape(&c.needs.join("; ")));
        }
    }
    let ran: Vec<(&Column, &Report)> = columns.iter().filter_map(|c| c.outcome.as_ref().ok().map(|r| (c, r))).collect();
    out.push_str("\n## Checks\n\n| check |");
    for (c, r) in &ran {
        let _ = write!(out, " {} |", heading(c, r));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(ran.len()));
    out.push('\n');
    let mut ids: Vec<&str> = Vec::new();
    for (_, r) in &ran {
        for check in &r.checks {
            if !ids.contains(&check.id.as_str()) {
                ids.push(&check.id);
            }
        }
    }
    for id in ids {
        let _ = write!(out, "| `{id}` |");
        for (_, r) in &ran {
            let _ = write!(out, " {} |", cell(r.checks.iter().find(|c| c.id == id).map(|c| c.status)));
        }
        out.push('\n');
    }
    out.push_str("\n## Failures\n\n");
    let mut any = false;
    for (c, r) in &ran {
        for check in r.checks.iter().filter(|c| c.status == Status::Fail) {
            any = true;
            let _ = writeln!(out, "- {}, `{}`: {}", heading(c, r), check.id, portable(&check.detail, r));
        }
    }
    if !any {
        out.push_str("None.\n");
    }
    let errors: Vec<String> = ran
        .iter()
        .flat_map(|(c, r)| {
            r.checks
                .iter()
                .filter(|k| k.status == Status::Error)
                .map(move |k| format!("- {}, `{}`: {}", heading(c, r), k.id, portable(&k.detail, r)))
        })
        .collect();
    if !errors.is_empty() {
        out.push_str("\n## Harness errors (pjrtpkgs' fault, not the plugins')\n\n");
        for e in errors {
            let _ = writeln!(out, "{e}");
        }
    }
    render_together(&mut out, together);
    out
}

/// The `--together` runs: what each plugin did beside the others, symbols
/// they share and where they bind, platform names.
fn render_together(out: &mut String, runs: &[TogetherRun]) {
    if runs.is_empty() {
        return;
    }
    out.push_str(
        "\n## Plugins together\n\n`cargo xtask conform --together` with the pinned plugins loaded into one process \
         (`RTLD_NOW|RTLD_LOCAL`, as a binding should load them), a client and `(a + b) * a` on each; \
         bindings as glibc's dynamic linker reports them (`LD_DEBUG=bindings`, `LD_BIND_NOW`).\n",
    );
    for (names, outcome) in runs {
        let _ = writeln!(out, "\n### {}\n", names.join(" + "));
        let r = match outcome {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(out, "Not run: {}", escape(e));
                continue;
            }
        };
        out.push_str("| plugin | PJRT API | load | client | platform | computation |\n|---|---|---|---|---|---|\n");
        for m in &r.members {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                m.plugin,
                m.api_version.as_deref().unwrap_or("-"),
                escape(m.load.as_deref().unwrap_or("not reached")),
                escape(m.client.as_deref().unwrap_or("not reached")),
                m.platform.as_deref().unwrap_or("-"),
                escape(m.compute.as_deref().unwrap_or("not reached"))
            );
        }
        let _ = writeln!(out, "\n- process: {}", escape(&r.ending));
        let shared: Vec<String> = r.shared.iter().take(8).map(|s| format!("`{}`", s.symbol)).collect();
        let _ = writeln!(
            out,
            "- exported symbols besides `GetPjrtApi` defined by two or more plugins: {}{}",
            r.shared_symbols,
            if shared.is_empty() {
                String::new()
            } else {
                format!(" ({}{})", shared.join(", "), if r.shared_symbols > 8 { ", ..." } else { "" })
            }
        );
        let label = |file: &str| {
            r.members
                .iter()
                .find(|m| m.path.file_name().is_some_and(|f| f.to_string_lossy() == file))
                .map_or(file.to_string(), |m| m.plugin.clone())
        };
        let libraries: Vec<String> = r
            .shared_libraries
            .iter()
            .map(|l| {
                let copies = match l.loaded.len() {
                    0 => "not loaded".to_string(),
                    1 => "one copy".to_string(),
                    n => format!("{n} copies"),
                };
                format!("`{}` ({}; {copies})", l.name, l.needed_by.iter().map(|f| label(f)).collect::<Vec<_>>().join(", "))
            })
            .collect();
        let _ = writeln!(
            out,
            "- libraries (DT_NEEDED) two or more plugins need: {}",
            if libraries.is_empty() { "none".to_string() } else { libraries.join(", ") }
        );
        let _ = writeln!(
            out,
            "- interposition (a plugin's references bound to another plugin's copy): {}",
            if r.interposed.is_empty() { "none".to_string() } else { escape(&r.interposed.join("; ")) }
        );
        let _ = writeln!(
            out,
            "- platform names: {}",
            if r.platform_collisions.is_empty() { "no collision".to_string() } else { escape(&r.platform_collisions.join("; ")) }
        );
    }
}
