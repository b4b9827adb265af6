//! `prebuilt update`'s runtime pins: the NVIDIA wheels a GPU plugin's own
//! release pairs with it, and the release of each that gets pinned.
//!
//! The pairing is PyPI metadata: `jax-cuda12-plugin==V` requires
//! `jax-cuda12-pjrt==V` and lists, under its `with-cuda` extra, the NVIDIA
//! wheels with lower bounds (`nvidia-cublas-cu12>=12.1.3.1`). For each we
//! pin the newest stable release that satisfies the specifier, stays on the
//! major version of its lower bound (the library's soname major:
//! `libcublas.so.12` comes from 12.x, `libcufft.so.11` from cuFFT 11.x; with
//! no lower bound, the plugin's CUDA major) and has a wheel for every Linux
//! system the plugin is pinned for. That is what `pip install
//! jax-cuda12-plugin[with-cuda]` gives on the day of pinning; the lower
//! bounds themselves are too old to use (JAX refuses a CUDA runtime older
//! than the one it was built with). NVSHMEM is the exception: the file
//! pinned in [cudaNN.nvshmem_wheel] (the version XLA builds with, which the
//! Nix packages of the same plugin use) is reused when it satisfies the
//! requirement, so one file has one pin.
//!
//! Frozen once pinned: while the plugin's release stays the same, a wheel
//! already pinned that still satisfies its requirement is kept; only new or
//! unavailable requirements are resolved again.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use pep440_rs::Version;

use crate::pinfile::{Pins, RuntimePin, RuntimeWheel, WheelPin};
use crate::plugin::locate::wheel_cache_path;
use crate::wheels::requirement::{self, normalize_name, Requirement};
use crate::wheels::{download, pypi, wheel};

/// The extra of the paired release that lists a backend's runtime.
fn extra_of(backend: &str) -> Option<&'static str> {
    match backend {
        "cuda12" | "cuda13" => Some("with-cuda"),
        "rocm7" => Some("with-rocm"),
        _ => None,
    }
}

/// The runtime pin of the plugin `name` at `version` (pinned for `systems`),
/// or None for a backend that needs none (CPU, TPU) or a plugin with no
/// paired release (its name does not end in `-pjrt` and none was pinned).
pub(super) fn pin(
    name: &str,
    version: &str,
    backend: &str,
    systems: &[&str],
    existing: Option<&RuntimePin>,
    pins: &Pins,
) -> Result<Option<RuntimePin>> {
    let Some(extra) = extra_of(backend) else { return Ok(None) };
    let paired_with = match (existing, name.strip_suffix("-pjrt")) {
        (Some(e), _) => e.paired_with.clone(),
        (None, Some(stem)) => format!("{stem}-plugin"),
        (None, None) => {
            eprintln!("note: no runtime pinned for {name}: name the PyPI release that lists it in [prebuilt.{name}.runtime] paired_with");
            return Ok(None);
        }
    };
    let systems: Vec<&str> = systems.iter().copied().filter(|s| s.ends_with("-linux")).collect();
    if systems.is_empty() {
        return Ok(None);
    }
    let requirements = paired_requirements(name, version, &paired_with, extra, &systems)?;
    if requirements.is_empty() {
        return Ok(None);
    }
    let existing = existing.filter(|e| e.paired_with == paired_with && e.paired_version == version && e.extra == extra);
    let mut runtime = RuntimePin {
        paired_with: paired_with.clone(),
        paired_version: version.to_owned(),
        extra: extra.to_owned(),
        wheels: BTreeMap::new(),
        unavailable: BTreeMap::new(),
    };
    eprintln!("{name} {version}: runtime from {paired_with} {version} [{extra}]");
    for req in requirements.values() {
        let kept = existing
            .and_then(|e| e.wheels.get(&req.name))
            .filter(|w| w.requirement == req.specifier && w.version.parse::<Version>().is_ok_and(|v| req.allows(&v)));
        let pinned = match kept {
            Some(w) => Ok(w.clone()),
            None => choose(req, backend, &systems, pins),
        };
        match pinned {
            Ok(w) => {
                let how = if kept.is_some() {
                    "kept".to_owned()
                } else if let Some(table) = &w.pinned_in {
                    format!("the file pinned in [{table}]")
                } else {
                    "newest that fits".to_owned()
                };
                eprintln!("  {} {} -> {} ({how})", req.name, display_spec(&req.specifier), w.version);
                runtime.wheels.insert(req.name.clone(), w);
            }
            Err(Unavailable(why)) => {
                eprintln!("  {} {}: not pinned: {why}", req.name, display_spec(&req.specifier));
                runtime.unavailable.insert(req.name.clone(), why);
            }
        }
    }
    Ok(Some(runtime))
}

fn display_spec(spec: &str) -> &str {
    if spec.is_empty() {
        "(any version)"
    } else {
        spec
    }
}

