//! How a plugin child process is kept from harming the caller.
//!
//! Every plugin child (those of [`super::child`], and the API-version probe
//! of [`super::probe`]) is started through [`isolate`] and watched through
//! [`Isolated`]:
//! - its environment is scrubbed ([`super::environment`]): a plugin never
//!   sees the xtask's secrets;
//! - it leads a process group of its own, killed as a whole when the time
//!   is up and again as soon as the child has ended, so whatever the
//!   plugin forked (a daemon, a helper) dies with it and cannot keep a
//!   pipe (`| cat`) or the parent waiting. A descendant that leaves the
//!   group on purpose (`setsid`) escapes this;
//! - SIGINT, SIGTERM and SIGHUP of the parent kill the live groups before
//!   the parent dies as the signal says (a group of its own no longer gets
//!   the terminal's Ctrl-C).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Prepares `command` to run a plugin: the scrubbed environment (plus, for
/// libtpu, its switch for running off Google Cloud) and no stdin.
/// [`Isolated::spawn`] gives it its process group.
pub fn isolate(command: &mut Command, backend: Option<&str>) {
    super::environment::apply(command);
    // Off Google Cloud, libtpu asks the GCE metadata server for each of a
    // dozen variables, 30 tries each: minutes before GetPjrtApi returns.
    // TPU_SKIP_MDS_QUERY is libtpu's own switch for running elsewhere.
    if backend == Some("tpu") && std::env::var_os("TPU_SKIP_MDS_QUERY").is_none() {
        command.env("TPU_SKIP_MDS_QUERY", "1");
    }
    command.stdin(Stdio::null());
}

/// A running child that leads its own process group (see the module
/// comment): the group is killed when the child ends, when it is killed,
/// and when this is dropped.
pub struct Isolated {
    child: std::process::Child,
    reaped: bool,
}

