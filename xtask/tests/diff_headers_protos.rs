//! The protobuf half of diff-headers on synthetic XLA trees (directory
//! pairs written here), one field or value per change kind: what protoc
//! compiles, what is in scope, and each change's compat and wire verdicts.
//! Needs only protoc (vendored); the CLI test also needs libclang.

mod support;

use std::path::Path;
use std::process::Command;

use xtask::header_diff::proto::{self, ProtoChange, ProtoChangeKind, ProtoReport, Wire};
use xtask::header_diff::{Compat, Verdict};

fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn diff(old: &[(&str, &str)], new: &[(&str, &str)]) -> ProtoReport {
    let dir = tempfile::tempdir().unwrap();
    write_tree(&dir.path().join("old"), old);
    write_tree(&dir.path().join("new"), new);
    proto::diff_dirs(&dir.path().join("old"), &dir.path().join("new")).unwrap()
}

fn find<'a>(report: &'a ProtoReport, name: &str, kind: ProtoChangeKind) -> &'a ProtoChange {
    report
        .changes
        .iter()
        .find(|c| c.name == name && c.change == kind)
        .unwrap_or_else(|| panic!("no {} change of {name} in:\n{}", kind.as_str(), report.to_text()))
}

fn weights(c: &ProtoChange) -> (Compat, Wire) {
    (c.compat, c.wire)
}

const OLD_XLA: &str = r#"syntax = "proto3";
package xla;
import "xla/other.proto";
import "xla/xla_data.proto";

message DebugOptions {
  bool kept = 1;
  int32 widened = 2;
  int64 restyled = 3;
  bool old_name = 4;
  double moved_number = 5;
  bool dropped = 7;
  bool dropped_unreserved = 8;
  int64 single = 9;
  string text = 10;
  bool presence = 11;
  bool into_oneof = 12;
  ShapeProto shape = 13;
  map<string, int32> extra = 14;
  Mode mode = 15;
  Used used = 16;
  Mode other_mode = 17;
  enum Mode {
    MODE_A = 0;
    MODE_B = 1;
    MODE_C = 2;
  }
}
"#;

const NEW_XLA: &str = r#"syntax = "proto3";
package xla;
import "xla/other.proto";
import "xla/xla_data.proto";

message DebugOptions {
  bool kept = 1;
  int64 widened = 2;
  string restyled = 3;
  bool new_name = 4;
  double moved_number = 6;
  reserved 7;
  reserved "dropped";
  repeated int64 single = 9;
  repeated string text = 10;
  optional bool presence = 11;
  oneof choice {
    bool into_oneof = 12;
  }
  ShapeProto shape = 13;
  map<string, int64> extra = 14;
  Mode mode = 15;
  Used used = 16;
  Kind other_mode = 17;
  int64 fresh = 18;
  enum Mode {
    MODE_A = 0;
    MODE_BEE = 1;
    MODE_C = 3;
    MODE_D = 4;
  }
  enum Kind {
    KIND_A = 0;
    KIND_C = 1;
    KIND_B = 2;
  }
}
"#;

fn tree<'a>(xla: &'a str, other: &'a str, data: &'a str, hlo: &'a str, compile: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    vec![("xla/xla.proto", xla), ("xla/other.proto", other), ("xla/xla_data.proto", data), ("xla/service/hlo.proto", hlo), compile]
}

const OLD_OTHER: &str = "syntax = \"proto3\";\npackage xla;\nmessage Used { int32 a = 1; }\nmessage Unused { int32 b = 1; }\n";
const NEW_OTHER: &str =
    "syntax = \"proto3\";\npackage xla;\nmessage Used { int32 a = 1; int32 c = 2; }\nmessage Unused { string b = 1; }\n";
const DATA: &str = "syntax = \"proto3\";\npackage xla;\nmessage ShapeProto { repeated int64 dimensions = 1; }\n";
const OLD_HLO: &str = r#"edition = "2023";
package xla;
message HloModuleProto {
  int64 id = 1;
  string name = 2 [features.field_presence = IMPLICIT];
}
"#;
const NEW_HLO: &str = r#"edition = "2023";
package xla;
message HloModuleProto {
  int64 id = 1;
  string name = 2;
  int64 must = 3 [features.field_presence = LEGACY_REQUIRED];
}
"#;
const OLD_COMPILE: &str = r#"syntax = "proto2";
package xla;
message CompileOptionsProto {
  optional int32 level = 1 [default = 1];
  required int64 count = 2;
}
"#;
const NEW_COMPILE: &str = r#"syntax = "proto2";
package xla;
message CompileOptionsProto {
  optional int32 level = 1 [default = 2];
  optional int64 count = 2;
}
"#;

