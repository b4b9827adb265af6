//! The portability rules a released plugin must pass, judged from its ELF
//! alone (nothing is loaded): where it looks for libraries, which libraries
//! it needs, and which symbol versions it needs from the system.
//!
//! - every DT_RUNPATH / DT_RPATH entry is `$ORIGIN` (the archive's `lib/`):
//!   never the Nix store, a build directory or any other absolute path, and
//!   never a relative path that leaves the archive;
//! - every DT_NEEDED library is bundled next to the plugin (and then the
//!   search path holds `$ORIGIN`), or one every system of the floor provides;
//! - every GLIBC / GLIBCXX / CXXABI / GCC / ZLIB version it requires from a
//!   system library exists on the floor (a plugin over the floor is refused,
//!   naming the versions and the symbols that need them);
//! - the plugin exports `GetPjrtApi`.

use std::collections::BTreeMap;

use serde::Serialize;

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

/// Judges `elf`. `bundled` names the libraries shipped in the same
/// directory; `extra_system` the ones `[release] system_libraries` allows.
/// Returns what was found and the problems (empty: it passes).
pub fn check(elf: &ElfInfo, floor: &Floor, is_plugin: bool, bundled: &[String], extra_system: &[String]) -> (Portability, Vec<String>) {
    let mut problems = Vec::new();
    let is_bundled = |lib: &str| bundled.iter().any(|b| b == lib);
    let is_system = |lib: &str| SYSTEM_LIBRARIES.contains(&lib) || extra_system.iter().any(|e| e == lib);

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
        if is_bundled(lib) {
            bundled_needed.push(lib.clone());
        } else if !is_system(lib) {
            problems.push(format!(
                "needs `{lib}`, which is neither bundled next to it nor provided by every {floor} system \
                 (ship it in the input's lib/, or list it in [release] system_libraries if every target system has it)"
            ));
        }
    }
    if !bundled_needed.is_empty() && !elf.search_path().iter().any(|e| *e == "$ORIGIN" || *e == "${ORIGIN}") {
        problems.push(format!("needs the bundled {} but its RUNPATH does not hold $ORIGIN", bundled_needed.join(", ")));
    }

    let mut max_versions: BTreeMap<String, String> = BTreeMap::new();
    for req in &elf.requirements {
        if is_bundled(&req.library) {
            continue;
        }
        let Some((family, number)) = split_version(&req.version) else { continue };
        match floor.allows(&req.version) {
            None => continue,
            Some(true) => {}
            Some(false) => {
                let cap = floor.cap(family).unwrap_or("?");
                let mut symbols = req.symbols.iter().take(SYMBOLS_NAMED).map(String::as_str).collect::<Vec<_>>().join(", ");
                if req.symbols.len() > SYMBOLS_NAMED {
                    symbols.push_str(&format!(" and {} more", req.symbols.len() - SYMBOLS_NAMED));
                }
                let used_by = if symbols.is_empty() { "required by the version table".to_owned() } else { format!("for {symbols}") };
                problems.push(format!(
                    "needs {} from {} ({used_by}), newer than {floor} provides ({family} up to {family}_{cap})",
                    req.version, req.library
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
    elf.needed.iter().any(|n| bundled.contains(n)).then_some("$ORIGIN")
}
