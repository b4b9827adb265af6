//! How this machine's dynamic loader is set up: which loader, its default
//! directories, the `glibc-hwcaps` and legacy hwcap subdirectories it
//! searches, `$PLATFORM` and `$LIB`, and its cache.
//!
//! The loader says most of it itself: glibc 2.33 and later answer
//! `ld.so --help` with the system search path, the `glibc-hwcaps`
//! subdirectories this CPU supports in priority order, and the legacy
//! subdirectories (until 2.37). Asking it beats re-deriving the x86-64-v2/v3/v4
//! rules from CPUID. Where it cannot be asked (musl, an older glibc, a
//! statically linked xtask), built-in defaults stand in, and `source` says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cache::{self, LdCache};
use super::object::Ident;

/// The loader's configuration, as `ldso` uses it.
#[derive(Debug, Clone)]
pub struct Host {
    /// The loader (PT_INTERP of this executable), e.g.
    /// `/lib64/ld-linux-x86-64.so.2`: it is in every process already.
    pub interpreter: PathBuf,
    /// The class and machine of this process: what a library must be.
    pub ident: Ident,
    /// The default directories, in order.
    pub system_dirs: Vec<PathBuf>,
    /// Active `glibc-hwcaps` subdirectory names, most preferred first
    /// (`x86-64-v4`, `x86-64-v3`, `x86-64-v2`).
    pub hwcaps: Vec<String>,
    /// Legacy hwcap subdirectories (`tls/x86_64`, ...), in search order,
    /// without the directory itself.
    pub legacy_subdirs: Vec<String>,
    /// What `$PLATFORM` expands to.
    pub platform: String,
    /// What `$LIB` expands to.
    pub lib: String,
    pub cache: LdCache,
    pub cache_path: PathBuf,
    /// The ABI flags of this process's entries in the cache.
    pub cache_flags: Option<i32>,
    /// Where this configuration came from.
    pub source: String,
}

/// What `ld.so --help` says, parsed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HelpText {
    pub system_dirs: Vec<PathBuf>,
    pub uses_cache: bool,
    pub hwcaps: Vec<String>,
    /// Legacy entries marked "searched", in printed order: (name, is AT_PLATFORM).
    pub legacy: Vec<(String, bool)>,
}

/// Parses the part of `ld.so --help` after "Shared library search path:".
pub fn parse_help(text: &str) -> Option<HelpText> {
    #[derive(PartialEq)]
    enum Part {
        None,
        Search,
        Hwcaps,
        Legacy,
    }
    let mut part = Part::None;
    let mut help = HelpText::default();
    let mut seen = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if line.starts_with("Shared library search path") {
            part = Part::Search;
            seen = true;
            continue;
        }
        if line.starts_with("Subdirectories of glibc-hwcaps") {
            part = Part::Hwcaps;
            continue;
        }
        if line.starts_with("Legacy HWCAP subdirectories") {
            part = Part::Legacy;
            continue;
        }
        if !line.starts_with(' ') {
            part = Part::None;
            continue;
        }
        let (name, note) = match trimmed.split_once(" (") {
            Some((name, note)) => (name, note.trim_end_matches(')')),
            None => (trimmed, ""),
        };
        match part {
            Part::Search if note == "system search path" => help.system_dirs.push(PathBuf::from(name)),
            Part::Search if trimmed.contains("ld.so.cache") => help.uses_cache = true,
            Part::Hwcaps if note.contains("searched") => help.hwcaps.push(name.to_owned()),
            Part::Legacy if note.contains("searched") => help.legacy.push((name.to_owned(), note.contains("AT_PLATFORM"))),
            _ => {}
        }
    }
    (seen && !help.system_dirs.is_empty()).then_some(help)
}

/// The legacy subdirectories glibc (2.26 to 2.36) tries under each search
/// directory: every subset of the hwcap names, then the platform, then
/// `tls`, largest first, written from the last element to the first
/// (`tls/x86_64/x86_64`, `tls/x86_64`, ...). The empty subset (the
/// directory itself) is left out.
pub fn legacy_combinations(legacy: &[(String, bool)]) -> Vec<String> {
    let mut elements: Vec<&str> = legacy.iter().filter(|(n, p)| !p && n != "tls").map(|(n, _)| n.as_str()).collect();
    elements.extend(legacy.iter().filter(|(_, p)| *p).map(|(n, _)| n.as_str()));
    elements.extend(legacy.iter().filter(|(n, p)| !p && n == "tls").map(|(n, _)| n.as_str()));
    let n = elements.len().min(8);
    (1..(1u32 << n))
        .rev()
        .map(|mask| (0..n).rev().filter(|i| mask & (1 << i) != 0).map(|i| elements[i]).collect::<Vec<_>>().join("/"))
        .collect()
}

/// `$LIB` from the first system directory: `/lib/x86_64-linux-gnu` gives
/// `lib/x86_64-linux-gnu` (Debian's multiarch), `/lib64` gives `lib64`,
/// `/usr/lib` gives `lib`. Glibc does not print it; this is how
/// distributions configure it.
pub fn lib_token(system_dirs: &[PathBuf]) -> String {
    let Some(first) = system_dirs.first().and_then(|p| p.to_str()) else { return "lib".to_owned() };
    let rel = first.strip_prefix("/usr").unwrap_or(first).trim_start_matches('/').trim_end_matches('/');
    if rel.is_empty() {
        "lib".to_owned()
    } else {
        rel.to_owned()
    }
}

