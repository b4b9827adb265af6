//! From what a user types to a plugin library on disk: PLUGIN is a path, or
//! the name of a prebuilt plugin pinned in pins.toml, downloaded, verified
//! and extracted into the cache first.
//!
//! Cache layout under `project::cache_dir()/prebuilt/`:
//! - `wheels/<sha256>/<wheel file name>`: verified wheels, by the pinned
//!   sha256 (re-verified on every use; a re-pinned wheel is another file);
//! - `<name>/<version>-<system>-<sha256[..16]>/`: the extracted plugin
//!   library, `include/` with the wheel's bundled headers, and
//!   `.library.sha256`, the library's hash at extraction, checked on reuse.
//!
//! Every name in these paths (plugin, version, system, wheel file name) is
//! checked to be a single path component first, wherever it came from.
//! Several processes may fetch the same plugin at once: each downloads to
//! its own temporary file and extracts into its own temporary directory,
//! and a complete directory is renamed into place; whoever comes second
//! keeps the first one's (checked) result. Files are created with the
//! usual permissions (0666/0777 less the umask), so a shared cache works.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::pinfile::{host_system, Pins, PrebuiltPlatform};
use crate::wheels::download::{self, sha256_file};
use crate::wheels::wheel::{self, wheel_tags};

/// Resolves PLUGIN: a path (anything with a `/` or ending in `.so`, or an
/// existing file) is used as is; anything else names a pinned prebuilt
/// plugin, fetched and verified. Returns the library and, for a pinned
/// plugin, its backend (`cpu`, `cuda12`...).
pub fn resolve(plugin: &str, system: Option<&str>) -> Result<(PathBuf, Option<String>)> {
    let path = Path::new(plugin);
    if path.is_dir() {
        let found = shared_libraries(path);
        let hint = if found.is_empty() {
            "; it holds no .so file".to_string()
        } else {
            format!("; it holds {}", found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))
        };
        anyhow::bail!("{plugin} is a directory, not a plugin: give the plugin's shared library (a .so file){hint}");
    }
    if plugin.contains('/') || plugin.ends_with(".so") || path.is_file() {
        if !path.exists() {
            anyhow::bail!("plugin file {plugin} does not exist");
        }
        return Ok((path.to_path_buf(), None));
    }
    let lib = fetch_plugin(plugin, system)?;
    let backend = Pins::load(&crate::project::pins_toml()?)?.prebuilt(plugin).ok().map(|p| p.backend.clone());
    Ok((lib, backend))
}

/// Up to five `.so` files under `dir` (three levels down), sorted.
fn shared_libraries(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if found.len() >= 5 {
                return;
            }
            if p.is_dir() && depth > 0 {
                walk(&p, depth - 1, found);
            } else if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".so") || n.contains(".so.")) {
                found.push(p);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, 3, &mut found);
    found
}

/// The path of the extracted, verified plugin library of the prebuilt plugin
/// `name` for `system` (None = this machine), downloading it when needed.
pub fn fetch_plugin(name: &str, system: Option<&str>) -> Result<PathBuf> {
    let pins = Pins::load(&crate::project::pins_toml()?)?;
    let pin = pins.prebuilt(name)?;
    let system = system.map(str::to_owned).unwrap_or_else(host_system);
    let Some(platform) = pin.platforms.get(&system) else {
        let have: Vec<&str> = pin.platforms.keys().map(String::as_str).collect();
        bail!("`{name}` {} has no wheel pinned for {system} (pinned: {})", pin.version, have.join(", "));
    };
    fetch_pinned(name, &pin.version, &system, platform)
}

/// Where the wheel `file_name` pinned with `sha256` is kept (see the
/// module comment).
pub fn wheel_cache_path(file_name: &str, sha256: &str) -> Result<PathBuf> {
    if !crate::pinfile::is_hex_sha256(sha256) {
        bail!("`{sha256}` is not a sha256 in lowercase hex (64 digits)");
    }
    let file_name = crate::fsutil::single_component(file_name, "the wheel file name")?;
    if wheel_tags(file_name).is_none() {
        bail!("`{file_name}` is not a wheel file name");
    }
    Ok(crate::project::cache_dir()?.join("prebuilt").join("wheels").join(sha256).join(file_name))
}