fn synthetic() -> ProtoReport {
    diff(
        &tree(OLD_XLA, OLD_OTHER, DATA, OLD_HLO, ("xla/pjrt/compile_options.proto", OLD_COMPILE)),
        &tree(NEW_XLA, NEW_OTHER, DATA, NEW_HLO, ("xla/pjrt/proto/compile_options.proto", NEW_COMPILE)),
    )
}

#[test]
fn fields_renamed_renumbered_retyped_relabeled_removed_added() {
    let r = synthetic();
    let f = |n: &str| format!("xla.DebugOptions.{n}");
    let widened = find(&r, &f("widened"), ProtoChangeKind::Retyped);
    assert_eq!(weights(widened), (Compat::Breaking, Wire::Compatible), "int32 -> int64 shares the varint encoding: {}", widened.detail);
    assert_eq!(weights(find(&r, &f("restyled"), ProtoChangeKind::Retyped)), (Compat::Breaking, Wire::Breaking));
    let renamed = find(&r, &f("new_name"), ProtoChangeKind::Renamed);
    assert_eq!(weights(renamed), (Compat::Breaking, Wire::Compatible));
    assert_eq!(renamed.old_name.as_deref(), Some(f("old_name").as_str()));
    let renumbered = find(&r, &f("moved_number"), ProtoChangeKind::Renumbered);
    assert_eq!(weights(renumbered), (Compat::Breaking, Wire::Breaking));
    assert!(renumbered.detail.contains("5 -> 6"), "{}", renumbered.detail);

    let dropped = find(&r, &f("dropped"), ProtoChangeKind::Removed);
    assert_eq!(weights(dropped), (Compat::Breaking, Wire::Compatible));
    assert!(dropped.detail.contains("number 7 and name reserved"), "{}", dropped.detail);
    let unreserved = find(&r, &f("dropped_unreserved"), ProtoChangeKind::Removed);
    assert!(unreserved.detail.contains("number 8 is NOT reserved"), "{}", unreserved.detail);

    assert_eq!(weights(find(&r, &f("single"), ProtoChangeKind::Relabeled)), (Compat::Breaking, Wire::Breaking), "packed vs not");
    assert_eq!(weights(find(&r, &f("text"), ProtoChangeKind::Relabeled)), (Compat::Breaking, Wire::Compatible), "strings");
    assert_eq!(weights(find(&r, &f("presence"), ProtoChangeKind::Relabeled)), (Compat::Compatible, Wire::Compatible));
    assert_eq!(
        weights(find(&r, &f("into_oneof"), ProtoChangeKind::Moved)),
        (Compat::Breaking, Wire::Compatible),
        "one field into a new oneof"
    );
    assert_eq!(weights(find(&r, &f("extra"), ProtoChangeKind::Retyped)), (Compat::Breaking, Wire::Compatible), "map values int32 -> int64");
    let added = find(&r, &f("fresh"), ProtoChangeKind::Added);
    assert_eq!((weights(added), added.detail.as_str()), ((Compat::Compatible, Wire::Compatible), "int64 = 18"));
    // Another enum, whose value 1 means something else (B, then C).
    let other_mode = find(&r, &f("other_mode"), ProtoChangeKind::Retyped);
    assert_eq!(weights(other_mode), (Compat::Breaking, Wire::Breaking));
    assert!(
        other_mode.detail.contains("value 1 is MODE_B in xla.DebugOptions.Mode but KIND_C in xla.DebugOptions.Kind"),
        "{}",
        other_mode.detail
    );
    // Unchanged fields give nothing.
    for name in ["kept", "shape", "mode", "used"] {
        assert!(!r.changes.iter().any(|c| c.name == f(name)), "{name} did not change:\n{}", r.to_text());
    }
    assert_eq!(r.verdict(), Verdict::Breaking);
    assert_eq!(r.wire_verdict(), Wire::Breaking);
}

#[test]
fn enum_values_renamed_renumbered_added() {
    let r = synthetic();
    let renamed = find(&r, "xla.DebugOptions.Mode.MODE_BEE", ProtoChangeKind::Renamed);
    assert_eq!(
        (weights(renamed), renamed.old_name.as_deref()),
        ((Compat::Breaking, Wire::Compatible), Some("xla.DebugOptions.Mode.MODE_B"))
    );
    assert_eq!(weights(find(&r, "xla.DebugOptions.Mode.MODE_C", ProtoChangeKind::Renumbered)), (Compat::Breaking, Wire::Breaking));
    assert_eq!(weights(find(&r, "xla.DebugOptions.Mode.MODE_D", ProtoChangeKind::Added)), (Compat::Compatible, Wire::Compatible));
    assert_eq!(weights(find(&r, "xla.DebugOptions.Kind", ProtoChangeKind::Added)), (Compat::Compatible, Wire::Compatible));
}

