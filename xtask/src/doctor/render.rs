//! The doctor's report as text: the findings, worst first within their
//! order, then how each library was resolved.

use std::fmt::Write as _;

use super::Report;
use crate::plugin::diagnosis::Status;
use crate::plugin::ldso::Reason;

pub fn text(report: &Report) -> String {
    let d = &report.diagnosis;
    let mut out = String::new();
    let pinned = report.pinned.as_ref().map(|p| format!(" ({} {}, {})", p.name, p.version, p.backend)).unwrap_or_default();
    let _ = writeln!(out, "plugin:  {}{pinned}", d.plugin.display());
    if let Some(elf) = &d.elf {
        let _ = writeln!(out, "         {elf}");
    }
    let cpu = d.host.cpu.as_deref().map(|c| format!(", {c}")).unwrap_or_default();
    let _ =
        writeln!(out, "host:    {}{cpu}; loader {} (configuration from {})", d.host.machine, d.host.loader.display(), d.host.loader_config);
    if let Some(llp) = &d.host.ld_library_path {
        let _ = writeln!(out, "         LD_LIBRARY_PATH={llp}");
    }
    out.push('\n');
    for f in &d.findings {
        let _ = writeln!(out, "{:<6} {}", format!("[{}]", f.status.label()), f.check);
        let _ = writeln!(out, "       why: {}", f.why);
        if !f.todo.is_empty() {
            let _ = writeln!(out, "       do:  {}", f.todo);
        }
    }
    if !d.libraries.is_empty() {
        out.push_str("\nlibraries, as the loader resolves them (\"opened\": a guess from the binary's strings):\n");
        for lib in &d.libraries {
            let kind = match lib.reason {
                Reason::Needed => "needed",
                Reason::Dlopen { .. } => "opened",
            };
            match (&lib.path, &lib.via) {
                (Some(path), Some(via)) => {
                    let _ = writeln!(out, "  {kind:<6} {} => {} ({via}; asked by {})", lib.name, path.display(), lib.requested_by);
                }
                _ => {
                    let _ = writeln!(out, "  {kind:<6} {} => not found (asked by {})", lib.name, lib.requested_by);
                }
            }
        }
    }
    let counts = |s: Status| d.findings.iter().filter(|f| f.status == s).count();
    let verdict = match report.status {
        Status::Ok => "ok: nothing stops this plugin here".to_owned(),
        Status::Warn => format!("ok with {} warning(s): it should load and run here", counts(Status::Warn)),
        Status::Fail => {
            format!("FAIL: {} failure(s), {} warning(s): it will not load or run here as it is", counts(Status::Fail), counts(Status::Warn))
        }
    };
    let _ = writeln!(out, "\nverdict: {verdict} (static part {:.0} ms)", d.static_ms);
    out
}
