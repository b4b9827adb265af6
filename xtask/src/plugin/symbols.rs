//! Symbols and symbol versions, checked the way the loader checks them:
//! every version an object requires (SHT_GNU_VERNEED: `GLIBC_2.34` of
//! `libc.so.6`) must be defined (SHT_GNU_VERDEF) by the library that name
//! resolved to on this machine, and every undefined, non-weak symbol must be
//! defined by some object in the process. Against the libraries actually
//! found here, not against a table of what a glibc release has.

use serde::Serialize;

use super::ldso::Closure;

/// A version an object requires that the library found here lacks.
#[derive(Debug, Clone, Serialize)]
pub struct MissingVersion {
    /// The object that requires it.
    pub object: String,
    /// The library as named (`libc.so.6`) and the file it resolved to.
    pub library: String,
    pub resolved: String,
    /// `GLIBC_2.35`.
    pub version: String,
    /// The newest version of the same family the library defines
    /// (`GLIBC_2.34`), if any.
    pub newest_here: Option<String>,
    /// Undefined symbols bound to that version (a few, for the message).
    pub symbols: Vec<String>,
    /// VER_FLG_WEAK: the loader only warns.
    pub weak: bool,
}

/// An undefined symbol no object defines.
#[derive(Debug, Clone, Serialize)]
pub struct UndefinedSymbol {
    pub object: String,
    pub symbol: String,
}

/// What the check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SymbolReport {
    /// Versions required, all objects together.
    pub versions_checked: usize,
    pub missing_versions: Vec<MissingVersion>,
    /// Libraries without any version definitions that versions are required
    /// of (the loader prints "no version information available").
    pub unversioned: Vec<String>,
    pub symbols_checked: usize,
    pub undefined: Vec<UndefinedSymbol>,
    /// Why the undefined-symbol check did not run, when it did not.
    pub undefined_not_checked: Option<String>,
}

/// `GLIBCXX_3.4.30` -> ("GLIBCXX", [3, 4, 30]).
pub fn split_version(v: &str) -> (&str, Vec<u64>) {
    match v.rsplit_once('_') {
        Some((family, numbers)) if numbers.split('.').all(|n| n.parse::<u64>().is_ok()) => {
            (family, numbers.split('.').map(|n| n.parse().unwrap_or(0)).collect())
        }
        _ => (v, Vec::new()),
    }
}

/// The newest version of `family` in `defs`.
pub fn newest<'a>(defs: &'a [String], family: &str) -> Option<&'a String> {
    defs.iter()
        .filter(|d| split_version(d).0 == family && !split_version(d).1.is_empty())
        .max_by(|a, b| split_version(a).1.cmp(&split_version(b).1))
}

/// Checks every object of `closure` (the loader itself excepted).
pub fn check(closure: &Closure) -> SymbolReport {
    let mut report = SymbolReport::default();
    for (index, loaded) in closure.objects.iter().enumerate().skip(1) {
        let Some(object) = &loaded.object else { continue };
        for need in &object.version_needs {
            report.versions_checked += 1;
            let target = closure
                .requests
                .iter()
                .find(|r| r.from == index && r.name == need.library)
                .and_then(|r| r.object)
                .or_else(|| closure.objects.iter().position(|o| o.names.iter().any(|n| n == &need.library)));
            let Some(target) = target else { continue };
            let Some(lib) = closure.objects[target].object.as_ref() else { continue };
            if lib.version_defs.is_empty() {
                let name = closure.objects[target].path.display().to_string();
                if !report.unversioned.contains(&name) {
                    report.unversioned.push(name);
                }
                continue;
            }
            if !lib.version_defs.iter().any(|d| d == &need.version) {
                let family = split_version(&need.version).0;
                report.missing_versions.push(MissingVersion {
                    object: loaded.display_name(),
                    library: need.library.clone(),
                    resolved: closure.objects[target].path.display().to_string(),
                    version: need.version.clone(),
                    newest_here: newest(&lib.version_defs, family).cloned(),
                    symbols: need.symbols.iter().take(5).cloned().collect(),
                    weak: need.weak,
                });
            }
        }
    }

    let missing_needed = closure.requests.iter().any(|r| r.object.is_none() && r.reason == super::ldso::Reason::Needed);
    if missing_needed {
        report.undefined_not_checked = Some("a library the plugin needs is missing, so its symbols cannot be known".to_owned());
        return report;
    }
    let exports: std::collections::HashSet<&str> =
        closure.objects.iter().filter_map(|o| o.object.as_ref()).flat_map(|o| o.exports.iter().map(String::as_str)).collect();
    for loaded in closure.objects.iter().skip(1) {
        let Some(object) = &loaded.object else { continue };
        for import in object.imports.iter().filter(|i| !i.weak) {
            report.symbols_checked += 1;
            if !exports.contains(import.name.as_str()) {
                report.undefined.push(UndefinedSymbol { object: loaded.display_name(), symbol: import.name.clone() });
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically_within_a_family() {
        let defs: Vec<String> = ["GLIBC_2.2.5", "GLIBC_2.9", "GLIBC_2.34", "GLIBC_PRIVATE", "GLIBCXX_3.4.9"].map(String::from).to_vec();
        assert_eq!(newest(&defs, "GLIBC").unwrap(), "GLIBC_2.34");
        assert_eq!(newest(&defs, "GLIBCXX").unwrap(), "GLIBCXX_3.4.9");
        assert_eq!(newest(&defs, "CXXABI"), None);
        assert_eq!(split_version("GCC_3.0"), ("GCC", vec![3, 0]));
        assert_eq!(split_version("GLIBC_PRIVATE"), ("GLIBC_PRIVATE", vec![]));
    }
}
