//! Where a release is written before it is moved into place: a directory
//! `.release-<pid>-XXXXXX` beside `--out`, so the final rename stays on one
//! file system and a refused or failed release leaves nothing behind.
//!
//! Nothing is left by an interrupted one either: SIGINT, SIGTERM and SIGHUP
//! are caught on a thread of their own (`signal-hook`) that removes the
//! staging directory and exits with 128 + the signal. SIGKILL (or a power
//! cut) cannot be caught: the next release sweeps the staging directories
//! beside its `--out` whose process no longer exists ([`sweep_stale`]), as
//! `upgrade-xla` sweeps its own.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use anyhow::{Context, Result};

const PREFIX: &str = ".release-";

/// The staging directories of this process, removed on a signal.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// A staging directory, removed when dropped (unless [`Staging::keep`]).
pub struct Staging {
    dir: Option<tempfile::TempDir>,
}

impl Staging {
    /// `.release-<pid>-XXXXXX` in `parent`.
    pub fn create(parent: &Path) -> Result<Staging> {
        install_signal_thread();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .tempdir_in(parent)
            .with_context(|| format!("cannot create a staging directory in {}", parent.display()))?;
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(dir.path().to_path_buf());
        Ok(Staging { dir: Some(dir) })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("present until kept or dropped").path()
    }

    /// Gives the directory up to the caller (it has been moved into place).
    pub fn keep(mut self) -> PathBuf {
        let dir = self.dir.take().expect("present until kept or dropped");
        forget(dir.path());
        dir.keep()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            forget(dir.path());
            let _ = dir.close();
        }
    }
}

fn forget(dir: &Path) {
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).retain(|d| d != dir);
}

fn install_signal_thread() {
    INSTALL.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        // Without the handlers an interrupted release still leaves only a
        // staging directory, which the next one sweeps.
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else { return };
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let dirs = LIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
                for d in &dirs {
                    let _ = std::fs::remove_dir_all(d);
                }
                eprintln!("\nrelease: interrupted by signal {signal}; the staging directory is removed, nothing was released");
                std::process::exit(128 + signal);
            }
        });
    });
}

/// Removes the staging directories in `parent` left by releases that died
/// (their process no longer exists) and that belong to this user. Returns
/// what it removed.
pub fn sweep_stale(parent: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(parent) else { return removed };
    // SAFETY: getuid(2) cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(stale_pid) else { continue };
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else { continue };
        if !meta.is_dir() || std::os::unix::fs::MetadataExt::uid(&meta) != uid || process_exists(pid) {
            continue;
        }
        if std::fs::remove_dir_all(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

/// The pid in `.release-<pid>-<random>`.
fn stale_pid(name: &str) -> Option<u32> {
    let (pid, random) = name.strip_prefix(PREFIX)?.split_once('-')?;
    if random.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

fn process_exists(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(stale_pid(".release-1234-AbC123"), Some(1234));
        assert_eq!(stale_pid(".release-AbC123"), None, "an older xtask's name carries no pid: left alone");
        assert_eq!(stale_pid(".release-12-"), None);
        assert_eq!(stale_pid("release-12-x"), None);
    }

    #[test]
    fn sweeps_dead_runs_only() {
        let parent = tempfile::tempdir().unwrap();
        // A pid that cannot exist (above the kernel's pid_max limit of 2^22).
        let dead = parent.path().join(".release-4999999-dead01");
        let live = parent.path().join(format!(".release-{}-live01", std::process::id()));
        let other = parent.path().join(".release-Xy12Ab");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d.join("partial")).unwrap();
        }
        assert_eq!(sweep_stale(parent.path()), vec![dead.clone()]);
        assert!(!dead.exists() && live.exists() && other.exists());
    }
}
