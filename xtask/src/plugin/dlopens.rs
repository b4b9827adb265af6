//! Libraries a binary opens at run time with `dlopen`, guessed from what
//! is written in it, and how much each guess weighs. A heuristic, and said
//! to be one wherever it is used: the loader never sees these names, so
//! nothing states them; the binary only carries the strings that build them.
//!
//! Two kinds of evidence, both read from the read-only data sections:
//! - a whole library name as a string of its own (`libcuda.so.1`): the
//!   form `dlopen("libcuda.so.1", ...)` leaves behind;
//! - XLA's CUDA stubs (`xla/tsl/cuda/<library>_stub.cc`, kept as a file
//!   name in the binary by its log messages): each stub opens one library
//!   through tsl's `DsoLoader`, whose file name (`lib<name>.so.<major>`)
//!   is assembled at run time and so never appears whole. Which major
//!   depends on the CUDA release the plugin was built for
//!   ([`super::providers::cuda_soname`]).
//!
//! The plugin's own strings speak with full weight: it is the thing
//! diagnosed, and XLA opens what it names. A library the plugin brings is
//! another matter: NVIDIA's libraries carry names they compare, print or
//! open only for features a plugin never asks for (read in the 12.9 wheels:
//! libcupti.so.12 passes `libcudart.so` to `strstr` against the
//! `basename` of `dladdr` on stack frames, a module filter; it and its perf
//! libraries name EGL, GLX, OpenCL, Vulkan SC and OptiX libraries for
//! tracing those APIs; NCCL names DOCA and gdrcopy for network features).
//! So a name in a dependency's strings is a [`Claim::Mention`] unless a rule
//! says the library needs it ([`claim`]): one of its own package's parts
//! (cuDNN's sub-libraries, NVRTC's builtins, CUPTI's perf libraries), or the
//! NVIDIA driver, which every CUDA library opens.
//!
//! One more rule, for how names are built ([`file_names`]): cuDNN 9 keeps
//! its sub-libraries' names without their version (`libcudnn_graph.so`)
//! beside the formats `%s.%d.%d.%d`, `%s.%d.%d`, `%s.%d`, and opens
//! `libcudnn_graph.so.9.28.0`, `.9.28`, `.9`, then the bare name
//! (glibc's `LD_DEBUG=libs` on cuDNN 9.28's libcudnn.so.9): a library that
//! carries `%s.%d` and has a versioned soname opens `libX.so.<its major>`
//! for `libX.so` before the bare name.
//! A part named bare that is not there by either name is found as the
//! versioned soname its package ships beside the library
//! ([`versioned_beside`]): runtime wheels ship no bare `.so` development
//! links, and nothing needs one at run time.

use std::collections::BTreeSet;

use serde::Serialize;

use super::ldso::ObjectFile;
use super::providers::{self, Role};

/// A library the binary probably opens, and why it is thought so.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Guess {
    pub name: String,
    pub evidence: String,
}

/// What the strings of one binary say.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Strings {
    /// Whole library names (`libfoo.so`, `libfoo.so.1`).
    pub sonames: BTreeSet<String>,
    /// XLA CUDA stubs linked in, by library (`cudart`, `cudnn`, ...).
    pub xla_cuda_stubs: BTreeSet<String>,
    /// It carries `%s.%d` as a string of its own: the format by which a
    /// library appends its version to the names it opens (cuDNN 9).
    pub appends_version: bool,
}

/// What a library name in the strings of a library the plugin brings (not
/// the plugin's own) is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    /// Its own name (`libcupti.so` in libcupti.so.12): nothing to resolve.
    Itself,
    /// A library of the same package (cuDNN's `libcudnn_graph.so` in
    /// libcudnn.so.9): it opens it, and is broken without it.
    OwnPart,
    /// A library of the NVIDIA driver that CUDA cannot run without
    /// (`libcuda.so.1`), named by a CUDA library: every one opens it.
    Driver,
    /// Only a string: not evidence that it is opened, nor needed.
    Mention,
}

/// The rule for `name`, found among the strings of the library whose soname
/// (or file name) is `namer` (see the module comment).
pub fn claim(name: &str, namer: &str) -> Claim {
    if providers::stem(name) == providers::stem(namer) {
        return Claim::Itself;
    }
    if providers::package(name).is_some_and(|p| Some(p) == providers::package(namer)) {
        return Claim::OwnPart;
    }
    match providers::lookup(name, &providers::Context::default()) {
        Some(p) if p.nvidia_driver && p.role == Role::Required && providers::is_cuda_library(namer) => Claim::Driver,
        _ => Claim::Mention,
    }
}

