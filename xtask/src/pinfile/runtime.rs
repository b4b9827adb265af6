//! [prebuilt.<name>.runtime]: the runtime libraries a GPU plugin's own
//! release pairs with it (the NVIDIA wheels of `jax-cuda12-plugin`'s
//! `with-cuda` extra), pinned for `cargo xtask prebuilt fetch NAME
//! --with-runtime`, and the rules a well-formed table follows. Nix does not
//! read it: the Nix packages take CUDA from nixpkgs (nix/pins.nix).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{WheelPin, SYSTEMS};

/// [prebuilt.<name>.runtime].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimePin {
    /// The PyPI project whose release names the runtime (`jax-cuda12-plugin`).
    pub paired_with: String,
    /// Its release that requires this plugin's pinned version.
    pub paired_version: String,
    /// The extra of that release listing the runtime (`with-cuda`).
    pub extra: String,
    /// The pinned wheels, by normalized PyPI project name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub wheels: BTreeMap<String, RuntimeWheel>,
    /// Requirements nothing could be pinned for -> why (not on PyPI, no
    /// release that fits). `fetch --with-runtime` refuses while any is left.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unavailable: BTreeMap<String, String>,
}

/// [prebuilt.<name>.runtime.wheels.<project>].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeWheel {
    /// The version specifier the paired release gives (`>=12.1.3.1`;
    /// empty: any version).
    pub requirement: String,
    /// The release pinned: see docs/prebuilt.md for how it is chosen.
    pub version: String,
    /// Where the file is pinned when it is pinned elsewhere already:
    /// `cuda12.nvshmem_wheel` (one file, one pin); `platforms` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_in: Option<String>,
    /// By Nix system.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<String, WheelPin>,
}

/// The tables `pinned_in` may name: NVIDIA's NVSHMEM wheels of the Nix layer.
pub const SHARED_WHEEL_TABLES: &[&str] = &["cuda12.nvshmem_wheel", "cuda13.nvshmem_wheel"];

/// The version and the systems of a table `pinned_in` names, when the file has it.
pub(super) type SharedWheels<'a> = &'a dyn Fn(&str) -> Option<(String, Vec<String>)>;

