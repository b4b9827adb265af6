//! A GPU plugin together with the runtime libraries its release pairs with
//! it ([prebuilt.<name>.runtime]), laid out so that it loads with nothing
//! installed system-wide but the GPU driver.
//!
//! The layout is pip's: a site-packages-like tree holding the plugin at its
//! path in its wheel (`jax_plugins/xla_cuda12/xla_cuda_plugin.so`) and every
//! runtime wheel unpacked at its own paths (`nvidia/cublas/lib/...`), so the
//! plugin's RPATH, written for pip (`$ORIGIN/../../nvidia/cublas/lib`...),
//! finds them. Left out: the wheels' `.dist-info`, headers, static libraries
//! and Python files.
//!
//! One addition to pip's layout: a shared library whose directory is not on
//! the plugin's RPATH (CUDA 12: `nvidia/cusolver/lib`, `nvidia/cuda_nvrtc/lib`,
//! `nvidia/nvshmem/lib`; CUDA 13: `nvidia/nvshmem/lib`) is hard-linked into
//! the RPATH directory that holds the CUDA runtime. The plugin dlopens these
//! by soname; JAX's Python package preloads them by absolute path before it
//! loads the plugin (`_load_nvidia_libraries`), a Rust, Go or Elixir binding
//! does not. Their own `$ORIGIN` lookups keep working: every `nvidia/*/lib`
//! directory is at the same depth.
//!
//! Cache: `prebuilt/<name>/<version>-<system>-<sha256[..16]>-runtime-<digest>/`
//! (digest: of the plugin's and every runtime wheel's sha256), built in a
//! temporary directory and renamed into place complete; `.runtime.json`
//! lists every file with its size and sha256 (computed while extracting
//! from the verified wheel). On reuse every file is checked to be there with
//! its size and not modified since (mtime); a damaged tree is rebuilt from
//! the cached wheels, which are re-verified. Files are hard links where they
//! can be (the plugin is a link to the plain `prebuilt fetch` extraction).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::locate::{extraction_dir, fetch_pinned, move_into_place, remove_abandoned_extractions, wheel_cache_path, wheel_file_name};
use crate::pinfile::{host_system, Pins, PrebuiltPin, WheelPin};
use crate::wheels::download;
use crate::wheels::wheel::{self, ExtractedFile};

/// Bumped when the layout changes: a tree of another layout is another directory.
const LAYOUT: &str = "pjrtpkgs runtime layout 1";

const MANIFEST: &str = ".runtime.json";

/// One runtime wheel to lay out for a system.
#[derive(Debug, Clone)]
pub struct RuntimeFile {
    pub project: String,
    pub version: String,
    pub wheel: WheelPin,
}

/// The runtime wheels pinned for `pin` on `system`, in project order. Fails,
/// saying what to do, when the plugin has none pinned or some requirement
/// could not be pinned.
pub fn runtime_wheels(name: &str, pin: &PrebuiltPin, pins: &Pins, system: &str) -> Result<Vec<RuntimeFile>> {
    let Some(runtime) = &pin.runtime else {
        if matches!(pin.backend.as_str(), "cpu" | "tpu") {
            bail!("`{name}` is a {} plugin: it needs no runtime libraries (`cargo xtask prebuilt fetch {name}`)", pin.backend);
        }
        bail!("no runtime libraries are pinned for `{name}` ({}): pin them with `cargo xtask prebuilt update {name}`", pin.backend);
    };
    if !runtime.unavailable.is_empty() {
        let list: Vec<String> = runtime.unavailable.iter().map(|(p, why)| format!("  {p}: {why}")).collect();
        let hint = match pin.backend.as_str() {
            "rocm7" => "\nROCm's runtime is not on PyPI: AMD publishes these wheels on its own package index, and the plugin's RUNPATH \
                        looks for TheRock's `_rocm_sdk_core/lib` and `_rocm_sdk_libraries_<gfx>/lib` (wheels `rocm-sdk-core`, \
                        `rocm-sdk-libraries-<gfx>` from AMD's index), else /opt/rocm/lib: install ROCm 7 (TheRock, the distribution \
                        [rocm7] distro_version names) there, or use the Nix package"
                .to_owned(),
            _ => format!("\nre-pin with `cargo xtask prebuilt update {name}` once PyPI has them"),
        };
        bail!(
            "{} of the runtime libraries {} {} pairs with `{name}` cannot be fetched:\n{}{hint}",
            runtime.unavailable.len(),
            runtime.paired_with,
            runtime.paired_version,
            list.join("\n")
        );
    }
    let mut out = Vec::new();
    for (project, w) in &runtime.wheels {
        let wheel = match &w.pinned_in {
            Some(table) => {
                let cuda = match table.as_str() {
                    "cuda12.nvshmem_wheel" => pins.cuda12.as_ref(),
                    "cuda13.nvshmem_wheel" => pins.cuda13.as_ref(),
                    _ => None,
                };
                cuda.and_then(|c| c.nvshmem_wheel.get(system)).cloned()
            }
            None => w.platforms.get(system).cloned(),
        };
        let Some(wheel) = wheel else {
            bail!(
                "no wheel of {project} is pinned for {system} (the runtime of `{name}`): pin it with `cargo xtask prebuilt update {name}`"
            );
        };
        out.push(RuntimeFile { project: project.clone(), version: w.version.clone(), wheel });
    }
    Ok(out)
}

