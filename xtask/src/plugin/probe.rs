//! The PJRT C API version a plugin reports: `GetPjrtApi()->pjrt_api_version`.
//!
//! Only the start of `PJRT_Api` is read, the part that never changes:
//! `{ size_t struct_size; void* extension_start;
//!    PJRT_Api_Version { size_t struct_size; void* extension_start;
//!                       int major_version; int minor_version; } ... }`.
//! Loading runs the plugin's static initialisers, and a plugin may abort in
//! them; `probe` therefore loads it in a child process (`cargo xtask
//! prebuilt api-version LIB`) whenever the running program is the xtask.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

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

/// How long a plugin may take to load and answer `GetPjrtApi()` before the
/// child process loading it is killed (a plugin may wait forever in its
/// initialisers, e.g. for a device).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// Reads the version, isolating the plugin in a child process when this
/// program is the xtask binary. The error is the loader's own reason.
pub fn probe(library: &Path) -> Result<String> {
    let exe = std::env::current_exe().ok().filter(|e| e.file_stem().is_some_and(|s| s == "xtask"));
    let Some(exe) = exe else {
        return read_in_process(library);
    };
    probe_in_child(&exe, library, PROBE_TIMEOUT)
}

/// Reads the version in a child process (`XTASK prebuilt api-version
/// LIBRARY`), killed after `timeout`.
pub fn probe_in_child(xtask: &Path, library: &Path, timeout: Duration) -> Result<String> {
    let mut child = std::process::Command::new(xtask)
        .args(["prebuilt", "api-version"])
        .arg(library)
        .env_remove(crate::project::ROOT_ENV)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run the xtask to load the plugin")?;
    // Read both pipes on threads, so a chatty plugin cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for the plugin loader")? {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "loading {} did not finish within {} s (GetPjrtApi or the plugin's initialisers never returned); the loader was killed",
                library.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::process::Output { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() };
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
