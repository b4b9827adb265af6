//! The fork server: one child process loads the plugin once and forks a
//! process for each lane, and for each lane's restart after a crash.
//!
//! A plugin load is the dearest part of a process (~20 ms of CPU for a
//! 200 MB CPU plugin, five times that in wall time on a busy machine: its
//! relocations fault in thousands of pages); a fork of the loaded process
//! costs under a millisecond and shares those pages. Forking is sound only
//! while the process has one thread: the server checks that after the load
//! (a plugin whose loading starts threads gets no server, and the lanes
//! load it themselves, as before) and never makes a client or initializes
//! the plugin; each forked worker does that, as a process of its own would.
//!
//! The parent writes an order (the checks, the worker's events file and
//! in-flight record, what is broken, the time limit) as a file in a
//! directory the server polls; the server forks, and reports on its own
//! events each worker's end (exit status or signal) or that it killed it at
//! its time limit. The workers stay in the server's process group, killed
//! with it. A server that dies is replaced by the lanes' own processes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::harness::{load_failure, Ctx};
use crate::plugin::child::{self, Ending, EventReader, Running};
use crate::plugin::client_options::ClientOption;
use crate::plugin::wake::Wake;

/// What the parent asks the server for: a worker running these checks.
#[derive(Debug, Serialize, Deserialize)]
struct Order {
    n: u64,
    /// Comma-separated check ids (see `worker::run`).
    checks: String,
    events: PathBuf,
    in_flight: PathBuf,
    broken: Vec<(String, String)>,
    options: Vec<String>,
    timeout_ms: u64,
}

/// How a server's start went.
pub enum Started {
    Serving(Zygote),
    /// Loading the plugin started threads: no forking from it.
    Declined,
    /// The server died, or ran past the time limit, loading the plugin;
    /// what its in-flight record says.
    DiedLoading(Ending, pjrt_sys::in_flight::Record),
}

/// The parent's handle on a running server.
pub struct Zygote {
    server: Mutex<Running>,
    /// Worker endings the server reported, by order number.
    endings: Mutex<BTreeMap<u64, Ending>>,
    orders: tempfile::TempDir,
    next: AtomicU64,
    dead: AtomicBool,
    options: Vec<ClientOption>,
}

impl Zygote {
    /// Starts a server for the plugin at `path`. It declines when the load
    /// started threads; when it dies or hangs loading, that is the outcome
    /// of loading the plugin, which `api.load` reports.
    pub fn start(path: &Path, backend: Option<&str>, options: &[ClientOption], timeout: Duration) -> Result<Started> {
        let orders = tempfile::Builder::new().prefix("pjrtpkgs-orders-").tempdir()?;
        let in_flight = tempfile::Builder::new().prefix("pjrtpkgs-in-flight-").tempfile()?;
        in_flight.as_file().set_len(pjrt_sys::in_flight::FILE_SIZE)?;
        let mut args: Vec<OsString> = vec!["--zygote".into(), "--orders".into(), orders.path().into()];
        if let Some(backend) = backend {
            args.extend(["--backend".into(), backend.into()]);
        }
        args.extend(["--in-flight".into(), in_flight.path().into(), "--".into(), path.into()]);
        let mut server = Running::spawn("conform", &args, backend, &[])?;
        let started = Instant::now();
        let mut threads: Option<u64> = None;
        loop {
            server.poll(&mut |event| {
                if event["event"] == "ready" {
                    threads = event["threads"].as_u64();
                }
            })?;
            if threads.is_some() {
                break;
            }
            let ending = match (server.try_end()?, timeout.checked_sub(started.elapsed())) {
                (Some(ending), _) => ending,
                (None, None) => {
                    server.kill();
                    Ending::TimedOut(timeout)
                }
                (None, Some(left)) => {
                    server.wait(left);
                    continue;
                }
            };
            let record = pjrt_sys::in_flight::Record::read(in_flight.path()).unwrap_or_default();
            return Ok(Started::DiedLoading(ending, record));
        }
        if threads != Some(1) {
            server.kill();
            return Ok(Started::Declined);
        }
        Ok(Started::Serving(Zygote {
            server: Mutex::new(server),
            endings: Mutex::new(BTreeMap::new()),
            orders,
            next: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            options: options.to_vec(),
        }))
    }

