//! What the dynamic loader of a floor system (the oldest Linux a release
//! must run on) will do with a released library, as far as a library can
//! be judged from its ELF: which of the libraries it names it will take
//! from the archive and which from the system, and whether every symbol
//! version it requires exists there.
//!
//! glibc's `ld.so`, facts this model rests on (glibc `elf/dl-load.c`,
//! `elf/dl-version.c`):
//! - a DT_NEEDED name is first matched against the libraries already in
//!   the process, by SONAME: a library every process has ([`PRELOADED`])
//!   is never loaded from the archive, whatever lies in its `lib/`, so its
//!   symbol versions are the host's and must be within the floor however
//!   the plugin is packed;
//! - a DT_NEEDED name holding a `/` is opened as that path (relative to
//!   the current directory when relative): never the archive's copy;
//! - every version in `.gnu.version_r` is checked when the library is
//!   opened, against the library of that name in its dependency list: a
//!   version the library does not define fails the load (only a library
//!   with no version definitions at all is let through, with a warning),
//!   and a requirement on a library it does not load is an error;
//! - `DF_1_NOOPEN` makes `dlopen()` refuse the file; a library with the
//!   static TLS model (`DF_STATIC_TLS`) needs a block from the small static
//!   TLS surplus the loader keeps for dlopen()ed libraries (1664 bytes in
//!   glibc before 2.32, shared by every such library; 512 by default since);
//! - the loader accepts an ELF OS ABI of SYSV or GNU, and an ABI version it
//!   knows (0 is what toolchains write).
//!
//! The decision on libstdc++ and libgcc_s: they are treated as loaded in
//! every process too. A binding's host program is C++ (Julia, Python with
//! C++ extensions), or Rust (whose standard library links libgcc_s); there
//! the host's copy wins exactly as libc's does. So a bundled newer
//! libstdc++ never exempts GLIBCXX versions from the floor check, even
//! though a plain C host would load it.
//!
//! The version nodes each system library defines ([`NODES`]) are read from
//! Debian 12's libraries (glibc 2.36, GCC 12, zlib 1.2.13; the arm64
//! packages for aarch64): glibc never removes a node, so the nodes of a
//! floor are those at or below its cap. Numbers glibc skipped (there is no
//! `GLIBC_2.19` in libc.so.6 on x86_64) are refused though they are below
//! the cap. A test checks the x86_64 table against this machine's
//! libraries.

/// Libraries loaded in every process that loads a plugin: glibc's (the
/// dynamic loader itself, libc, and the libraries glibc 2.34 merged into
/// libc, which older glibc programs link), and the C++ runtime (see the
/// module comment).
pub const PRELOADED: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "libstdc++.so.6",
    "libgcc_s.so.1",
];

/// The static TLS a dlopen()ed library may use on every floor (glibc's
/// default `rtld.optional_static_tls` since 2.32; less than the 1664-byte
/// surplus older glibc shares between all such libraries).
pub const MAX_STATIC_TLS: u64 = 512;

