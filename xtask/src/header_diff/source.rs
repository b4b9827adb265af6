//! Where header text comes from (a git commit or a directory holding an XLA
//! tree) and what one translation unit needs: the header, the in-tree
//! headers it includes (recursively, from the same commit), and stubs for
//! everything else.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use git2::{Oid, Repository};

use super::model::Language;
use crate::xla_headers::{self, includes, Header};

/// A snapshot of the XLA tree.
pub enum Snapshot<'r> {
    Commit { repo: &'r Repository, commit: Oid, tree: git2::Tree<'r> },
    Dir(PathBuf),
}

impl<'r> Snapshot<'r> {
    pub fn commit(repo: &'r Repository, commit: Oid) -> Result<Self> {
        let tree = crate::xla_repo::commit_tree(repo, commit)?;
        Ok(Snapshot::Commit { repo, commit, tree })
    }

    pub fn dir(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            bail!("{} is not a directory", root.display());
        }
        Ok(Snapshot::Dir(root.to_path_buf()))
    }

    /// How to name this snapshot in messages.
    pub fn describe(&self) -> String {
        match self {
            Snapshot::Commit { commit, .. } => format!("commit {commit}"),
            Snapshot::Dir(root) => root.display().to_string(),
        }
    }

    /// The public PJRT headers, discovered in this snapshot.
    pub fn public_headers(&self) -> Result<Vec<Header>> {
        match self {
            Snapshot::Commit { repo, commit, .. } => xla_headers::public_headers(repo, *commit),
            Snapshot::Dir(root) => xla_headers::public_headers_in_dir(root),
        }
    }

    /// The file at `path` (relative to the XLA root), `None` if absent.
    /// A path that names a blob git no longer has is an error, not absence:
    /// a partial clone must not silently lose a header.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Snapshot::Commit { repo, commit, tree } => {
                crate::xla_repo::read_path(repo, tree, path).with_context(|| format!("cannot read {path} of commit {commit}"))
            }
            Snapshot::Dir(root) => {
                let file = root.join(path);
                if !file.is_file() {
                    return Ok(None);
                }
                std::fs::read(&file).map(Some).with_context(|| format!("cannot read {}", file.display()))
            }
        }
    }
}

/// Everything libclang needs to parse one public header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TuInput {
    /// The header being modelled.
    pub main: String,
    /// In-tree files fed to the parser, main included, by path.
    pub files: BTreeMap<String, String>,
    /// Include names served as empty files.
    pub stubs: BTreeSet<String>,
    pub language: Language,
}

/// Standard C headers served from a fixed, built-in x86_64-linux set, so
/// the parse depends on nothing installed on the host but libclang.
pub const BUILTIN_HEADERS: &[(&str, &str)] = &[
    (
        "stddef.h",
        "#pragma once\ntypedef unsigned long size_t;\ntypedef long ptrdiff_t;\ntypedef int wchar_t_pjrtpkgs;\n\
         #ifndef __cplusplus\n#define NULL ((void*)0)\n#else\n#define NULL nullptr\n#endif\n\
         #define offsetof(t, m) __builtin_offsetof(t, m)\n",
    ),
    (
        "stdint.h",
        "#pragma once\ntypedef signed char int8_t;\ntypedef short int16_t;\ntypedef int int32_t;\ntypedef long int64_t;\n\
         typedef unsigned char uint8_t;\ntypedef unsigned short uint16_t;\ntypedef unsigned int uint32_t;\n\
         typedef unsigned long uint64_t;\ntypedef long intptr_t;\ntypedef unsigned long uintptr_t;\n\
         typedef long intmax_t;\ntypedef unsigned long uintmax_t;\n\
         #define INT32_MAX 2147483647\n#define INT64_MAX 9223372036854775807L\n#define SIZE_MAX 18446744073709551615UL\n",
    ),
    ("stdbool.h", "#pragma once\n#ifndef __cplusplus\n#define bool _Bool\n#define true 1\n#define false 0\n#endif\n"),
    ("assert.h", "#pragma once\n#ifndef __cplusplus\n#define static_assert _Static_assert\n#endif\n#define assert(x) ((void)0)\n"),
    ("cstddef", "#pragma once\n#include <stddef.h>\nnamespace std { using ::size_t; using ::ptrdiff_t; }\n"),
    ("cstdint", "#pragma once\n#include <stdint.h>\n"),
];

