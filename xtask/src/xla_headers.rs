//! The public PJRT C API headers of an XLA tree: `xla/pjrt/c/pjrt_c_api.h`
//! and every public extension header, discovered per commit (never from a
//! fixed list), read straight from git objects.

use anyhow::{bail, Context, Result};
use git2::{Oid, Repository, TreeWalkMode, TreeWalkResult};

/// The core header; every other public header is an extension of it.
pub const CORE_HEADER: &str = "xla/pjrt/c/pjrt_c_api.h";

/// Directories that hold public extension headers.
const EXTENSION_DIRS: &[&str] = &["xla/pjrt/c/", "xla/pjrt/extensions/"];

/// Name parts that mark a header as internal, test-only, a helper or a C++
/// implementation detail rather than part of the C API.
const NON_PUBLIC_MARKERS: &[&str] = &["_internal", "_test", "_helpers", "_impl", "_private", "_cpp"];

/// A header file at some commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Path from the root of the XLA tree, `/`-separated.
    pub path: String,
    pub contents: Vec<u8>,
}

/// Whether `path` (relative to the XLA root) is a public PJRT C API header.
pub fn is_public_header(path: &str) -> bool {
    if path == CORE_HEADER {
        return true;
    }
    let Some(dir) = EXTENSION_DIRS.iter().find(|d| path.starts_with(**d)) else {
        return false;
    };
    // xla/pjrt/c/ is flat; xla/pjrt/extensions/ nests one directory per extension.
    if *dir == "xla/pjrt/c/" && path[dir.len()..].contains('/') {
        return false;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some(stem) = name.strip_suffix(".h") else {
        return false;
    };
    stem.ends_with("_extension") && !NON_PUBLIC_MARKERS.iter().any(|m| stem.contains(m))
}

/// Every public PJRT header at `commit`, sorted by path. Only the header
/// blobs are read, so this works on partial clones. Fails when the commit
/// has no `pjrt_c_api.h` (it predates PJRT).
pub fn public_headers(repo: &Repository, commit: Oid) -> Result<Vec<Header>> {
    let tree = crate::xla_repo::commit_tree(repo, commit)?;
    let mut found = Vec::new();
    let pjrt = match tree.get_path(std::path::Path::new("xla/pjrt")) {
        Ok(entry) => entry,
        Err(_) => bail!("commit {commit} has no xla/pjrt directory: it predates the PJRT C API"),
    };
    let pjrt_tree = repo.find_tree(pjrt.id()).with_context(|| format!("the tree xla/pjrt of commit {commit} is missing"))?;
    let mut walk_err = None;
    pjrt_tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let path = format!("xla/pjrt/{dir}{}", entry.name().unwrap_or(""));
        if entry.kind() == Some(git2::ObjectType::Blob) && is_public_header(&path) {
            match repo.find_blob(entry.id()) {
                Ok(blob) => found.push(Header { path, contents: blob.content().to_vec() }),
                Err(e) => {
                    walk_err = Some(anyhow::anyhow!("blob {} ({path}) of commit {commit} is missing: {e}", entry.id()));
                    return TreeWalkResult::Abort;
                }
            }
        }
        TreeWalkResult::Ok
    })?;
    if let Some(err) = walk_err {
        return Err(err);
    }
    if !found.iter().any(|h| h.path == CORE_HEADER) {
        bail!("commit {commit} has no {CORE_HEADER}: it predates the PJRT C API");
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// Every public PJRT header in a directory holding an XLA source tree,
/// sorted by path: the same rule as [`public_headers`], for work trees that
/// are not (or not only) git commits.
pub fn public_headers_in_dir(root: &std::path::Path) -> Result<Vec<Header>> {
    fn walk(root: &std::path::Path, rel: &str, found: &mut Vec<Header>) -> Result<()> {
        let dir = root.join(rel);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            let path = format!("{rel}/{name}");
            let kind = entry.file_type().with_context(|| format!("cannot stat {}", entry.path().display()))?;
            if kind.is_dir() {
                walk(root, &path, found)?;
            } else if is_public_header(&path) {
                let contents = std::fs::read(entry.path()).with_context(|| format!("cannot read {}", entry.path().display()))?;
                found.push(Header { path, contents });
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(root, "xla/pjrt", &mut found)?;
    if !found.iter().any(|h| h.path == CORE_HEADER) {
        bail!("{} has no {CORE_HEADER}: not an XLA source tree, or one that predates the PJRT C API", root.display());
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// A `MAJOR.MINOR` PJRT C API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl std::str::FromStr for ApiVersion {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (major, minor) = s.split_once('.').with_context(|| format!("`{s}` is not a MAJOR.MINOR version"))?;
        Ok(ApiVersion {
            major: major.trim().parse().with_context(|| format!("`{s}` is not a MAJOR.MINOR version"))?,
            minor: minor.trim().parse().with_context(|| format!("`{s}` is not a MAJOR.MINOR version"))?,
        })
    }
}

/// `#define PJRT_API_MAJOR n` / `#define PJRT_API_MINOR n`.
pub fn parse_api_version(header: &str) -> Result<ApiVersion> {
    let define = |name: &str| -> Result<u32> {
        for line in header.lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some("#define") && words.next() == Some(name) {
                let value = words.next().unwrap_or("");
                return value.parse().with_context(|| format!("{name} is `{value}`, not a number"));
            }
        }
        bail!("no `#define {name}`")
    };
    Ok(ApiVersion { major: define("PJRT_API_MAJOR")?, minor: define("PJRT_API_MINOR")? })
}

/// An `#include` directive: its target, and whether it was `"quoted"` (a
/// file of the XLA tree, by root path) or `<angled>` (a system or
/// third-party header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub path: String,
    pub quoted: bool,
}

/// `#include` targets of a header, in order (textual: includes built by
/// macros are not followed).
pub fn includes(text: &str) -> Vec<Include> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix('#')?.trim_start().strip_prefix("include")?.trim_start();
            let (close, quoted) = match rest.chars().next()? {
                '"' => ('"', true),
                '<' => ('>', false),
                _ => return None,
            };
            let rest = &rest[1..];
            Some(Include { path: rest[..rest.find(close)?].to_string(), quoted })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{includes, is_public_header, parse_api_version, ApiVersion};

    #[test]
    fn api_version_from_the_core_header() {
        let h = "#ifndef X\n#define PJRT_API_MAJOR 0\n\n// c\n#define PJRT_API_MINOR 93\n";
        assert_eq!(parse_api_version(h).unwrap(), ApiVersion { major: 0, minor: 93 });
        assert!(parse_api_version("#define PJRT_API_MAJOR 0\n").is_err());
        assert!(parse_api_version("#define PJRT_API_MAJOR 0\n#define PJRT_API_MINOR x\n").is_err());
    }

    #[test]
    fn include_scanning() {
        let text = "#include <stddef.h>\n  #  include \"xla/pjrt/c/pjrt_c_api.h\" // x\n#define A <b>\n#include_next <c>\n";
        let found = includes(text);
        let found: Vec<(&str, bool)> = found.iter().map(|i| (i.path.as_str(), i.quoted)).collect();
        assert_eq!(found, vec![("stddef.h", false), ("xla/pjrt/c/pjrt_c_api.h", true)]);
    }

    #[test]
    fn public_header_rule() {
        for public in [
            "xla/pjrt/c/pjrt_c_api.h",
            "xla/pjrt/c/pjrt_c_api_ffi_extension.h",
            "xla/pjrt/extensions/example/example_extension.h",
            "xla/pjrt/extensions/abi_version/gpu_abi_version_extension.h",
        ] {
            assert!(is_public_header(public), "{public}");
        }
        for other in [
            "xla/pjrt/c/pjrt_c_api_helpers.h",
            "xla/pjrt/c/pjrt_c_api_ffi_internal.h",
            "xla/pjrt/c/pjrt_c_api_test.h",
            "xla/pjrt/c/pjrt_c_api_gpu.h",
            "xla/pjrt/extensions/example/example_extension_cpp.h",
            "xla/pjrt/extensions/host_memory_allocator/host_memory_allocator_extension_internal.h",
            "xla/pjrt/c/sub/foo_extension.h",
            "xla/pjrt/c/pjrt_c_api_ffi_extension.cc",
        ] {
            assert!(!is_public_header(other), "{other}");
        }
    }
}