/// `(architecture, SONAME, the version nodes it defines)` for the system
/// libraries whose versions the model knows.
pub const NODES: &[(&str, &str, &[&str])] = &[
    (
        "x86_64",
        "libc.so.6",
        &[
            "GLIBC_PRIVATE",
            "GLIBC_ABI_DT_RELR",
            "GLIBC_2.2.5",
            "GLIBC_2.2.6",
            "GLIBC_2.3",
            "GLIBC_2.3.2",
            "GLIBC_2.3.3",
            "GLIBC_2.3.4",
            "GLIBC_2.4",
            "GLIBC_2.5",
            "GLIBC_2.6",
            "GLIBC_2.7",
            "GLIBC_2.8",
            "GLIBC_2.9",
            "GLIBC_2.10",
            "GLIBC_2.11",
            "GLIBC_2.12",
            "GLIBC_2.13",
            "GLIBC_2.14",
            "GLIBC_2.15",
            "GLIBC_2.16",
            "GLIBC_2.17",
            "GLIBC_2.18",
            "GLIBC_2.22",
            "GLIBC_2.23",
            "GLIBC_2.24",
            "GLIBC_2.25",
            "GLIBC_2.26",
            "GLIBC_2.27",
            "GLIBC_2.28",
            "GLIBC_2.29",
            "GLIBC_2.30",
            "GLIBC_2.31",
            "GLIBC_2.32",
            "GLIBC_2.33",
            "GLIBC_2.34",
            "GLIBC_2.35",
            "GLIBC_2.36",
        ],
    ),
    (
        "x86_64",
        "libm.so.6",
        &[
            "GLIBC_2.2.5",
            "GLIBC_2.4",
            "GLIBC_2.15",
            "GLIBC_2.18",
            "GLIBC_2.23",
            "GLIBC_2.24",
            "GLIBC_2.25",
            "GLIBC_2.26",
            "GLIBC_2.27",
            "GLIBC_2.28",
            "GLIBC_2.29",
            "GLIBC_2.31",
            "GLIBC_2.32",
            "GLIBC_2.35",
        ],
    ),
    (
        "x86_64",
        "libpthread.so.0",
        &[
            "GLIBC_2.2.5",
            "GLIBC_2.2.6",
            "GLIBC_2.3.2",
            "GLIBC_2.3.3",
            "GLIBC_2.3.4",
            "GLIBC_2.4",
            "GLIBC_2.11",
            "GLIBC_2.12",
            "GLIBC_2.18",
            "GLIBC_2.28",
            "GLIBC_2.30",
            "GLIBC_2.31",
        ],
    ),
    ("x86_64", "libdl.so.2", &["GLIBC_2.2.5", "GLIBC_2.3.3", "GLIBC_2.3.4"]),
    ("x86_64", "librt.so.1", &["GLIBC_2.2.5", "GLIBC_2.3.3", "GLIBC_2.3.4", "GLIBC_2.4", "GLIBC_2.7"]),
    ("x86_64", "libresolv.so.2", &["GLIBC_PRIVATE", "GLIBC_2.2.5", "GLIBC_2.3.2", "GLIBC_2.9"]),
    ("x86_64", "libutil.so.1", &["GLIBC_2.2.5"]),
    ("x86_64", "libnsl.so.1", &["GLIBC_PRIVATE", "GLIBC_2.2.5"]),
    ("x86_64", "libanl.so.1", &["GLIBC_2.2.5"]),
    ("x86_64", "libmvec.so.1", &["GLIBC_2.22", "GLIBC_2.35"]),
    ("x86_64", "ld-linux-x86-64.so.2", &["GLIBC_PRIVATE", "GLIBC_2.2.5", "GLIBC_2.3", "GLIBC_2.4", "GLIBC_2.34", "GLIBC_2.35"]),
    (
        "x86_64",
        "libstdc++.so.6",
        &[
            "CXXABI_FLOAT128",
            "CXXABI_TM_1",
            "CXXABI_1.3",
            "CXXABI_1.3.1",
            "CXXABI_1.3.2",
            "CXXABI_1.3.3",
            "CXXABI_1.3.4",
            "CXXABI_1.3.5",
            "CXXABI_1.3.6",
            "CXXABI_1.3.7",
            "CXXABI_1.3.8",
            "CXXABI_1.3.9",
            "CXXABI_1.3.10",
            "CXXABI_1.3.11",
            "CXXABI_1.3.12",
            "CXXABI_1.3.13",
            "GLIBCXX_3.4",
            "GLIBCXX_3.4.1",
            "GLIBCXX_3.4.2",
            "GLIBCXX_3.4.3",
            "GLIBCXX_3.4.4",
            "GLIBCXX_3.4.5",
            "GLIBCXX_3.4.6",
            "GLIBCXX_3.4.7",
            "GLIBCXX_3.4.8",
            "GLIBCXX_3.4.9",
            "GLIBCXX_3.4.10",
            "GLIBCXX_3.4.11",
            "GLIBCXX_3.4.12",
            "GLIBCXX_3.4.13",
            "GLIBCXX_3.4.14",
            "GLIBCXX_3.4.15",
            "GLIBCXX_3.4.16",
            "GLIBCXX_3.4.17",
            "GLIBCXX_3.4.18",
            "GLIBCXX_3.4.19",
            "GLIBCXX_3.4.20",
            "GLIBCXX_3.4.21",
            "GLIBCXX_3.4.22",
            "GLIBCXX_3.4.23",
            "GLIBCXX_3.4.24",
            "GLIBCXX_3.4.25",
            "GLIBCXX_3.4.26",
            "GLIBCXX_3.4.27",
            "GLIBCXX_3.4.28",
            "GLIBCXX_3.4.29",
            "GLIBCXX_3.4.30",
        ],
    ),
    (
        "x86_64",
        "libgcc_s.so.1",
        &[
            "GCC_3.0",
            "GCC_3.3",
            "GCC_3.3.1",
            "GCC_3.4",
            "GCC_3.4.2",
            "GCC_3.4.4",
            "GCC_4.0.0",
            "GCC_4.2.0",
            "GCC_4.3.0",
            "GCC_4.7.0",
            "GCC_4.8.0",
            "GCC_7.0.0",
            "GCC_12.0.0",
        ],
    ),
    (
        "x86_64",
        "libz.so.1",
        &[
            "ZLIB_1.2.0",
            "ZLIB_1.2.0.2",
            "ZLIB_1.2.0.8",
            "ZLIB_1.2.2",
            "ZLIB_1.2.2.3",
            "ZLIB_1.2.2.4",
            "ZLIB_1.2.3.3",
            "ZLIB_1.2.3.4",
            "ZLIB_1.2.3.5",
            "ZLIB_1.2.5.1",
            "ZLIB_1.2.5.2",
            "ZLIB_1.2.7.1",
            "ZLIB_1.2.9",
            "ZLIB_1.2.12",
        ],
    ),
    ("x86_64", "libatomic.so.1", &["LIBATOMIC_1.0", "LIBATOMIC_1.1", "LIBATOMIC_1.2"]),
    (
        "aarch64",
        "libc.so.6",
        &[
            "GLIBC_PRIVATE",
            "GLIBC_ABI_DT_RELR",
            "GLIBC_2.17",
            "GLIBC_2.18",
            "GLIBC_2.22",
            "GLIBC_2.23",
            "GLIBC_2.24",
            "GLIBC_2.25",
            "GLIBC_2.26",
            "GLIBC_2.27",
            "GLIBC_2.28",
            "GLIBC_2.29",
            "GLIBC_2.30",
            "GLIBC_2.31",
            "GLIBC_2.32",
            "GLIBC_2.33",
            "GLIBC_2.34",
            "GLIBC_2.35",
            "GLIBC_2.36",
        ],
    ),
    (
        "aarch64",
        "libm.so.6",
        &[
            "GLIBC_2.17",
            "GLIBC_2.18",
            "GLIBC_2.23",
            "GLIBC_2.24",
            "GLIBC_2.25",
            "GLIBC_2.27",
            "GLIBC_2.28",
            "GLIBC_2.29",
            "GLIBC_2.31",
            "GLIBC_2.32",
            "GLIBC_2.35",
        ],
    ),
    ("aarch64", "libpthread.so.0", &["GLIBC_2.17", "GLIBC_2.18", "GLIBC_2.28", "GLIBC_2.30", "GLIBC_2.31"]),
    ("aarch64", "libdl.so.2", &["GLIBC_2.17"]),
    ("aarch64", "librt.so.1", &["GLIBC_2.17"]),
    ("aarch64", "libresolv.so.2", &["GLIBC_PRIVATE", "GLIBC_2.17"]),
    ("aarch64", "libutil.so.1", &["GLIBC_2.17"]),
    ("aarch64", "libnsl.so.1", &["GLIBC_PRIVATE", "GLIBC_2.17"]),
    ("aarch64", "libanl.so.1", &["GLIBC_2.17"]),
    ("aarch64", "ld-linux-aarch64.so.1", &["GLIBC_PRIVATE", "GLIBC_2.17", "GLIBC_2.34", "GLIBC_2.35"]),
    (
        "aarch64",
        "libstdc++.so.6",
        &[
            "CXXABI_TM_1",
            "CXXABI_1.3",
            "CXXABI_1.3.1",
            "CXXABI_1.3.2",
            "CXXABI_1.3.3",
            "CXXABI_1.3.4",
            "CXXABI_1.3.5",
            "CXXABI_1.3.6",
            "CXXABI_1.3.7",
            "CXXABI_1.3.8",
            "CXXABI_1.3.9",
            "CXXABI_1.3.10",
            "CXXABI_1.3.11",
            "CXXABI_1.3.12",
            "CXXABI_1.3.13",
            "GLIBCXX_3.4",
            "GLIBCXX_3.4.1",
            "GLIBCXX_3.4.2",
            "GLIBCXX_3.4.3",
            "GLIBCXX_3.4.4",
            "GLIBCXX_3.4.5",
            "GLIBCXX_3.4.6",
            "GLIBCXX_3.4.7",
            "GLIBCXX_3.4.8",
            "GLIBCXX_3.4.9",
            "GLIBCXX_3.4.10",
            "GLIBCXX_3.4.11",
            "GLIBCXX_3.4.12",
            "GLIBCXX_3.4.13",
            "GLIBCXX_3.4.14",
            "GLIBCXX_3.4.15",
            "GLIBCXX_3.4.16",
            "GLIBCXX_3.4.17",
            "GLIBCXX_3.4.18",
            "GLIBCXX_3.4.19",
            "GLIBCXX_3.4.20",
            "GLIBCXX_3.4.21",
            "GLIBCXX_3.4.22",
            "GLIBCXX_3.4.23",
            "GLIBCXX_3.4.24",
            "GLIBCXX_3.4.25",
            "GLIBCXX_3.4.26",
            "GLIBCXX_3.4.27",
            "GLIBCXX_3.4.28",
            "GLIBCXX_3.4.29",
            "GLIBCXX_3.4.30",
        ],
    ),
    (
        "aarch64",
        "libgcc_s.so.1",
        &[
            "GCC_3.0",
            "GCC_3.3",
            "GCC_3.3.1",
            "GCC_3.4",
            "GCC_3.4.2",
            "GCC_3.4.4",
            "GCC_4.0.0",
            "GCC_4.2.0",
            "GCC_4.3.0",
            "GCC_4.5.0",
            "GCC_4.7.0",
            "GCC_7.0.0",
            "GCC_11.0",
            "GLIBC_2.0",
        ],
    ),
    (
        "aarch64",
        "libz.so.1",
        &[
            "ZLIB_1.2.0",
            "ZLIB_1.2.0.2",
            "ZLIB_1.2.0.8",
            "ZLIB_1.2.2",
            "ZLIB_1.2.2.3",
            "ZLIB_1.2.2.4",
            "ZLIB_1.2.3.3",
            "ZLIB_1.2.3.4",
            "ZLIB_1.2.3.5",
            "ZLIB_1.2.5.1",
            "ZLIB_1.2.5.2",
            "ZLIB_1.2.7.1",
            "ZLIB_1.2.9",
            "ZLIB_1.2.12",
        ],
    ),
    ("aarch64", "libatomic.so.1", &["LIBATOMIC_1.0", "LIBATOMIC_1.1", "LIBATOMIC_1.2"]),
];

/// Whether the library `soname` of an `arch` system defines `version`;
/// `None` when the model does not know that library.
pub fn node_exists(arch: &str, soname: &str, version: &str) -> Option<bool> {
    NODES.iter().find(|(a, s, _)| *a == arch && *s == soname).map(|(_, _, nodes)| nodes.contains(&version))
}

/// Whether every process already has `soname` loaded.
pub fn preloaded(soname: &str) -> bool {
    PRELOADED.contains(&soname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes() {
        assert_eq!(node_exists("x86_64", "libc.so.6", "GLIBC_2.27"), Some(true));
        assert_eq!(node_exists("x86_64", "libc.so.6", "GLIBC_2.19"), Some(false));
        assert_eq!(node_exists("aarch64", "libc.so.6", "GLIBC_2.2.5"), Some(false));
        assert_eq!(node_exists("x86_64", "libc.so.6", "GLIBCXX_3.4"), Some(false));
        assert_eq!(node_exists("x86_64", "libstdc++.so.6", "GLIBCXX_3.4.24"), Some(true));
        assert_eq!(node_exists("x86_64", "libX11.so.6", "X"), None);
        assert!(preloaded("libstdc++.so.6") && !preloaded("libz.so.1"));
    }
}
