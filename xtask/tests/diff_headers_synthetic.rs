//! diff-headers on synthetic XLA trees: small git repositories (and
//! directory pairs) built here, one per change kind and verdict.

mod support;

use std::path::Path;
use std::process::Command;

use git2::{Oid, Repository, Signature};
use xtask::header_diff::{self, Abi, AbiVerdict, ChangeKind, Compat, Report, Verdict};

const CORE: &str = "xla/pjrt/c/pjrt_c_api.h";

/// A small PJRT-like core header; `{MINOR}`, `{FOO_FIELDS}`, `{FOO_LAST}`,
/// `{API_MEMBERS}`, `{ENUM}` and `{FN_ARGS}` are filled per test.
const CORE_TEMPLATE: &str = r#"#ifndef XLA_PJRT_C_PJRT_C_API_H_
#define XLA_PJRT_C_PJRT_C_API_H_
#include <stddef.h>
#include <stdint.h>

#define PJRT_STRUCT_SIZE(struct_type, last_field) \
  offsetof(struct_type, last_field) + sizeof(((struct_type*)0)->last_field)
#define PJRT_DEFINE_STRUCT_TRAITS(sname, last_field) \
  typedef struct sname sname;                        \
  enum { sname##_STRUCT_SIZE = PJRT_STRUCT_SIZE(sname, last_field) };

#ifdef __cplusplus
extern "C" {
#endif

#define PJRT_API_MAJOR 0
#define PJRT_API_MINOR {MINOR}

typedef struct PJRT_Extension_Base {
  size_t struct_size;
  int type;
  struct PJRT_Extension_Base* next;
} PJRT_Extension_Base;
PJRT_DEFINE_STRUCT_TRAITS(PJRT_Extension_Base, next);

typedef struct PJRT_Client PJRT_Client;
typedef struct PJRT_Error PJRT_Error;

typedef enum {
{ENUM}
} PJRT_Buffer_Type;

struct PJRT_Foo_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
{FOO_FIELDS}
};
PJRT_DEFINE_STRUCT_TRAITS(PJRT_Foo_Args, {FOO_LAST});

typedef PJRT_Error* PJRT_Foo({FN_ARGS});
typedef PJRT_Error* PJRT_Bar(PJRT_Foo_Args* args);

typedef struct PJRT_Api {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
{API_MEMBERS}
} PJRT_Api;

#ifdef __cplusplus
}
#endif
#endif
"#;

#[derive(Clone)]
struct Core {
    minor: u32,
    foo_fields: &'static str,
    foo_last: &'static str,
    api_members: &'static str,
    enumerators: &'static str,
    fn_args: &'static str,
}

impl Default for Core {
    fn default() -> Self {
        Core {
            minor: 10,
            foo_fields: "  PJRT_Client* client;\n  int32_t count;\n  const char* name;",
            foo_last: "name",
            api_members: "  PJRT_Foo* PJRT_Foo;\n  PJRT_Bar* PJRT_Bar;",
            enumerators: "  PJRT_Buffer_Type_INVALID,\n  PJRT_Buffer_Type_F32,\n  PJRT_Buffer_Type_F64,",
            fn_args: "PJRT_Foo_Args* args",
        }
    }
}

impl Core {
    fn text(&self) -> String {
        CORE_TEMPLATE
            .replace("{MINOR}", &self.minor.to_string())
            .replace("{FOO_FIELDS}", self.foo_fields)
            .replace("{FOO_LAST}", self.foo_last)
            .replace("{API_MEMBERS}", self.api_members)
            .replace("{ENUM}", self.enumerators)
            .replace("{FN_ARGS}", self.fn_args)
    }
}

const EXT_PATH: &str = "xla/pjrt/c/pjrt_c_api_widget_extension.h";

fn extension(version: u32, fields: &str) -> String {
    format!(
        "#ifndef W_H_\n#define W_H_\n#include <stddef.h>\n#include \"xla/pjrt/c/pjrt_c_api.h\"\n#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\
         #define PJRT_API_WIDGET_EXTENSION_VERSION {version}\n\
         typedef struct PJRT_Widget_Extension {{\n  PJRT_Extension_Base base;\n{fields}\n}} PJRT_Widget_Extension;\n\
         PJRT_DEFINE_STRUCT_TRAITS(PJRT_Widget_Extension, base);\n\
         #ifdef __cplusplus\n}}\n#endif\n#endif\n"
    )
}

