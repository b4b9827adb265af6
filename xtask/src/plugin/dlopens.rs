//! Libraries a binary opens at run time with `dlopen`, guessed from what
//! is written in it. A heuristic, and said to be one wherever it is used:
//! the loader never sees these names, so nothing states them; the binary
//! only carries the strings that build them.
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

use std::collections::BTreeSet;

use serde::Serialize;

use super::ldso::ObjectFile;

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

/// Scans the read-only data of `object` (sections named `.rodata*`).
pub fn scan(object: &ObjectFile) -> Strings {
    let mut found = Strings::default();
    for section in object.sections.iter().filter(|s| s.name.starts_with(".rodata") && !s.executable) {
        let Some(data) = object.bytes_of(section) else { continue };
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
    }
    found
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
    fn strings_are_cut_at_nul() {
        let data = b"abc\0libcuda.so.1\0xyz";
        assert_eq!(string_around(data, 10), b"libcuda.so.1");
        assert_eq!(string_around(b"libz.so", 4), b"libz.so");
    }
}