#[test]
fn scope_is_what_the_roots_reach() {
    let r = synthetic();
    // xla.Used is a field type of DebugOptions: in scope; xla.Unused is
    // only declared in an imported file: out of scope, its change unseen.
    let c = find(&r, "xla.Used.c", ProtoChangeKind::Added);
    assert_eq!(c.file, "xla/other.proto");
    assert!(!r.changes.iter().any(|c| c.name.starts_with("xla.Unused")), "{}", r.to_text());
    assert!(r.new.scope.contains("xla.Used") && !r.new.scope.contains("xla.Unused"));
    assert!(r.new.messages.contains_key("xla.Unused"), "compiled, only not compared");
    assert_eq!(r.new.files["xla/service/hlo.proto"], "edition 2023");
    assert_eq!(r.old.files["xla/pjrt/compile_options.proto"], "proto2");
}

#[test]
fn editions_features_and_proto2_labels() {
    let r = synthetic();
    // edition 2023: IMPLICIT dropped -> the edition's default, EXPLICIT.
    assert_eq!(weights(find(&r, "xla.HloModuleProto.name", ProtoChangeKind::Relabeled)), (Compat::Compatible, Wire::Compatible));
    let must = find(&r, "xla.HloModuleProto.must", ProtoChangeKind::Added);
    assert_eq!(weights(must), (Compat::Breaking, Wire::Breaking), "LEGACY_REQUIRED is required: {}", must.detail);
    assert_eq!(must.new.as_ref().unwrap()["label"], "required");
    // proto2: required -> optional, and a new default.
    assert_eq!(weights(find(&r, "xla.CompileOptionsProto.count", ProtoChangeKind::Relabeled)), (Compat::Breaking, Wire::Breaking));
    let level = find(&r, "xla.CompileOptionsProto.level", ProtoChangeKind::Redefined);
    assert_eq!((weights(level), level.detail.starts_with("default 1 -> 2")), ((Compat::Neutral, Wire::Compatible), true));
    // The file moved (xla/pjrt/ -> xla/pjrt/proto/): relocated, neutral.
    let moved = find(&r, "xla.CompileOptionsProto", ProtoChangeKind::Relocated);
    assert_eq!((weights(moved), moved.file.as_str()), ((Compat::Neutral, Wire::Compatible), "xla/pjrt/proto/compile_options.proto"));
    assert_eq!(r.old.roots[0], "xla/pjrt/compile_options.proto");
    assert_eq!(r.new.roots[0], "xla/pjrt/proto/compile_options.proto");
}

#[test]
fn identical_trees_are_unchanged_and_trees_without_protos_compare_nothing() {
    let files = tree(OLD_XLA, OLD_OTHER, DATA, OLD_HLO, ("xla/pjrt/compile_options.proto", OLD_COMPILE));
    let r = diff(&files, &files);
    assert!(r.changes.is_empty(), "{}", r.to_text());
    assert_eq!((r.verdict(), r.wire_verdict()), (Verdict::Unchanged, Wire::Compatible));
    assert!(r.verdict_line().starts_with("unchanged: 6 messages and enums compared, none changed"), "{}", r.verdict_line());
    assert!(r.has_schemas());
    let none = diff(&[("xla/README", "x")], &[("xla/README", "y")]);
    assert!(none.changes.is_empty() && none.old.roots.is_empty() && !none.has_schemas());
    assert!(none.verdict_line().contains("no schema at either side"), "{}", none.verdict_line());
}

#[test]
fn a_schema_protoc_rejects_fails_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let broken = "syntax = \"proto3\";\npackage xla;\nmessage DebugOptions { Missing m = 1; }\n";
    write_tree(&dir.path().join("old"), &[("xla/xla.proto", DATA)]);
    write_tree(&dir.path().join("new"), &[("xla/xla.proto", broken)]);
    let err = format!("{:#}", proto::diff_dirs(&dir.path().join("old"), &dir.path().join("new")).unwrap_err());
    assert!(err.contains("protoc cannot compile the protobuf schemas of") && err.contains("xla/xla.proto:3:"), "{err}");
    assert!(err.contains("\"Missing\" is not defined") && err.contains("--no-protos"), "{err}");
    let missing_import = "syntax = \"proto3\";\npackage xla;\nimport \"xla/gone.proto\";\n";
    write_tree(&dir.path().join("new"), &[("xla/xla.proto", missing_import)]);
    let err = format!("{:#}", proto::diff_dirs(&dir.path().join("old"), &dir.path().join("new")).unwrap_err());
    assert!(err.contains("Imports found nowhere in the tree") && err.contains("xla/gone.proto"), "{err}");
}

