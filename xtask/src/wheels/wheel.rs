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

/// A path inside a wheel: relative, no empty, `.` or `..` component, no
/// backslash or NUL, and a file name at its end.
pub fn is_member_path(s: &str) -> bool {
    !s.is_empty() && !s.contains(['\\', '\0']) && s.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && c.len() <= 255)
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

/// The METADATA of a wheel (`<name>-<version>.dist-info/METADATA`): what
/// it requires (`Requires-Dist`) and its extras. At most 1 MiB is read.
pub fn read_metadata(wheel: &Path) -> Result<String> {
    let mut zip = open(wheel)?;
    let names: Vec<String> = zip
        .file_names()
        .filter(|n| n.split('/').count() == 2 && n.ends_with("/METADATA") && n.split('/').next().is_some_and(|d| d.ends_with(".dist-info")))
        .map(str::to_owned)
        .collect();
    let [name] = names.as_slice() else {
        bail!("{} has {} `*.dist-info/METADATA` files, not one: not a valid wheel", wheel.display(), names.len());
    };
    let mut text = String::new();
    zip.by_name(name)?
        .take(1 << 20)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {name} from {} (it must be UTF-8)", wheel.display()))?;
    Ok(text)
}

/// A file [`extract_tree`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedFile {
    /// Its path inside the tree, as in the wheel (`nvidia/cublas/lib/libcublas.so.12`).
    pub path: String,
    pub size: u64,
    /// Lowercase hex, computed while writing.
    pub sha256: String,
    pub executable: bool,
}

/// Whether a member of a runtime wheel (an NVIDIA library wheel) belongs in
/// the tree a plugin loads from: not the wheel's own `.dist-info`, headers
/// (`include/`), static libraries (`.a`) or Python files: a loader needs
/// none of them, and they are a tenth of the bytes.
pub fn is_runtime_member(name: &str) -> bool {
    let mut parts = name.split('/');
    let first = parts.next().unwrap_or("");
    let base = name.rsplit('/').next().unwrap_or(name);
    !(first.ends_with(".dist-info")
        || first.ends_with(".data")
        || name.split('/').any(|c| c == "include" || c == "__pycache__")
        || base.ends_with(".a")
        || base.ends_with(".py")
        || base.ends_with(".pyc")
        || base.ends_with(".pyi")
        || base == "py.typed")
}

/// The total uncompressed size of the members `keep` selects.
pub fn kept_size(wheel: &Path, keep: &dyn Fn(&str) -> bool) -> Result<u64> {
    let mut zip = open(wheel)?;
    let mut total = 0u64;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i)?;
        if !entry.is_dir() && keep(entry.name()) {
            total = total.saturating_add(entry.size());
        }
    }
    Ok(total)
}