/// A git repository with one commit per file set, in order.
fn repo_with(dir: &Path, commits: &[Vec<(&str, String)>]) -> (Repository, Vec<Oid>) {
    let repo = Repository::init(dir).unwrap();
    let sig = Signature::now("t", "t@example.com").unwrap();
    let mut oids = Vec::new();
    for files in commits {
        // Each commit holds exactly its files.
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != ".git" {
                std::fs::remove_dir_all(entry.path()).or_else(|_| std::fs::remove_file(entry.path())).unwrap();
            }
        }
        for (path, text) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        let mut index = repo.index().unwrap();
        index.clear().unwrap();
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let parents: Vec<_> = oids.last().map(|o| repo.find_commit(*o).unwrap()).into_iter().collect();
        let parent_refs: Vec<_> = parents.iter().collect();
        oids.push(repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &parent_refs).unwrap());
    }
    (repo, oids)
}

fn diff(old: Vec<(&str, String)>, new: Vec<(&str, String)>) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let (repo, oids) = repo_with(dir.path(), &[old, new]);
    header_diff::diff_commits(&repo, oids[0], oids[1]).unwrap()
}

fn diff_core(old: Core, new: Core) -> Report {
    diff(vec![(CORE, old.text())], vec![(CORE, new.text())])
}

fn find<'a>(report: &'a Report, name: &str, kind: ChangeKind) -> &'a xtask::header_diff::Change {
    report
        .changes
        .iter()
        .find(|c| c.name == name && c.change == kind)
        .unwrap_or_else(|| panic!("no {kind:?} change of {name} in:\n{}", report.to_text()))
}

#[test]
fn unchanged_headers_give_an_unchanged_verdict() {
    if !support::require_libclang() {
        return;
    }
    let report =
        diff(vec![(CORE, Core::default().text()), ("README", "a".into())], vec![(CORE, Core::default().text()), ("README", "b".into())]);
    assert_eq!(report.verdict(), Verdict::Unchanged, "{}", report.to_text());
    assert!(report.changes.is_empty() && report.warnings().is_empty());
    assert_eq!(report.old_api_version().as_deref(), Some("0.10"));
}

#[test]
fn appended_field_with_minor_bump_is_compatible() {
    if !support::require_libclang() {
        return;
    }
    let new = Core {
        minor: 11,
        foo_fields: "  PJRT_Client* client;\n  int32_t count;\n  const char* name;\n  int64_t extra;",
        foo_last: "extra",
        ..Core::default()
    };
    let report = diff_core(Core::default(), new);
    assert_eq!(report.verdict(), Verdict::Compatible, "{}", report.to_text());
    let added = find(&report, "PJRT_Foo_Args.extra", ChangeKind::Added);
    assert_eq!((added.entity, added.compat), ("field", Compat::Compatible));
    assert!(added.detail.contains("appended") && added.detail.contains("offset 40"), "{}", added.detail);
    let size = find(&report, "PJRT_Foo_Args", ChangeKind::Redefined);
    assert_eq!(size.entity, "struct_size");
    assert!(size.detail.contains("`name` -> `extra`") && size.detail.contains("40 -> 48"), "{}", size.detail);
    assert_eq!(find(&report, "PJRT_Foo_Args", ChangeKind::Resized).compat, Compat::Compatible);
    assert_eq!(find(&report, "PJRT_API_MINOR", ChangeKind::Renumbered).compat, Compat::Neutral);
    assert!(report.warnings().is_empty(), "{:?}", report.warnings());
    assert_eq!((report.old_api_version().unwrap(), report.new_api_version().unwrap()), ("0.10".into(), "0.11".into()));
}

#[test]
fn addition_without_minor_bump_warns() {
    if !support::require_libclang() {
        return;
    }
    let new = Core { api_members: "  PJRT_Foo* PJRT_Foo;\n  PJRT_Bar* PJRT_Bar;\n  PJRT_Foo* PJRT_Foo2;", ..Core::default() };
    let report = diff_core(Core::default(), new);
    assert_eq!(report.verdict(), Verdict::Compatible);
    let member = find(&report, "PJRT_Api.PJRT_Foo2", ChangeKind::Added);
    assert_eq!((member.entity, member.compat), ("api_member", Compat::Compatible));
    assert!(report.warnings().iter().any(|w| w.contains("PJRT_API_MINOR stayed 10")), "{:?}", report.warnings());
}

