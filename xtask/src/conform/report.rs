//! The report of one plugin: JSON (schema in docs/conform.md), text, and
//! the differences against an earlier report (`--baseline`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::harness::Status;
use crate::plugin::client_options::ClientOption;

/// 2: the ERROR status (the harness's fault) and `call` (the PJRT call a
/// check's process died in).
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: String,
    pub status: Status,
    pub detail: String,
    /// The newest PJRT minor version the check reached ("0.92").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The PJRT call in flight when the check's process died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtensionInfo {
    #[serde(rename = "type")]
    pub kind: i64,
    /// The name the newest known header gives the type; none when it is
    /// newer than that header.
    pub name: Option<String>,
    pub struct_size: u64,
    /// The PJRT minor version that introduced the type.
    pub since: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Processes {
    pub started: usize,
    pub forked: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub plugin: String,
    pub path: Option<PathBuf>,
    pub bindings_api_version: String,
    /// The newest PJRT version the history table knows.
    pub history_newest_api_version: String,
    pub api_version: Option<String>,
    pub api_struct_size: Option<u64>,
    pub extensions: Vec<ExtensionInfo>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub platform: Option<String>,
    pub client_options: Vec<ClientOption>,
    pub checks: Vec<CheckResult>,
    pub counts: BTreeMap<String, usize>,
    /// Checks during which the plugin crashed (or hung) its process.
    pub crashed: Vec<String>,
    /// Prerequisites whose making crashed ("plugin", "client"), and how:
    /// the checks that need them skipped.
    pub broken: BTreeMap<String, String>,
    /// The processes the run used: `started` (each loads the plugin: the
    /// fork server, or every lane process where it cannot serve) and
    /// `forked` (from the fork server, the plugin already loaded).
    pub processes: Processes,
    pub wall_ms: f64,
}

