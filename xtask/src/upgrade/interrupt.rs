//! What an interrupted `upgrade-xla` leaves behind: nothing.
//!
//! SIGINT, SIGTERM and SIGHUP are caught on a thread of their own
//! (`signal-hook`). It records the signal and stops the child processes
//! registered here (`cargo check`); the run notices at the end of the step
//! in progress ([`check`]), unwinds (every staging directory is removed as
//! it is dropped) and exits with 128 + the signal number ([`exit_if_interrupted`]).
//! A commit in progress is finished first (it takes milliseconds), so the
//! project is never left half-written by a signal. If the run has not
//! ended [`GRACE`] later (a long computation), the signal thread removes the
//! registered staging directories itself and exits.
//!
//! SIGKILL cannot be caught: staging directories are named after the
//! process (`pjrtpkgs-upgrade-<what>-<pid>-*`), and the next run removes
//! those of processes that no longer exist ([`sweep_stale`]); the project
//! files themselves are covered by the commit journal (`staging`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

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
/// The signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// How long the run gets to unwind by itself after a signal.
const GRACE: Duration = Duration::from_secs(5);

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
                    for (n, signal) in signals.forever().enumerate() {
                        if n == 0 {
                            on_signal(signal);
                        } else {
                            // A second signal: no more waiting.
                            force_exit();
                        }
                    }
                });
            }
            Err(e) => result = Err(e).context("cannot install the signal handlers that clean up after an interruption"),
        }
    });
    result
}

fn on_signal(signal: i32) {
    RECEIVED.store(signal, Ordering::SeqCst);
    let children = registry().children.clone();
    for pid in children {
        // SAFETY: kill(2) with a pid we spawned; no memory is touched.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    // The run unwinds and exits by itself at the end of its current step;
    // this is the fallback for a step that takes longer.
    std::thread::spawn(|| {
        std::thread::sleep(GRACE);
        force_exit();
    });
}

/// Removes the registered staging directories and exits (after a commit in
/// progress, if any).
fn force_exit() {
    let _commit = COMMIT.lock().unwrap_or_else(|e| e.into_inner());
    let dirs = registry().dirs.clone();
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    exit_if_interrupted();
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "SIGHUP",
    }
}

/// An error once a signal has arrived: ends the run at the end of a step.
pub fn check() -> Result<()> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => Ok(()),
        s => anyhow::bail!("interrupted by {}", signal_name(s)),
    }
}

/// After a signal: exits with 128 + its number. Call once everything that
/// cleans up on drop has been dropped.
pub fn exit_if_interrupted() {
    let signal = RECEIVED.load(Ordering::SeqCst);
    if signal != 0 {
        eprintln!(
            "\nupgrade-xla: interrupted ({}); staging directories removed; the project files are as they were, or fully \
             upgraded if the signal came during the final write",
            signal_name(signal)
        );
        std::process::exit(128 + signal);
    }
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