#[test]
fn inserted_removed_retyped_reordered_fields_are_breaking() {
    if !support::require_libclang() {
        return;
    }
    // Inserted before the end: the later fields move.
    let inserted = Core {
        minor: 11,
        foo_fields: "  PJRT_Client* client;\n  int32_t early;\n  int32_t count;\n  const char* name;",
        ..Core::default()
    };
    let report = diff_core(Core::default(), inserted);
    assert_eq!(report.verdict(), Verdict::Breaking, "{}", report.to_text());
    let added = find(&report, "PJRT_Foo_Args.early", ChangeKind::Added);
    assert_eq!(added.compat, Compat::Breaking);
    assert!(added.detail.contains("inserted before the end"), "{}", added.detail);
    assert!(find(&report, "PJRT_Foo_Args", ChangeKind::Moved).detail.contains("count 24->28"));
    assert!(report.warnings().iter().any(|w| w.contains("PJRT_API_MAJOR stayed 0")), "{:?}", report.warnings());

    let removed = Core { foo_fields: "  PJRT_Client* client;\n  const char* name;", ..Core::default() };
    let report = diff_core(Core::default(), removed);
    assert_eq!(find(&report, "PJRT_Foo_Args.count", ChangeKind::Removed).compat, Compat::Breaking);
    assert_eq!(report.verdict(), Verdict::Breaking);

    let retyped = Core { foo_fields: "  PJRT_Client* client;\n  int64_t count;\n  const char* name;", ..Core::default() };
    let report = diff_core(Core::default(), retyped);
    let change = find(&report, "PJRT_Foo_Args.count", ChangeKind::Retyped);
    assert_eq!(change.compat, Compat::Breaking);
    assert!(change.detail.contains("int32_t -> int64_t"), "{}", change.detail);

    let reordered = Core { api_members: "  PJRT_Bar* PJRT_Bar;\n  PJRT_Foo* PJRT_Foo;", ..Core::default() };
    let report = diff_core(Core::default(), reordered);
    let change = report.changes.iter().find(|c| c.change == ChangeKind::Reordered).expect("a reordered member");
    assert_eq!((change.entity, change.compat), ("api_member", Compat::Breaking));
    assert_eq!(report.verdict(), Verdict::Breaking);
}

#[test]
fn enumerators_added_and_renumbered() {
    if !support::require_libclang() {
        return;
    }
    let appended = Core {
        enumerators: "  PJRT_Buffer_Type_INVALID,\n  PJRT_Buffer_Type_F32,\n  PJRT_Buffer_Type_F64,\n  PJRT_Buffer_Type_F8,",
        minor: 11,
        ..Core::default()
    };
    let report = diff_core(Core::default(), appended);
    let change = find(&report, "PJRT_Buffer_Type.PJRT_Buffer_Type_F8", ChangeKind::Added);
    assert_eq!((change.entity, change.compat, change.detail.as_str()), ("enumerator", Compat::Compatible, "= 3"));
    assert_eq!(report.verdict(), Verdict::Compatible);

    let inserted = Core {
        enumerators: "  PJRT_Buffer_Type_INVALID,\n  PJRT_Buffer_Type_F16,\n  PJRT_Buffer_Type_F32,\n  PJRT_Buffer_Type_F64,",
        ..Core::default()
    };
    let report = diff_core(Core::default(), inserted);
    let change = find(&report, "PJRT_Buffer_Type.PJRT_Buffer_Type_F32", ChangeKind::Renumbered);
    assert_eq!((change.compat, change.detail.as_str()), (Compat::Breaking, "1 -> 2"));
    assert_eq!(report.verdict(), Verdict::Breaking);
}

fn kinds_of(report: &Report, name: &str) -> Vec<ChangeKind> {
    report.changes.iter().filter(|c| c.name == name).map(|c| c.change).collect()
}

