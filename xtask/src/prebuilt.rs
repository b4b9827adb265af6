//! `cargo xtask prebuilt`: PJRT plugins that exist only as binaries (TPU,
//! the PyPI wheels), pinned by URL and sha256 in pins.toml, downloaded and
//! verified before anything uses them. Where they are cached is
//! [`crate::plugin::locate`]'s business, PyPI and wheels [`crate::wheels`]'.

mod runtime;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::pinfile::{host_system, Pins, PinsDocument, PrebuiltPin, PrebuiltPlatform, UNKNOWN};

use crate::plugin::locate::{fetch_pinned, fetch_plugin, wheel_cache_path};
use crate::plugin::probe as pjrt_api;
use crate::wheels::{download, pypi, wheel};

/// The systems `prebuilt update` pins a wheel for, when PyPI has one.
pub const PINNED_SYSTEMS: &[&str] = &["x86_64-linux", "aarch64-linux", "aarch64-darwin"];

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Pin (or re-pin) binary plugins from PyPI in pins.toml.
    #[command(
        long_about = "Pin binary PJRT plugins from PyPI in pins.toml: for each of x86_64-linux, aarch64-linux and aarch64-darwin where the release has a wheel, its canonical URL and sha256 (as PyPI gives them), and the plugin library inside it. Every chosen wheel is downloaded once and verified, so a pin is never written unchecked. The PJRT API version is read by loading the host's plugin and calling GetPjrtApi(); it applies to every platform of the same release. When the host's plugin cannot be loaded (missing GPU libraries), the version is recorded as \"unknown\" with the loader's reason.\n\nA GPU plugin's runtime libraries are pinned too ([prebuilt.NAME.runtime], for `prebuilt fetch NAME --with-runtime`): the wheels its paired release (jax-cuda12-plugin for jax-cuda12-pjrt, at the same version) lists under its with-cuda / with-rocm extra, read from that release's METADATA; of each, the newest stable release that satisfies the requirement on the major version of its lower bound, NVSHMEM as [cudaNN.nvshmem_wheel] pins it. Once pinned they stay while the plugin's release stays; requirements not on PyPI are recorded as unavailable. Runtime wheels (several GB) are pinned from PyPI's digests and downloaded and verified by the first `fetch --with-runtime`.\n\nWithout NAME, every pinned plugin is updated to its latest release.",
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
        long_about = "Download the pinned wheel of a plugin into the cache with a progress bar, verify its sha256 while streaming (a mismatch deletes the download and fails), extract the plugin library and any bundled headers, and print the library's path. Cached files are verified again before reuse; a corrupt one is deleted and fetched again.\n\nWith --with-runtime, also download the runtime libraries pinned in [prebuilt.NAME.runtime] (for the CUDA plugins: the NVIDIA wheels of the plugin's paired release, several GB), verified the same way, and lay the plugin and them out as pip would in site-packages, where the plugin's RPATH looks ($ORIGIN/../../nvidia/cublas/lib, $ORIGIN/../../nvidia/cu13/lib...). The printed path is the plugin in that tree: it loads with nothing installed system-wide but the GPU driver.",
        after_help = "Examples:\n  cargo xtask prebuilt fetch xla-cpu-pjrt\n  cargo xtask prebuilt fetch libtpu --system x86_64-linux\n  cargo xtask prebuilt fetch jax-cuda12-pjrt --with-runtime\n\nCache: $PJRTPKGS_CACHE_DIR, else $XDG_CACHE_HOME/pjrtpkgs, else ~/.cache/pjrtpkgs (under prebuilt/).\n\nExit status: 0 the path was printed, 1 failed (not pinned, no wheel for the system, network, checksum mismatch, a runtime library not pinned or not available, a refused wheel, not enough disk space)."
    )]
    Fetch {
        /// Name of the plugin in pins.toml ([prebuilt.NAME]).
        name: String,
        /// Nix system of the wheel (default: this machine's).
        #[arg(long)]
        system: Option<String>,
        /// Also fetch the runtime libraries pinned for it and lay them out where the plugin looks.
        #[arg(long)]
        with_runtime: bool,
    },
    /// Load a plugin library and print the PJRT API version it reports.
    #[command(hide = true)]
    ApiVersion {
        library: PathBuf,
        /// Write the answer as JSON to this file and end at once (the
        /// probe's child mode, see plugin::probe).
        #[arg(long, hide = true)]
        answer: Option<PathBuf>,
    },
}

pub fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Update { name, version, backend, library } => {
            update(name.as_deref(), version.as_deref(), backend.as_deref(), library.as_deref())?;
        }
        Command::Fetch { name, system, with_runtime } => {
            let path = match with_runtime {
                true => crate::plugin::runtime::fetch_with_runtime(&name, system.as_deref())?,
                false => fetch_plugin(&name, system.as_deref())?,
            };
            crate::output::emit_line(&path.display().to_string())?;
        }
        Command::ApiVersion { library, answer: Some(answer) } => match pjrt_api::answer_in_child(&library, &answer)? {},
        Command::ApiVersion { library, answer: None } => {
            crate::output::emit_line(&pjrt_api::read_in_process(&library)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
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
        Some(n) if !crate::pinfile::is_project_name(n) => bail!(
            "`{}` is not a PyPI project name (letters, digits, `.`, `_`, `-`; starting and ending with a letter or digit)",
            n.escape_debug()
        ),
        Some(n) => vec![n.to_owned()],
        None if pins.prebuilt.is_empty() => bail!("no prebuilt plugin is pinned yet; name one: `cargo xtask prebuilt update NAME`"),
        None => pins.prebuilt.keys().cloned().collect(),
    };
    for name in &names {
        let pin = pin_release(name, pins.prebuilt.get(name), version, backend, library, &pins)?;
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
    pins: &Pins,
) -> Result<PrebuiltPin> {
    let backend = match (backend, existing, guess_backend(name)) {
        (Some(b), _, _) => b.to_owned(),
        (None, Some(e), _) => e.backend.clone(),
        (None, None, Some(g)) => g.to_owned(),
        (None, None, None) => bail!("cannot tell the backend of `{name}` from its name; pass --backend (cpu, cuda12, cuda13, rocm7, tpu)"),
    };
    if !crate::pinfile::PREBUILT_BACKENDS.contains(&backend.as_str()) {
        bail!("unknown backend `{backend}`: use one of {}", crate::pinfile::PREBUILT_BACKENDS.join(", "));
    }
    if let Some(library) = library.filter(|l| !crate::pinfile::is_member_path(l)) {
        bail!("--library `{}` is not a relative path inside the wheel", library.escape_debug());
    }
    let release = pypi::release(name, version)?;
    let mut platforms = BTreeMap::new();
    for system in PINNED_SYSTEMS {
        let best = release.best_file(system);
        let Some(file) = best else { continue };
        // Refused before anything is downloaded (let alone loaded): a pin
        // pins.toml would not take (a plain http:// URL from a mirror, a
        // wheel of another version).
        let problems = crate::pinfile::wheel_url_problems(&file.url, &release.version, system);
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
    let systems: Vec<&str> = platforms.keys().map(String::as_str).collect();
    let runtime = runtime::pin(name, &release.version, &backend, &systems, existing.and_then(|e| e.runtime.as_ref()), pins)?;
    Ok(PrebuiltPin {
        version: release.version,
        backend,
        pjrt_api_version: api,
        pjrt_api_version_note: note,
        xla_commit,
        platforms,
        runtime,
    })
}