impl Report {
    pub fn count(&mut self) {
        self.counts = [Status::Pass, Status::Fail, Status::Unsupported, Status::Skip, Status::Error]
            .iter()
            .map(|s| (s.as_str().to_string(), self.checks.iter().filter(|c| c.status == *s).count()))
            .collect();
    }

    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// Whether the harness itself failed somewhere (status ERROR).
    pub fn harness_failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Error)
    }

    /// Merges what a child reported about the plugin (`info` events).
    pub fn absorb_info(&mut self, info: &serde_json::Value) {
        if let Some(v) = info.get("api_version").and_then(|v| v.as_str()) {
            self.api_version = Some(v.to_string());
        }
        if let Some(v) = info.get("api_struct_size").and_then(|v| v.as_u64()) {
            self.api_struct_size = Some(v);
        }
        if let Some(v) = info.get("extensions").and_then(|v| serde_json::from_value(v.clone()).ok()) {
            self.extensions = v;
        }
        if let Some(v) = info.get("attributes").and_then(|v| v.as_object()) {
            self.attributes = v.clone();
        }
        if let Some(v) = info.get("platform").and_then(|v| v.as_str()) {
            self.platform = Some(v.to_string());
        }
        if let Some(v) = info.get("client_options").and_then(|v| v.as_array()) {
            self.client_options = v.iter().filter_map(parse_option).collect();
        }
    }

    pub fn to_text(&self, verbose: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "conform:    {}", self.plugin);
        if let Some(path) = &self.path {
            let _ = writeln!(out, "plugin:     {}", path.display());
        }
        let _ = writeln!(
            out,
            "PJRT API:   {} (PJRT_Api {} bytes; bindings {}, history to {})",
            self.api_version.as_deref().unwrap_or("?"),
            self.api_struct_size.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
            self.bindings_api_version,
            self.history_newest_api_version
        );
        let names: Vec<String> = self
            .extensions
            .iter()
            .map(|e| {
                e.name.clone().unwrap_or_else(|| format!("unknown type {} (newer than PJRT {})", e.kind, self.history_newest_api_version))
            })
            .collect();
        let _ = writeln!(out, "extensions: {}", if names.is_empty() { "(none)".into() } else { names.join(", ") });
        if let Some(platform) = &self.platform {
            let _ = writeln!(out, "platform:   {platform}");
        }
        if !self.client_options.is_empty() {
            let options: Vec<String> = self.client_options.iter().map(|o| o.to_string()).collect();
            let _ = writeln!(out, "options:    {}", options.join(", "));
        }
        out.push('\n');
        let mut groups: Vec<(&str, Vec<&CheckResult>)> = Vec::new();
        for c in &self.checks {
            let group = c.id.split('.').next().unwrap_or("");
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, list)) => list.push(c),
                None => groups.push((group, vec![c])),
            }
        }
        for (group, checks) in &groups {
            let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
            let mut parts = vec![format!("{} pass", count(Status::Pass))];
            for (s, label) in
                [(Status::Fail, "FAIL"), (Status::Unsupported, "unsupported"), (Status::Skip, "skip"), (Status::Error, "ERROR (harness)")]
            {
                if count(s) > 0 {
                    parts.push(format!("{} {label}", count(s)));
                }
            }
            let _ = writeln!(out, "  {group:<20} {}", parts.join(", "));
            if verbose {
                for c in checks {
                    let since = c.since.as_deref().map(|s| format!(" [{s}]")).unwrap_or_default();
                    let _ = writeln!(out, "      {:<12} {:<46} {}{since}", c.status.as_str(), c.id, c.detail);
                }
            }
        }
        for (status, title) in [
            (Status::Fail, "FAILED"),
            (Status::Error, "HARNESS ERRORS (pjrtpkgs' fault, not the plugin's)"),
            (Status::Unsupported, "UNSUPPORTED"),
            (Status::Skip, "SKIPPED"),
        ] {
            let rows: Vec<&CheckResult> = self.checks.iter().filter(|c| c.status == status).collect();
            if rows.is_empty() || (verbose && !matches!(status, Status::Fail | Status::Error)) {
                continue;
            }
            let _ = writeln!(out, "\n  {title} ({}):", rows.len());
            for c in rows {
                let _ = writeln!(out, "    {:<46} {}", c.id, c.detail);
            }
        }
        let n = |s: Status| self.counts.get(s.as_str()).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "\n  {} checks: {} pass, {} FAIL, {} unsupported, {} skip{} ({:.2} s)",
            self.checks.len(),
            n(Status::Pass),
            n(Status::Fail),
            n(Status::Unsupported),
            n(Status::Skip),
            if n(Status::Error) > 0 { format!(", {} ERROR (harness)", n(Status::Error)) } else { String::new() },
            self.wall_ms / 1000.0
        );
        out
    }
}