#[test]
fn enumerator_renamed_keeps_the_abi() {
    if !support::require_libclang() {
        return;
    }
    let renamed = Core {
        minor: 11,
        enumerators: "  PJRT_Buffer_Type_INVALID,\n  PJRT_Buffer_Type_F32,\n  PJRT_Buffer_Type_DOUBLE,\n  PJRT_Buffer_Type_F8,",
        ..Core::default()
    };
    let report = diff_core(Core::default(), renamed);
    let change = find(&report, "PJRT_Buffer_Type.PJRT_Buffer_Type_DOUBLE", ChangeKind::Renamed);
    assert_eq!((change.entity, change.compat, change.abi), ("enumerator", Compat::Breaking, Some(Abi::Compatible)));
    assert_eq!(change.old_name.as_deref(), Some("PJRT_Buffer_Type.PJRT_Buffer_Type_F64"));
    assert_eq!(change.detail, "renamed PJRT_Buffer_Type_F64 -> PJRT_Buffer_Type_DOUBLE (ABI-compatible: same value 2; source-breaking)");
    assert!(kinds_of(&report, "PJRT_Buffer_Type.PJRT_Buffer_Type_F64").is_empty(), "{}", report.to_text());
    assert_eq!(find(&report, "PJRT_Buffer_Type.PJRT_Buffer_Type_F8", ChangeKind::Added).abi, Some(Abi::Compatible));
    // PJRT's rules: a rename is a removal (MAJOR); the ABI holds.
    assert_eq!(report.verdict(), Verdict::Breaking);
    assert_eq!(report.abi_verdict(), AbiVerdict::Compatible);
    let text = report.to_text();
    assert!(text.contains("breaking for source, ABI-compatible (all 1 breaking change(s) are renames"), "{text}");
    assert!(text.contains("renamed    enumerator"), "{text}");
    assert!(
        report.warnings().iter().any(|w| w.contains("keep the ABI") && w.contains("PJRT_API_MAJOR stayed 0")),
        "{:?}",
        report.warnings()
    );
    let md = report.to_markdown();
    assert!(
        md.contains("| ⚠️ breaking (source only, ABI-compatible) | renamed | enumerator | `PJRT_Buffer_Type.PJRT_Buffer_Type_DOUBLE` |"),
        "{md}"
    );
    let json = report.to_json();
    assert_eq!((json["verdict"].as_str(), json["abi_verdict"].as_str()), (Some("breaking"), Some("compatible")));
    assert_eq!((json["summary"]["renamed"].as_u64(), json["summary"]["abi_breaking"].as_u64()), (Some(1), Some(0)));

    // The old value is still carried by an enumerator that stays (F64):
    // dropping its alias REAL and adding DOUBLE = 2 is no rename.
    let with_alias = Core {
        enumerators: "  PJRT_Buffer_Type_INVALID,\n  PJRT_Buffer_Type_F32,\n  PJRT_Buffer_Type_F64,\n  PJRT_Buffer_Type_REAL = 2,",
        ..Core::default()
    };
    let alias_swapped = Core {
        enumerators: "  PJRT_Buffer_Type_INVALID,\n  PJRT_Buffer_Type_F32,\n  PJRT_Buffer_Type_F64,\n  PJRT_Buffer_Type_DOUBLE = 2,",
        ..Core::default()
    };
    let report = diff_core(with_alias.clone(), alias_swapped);
    assert_eq!(find(&report, "PJRT_Buffer_Type.PJRT_Buffer_Type_REAL", ChangeKind::Removed).abi, Some(Abi::Breaking));
    find(&report, "PJRT_Buffer_Type.PJRT_Buffer_Type_DOUBLE", ChangeKind::Added);
    assert!(report.changes.iter().all(|c| c.change != ChangeKind::Renamed), "{}", report.to_text());
    assert_eq!(report.abi_verdict(), AbiVerdict::Breaking);

    // Two removed enumerators with the value, one added: paired one to one,
    // in declaration order (F64 first); the other stays a removal.
    let one_name =
        Core { enumerators: "  PJRT_Buffer_Type_INVALID,\n  PJRT_Buffer_Type_F32,\n  PJRT_Buffer_Type_DOUBLE,", ..Core::default() };
    let report = diff_core(with_alias, one_name);
    let change = find(&report, "PJRT_Buffer_Type.PJRT_Buffer_Type_DOUBLE", ChangeKind::Renamed);
    assert_eq!(change.old_name.as_deref(), Some("PJRT_Buffer_Type.PJRT_Buffer_Type_F64"));
    assert_eq!(kinds_of(&report, "PJRT_Buffer_Type.PJRT_Buffer_Type_REAL"), [ChangeKind::Removed]);
    assert_eq!(report.changes.iter().filter(|c| c.change == ChangeKind::Renamed).count(), 1);
}