fn auxv_platform() -> Option<String> {
    // SAFETY: getauxval has no preconditions; AT_PLATFORM, when present,
    // points at a NUL-terminated string the kernel placed on the stack,
    // valid for the life of the process.
    let ptr = unsafe { libc::getauxval(libc::AT_PLATFORM) } as *const libc::c_char;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: see above.
    Some(unsafe { std::ffi::CStr::from_ptr(ptr) }.to_string_lossy().into_owned())
}

fn default_interpreter() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "/lib/ld-linux-aarch64.so.1"
    } else {
        "/lib64/ld-linux-x86-64.so.2"
    }
}

impl Host {
    /// This machine's loader, asked (see the module comment).
    pub fn detect() -> Host {
        let exe = super::object::ObjectFile::open(Path::new("/proc/self/exe")).ok();
        let interpreter = exe.as_ref().and_then(|e| e.interpreter.clone()).unwrap_or_else(|| default_interpreter().to_owned());
        let ident = exe.as_ref().map(|e| e.ident).unwrap_or(Ident {
            bits: 64,
            little_endian: cfg!(target_endian = "little"),
            os_abi: 0,
            machine: if cfg!(target_arch = "aarch64") { 183 } else { 62 },
            file_type: 3,
        });
        let help = Command::new(&interpreter)
            .arg("--help")
            .env_remove("LD_LIBRARY_PATH")
            .env_remove("LD_PRELOAD")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| parse_help(&String::from_utf8_lossy(&o.stdout)));
        let (system_dirs, hwcaps, legacy, source) = match help {
            Some(h) => {
                let legacy_subdirs = legacy_combinations(&h.legacy);
                let platform = h.legacy.iter().find(|(_, p)| *p).map(|(n, _)| n.clone());
                (h.system_dirs, h.hwcaps, (legacy_subdirs, platform), format!("`{interpreter} --help`"))
            }
            None => {
                let triplet = if cfg!(target_arch = "aarch64") { "aarch64-linux-gnu" } else { "x86_64-linux-gnu" };
                let dirs: Vec<PathBuf> = [
                    format!("/lib/{triplet}"),
                    format!("/usr/lib/{triplet}"),
                    "/lib64".into(),
                    "/usr/lib64".into(),
                    "/lib".into(),
                    "/usr/lib".into(),
                ]
                .into_iter()
                .map(PathBuf::from)
                .filter(|p| p.is_dir())
                .collect();
                (
                    dirs,
                    Vec::new(),
                    (Vec::new(), None),
                    format!("built-in defaults (`{interpreter} --help` gave no search path: not glibc 2.33 or later?)"),
                )
            }
        };
        let platform = legacy.1.or_else(auxv_platform).unwrap_or_else(|| std::env::consts::ARCH.to_owned());
        let cache_path = PathBuf::from("/etc/ld.so.cache");
        let cache = LdCache::load(&cache_path).unwrap_or_default();
        Host {
            interpreter: PathBuf::from(interpreter),
            ident,
            lib: lib_token(&system_dirs),
            system_dirs,
            hwcaps,
            legacy_subdirs: legacy.0,
            platform,
            cache,
            cache_flags: cache::expected_flags(ident.machine, ident.bits),
            cache_path,
            source,
        }
    }

    /// The subdirectories tried under every search directory, in order:
    /// `glibc-hwcaps/<name>`, the legacy ones, then the directory itself ("").
    pub fn subdirectories(&self) -> Vec<String> {
        let mut subs: Vec<String> = self.hwcaps.iter().map(|h| format!("glibc-hwcaps/{h}")).collect();
        subs.extend(self.legacy_subdirs.iter().cloned());
        subs.push(String::new());
        subs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_12: &str = "Usage: ld.so [OPTION]... EXECUTABLE-FILE [ARGS-FOR-PROGRAM...]\n\
Shared library search path:\n  (libraries located via /etc/ld.so.cache)\n  /lib/x86_64-linux-gnu (system search path)\n  \
/usr/lib/x86_64-linux-gnu (system search path)\n  /lib (system search path)\n  /usr/lib (system search path)\n\n\
Subdirectories of glibc-hwcaps directories, in priority order:\n  x86-64-v4 (supported, searched)\n  x86-64-v3 (supported, searched)\n  \
x86-64-v2 (supported, searched)\n\nLegacy HWCAP subdirectories under library search path directories:\n  \
x86_64 (AT_PLATFORM; supported, searched)\n  tls (supported, searched)\n  avx512_1\n  x86_64 (supported, searched)\n";

    #[test]
    fn reads_debian_12_loader_help() {
        let help = parse_help(DEBIAN_12).unwrap();
        assert!(help.uses_cache);
        assert_eq!(help.system_dirs.len(), 4);
        assert_eq!(help.hwcaps, ["x86-64-v4", "x86-64-v3", "x86-64-v2"]);
        assert_eq!(help.legacy.len(), 3, "avx512_1 is not searched");
        assert_eq!(lib_token(&help.system_dirs), "lib/x86_64-linux-gnu");
        // The order glibc 2.36 prints under LD_DEBUG=libs on that machine.
        assert_eq!(
            legacy_combinations(&help.legacy),
            ["tls/x86_64/x86_64", "tls/x86_64", "tls/x86_64", "tls", "x86_64/x86_64", "x86_64", "x86_64"]
        );
    }

    #[test]
    fn lib_token_follows_the_distribution_layout() {
        assert_eq!(lib_token(&[PathBuf::from("/lib64")]), "lib64");
        assert_eq!(lib_token(&[PathBuf::from("/usr/lib")]), "lib");
        assert_eq!(lib_token(&[]), "lib");
    }

    #[test]
    fn no_search_path_is_no_answer() {
        assert_eq!(parse_help("musl libc (x86_64)\nVersion 1.2.4\n"), None);
    }
}
