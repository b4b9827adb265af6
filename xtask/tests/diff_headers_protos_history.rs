//! The protobuf diff against real XLA history: commits that changed
//! `CompileOptionsProto`, `ExecutableBuildOptionsProto`, `DebugOptions` and
//! `ScheduleProto`, each diffed against its parent. The expectations are
//! the commits' own diffs (quoted in each test), and every commit that
//! touched compile_options.proto is checked against its `git show` lines.
//!
//! Needs `XLA_REPO` (a clone of openxla/xla, bare or not). Outside CI a
//! missing one skips; under `CI=true` it fails unless
//! `PJRTPKGS_SKIP_XLA_HISTORY` gives the reason it may be skipped.

mod support;

use std::collections::BTreeSet;

use git2::{Oid, Repository};
use xtask::header_diff::proto::{self, ProtoChange, ProtoChangeKind, ProtoReport, Wire};
use xtask::header_diff::{Compat, Verdict};

fn repo() -> Option<Repository> {
    let dir = support::xla_repo()?;
    Some(Repository::open(&dir).expect("XLA_REPO opens"))
}

/// The protobuf diff of `commit` against its first parent.
fn diff_commit(repo: &Repository, commit: &str) -> ProtoReport {
    let new = Oid::from_str(commit).unwrap();
    let old = repo.find_commit(new).unwrap_or_else(|e| panic!("{commit} is not in XLA_REPO: {e}")).parent_id(0).unwrap();
    proto::diff_commits(repo, old, new).unwrap_or_else(|e| panic!("{commit}: {e:#}"))
}

fn changes_of<'a>(report: &'a ProtoReport, name: &str) -> Vec<&'a ProtoChange> {
    report.changes.iter().filter(|c| c.name == name).collect()
}

fn only_change<'a>(report: &'a ProtoReport, name: &str) -> &'a ProtoChange {
    match changes_of(report, name).as_slice() {
        [one] => one,
        other => panic!("expected one change of {name}, found {}:\n{}", other.len(), report.to_text()),
    }
}

fn number(v: &Option<serde_json::Value>) -> Option<i64> {
    v.as_ref().and_then(|v| v["number"].as_i64())
}

/// e71aafe21ad0, 2024-11-22, "Cleanup handling of 2 fields of
/// ExecutableBuildOptions": `+  int64 process_index = 22;` and
/// `+  int64 process_count = 23;` in ExecutableBuildOptionsProto.
#[test]
fn build_options_gained_process_index_and_count() {
    let Some(repo) = repo() else { return };
    let r = diff_commit(&repo, "e71aafe21ad02ea85b00f441fcb348936376288f");
    for (name, n) in [("process_index", 22), ("process_count", 23)] {
        let c = only_change(&r, &format!("xla.ExecutableBuildOptionsProto.{name}"));
        assert_eq!((c.change, c.compat, c.wire), (ProtoChangeKind::Added, Compat::Compatible, Wire::Compatible));
        assert_eq!((number(&c.new), c.new.as_ref().unwrap()["type"].as_str()), (Some(n), Some("int64")));
        assert_eq!(c.file, "xla/pjrt/compile_options.proto");
    }
    assert_eq!(r.changes.len(), 2, "{}", r.to_text());
    assert_eq!((r.verdict(), r.wire_verdict()), (Verdict::Compatible, Wire::Compatible));
}

