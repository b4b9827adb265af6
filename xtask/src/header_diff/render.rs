//! The three faces of a report: text for a terminal, Markdown for a
//! CHANGELOG or pull request, JSON (schema in docs/diff-headers.md).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value};

use super::{Abi, AbiVerdict, Change, ChangeKind, Compat, Report, Side, Verdict};

/// Bumped whenever a field of the JSON output changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

fn required_bump(report: &Report) -> &'static str {
    match report.verdict() {
        Verdict::Breaking => "major",
        _ if report.changes.iter().any(|c| c.compat == Compat::Compatible) => "minor",
        _ => "none",
    }
}

fn count(report: &Report, compat: Compat) -> usize {
    report.changes.iter().filter(|c| c.compat == compat).count()
}

fn by_header(report: &Report) -> BTreeMap<&str, Vec<&Change>> {
    let mut groups: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for c in &report.changes {
        groups.entry(c.header.as_str()).or_default().push(c);
    }
    groups
}

fn side_title(side: &Side) -> String {
    let short = match &side.commit {
        Some(c) if side.label == *c => c[..12.min(c.len())].to_string(),
        _ => side.label.clone(),
    };
    match side.model.api_version() {
        Some(v) => format!("{short} (API {v})"),
        None => short,
    }
}

fn verdict_line(report: &Report) -> String {
    let need = match required_bump(report) {
        "major" => "needs a MAJOR version bump",
        "minor" => "needs a MINOR version bump",
        _ => "needs no version bump",
    };
    format!(
        "{}: {need} ({} breaking, {} compatible, {} neutral change(s)){}",
        report.verdict().as_str(),
        count(report, Compat::Breaking),
        count(report, Compat::Compatible),
        count(report, Compat::Neutral),
        abi_clause(report)
    )
}

fn renamed(report: &Report) -> usize {
    report.changes.iter().filter(|c| c.change == ChangeKind::Renamed).count()
}

/// What a breaking verdict means for binaries: nothing is added to a
/// compatible or unchanged verdict (the ABI holds).
fn abi_clause(report: &Report) -> String {
    if report.verdict() != Verdict::Breaking {
        return String::new();
    }
    let renames = renamed(report);
    match report.abi_verdict() {
        AbiVerdict::Compatible => {
            format!(
                "; breaking for source, ABI-compatible (all {renames} breaking change(s) are renames that keep offsets, types and values)"
            )
        }
        AbiVerdict::Breaking if renames > 0 => format!(
            "; ABI-breaking ({} change(s) break the ABI; {renames} rename(s) keep it)",
            report.changes.iter().filter(|c| c.abi == Some(Abi::Breaking)).count()
        ),
        AbiVerdict::Breaking => "; ABI-breaking".to_string(),
        AbiVerdict::Undetermined => "; ABI effect undetermined (a breaking change to a macro's value or presence)".to_string(),
    }
}

pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "PJRT C API diff: {} -> {}", side_title(&report.old), side_title(&report.new));
    let _ = writeln!(out, "verdict: {}", verdict_line(report));
    if let Some(protos) = &report.protos {
        let _ = writeln!(out, "protobuf: {}", protos.verdict_line());
        let _ = writeln!(out, "overall: {}", overall_line(report));
    }
    for (header, changes) in by_header(report) {
        let _ = writeln!(out, "\n{header}");
        for c in changes {
            let mark = match c.compat {
                Compat::Breaking => "!",
                Compat::Compatible => "+",
                Compat::Neutral => " ",
            };
            let _ = writeln!(out, "  {mark} {:<10} {:<10} {:<13} {}  {}", c.compat.as_str(), c.change.as_str(), c.entity, c.name, c.detail);
        }
    }
    if let Some(protos) = &report.protos {
        out.push_str(&protos.to_text());
    }
    if !report.warnings().is_empty() {
        let _ = writeln!(out, "\nwarnings:");
        for w in report.warnings() {
            let _ = writeln!(out, "  - {w}");
        }
    }
    if !report.notes.is_empty() {
        let _ = writeln!(out, "\nnotes:");
        for n in &report.notes {
            let _ = writeln!(out, "  - {n}");
        }
    }
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The C API and protobuf verdicts together, and the exit status they give.
fn overall_line(report: &Report) -> String {
    let status = if report.overall_verdict() == Verdict::Breaking { super::EXIT_BREAKING } else { 0 };
    format!(
        "{} (C API {}, protobuf {}; exit status {status})",
        report.overall_verdict().as_str(),
        report.verdict().as_str(),
        report.protos.as_ref().map_or("not compared", |p| p.verdict().as_str())
    )
}

