//! What `release` is given: a Nix build result (`nix build .#pjrt-cpu`:
//! `lib/`, `include/`, `share/pjrt/version_info.json`, the layout of
//! nix/lib.nix `pluginLayout`) or the name of a prebuilt plugin pinned in
//! pins.toml, fetched and verified by the prebuilt module.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use crate::pinfile::{host_system, Pins, UNKNOWN};

/// Where a plugin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Built from the pinned XLA sources (a Nix source build).
    Source,
    /// A binary plugin from a pinned wheel (directly, or a Nix package of it).
    Prebuilt,
}

/// One plugin to release.
#[derive(Debug, Clone)]
pub struct Input {
    /// As given on the command line.
    pub label: String,
    pub backend: String,
    pub origin: Origin,
    pub plugin: PathBuf,
    /// Other shared libraries shipped next to the plugin (a Nix result's lib/).
    pub bundled: Vec<PathBuf>,
    /// `MAJOR.MINOR` of the PJRT C API the plugin implements.
    pub api_version: String,
    /// The XLA commit it was built from, when known.
    pub xla_commit: Option<String>,
    /// A directory holding the `pjrt_c_api*.h` the plugin was shipped with.
    pub own_headers: Option<PathBuf>,
    /// Nix system of a pinned wheel (a Nix result's is read from its ELF).
    pub system: Option<String>,
    /// version_info.json as nix/lib.nix `versionInfo` writes it (keys
    /// `schema`, `backend`, `origin`, `toolchains`, `xla_commit`,
    /// `pjrt_api_version`, and for wheels `package`, `version`, `url`,
    /// `sha256`, `library`), to which the release adds its own keys.
    pub info: Map<String, Value>,
}

/// The name of the plugin in a package's lib/ (nix/lib.nix `pluginLibName`).
pub fn plugin_lib_name(backend: &str) -> String {
    format!("pjrt_c_api_{backend}_plugin.so")
}

/// Resolves one command-line input: an existing directory is a Nix build
/// result; anything else names a pinned prebuilt plugin, `NAME` (for
/// `system`, or this machine's) or `NAME@SYSTEM`.
pub fn resolve(arg: &str, system: Option<&str>, pins: &Pins) -> Result<Input> {
    let path = Path::new(arg);
    if path.is_dir() {
        return nix_result(arg, path, pins).with_context(|| format!("{arg} is not a usable Nix build result"));
    }
    if path.exists() || arg.contains('/') {
        bail!("`{arg}` is not a directory: give a Nix build result (`nix build .#pjrt-cpu` makes ./result) or the name of a plugin pinned in pins.toml");
    }
    match arg.split_once('@') {
        Some((name, system)) => {
            let mut input = prebuilt(name, Some(system), pins)?;
            input.label = arg.to_owned();
            Ok(input)
        }
        None => prebuilt(arg, system, pins),
    }
}