    /// Whether the server still serves.
    pub fn alive(&self) -> bool {
        !self.dead.load(Ordering::SeqCst)
    }

    /// Runs `checks` in a forked worker, calling `on_event` for each of its
    /// events; how it ended, or None when the server died (the worker with
    /// it): the caller runs the checks without it.
    pub fn run(
        &self,
        checks: &[String],
        broken: &BTreeMap<String, String>,
        in_flight: &Path,
        timeout: Duration,
        mut on_event: impl FnMut(serde_json::Value),
    ) -> Result<Option<Ending>> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let events = tempfile::Builder::new().prefix("pjrtpkgs-events-").tempfile()?;
        let order = Order {
            n,
            checks: checks.join(","),
            events: events.path().to_path_buf(),
            in_flight: in_flight.to_path_buf(),
            broken: broken.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            options: self.options.iter().map(|o| format!("{}:{}={}", o.name, o.type_name, o.value)).collect(),
            timeout_ms: timeout.as_millis() as u64,
        };
        // Written aside, then renamed: the server reads whole orders only.
        let written = self.orders.path().join(format!("{n}.new"));
        std::fs::write(&written, serde_json::to_vec(&order)?).context("cannot write an order for the fork server")?;
        std::fs::rename(&written, self.orders.path().join(format!("{n}.json"))).context("cannot hand an order to the fork server")?;
        let mut wake = Wake::new();
        wake.file(events.path());
        {
            let server = self.server.lock().unwrap_or_else(|p| p.into_inner());
            wake.file(server.events_path());
            wake.process(server.id());
        }
        let mut reader = EventReader::open(events.path())?;
        loop {
            reader.poll(&mut on_event)?;
            match self.ended(n)? {
                Some(ending) => {
                    reader.poll(&mut on_event)?;
                    return Ok(ending);
                }
                // The server reports the worker's end, at its time limit too;
                // the limit here is a safety net.
                None => wake.wait(Duration::from_secs(1)),
            }
        }
    }

    /// Some(Some(ending)) once worker `n` has ended, Some(None) when the
    /// server died, None while the worker runs.
    fn ended(&self, n: u64) -> Result<Option<Option<Ending>>> {
        let mut server = self.server.lock().unwrap_or_else(|p| p.into_inner());
        let mut endings = self.endings.lock().unwrap_or_else(|p| p.into_inner());
        server.poll(&mut |event| {
            if event["event"] != "ended" {
                return;
            }
            let Some(which) = event["n"].as_u64() else { return };
            let ending = if let Some(ms) = event["timed_out_ms"].as_u64() {
                Ending::TimedOut(Duration::from_millis(ms))
            } else if let Some(signal) = event["signal"].as_i64() {
                Ending::Signaled(signal as i32)
            } else {
                Ending::Exited(event["code"].as_i64().unwrap_or(-1) as i32)
            };
            endings.insert(which, ending);
        })?;
        if let Some(ending) = endings.remove(&n) {
            return Ok(Some(Some(ending)));
        }
        if !self.alive() || server.try_end()?.is_some() {
            // Its process group, the workers in it, died with it.
            self.dead.store(true, Ordering::SeqCst);
            return Ok(Some(None));
        }
        Ok(None)
    }
}

/// A worker the server forked.
struct Worker {
    n: u64,
    pid: libc::pid_t,
    deadline: Instant,
    timeout: Duration,
    killed: bool,
}

