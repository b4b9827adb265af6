//! The oldest Linux a released plugin must run on, as a manylinux tag
//! (PEP 600): the highest symbol versions it may require from the system's
//! glibc, libstdc++, libgcc_s and zlib, and the libraries such a system
//! provides.
//!
//! The numbers are the x86_64 / aarch64 columns of auditwheel's
//! `manylinux-policy.json` (pypa/auditwheel, read 2026): for each tag, the
//! newest version of each symbol family the tag's reference distribution
//! ships. aarch64 has no glibc before 2.17; every cap here is a maximum, so
//! the same numbers hold for both architectures.

use std::fmt;

/// A supported floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floor {
    pub tag: &'static str,
    /// Highest allowed version of each versioned-symbol family.
    pub caps: &'static [(&'static str, &'static str)],
    /// Non-numeric versions of a family that every system of the tag has
    /// (`CXXABI_TM_1`); anything else non-numeric (`GLIBC_PRIVATE`) is refused.
    pub named: &'static [&'static str],
}

/// Libraries every manylinux system provides (auditwheel's `lib_whitelist`
/// for manylinux_2_24 and later), plus the dynamic loaders, which a shared
/// library may name but never bundles.
pub const SYSTEM_LIBRARIES: &[&str] = &[
    "libatomic.so.1",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libm.so.6",
    "libmvec.so.1",
    "libanl.so.1",
    "libdl.so.2",
    "librt.so.1",
    "libc.so.6",
    "libnsl.so.1",
    "libutil.so.1",
    "libpthread.so.0",
    "libX11.so.6",
    "libXext.so.6",
    "libXrender.so.1",
    "libICE.so.6",
    "libSM.so.6",
    "libGL.so.1",
    "libgobject-2.0.so.0",
    "libgthread-2.0.so.0",
    "libglib-2.0.so.0",
    "libresolv.so.2",
    "libexpat.so.1",
    "libz.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];

/// The floors `[release] glibc_floor` may name, oldest first.
pub const FLOORS: &[Floor] = &[
    Floor {
        tag: "manylinux_2_17",
        caps: &[("GLIBC", "2.17"), ("GLIBCXX", "3.4.19"), ("CXXABI", "1.3.7"), ("GCC", "4.8.0"), ("ZLIB", "1.2.5.2")],
        named: &["TM_1"],
    },
    Floor {
        tag: "manylinux_2_27",
        caps: &[("GLIBC", "2.27"), ("GLIBCXX", "3.4.24"), ("CXXABI", "1.3.11"), ("GCC", "7.0.0"), ("ZLIB", "1.2.9")],
        named: &["TM_1", "FLOAT128"],
    },
    Floor {
        tag: "manylinux_2_28",
        caps: &[("GLIBC", "2.28"), ("GLIBCXX", "3.4.24"), ("CXXABI", "1.3.11"), ("GCC", "7.0.0"), ("ZLIB", "1.2.9")],
        named: &["TM_1", "FLOAT128"],
    },
    Floor {
        tag: "manylinux_2_31",
        caps: &[("GLIBC", "2.31"), ("GLIBCXX", "3.4.28"), ("CXXABI", "1.3.12"), ("GCC", "7.0.0"), ("ZLIB", "1.2.9")],
        named: &["TM_1", "FLOAT128"],
    },
    Floor {
        tag: "manylinux_2_34",
        caps: &[("GLIBC", "2.34"), ("GLIBCXX", "3.4.29"), ("CXXABI", "1.3.13"), ("GCC", "7.0.0"), ("ZLIB", "1.2.9")],
        named: &["TM_1", "FLOAT128"],
    },
];

/// The default floor: jax's wheels are manylinux_2_27.
pub const DEFAULT_FLOOR: &str = "manylinux_2_27";

impl Floor {
    /// The floor named `tag`, or an error listing the known ones.
    pub fn named(tag: &str) -> Result<Floor, String> {
        FLOORS.iter().copied().find(|f| f.tag == tag).ok_or_else(|| {
            let known: Vec<&str> = FLOORS.iter().map(|f| f.tag).collect();
            format!("`{tag}` is not a supported glibc floor (supported: {})", known.join(", "))
        })
    }

    /// Whether a system of this floor provides a symbol version
    /// `FAMILY_VERSION` (`GLIBC_2.27`). `None` when the family is not one the
    /// floor constrains (a bundled library's own versions).
    pub fn allows(&self, version: &str) -> Option<bool> {
        let (family, number) = split_version(version)?;
        let cap = self.caps.iter().find(|(f, _)| *f == family).map(|(_, cap)| *cap)?;
        Some(match parse_dotted(number) {
            Some(n) => n <= parse_dotted(cap).expect("caps are numeric"),
            None => self.named.contains(&number),
        })
    }

    /// The families this floor constrains.
    pub fn families(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.caps.iter().map(|(f, _)| *f)
    }

    pub fn cap(&self, family: &str) -> Option<&'static str> {
        self.caps.iter().find(|(f, _)| *f == family).map(|(_, c)| *c)
    }
}

impl fmt::Display for Floor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag)
    }
}

/// `GLIBC_2.27` -> (`GLIBC`, `2.27`); `CXXABI_TM_1` -> (`CXXABI`, `TM_1`).
/// The family is the longest known prefix, so `GLIBCXX_3.4` is not GLIBC.
pub fn split_version(version: &str) -> Option<(&str, &str)> {
    const FAMILIES: &[&str] = &["GLIBCXX", "GLIBC", "CXXABI", "GCC", "ZLIB"];
    FAMILIES.iter().find_map(|family| version.strip_prefix(family)?.strip_prefix('_').map(|rest| (*family, rest)))
}

/// `2.27` -> [2, 27]; None when not purely numeric.
pub fn parse_dotted(s: &str) -> Option<Vec<u32>> {
    s.split('.').map(|p| p.parse().ok()).collect()
}

/// Compares two dotted versions numerically (`3.4.9` < `3.4.10`); a
/// non-numeric one sorts before every numeric one.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    parse_dotted(a).cmp(&parse_dotted(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps() {
        let f = Floor::named("manylinux_2_27").unwrap();
        assert_eq!(f.allows("GLIBC_2.27"), Some(true));
        assert_eq!(f.allows("GLIBC_2.2.5"), Some(true));
        assert_eq!(f.allows("GLIBC_2.28"), Some(false));
        assert_eq!(f.allows("GLIBC_2.34"), Some(false));
        assert_eq!(f.allows("GLIBCXX_3.4.24"), Some(true));
        assert_eq!(f.allows("GLIBCXX_3.4.25"), Some(false));
        assert_eq!(f.allows("GLIBCXX_3.4.9"), Some(true));
        assert_eq!(f.allows("CXXABI_1.3.11"), Some(true));
        assert_eq!(f.allows("CXXABI_1.3.12"), Some(false));
        assert_eq!(f.allows("CXXABI_TM_1"), Some(true));
        assert_eq!(f.allows("GLIBC_PRIVATE"), Some(false));
        assert_eq!(f.allows("GCC_7.0.0"), Some(true));
        assert_eq!(f.allows("GCC_12.0.0"), Some(false));
        assert_eq!(f.allows("CUDA_12"), None);
        let old = Floor::named("manylinux_2_17").unwrap();
        assert_eq!(old.allows("CXXABI_FLOAT128"), Some(false));
        assert!(Floor::named("manylinux_2_99").unwrap_err().contains("manylinux_2_27"));
        assert_eq!(compare_versions("3.4.9", "3.4.10"), std::cmp::Ordering::Less);
    }
}