fn nix_result(label: &str, dir: &Path, pins: &Pins) -> Result<Input> {
    let info_path = dir.join("share/pjrt/version_info.json");
    let text = std::fs::read_to_string(&info_path).with_context(|| format!("cannot read {}", info_path.display()))?;
    let info: Map<String, Value> = serde_json::from_str(&text).with_context(|| format!("{} is not a JSON object", info_path.display()))?;
    let field = |key: &str| info.get(key).and_then(Value::as_str).map(str::to_owned);
    let Some(backend) = field("backend") else { bail!("{} has no `backend`", info_path.display()) };
    if !crate::pinfile::PREBUILT_BACKENDS.contains(&backend.as_str()) {
        bail!("{}: unknown backend `{backend}`", info_path.display());
    }
    let origin = match field("origin").as_deref() {
        Some("source") => Origin::Source,
        Some("prebuilt") => Origin::Prebuilt,
        other => bail!("{}: `origin` is {other:?}, not \"source\" or \"prebuilt\"", info_path.display()),
    };
    let lib_dir = dir.join("lib");
    let plugin = lib_dir.join(plugin_lib_name(&backend));
    if !plugin.is_file() {
        bail!("{} is missing (the layout of nix/lib.nix pluginLayout)", plugin.display());
    }
    let mut bundled = Vec::new();
    for entry in std::fs::read_dir(&lib_dir).with_context(|| format!("cannot list {}", lib_dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path != plugin && path.is_file() && (name.ends_with(".so") || name.contains(".so.")) {
            bundled.push(path);
        }
    }
    bundled.sort();
    let xla_commit = field("xla_commit");
    let api_version = match (origin, field("pjrt_api_version")) {
        (_, Some(v)) => v,
        (Origin::Source, None) => bail!("{}: a source build without `pjrt_api_version`", info_path.display()),
        (Origin::Prebuilt, None) => crate::plugin::probe::probe(&plugin).with_context(|| {
            format!("{} records no PJRT API version and the plugin cannot be loaded here to read it", info_path.display())
        })?,
    };
    if origin == Origin::Source && xla_commit.as_deref() != Some(pins.xla.commit.as_str()) {
        bail!(
            "it was built from XLA {} but pins.toml pins {}: rebuild it from this checkout",
            xla_commit.as_deref().unwrap_or("(unrecorded)"),
            pins.xla.commit
        );
    }
    let own_headers = find_core_header(&dir.join("include")).and_then(|h| h.parent().map(Path::to_path_buf));
    Ok(Input { label: label.to_owned(), backend, origin, plugin, bundled, api_version, xla_commit, own_headers, system: None, info })
}

/// `pjrt_c_api.h` anywhere under `dir`.
fn find_core_header(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut subdirs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "pjrt_c_api.h") && path.is_file() {
            return Some(path);
        }
        if path.is_dir() {
            subdirs.push(path);
        }
    }
    subdirs.sort();
    subdirs.iter().find_map(|d| find_core_header(d))
}

fn prebuilt(name: &str, system: Option<&str>, pins: &Pins) -> Result<Input> {
    let pin = pins.prebuilt(name)?;
    let system = system.map(str::to_owned).unwrap_or_else(host_system);
    let Some(platform) = pin.platforms.get(&system) else {
        let have: Vec<&str> = pin.platforms.keys().map(String::as_str).collect();
        bail!("`{name}` {} has no wheel pinned for {system} (pinned: {})", pin.version, have.join(", "));
    };
    let plugin = crate::plugin::locate::fetch_plugin(name, Some(&system))?;
    // The version the plugin reports, read by loading it where it can run;
    // elsewhere, the one `prebuilt update` recorded the same way.
    let pinned = (pin.pjrt_api_version != UNKNOWN).then(|| pin.pjrt_api_version.clone());
    let api_version = if system == host_system() {
        let reported =
            crate::plugin::probe::probe(&plugin).with_context(|| format!("cannot load `{name}` to read its PJRT API version"))?;
        if let Some(p) = pinned.as_ref().filter(|p| **p != reported) {
            bail!("`{name}` reports PJRT API {reported} but pins.toml records {p}: re-pin it with `cargo xtask prebuilt update {name}`");
        }
        reported
    } else {
        pinned
            .with_context(|| format!("`{name}`'s PJRT API version is unknown and its {system} plugin cannot be loaded on this machine"))?
    };
    let own_headers = plugin.parent().map(|d| d.join("include")).filter(|d| d.join("pjrt_c_api.h").is_file());
    let mut info = Map::new();
    info.insert("schema".into(), 1.into());
    info.insert("backend".into(), pin.backend.clone().into());
    info.insert("origin".into(), "prebuilt".into());
    info.insert("toolchains".into(), Value::Object(Map::new()));
    info.insert("xla_commit".into(), Value::Null);
    info.insert("pjrt_api_version".into(), api_version.clone().into());
    info.insert("package".into(), name.into());
    info.insert("version".into(), pin.version.clone().into());
    info.insert("url".into(), platform.url.clone().into());
    info.insert("sha256".into(), platform.sha256.clone().into());
    info.insert("library".into(), platform.library.clone().into());
    Ok(Input {
        label: name.to_owned(),
        backend: pin.backend.clone(),
        origin: Origin::Prebuilt,
        plugin,
        bundled: Vec::new(),
        api_version,
        xla_commit: None,
        own_headers,
        system: Some(system),
        info,
    })
}