#[test]
fn field_and_api_member_renamed_keep_the_abi() {
    if !support::require_libclang() {
        return;
    }
    let renamed = Core {
        foo_fields: "  PJRT_Client* client;\n  int32_t num;\n  const char* name;",
        api_members: "  PJRT_Foo* PJRT_Foo_V2;\n  PJRT_Bar* PJRT_Bar;",
        ..Core::default()
    };
    let report = diff_core(Core::default(), renamed);
    let change = find(&report, "PJRT_Foo_Args.num", ChangeKind::Renamed);
    assert_eq!((change.entity, change.compat, change.abi), ("field", Compat::Breaking, Some(Abi::Compatible)));
    assert_eq!(change.old_name.as_deref(), Some("PJRT_Foo_Args.count"));
    assert_eq!(change.detail, "renamed count -> num (ABI-compatible: same offset/type, int32_t at offset 24, 4 bytes; source-breaking)");
    assert_eq!(
        (change.old.as_ref().unwrap()["name"].as_str(), change.new.as_ref().unwrap()["name"].as_str()),
        (Some("count"), Some("num"))
    );
    assert!(kinds_of(&report, "PJRT_Foo_Args.count").is_empty(), "{}", report.to_text());
    let member = find(&report, "PJRT_Api.PJRT_Foo_V2", ChangeKind::Renamed);
    assert_eq!((member.entity, member.abi), ("api_member", Some(Abi::Compatible)));
    assert_eq!(member.old_name.as_deref(), Some("PJRT_Api.PJRT_Foo"));
    assert!(report.changes.iter().all(|c| c.change != ChangeKind::Moved && c.change != ChangeKind::Added), "{}", report.to_text());
    assert_eq!((report.verdict(), report.abi_verdict()), (Verdict::Breaking, AbiVerdict::Compatible));
    let json = report.to_json();
    let renamed = json["changes"].as_array().unwrap().iter().find(|c| c["name"] == "PJRT_Foo_Args.num").unwrap();
    assert_eq!((renamed["change"].as_str(), renamed["abi"].as_str()), (Some("renamed"), Some("compatible")));
    assert_eq!(renamed["old_name"], "PJRT_Foo_Args.count");
    assert!(report.to_text().contains("PJRT_Foo_Args.num  renamed count -> num (ABI-compatible: same offset/type"));
}

#[test]
fn retyped_or_moved_replacements_are_no_renames() {
    if !support::require_libclang() {
        return;
    }
    // Same offset and size, another type: removed + inserted, ABI-breaking.
    let retyped = Core { foo_fields: "  PJRT_Client* client;\n  uint32_t num;\n  const char* name;", ..Core::default() };
    let report = diff_core(Core::default(), retyped);
    assert_eq!(kinds_of(&report, "PJRT_Foo_Args.count"), [ChangeKind::Removed]);
    let added = find(&report, "PJRT_Foo_Args.num", ChangeKind::Added);
    assert_eq!((added.compat, added.abi), (Compat::Breaking, Some(Abi::Breaking)));
    assert!(report.changes.iter().all(|c| c.change != ChangeKind::Renamed), "{}", report.to_text());
    assert_eq!((report.verdict(), report.abi_verdict()), (Verdict::Breaking, AbiVerdict::Breaking));
    assert!(report.to_text().lines().nth(1).unwrap().ends_with("; ABI-breaking"), "{}", report.to_text());

    // Same type, another offset: `count` removed, `num` appended after `name`.
    let elsewhere = Core { foo_fields: "  PJRT_Client* client;\n  const char* name;\n  int32_t num;", foo_last: "num", ..Core::default() };
    let report = diff_core(Core::default(), elsewhere);
    let removed = find(&report, "PJRT_Foo_Args.count", ChangeKind::Removed);
    assert_eq!((removed.compat, removed.abi), (Compat::Breaking, Some(Abi::Breaking)));
    let added = find(&report, "PJRT_Foo_Args.num", ChangeKind::Added);
    assert_eq!((added.compat, added.abi), (Compat::Compatible, Some(Abi::Compatible)));
    assert_eq!(find(&report, "PJRT_Foo_Args", ChangeKind::Moved).abi, Some(Abi::Breaking));
    assert!(report.changes.iter().all(|c| c.change != ChangeKind::Renamed), "{}", report.to_text());
    assert_eq!(report.abi_verdict(), AbiVerdict::Breaking);
    // A rename next to real breakage: the summary says both.
    let mixed = Core { foo_fields: "  PJRT_Client* client;\n  int32_t num;\n  int64_t name;", ..Core::default() };
    let report = diff_core(Core::default(), mixed);
    find(&report, "PJRT_Foo_Args.num", ChangeKind::Renamed);
    assert_eq!(find(&report, "PJRT_Foo_Args.name", ChangeKind::Retyped).abi, Some(Abi::Breaking));
    assert!(report.to_text().contains("; ABI-breaking (1 change(s) break the ABI; 1 rename(s) keep it)"), "{}", report.to_text());
}

