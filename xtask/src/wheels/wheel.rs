//! Wheels: their file-name tags, which one fits a Nix system, and what is
//! inside (the plugin library, bundled headers).
//!
//! Choosing the wheel for a system (documented in docs/prebuilt.md):
//! 1. the platform tag must fit the system: `manylinux*_<arch>` (or plain
//!    `linux_<arch>`) on Linux, `macosx_*_<arm64|x86_64>` or `universal2` on
//!    macOS. `musllinux` wheels are never chosen: Nix systems use glibc, and
//!    a musl-linked plugin cannot be loaded into a glibc process.
//! 2. the most general Python tag wins: `py3-none` (the plugin is a C
//!    library, independent of Python), then `cpXY-abi3`, then a
//!    version-specific `cpXY-cpXY` (the oldest CPython; free-threaded `t`
//!    builds last). libtpu only ships the last kind; its libtpu.so is the
//!    same in each.
//! 3. then the oldest glibc / macOS requirement (widest compatibility), then
//!    the file name, so the choice is deterministic.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The tags of a wheel file name, `{dist}-{version}(-{build})?-{py}-{abi}-{platform}.whl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelTags {
    pub distribution: String,
    pub version: String,
    pub python: Vec<String>,
    pub abi: Vec<String>,
    pub platforms: Vec<String>,
}

/// Parses a wheel file name; None when it is not one.
pub fn wheel_tags(file_name: &str) -> Option<WheelTags> {
    let stem = file_name.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    if !(parts.len() == 5 || parts.len() == 6) || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let n = parts.len();
    let split = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
    Some(WheelTags {
        distribution: parts[0].to_owned(),
        version: parts[1].to_owned(),
        python: split(parts[n - 3]),
        abi: split(parts[n - 2]),
        platforms: split(parts[n - 1]),
    })
}

/// Whether a wheel platform tag can run on the Nix `system`.
pub fn platform_tag_fits(tag: &str, system: &str) -> bool {
    platform_rank(tag, system).is_some()
}

