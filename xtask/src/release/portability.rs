//! The portability rules a released plugin must pass, judged from its ELF
//! alone (nothing is loaded) as the dynamic loader of the floor system
//! would judge it ([`super::loader`]): where it looks for libraries, which
//! copy of each library it gets, and whether every symbol version it needs
//! exists there.
//!
//! - every DT_RUNPATH / DT_RPATH entry is `$ORIGIN` (the archive's `lib/`):
//!   never the Nix store, a build directory or any other absolute path, and
//!   never a relative path that leaves the archive;
//! - every DT_NEEDED library is a plain name (a path is opened as that path
//!   on the user's machine), and is bundled next to the plugin (and then the
//!   search path holds `$ORIGIN`) or one every system of the floor provides;
//! - a library every process already has (libc, libm, libpthread, libdl,
//!   librt, the dynamic loader, libstdc++, libgcc_s) is the host's whatever
//!   is bundled: a bundled copy is refused, and its versions are checked;
//! - every version required from a system library exists there on the
//!   floor: a node of that library (no `GLIBC_2.19` in libc), of a family
//!   within the floor's cap (a plugin over the floor is refused, naming the
//!   versions and the symbols that need them); a version required from a
//!   bundled library is one it defines;
//! - it can be dlopen()ed (no `DF_1_NOOPEN`, static TLS within what the
//!   loader keeps for dlopen), with an OS ABI the loader takes;
//! - the plugin exports `GetPjrtApi`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::loader;
use crate::glibc_floor::{compare_versions, split_version, Floor, SYSTEM_LIBRARIES};
use crate::plugin::elf::ElfInfo;

/// How many symbols a refusal names per version before summarising.
const SYMBOLS_NAMED: usize = 8;

/// What the check found; recorded in version_info.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Portability {
    pub glibc_floor: String,
    pub needed: Vec<String>,
    /// The NEEDED libraries shipped next to the plugin.
    pub bundled: Vec<String>,
    /// DT_RUNPATH as archived (`$ORIGIN`, or none).
    pub runpath: Option<String>,
    /// The highest version of each family required from system libraries.
    pub max_versions: BTreeMap<String, String>,
}

/// A library shipped in the same directory (the archive's `lib/`), by the
/// name the loader looks for, with its ELF when it could be read.
pub struct Neighbor<'a> {
    pub name: &'a str,
    pub elf: Option<&'a ElfInfo>,
}

