//! `cargo xtask prebuilt`: PJRT plugins that exist only as binaries (TPU,
//! the PyPI wheels), pinned by URL and sha256 in pins.toml, downloaded and
//! verified before anything uses them.
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

mod download;
mod pjrt_api;
mod pypi;
mod wheel;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::pins::{host_system, Pins, PinsDocument, PrebuiltPin, PrebuiltPlatform, UNKNOWN};

pub use download::{fetch_verified, sha256_file};
pub use pjrt_api::{
    probe as probe_api_version, probe_in_child as probe_api_version_in_child, read_in_process as read_api_version, PROBE_TIMEOUT,
};
pub use wheel::{extract as extract_wheel, find_library, platform_tag_fits, wheel_tags, WheelTags};

/// The systems `prebuilt update` pins a wheel for, when PyPI has one.
pub const PINNED_SYSTEMS: &[&str] = &["x86_64-linux", "aarch64-linux", "aarch64-darwin"];

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Pin (or re-pin) binary plugins from PyPI in pins.toml.
    #[command(
        long_about = "Pin binary PJRT plugins from PyPI in pins.toml: for each of x86_64-linux, aarch64-linux and aarch64-darwin where the release has a wheel, its canonical URL and sha256 (as PyPI gives them), and the plugin library inside it. Every chosen wheel is downloaded once and verified, so a pin is never written unchecked. The PJRT API version is read by loading the host's plugin and calling GetPjrtApi(); it applies to every platform of the same release. When the host's plugin cannot be loaded (missing GPU libraries), the version is recorded as \"unknown\" with the loader's reason.\n\nWithout NAME, every pinned plugin is updated to its latest release.",
        after_help = "Examples:\n  cargo xtask prebuilt update                      # every pinned plugin, latest releases\n  cargo xtask prebuilt update xla-cpu-pjrt --version 0.0.1\n  cargo xtask prebuilt update jax-cuda13-pjrt --backend cuda13\n\nEnvironment: PJRTPKGS_PYPI_URL points at a PyPI mirror (default https://pypi.org).\n\nExit status: 0 pinned, 1 failed (network, PyPI, checksum mismatch; pins.toml is written after each plugin, so the plugins done before the failure stay pinned)."
    )]
    Update {
        /// PyPI project name; all pinned plugins when omitted.
        name: Option<String>,
        /// Release to pin (default: the latest). Needs NAME.
        #[arg(long, requires = "name")]
        version: Option<String>,
        /// Backend of a newly pinned plugin: cpu, cuda12, cuda13, rocm7, tpu (default: guessed from the name, else the pinned one).
        #[arg(long, requires = "name")]
        backend: Option<String>,
        /// The plugin's path inside the wheel (default: the one library exporting GetPjrtApi).
        #[arg(long, requires = "name")]
        library: Option<String>,
    },
    /// Download, verify and extract a pinned plugin; print its path.
    #[command(
        long_about = "Download the pinned wheel of a plugin into the cache with a progress bar, verify its sha256 while streaming (a mismatch deletes the download and fails), extract the plugin library and any bundled headers, and print the library's path. Cached files are verified again before reuse; a corrupt one is deleted and fetched again.",
        after_help = "Examples:\n  cargo xtask prebuilt fetch xla-cpu-pjrt\n  cargo xtask prebuilt fetch libtpu --system x86_64-linux\n\nCache: $PJRTPKGS_CACHE_DIR, else $XDG_CACHE_HOME/pjrtpkgs, else ~/.cache/pjrtpkgs (under prebuilt/).\n\nExit status: 0 the path was printed, 1 failed (not pinned, no wheel for the system, network, checksum mismatch)."
    )]
    Fetch {
        /// Name of the plugin in pins.toml ([prebuilt.NAME]).
        name: String,
        /// Nix system of the wheel (default: this machine's).
        #[arg(long)]
        system: Option<String>,
    },
    /// Load a plugin library and print the PJRT API version it reports.
    #[command(hide = true)]
    ApiVersion { library: PathBuf },
}

