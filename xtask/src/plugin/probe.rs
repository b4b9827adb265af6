//! The PJRT C API version a plugin reports: `GetPjrtApi()->pjrt_api_version`.
//!
//! Only the start of `PJRT_Api` is read, the part that never changes:
//! `{ size_t struct_size; void* extension_start;
//!    PJRT_Api_Version { size_t struct_size; void* extension_start;
//!                       int major_version; int minor_version; } ... }`.
//! Loading runs the plugin's static initialisers, and a plugin may abort in
//! them; `probe` therefore loads it in a child process (`cargo xtask
//! prebuilt api-version --answer FILE LIB`) whenever the running program is
//! the xtask, isolated as every plugin child is ([`super::child`]).
//!
//! The answer travels in FILE, a file of the parent's, as one JSON object
//! (`{"version": "0.81"}` or `{"error": "..."}`), never on stdout, which
//! the plugin shares: what a plugin prints (even "0.50" from a destructor)
//! cannot become its version. The child ends with `_exit` right after
//! answering, so the plugin's destructors do not run at all. What the
//! plugin printed is kept only to explain a crash, capped.

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

/// The child's side: reads the version of `library` in this process,
/// writes the answer to `answer` and ends the process at once (the
/// plugin's destructors and atexit handlers never run).
pub fn answer_in_child(library: &Path, answer: &Path) -> Result<std::convert::Infallible> {
    let value = match read_in_process(library) {
        Ok(version) => serde_json::json!({ "version": version }),
        Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
    };
    std::fs::write(answer, value.to_string()).with_context(|| format!("cannot write the answer to {}", answer.display()))?;
    // SAFETY: _exit(2) ends the process without running anything else.
    unsafe { libc::_exit(0) }
}

/// Reads the version in a child process (`XTASK prebuilt api-version
/// --answer FILE LIBRARY`), its whole process group killed after `timeout`
/// and as soon as it has answered.
pub fn probe_in_child(xtask: &Path, library: &Path, timeout: Duration) -> Result<String> {
    let answer = tempfile::Builder::new()
        .prefix("pjrtpkgs-probe-")
        .tempfile()
        .context("cannot create a temporary file for the plugin loader's answer")?;
    let mut command = std::process::Command::new(xtask);
    super::isolation::isolate(&mut command, None);
    command
        .args(["prebuilt", "api-version", "--answer"])
        .arg(answer.path())
        .arg("--")
        .arg(library)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = super::isolation::Isolated::spawn(&mut command).context("cannot run the xtask to load the plugin")?;
    let (stdout, stderr) = child.take_pipes();
    // Both pipes are read (and all but their ends dropped) on threads, so a
    // chatty plugin neither blocks on a full pipe nor fills memory.
    let _stdout = super::isolation::Capture::start(stdout);
    let stderr = super::isolation::Capture::start(stderr);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for the plugin loader")? {
            break status;
        }
        if started.elapsed() > timeout {
            child.kill();
            bail!(
                "loading {} did not finish within {} s (GetPjrtApi or the plugin's initialisers never returned); the loader was killed",
                library.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    std::fs::File::open(answer.path())
        .and_then(|f| f.take(64 << 10).read_to_string(&mut text))
        .context("cannot read the plugin loader's answer")?;
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if let Some(version) = value["version"].as_str() {
        let well_formed = version
            .split_once('.')
            .is_some_and(|(a, b)| [a, b].iter().all(|n| !n.is_empty() && n.len() <= 9 && n.bytes().all(|c| c.is_ascii_digit())));
        if status.success() && well_formed {
            return Ok(version.to_owned());
        }
    }
    if let Some(error) = value["error"].as_str() {
        bail!("{error}");
    }
    let ending = super::child::Ending::of(status).describe();
    let said = super::isolation::tail_of(&stderr.finish(Duration::from_secs(2)), "stderr");
    bail!("the plugin loader {ending} without an answer (in the plugin's initialisers or GetPjrtApi){said}")
}