/// 07c621867cd7, 2025-02-10: ExecutableBuildOptionsProto gained
/// `ExecutionOptions.EffortLevel optimization_level = 24;` and
/// `memory_fitting_level = 25;`, typed by an enum the same commit added to
/// xla.proto (ExecutionOptions.EffortLevel, EFFORT_O0 = 9 ...); in
/// ExecutionOptions, `float exec_time_optimization_effort = 25` became
/// `... = 25 [deprecated = true]`.
#[test]
fn build_options_gained_effort_levels_of_a_new_enum() {
    let Some(repo) = repo() else { return };
    let r = diff_commit(&repo, "07c621867cd78225c028379c0da5566b04db3649");
    for (name, n) in [("optimization_level", 24), ("memory_fitting_level", 25)] {
        let c = only_change(&r, &format!("xla.ExecutableBuildOptionsProto.{name}"));
        assert_eq!((c.change, c.wire, number(&c.new)), (ProtoChangeKind::Added, Wire::Compatible, Some(n)));
        assert_eq!(c.new.as_ref().unwrap()["type"], "xla.ExecutionOptions.EffortLevel");
        assert_eq!(c.new.as_ref().unwrap()["type_kind"], "enum");
    }
    let effort = only_change(&r, "xla.ExecutionOptions.EffortLevel");
    assert_eq!((effort.change, effort.file.as_str()), (ProtoChangeKind::Added, "xla/xla.proto"));
    let values = &effort.new.as_ref().unwrap()["values"];
    assert!(values.as_array().unwrap().iter().any(|v| v["name"] == "EFFORT_O0" && v["number"] == 9), "{values}");
    let deprecated = only_change(&r, "xla.ExecutionOptions.exec_time_optimization_effort");
    assert_eq!(
        (deprecated.change, deprecated.compat, deprecated.detail.as_str()),
        (ProtoChangeKind::Deprecated, Compat::Neutral, "marked deprecated")
    );
}

/// 0a444c42fa79, 2025-05-20, "Rename MKL-DNN flag to oneDNN":
/// `-  bool xla_cpu_use_mkl_dnn = 97;` / `+  bool xla_cpu_use_onednn = 97;`
/// in DebugOptions. Same number and type: source-breaking, wire-compatible.
#[test]
fn debug_option_renamed_keeps_the_wire() {
    let Some(repo) = repo() else { return };
    let r = diff_commit(&repo, "0a444c42fa79cbb1f1ec05bd803214f878b8e63c");
    let c = only_change(&r, "xla.DebugOptions.xla_cpu_use_onednn");
    assert_eq!((c.change, c.compat, c.wire), (ProtoChangeKind::Renamed, Compat::Breaking, Wire::Compatible));
    assert_eq!(c.old_name.as_deref(), Some("xla.DebugOptions.xla_cpu_use_mkl_dnn"));
    assert_eq!((number(&c.old), number(&c.new)), (Some(97), Some(97)));
    assert_eq!(r.changes.len(), 1, "{}", r.to_text());
    assert_eq!((r.verdict(), r.wire_verdict()), (Verdict::Breaking, Wire::Compatible));
    assert!(r.verdict_line().contains("break generated source only"), "{}", r.verdict_line());
}

/// 9e00607c6ff8, 2025-10-20: in ScheduleProto's SchedulerStatisticsProto,
/// `call_wasted_cycles = 10` was inserted and the fields after it moved up:
/// `total_wasted_cycles` 10 -> 11, `total_cycles` 11 -> 12,
/// `memory_pressure_peak` 12 -> 13. Renumbering breaks the wire.
#[test]
fn schedule_statistics_renumbered_break_the_wire() {
    let Some(repo) = repo() else { return };
    let r = diff_commit(&repo, "9e00607c6ff8fca695f9a6a0e0ebb8c4a852ac70");
    let m = "xla.ScheduleProto.SchedulerStatisticsProto";
    for (name, from, to) in [("total_wasted_cycles", 10, 11), ("total_cycles", 11, 12), ("memory_pressure_peak", 12, 13)] {
        let c = only_change(&r, &format!("{m}.{name}"));
        assert_eq!((c.change, c.compat, c.wire), (ProtoChangeKind::Renumbered, Compat::Breaking, Wire::Breaking));
        assert_eq!((number(&c.old), number(&c.new)), (Some(from), Some(to)));
    }
    let added = only_change(&r, &format!("{m}.call_wasted_cycles"));
    assert_eq!((added.change, number(&added.new)), (ProtoChangeKind::Added, Some(10)));
    assert_eq!((r.verdict(), r.wire_verdict()), (Verdict::Breaking, Wire::Breaking));
}