#[test]
fn function_pointer_typedef_retyped() {
    if !support::require_libclang() {
        return;
    }
    let new = Core { fn_args: "PJRT_Foo_Args* args, int flags", ..Core::default() };
    let report = diff_core(Core::default(), new);
    let change = find(&report, "PJRT_Foo", ChangeKind::Retyped);
    assert_eq!((change.entity, change.compat), ("typedef", Compat::Breaking));
    assert_eq!(report.verdict(), Verdict::Breaking);
}

#[test]
fn extension_headers_added_changed_and_removed() {
    if !support::require_libclang() {
        return;
    }
    let core = || (CORE, Core::default().text());
    // Added: a new public header is compatible.
    let report = diff(vec![core()], vec![core(), (EXT_PATH, extension(1, "  int32_t a;"))]);
    let change = find(&report, EXT_PATH, ChangeKind::Added);
    assert_eq!((change.entity, change.compat), ("header", Compat::Compatible));
    assert!(report.changes.iter().any(|c| c.name == "PJRT_Widget_Extension" && c.change == ChangeKind::Added));
    assert_eq!(report.verdict(), Verdict::Compatible);

    // Changed without bumping its version macro: a warning.
    let report =
        diff(vec![core(), (EXT_PATH, extension(1, "  int32_t a;"))], vec![core(), (EXT_PATH, extension(1, "  int32_t a;\n  int32_t b;"))]);
    assert_eq!(find(&report, "PJRT_Widget_Extension.b", ChangeKind::Added).header, EXT_PATH);
    assert!(
        report.warnings().iter().any(|w| w.contains(EXT_PATH) && w.contains("PJRT_API_WIDGET_EXTENSION_VERSION = 1")),
        "{:?}",
        report.warnings()
    );
    // Bumped: no warning.
    let report =
        diff(vec![core(), (EXT_PATH, extension(1, "  int32_t a;"))], vec![core(), (EXT_PATH, extension(2, "  int32_t a;\n  int32_t b;"))]);
    assert!(report.warnings().is_empty(), "{:?}", report.warnings());
    assert_eq!(find(&report, "PJRT_API_WIDGET_EXTENSION_VERSION", ChangeKind::Renumbered).entity, "version_macro");

    // Removed: breaking.
    let report = diff(vec![core(), (EXT_PATH, extension(1, "  int32_t a;"))], vec![core()]);
    assert_eq!(find(&report, EXT_PATH, ChangeKind::Removed).compat, Compat::Breaking);
    assert_eq!(report.verdict(), Verdict::Breaking);
}

