//! The xtask's layers, checked from its sources: `cli` parses and dispatches
//! to the verbs; a verb stands on shared modules and never on another verb;
//! a shared module never reaches up to a verb or to `cli`; and no import
//! circle runs through the top-level modules, nor through the submodules of
//! any one module (docs/architecture.md draws the picture).
//!
//! A reference is any path the sources spell from the crate root or
//! relative to the module: `crate::a::b`, `$crate::a` (macros),
//! `super::super::a`, `self::a`, grouped `use crate::{a, b::c}` included.
//! Comments are not read. The verbs are the modules `cli.rs` dispatches to
//! (`crate::NAME::run(`), so a new verb is covered without editing this.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with its module path (`conform/checks/api.rs`
/// -> `["conform", "checks", "api"]`). `lib.rs` and `main.rs` are the root.
fn modules(dir: &Path) -> Vec<(Vec<String>, PathBuf)> {
    fn walk(dir: &Path, prefix: &[String], out: &mut Vec<(Vec<String>, PathBuf)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                let mut p = prefix.to_vec();
                p.push(name);
                walk(&path, &p, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut p = prefix.to_vec();
                if !(prefix.is_empty() && (name == "lib" || name == "main")) && name != "mod" {
                    p.push(name);
                }
                out.push((p, path));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &[], &mut out);
    out
}

/// The source without comments (`//...` to the end of the line, `/* */`);
/// string contents are kept (a generated `impl crate::X` names no module of
/// ours, and unknown names are ignored anyway).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let copied = if rest.starts_with("//") {
            // A comment: dropped up to the end of the line.
            i += rest.find('\n').unwrap_or(rest.len());
            continue;
        } else if let Some(body) = rest.strip_prefix("/*") {
            i += body.find("*/").map_or(rest.len(), |e| e + 4);
            continue;
        } else if let Some((body, hashes)) = raw_string_start(rest) {
            // r"..." / r#"..."#: up to the quote and as many hashes.
            let close = format!("\"{}", "#".repeat(hashes));
            rest[body..].find(&close).map_or(rest.len(), |e| body + e + close.len())
        } else if rest.starts_with('"') {
            let mut end = 1;
            let b = rest.as_bytes();
            while end < b.len() && b[end] != b'"' {
                end += if b[end] == b'\\' { 2 } else { 1 };
            }
            (end + 1).min(rest.len())
        } else if let Some(escaped) = rest.strip_prefix("'\\") {
            // An escaped character literal: '\'', '\\', '\n'.
            escaped.find('\'').map_or(rest.len(), |e| e + 3).max(4).min(rest.len())
        } else if rest.len() >= 3 && rest.starts_with('\'') && rest[1..].chars().nth(1) == Some('\'') {
            // A plain character literal such as '"' (not a lifetime).
            1 + rest[1..].chars().next().unwrap().len_utf8() + 1
        } else {
            rest.chars().next().unwrap().len_utf8()
        };
        out.push_str(&rest[..copied]);
        i += copied;
    }
    out
}

/// Where the body of a raw string literal starting `text` begins, and its
/// number of `#`.
fn raw_string_start(text: &str) -> Option<(usize, usize)> {
    let t = text.strip_prefix("br").or_else(|| text.strip_prefix('r'))?;
    let hashes = t.len() - t.trim_start_matches('#').len();
    t[hashes..].starts_with('"').then_some((text.len() - t.len() + hashes + 1, hashes))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every module path `text` references, resolved against `module` (the
/// referencing file's own path): `crate::a::b` -> `[a, b]`, `super::x` in
/// `m::n` -> `[m, x]`.
fn references(text: &str, module: &[String]) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':');
        let rest: String = chars[i..chars.len().min(i + 7)].iter().collect();
        let start: Option<Vec<String>> = if !boundary {
            None
        } else if rest.starts_with("crate::") {
            i += 7;
            Some(Vec::new())
        } else if rest.starts_with("self::") {
            i += 6;
            Some(module.to_vec())
        } else if rest.starts_with("super::") {
            let mut base = module.to_vec();
            while chars[i..].iter().take(7).collect::<String>() == "super::" {
                base.pop();
                i += 7;
            }
            Some(base)
        } else {
            None
        };
        let Some(base) = start else {
            i += 1;
            continue;
        };
        let line = chars[..i].iter().filter(|&&c| c == '\n').count();
        for tail in path_tails(&chars, &mut i) {
            let mut path = base.clone();
            path.extend(tail);
            found.push((line, path));
        }
    }
    found
}