/// `prebuilt fetch NAME --with-runtime`: the plugin's path inside its runtime
/// tree (see the module comment), downloading and laying out what is missing.
pub fn fetch_with_runtime(name: &str, system: Option<&str>) -> Result<PathBuf> {
    let pins = Pins::load(&crate::project::pins_toml()?)?;
    let pin = pins.prebuilt(name)?;
    let system = system.map(str::to_owned).unwrap_or_else(host_system);
    let Some(platform) = pin.platforms.get(&system) else {
        let have: Vec<&str> = pin.platforms.keys().map(String::as_str).collect();
        bail!("`{name}` {} has no wheel pinned for {system} (pinned: {})", pin.version, have.join(", "));
    };
    let wheels = runtime_wheels(name, pin, &pins, &system)?;
    // Names become paths: the same checks as the plain fetch.
    let version = crate::fsutil::single_component(&pin.version, "the version")?;
    crate::fsutil::single_component(&system, "the system")?;
    if !crate::pinfile::is_member_path(&platform.library) {
        bail!("the library `{}` of `{name}` is not a relative path inside the wheel", platform.library.escape_debug());
    }
    let mut digest = sha2::Sha256::default();
    sha2::Digest::update(&mut digest, format!("{LAYOUT}\n{} {}\n", platform.sha256, platform.library));
    for w in &wheels {
        sha2::Digest::update(&mut digest, format!("{} {} {}\n", w.project, w.version, w.wheel.sha256));
    }
    let digest = hex::encode(sha2::Digest::finalize(digest));
    let parent = crate::project::cache_dir()?.join("prebuilt").join(name);
    let dir = parent.join(format!("{version}-{system}-{}-runtime-{}", &platform.sha256[..16], &digest[..16]));
    let plugin_in_tree = dir.join(&platform.library);
    match check_tree(&dir) {
        Ok(true) => return Ok(plugin_in_tree),
        Ok(false) => {}
        Err(e) => eprintln!("warning: the runtime tree {} is damaged ({e:#}); laying it out again", dir.display()),
    }

    let plugin = fetch_pinned(name, &pin.version, &system, platform)?;
    let cached = wheels
        .iter()
        .filter(|w| wheel_file_name(&w.wheel.url).and_then(|f| wheel_cache_path(f, &w.wheel.sha256)).is_ok_and(|p| p.is_file()))
        .count();
    eprintln!("{name}: {} runtime wheels ({cached} cached), verified before use", wheels.len());
    let mut paths = Vec::new();
    for w in &wheels {
        let path = wheel_cache_path(wheel_file_name(&w.wheel.url)?, &w.wheel.sha256)?;
        download::fetch_verified(&w.wheel.url, &w.wheel.sha256, &path)
            .with_context(|| format!("{} {} (runtime of `{name}`)", w.project, w.version))?;
        paths.push(path);
    }

    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    remove_abandoned_extractions(&parent);
    let nvshmem = pins.rules_ml_toolchain.as_ref().map(|r| r.nvshmem_libraries.clone()).unwrap_or_default();
    let keeps: Vec<MemberFilter> = wheels.iter().map(|w| member_filter(&w.project, &nvshmem)).collect();
    let mut needed = 0u64;
    for (path, keep) in paths.iter().zip(&keeps) {
        needed = needed.saturating_add(wheel::kept_size(path, keep)?);
    }
    ensure_space(&parent, needed)?;
    let tmp = extraction_dir(&parent)?;
    let mut laid = BTreeMap::new();
    let plugin_sha = std::fs::read_to_string(plugin.parent().unwrap_or(Path::new(".")).join(".library.sha256"))
        .map(|s| s.trim().to_owned())
        .or_else(|_| download::sha256_file(&plugin))?;
    let plugin_size = std::fs::metadata(&plugin)?.len();
    link_or_copy(&plugin, &tmp.path().join(&platform.library))?;
    laid.insert(
        platform.library.clone(),
        ExtractedFile { path: platform.library.clone(), size: plugin_size, sha256: plugin_sha, executable: false },
    );
    for (path, keep) in paths.iter().zip(&keeps) {
        wheel::extract_tree(path, tmp.path(), keep, &mut laid)?;
    }
    let search = std::fs::read(&plugin)
        .map_err(anyhow::Error::from)
        .and_then(|data| super::elf::read(&data))
        .with_context(|| format!("cannot read the RPATH of {}", plugin.display()))?;
    let search: Vec<String> = search.search_path().into_iter().map(str::to_owned).collect();
    let links = link_off_path_libraries(tmp.path(), &platform.library, &search, &mut laid)?;
    for (link, target) in &links {
        eprintln!("  {link}: linked to {target} (on the plugin's RPATH)");
    }

    let manifest = Manifest {
        layout: LAYOUT.to_owned(),
        plugin: name.to_owned(),
        version: pin.version.clone(),
        system: system.clone(),
        library: platform.library.clone(),
        wheels: wheels.iter().map(|w| (w.project.clone(), format!("{} {}", w.version, w.wheel.sha256))).collect(),
        files: laid.into_values().map(|f| ManifestFile { path: f.path, size: f.size, sha256: f.sha256 }).collect(),
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    std::fs::write(tmp.path().join(MANIFEST), text).context("cannot write the runtime manifest")?;
    let written: u64 =
        manifest.files.iter().filter(|f| f.path != platform.library && !links.iter().any(|(l, _)| *l == f.path)).map(|f| f.size).sum();
    move_into_place(tmp, &dir, || check_tree(&dir))?;
    eprintln!(
        "{name}: {} files ({:.2} GB unpacked, {} links) laid out in {}",
        manifest.files.len(),
        written as f64 / 1e9,
        links.len() + 1,
        dir.display()
    );
    Ok(plugin_in_tree)
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    layout: String,
    plugin: String,
    version: String,
    system: String,
    library: String,
    /// project -> "version sha256".
    wheels: BTreeMap<String, String>,
    files: Vec<ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestFile {
    path: String,
    size: u64,
    sha256: String,
}

/// Whether the tree at `dir` is complete: false when it was never laid out,
/// an error naming the damage when a file is missing, has another size or
/// was modified after the manifest was written.
fn check_tree(dir: &Path) -> Result<bool> {
    let manifest_path = dir.join(MANIFEST);
    let Ok(text) = std::fs::read_to_string(&manifest_path) else { return Ok(false) };
    let written = std::fs::metadata(&manifest_path)?.modified()?;
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("{} is not a runtime manifest", manifest_path.display()))?;
    if manifest.layout != LAYOUT {
        bail!("{} describes another layout", manifest_path.display());
    }
    for f in &manifest.files {
        if !crate::pinfile::is_member_path(&f.path) {
            bail!("the manifest lists `{}`, not a path inside the tree", f.path.escape_debug());
        }
        let path = dir.join(&f.path);
        let meta = std::fs::symlink_metadata(&path).with_context(|| format!("{} is missing", path.display()))?;
        if !meta.is_file() || meta.len() != f.size {
            bail!("{} is not the file that was laid out ({} bytes, recorded {})", path.display(), meta.len(), f.size);
        }
        if meta.modified()? > written {
            bail!("{} was modified after it was laid out", path.display());
        }
    }
    Ok(true)
}

/// Fails when the file system of `dir` has less than `needed` bytes free
/// (with a margin): a half-extracted tree of several GB helps nobody.
fn ensure_space(dir: &Path, needed: u64) -> Result<()> {
    let Ok(stat) = rustix::fs::statvfs(dir) else { return Ok(()) };
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    let wanted = needed.saturating_add(needed / 20).saturating_add(64 << 20);
    if free < wanted {
        bail!(
            "laying out the runtime needs {:.2} GB in {}, which has {:.2} GB free: free some space (or point PJRTPKGS_CACHE_DIR elsewhere) and run again; the verified wheels stay cached",
            wanted as f64 / 1e9,
            dir.display(),
            free as f64 / 1e9
        );
    }
    Ok(())
}

/// Hard-links `from` to `to` (creating parents), copying when a link is not
/// possible (another file system, a file system without links).
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// Selects the members of a wheel to lay out.
type MemberFilter = Box<dyn Fn(&str) -> bool>;

/// Which members of the runtime wheel of `project` are laid out: what
/// [`wheel::is_runtime_member`] keeps, and of NVIDIA's NVSHMEM wheels only the
/// shared libraries XLA's rules import ([rules_ml_toolchain]
/// nvshmem_libraries, as the Nix packages install them): the other
/// bootstrap and transport plugins need MPI, PMIx, UCX or libfabric, which
/// nothing here provides, and XLA never asks for them.
fn member_filter(project: &str, nvshmem_libraries: &[String]) -> MemberFilter {
    if !project.starts_with("nvidia-nvshmem-cu") || nvshmem_libraries.is_empty() {
        return Box::new(wheel::is_runtime_member);
    }
    let wanted = nvshmem_libraries.to_vec();
    Box::new(move |name: &str| {
        let base = name.rsplit('/').next().unwrap_or(name);
        let stem = base.split(".so").next().unwrap_or(base);
        wheel::is_runtime_member(name) && (!is_shared_library(name) || wanted.iter().any(|w| w == stem))
    })
}

fn is_shared_library(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.ends_with(".so") || base.contains(".so.")
}

/// `dir` joined with `rel`, `..` and `.` resolved lexically; None when it
/// leaves the tree (`rel` relative to the tree's root, both `/`-separated).
fn inside_tree(dir: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// The directories of the tree the plugin's RPATH/RUNPATH entries name
/// (`$ORIGIN` and `${ORIGIN}` expanded), in the loader's order; entries
/// outside the tree (absolute paths, too many `..`) are left out.
pub fn search_dirs_in_tree(library: &str, search_path: &[String]) -> Vec<String> {
    let origin = library.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let mut dirs = Vec::new();
    for entry in search_path {
        let rest = entry.strip_prefix("$ORIGIN").or_else(|| entry.strip_prefix("${ORIGIN}"));
        let Some(rest) = rest else { continue };
        if let Some(dir) = inside_tree(origin, rest.trim_start_matches('/')) {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// Hard-links every shared library of the tree whose directory is not on
/// the plugin's search path into the search-path directory holding the CUDA
/// runtime (else the first one holding a runtime library). Returns (link,
/// target) pairs, relative to `root`; `laid` gains the links.
fn link_off_path_libraries(
    root: &Path,
    library: &str,
    search_path: &[String],
    laid: &mut BTreeMap<String, ExtractedFile>,
) -> Result<Vec<(String, String)>> {
    let dirs = search_dirs_in_tree(library, search_path);
    let dir_of = |p: &str| p.rsplit_once('/').map(|(d, _)| d.to_owned()).unwrap_or_default();
    let libraries: Vec<ExtractedFile> = laid.values().filter(|f| f.path != library && is_shared_library(&f.path)).cloned().collect();
    let on_path: BTreeSet<&str> = dirs.iter().map(String::as_str).collect();
    let off: Vec<&ExtractedFile> = libraries.iter().filter(|f| !on_path.contains(dir_of(&f.path).as_str())).collect();
    if off.is_empty() {
        return Ok(Vec::new());
    }
    let holds = |dir: &str, pred: &dyn Fn(&str) -> bool| libraries.iter().any(|f| dir_of(&f.path) == dir && pred(&f.path));
    let anchor = dirs
        .iter()
        .find(|d| holds(d, &|p: &str| p.rsplit('/').next().unwrap_or("").starts_with("libcudart.so")))
        .or_else(|| dirs.iter().find(|d| holds(d, &|_: &str| true)));
    let Some(anchor) = anchor else {
        // Nothing of the runtime is on the plugin's path: no place to link to.
        return Ok(Vec::new());
    };
    let mut links = Vec::new();
    for f in off {
        let base = f.path.rsplit('/').next().unwrap_or(&f.path);
        let link = format!("{anchor}/{base}");
        match laid.get(&link) {
            Some(existing) if existing.sha256 == f.sha256 => continue,
            Some(_) => bail!("{} and {link} are different libraries of one name: the plugin would load either", f.path),
            None => {}
        }
        link_or_copy(&root.join(&f.path), &root.join(&link))?;
        laid.insert(link.clone(), ExtractedFile { path: link.clone(), ..f.clone() });
        links.push((link, f.path.clone()));
    }
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_in_tree() {
        let rpath: Vec<String> = "$ORIGIN/../../nvidia/cuda_cupti/lib:$ORIGIN/../nvidia/cuda_cupti/lib:${ORIGIN}/../../nvidia/cublas/lib:/opt/rocm/lib:$ORIGIN/../../../../x:$LIB"
            .split(':')
            .map(str::to_owned)
            .collect();
        assert_eq!(
            search_dirs_in_tree("jax_plugins/xla_cuda12/xla_cuda_plugin.so", &rpath),
            ["nvidia/cuda_cupti/lib", "jax_plugins/nvidia/cuda_cupti/lib", "nvidia/cublas/lib"]
        );
        assert_eq!(search_dirs_in_tree("p.so", &["$ORIGIN".to_owned(), "$ORIGIN/..".to_owned()]), [""]);
        assert_eq!(inside_tree("a/b", "../../.."), None);
        assert_eq!(inside_tree("a/b", "./../c"), Some("a/c".to_owned()));
    }
}
