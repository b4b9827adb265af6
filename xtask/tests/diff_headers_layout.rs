//! The ABI facts of the model (struct sizes, alignments, field offsets and
//! sizes) agree with clang's own record layouts
//! (`clang -Xclang -fdump-record-layouts`) on real XLA headers, on both
//! sides of a PJRT bump that appended fields (0.113 added
//! `peak_allocated_bytes*` to `PJRT_Device_MemoryStats_Args`).

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use git2::{Oid, Repository};
use xtask::header_diff::{self, ApiModel, ChangeKind, Compat};

/// One record as clang lays it out: size, alignment, offsets of its
/// direct fields (members of anonymous structs/unions flattened).
#[derive(Debug, Default)]
struct Layout {
    size: u64,
    align: u64,
    offsets: Vec<(String, u64)>,
}

/// Parses `-fdump-record-layouts` output.
fn parse_dump(dump: &str) -> BTreeMap<String, Layout> {
    let mut layouts = BTreeMap::new();
    let mut current: Option<(String, Layout)> = None;
    // Depth of an anonymous record whose members are flattened.
    let mut flatten_depth: Option<usize> = None;
    for line in dump.lines() {
        if line.contains("*** Dumping AST Record Layout") {
            if let Some((name, layout)) = current.take() {
                layouts.entry(name).or_insert(layout);
            }
            continue;
        }
        let Some((left, right)) = line.split_once(" | ") else {
            // `| [sizeof=...` lines start with spaces and a bar.
            if let Some(rest) = line.trim_start().strip_prefix("| [sizeof=") {
                if let Some((_, layout)) = current.as_mut() {
                    let fields: Vec<&str> = rest.split([',', ']']).collect();
                    layout.size = fields[0].trim().parse().unwrap();
                    for f in &fields {
                        if let Some(a) = f.trim().strip_prefix("align=") {
                            layout.align = a.parse().unwrap();
                        }
                    }
                }
            }
            continue;
        };
        let offset_text = left.trim();
        let indent = right.len() - right.trim_start().len();
        let depth = indent / 2;
        let text = right.trim();
        if offset_text.is_empty() {
            if let Some(rest) = text.strip_prefix("[sizeof=") {
                if let Some((_, layout)) = current.as_mut() {
                    layout.size = rest.split(',').next().unwrap().trim().parse().unwrap();
                    for f in rest.split([',', ']']) {
                        if let Some(a) = f.trim().strip_prefix("align=") {
                            layout.align = a.parse().unwrap();
                        }
                    }
                }
            }
            continue;
        }
        let offset: u64 = offset_text.split(':').next().unwrap().parse().unwrap();
        if depth == 0 {
            let name = text.trim_start_matches("struct ").trim_start_matches("union ").to_string();
            current = Some((name, Layout::default()));
            flatten_depth = None;
            continue;
        }
        let Some((_, layout)) = current.as_mut() else { continue };
        if let Some(d) = flatten_depth {
            if depth <= d {
                flatten_depth = None;
            } else {
                if depth == d + 1 {
                    let name = text.rsplit(' ').next().unwrap().split('[').next().unwrap();
                    layout.offsets.push((name.to_string(), offset));
                }
                continue;
            }
        }
        if depth == 1 {
            if text.contains("(anonymous") || text.contains("(unnamed") {
                flatten_depth = Some(1);
                continue;
            }
            let name = text.rsplit(' ').next().unwrap().split('[').next().unwrap();
            layout.offsets.push((name.to_string(), offset));
        }
    }
    if let Some((name, layout)) = current.take() {
        layouts.entry(name).or_insert(layout);
    }
    layouts
}

fn compare_with_clang(repo: &Repository, commit: Oid, model: &ApiModel) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let core = "xla/pjrt/c/pjrt_c_api.h";
    let header = xtask::xla_headers::public_headers(repo, commit).unwrap().into_iter().find(|h| h.path == core).unwrap();
    let path = dir.path().join(core);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &header.contents).unwrap();

    // Force every modelled struct's layout, and check each field's size
    // with clang itself.
    let structs: Vec<(&String, &xtask::header_diff::model::Struct)> = model
        .decls
        .values()
        .filter(|d| d.header == core)
        .filter_map(|d| match &d.kind {
            xtask::header_diff::model::DeclKind::Struct(s) if s.size.is_some() => Some((&d.name, s)),
            _ => None,
        })
        .collect();
    let mut source = format!("#include \"{core}\"\n");
    for (i, (name, s)) in structs.iter().enumerate() {
        source.push_str(&format!("char force_{i}[sizeof(struct {name})];\n"));
        for f in &s.fields {
            if let (Some(size), None) = (f.size, f.bit_width) {
                source.push_str(&format!(
                    "_Static_assert(sizeof(((struct {name}*)0)->{}) == {size}, \"{name}.{} is {size} bytes in the model\");\n",
                    f.name, f.name
                ));
            }
        }
    }
    let main = dir.path().join("layouts.c");
    std::fs::write(&main, source).unwrap();
    let out = Command::new("clang")
        .args(["-x", "c", "-std=c11", "--target=x86_64-unknown-linux-gnu", "-Xclang", "-fdump-record-layouts", "-fsyntax-only", "-I"])
        .arg(dir.path())
        .arg(&main)
        .output()
        .expect("clang runs");
    assert!(out.status.success(), "clang rejects the layout checks at {commit}:\n{}", String::from_utf8_lossy(&out.stderr));
    let dumped = parse_dump(&String::from_utf8_lossy(&out.stdout));

    for (name, s) in &structs {
        let layout = dumped.get(name.as_str()).unwrap_or_else(|| panic!("clang dumped no layout for {name}"));
        assert_eq!((s.size, s.align), (Some(layout.size), Some(layout.align)), "size/align of {name} at {commit}");
        let ours: Vec<(String, u64)> = s.fields.iter().map(|f| (f.name.clone(), f.offset_bytes())).collect();
        assert_eq!(ours, layout.offsets, "field offsets of {name} at {commit}");
    }
    structs.len()
}

#[test]
fn model_layouts_match_clang_record_layouts() {
    let Some(dir) = support::xla_repo() else { return };
    if !support::require_command("clang") || !support::require_libclang() {
        return;
    }
    let repo = Repository::open(&dir).unwrap();
    // The commit that introduced PJRT_API_MINOR 113, found in history.
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo.path())
        .args(["log", "--format=%H", "-S#define PJRT_API_MINOR 113", "main", "--", "xla/pjrt/c/pjrt_c_api.h"])
        .output()
        .unwrap();
    let bump =
        String::from_utf8(out.stdout).unwrap().lines().last().map(|s| Oid::from_str(s).unwrap()).expect("the 0.113 bump is in XLA_REPO");
    let parent = repo.find_commit(bump).unwrap().parent_id(0).unwrap();

    let report = header_diff::diff_commits(&repo, parent, bump).unwrap();
    assert_eq!(report.new_api_version().as_deref(), Some("0.113"));
    let appended = report
        .changes
        .iter()
        .find(|c| c.name == "PJRT_Device_MemoryStats_Args.peak_allocated_bytes" && c.change == ChangeKind::Added)
        .unwrap_or_else(|| panic!("no appended field in:\n{}", report.to_text()));
    assert_eq!(appended.compat, Compat::Compatible);

    let checked_old = compare_with_clang(&repo, parent, &report.old.model);
    let checked_new = compare_with_clang(&repo, bump, &report.new.model);
    println!("layouts of {checked_old} structs at {parent} and {checked_new} at {bump} agree with clang's record layouts");
    assert!(checked_new > 100, "only {checked_new} structs compared");
}
