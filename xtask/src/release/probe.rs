//! What a plugin reports about itself, for compat.json: `cargo xtask
//! conform PLUGIN --json` run as a child process (this xtask's own binary,
//! the conform verb: one verb does not import another) on the plugin
//! exactly as archived. Its report gives the PJRT API version and
//! `PJRT_Api` size, the extension chain, the StableHLO versions the plugin
//! accepts (its `stablehlo_minimum_version` / `stablehlo_current_version`
//! attributes) and the conformance counts and failing checks.
//!
//! Only what does not change from run to run is kept: counts, the ids of
//! failing checks, sizes and versions — no timings, no failure messages.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::compat::{Extension, Stablehlo};

/// What conform found.
pub struct Probed {
    pub api_version: Option<String>,
    pub api_struct_size: Option<u64>,
    pub extensions: Vec<Extension>,
    pub stablehlo: Option<Stablehlo>,
    pub counts: BTreeMap<String, u64>,
    pub failing: Vec<String>,
}

/// Runs conform on `plugin`; the error is the note compat.json records.
pub fn conform(plugin: &Path) -> Result<Probed, String> {
    let exe = std::env::current_exe().ok().filter(|e| e.file_stem().is_some_and(|s| s == "xtask"));
    let Some(exe) = exe else {
        return Err("not run: the release was not made by the xtask binary".to_owned());
    };
    // The xtask itself, which isolates the plugin in children of its own;
    // the signing key's settings are no business of it either way.
    let out = Command::new(exe)
        .arg("conform")
        .arg(plugin)
        .arg("--json")
        .env_remove(super::KEY_ENV)
        .env_remove(super::sign::PASSWORD_ENV)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("not run: cannot start conform: {e}"))?;
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        let err = String::from_utf8_lossy(&out.stderr);
        format!("conform failed ({}): {}", out.status, err.lines().last().unwrap_or("").chars().take(300).collect::<String>())
    })?;
    Ok(read(&report))
}

/// The facts of a conform `--json` report.
pub fn read(report: &Value) -> Probed {
    let dotted = |v: &Value| -> Option<String> {
        let parts: Vec<String> = v.as_array()?.iter().map(|n| n.as_i64().map(|n| n.to_string())).collect::<Option<_>>()?;
        (!parts.is_empty()).then(|| parts.join("."))
    };
    let attributes = &report["attributes"];
    let minimum = dotted(&attributes["stablehlo_minimum_version"]);
    let current = dotted(&attributes["stablehlo_current_version"]);
    let extensions = report["extensions"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    Some(Extension {
                        kind: e["type"].as_i64()?,
                        name: e["name"].as_str().map(str::to_owned),
                        struct_size: e["struct_size"].as_u64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let counts =
        report["counts"].as_object().map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_u64()?))).collect()).unwrap_or_default();
    let mut failing: Vec<String> = report["checks"]
        .as_array()
        .map(|checks| checks.iter().filter(|c| c["status"] == "FAIL").filter_map(|c| c["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    failing.sort();
    Probed {
        api_version: report["api_version"].as_str().map(str::to_owned),
        api_struct_size: report["api_struct_size"].as_u64(),
        extensions,
        stablehlo: (minimum.is_some() || current.is_some()).then_some(Stablehlo { minimum, current }),
        counts,
        failing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_report() {
        let report = serde_json::json!({
            "api_version": "0.81", "api_struct_size": 984,
            "extensions": [{"type": 4, "name": "Layouts", "struct_size": 72, "since": 51}, {"type": 99, "name": null, "struct_size": 24}],
            "attributes": {"xla_version": 2, "stablehlo_current_version": [1, 9, 3], "stablehlo_minimum_version": [0, 9, 0]},
            "checks": [{"id": "b", "status": "FAIL"}, {"id": "a", "status": "FAIL"}, {"id": "c", "status": "PASS"}],
            "counts": {"PASS": 1, "FAIL": 2, "UNSUPPORTED": 0, "SKIP": 0}, "wall_ms": 12.5,
        });
        let p = read(&report);
        assert_eq!(p.api_version.as_deref(), Some("0.81"));
        assert_eq!(p.api_struct_size, Some(984));
        assert_eq!(p.extensions.len(), 2);
        assert_eq!(p.extensions[1].name, None);
        assert_eq!(p.stablehlo, Some(Stablehlo { minimum: Some("0.9.0".into()), current: Some("1.9.3".into()) }));
        assert_eq!(p.failing, ["a", "b"]);
        assert_eq!(p.counts["FAIL"], 2);
    }
}