pub fn markdown(report: &Report) -> String {
    let mut out = headers_markdown(report);
    if let Some(protos) = &report.protos {
        let _ = writeln!(out, "\n**Overall: {}**\n", overall_line(report));
        out.push_str(&protos.to_markdown());
    }
    out
}

pub fn headers_markdown(report: &Report) -> String {
    let mut out = String::new();
    let version = |s: &Side| s.model.api_version().unwrap_or_else(|| "?".into());
    let _ = writeln!(out, "## PJRT C API {} → {} ({})\n", version(&report.old), version(&report.new), report.verdict().as_str());
    let _ = writeln!(out, "Compared `{}` with `{}`: **{}**.", report.old.label, report.new.label, verdict_line(report));
    for w in report.warnings() {
        let _ = writeln!(out, "\n> **Warning:** {}", md_escape(w));
    }
    for (header, changes) in by_header(report) {
        let _ = writeln!(out, "\n### `{header}`\n");
        let _ = writeln!(out, "| | Change | Kind | Symbol | Details |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for c in changes {
            let mark = match c.compat {
                Compat::Breaking if c.abi == Some(Abi::Compatible) => "⚠️ breaking (source only, ABI-compatible)",
                Compat::Breaking => "⚠️ breaking",
                Compat::Compatible => "compatible",
                Compat::Neutral => "",
            };
            let _ = writeln!(out, "| {mark} | {} | {} | `{}` | {} |", c.change.as_str(), c.entity, c.name, md_escape(&c.detail));
        }
    }
    if report.changes.is_empty() {
        let _ = writeln!(out, "\nNo change in the PJRT C API headers.");
    }
    out
}

fn side_json(side: &Side) -> Value {
    let headers: Vec<Value> = side
        .model
        .headers
        .iter()
        .map(|(path, info)| {
            let versions: BTreeMap<&str, &str> = side.model.version_macros(path).into_iter().collect();
            json!({
                "path": path,
                "language": info.language,
                "version_macros": versions,
                "stubbed_includes": info.stubbed_includes,
            })
        })
        .collect();
    json!({
        "label": side.label,
        "commit": side.commit,
        "api_version": side.model.api_version(),
        "headers": headers,
    })
}

pub fn json(report: &Report) -> Value {
    json!({
        "schema_version": SCHEMA_VERSION,
        "target": super::parse::TARGET,
        "old": side_json(&report.old),
        "new": side_json(&report.new),
        "verdict": report.verdict().as_str(),
        "required_bump": required_bump(report),
        "abi_verdict": report.abi_verdict().as_str(),
        "summary": {
            "breaking": count(report, Compat::Breaking),
            "compatible": count(report, Compat::Compatible),
            "neutral": count(report, Compat::Neutral),
            "renamed": renamed(report),
            "abi_breaking": report.changes.iter().filter(|c| c.abi == Some(Abi::Breaking)).count(),
        },
        "changes": report.changes,
        "warnings": report.warnings(),
        "notes": report.notes,
        "overall_verdict": report.overall_verdict().as_str(),
        "protobuf": report.protos.as_ref().map(|p| p.to_json()),
    })
}