impl Isolated {
    /// Starts `command` as the leader of a new process group.
    pub fn spawn(command: &mut Command) -> std::io::Result<Isolated> {
        use std::os::unix::process::CommandExt;
        groups::install_signal_handlers();
        let child = command.process_group(0).spawn()?;
        groups::register(child.id());
        Ok(Isolated { child, reaped: false })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdout and stderr pipes, when they were piped (once).
    pub fn take_pipes(&mut self) -> (Option<std::process::ChildStdout>, Option<std::process::ChildStderr>) {
        (self.child.stdout.take(), self.child.stderr.take())
    }

    /// The child's status once it has ended. Its group is killed before the
    /// child is reaped: while the child is a zombie its process group id
    /// cannot be reused by anyone else.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        if self.reaped {
            return Ok(None);
        }
        #[cfg(target_os = "linux")]
        {
            if !groups::has_exited(self.child.id())? {
                return Ok(None);
            }
            self.reap().map(Some)
        }
        // Elsewhere the child is reaped first, then its group killed (its id
        // could in principle be reused in between).
        #[cfg(not(target_os = "linux"))]
        {
            let status = self.child.try_wait()?;
            if status.is_some() {
                self.reaped = true;
                groups::kill(self.child.id());
                groups::unregister(self.child.id());
            }
            Ok(status)
        }
    }

    /// Kills the whole group and reaps the child.
    pub fn kill(&mut self) {
        if !self.reaped {
            let _ = self.reap();
        }
    }

    fn reap(&mut self) -> std::io::Result<std::process::ExitStatus> {
        groups::kill(self.child.id());
        let status = self.child.wait();
        self.reaped = true;
        groups::unregister(self.child.id());
        status
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What is kept of a plugin's output: at most [`Capture::KEPT`] bytes, the
/// last ones (where the reason of a failure is); the rest is read and
/// dropped, so the child never blocks on a full pipe and a plugin printing
/// a gigabyte costs no memory.
pub struct Capture {
    done: std::sync::mpsc::Receiver<Captured>,
}

/// The output a [`Capture`] kept.
#[derive(Debug, Default)]
pub struct Captured {
    pub text: String,
    /// Bytes read and not kept.
    pub dropped: u64,
    /// False when the pipe was still open when [`Capture::finish`] gave up
    /// (a process outside the child's group holds it).
    pub complete: bool,
}

/// "; the last 3 lines of its stderr (70 bytes): ..." for an error
/// message: at most 5 lines of at most 240 characters, saying what was cut.
pub fn tail_of(captured: &Captured, stream: &str) -> String {
    if !captured.complete {
        return format!("; its {stream} was still held open by a process that left its process group");
    }
    let lines: Vec<&str> = captured.text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = lines[lines.len().saturating_sub(5)..]
        .iter()
        .map(|l| if l.chars().count() > 240 { format!("{}...", l.chars().take(240).collect::<String>()) } else { l.to_string() })
        .collect();
    let total = captured.dropped + captured.text.len() as u64;
    let cut =
        if shown.len() < lines.len() || captured.dropped > 0 || shown.iter().any(|l| l.ends_with("...")) { ", the rest cut" } else { "" };
    format!("; the last {} line(s) of its {stream} ({total} bytes{cut}):\n{}", shown.len(), shown.join("\n"))
}

impl Capture {
    pub const KEPT: usize = 64 << 10;

    /// Reads `pipe` on a thread of its own until it closes.
    pub fn start(pipe: Option<impl Read + Send + 'static>) -> Capture {
        let (sender, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut kept: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
            let mut dropped = 0u64;
            if let Some(mut pipe) = pipe {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            kept.extend(&buf[..n]);
                            let over = kept.len().saturating_sub(Capture::KEPT);
                            kept.drain(..over);
                            dropped += over as u64;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
            let kept: Vec<u8> = kept.into();
            let _ = sender.send(Captured { text: String::from_utf8_lossy(&kept).into_owned(), dropped, complete: true });
        });
        Capture { done }
    }

    /// What was captured, waiting at most `wait` for the pipe to close
    /// (after the child's group was killed it closes at once, unless a
    /// process that left the group holds it).
    pub fn finish(self, wait: Duration) -> Captured {
        self.done.recv_timeout(wait).unwrap_or(Captured { complete: false, ..Default::default() })
    }
}

/// The process groups of the live plugin children, for the signal handler.
mod groups {
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::sync::Once;

    /// Enough for `conform --jobs` on any machine; a child beyond it is still
    /// killed at its end, only not by the signal handler.
    const SLOTS: usize = 256;
    static LIVE: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
    static INSTALL: Once = Once::new();

    pub(super) fn register(pid: u32) {
        let pid = pid as i32;
        let _ = LIVE.iter().find(|slot| slot.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst).is_ok());
    }

    pub(super) fn unregister(pid: u32) {
        let pid = pid as i32;
        if let Some(slot) = LIVE.iter().find(|slot| slot.load(Ordering::SeqCst) == pid) {
            slot.store(0, Ordering::SeqCst);
        }
    }

    /// SIGKILL to every process of the group `pgid`.
    pub(super) fn kill(pgid: u32) {
        // SAFETY: kill(2) on a process group we created; no memory is touched.
        unsafe {
            libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
        }
    }

    /// Whether the child `pid` has ended, without reaping it.
    #[cfg(target_os = "linux")]
    pub(super) fn has_exited(pid: u32) -> std::io::Result<bool> {
        // SAFETY: waitid(2) with WNOWAIT only reads the child's state into
        // `info`, a zeroed siginfo_t owned here.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            if libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(info.si_pid() != 0)
        }
    }

    /// On SIGINT, SIGTERM or SIGHUP: kill every live group, then end as the
    /// signal would have ended this process.
    pub(super) fn install_signal_handlers() {
        INSTALL.call_once(|| {
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                // SAFETY: the handler only calls async-signal-safe functions
                // (atomic loads, kill(2), signal-hook's default emulation).
                let _ = unsafe {
                    signal_hook::low_level::register(signal, move || {
                        for slot in &LIVE {
                            let pgid = slot.load(Ordering::SeqCst);
                            if pgid > 0 {
                                libc::kill(-pgid, libc::SIGKILL);
                            }
                        }
                        let _ = signal_hook::low_level::emulate_default_handler(signal);
                    })
                };
            }
        });
    }
}