/// The major version in a soname (`9` of `libcudnn.so.9.1`), if it has one.
fn major_of(soname: &str) -> Option<&str> {
    soname.split_once(".so.").and_then(|(_, v)| v.split('.').next()).filter(|m| !m.is_empty())
}

/// The file names the library `namer` (its soname or file name) tries, in
/// order, for `name` found among its `strings`: `libX.so.<namer's major>`
/// then `libX.so` when it appends its version to bare names (see the module
/// comment); else `name` alone.
pub fn file_names(name: &str, namer: &str, strings: &Strings) -> Vec<String> {
    match major_of(namer) {
        Some(major) if strings.appends_version && name.ends_with(".so") => vec![format!("{name}.{major}"), name.to_owned()],
        _ => vec![name.to_owned()],
    }
}

/// For a bare `libX.so` a library names as a part of its own package: the
/// versioned sonames of it in the directory `dir` that library sits in
/// (`libcudnn_adv.so.9` beside `libcudnn.so.9`), the one of `namer`'s major
/// first, then the highest. A package's bare `.so` is a development link,
/// which runtime wheels do not ship; the versioned file is the part.
pub fn versioned_beside(name: &str, namer: &str, dir: &std::path::Path) -> Vec<String> {
    if !name.ends_with(".so") {
        return Vec::new();
    }
    let prefix = format!("{name}.");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|f| f.strip_prefix(&prefix).is_some_and(|v| v.split('.').all(|g| !g.is_empty() && g.bytes().all(|c| c.is_ascii_digit()))))
        .collect();
    let version = |f: &str| -> Vec<u64> { f[prefix.len()..].split('.').map(|g| g.parse().unwrap_or(0)).collect() };
    let major = major_of(namer);
    found.sort_by(|a, b| {
        let same = |f: &str| major.is_some() && major_of(f) == major;
        same(b).cmp(&same(a)).then_with(|| version(b).cmp(&version(a)))
    });
    found
}