/// Lower is better; None = does not fit. The second value is the minimum
/// glibc/macOS version the tag requires.
fn platform_rank(tag: &str, system: &str) -> Option<(u8, (u32, u32))> {
    let (arch, os) = system.split_once('-')?;
    match os {
        "linux" => {
            let rest = tag.strip_suffix(&format!("_{arch}"))?;
            if let Some(glibc) = rest.strip_prefix("manylinux_") {
                let (major, minor) = glibc.split_once('_')?;
                Some((0, (major.parse().ok()?, minor.parse().ok()?)))
            } else {
                // Legacy aliases (PEP 600): manylinux1 = glibc 2.5, 2010 = 2.12, 2014 = 2.17.
                match rest {
                    "manylinux1" => Some((0, (2, 5))),
                    "manylinux2010" => Some((0, (2, 12))),
                    "manylinux2014" => Some((0, (2, 17))),
                    "linux" => Some((1, (0, 0))),
                    _ => None,
                }
            }
        }
        "darwin" => {
            let mac_arch = if arch == "aarch64" { "arm64" } else { arch };
            let rest = tag.strip_prefix("macosx_")?;
            let (version, tag_arch) = {
                let mut it = rest.splitn(3, '_');
                let major: u32 = it.next()?.parse().ok()?;
                let minor: u32 = it.next()?.parse().ok()?;
                ((major, minor), it.next()?)
            };
            match tag_arch {
                a if a == mac_arch => Some((0, version)),
                "universal2" => Some((1, version)),
                "universal" if arch == "x86_64" => Some((1, version)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Lower is better. See the module comment.
fn python_rank(tags: &WheelTags) -> Option<(u8, u32)> {
    let mut best: Option<(u8, u32)> = None;
    for py in &tags.python {
        for abi in &tags.abi {
            let rank = if abi == "none" && (py == "py3" || py == "py2") {
                Some((0, 0))
            } else if abi == "abi3" {
                cpython_version(py).map(|v| (1, v))
            } else if let Some(v) = cpython_version(py) {
                if abi.ends_with('t') {
                    Some((3, v))
                } else if abi.starts_with("cp") {
                    Some((2, v))
                } else {
                    None
                }
            } else {
                None
            };
            if let Some(r) = rank {
                best = Some(best.map_or(r, |b| b.min(r)));
            }
        }
    }
    best
}

fn cpython_version(py: &str) -> Option<u32> {
    py.strip_prefix("cp")?.parse().ok()
}

/// The sort key of `file_name` for `system`, None when it does not fit.
pub fn wheel_rank(file_name: &str, system: &str) -> Option<impl Ord> {
    let tags = wheel_tags(file_name)?;
    let platform = tags.platforms.iter().filter_map(|t| platform_rank(t, system)).min()?;
    let python = python_rank(&tags)?;
    Some((platform.0, python, platform.1, file_name.to_owned()))
}

/// Whether a member of a wheel is a shared library.
fn is_shared_library(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.ends_with(".so") || base.contains(".so.") || base.ends_with(".dylib")
}

fn open(wheel: &Path) -> Result<zip::ZipArchive<std::fs::File>> {
    let file = std::fs::File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
    zip::ZipArchive::new(file).with_context(|| format!("{} is not a valid wheel (zip archive)", wheel.display()))
}

/// The plugin library inside `wheel`: the shared library that exports
/// `GetPjrtApi` (its dynamic symbol table names it). Fails, listing the
/// candidates, when there is none or more than one.
pub fn find_library(wheel: &Path) -> Result<String> {
    let mut zip = open(wheel)?;
    let candidates: Vec<String> = zip.file_names().filter(|n| is_shared_library(n)).map(str::to_owned).collect();
    let mut plugins = Vec::new();
    for name in &candidates {
        let mut entry = zip.by_name(name)?;
        if stream_contains(&mut entry, b"GetPjrtApi\0").with_context(|| format!("cannot read {name} from {}", wheel.display()))? {
            plugins.push(name.clone());
        }
    }
    match plugins.len() {
        1 => Ok(plugins.remove(0)),
        0 => bail!(
            "{} holds no library exporting GetPjrtApi (shared libraries: {}); is it a PJRT plugin?",
            wheel.display(),
            if candidates.is_empty() { "none".to_owned() } else { candidates.join(", ") }
        ),
        _ => bail!(
            "{} holds several libraries mentioning GetPjrtApi ({}); name the plugin with --library",
            wheel.display(),
            plugins.join(", ")
        ),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `needle` occurs in what `reader` yields, read in chunks: memory
/// stays bounded whatever the member's size (a plugin is hundreds of MB, a
/// crafted wheel can hold gigabytes that compress to nothing).
pub(crate) fn stream_contains(reader: &mut impl Read, needle: &[u8]) -> std::io::Result<bool> {
    const CHUNK: usize = 1 << 16;
    let overlap = needle.len().saturating_sub(1);
    let mut buf = vec![0u8; CHUNK + overlap];
    let mut kept = 0;
    loop {
        let n = match reader.read(&mut buf[kept..]) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let end = kept + n;
        if contains(&buf[..end], needle) {
            return Ok(true);
        }
        // Keep the tail that could start a match across the boundary.
        kept = overlap.min(end);
        buf.copy_within(end - kept..end, 0);
    }
}

/// Extracts `library` into `dest/<its file name>` and every bundled header
/// (`.../include/**.h`) into `dest/include/`. Returns the library's path.
pub fn extract(wheel: &Path, library: &str, dest: &Path) -> Result<PathBuf> {
    let mut zip = open(wheel)?;
    let base = library.rsplit('/').next().unwrap_or(library);
    let lib_path = dest.join(base);
    {
        let mut entry = zip
            .by_name(library)
            .with_context(|| format!("the wheel {} has no {library}; re-pin with `cargo xtask prebuilt update`", wheel.display()))?;
        let mut out = std::fs::File::create(&lib_path).with_context(|| format!("cannot create {}", lib_path.display()))?;
        std::io::copy(&mut entry, &mut out).with_context(|| format!("cannot extract {library}"))?;
    }
    let headers: Vec<(String, String)> = zip
        .file_names()
        .filter(|n| n.ends_with(".h"))
        .filter_map(|n| n.split_once("include/").map(|(_, rel)| (n.to_owned(), rel.to_owned())))
        .filter(|(_, rel)| !rel.split('/').any(|c| c == ".." || c.is_empty()))
        .collect();
    for (name, rel) in headers {
        let out_path = dest.join("include").join(&rel);
        std::fs::create_dir_all(out_path.parent().unwrap_or(dest))?;
        let mut entry = zip.by_name(&name)?;
        let mut out = std::fs::File::create(&out_path).with_context(|| format!("cannot create {}", out_path.display()))?;
        std::io::copy(&mut entry, &mut out).with_context(|| format!("cannot extract {name}"))?;
    }
    Ok(lib_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_search_finds_matches_across_chunks() {
        let needle = b"GetPjrtApi\0";
        for at in [0usize, 1, (1 << 16) - 5, 1 << 16, (1 << 16) + 3, 3 << 16] {
            let mut data = vec![0u8; (4 << 16) + 7];
            data[at..at + needle.len()].copy_from_slice(needle);
            // One byte per read: the worst case for boundaries.
            struct Trickle<'a>(&'a [u8]);
            impl Read for Trickle<'_> {
                fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                    let n = self.0.len().min(buf.len()).min(7);
                    buf[..n].copy_from_slice(&self.0[..n]);
                    self.0 = &self.0[n..];
                    Ok(n)
                }
            }
            assert!(stream_contains(&mut &data[..], needle).unwrap(), "at {at}");
            assert!(stream_contains(&mut Trickle(&data), needle).unwrap(), "trickled, at {at}");
            data[at] = b'X';
            assert!(!stream_contains(&mut &data[..], needle).unwrap(), "none, at {at}");
        }
    }

    #[test]
    fn tags() {
        let t = wheel_tags("libtpu-0.0.52-cp314-cp314t-manylinux_2_31_x86_64.whl").unwrap();
        assert_eq!((t.distribution.as_str(), t.version.as_str()), ("libtpu", "0.0.52"));
        assert_eq!(
            (t.python, t.abi, t.platforms),
            (vec!["cp314".to_owned()], vec!["cp314t".to_owned()], vec!["manylinux_2_31_x86_64".to_owned()])
        );
        assert!(wheel_tags("foo-1.0.tar.gz").is_none());
        assert!(wheel_tags("foo-1.0-py3-none.whl").is_none());
    }

    #[test]
    fn fits() {
        assert!(platform_tag_fits("manylinux_2_27_x86_64", "x86_64-linux"));
        assert!(platform_tag_fits("manylinux2014_aarch64", "aarch64-linux"));
        assert!(!platform_tag_fits("manylinux_2_27_aarch64", "x86_64-linux"));
        assert!(!platform_tag_fits("musllinux_1_2_x86_64", "x86_64-linux"));
        assert!(platform_tag_fits("macosx_11_0_arm64", "aarch64-darwin"));
        assert!(platform_tag_fits("macosx_10_15_universal2", "aarch64-darwin"));
        assert!(!platform_tag_fits("macosx_11_0_x86_64", "aarch64-darwin"));
    }

    #[test]
    fn choice() {
        let files = [
            "libtpu-0.0.52-cp313-cp313-manylinux_2_31_x86_64.whl",
            "libtpu-0.0.52-cp311-cp311-manylinux_2_31_x86_64.whl",
            "libtpu-0.0.52-cp314-cp314t-manylinux_2_31_x86_64.whl",
            "x-1-cp39-abi3-manylinux_2_35_x86_64.whl",
            "x-1-py3-none-musllinux_1_2_x86_64.whl",
        ];
        let best =
            |files: &[&'static str]| files.iter().filter_map(|f| wheel_rank(f, "x86_64-linux").map(|r| (r, *f))).min().map(|(_, f)| f);
        assert_eq!(best(&files), Some("x-1-cp39-abi3-manylinux_2_35_x86_64.whl"));
        assert_eq!(best(&files[..3]), Some("libtpu-0.0.52-cp311-cp311-manylinux_2_31_x86_64.whl"));
        let py3 = ["a-1-py3-none-manylinux_2_31_x86_64.whl", "a-1-py3-none-manylinux_2_17_x86_64.whl"];
        assert_eq!(best(&py3), Some(py3[1]));
        assert_eq!(best(&files[4..]), None);
        assert!(wheel_rank(files[4], "x86_64-linux").is_none());
    }
}