/// The requirements the `extra` of `paired_with` at `version` adds, by
/// project; the same on every system (or an error). Read from the paired
/// release's own wheel METADATA (PyPI's JSON has it only for the latest
/// release, and not on every mirror), downloaded and verified.
fn paired_requirements(
    name: &str,
    version: &str,
    paired_with: &str,
    extra: &str,
    systems: &[&str],
) -> Result<BTreeMap<String, Requirement>> {
    let release = pypi::release(paired_with, Some(version))
        .with_context(|| format!("the runtime of {name} {version} is listed by its paired release, {paired_with} {version}"))?;
    let plugin_version: Version = version.parse().map_err(|e| anyhow::anyhow!("`{version}` is not a PEP 440 version: {e}"))?;
    let mut first: Option<(&str, BTreeMap<String, Requirement>)> = None;
    for system in systems {
        let best = release.best_file(system);
        let Some(file) = best else { bail!("{paired_with} {version} has no wheel for {system}: cannot read the runtime it lists there") };
        let path = wheel_cache_path(&file.filename, &file.sha256)?;
        download::fetch_verified(&file.url, &file.sha256, &path)?;
        let metadata = wheel::read_metadata(&path)?;
        let (requirements, extras) =
            requirement::from_metadata(&metadata).with_context(|| format!("in the METADATA of {}", file.filename))?;
        let plugin = normalize_name(name);
        let pairs = requirements.iter().any(|r| r.name == plugin && r.allows(&plugin_version) && r.applies(system, None).unwrap_or(false));
        if !pairs {
            bail!("{paired_with} {version} does not require {name}=={version} (its METADATA); it is not the release that pairs with this plugin");
        }
        if !extras.iter().any(|e| e == extra) {
            bail!("{paired_with} {version} has no extra `{extra}` (its extras: {})", extras.join(", "));
        }
        let mut added = BTreeMap::new();
        for r in requirements {
            if r.applies(system, Some(extra))? && !r.applies(system, None)? {
                added.insert(r.name.clone(), r);
            }
        }
        match &first {
            None => first = Some((system, added)),
            Some((s, earlier)) => {
                let names = |m: &BTreeMap<String, Requirement>| m.iter().map(|(k, r)| format!("{k}{}", r.specifier)).collect::<Vec<_>>();
                if names(earlier) != names(&added) {
                    bail!(
                        "{paired_with} {version} lists another runtime for {system} than for {s} ({} vs {}): not supported",
                        names(&added).join(" "),
                        names(earlier).join(" ")
                    );
                }
            }
        }
    }
    Ok(first.map(|(_, m)| m).unwrap_or_default())
}

/// Why nothing could be pinned for a requirement.
struct Unavailable(String);

/// The release of `req` to pin (see the module comment).
fn choose(req: &Requirement, backend: &str, systems: &[&str], pins: &Pins) -> std::result::Result<RuntimeWheel, Unavailable> {
    let cuda = match backend {
        "cuda12" => pins.cuda12.as_ref().map(|c| ("cuda12", c)),
        "cuda13" => pins.cuda13.as_ref().map(|c| ("cuda13", c)),
        _ => None,
    };
    if let Some((table, c)) = cuda {
        let shared = format!("nvidia-nvshmem-cu{}", &table[4..]);
        let fits = c.nvshmem_version.parse::<Version>().is_ok_and(|v| req.allows(&v));
        let covers = systems.iter().all(|s| c.nvshmem_wheel.contains_key(*s));
        if req.name == shared && fits && covers {
            return Ok(RuntimeWheel {
                requirement: req.specifier.clone(),
                version: c.nvshmem_version.clone(),
                pinned_in: Some(format!("{table}.nvshmem_wheel")),
                platforms: BTreeMap::new(),
            });
        }
    }
    let releases = match pypi::releases(&req.name) {
        Ok(Some(r)) => r,
        Ok(None) => return Err(Unavailable("not on PyPI (no project of that name)".to_owned())),
        Err(e) => return Err(Unavailable(format!("{e:#}"))),
    };
    let major = req.lower_bound_major().or_else(|| backend.strip_prefix("cuda").and_then(|m| m.parse().ok()));
    let mut candidates: Vec<(Version, &pypi::Release)> = releases
        .iter()
        .filter_map(|r| r.version.parse::<Version>().ok().map(|v| (v, r)))
        .filter(|(v, _)| v.is_stable())
        .filter(|(v, _)| req.allows(v) && major.is_none_or(|m| v.release().first() == Some(&m)))
        .collect();
    candidates.sort_by(|a, b| b.0.cmp(&a.0));
    for (_, release) in &candidates {
        let mut platforms = BTreeMap::new();
        for system in systems {
            let best = release.best_file(system);
            let Some(file) = best else { break };
            // The same refusals as a plugin's pin, before anything is written.
            if !crate::pinfile::wheel_url_problems(&file.url, &release.version, system).is_empty() {
                break;
            }
            platforms.insert((*system).to_owned(), WheelPin { url: file.url.clone(), sha256: file.sha256.clone() });
        }
        if platforms.len() == systems.len() {
            return Ok(RuntimeWheel { requirement: req.specifier.clone(), version: release.version.clone(), pinned_in: None, platforms });
        }
    }
    let on_major = major.map(|m| format!(" on major version {m}")).unwrap_or_default();
    Err(Unavailable(format!(
        "no stable release of {} satisfies `{}`{on_major} with a wheel for each of {} ({} releases on PyPI)",
        req.name,
        display_spec(&req.specifier),
        systems.join(", "),
        releases.len()
    )))
}
