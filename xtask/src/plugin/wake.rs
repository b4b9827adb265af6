//! Waiting for a child's news without polling: until a file changes
//! (inotify: an events file written, an order renamed into a directory) or
//! a process ends (a pidfd), or a time limit. A watcher of children that
//! slept a millisecond between looks spent ~10 ms of CPU a second per
//! child, and answered a millisecond late; this wakes when there is news.
//!
//! Where inotify or pidfds are missing (not Linux, an old kernel, no
//! inotify instance left) [`Wake::wait`] sleeps a millisecond instead: the
//! callers look for their news after every wake anyway.

use std::path::Path;
use std::time::Duration;

/// What to wake for.
#[derive(Default)]
pub struct Wake {
    #[cfg(target_os = "linux")]
    inotify: Option<std::os::fd::OwnedFd>,
    #[cfg(target_os = "linux")]
    pidfds: Vec<(u32, std::os::fd::OwnedFd)>,
    /// A source could not be watched: every wait is short.
    blind: bool,
}

impl Wake {
    pub fn new() -> Wake {
        Wake::default()
    }

    /// Wakes when `path` (a file, or a directory's entries) changes.
    pub fn file(&mut self, path: &Path) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
            use std::os::unix::ffi::OsStrExt;
            if self.inotify.is_none() {
                // SAFETY: inotify_init1 has no preconditions; a valid fd is owned here.
                let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
                if fd >= 0 {
                    self.inotify = Some(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
            let watched = self.inotify.as_ref().is_some_and(|fd| {
                let Ok(name) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
                let mask = libc::IN_MODIFY | libc::IN_MOVED_TO | libc::IN_CREATE | libc::IN_CLOSE_WRITE;
                // SAFETY: a valid inotify fd and a NUL-terminated path.
                unsafe { libc::inotify_add_watch(fd.as_raw_fd(), name.as_ptr(), mask) >= 0 }
            });
            self.blind |= !watched;
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = path;
            self.blind = true;
        }
    }

    /// Wakes when the process `pid` ends.
    pub fn process(&mut self, pid: u32) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::{FromRawFd, OwnedFd};
            // SAFETY: pidfd_open(2) returns a new fd or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as i32;
            if fd >= 0 {
                self.pidfds.push((pid, unsafe { OwnedFd::from_raw_fd(fd) }));
            } else {
                self.blind = true;
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = pid;
            self.blind = true;
        }
    }

    /// No longer wakes for the process `pid`.
    pub fn forget_process(&mut self, pid: u32) {
        #[cfg(target_os = "linux")]
        self.pidfds.retain(|(p, _)| *p != pid);
        #[cfg(not(target_os = "linux"))]
        let _ = pid;
    }

    /// Blocks until there may be news (a watched file changed, a watched
    /// process ended), or `limit` passed; at most a millisecond when blind.
    pub fn wait(&mut self, limit: Duration) {
        let limit = if self.blind { limit.min(Duration::from_millis(1)) } else { limit };
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let mut fds: Vec<libc::pollfd> = self
                .inotify
                .iter()
                .map(|fd| fd.as_raw_fd())
                .chain(self.pidfds.iter().map(|(_, fd)| fd.as_raw_fd()))
                .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
                .collect();
            let ms = limit.as_millis().clamp(0, i32::MAX as u128) as i32;
            // SAFETY: fds is a valid array of pollfd for its length.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            // Drain the inotify queue: the callers look at what changed.
            if let Some(fd) = &self.inotify {
                let mut buffer = [0u8; 4096];
                // SAFETY: reading into a local buffer from a non-blocking fd.
                while unsafe { libc::read(fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) } > 0 {}
            }
        }
        #[cfg(not(target_os = "linux"))]
        std::thread::sleep(limit);
    }
}