/// Fetches one pinned wheel and extracts its library (see the module comment
/// for the cache layout).
pub fn fetch_pinned(name: &str, version: &str, system: &str, platform: &PrebuiltPlatform) -> Result<PathBuf> {
    let cache = crate::project::cache_dir()?.join("prebuilt");
    let sha = &platform.sha256;
    // pins.toml is checked on load, but this is where names become paths.
    if !crate::pinfile::is_project_name(name) {
        bail!("`{}` is not a PyPI project name; fix pins.toml (`cargo xtask pins check`)", name.escape_debug());
    }
    let version = crate::fsutil::single_component(version, "the version")?;
    let system = crate::fsutil::single_component(system, "the system")?;
    let wheel = wheel_cache_path(wheel_file_name(&platform.url)?, sha)?;
    if !crate::pinfile::is_member_path(&platform.library) {
        bail!("the library `{}` of `{name}` is not a relative path inside the wheel", platform.library.escape_debug());
    }
    let lib_name = platform.library.rsplit('/').next().unwrap_or(&platform.library);
    let parent = cache.join(name);
    let dir = parent.join(format!("{version}-{system}-{}", &sha[..16]));
    let lib = dir.join(lib_name);
    match extracted_library(&dir, lib_name) {
        Ok(Some(lib)) => return Ok(lib),
        Ok(None) => {}
        Err(e) => eprintln!("warning: {e:#}; extracting it again"),
    }
    download::fetch_verified(&platform.url, sha, &wheel)?;

    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    remove_abandoned_extractions(&parent);
    let tmp = extraction_dir(&parent)?;
    let extracted = wheel::extract(&wheel, &platform.library, tmp.path())?;
    let lib_sha = sha256_file(&extracted)?;
    std::fs::write(tmp.path().join(".library.sha256"), format!("{lib_sha}\n"))?;
    move_into_place(tmp, &dir, || extracted_library(&dir, lib_name).map(|found| found.is_some()))?;
    Ok(lib)
}

/// A temporary directory in `parent` to extract into: `.extract-<pid>-*`,
/// removed when dropped (on any error), and by a later run when this
/// process died before (see [`remove_abandoned_extractions`]). Created
/// 0777 less the umask, as any directory of a shared cache.
pub(crate) fn extraction_dir(parent: &Path) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!(".extract-{}-", std::process::id()))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a temporary directory in {}", parent.display()))
}

/// Renames the complete directory `tmp` to `dir`. When another process got
/// there first, its directory is kept if `intact` says so (ours is dropped);
/// a damaged one is moved aside atomically (never deleted in place under a
/// reader) and the rename tried again.
pub(crate) fn move_into_place(tmp: tempfile::TempDir, dir: &Path, intact: impl Fn() -> Result<bool>) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    for _ in 0..3 {
        match std::fs::rename(tmp.path(), dir) {
            Ok(()) => {
                let _ = tmp.keep();
                return Ok(());
            }
            Err(e) if dir.is_dir() => {
                if intact().unwrap_or(false) {
                    return Ok(());
                }
                let aside = parent.join(format!(
                    ".stale-{}-{}",
                    std::process::id(),
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
                ));
                match std::fs::rename(dir, &aside) {
                    Ok(()) => {
                        let _ = std::fs::remove_dir_all(&aside);
                    }
                    Err(gone) if gone.kind() == std::io::ErrorKind::NotFound => {}
                    Err(_) => return Err(e).with_context(|| format!("cannot replace the damaged {}", dir.display())),
                }
            }
            Err(e) => return Err(e).with_context(|| format!("cannot move the extracted files to {}", dir.display())),
        }
    }
    bail!("{} keeps being replaced by another process; try again", dir.display())
}

/// The library in the extracted directory `dir` when it is there and
/// matches the sha256 recorded at extraction; None when it was never
/// extracted; an error naming the damage otherwise.
pub(crate) fn extracted_library(dir: &std::path::Path, lib_name: &str) -> Result<Option<PathBuf>> {
    let lib = dir.join(lib_name);
    let Ok(recorded) = std::fs::read_to_string(dir.join(".library.sha256")) else { return Ok(None) };
    if !lib.is_file() {
        bail!("the cached {} is missing", lib.display());
    }
    let actual = sha256_file(&lib)?;
    if actual != recorded.trim() {
        bail!("the cached {} does not match its recorded sha256 (now {actual})", lib.display());
    }
    Ok(Some(lib))
}

/// Removes the temporary directories (`.extract-<pid>-*`, `.stale-<pid>-*`)
/// of processes that are gone (a killed fetch leaves gigabytes behind), and
/// any older than a day (a pid can be reused).
pub(crate) fn remove_abandoned_extractions(parent: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name.strip_prefix(".extract-").or_else(|| name.strip_prefix(".stale-")) else { continue };
        if crate::fsutil::abandoned(&entry.path(), rest) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub(crate) fn wheel_file_name(url: &str) -> Result<&str> {
    let name = url.rsplit('/').next().unwrap_or("");
    if wheel_tags(name).is_none() {
        bail!("`{url}` does not name a wheel file");
    }
    Ok(name)
}