pub fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Update { name, version, backend, library } => {
            update(name.as_deref(), version.as_deref(), backend.as_deref(), library.as_deref())?;
        }
        Command::Fetch { name, system } => {
            let path = fetch_plugin(&name, system.as_deref())?;
            crate::cli::emit_line(&path.display().to_string())?;
        }
        Command::ApiVersion { library } => {
            crate::cli::emit_line(&pjrt_api::read_in_process(&library)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
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
fn wheel_cache_path(file_name: &str, sha256: &str) -> Result<PathBuf> {
    if !crate::pins::is_hex_sha256(sha256) {
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
fn fetch_pinned(name: &str, version: &str, system: &str, platform: &PrebuiltPlatform) -> Result<PathBuf> {
    let cache = crate::project::cache_dir()?.join("prebuilt");
    let sha = &platform.sha256;
    // pins.toml is checked on load, but this is where names become paths.
    if !crate::pins::is_project_name(name) {
        bail!("`{}` is not a PyPI project name; fix pins.toml (`cargo xtask pins check`)", name.escape_debug());
    }
    let version = crate::fsutil::single_component(version, "the version")?;
    let system = crate::fsutil::single_component(system, "the system")?;
    let wheel = wheel_cache_path(wheel_file_name(&platform.url)?, sha)?;
    if !crate::pins::is_member_path(&platform.library) {
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
    let tmp = tempfile::Builder::new()
        .prefix(".extract-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a temporary directory in {}", parent.display()))?;
    let extracted = wheel::extract(&wheel, &platform.library, tmp.path())?;
    let lib_sha = sha256_file(&extracted)?;
    std::fs::write(tmp.path().join(".library.sha256"), format!("{lib_sha}\n"))?;
    // Rename the complete directory into place. When another process got
    // there first its directory is kept if intact (ours is dropped); a
    // damaged one is moved aside atomically (never deleted in place under
    // a reader) and the rename tried again.
    for _ in 0..3 {
        match std::fs::rename(tmp.path(), &dir) {
            Ok(()) => {
                let _ = tmp.keep();
                return Ok(lib);
            }
            Err(e) if dir.is_dir() => {
                if let Ok(Some(lib)) = extracted_library(&dir, lib_name) {
                    return Ok(lib);
                }
                let aside = parent.join(format!(".stale-{}-{}", std::process::id(), lib_sha.get(..8).unwrap_or_default()));
                match std::fs::rename(&dir, &aside) {
                    Ok(()) => {
                        let _ = std::fs::remove_dir_all(&aside);
                    }
                    Err(gone) if gone.kind() == std::io::ErrorKind::NotFound => {}
                    Err(_) => return Err(e).with_context(|| format!("cannot replace the damaged {}", dir.display())),
                }
            }
            Err(e) => return Err(e).with_context(|| format!("cannot move the extracted plugin to {}", dir.display())),
        }
    }
    bail!("{} keeps being replaced by another process; try again", dir.display())
}

/// The library in the extracted directory `dir` when it is there and
/// matches the sha256 recorded at extraction; None when it was never
/// extracted; an error naming the damage otherwise.
fn extracted_library(dir: &std::path::Path, lib_name: &str) -> Result<Option<PathBuf>> {
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

/// Removes the temporary extraction directories of processes that died
/// more than a day ago (a live one is never that old).
fn remove_abandoned_extractions(parent: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(".extract-") || name.starts_with(".stale-")) {
            continue;
        }
        let old = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if old.is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn wheel_file_name(url: &str) -> Result<&str> {
    let name = url.rsplit('/').next().unwrap_or("");
    if wheel_tags(name).is_none() {
        bail!("`{url}` does not name a wheel file");
    }
    Ok(name)
}

/// The backend a PyPI project name suggests.
fn guess_backend(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    [("cuda12", "cuda12"), ("cuda13", "cuda13"), ("rocm7", "rocm7"), ("tpu", "tpu"), ("cpu", "cpu")]
        .into_iter()
        .find(|(marker, _)| n.contains(marker))
        .map(|(_, b)| b)
}

/// `prebuilt update`: see the command's long help.
pub fn update(name: Option<&str>, version: Option<&str>, backend: Option<&str>, library: Option<&str>) -> Result<()> {
    let path = crate::project::pins_toml()?;
    let pins = Pins::load(&path)?;
    let mut doc = PinsDocument::read(&path)?;
    let names: Vec<String> = match name {
        Some(n) if !crate::pins::is_project_name(n) => bail!(
            "`{}` is not a PyPI project name (letters, digits, `.`, `_`, `-`; starting and ending with a letter or digit)",
            n.escape_debug()
        ),
        Some(n) => vec![n.to_owned()],
        None if pins.prebuilt.is_empty() => bail!("no prebuilt plugin is pinned yet; name one: `cargo xtask prebuilt update NAME`"),
        None => pins.prebuilt.keys().cloned().collect(),
    };
    for name in &names {
        let pin = pin_release(name, pins.prebuilt.get(name), version, backend, library)?;
        let systems: Vec<&str> = pin.platforms.keys().map(String::as_str).collect();
        eprintln!(
            "{name} {} ({}): PJRT API {}{}, wheels for {}",
            pin.version,
            pin.backend,
            pin.pjrt_api_version,
            pin.pjrt_api_version_note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default(),
            systems.join(", ")
        );
        doc.set_prebuilt(name, &pin);
        // Written after each plugin: a later failure keeps the earlier pins.
        doc.write(&path)?;
    }
    Ok(())
}

fn pin_release(
    name: &str,
    existing: Option<&PrebuiltPin>,
    version: Option<&str>,
    backend: Option<&str>,
    library: Option<&str>,
) -> Result<PrebuiltPin> {
    let backend = match (backend, existing, guess_backend(name)) {
        (Some(b), _, _) => b.to_owned(),
        (None, Some(e), _) => e.backend.clone(),
        (None, None, Some(g)) => g.to_owned(),
        (None, None, None) => bail!("cannot tell the backend of `{name}` from its name; pass --backend (cpu, cuda12, cuda13, rocm7, tpu)"),
    };
    if !crate::pins::PREBUILT_BACKENDS.contains(&backend.as_str()) {
        bail!("unknown backend `{backend}`: use one of {}", crate::pins::PREBUILT_BACKENDS.join(", "));
    }
    if let Some(library) = library.filter(|l| !crate::pins::is_member_path(l)) {
        bail!("--library `{}` is not a relative path inside the wheel", library.escape_debug());
    }
    let release = pypi::release(name, version)?;
    let mut platforms = BTreeMap::new();
    for system in PINNED_SYSTEMS {
        let best = release
            .files
            .iter()
            .filter_map(|f| wheel::wheel_rank(&f.filename, system).map(|rank| (rank, f)))
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, f)| f);
        let Some(file) = best else { continue };
        // Refused before anything is downloaded (let alone loaded): a pin
        // pins.toml would not take (a plain http:// URL from a mirror, a
        // wheel of another version).
        let problems = crate::pins::wheel_url_problems(&file.url, &release.version, system);
        if !problems.is_empty() {
            bail!(
                "cannot pin {} for {system}: {}; nothing was downloaded (PyPI mirror: {})",
                file.filename,
                problems.join("; "),
                pypi::base_url()
            );
        }
        let unchanged =
            existing.and_then(|e| e.platforms.get(*system)).filter(|p| p.sha256 == file.sha256 && library.is_none_or(|l| l == p.library));
        let library = match (unchanged, library) {
            (Some(p), _) => p.library.clone(),
            (None, Some(l)) => l.to_owned(),
            (None, None) => {
                // Verify the wheel end to end and find the plugin inside.
                let wheel = wheel_cache_path(&file.filename, &file.sha256)?;
                download::fetch_verified(&file.url, &file.sha256, &wheel)?;
                wheel::find_library(&wheel)?
            }
        };
        platforms.insert((*system).to_owned(), PrebuiltPlatform { url: file.url.clone(), sha256: file.sha256.clone(), library });
    }
    if platforms.is_empty() {
        let files: Vec<&str> = release.files.iter().map(|f| f.filename.as_str()).collect();
        bail!(
            "`{name}` {} has no wheel for {} (its wheels: {})",
            release.version,
            PINNED_SYSTEMS.join(", "),
            if files.is_empty() { "none".to_owned() } else { files.join(", ") }
        );
    }

    // The API version: kept when the release did not change, else read from
    // the host's plugin; identical releases report the same version everywhere.
    let host = host_system();
    let kept = existing.filter(|e| e.version == release.version && e.pjrt_api_version != UNKNOWN);
    let (api, note) = if let Some(e) = kept {
        (e.pjrt_api_version.clone(), e.pjrt_api_version_note.clone())
    } else if let Some(platform) = platforms.get(&host) {
        let lib = fetch_pinned(name, &release.version, &host, platform)?;
        match pjrt_api::probe(&lib) {
            Ok(v) => (v, None),
            Err(e) => {
                // The cache path is this machine's business, not the pin's.
                let file = lib.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                let reason = format!("{e:#}").replace(&lib.display().to_string(), &file);
                (UNKNOWN.to_owned(), Some(format!("the {host} plugin could not be loaded: {reason}")))
            }
        }
    } else {
        (UNKNOWN.to_owned(), Some(format!("no wheel for {host}, the system it was pinned on; run `prebuilt update` on one it supports")))
    };
    // The XLA commit a wheel was built from is known only to whoever pinned
    // it by hand: kept while the release stays the same.
    let xla_commit = existing.filter(|e| e.version == release.version).and_then(|e| e.xla_commit.clone());
    Ok(PrebuiltPin { version: release.version, backend, pjrt_api_version: api, pjrt_api_version_note: note, xla_commit, platforms })
}