/// ca6ce09986aa, 2026-02-12: `repeated AutotuneBackend
/// xla_gpu_experimental_autotune_backends = 442;` became `repeated
/// autotuner.Backend ... = 442;`, an enum of the new edition-2023 file
/// xla/backends/autotuner/backends.proto. Value 0 was AUTOTUNE_BACKEND_ALL
/// and is UNSPECIFIED_BACKEND: a retyping that breaks the wire.
#[test]
fn autotune_backends_retyped_to_an_editions_enum() {
    let Some(repo) = repo() else { return };
    let r = diff_commit(&repo, "ca6ce09986aaf819bf5000c369241a0d35b4834e");
    let c = only_change(&r, "xla.DebugOptions.xla_gpu_experimental_autotune_backends");
    assert_eq!((c.change, c.compat, c.wire), (ProtoChangeKind::Retyped, Compat::Breaking, Wire::Breaking));
    assert_eq!(
        (c.old.as_ref().unwrap()["type"].as_str(), c.new.as_ref().unwrap()["type"].as_str()),
        (Some("xla.DebugOptions.AutotuneBackend"), Some("xla.autotuner.Backend"))
    );
    assert_eq!((number(&c.new), c.new.as_ref().unwrap()["label"].as_str()), (Some(442), Some("repeated")));
    assert!(c.detail.contains("value 0 is AUTOTUNE_BACKEND_ALL"), "{}", c.detail);
    assert_eq!(r.new.files["xla/backends/autotuner/backends.proto"], "edition 2023");
    assert!(!r.old.files.contains_key("xla/backends/autotuner/backends.proto"));
    assert_eq!(only_change(&r, "xla.autotuner.Backend").change, ProtoChangeKind::Added);
    assert_eq!(only_change(&r, "xla.DebugOptions.AutotuneBackend").change, ProtoChangeKind::Removed);
}

/// 4cdad3a18fff, 2025-11-12: `UnstableReductionDetectionMode` and
/// `NaNCheckDetectionMode` (NONE = 0, WARNING = 1, FAIL = 2, each with its
/// own prefix) became one `DetectionMode` (DETECTION_MODE_NONE = 0, ...):
/// fields 403 and 426 retyped with every value keeping its number and
/// meaning, so the wire holds; `xla_gpu_detect_inf = 428` added.
#[test]
fn detection_modes_merged_keep_the_wire() {
    let Some(repo) = repo() else { return };
    let r = diff_commit(&repo, "4cdad3a18fff261e121d04ede566602085d45fb2");
    for (name, n) in [("xla_detect_unstable_reductions", 403), ("xla_gpu_detect_nan", 426)] {
        let c = only_change(&r, &format!("xla.DebugOptions.{name}"));
        assert_eq!((c.change, c.compat, c.wire), (ProtoChangeKind::Retyped, Compat::Breaking, Wire::Compatible), "{}", c.detail);
        assert_eq!((number(&c.new), c.new.as_ref().unwrap()["type"].as_str()), (Some(n), Some("xla.DebugOptions.DetectionMode")));
    }
    let inf = only_change(&r, "xla.DebugOptions.xla_gpu_detect_inf");
    assert_eq!(
        (inf.change, number(&inf.new), inf.new.as_ref().unwrap()["presence"].as_str()),
        (ProtoChangeKind::Added, Some(428), Some("explicit"))
    );
    assert_eq!(r.wire_verdict(), Wire::Compatible, "{}", r.to_text());
}

/// ab2aff1a6dd7, 2026-01-13, "Remove ConvAlgorithmPicker": `-  optional bool
/// xla_gpu_strict_conv_algorithm_picker = 156;`, with 156 added to
/// DebugOptions' `reserved` numbers and the name to its reserved names.
#[test]
fn debug_option_removed_with_its_number_reserved() {
    let Some(repo) = repo() else { return };
    let r = diff_commit(&repo, "ab2aff1a6dd7fe68d593cb1b4a8c384248f29130");
    let c = only_change(&r, "xla.DebugOptions.xla_gpu_strict_conv_algorithm_picker");
    assert_eq!((c.change, c.compat, c.wire), (ProtoChangeKind::Removed, Compat::Breaking, Wire::Compatible));
    assert_eq!((number(&c.old), c.old.as_ref().unwrap()["presence"].as_str()), (Some(156), Some("explicit")));
    assert!(c.detail.contains("number 156 and name reserved"), "{}", c.detail);
    assert!(r.new.message("xla.DebugOptions").unwrap().reserves_number(156));
    assert!(!r.old.message("xla.DebugOptions").unwrap().reserves_number(156));
}