/// A C++-only extension (struct tags used bare, an unguarded `extern "C"`,
/// includes of absl and C++ implementation headers) under
/// xla/pjrt/extensions/, which also holds non-public headers.
#[test]
fn cxx_only_extension_is_parsed_as_cxx() {
    if !support::require_libclang() {
        return;
    }
    let ext = |fields: &str| {
        format!(
            "#pragma once\n#include <cstdint>\n#include <memory>\n#include \"absl/status/status.h\"\n#include \"xla/pjrt/pjrt_client.h\"\n\
             #include \"xla/pjrt/c/pjrt_c_api.h\"\nextern \"C\" {{\n#define PJRT_API_GADGET_EXTENSION_VERSION 3\n\
             struct PJRT_Gadget_Args {{\n  size_t struct_size;\n  PJRT_Extension_Base* extension_start;\n  const xla::PjRtClient* client;\n{fields}\n}};\n\
             PJRT_DEFINE_STRUCT_TRAITS(PJRT_Gadget_Args, extension_start);\n}}\n\
             namespace pjrt {{ absl::Status Helper(std::unique_ptr<int> x); }}\n"
        )
    };
    let path = "xla/pjrt/extensions/gadget/gadget_extension.h";
    let private = ("xla/pjrt/extensions/gadget/gadget_extension_internal.h", "this is not even C".to_string());
    let core = || (CORE, Core::default().text());
    let report = diff(
        vec![
            core(),
            (path, ext("  int32_t a;")),
            private.clone(),
            ("xla/pjrt/pjrt_client.h", "namespace xla { class PjRtClient; }".into()),
        ],
        vec![core(), (path, ext("  int64_t a;")), private.clone()],
    );
    let header = &report.new.model.headers[path];
    assert_eq!(serde_json::to_value(header.language).unwrap(), "c++");
    assert!(header.stubbed_includes.contains(&"absl/status/status.h".to_string()), "{:?}", header.stubbed_includes);
    assert!(!report.new.model.headers.contains_key(private.0));
    let change = find(&report, "PJRT_Gadget_Args.a", ChangeKind::Retyped);
    assert_eq!(change.compat, Compat::Breaking);
    assert!(report.notes.iter().any(|n| n.contains("xla::PjRtClient")), "{:?}", report.notes);
    let client = report.new.model.structure("PJRT_Gadget_Args").unwrap().fields.iter().find(|f| f.name == "client").unwrap();
    assert_eq!((client.offset_bytes(), client.size), (16, Some(8)));
}

#[test]
fn directory_pairs_are_diffed_like_commits() {
    if !support::require_libclang() {
        return;
    }
    let (old, new) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (dir, core) in [
        (&old, Core::default()),
        (&new, Core { minor: 11, api_members: "  PJRT_Foo* PJRT_Foo;\n  PJRT_Bar* PJRT_Bar;\n  PJRT_Bar* PJRT_Baz;", ..Core::default() }),
    ] {
        std::fs::create_dir_all(dir.path().join("xla/pjrt/c")).unwrap();
        std::fs::write(dir.path().join(CORE), core.text()).unwrap();
    }
    let report = header_diff::diff_dirs(old.path(), new.path()).unwrap();
    assert_eq!(find(&report, "PJRT_Api.PJRT_Baz", ChangeKind::Added).compat, Compat::Compatible);
    assert_eq!(report.verdict(), Verdict::Compatible);
}

#[test]
fn json_report_follows_the_documented_schema() {
    if !support::require_libclang() {
        return;
    }
    let new = Core {
        minor: 11,
        foo_fields: "  PJRT_Client* client;\n  int32_t count;\n  const char* name;\n  int64_t extra;",
        foo_last: "extra",
        ..Core::default()
    };
    let report = diff_core(Core::default(), new);
    let json = report.to_json();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["verdict"], "compatible");
    assert_eq!(json["required_bump"], "minor");
    assert_eq!(json["old"]["api_version"], "0.10");
    assert_eq!(json["new"]["headers"][0]["path"], CORE);
    assert_eq!(json["new"]["headers"][0]["version_macros"]["PJRT_API_MINOR"], "11");
    let added = json["changes"].as_array().unwrap().iter().find(|c| c["name"] == "PJRT_Foo_Args.extra").unwrap();
    for key in ["header", "entity", "name", "old_name", "change", "compat", "abi", "detail", "old", "new"] {
        assert!(added.get(key).is_some(), "change lacks {key}: {added}");
    }
    assert_eq!((added["abi"].as_str(), added["old_name"].as_str()), (Some("compatible"), None));
    assert_eq!(json["abi_verdict"], "compatible");
    assert_eq!((json["summary"]["renamed"].as_u64(), json["summary"]["abi_breaking"].as_u64()), (Some(0), Some(0)));
    let minor = json["changes"].as_array().unwrap().iter().find(|c| c["name"] == "PJRT_API_MINOR").unwrap();
    assert!(minor["abi"].is_null(), "{minor}");
    assert_eq!(added["new"]["offset_bits"], 320);
    assert_eq!(
        json["summary"]["compatible"].as_u64().unwrap() as usize,
        report.changes.iter().filter(|c| c.compat == Compat::Compatible).count()
    );
    let md = report.to_markdown();
    assert!(md.contains("## PJRT C API 0.10 → 0.11 (compatible)") && md.contains("| `PJRT_Foo_Args.extra` |"), "{md}");
}