/// The JSON section and the exit status: a protobuf break alone exits 2
/// (the C API unchanged); `--no-protos` compares the headers only.
#[test]
fn cli_folds_the_protobuf_verdict_into_the_exit_status() {
    if !support::require_libclang() {
        return;
    }
    let header = "#ifndef H_\n#define H_\n#define PJRT_API_MAJOR 0\n#define PJRT_API_MINOR 1\n#endif\n";
    let dir = tempfile::tempdir().unwrap();
    let mut old = tree(OLD_XLA, OLD_OTHER, DATA, OLD_HLO, ("xla/pjrt/compile_options.proto", OLD_COMPILE));
    let mut new = tree(NEW_XLA, NEW_OTHER, DATA, NEW_HLO, ("xla/pjrt/proto/compile_options.proto", NEW_COMPILE));
    old.push(("xla/pjrt/c/pjrt_c_api.h", header));
    new.push(("xla/pjrt/c/pjrt_c_api.h", header));
    write_tree(&dir.path().join("old"), &old);
    write_tree(&dir.path().join("new"), &new);
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["diff-headers", "old", "new", "--format", "json"])
            .args(extra)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), json)
    };
    let (code, json) = run(&[]);
    assert_eq!(code, Some(2), "{json}");
    assert_eq!((json["verdict"].as_str(), json["overall_verdict"].as_str()), (Some("unchanged"), Some("breaking")));
    let p = &json["protobuf"];
    assert_eq!((p["verdict"].as_str(), p["wire_verdict"].as_str()), (Some("breaking"), Some("breaking")));
    assert_eq!(p["new"]["roots"][0], "xla/pjrt/proto/compile_options.proto");
    assert_eq!(p["new"]["files"]["xla/service/hlo.proto"], "edition 2023");
    let renamed = p["changes"].as_array().unwrap().iter().find(|c| c["change"] == "renamed" && c["entity"] == "field").unwrap();
    for key in ["file", "entity", "name", "old_name", "change", "compat", "wire", "detail", "old", "new"] {
        assert!(renamed.get(key).is_some(), "change lacks {key}: {renamed}");
    }
    assert_eq!((renamed["old"]["number"].as_i64(), renamed["new"]["type"].as_str()), (Some(4), Some("bool")));
    assert_eq!(
        p["summary"]["wire_breaking"].as_u64().unwrap() as usize,
        p["changes"].as_array().unwrap().iter().filter(|c| c["wire"] == "breaking").count()
    );

    let (code, json) = run(&["--no-protos"]);
    assert_eq!((code, json["overall_verdict"].as_str()), (Some(0), Some("unchanged")), "{json}");
    assert!(json["protobuf"].is_null());

    // Run from inside NEW, whose xla/xla.proto has the same relative name
    // as the root protoc compiles for OLD: protoc must not read it.
    let text = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["diff-headers", "../old", "../new"])
        .current_dir(dir.path().join("new"))
        .output()
        .unwrap();
    assert_eq!(text.status.code(), Some(2), "{}", String::from_utf8_lossy(&text.stderr));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("\noverall: breaking (C API unchanged, protobuf breaking; exit status 2)\n"), "{text}");
    assert!(text.contains("wire:breaking   renumbered field      xla.DebugOptions.moved_number"), "{text}");
}

/// An import name that leaves the tree (`../x.proto`) is never read, nor
/// written into protoc's scratch tree (which it would escape): it stays
/// unresolved, and protoc says why.
#[test]
fn imports_that_leave_the_tree_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("pjrtpkgs-escape-{}.proto", std::process::id());
    // protoc's scratch tree is <temp>/pjrtpkgs-protos-*/src: two levels up is <temp>.
    let escaped = std::env::temp_dir().join(&marker);
    let _ = std::fs::remove_file(&escaped);
    let hostile = format!("syntax = \"proto3\";\npackage xla;\nimport \"../../{marker}\";\n");
    let (old, new) = (dir.path().join("a/b/old"), dir.path().join("a/b/new"));
    write_tree(&old, &[("xla/xla.proto", DATA)]);
    write_tree(&new, &[("xla/xla.proto", &hostile)]);
    // What the import names from the root of NEW exists: only the rule keeps it out.
    std::fs::write(dir.path().join("a").join(&marker), DATA).unwrap();
    let err = format!("{:#}", proto::diff_dirs(&old, &new).unwrap_err());
    let written = escaped.exists();
    let _ = std::fs::remove_file(&escaped);
    assert!(!written, "the import was written outside protoc's scratch tree: {}", escaped.display());
    assert!(err.contains("Imports found nowhere in the tree") && err.contains(&format!("../../{marker}")), "{err}");
}