/// The path segments after `crate::` (at `*i`): `a::b::Item` -> `[[a, b, Item]]`,
/// `{a, b::c}` -> `[[a], [b, c]]`.
fn path_tails(chars: &[char], i: &mut usize) -> Vec<Vec<String>> {
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let mut segments = Vec::new();
    loop {
        skip_ws(i);
        if *i < chars.len() && chars[*i] == '{' {
            *i += 1;
            let mut out = Vec::new();
            loop {
                skip_ws(i);
                if *i >= chars.len() || chars[*i] == '}' {
                    *i += 1;
                    break;
                }
                for tail in path_tails(chars, i) {
                    let mut p = segments.clone();
                    p.extend(tail);
                    out.push(p);
                }
                // Skip `as alias`, `::*` and the like up to `,` or `}`.
                let mut depth = 0;
                while *i < chars.len() {
                    match chars[*i] {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            *i += 1;
                            break;
                        }
                        _ => {}
                    }
                    *i += 1;
                }
            }
            return out;
        }
        let start = *i;
        while *i < chars.len() && is_ident(chars[*i]) {
            *i += 1;
        }
        if *i == start {
            break;
        }
        segments.push(chars[start..*i].iter().collect());
        if chars[*i..].iter().take(2).collect::<String>() == "::" {
            *i += 2;
        } else {
            break;
        }
    }
    vec![segments]
}

/// The verbs: what `cli.rs` dispatches to.
fn verbs(src: &Path) -> BTreeSet<String> {
    let cli = std::fs::read_to_string(src.join("cli.rs")).unwrap();
    let mut verbs = BTreeSet::new();
    for (at, _) in cli.match_indices("::run(") {
        let before = &cli[..at];
        let name: String = before.chars().rev().take_while(|&c| is_ident(c)).collect::<Vec<_>>().into_iter().rev().collect();
        if before[..before.len() - name.len()].ends_with("crate::") {
            verbs.insert(name);
        }
    }
    assert!(verbs.len() >= 5, "cannot find the verbs cli.rs dispatches to (`crate::NAME::run(`): {verbs:?}");
    verbs
}

/// A circle in `edges`, as the path that closes it, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let from = stack.iter().position(|n| n == node).unwrap();
                let mut circle = stack[from..].to_vec();
                circle.push(node.to_string());
                return Some(circle);
            }
            _ => {}
        }
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    edges.keys().find_map(|n| visit(n, edges, &mut state, &mut Vec::new()))
}

