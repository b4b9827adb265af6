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

#[cfg(test)]
mod tests {
    use super::is_public_header;

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
