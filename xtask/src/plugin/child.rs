//! Plugins run in a child process (this same executable, a hidden mode of
//! the verb), so that whatever a plugin does (a segfault in `GetPjrtApi`,
//! an abort in a check, a hang) the parent survives and writes its report.
//!
//! The child appends one JSON value per line to an events file the parent
//! names; each line is written whole with one `write`, so a crash leaves
//! every finished line behind. The child's stdout goes to the parent's
//! stderr: what a plugin prints cannot corrupt the parent's JSON. Every
//! child is isolated by [`super::isolation`].

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited with this status.
    Exited(i32),
    /// A signal killed it (a crash: SIGSEGV, SIGABRT, ...).
    Signaled(i32),
    /// It ran past its time limit and was killed.
    TimedOut(Duration),
}

impl Ending {
    /// How a child that ended by itself ended.
    pub fn of(status: std::process::ExitStatus) -> Ending {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Ending::Exited(code),
            (None, Some(signal)) => Ending::Signaled(signal),
            (None, None) => Ending::Exited(-1),
        }
    }

    /// "crashed with SIGSEGV (signal 11)", "exited with status 3", ...
    pub fn describe(self) -> String {
        match self {
            Ending::Exited(code) => format!("exited with status {code}"),
            Ending::Signaled(signal) => format!("crashed with {} (signal {signal})", signal_name(signal)),
            Ending::TimedOut(limit) => format!("did not finish within {} s and was killed", limit.as_secs()),
        }
    }
}

/// The conventional name of a Linux signal number.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        31 => "SIGSYS",
        _ => "a signal",
    }
}

/// Runs this executable as `VERB --events FILE ARGS...`, calling `on_event`
/// for each line the child writes, as it writes it. Kills the child after
/// `timeout`. `backend` is the pinned backend of the plugin, if known.
pub fn run(
    verb: &str,
    args: &[OsString],
    backend: Option<&str>,
    timeout: Duration,
    on_event: impl FnMut(serde_json::Value),
) -> Result<Ending> {
    run_with_env(verb, args, backend, timeout, &[], on_event)
}

/// [`run`] with variables added to the child's environment.
pub fn run_with_env(
    verb: &str,
    args: &[OsString],
    backend: Option<&str>,
    timeout: Duration,
    env: &[(&str, OsString)],
    mut on_event: impl FnMut(serde_json::Value),
) -> Result<Ending> {
    let mut child = Running::spawn(verb, args, backend, env)?;
    loop {
        child.poll(&mut on_event)?;
        if let Some(ending) = child.try_end()? {
            child.poll(&mut on_event)?;
            return Ok(ending);
        }
        let Some(left) = timeout.checked_sub(child.started.elapsed()) else {
            child.kill();
            child.poll(&mut on_event)?;
            return Ok(Ending::TimedOut(timeout));
        };
        child.wait(left);
    }
}

/// A child started by [`Running::spawn`], watched by its caller: for a
/// child that serves others for a while (conform's fork server) rather
/// than one [`run`] waits for.
pub struct Running {
    child: super::isolation::Isolated,
    reader: EventReader,
    // Removed when the child is dropped.
    events: tempfile::NamedTempFile,
    wake: super::wake::Wake,
    started: Instant,
}

impl Running {
    /// Starts this executable as `VERB --events FILE ARGS...`, isolated
    /// (see [`super::isolation`]), with `env` added after the scrub.
    pub fn spawn(verb: &str, args: &[OsString], backend: Option<&str>, env: &[(&str, OsString)]) -> Result<Running> {
        let exe = std::env::current_exe().context("cannot find this executable to run the plugin in a child process")?;
        let events = tempfile::Builder::new()
            .prefix("pjrtpkgs-events-")
            .tempfile()
            .context("cannot create a temporary file for the child process's events")?;
        let stdout = std::io::stderr().as_fd().try_clone_to_owned().context("cannot duplicate stderr for the child process")?;
        let mut command = Command::new(&exe);
        super::isolation::isolate(&mut command, backend);
        // Set after the scrub: variables named here reach the child.
        command.envs(env.iter().map(|(k, v)| (k, v)));
        command.arg(verb).arg("--events").arg(events.path()).args(args).stdout(Stdio::from(stdout));
        let child = super::isolation::Isolated::spawn(&mut command)
            .with_context(|| format!("cannot start {} in a child process", exe.display()))?;
        let mut wake = super::wake::Wake::new();
        wake.file(events.path());
        wake.process(child.id());
        let reader = EventReader::open(events.path())?;
        Ok(Running { child, reader, events, wake, started: Instant::now() })
    }

    /// The file the child writes its events to.
    pub fn events_path(&self) -> &Path {
        self.events.path()
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Blocks until the child wrote an event or ended, or `limit` passed.
    pub fn wait(&mut self, limit: Duration) {
        self.wake.wait(limit);
    }

    /// Calls `on_event` for each line the child wrote since the last poll.
    pub fn poll(&mut self, on_event: &mut impl FnMut(serde_json::Value)) -> Result<()> {
        self.reader.poll(on_event)
    }

    /// How the child ended, once it has (its process group then killed).
    pub fn try_end(&mut self) -> Result<Option<Ending>> {
        Ok(self.child.try_wait().context("cannot wait for the child process")?.map(Ending::of))
    }

    /// Kills the child's whole process group.
    pub fn kill(&mut self) {
        self.child.kill();
    }
}

/// Reads the whole lines (JSON values) appended to an events file since
/// the last poll.
pub struct EventReader {
    file: File,
    pending: Vec<u8>,
}

impl EventReader {
    pub fn open(path: &Path) -> Result<Self> {
        Ok(EventReader { file: File::open(path).with_context(|| format!("cannot read {}", path.display()))?, pending: Vec::new() })
    }

    pub fn poll(&mut self, on_event: &mut impl FnMut(serde_json::Value)) -> Result<()> {
        self.file.read_to_end(&mut self.pending).context("cannot read the child process's events")?;
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            // A line that does not parse can only be the last, cut short by
            // a crash; it carries nothing to rely on.
            if let Ok(value) = serde_json::from_slice(&line) {
                on_event(value);
            }
        }
        Ok(())
    }
}

/// The child's side: appends events to the file the parent named.
pub struct Events {
    file: Option<File>,
}

impl Events {
    /// Events go to `path`; with `None` (the verb run by hand in child
    /// mode) they are dropped.
    pub fn open(path: Option<&Path>) -> Result<Self> {
        let file = match path {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open the events file {}", path.display()))?,
            ),
            None => None,
        };
        Ok(Events { file })
    }

    /// Writes one event as one line, with one `write`: it is on disk, whole,
    /// before the next PJRT call can crash the process.
    pub fn emit(&mut self, event: &impl serde::Serialize) {
        let Some(file) = &mut self.file else { return };
        let mut line = serde_json::to_vec(event).unwrap_or_else(|e| format!("{{\"unserializable\":\"{e}\"}}").into_bytes());
        line.push(b'\n');
        let _ = file.write_all(&line);
    }
}