/// The rules of one plugin's runtime table. `key` is `prebuilt.<name>.runtime`,
/// `plugin_systems` the systems the plugin itself is pinned for, `shared` the
/// version and systems of each table `pinned_in` may name (absent when that
/// table is not in the file); `report(key, message)` records an error.
pub(super) fn check(
    runtime: &RuntimePin,
    key: &str,
    plugin_systems: &[&str],
    shared: SharedWheels<'_>,
    report: &mut dyn FnMut(&str, String),
) {
    use crate::wheels::requirement::normalize_name;
    if !super::formats::is_project_name(&runtime.paired_with) {
        report(&format!("{key}.paired_with"), format!("`{}` is not a PyPI project name", runtime.paired_with.escape_debug()));
    }
    if runtime.paired_version.parse::<pep440_rs::Version>().is_err() {
        report(&format!("{key}.paired_version"), format!("`{}` is not a PEP 440 version", runtime.paired_version.escape_debug()));
    }
    if !super::formats::is_project_name(&runtime.extra) {
        report(&format!("{key}.extra"), format!("`{}` is not an extra's name", runtime.extra.escape_debug()));
    }
    if runtime.wheels.is_empty() && runtime.unavailable.is_empty() {
        report(key, "no wheel and nothing unavailable: the paired release lists no runtime; remove the table".to_owned());
    }
    for (project, why) in &runtime.unavailable {
        let k = format!("{key}.unavailable.{}", super::formats::segment(project));
        if !super::formats::is_project_name(project) || normalize_name(project) != *project {
            report(&k, format!("`{}` is not a normalized PyPI project name", project.escape_debug()));
        }
        if why.trim().is_empty() {
            report(&k, "say why nothing could be pinned".to_owned());
        }
        if runtime.wheels.contains_key(project) {
            report(&k, "also pinned under `wheels`".to_owned());
        }
    }
    for (project, w) in &runtime.wheels {
        let k = format!("{key}.wheels.{}", super::formats::segment(project));
        if !super::formats::is_project_name(project) || normalize_name(project) != *project {
            report(&k, format!("`{}` is not a normalized PyPI project name (`{}`)", project.escape_debug(), normalize_name(project)));
        }
        let version = w.version.parse::<pep440_rs::Version>();
        let specifiers = if w.requirement.is_empty() {
            Ok(pep440_rs::VersionSpecifiers::empty())
        } else {
            w.requirement.parse::<pep440_rs::VersionSpecifiers>()
        };
        match (&version, &specifiers) {
            (Err(_), _) => report(&format!("{k}.version"), format!("`{}` is not a PEP 440 version", w.version.escape_debug())),
            (_, Err(e)) => {
                report(&format!("{k}.requirement"), format!("`{}` is not a version specifier: {e}", w.requirement.escape_debug()))
            }
            (Ok(v), Ok(s)) if !s.contains(v) => report(
                &format!("{k}.version"),
                format!("{} does not satisfy the paired release's requirement `{}`", w.version, w.requirement),
            ),
            _ => {}
        }
        match &w.pinned_in {
            Some(table) => {
                if !w.platforms.is_empty() {
                    report(&format!("{k}.platforms"), format!("the file is pinned in [{table}]: pin it once"));
                }
                if !SHARED_WHEEL_TABLES.contains(&table.as_str()) {
                    report(&format!("{k}.pinned_in"), format!("`{table}` is not one of {}", SHARED_WHEEL_TABLES.join(", ")));
                } else if !project.starts_with("nvidia-nvshmem-cu")
                    || !table.starts_with(&format!("cuda{}", &project["nvidia-nvshmem-cu".len()..]))
                {
                    report(&format!("{k}.pinned_in"), format!("[{table}] pins another project than {project}"));
                } else {
                    match shared(table) {
                        None => report(&format!("{k}.pinned_in"), format!("[{table}] is not in pins.toml")),
                        Some((v, systems)) => {
                            if v != w.version {
                                report(&format!("{k}.version"), format!("[{table}] pins version {v}, not {}", w.version));
                            }
                            for s in plugin_systems.iter().filter(|s| !systems.iter().any(|t| t == *s)) {
                                report(
                                    &format!("{k}.pinned_in"),
                                    format!("[{table}] has no wheel for {s}, which the plugin is pinned for"),
                                );
                            }
                        }
                    }
                }
            }
            None => {
                for s in plugin_systems.iter().filter(|s| !w.platforms.contains_key(**s)) {
                    report(&format!("{k}.platforms"), format!("no wheel for {s}, which the plugin is pinned for"));
                }
            }
        }
        for (system, p) in &w.platforms {
            let pk = format!("{k}.platforms.{}", super::formats::segment(system));
            if !SYSTEMS.contains(&system.as_str()) {
                report(&pk, format!("`{system}` is not a known Nix system ({})", SYSTEMS.join(", ")));
            }
            if !super::formats::is_hex_sha256(&p.sha256) {
                report(&format!("{pk}.sha256"), format!("`{}` is not a sha256 in lowercase hex (64 digits)", p.sha256));
            }
            for problem in super::formats::wheel_url_problems(&p.url, &w.version, system) {
                report(&format!("{pk}.url"), problem);
            }
            let file = p.url.rsplit('/').next().unwrap_or("");
            let distribution = crate::wheels::wheel_tags(file).map(|t| normalize_name(&t.distribution));
            if distribution.as_deref().is_some_and(|d| d != project) {
                report(&format!("{pk}.url"), format!("`{file}` is a wheel of another project than {project}"));
            }
        }
    }
}
