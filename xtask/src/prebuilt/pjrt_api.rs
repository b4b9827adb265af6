//! The PJRT C API version a plugin reports: `GetPjrtApi()->pjrt_api_version`.
//!
//! Only the start of `PJRT_Api` is read, the part that never changes:
//! `{ size_t struct_size; void* extension_start;
//!    PJRT_Api_Version { size_t struct_size; void* extension_start;
//!                       int major_version; int minor_version; } ... }`.
//! Loading runs the plugin's static initialisers, and a plugin may abort in
//! them; `probe` therefore loads it in a child process (`cargo xtask
//! prebuilt api-version LIB`) whenever the running program is the xtask.

use std::path::Path;

use anyhow::{bail, Context, Result};

#[repr(C)]
struct ApiVersion {
    struct_size: usize,
    extension_start: *mut std::ffi::c_void,
    major_version: std::ffi::c_int,
    minor_version: std::ffi::c_int,
}

#[repr(C)]
struct ApiHead {
    struct_size: usize,
    extension_start: *mut std::ffi::c_void,
    pjrt_api_version: ApiVersion,
}

/// Loads `library` in this process (RTLD_LAZY | RTLD_LOCAL) and reads its
/// PJRT API version as "MAJOR.MINOR". The library stays loaded: unloading
/// PJRT plugins is not supported by them.
pub fn read_in_process(library: &Path) -> Result<String> {
    #[cfg(unix)]
    {
        use libloading::os::unix::{Library, RTLD_LAZY, RTLD_LOCAL};
        // SAFETY: loading runs the plugin's initialisers; this is the point of the call.
        let lib = unsafe { Library::open(Some(library), RTLD_LAZY | RTLD_LOCAL) }
            .with_context(|| format!("cannot load {}", library.display()))?;
        // SAFETY: GetPjrtApi is `const PJRT_Api* GetPjrtApi(void)` in every plugin.
        let get: libloading::os::unix::Symbol<unsafe extern "C" fn() -> *const ApiHead> =
            unsafe { lib.get(b"GetPjrtApi\0") }.with_context(|| format!("{} does not export GetPjrtApi", library.display()))?;
        // SAFETY: see above; the pointer is checked before use.
        let api = unsafe { get() };
        if api.is_null() {
            bail!("GetPjrtApi() of {} returned NULL", library.display());
        }
        // SAFETY: non-null and every PJRT_Api starts with these fields.
        let head = unsafe { &*api };
        let min_size = std::mem::size_of::<ApiHead>();
        if head.struct_size < min_size || head.pjrt_api_version.struct_size < std::mem::size_of::<ApiVersion>() {
            bail!("GetPjrtApi() of {} returned a struct too small to hold a version (struct_size {})", library.display(), head.struct_size);
        }
        let version = format!("{}.{}", head.pjrt_api_version.major_version, head.pjrt_api_version.minor_version);
        std::mem::forget(lib);
        Ok(version)
    }
    #[cfg(not(unix))]
    {
        bail!("reading {} needs a Unix host", library.display())
    }
}

/// Reads the version, isolating the plugin in a child process when this
/// program is the xtask binary. The error is the loader's own reason.
pub fn probe(library: &Path) -> Result<String> {
    let exe = std::env::current_exe().ok().filter(|e| e.file_stem().is_some_and(|s| s == "xtask"));
    let Some(exe) = exe else {
        return read_in_process(library);
    };
    let output = std::process::Command::new(exe)
        .args(["prebuilt", "api-version"])
        .arg(library)
        .env_remove(crate::project::ROOT_ENV)
        .output()
        .context("cannot run the xtask to load the plugin")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        if let Some(v) = stdout.lines().last().map(str::trim).filter(|v| !v.is_empty()) {
            return Ok(v.to_owned());
        }
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim().to_owned())
        .unwrap_or_else(|| format!("the loader exited with {}", output.status));
    bail!("{reason}")
}