/// Extracts the members of `wheel` that `keep` selects into `dest`, at
/// their paths in the wheel, as pip lays them out. `laid` holds what earlier
/// wheels wrote there: a member at a path already written must have the
/// same content (NVIDIA's wheels share directories), anything else is an
/// error. The executable bit comes from the member's Unix mode.
///
/// Refused, before anything is written: a member whose path is absolute,
/// holds `..`, `.`, an empty component, a backslash or NUL; a symbolic link
/// (a wheel has none: a link could point the extraction anywhere); a name
/// listed twice. A member that inflates to more or fewer bytes than it
/// declares, or fails its CRC, stops the extraction.
pub fn extract_tree(
    wheel: &Path,
    dest: &Path,
    keep: &dyn Fn(&str) -> bool,
    laid: &mut std::collections::BTreeMap<String, ExtractedFile>,
) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut zip = open(wheel)?;
    let shown = wheel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Every name is checked before the first byte is written.
    let mut seen = std::collections::BTreeSet::new();
    let mut members = Vec::new();
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i)?;
        let Ok(name) = std::str::from_utf8(entry.name_raw()) else {
            bail!("{shown} holds a member whose name is not UTF-8: refusing the wheel");
        };
        let path = name.strip_suffix('/').unwrap_or(name);
        if !is_member_path(path) {
            bail!("{shown} holds the member `{}`, whose path is not a plain relative path: refusing the wheel", name.escape_debug());
        }
        if entry.is_symlink() {
            bail!("{shown} holds the symbolic link `{}`: wheels hold files, refusing the wheel", name.escape_debug());
        }
        if !seen.insert(path.to_owned()) {
            bail!("{shown} lists the member `{}` twice: refusing the wheel", name.escape_debug());
        }
        if !entry.is_dir() && keep(path) {
            members.push((i, path.to_owned(), entry.size(), entry.unix_mode().is_some_and(|m| m & 0o100 != 0)));
        }
    }
    let total = members.iter().map(|m| m.2).sum();
    let bar = crate::progress::bytes_bar(format!("extracting {shown}"), Some(total));
    for (i, path, size, executable) in members {
        let out_path = dest.join(&path);
        if let Some(parent) = out_path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut entry = zip.by_index(i)?;
        let earlier = laid.get(&path).cloned();
        // A path an earlier wheel wrote is hashed, never overwritten.
        let target: Box<dyn std::io::Write> = match &earlier {
            Some(_) => Box::new(std::io::sink()),
            None => Box::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if executable { 0o777 } else { 0o666 })
                    .open(&out_path)
                    .with_context(|| format!("cannot create {}", out_path.display()))?,
            ),
        };
        let mut out = crate::hashing::Hashing::new(target);
        let written = std::io::copy(&mut (&mut entry).take(size.saturating_add(1)), &mut out)
            .with_context(|| format!("cannot extract {path} from {shown}"))?;
        bar.inc(written);
        if written != size {
            bail!("{path} in {shown} inflates to {written} bytes but declares {size}: the wheel is damaged or hostile");
        }
        let sha256 = out.finish().0.to_hex();
        match earlier {
            Some(e) if e.sha256 != sha256 => {
                bail!("{path} is in two runtime wheels with different contents ({shown} and an earlier one): they cannot share one tree")
            }
            Some(_) => {}
            None => {
                laid.insert(path.clone(), ExtractedFile { path, size, sha256, executable });
            }
        }
    }
    bar.finish_and_clear();
    Ok(())
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

    /// A wheel (zip) holding `files` (name, contents, Unix mode), and
    /// `symlinks` (name, target).
    fn make_wheel(dir: &Path, name: &str, files: &[(&str, &[u8], u32)], symlinks: &[(&str, &str)]) -> PathBuf {
        use std::io::Write;
        let path = dir.join(name);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for (name, data, mode) in files {
            let options = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            zip.start_file(*name, options).unwrap();
            zip.write_all(data).unwrap();
        }
        for (name, target) in symlinks {
            zip.add_symlink(*name, *target, zip::write::SimpleFileOptions::default()).unwrap();
        }
        zip.finish().unwrap();
        path
    }

    fn files_under(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p).into_iter().map(|f| format!("{}/{f}", e.file_name().to_string_lossy())));
            } else {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        out
    }

    /// What a hostile or broken wheel can try: escape the tree, plant a
    /// link, list a name twice, clash with another wheel. Each is refused
    /// before anything is written (or, for a clash, before it is
    /// overwritten), and nothing lands outside `dest`.
    #[test]
    fn hostile_wheels_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("tree");
        std::fs::create_dir(&dest).unwrap();
        let keep: &dyn Fn(&str) -> bool = &is_runtime_member;
        let good = b"library bytes".as_slice();
        for (case, files, links, why) in [
            ("dotdot", vec![("nvidia/lib/ok.so", good, 0o644), ("nvidia/../../evil.so", good, 0o644)], vec![], "not a plain relative path"),
            ("absolute", vec![("/tmp/evil.so", good, 0o644)], vec![], "not a plain relative path"),
            ("backslash", vec![("nvidia\\..\\..\\evil.so", good, 0o644)], vec![], "not a plain relative path"),
            ("symlink", vec![("nvidia/lib/ok.so", good, 0o644)], vec![("nvidia/lib/libcuda.so.1", "/etc/passwd")], "symbolic link"),
        ] {
            let wheel = make_wheel(dir.path(), &format!("{case}.whl"), &files, &links);
            let err = extract_tree(&wheel, &dest, keep, &mut Default::default()).unwrap_err();
            assert!(format!("{err:#}").contains(why), "{case}: {err:#}");
            assert!(files_under(&dest).is_empty(), "{case} wrote {:?}", files_under(&dest));
        }
        assert!(!dir.path().join("evil.so").exists());

        // Two wheels sharing a path: the same bytes are fine, others refused.
        let mut laid = Default::default();
        let a =
            make_wheel(dir.path(), "a.whl", &[("nvidia/cu13/lib/liba.so.13", good, 0o644), ("nvidia/cu13/bin/ptxas", b"elf", 0o755)], &[]);
        extract_tree(&a, &dest, keep, &mut laid).unwrap();
        let same = make_wheel(dir.path(), "same.whl", &[("nvidia/cu13/lib/liba.so.13", good, 0o644)], &[]);
        extract_tree(&same, &dest, keep, &mut laid).unwrap();
        let clash = make_wheel(dir.path(), "clash.whl", &[("nvidia/cu13/lib/liba.so.13", b"other bytes", 0o644)], &[]);
        let err = extract_tree(&clash, &dest, keep, &mut laid).unwrap_err();
        assert!(format!("{err:#}").contains("different contents"), "{err:#}");
        assert_eq!(std::fs::read(dest.join("nvidia/cu13/lib/liba.so.13")).unwrap(), good);
        // The executable bit follows the member's mode.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| std::fs::metadata(dest.join(p)).unwrap().permissions().mode();
        assert_ne!(mode("nvidia/cu13/bin/ptxas") & 0o100, 0);
        assert_eq!(mode("nvidia/cu13/lib/liba.so.13") & 0o111, 0);
        assert_eq!(laid.len(), 2);
    }

    /// Headers, static libraries, Python files and the wheel's own metadata
    /// stay out of a runtime tree.
    #[test]
    fn runtime_members() {
        for kept in ["nvidia/cublas/lib/libcublas.so.12", "nvidia/cuda_nvcc/bin/ptxas", "nvidia/cu13/nvvm/libdevice/libdevice.10.bc"] {
            assert!(is_runtime_member(kept), "{kept}");
        }
        for left in [
            "nvidia/cu13/include/cuda.h",
            "nvidia/cuda_runtime/lib/libcudart_static.a",
            "nvidia/__init__.py",
            "nvidia_cublas-13.0.dist-info/RECORD",
            "nvidia/cublas/__pycache__/x.pyc",
        ] {
            assert!(!is_runtime_member(left), "{left}");
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