struct Graph {
    verbs: BTreeSet<String>,
    /// Top-level module -> the top-level modules it references, with one
    /// file and line that does, for the message.
    top: BTreeMap<String, BTreeMap<String, String>>,
    /// Per top-level module: submodule -> sibling submodules it references.
    siblings: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

fn graph(src: &Path) -> Graph {
    let files = modules(src);
    let tops: BTreeSet<String> = files.iter().filter_map(|(m, _)| m.first().cloned()).collect();
    let children: BTreeSet<(String, String)> =
        files.iter().filter(|(m, _)| m.len() >= 2).map(|(m, _)| (m[0].clone(), m[1].clone())).collect();
    let mut g = Graph { verbs: verbs(src), top: BTreeMap::new(), siblings: BTreeMap::new() };
    for (module, path) in &files {
        let Some(own) = module.first() else { continue };
        let text = strip_comments(&std::fs::read_to_string(path).unwrap());
        let rel = path.strip_prefix(src).unwrap().display().to_string();
        let lines: Vec<&str> = text.lines().collect();
        for (n, target) in references(&text, module) {
            let Some(to) = target.first().filter(|t| tops.contains(*t)) else { continue };
            if to != own {
                let line = lines.get(n).map_or("", |l| l.trim());
                g.top.entry(own.clone()).or_default().entry(to.clone()).or_insert_with(|| format!("{rel}:{}: {line}", n + 1));
            } else if let (Some(from), Some(sib)) = (module.get(1), target.get(1)) {
                if from != sib && children.contains(&(own.clone(), sib.clone())) {
                    g.siblings.entry(own.clone()).or_default().entry(from.clone()).or_default().insert(sib.clone());
                }
            }
        }
    }
    g
}

fn problems(g: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    for (from, targets) in &g.top {
        for (to, at) in targets {
            if to == "cli" {
                problems.push(format!("{from} imports cli (only main.rs may): {at}"));
            } else if g.verbs.contains(from) && g.verbs.contains(to) {
                problems.push(format!("verb {from} imports verb {to}: {at}"));
            } else if from != "cli" && !g.verbs.contains(from) && g.verbs.contains(to) {
                problems.push(format!("shared module {from} imports verb {to}: {at}"));
            }
        }
    }
    let edges: BTreeMap<String, BTreeSet<String>> = g.top.iter().map(|(k, v)| (k.clone(), v.keys().cloned().collect())).collect();
    if let Some(c) = cycle(&edges) {
        let steps: Vec<String> = c.windows(2).map(|w| format!("{} -> {} ({})", w[0], w[1], g.top[&w[0]][&w[1]])).collect();
        problems.push(format!("import circle {}:\n    {}", c.join(" -> "), steps.join("\n    ")));
    }
    for (top, edges) in &g.siblings {
        if let Some(c) = cycle(edges) {
            problems
                .push(format!("import circle inside {top}: {}", c.iter().map(|m| format!("{top}::{m}")).collect::<Vec<_>>().join(" -> ")));
        }
    }
    problems
}

#[test]
fn verbs_stand_on_shared_modules_without_circles() {
    let g = graph(&src());
    let problems = problems(&g);
    assert!(problems.is_empty(), "{} layering problem(s) (docs/architecture.md):\n  {}", problems.len(), problems.join("\n  "));
}

/// The checker itself: each rule catches what it is meant to, on a
/// synthetic source tree.
#[test]
fn the_checker_catches_each_kind_of_problem() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let cli = "fn d() { match c { A => crate::alpha::run(x), B => crate::beta::run(x), C => crate::gamma::run(x), D => crate::delta::run(x), E => crate::eps::run(x) } }";
    write("cli.rs", cli);
    write("lib.rs", "pub mod cli;");
    for v in ["gamma", "delta", "eps"] {
        write(&format!("{v}.rs"), "pub fn run() {}");
    }
    write("alpha.rs", "mod inner;\n// crate::beta::nothing (a comment)\nuse crate::floor::x;");
    write("alpha/inner.rs", "use super::super::{beta::Thing, floor};");
    write("beta.rs", "pub fn run() { crate::output::emit(); }");
    write("floor.rs", "mod a; mod b;");
    write("floor/a.rs", "use super::b::X;");
    write("floor/b.rs", "use crate::floor::a::Y; use crate::output;");
    write("output.rs", "use crate::floor;");
    let g = graph(dir.path());
    assert_eq!(g.verbs, ["alpha", "beta", "delta", "eps", "gamma"].into_iter().map(String::from).collect());
    let p = problems(&g).join("\n");
    assert!(p.contains("verb alpha imports verb beta: alpha/inner.rs:1"), "{p}");
    assert!(p.contains("import circle floor -> output -> floor") || p.contains("import circle output -> floor -> output"), "{p}");
    assert!(p.contains("import circle inside floor: floor::a -> floor::b -> floor::a"), "{p}");
    assert!(!p.contains("alpha.rs:2"), "a comment counted: {p}");
    write("floor.rs", "mod a; mod b;\nfn f() { crate::gamma::run(); $crate::cli::EXIT_ERROR; }");
    let p = problems(&graph(dir.path())).join("\n");
    assert!(p.contains("shared module floor imports verb gamma"), "{p}");
    assert!(p.contains("floor imports cli"), "{p}");
}
