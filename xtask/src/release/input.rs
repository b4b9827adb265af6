//! What `release` is given: a Nix build result (`nix build .#pjrt-cpu`:
//! `lib/`, `include/`, `share/pjrt/version_info.json`, the layout of
//! nix/lib.nix `pluginLayout`) or the name of a prebuilt plugin pinned in
//! pins.toml, fetched and verified by the prebuilt module.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use super::input_tree::{InputDir, Kind};
use crate::pinfile::{host_system, Pins, UNKNOWN};

/// The most a shared library of an input may weigh (the largest PJRT plugin
/// known, libtpu 0.0.52, is 467 MB).
pub const MAX_LIBRARY_BYTES: u64 = 2 << 30;
/// The most a header or version_info.json may weigh.
pub const MAX_TEXT_BYTES: u64 = 4 << 20;
/// How deep `include/` is searched for `pjrt_c_api.h`.
const MAX_INCLUDE_DEPTH: usize = 8;

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
    /// The directory everything below is read from, without leaving it.
    pub dir: Arc<InputDir>,
    /// The plugin, relative to `dir`.
    pub plugin: PathBuf,
    /// Other shared libraries shipped next to the plugin (a Nix result's
    /// lib/), relative to `dir`.
    pub bundled: Vec<PathBuf>,
    /// `MAJOR.MINOR` of the PJRT C API the plugin implements.
    pub api_version: String,
    /// The XLA commit it was built from, when known.
    pub xla_commit: Option<String>,
    /// A directory holding the `pjrt_c_api*.h` the plugin was shipped with,
    /// relative to `dir`.
    pub own_headers: Option<PathBuf>,
    /// The licence a wheel declares in its METADATA, when it declares one.
    pub license: Option<String>,
    /// Nix system of a pinned wheel (a Nix result's is read from its ELF).
    pub system: Option<String>,
    /// version_info.json as nix/lib.nix `versionInfo` writes it (keys
    /// `schema`, `backend`, `origin`, `toolchains`, `xla_commit`,
    /// `pjrt_api_version`, and for wheels `package`, `version`, `url`,
    /// `sha256`, `library`), to which the release adds its own keys.
    pub info: Map<String, Value>,
}

impl Input {
    /// A shared library of the input (`rel` below its directory).
    pub fn read_library(&self, rel: &Path) -> Result<Vec<u8>> {
        self.dir.read(rel, MAX_LIBRARY_BYTES, "a shared library")
    }

    /// `rel` below the input, for messages.
    pub fn describe(&self, rel: &Path) -> String {
        self.dir.display(rel)
    }
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
    let root = Arc::new(InputDir::open(dir)?);
    let info_rel = Path::new("share/pjrt/version_info.json");
    let info_path = root.display(info_rel);
    let text = root.read(info_rel, MAX_TEXT_BYTES, "version_info.json")?;
    let info: Map<String, Value> = serde_json::from_slice(&text).with_context(|| format!("{info_path} is not a JSON object"))?;
    let field = |key: &str| info.get(key).and_then(Value::as_str).map(str::to_owned);
    let Some(backend) = field("backend") else { bail!("{info_path} has no `backend`") };
    if !crate::pinfile::PREBUILT_BACKENDS.contains(&backend.as_str()) {
        bail!("{info_path}: unknown backend `{}`", super::fetch::shown(&backend));
    }
    let origin = match field("origin").as_deref() {
        Some("source") => Origin::Source,
        Some("prebuilt") => Origin::Prebuilt,
        other => bail!("{info_path}: `origin` is {other:?}, not \"source\" or \"prebuilt\""),
    };
    let lib_dir = Path::new("lib");
    let plugin = lib_dir.join(plugin_lib_name(&backend));
    match root.kind(&plugin)? {
        Some(Kind::File { .. }) => {}
        None => bail!("{} is missing (the layout of nix/lib.nix pluginLayout)", root.display(&plugin)),
        Some(Kind::Dir) => bail!("{} is a directory, not the plugin", root.display(&plugin)),
        Some(Kind::Other(k)) => bail!("{} is {k}, not a regular file: refused", root.display(&plugin)),
    }
    let mut bundled = Vec::new();
    for name in root.list(lib_dir)? {
        let rel = lib_dir.join(&name);
        if rel == plugin || !(name.ends_with(".so") || name.contains(".so.")) {
            continue;
        }
        match root.kind(&rel)? {
            Some(Kind::File { .. }) => bundled.push(rel),
            Some(Kind::Dir) | None => {}
            Some(Kind::Other(k)) => bail!("{} is {k}, not a shared library: refused", root.display(&rel)),
        }
    }
    let xla_commit = field("xla_commit");
    let api_version = match (origin, field("pjrt_api_version")) {
        (_, Some(v)) => v,
        (Origin::Source, None) => bail!("{info_path}: a source build without `pjrt_api_version`"),
        (Origin::Prebuilt, None) => crate::plugin::probe::probe(&dir.join(&plugin))
            .with_context(|| format!("{info_path} records no PJRT API version and the plugin cannot be loaded here to read it"))?,
    };
    if api_version.parse::<crate::xla_headers::ApiVersion>().is_err() {
        bail!("{info_path}: `pjrt_api_version` {} is not MAJOR.MINOR", super::fetch::shown(&api_version));
    }
    if origin == Origin::Source && xla_commit.as_deref() != Some(pins.xla.commit.as_str()) {
        bail!(
            "it was built from XLA {} but pins.toml pins {}: rebuild it from this checkout",
            xla_commit.as_deref().unwrap_or("(unrecorded)"),
            pins.xla.commit
        );
    }
    let own_headers = find_core_header(&root, Path::new("include"), 0)?.and_then(|h| h.parent().map(Path::to_path_buf));
    Ok(Input {
        label: label.to_owned(),
        backend,
        origin,
        dir: root,
        plugin,
        bundled,
        api_version,
        xla_commit,
        own_headers,
        license: None,
        system: None,
        info,
    })
}