/// Server mode (`conform --zygote`): loads the plugin at `path`, then forks
/// a worker for each order found in `orders`, until the parent ends it.
pub fn serve(path: &Path, backend: Option<String>, orders: &Path, mut events: child::Events) -> Result<std::process::ExitCode> {
    let loaded = pjrt_sys::loader::Plugin::load(path).map(|p| &*Box::leak(Box::new(p))).map_err(|e| load_failure(path, &e));
    let threads = std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0);
    events.emit(&serde_json::json!({ "event": "ready", "threads": threads }));
    if threads != 1 {
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let mut workers: Vec<Worker> = Vec::new();
    let parent = std::os::unix::process::parent_id();
    let mut wake = Wake::new();
    wake.file(orders);
    loop {
        // Orphaned (the parent was killed outright): nobody will order.
        if std::os::unix::process::parent_id() != parent {
            return Ok(std::process::ExitCode::SUCCESS);
        }
        for entry in std::fs::read_dir(orders).with_context(|| format!("cannot read the orders in {}", orders.display()))?.flatten() {
            let file = entry.path();
            if file.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let order: Order =
                serde_json::from_slice(&std::fs::read(&file)?).with_context(|| format!("unreadable order {}", file.display()))?;
            std::fs::remove_file(&file)?;
            // SAFETY: this process has one thread (checked above, and it
            // starts none): the child may do anything the parent could.
            match unsafe { libc::fork() } {
                -1 => return Err(std::io::Error::last_os_error()).context("the fork server cannot fork"),
                0 => work(order, path, backend.clone(), loaded.clone()),
                pid => {
                    let timeout = Duration::from_millis(order.timeout_ms);
                    wake.process(pid as u32);
                    workers.push(Worker { n: order.n, pid, deadline: Instant::now() + timeout, timeout, killed: false });
                }
            }
        }
        workers.retain_mut(|w| {
            let mut status = 0;
            // SAFETY: waitpid on a child of ours, into a local.
            let reaped = unsafe { libc::waitpid(w.pid, &mut status, libc::WNOHANG) };
            if reaped == w.pid {
                let event = if w.killed {
                    serde_json::json!({ "event": "ended", "n": w.n, "timed_out_ms": w.timeout.as_millis() as u64 })
                } else if libc::WIFSIGNALED(status) {
                    serde_json::json!({ "event": "ended", "n": w.n, "signal": libc::WTERMSIG(status) })
                } else {
                    serde_json::json!({ "event": "ended", "n": w.n, "code": libc::WEXITSTATUS(status) })
                };
                events.emit(&event);
                wake.forget_process(w.pid as u32);
                return false;
            }
            if !w.killed && Instant::now() > w.deadline {
                // SAFETY: kill(2) of our own, not yet reaped, child.
                unsafe { libc::kill(w.pid, libc::SIGKILL) };
                w.killed = true;
            }
            true
        });
        let next = workers.iter().filter(|w| !w.killed).map(|w| w.deadline.saturating_duration_since(Instant::now())).min();
        wake.wait(next.unwrap_or(Duration::MAX).min(Duration::from_secs(1)));
    }
}

/// A forked worker: runs the order's checks with the plugin already
/// loaded, and ends.
fn work(order: Order, path: &Path, backend: Option<String>, loaded: Result<&'static pjrt_sys::loader::Plugin, String>) -> ! {
    let run = || -> Result<()> {
        pjrt_sys::in_flight::install(&order.in_flight)
            .with_context(|| format!("cannot map the in-flight record {}", order.in_flight.display()))?;
        pjrt_sys::in_flight::plugin_loaded(path);
        let events = child::Events::open(Some(&order.events))?;
        let options = order.options.iter().map(|o| crate::plugin::client_options::parse(o)).collect::<Result<Vec<_>>>()?;
        let mut ctx = Ctx::new(path.to_path_buf(), backend, options, events);
        ctx.adopt(loaded);
        for (what, reason) in &order.broken {
            ctx.mark_broken(what, reason);
        }
        super::worker::run(&mut ctx, &order.checks)
    };
    if let Err(e) = run() {
        eprintln!("error: conform's forked worker: {e:#}");
        // SAFETY: ends this forked process.
        unsafe { libc::_exit(1) }
    }
    super::worker::end()
}