/// Whether `s` is a whole shared-library file name: `lib` + name + `.so`,
/// then only `.<digits>` groups.
pub fn is_soname(s: &[u8]) -> bool {
    let Some(rest) = s.strip_prefix(b"lib") else { return false };
    let Some(at) = find(rest, b".so") else { return false };
    let (name, tail) = (&rest[..at], &rest[at + 3..]);
    if name.is_empty() || !name.iter().all(|&c| c.is_ascii_alphanumeric() || b"_+-.".contains(&c)) {
        return false;
    }
    tail.is_empty() || (tail[0] == b'.' && tail[1..].split(|&c| c == b'.').all(|g| !g.is_empty() && g.iter().all(u8::is_ascii_digit)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// The NUL-delimited string around `at` in `data`.
fn string_around(data: &[u8], at: usize) -> &[u8] {
    let start = memchr::memrchr(0, &data[..at]).map_or(0, |p| p + 1);
    let end = memchr::memchr(0, &data[at..]).map_or(data.len(), |p| at + p);
    &data[start..end]
}

const STUB_DIR: &[u8] = b"xla/tsl/cuda/";
const STUB_SUFFIX: &[u8] = b"_stub.cc";

/// The format a library appends its version with (see [`Strings::appends_version`]).
const VERSION_FORMAT: &[u8] = b"%s.%d";

/// Scans the read-only data of `object` (sections named `.rodata*`).
pub fn scan(object: &ObjectFile) -> Strings {
    let mut found = Strings::default();
    for section in object.sections.iter().filter(|s| s.name.starts_with(".rodata") && !s.executable) {
        if let Some(data) = object.bytes_of(section) {
            scan_data(data, &mut found);
        }
    }
    found
}

/// Adds what one block of read-only data says to `found`.
pub fn scan_data(data: &[u8], found: &mut Strings) {
    for at in memchr::memmem::find_iter(data, b".so") {
        let s = string_around(data, at);
        if s.len() <= 128 && is_soname(s) {
            found.sonames.insert(String::from_utf8_lossy(s).into_owned());
        }
    }
    for at in memchr::memmem::find_iter(data, STUB_DIR) {
        let rest = &data[at + STUB_DIR.len()..];
        let rest = &rest[..rest.len().min(64)];
        if let Some(end) = find(rest, STUB_SUFFIX) {
            let name = &rest[..end];
            if !name.is_empty() && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                found.xla_cuda_stubs.insert(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    if !found.appends_version {
        found.appends_version = memchr::memmem::find_iter(data, VERSION_FORMAT).any(|at| string_around(data, at) == VERSION_FORMAT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sonames_are_whole_library_file_names() {
        for good in ["libcuda.so.1", "libittnotify.so", "libnvrtc-builtins.so.13.0", "libstdc++.so.6", "libbnxt_re-rdmav34.so"] {
            assert!(is_soname(good.as_bytes()), "{good}");
        }
        for bad in ["libcudart.so.", "cudart", "libfoo.so.1a", "lib.so", "libfoo.so.1.", "see libfoo.so.1", "libfoo.sox"] {
            assert!(!is_soname(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn a_dependency_opens_its_own_parts_and_the_driver_and_merely_names_the_rest() {
        assert_eq!(claim("libcupti.so", "libcupti.so.12"), Claim::Itself);
        assert_eq!(claim("libcudnn_adv.so", "libcudnn.so.9"), Claim::OwnPart);
        assert_eq!(claim("libnvperf_host.so", "libcupti.so.12"), Claim::OwnPart);
        assert_eq!(claim("libnvrtc-builtins.so.12.9", "libnvrtc.so.12"), Claim::OwnPart);
        assert_eq!(claim("libcuda.so.1", "libcupti.so.12"), Claim::Driver);
        assert_eq!(claim("libnvidia-ml.so.1", "libnccl.so.2"), Claim::Driver);
        // Only a CUDA library is known to open the driver.
        assert_eq!(claim("libcuda.so.1", "libsomething.so.3"), Claim::Mention);
        // CUPTI compares `libcudart.so` with the modules on a stack; NCCL
        // names RDMA and DOCA libraries for network features; cuDNN's
        // engines name a profiling library nobody ships.
        for (name, namer) in [
            ("libcudart.so", "libcupti.so.12"),
            ("libEGL_nvidia.so.0", "libcupti.so.12"),
            ("libOpenCL.so.1", "libnvperf_host.so"),
            ("libnvidia-cfg.so.1", "libnvperf_host.so"),
            ("libibverbs.so.1", "libnccl.so.2"),
            ("libdoca_gpunetio.so", "libnccl.so.2"),
            ("libcask_profile_interface.so", "libcudnn_engines_precompiled.so.9"),
        ] {
            assert_eq!(claim(name, namer), Claim::Mention, "{name} in {namer}");
        }
    }

    #[test]
    fn a_library_that_appends_its_major_opens_the_versioned_name_first() {
        let appends = Strings { appends_version: true, ..Strings::default() };
        assert_eq!(file_names("libcudnn_adv.so", "libcudnn.so.9", &appends), ["libcudnn_adv.so.9", "libcudnn_adv.so"]);
        assert_eq!(file_names("libcudnn_adv.so", "libcudnn.so.9", &Strings::default()), ["libcudnn_adv.so"]);
        assert_eq!(file_names("libnvperf_host.so", "libcupti.so", &appends), ["libnvperf_host.so"]);
        assert_eq!(file_names("libfoo.so.3", "libbar.so.9", &appends), ["libfoo.so.3"]);
    }

    #[test]
    fn versioned_sonames_beside_the_namer_its_major_first() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["libpart.so.8", "libpart.so.9", "libpart.so.10.1", "libpart.so.9x", "libpart.so", "libother.so.9"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        assert_eq!(versioned_beside("libpart.so", "libmain.so.9", dir.path()), ["libpart.so.9", "libpart.so.10.1", "libpart.so.8"]);
        assert_eq!(versioned_beside("libpart.so", "libmain.so", dir.path()), ["libpart.so.10.1", "libpart.so.9", "libpart.so.8"]);
        assert!(versioned_beside("libpart.so.9", "libmain.so.9", dir.path()).is_empty());
        assert!(versioned_beside("libnone.so", "libmain.so.9", dir.path()).is_empty());
    }

    #[test]
    fn strings_are_cut_at_nul() {
        let data = b"abc\0libcuda.so.1\0xyz";
        assert_eq!(string_around(data, 10), b"libcuda.so.1");
        assert_eq!(string_around(b"libz.so", 4), b"libz.so");
    }
}