fn parse_option(value: &serde_json::Value) -> Option<ClientOption> {
    let name = value.get("name")?.as_str()?;
    let ty = value.get("type")?.as_str()?;
    let v = match value.get("value")? {
        serde_json::Value::Array(items) => items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut option = crate::plugin::client_options::parse(&format!("{name}:{ty}={v}")).ok()?;
    if value.get("source").and_then(|s| s.as_str()) == Some("gpu_default") {
        option.source = crate::plugin::client_options::Source::GpuDefault;
    }
    Some(option)
}

/// The parts of an earlier report `--baseline` compares.
#[derive(Debug, Deserialize)]
pub struct Baseline {
    pub plugin: String,
    pub api_version: Option<String>,
    #[serde(default)]
    pub extensions: Vec<ExtensionInfo>,
    pub checks: Vec<CheckResult>,
}

impl Baseline {
    pub fn read(path: &std::path::Path) -> Result<Baseline> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the baseline report {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a report of `cargo xtask conform --json` (schema in docs/conform.md)", path.display()))
    }
}

/// What changed against a baseline.
#[derive(Debug, Default, Serialize)]
pub struct Changes {
    /// (id, before, after), `None` for a check one side does not have.
    pub checks: Vec<(String, Option<Status>, Option<Status>)>,
    pub api_version: Option<(Option<String>, Option<String>)>,
    pub extensions_added: Vec<String>,
    pub extensions_removed: Vec<String>,
    /// Checks that FAIL now and did not before (new ones included).
    pub regressions: Vec<String>,
}

pub fn compare(baseline: &Baseline, report: &Report) -> Changes {
    let before: BTreeMap<&str, Status> = baseline.checks.iter().map(|c| (c.id.as_str(), c.status)).collect();
    let after: BTreeMap<&str, Status> = report.checks.iter().map(|c| (c.id.as_str(), c.status)).collect();
    let mut changes = Changes::default();
    let ids: std::collections::BTreeSet<&str> = before.keys().chain(after.keys()).copied().collect();
    for id in ids {
        let (b, a) = (before.get(id).copied(), after.get(id).copied());
        if b != a {
            changes.checks.push((id.to_string(), b, a));
            if a == Some(Status::Fail) {
                changes.regressions.push(id.to_string());
            }
        }
    }
    if baseline.api_version != report.api_version {
        changes.api_version = Some((baseline.api_version.clone(), report.api_version.clone()));
    }
    let name = |e: &ExtensionInfo| e.name.clone().unwrap_or_else(|| format!("type {}", e.kind));
    let old: std::collections::BTreeSet<String> = baseline.extensions.iter().map(name).collect();
    let new: std::collections::BTreeSet<String> = report.extensions.iter().map(name).collect();
    changes.extensions_added = new.difference(&old).cloned().collect();
    changes.extensions_removed = old.difference(&new).cloned().collect();
    changes
}

impl Changes {
    pub fn to_text(&self, baseline: &str) -> String {
        let mut out = format!("\nagainst {baseline}:\n");
        if let Some((old, new)) = &self.api_version {
            let _ = writeln!(out, "  PJRT API {} -> {}", old.as_deref().unwrap_or("?"), new.as_deref().unwrap_or("?"));
        }
        if !self.extensions_added.is_empty() {
            let _ = writeln!(out, "  extensions added: {}", self.extensions_added.join(", "));
        }
        if !self.extensions_removed.is_empty() {
            let _ = writeln!(out, "  extensions removed: {}", self.extensions_removed.join(", "));
        }
        if self.checks.is_empty() {
            out.push_str("  every check has the same result\n");
        }
        let show = |s: Option<Status>| s.map(|s| s.as_str()).unwrap_or("(absent)");
        for (id, before, after) in &self.checks {
            let mark = if *after == Some(Status::Fail) { "  REGRESSION" } else { "" };
            let _ = writeln!(out, "  {id:<46} {} -> {}{mark}", show(*before), show(*after));
        }
        let _ = writeln!(out, "  {} change(s), {} regression(s)", self.checks.len(), self.regressions.len());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, status: Status) -> CheckResult {
        CheckResult { id: id.into(), status, detail: String::new(), since: None, call: None }
    }

    #[test]
    fn baseline_names_changes_and_regressions() {
        let baseline = Baseline {
            plugin: "p".into(),
            api_version: Some("0.81".into()),
            extensions: vec![ExtensionInfo { kind: 4, name: Some("Layouts".into()), struct_size: 80, since: Some(51) }],
            checks: vec![
                result("a.same", Status::Pass),
                result("a.broke", Status::Pass),
                result("a.gone", Status::Skip),
                result("a.fixed", Status::Fail),
            ],
        };
        let report = Report {
            api_version: Some("0.106".into()),
            checks: vec![
                result("a.same", Status::Pass),
                result("a.broke", Status::Fail),
                result("a.fixed", Status::Pass),
                result("a.new", Status::Fail),
            ],
            ..Default::default()
        };
        let changes = compare(&baseline, &report);
        assert_eq!(changes.regressions, ["a.broke", "a.new"]);
        assert_eq!(changes.checks.len(), 4);
        assert_eq!(changes.extensions_removed, ["Layouts"]);
        let text = changes.to_text("old.json");
        assert!(text.contains("PJRT API 0.81 -> 0.106"), "{text}");
        assert!(text.contains("a.broke") && text.contains("PASS -> FAIL  REGRESSION"), "{text}");
        assert!(text.contains("a.gone") && text.contains("SKIP -> (absent)"), "{text}");
    }
}