/// `pjrt_c_api.h` anywhere under `rel` (shallowest, then by name), its
/// path relative to the input.
fn find_core_header(root: &InputDir, rel: &Path, depth: usize) -> Result<Option<PathBuf>> {
    if depth > MAX_INCLUDE_DEPTH || root.kind(rel)? != Some(Kind::Dir) {
        return Ok(None);
    }
    let names = root.list(rel)?;
    let core = rel.join("pjrt_c_api.h");
    if names.iter().any(|n| n == "pjrt_c_api.h") && matches!(root.kind(&core)?, Some(Kind::File { .. })) {
        return Ok(Some(core));
    }
    for name in names {
        if let Some(found) = find_core_header(root, &rel.join(name), depth + 1)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
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
    let extracted = plugin.parent().context("the extracted plugin has no directory")?;
    let root = Arc::new(InputDir::open(extracted)?);
    let own_headers = matches!(root.kind(Path::new("include/pjrt_c_api.h"))?, Some(Kind::File { .. })).then(|| PathBuf::from("include"));
    let license = wheel_license(&platform.url, &platform.sha256);
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
        dir: root,
        plugin: PathBuf::from(plugin.file_name().context("the extracted plugin has no file name")?),
        bundled: Vec::new(),
        api_version,
        xla_commit: None,
        own_headers,
        license,
        system: Some(system),
        info,
    })
}

/// The licence a pinned wheel declares in its `*.dist-info/METADATA`
/// (`License-Expression`, else `License`), read from the verified wheel
/// `prebuilt fetch` keeps in the cache; `None` when it declares none or the
/// wheel is not there.
fn wheel_license(url: &str, sha256: &str) -> Option<String> {
    let wheel = crate::plugin::locate::wheel_cache_path(url.rsplit('/').next()?, sha256).ok()?;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(wheel).ok()?).ok()?;
    let name = zip.file_names().find(|n| n.ends_with(".dist-info/METADATA") && n.matches('/').count() == 1)?.to_owned();
    let mut text = String::new();
    zip.by_name(&name).ok()?.take(1 << 20).read_to_string(&mut text).ok()?;
    metadata_license(&text)
}

/// `License-Expression`, else a one-line `License`, of a wheel's METADATA
/// (only its header, which ends at the first empty line).
fn metadata_license(metadata: &str) -> Option<String> {
    let header: Vec<&str> = metadata.lines().take_while(|l| !l.is_empty()).collect();
    let field =
        |key: &str| header.iter().find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(':'))).map(|v| v.trim().to_owned());
    field("License-Expression")
        .or_else(|| field("License"))
        .filter(|v| !v.is_empty() && v.len() <= 200 && !v.eq_ignore_ascii_case("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licences_from_metadata() {
        assert_eq!(
            metadata_license("Metadata-Version: 2.4\nName: x\nLicense-Expression: Apache-2.0\n\nLicense: body"),
            Some("Apache-2.0".into())
        );
        assert_eq!(metadata_license("Name: x\nLicense: Apache-2.0\n"), Some("Apache-2.0".into()));
        assert_eq!(metadata_license("Name: x\n\nLicense-Expression: MIT\n"), None, "the body is not the header");
        assert_eq!(metadata_license("Name: x\nLicense: UNKNOWN\n"), None);
    }
}