/// Judges `elf`. `bundled` are the libraries shipped in the same
/// directory; `extra_system` the ones `[release] system_libraries` allows.
/// Returns what was found and the problems (empty: it passes).
pub fn check(elf: &ElfInfo, floor: &Floor, is_plugin: bool, bundled: &[Neighbor], extra_system: &[String]) -> (Portability, Vec<String>) {
    let mut problems = Vec::new();
    let arch = elf.arch.name();
    let neighbor = |lib: &str| bundled.iter().find(|b| b.name == lib);
    let is_system = |lib: &str| SYSTEM_LIBRARIES.contains(&lib) || extra_system.iter().any(|e| e == lib);
    // What the loader will use: the archive's copy of a plain, bundled name
    // that no process has loaded already.
    let from_archive = |lib: &str| !lib.contains('/') && !loader::preloaded(lib) && neighbor(lib).is_some();

    if ![0, 3].contains(&elf.os_abi) {
        problems.push(format!("its ELF OS ABI is {}, not System V (0) or GNU/Linux (3): the loader refuses it", elf.os_abi));
    }
    if elf.abi_version != 0 {
        problems.push(format!("its ELF ABI version is {}, not 0: a floor loader may not know it", elf.abi_version));
    }
    if elf.no_dlopen {
        problems.push("it is marked DF_1_NOOPEN (linked with -z nodlopen): dlopen() refuses it".to_owned());
    }
    if let Some(size) = elf.static_tls.filter(|s| *s > loader::MAX_STATIC_TLS) {
        problems.push(format!(
            "it uses {size} bytes of static TLS (DF_STATIC_TLS), more than the {} a dlopen()ed library can count on \
             (\"cannot allocate memory in static TLS block\"): build it with -ftls-model=global-dynamic",
            loader::MAX_STATIC_TLS
        ));
    }

    for entry in elf.search_path() {
        let origin = entry == "$ORIGIN" || entry == "${ORIGIN}";
        if origin {
            continue;
        }
        let what = if entry.starts_with("/nix/store/") {
            "points into the Nix store, which the user's machine does not have"
        } else if entry.starts_with('/') {
            "is an absolute path of the build machine"
        } else if entry.is_empty() {
            "is empty (the current directory)"
        } else {
            "is not $ORIGIN: it points outside the archive's lib/"
        };
        let in_runpath = elf.runpath.as_deref().is_some_and(|p| p.split(':').any(|e| e == entry));
        let kind = if in_runpath { "RUNPATH" } else { "RPATH" };
        problems.push(format!("{kind} entry `{entry}` {what}"));
    }

    let mut bundled_needed = Vec::new();
    for lib in &elf.needed {
        if lib.contains('/') {
            problems.push(format!(
                "needs `{lib}` by path: the loader opens that very path on the user's machine, never the archive's copy \
                 (link against the library's SONAME, a plain name, and ship it in lib/)"
            ));
        } else if loader::preloaded(lib) {
            // The host's copy, checked below; a bundled one is refused once, by the plugin.
        } else if from_archive(lib) {
            bundled_needed.push(lib.clone());
            if let Some(other) = neighbor(lib).and_then(|n| n.elf).filter(|n| n.arch != elf.arch) {
                problems.push(format!("needs `{lib}`, but the bundled one is built for {}, not {arch}", other.arch.name()));
            }
        } else if !is_system(lib) {
            problems.push(format!(
                "needs `{lib}`, which is neither bundled next to it nor provided by every {floor} system \
                 (ship it in the input's lib/, or list it in [release] system_libraries if every target system has it)"
            ));
        }
    }
    if is_plugin {
        for b in bundled.iter().filter(|b| loader::preloaded(b.name)) {
            problems.push(format!(
                "lib/{} would never be loaded: every process already has {} (the loader reuses the copy it has, matched \
                 by its SONAME), so the plugin gets the host's, with the host's symbol versions; remove it from the input",
                b.name, b.name
            ));
        }
    }
    if !bundled_needed.is_empty() && !elf.search_path().iter().any(|e| *e == "$ORIGIN" || *e == "${ORIGIN}") {
        problems.push(format!("needs the bundled {} but its RUNPATH does not hold $ORIGIN", bundled_needed.join(", ")));
    }

    let mut max_versions: BTreeMap<String, String> = BTreeMap::new();
    for req in &elf.requirements {
        let lib = req.library.as_str();
        let symbols = || {
            let mut text = req.symbols.iter().take(SYMBOLS_NAMED).map(String::as_str).collect::<Vec<_>>().join(", ");
            if req.symbols.len() > SYMBOLS_NAMED {
                text.push_str(&format!(" and {} more", req.symbols.len() - SYMBOLS_NAMED));
            }
            if text.is_empty() {
                "required by the version table".to_owned()
            } else {
                format!("for {text}")
            }
        };
        if req.bad_hash {
            problems.push(format!(
                "its version table is corrupt: the hash recorded for {} (from {lib}) is not that name's, so the loader finds it nowhere",
                req.version
            ));
            continue;
        }
        if !elf.needed.iter().any(|n| n == lib) && !loader::preloaded(lib) {
            problems.push(format!(
                "requires {} from {lib} ({}), a library it does not load: the loader refuses it",
                req.version,
                symbols()
            ));
            continue;
        }
        if from_archive(lib) {
            // The archive's copy answers, when it defines versions at all.
            let defined = neighbor(lib).and_then(|n| n.elf).map(|e| e.defined_versions.as_slice()).unwrap_or(&[]);
            if !defined.is_empty() && !defined.contains(&req.version) {
                problems.push(format!(
                    "requires {} from the bundled {lib} ({}), which does not define it (it defines {}): the loader refuses it",
                    req.version,
                    symbols(),
                    defined.join(", ")
                ));
            }
            // A bundled library a system may also have loaded (libz, libexpat...) may be the host's.
            if !is_system(lib) {
                continue;
            }
        }
        let split = split_version(&req.version);
        let allowed = floor.allows(&req.version);
        if req.version.ends_with("_PRIVATE") {
            problems.push(format!(
                "needs {} from {lib} ({}): glibc's private interface, different in every glibc build; no other system has it",
                req.version,
                symbols()
            ));
            continue;
        }
        if loader::node_exists(arch, lib, &req.version) == Some(false) {
            let why = if allowed == Some(true) {
                format!("no {floor} {arch} system has that version of it")
            } else {
                format!("{lib} has no such version")
            };
            problems.push(format!("needs {} from {lib} ({}): {why}", req.version, symbols()));
            continue;
        }
        let Some((family, number)) = split else { continue };
        match allowed {
            None => continue,
            Some(true) => {}
            Some(false) => {
                let cap = floor.cap(family).unwrap_or("?");
                problems.push(format!(
                    "needs {} from {lib} ({}), newer than {floor} provides ({family} up to {family}_{cap})",
                    req.version,
                    symbols()
                ));
            }
        }
        if crate::glibc_floor::parse_dotted(number).is_some() {
            let entry = max_versions.entry(family.to_owned()).or_insert_with(|| number.to_owned());
            if compare_versions(number, entry).is_gt() {
                *entry = number.to_owned();
            }
        }
    }

    if is_plugin && !elf.exports_get_pjrt_api {
        problems.push("does not export GetPjrtApi: not a PJRT plugin".to_owned());
    }

    let portability = Portability {
        glibc_floor: floor.tag.to_owned(),
        needed: elf.needed.clone(),
        bundled: bundled_needed,
        runpath: elf.runpath.clone(),
        max_versions: max_versions.into_iter().map(|(f, v)| (f.clone(), format!("{f}_{v}"))).collect(),
    };
    (portability, problems)
}

/// The search path a released file gets: `$ORIGIN` when it needs a library
/// bundled next to it, else none.
pub fn wanted_search_path(elf: &ElfInfo, bundled: &[String]) -> Option<&'static str> {
    elf.needed.iter().any(|n| bundled.contains(n) && !loader::preloaded(n)).then_some("$ORIGIN")
}