/// Headers are read from git objects only: a repository missing unrelated
/// blobs (a partial clone) still diffs.
#[test]
fn works_with_unrelated_objects_missing() {
    if !support::require_libclang() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(10_000);
    let (repo, oids) = repo_with(
        dir.path(),
        &[
            vec![(CORE, Core::default().text()), ("xla/big.bin", big.clone())],
            vec![(CORE, Core { minor: 11, ..Core::default() }.text()), ("xla/big.bin", big + "y")],
        ],
    );
    for commit in &oids {
        let blob = repo.find_commit(*commit).unwrap().tree().unwrap().get_path(Path::new("xla/big.bin")).unwrap().id().to_string();
        std::fs::remove_file(dir.path().join(".git/objects").join(&blob[..2]).join(&blob[2..])).unwrap();
    }
    let repo = Repository::open(dir.path()).unwrap();
    let report = header_diff::diff_commits(&repo, oids[0], oids[1]).unwrap();
    assert_eq!(report.new_api_version().as_deref(), Some("0.11"));
}

/// The command line: exit codes and error messages.
#[test]
fn cli_exit_codes_and_errors() {
    if !support::require_libclang() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broken = Core { foo_fields: "  PJRT_Client* client;\n  int32_t count\n  const char* name;", ..Core::default() };
    let (_repo, oids) = repo_with(
        dir.path(),
        &[
            vec![("README", "before PJRT".into())],
            vec![(CORE, Core::default().text())],
            vec![(
                CORE,
                Core { minor: 11, api_members: "  PJRT_Foo* PJRT_Foo;\n  PJRT_Bar* PJRT_Bar;\n  PJRT_Bar* PJRT_Baz;", ..Core::default() }
                    .text(),
            )],
            vec![(CORE, Core { minor: 12, api_members: "  PJRT_Bar* PJRT_Bar;", ..Core::default() }.text())],
            vec![(CORE, broken.text())],
        ],
    );
    let run = |old: &str, new: &str, format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["diff-headers", old, new, "--format", format, "--xla-repo"])
            .arg(dir.path())
            .output()
            .unwrap();
        (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let [before, v10, v11, v12, broken] = [0, 1, 2, 3, 4].map(|i| oids[i].to_string());

    let (code, out, _) = run(&v10, &v10, "text");
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(&v10, &v11, "json");
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["verdict"], "compatible");
    let (code, out, _) = run(&v11, "HEAD~1", "markdown");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("breaking"), "{out}");

    let (code, _, err) = run(&v10, "no-such-rev", "text");
    assert_eq!(code, 1);
    assert!(err.contains("unknown revision `no-such-rev`"), "{err}");
    let (code, _, err) = run(&before, &v10, "text");
    assert_eq!(code, 1);
    assert!(err.contains("predates the PJRT C API"), "{err}");
    let (code, _, err) = run(&v12, &broken, "text");
    assert_eq!(code, 1);
    assert!(err.contains("xla/pjrt/c/pjrt_c_api.h:") && err.contains("expected ';'"), "{err}");
}

/// Without --xla-repo the cached upstream clone is used; an abbreviated id
/// it lacks cannot be fetched by the git protocol, and the error says so
/// before any network access.
#[test]
fn abbreviated_commit_missing_from_the_cached_clone_is_explained() {
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["diff-headers", "abc1234", "def5678"])
        .env_remove("XLA_REPO")
        .env("PJRTPKGS_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("abbreviated commit `abc1234`") && stderr.contains("full 40-hex"), "{stderr}");
}
