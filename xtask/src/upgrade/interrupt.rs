//! What an interrupted `upgrade-xla` leaves behind: nothing.
//!
//! SIGINT, SIGTERM and SIGHUP are caught on a thread of their own
//! (`signal-hook`): it removes the staging directories registered here,
//! stops the child processes registered here (`cargo check`), and exits
//! with 128 + the signal number. A signal that arrives while the project
//! files are being committed waits for the commit to finish (it takes
//! milliseconds), so the project is never left half-written by one.
//!
//! SIGKILL cannot be caught: staging directories are named after the
//! process (`pjrtpkgs-upgrade-<what>-<pid>-*`), and the next run removes
//! those of processes that no longer exist ([`sweep_stale`]); the project
//! files themselves are covered by the commit journal (`staging`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once};

use anyhow::{Context, Result};

struct Registry {
    dirs: Vec<PathBuf>,
    children: Vec<u32>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { dirs: Vec::new(), children: Vec::new() });
/// Held while project files are being committed; the signal thread takes
/// it before exiting.
static COMMIT: Mutex<()> = Mutex::new(());
static INSTALL: Once = Once::new();

const PREFIX: &str = "pjrtpkgs-upgrade-";

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the signal thread (once per process).
pub fn install() -> Result<()> {
    let mut result = Ok(());
    INSTALL.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(mut signals) => {
                std::thread::spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        on_signal(signal);
                    }
                });
            }
            Err(e) => result = Err(e).context("cannot install the signal handlers that clean up after an interruption"),
        }
    });
    result
}

fn on_signal(signal: i32) -> ! {
    // Let a commit in progress finish: the journal makes a crash
    // recoverable, but a clean exit is better than a recovery.
    let _commit = COMMIT.lock().unwrap_or_else(|e| e.into_inner());
    let (dirs, children) = {
        let r = registry();
        (r.dirs.clone(), r.children.clone())
    };
    for pid in children {
        // SAFETY: kill(2) with a pid we spawned; no memory is touched.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    let name = match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "SIGHUP",
    };
    eprintln!("\nupgrade-xla: interrupted ({name}); staging directories removed; the project files are as they were or fully upgraded, never in between");
    std::process::exit(128 + signal)
}

/// Runs `f` (the commit) with signals deferred until it returns.
pub fn commit_section<T>(f: impl FnOnce() -> T) -> T {
    let _g = COMMIT.lock().unwrap_or_else(|e| e.into_inner());
    f()
}

/// A temporary directory removed on drop and on SIGINT/SIGTERM/SIGHUP.
pub struct StagingDir {
    dir: Option<tempfile::TempDir>,
}

impl StagingDir {
    /// `$TMPDIR/pjrtpkgs-upgrade-<what>-<pid>-XXXXXX`.
    pub fn new(what: &str) -> Result<StagingDir> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{what}-{}-", std::process::id()))
            .tempdir()
            .context("cannot create a staging directory")?;
        registry().dirs.push(dir.path().to_path_buf());
        Ok(StagingDir { dir: Some(dir) })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("present until dropped").path()
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            registry().dirs.retain(|d| d != dir.path());
            let _ = dir.close();
        }
    }
}

/// Runs `cmd` to completion like `Command::output`, with the child stopped
/// if this process is interrupted.
pub fn output(cmd: &mut std::process::Command) -> std::io::Result<std::process::Output> {
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn()?;
    let pid = child.id();
    registry().children.push(pid);
    let out = child.wait_with_output();
    registry().children.retain(|p| *p != pid);
    out
}

/// Removes the staging directories of `upgrade-xla` runs that died without
/// cleaning up (SIGKILL, power loss): those in the temporary directory that
/// belong to this user and name a process that no longer exists.
pub fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    // SAFETY: getuid(2) cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(stale_pid) else { continue };
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else { continue };
        if !meta.is_dir() || std::os::unix::fs::MetadataExt::uid(&meta) != uid || process_exists(pid) {
            continue;
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

/// The pid in `pjrtpkgs-upgrade-<what>-<pid>-<random>`.
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.split('-');
    let _what = parts.next()?;
    parts.next()?.parse().ok()
}

fn process_exists(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_names() {
        assert_eq!(stale_pid("pjrtpkgs-upgrade-compile-1234-AbC123"), Some(1234));
        assert_eq!(stale_pid("pjrtpkgs-upgrade-nix-77-x"), Some(77));
        assert_eq!(stale_pid("pjrtpkgs-upgrade-compile-AbC"), None);
        assert_eq!(stale_pid("other-1-2"), None);
    }
}