/// 4442e997bbc6, 2025-05-15, "Create a PjRt protos dir": a pure rename,
/// xla/pjrt/compile_options.proto -> xla/pjrt/proto/compile_options.proto
/// (R100). Its messages are relocated, nothing else changed.
#[test]
fn compile_options_proto_moved_to_the_protos_dir() {
    let Some(repo) = repo() else { return };
    let r = diff_commit(&repo, "4442e997bbc6c05fcdee69bf5766cf76df340d85");
    assert_eq!(r.old.roots[0], "xla/pjrt/compile_options.proto");
    assert_eq!(r.new.roots[0], "xla/pjrt/proto/compile_options.proto");
    let relocated: BTreeSet<&str> = r.changes.iter().map(|c| c.name.as_str()).collect();
    assert!(relocated.contains("xla.CompileOptionsProto") && relocated.contains("xla.ExecutableBuildOptionsProto"), "{}", r.to_text());
    assert!(r.changes.iter().all(|c| c.change == ProtoChangeKind::Relocated && c.compat == Compat::Neutral), "{}", r.to_text());
    assert_eq!((r.verdict(), r.wire_verdict()), (Verdict::Compatible, Wire::Compatible));
}

/// 19b2b79d9a2c, 2026-01-13: `+  optional string compiler_variant = 11;` in
/// CompileOptionsProto (proto3 `optional`: explicit presence).
#[test]
fn compile_options_gained_an_optional_compiler_variant() {
    let Some(repo) = repo() else { return };
    let r = diff_commit(&repo, "19b2b79d9a2ce0f3f98af465c49d5b46c54af8d6");
    let c = only_change(&r, "xla.CompileOptionsProto.compiler_variant");
    assert_eq!(
        (c.change, c.compat, c.wire, c.detail.as_str()),
        (ProtoChangeKind::Added, Compat::Compatible, Wire::Compatible, "optional string = 11")
    );
    assert_eq!(c.file, "xla/pjrt/proto/compile_options.proto");
}

/// A field declaration on a `+`/`-` line of a .proto diff: (label, type's
/// last segment, name, number). The oracle is the text of the commit.
fn declaration(line: &str) -> Option<(String, String, String, i64)> {
    let code = line.split("//").next()?.trim();
    let (lhs, rhs) = code.split_once('=')?;
    let number: i64 = rhs.trim().trim_end_matches(';').split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    let mut words: Vec<&str> = lhs.split_whitespace().collect();
    let name = words.pop()?.to_string();
    let label = match words.first() {
        Some(&l) if matches!(l, "repeated" | "optional" | "required") => {
            words.remove(0);
            l.to_string()
        }
        _ => String::new(),
    };
    let ty = words.join(" ");
    if ty.is_empty() || matches!(ty.as_str(), "reserved" | "option") || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    Some((label, ty.rsplit('.').next()?.to_string(), name, number))
}

/// Whether a message (the `old`/`new` of a message added or removed
/// whole) declares field `name = number`.
fn declares(message: &Option<serde_json::Value>, name: &str, n: i64) -> bool {
    message.as_ref().and_then(|m| m["fields"].as_array()).is_some_and(|fs| fs.iter().any(|f| f["name"] == name && f["number"] == n))
}