/// Whether an in-tree include is part of a C API (fed to the parser) rather
/// than a C++ implementation header (stubbed: it would pull in all of XLA,
/// absl and generated protobuf code, none of which is C API).
fn is_c_api_header(path: &str) -> bool {
    if path.ends_with(".pb.h") {
        return false;
    }
    let stem = path.rsplit('/').next().unwrap_or(path).trim_end_matches(".h");
    path.starts_with("xla/pjrt/c/") || path.starts_with("xla/pjrt/extensions/") || stem.ends_with("c_api")
}

/// Comments removed (strings are left alone: headers have few).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('/') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("//") {
            rest = tail.find('\n').map_or("", |n| &tail[n..]);
        } else if let Some(body) = tail.strip_prefix("/*") {
            rest = body.find("*/").map_or("", |n| &body[n + 2..]);
        } else {
            out.push('/');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Whether a header is only valid as C++: it uses C++ syntax outside an
/// `#ifdef __cplusplus` guard, or includes a C++ standard header.
pub fn needs_cxx(text: &str) -> bool {
    let code = strip_comments(text);
    let guarded_extern_c = code.contains("__cplusplus");
    let words = ["namespace ", "enum class ", "template <", "template<", "class ", "constexpr ", "std::"];
    if words.iter().any(|w| code.contains(w)) {
        return true;
    }
    if code.contains("extern \"C\"") && !guarded_extern_c {
        return true;
    }
    includes(&code).iter().any(|inc| {
        !inc.path.contains('.') && !inc.path.contains('/') // <memory>, <cstdint>, <string>
    })
}

/// Collects what the parser needs for `main`: in-tree C API includes
/// recursively from the same snapshot, stubs for the rest.
pub fn tu_input(snapshot: &Snapshot, main: &Header) -> Result<TuInput> {
    let mut files = BTreeMap::new();
    let mut stubs = BTreeSet::new();
    let mut queue = VecDeque::from([(main.path.clone(), main.contents.clone())]);
    while let Some((path, bytes)) = queue.pop_front() {
        if files.contains_key(&path) {
            continue;
        }
        let text = String::from_utf8(bytes).with_context(|| format!("{path} in {} is not UTF-8", snapshot.describe()))?;
        for inc in includes(&text).into_iter().map(|inc| inc.path) {
            if BUILTIN_HEADERS.iter().any(|(name, _)| *name == inc) || files.contains_key(&inc) {
                continue;
            }
            // XLA includes by root path; a plain name may also be relative
            // to the including file.
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
            let candidates = [inc.clone(), format!("{dir}/{inc}")];
            let mut fed = false;
            for candidate in candidates.iter().filter(|c| is_c_api_header(c)) {
                if let Some(bytes) = snapshot.read(candidate)? {
                    queue.push_back((candidate.clone(), bytes));
                    fed = true;
                    break;
                }
            }
            if !fed {
                stubs.insert(inc);
            }
        }
        files.insert(path, text);
    }
    let language = if files.values().any(|t| needs_cxx(t)) { Language::Cxx } else { Language::C };
    Ok(TuInput { main: main.path.clone(), files, stubs, language })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_detection() {
        assert!(!needs_cxx("#ifdef __cplusplus\nextern \"C\" {\n#endif\nstruct A { int x; };\n// namespace foo\n"));
        assert!(needs_cxx("extern \"C\" {\nstruct A { int x; };\n}\n"));
        assert!(needs_cxx("#include <cstdint>\nstruct A { int x; };\n"));
        assert!(needs_cxx("/* c */ namespace pjrt { }\n"));
        assert!(!needs_cxx("/* namespace pjrt */ #include <stdint.h>\n"));
    }
}
