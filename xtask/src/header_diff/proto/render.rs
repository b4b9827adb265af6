//! The protobuf section of a diff-headers report: text, Markdown, JSON
//! (schema in docs/diff-headers.md, under `protobuf`).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value};

use super::{ProtoChange, ProtoChangeKind, ProtoReport, Wire};
use crate::header_diff::{Compat, Verdict};

fn count(report: &ProtoReport, compat: Compat) -> usize {
    report.changes.iter().filter(|c| c.compat == compat).count()
}

fn wire_breaking(report: &ProtoReport) -> usize {
    report.changes.iter().filter(|c| c.wire == Wire::Breaking).count()
}

fn by_file(report: &ProtoReport) -> BTreeMap<&str, Vec<&ProtoChange>> {
    let mut groups: BTreeMap<&str, Vec<&ProtoChange>> = BTreeMap::new();
    for c in &report.changes {
        groups.entry(c.file.as_str()).or_default().push(c);
    }
    groups
}

pub fn verdict_line(report: &ProtoReport) -> String {
    let compared = report.old.scope.union(&report.new.scope).count();
    if report.old.roots.is_empty() && report.new.roots.is_empty() {
        let looked: Vec<&str> = super::ROOTS.iter().flat_map(|r| r.iter().copied()).collect();
        return format!("unchanged: no schema at either side (looked for {})", looked.join(", "));
    }
    if report.changes.is_empty() {
        return format!("unchanged: {compared} messages and enums compared, none changed");
    }
    let wire = match (report.wire_verdict(), report.verdict()) {
        (Wire::Breaking, _) => format!("WIRE-BREAKING ({} change(s) break serialized data)", wire_breaking(report)),
        (Wire::Compatible, Verdict::Breaking) => {
            "wire-compatible (the breaking changes break generated source only: data serialized with either schema still reads)".into()
        }
        (Wire::Compatible, _) => "wire-compatible".into(),
    };
    format!(
        "{}: {} breaking, {} compatible, {} neutral change(s) in {compared} messages and enums; {wire}",
        report.verdict().as_str(),
        count(report, Compat::Breaking),
        count(report, Compat::Compatible),
        count(report, Compat::Neutral),
    )
}

fn roots(report: &ProtoReport) -> String {
    if report.old.roots == report.new.roots {
        report.new.roots.join(", ")
    } else {
        format!("{} -> {}", report.old.roots.join(", "), report.new.roots.join(", "))
    }
}

fn mark(c: &ProtoChange) -> &'static str {
    match (c.compat, c.wire) {
        (_, Wire::Breaking) => "!!",
        (Compat::Breaking, _) => "! ",
        (Compat::Compatible, _) => "+ ",
        (Compat::Neutral, _) => "  ",
    }
}

/// The changes, grouped by file (the verdict line is the caller's).
pub fn text(report: &ProtoReport) -> String {
    let mut out = String::new();
    if !report.has_schemas() {
        return out;
    }
    let _ = writeln!(out, "\nprotobuf schemas ({}):", roots(report));
    if report.changes.is_empty() {
        let _ = writeln!(out, "  no change");
    }
    for (file, changes) in by_file(report) {
        let _ = writeln!(out, "\n{file}");
        for c in changes {
            let _ = writeln!(
                out,
                "  {} {:<10} wire:{:<10} {:<10} {:<10} {}  {}",
                mark(c),
                c.compat.as_str(),
                c.wire.as_str(),
                c.change.as_str(),
                c.entity,
                c.name,
                c.detail
            );
        }
    }
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('<', "&lt;").replace('\n', " ")
}

pub fn markdown(report: &ProtoReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Protobuf schemas ({})\n", report.verdict().as_str());
    let _ = writeln!(
        out,
        "Compared {}: **{}**.",
        roots(report).split(", ").map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", "),
        verdict_line(report)
    );
    for (file, changes) in by_file(report) {
        let _ = writeln!(out, "\n### `{file}`\n");
        let _ = writeln!(out, "| | Wire | Change | Kind | Name | Details |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for c in changes {
            let weight = match c.compat {
                Compat::Breaking => "⚠️ breaking",
                Compat::Compatible => "compatible",
                Compat::Neutral => "",
            };
            let wire = match c.wire {
                Wire::Breaking => "⚠️ **breaking**",
                Wire::Compatible => "compatible",
            };
            let _ = writeln!(out, "| {weight} | {wire} | {} | {} | `{}` | {} |", c.change.as_str(), c.entity, c.name, md_escape(&c.detail));
        }
    }
    if report.changes.is_empty() {
        let _ = writeln!(out, "\nNo change in the protobuf messages and enums PJRT consumers can reach.");
    }
    out
}

pub fn json(report: &ProtoReport) -> Value {
    let side = |m: &super::ProtoModel| {
        json!({
            "roots": m.roots,
            "files": m.files,
            "compared": m.scope.len(),
        })
    };
    json!({
        "old": side(&report.old),
        "new": side(&report.new),
        "verdict": report.verdict().as_str(),
        "wire_verdict": report.wire_verdict().as_str(),
        "summary": {
            "breaking": count(report, Compat::Breaking),
            "compatible": count(report, Compat::Compatible),
            "neutral": count(report, Compat::Neutral),
            "renamed": report.changes.iter().filter(|c| c.change == ProtoChangeKind::Renamed).count(),
            "wire_breaking": wire_breaking(report),
        },
        "changes": report.changes,
    })
}