/// Every commit of main that touched compile_options.proto (either path)
/// since 2023: each field line its diff adds must show up in the protobuf
/// diff as a change of that field carrying that number (added, renamed,
/// renumbered, retyped, relabeled) or in a message added whole, each field
/// line it removes as a change of the field that had that number (or in a
/// message removed whole); a declaration rewritten with another
/// label or type must give a change of that field.
#[test]
fn every_compile_options_commit_matches_its_git_diff() {
    let Some(repo) = repo() else { return };
    let git_dir = repo.path().to_path_buf();
    let branch = ["refs/heads/main", "refs/remotes/origin/main"].into_iter().find(|r| repo.find_reference(r).is_ok()).unwrap_or("HEAD");
    let paths = ["xla/pjrt/compile_options.proto", "xla/pjrt/proto/compile_options.proto"];
    let mut args = vec!["log", "--first-parent", "--since=2023-01-01", "--format=%H", branch, "--"];
    args.extend(paths);
    let commits = support::git(&git_dir, &args);
    let (mut checked_commits, mut checked_lines, mut failures) = (0, 0, Vec::new());
    for commit in commits.lines() {
        let mut args = vec!["show", "--format=", "-U0", commit, "--"];
        args.extend(paths);
        let patch = support::git(&git_dir, &args);
        let side = |sign: char| -> Vec<(String, String, String, i64)> {
            patch
                .lines()
                .filter(|l| l.starts_with(sign) && !l.starts_with("+++") && !l.starts_with("---"))
                .filter_map(|l| declaration(&l[1..]))
                .collect()
        };
        let (added, removed) = (side('+'), side('-'));
        let r = diff_commit(&repo, commit);
        checked_commits += 1;
        let ends = |full: &str, name: &str| full.rsplit('.').next() == Some(name);
        for a in &added {
            if removed.contains(a) {
                continue;
            }
            checked_lines += 1;
            let retyped_in_place = removed.iter().any(|d| d.2 == a.2 && d.3 == a.3);
            let found =
                r.changes.iter().any(|c| ends(&c.name, &a.2) && (number(&c.new) == Some(a.3) || (retyped_in_place && c.new.is_some())))
                    || r.changes.iter().any(|c| c.change == ProtoChangeKind::Added && declares(&c.new, &a.2, a.3));
            if !found {
                failures.push(format!(
                    "{commit}: `{} {} {} = {}` added in the text, not in the diff:\n{}",
                    a.0,
                    a.1,
                    a.2,
                    a.3,
                    r.to_text()
                ));
            }
        }
        for d in &removed {
            if added.contains(d) || added.iter().any(|a| a.2 == d.2 && a.3 == d.3) {
                continue;
            }
            checked_lines += 1;
            let found = r
                .changes
                .iter()
                .any(|c| (ends(&c.name, &d.2) || c.old_name.as_deref().is_some_and(|o| ends(o, &d.2))) && number(&c.old) == Some(d.3))
                || r.changes.iter().any(|c| c.change == ProtoChangeKind::Removed && declares(&c.old, &d.2, d.3));
            if !found {
                failures.push(format!(
                    "{commit}: `{} {} {} = {}` removed in the text, not in the diff:\n{}",
                    d.0,
                    d.1,
                    d.2,
                    d.3,
                    r.to_text()
                ));
            }
        }
        if added.is_empty() && removed.is_empty() {
            // A move or a comment: no field may change.
            let fields: Vec<&ProtoChange> =
                r.changes.iter().filter(|c| c.entity == "field" && c.change != ProtoChangeKind::Deprecated).collect();
            if !fields.is_empty() {
                failures.push(format!("{commit}: no field line changed in the text, yet:\n{}", r.to_text()));
            }
        }
    }
    println!("{checked_commits} commits that touched compile_options.proto, {checked_lines} field lines checked against their diffs");
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n\n"));
    assert!(checked_commits >= 20 && checked_lines >= 25, "{checked_commits} commits, {checked_lines} lines: too few to mean anything");
}

#[test]
fn the_oracle_reads_declarations() {
    assert_eq!(
        declaration("  optional string compiler_variant = 11;"),
        Some(("optional".into(), "string".into(), "compiler_variant".into(), 11))
    );
    assert_eq!(
        declaration("  ExecutionOptions.EffortLevel optimization_level = 24; // x"),
        Some((String::new(), "EffortLevel".into(), "optimization_level".into(), 24))
    );
    assert_eq!(declaration("  float exec_time_optimization_effort = 25 [deprecated = true];").map(|d| d.3), Some(25));
    assert_eq!(
        declaration("  map<string, OptionOverrideProto> env_option_overrides = 7;").map(|d| d.2),
        Some("env_option_overrides".into())
    );
    assert_eq!(declaration("  reserved 5, 6;"), None);
    assert_eq!(declaration("  // int64 commented = 3;"), None);
    assert_eq!(declaration("syntax = \"proto3\";"), None);
}
