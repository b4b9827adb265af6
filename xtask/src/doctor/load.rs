//! The part of the diagnosis that loads the plugin, in a child process (as
//! `smoke` does): dlopen and `GetPjrtApi`, `PJRT_Plugin_Initialize`, then
//! `PJRT_Client_Create` (GPU plugins with `preallocate=false`). A crash is
//! named and explained; the parent survives it.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use pjrt_sys::loader::Plugin;
use serde::Serialize;

use crate::plugin::child::{self, Ending, Events};
use crate::plugin::client_options;
use crate::plugin::diagnosis::{Diagnosis, Finding, Status};
use crate::plugin::session::Client;

/// What the child got to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// The last phase started: `load`, `initialize`, `client`, `done`.
    pub phase: String,
    pub api_version: Option<String>,
    pub client_options: Vec<String>,
    pub platform: Option<String>,
    pub devices: Option<usize>,
    /// The error a phase returned (not a crash).
    pub error: Option<String>,
    /// How the child ended (`exited with status 0`, `crashed with SIGILL
    /// (signal 4)`, ...).
    pub ending: String,
    pub signal: Option<i32>,
    pub timed_out: bool,
}

const PHASES: &[(&str, &str)] = &[
    ("load", "loading the plugin (dlopen, GetPjrtApi)"),
    ("initialize", "PJRT_Plugin_Initialize"),
    ("client", "creating a client (PJRT_Client_Create)"),
    ("done", "finishing"),
];

/// Child mode: loads the plugin at `path` and reports each step as an event.
pub fn child(path: &Path, backend: Option<&str>, events: Option<&Path>) -> Result<ExitCode> {
    let mut events = Events::open(events)?;
    let fail = |events: &mut Events, message: String| {
        events.emit(&serde_json::json!({ "error": message }));
        Ok(ExitCode::from(crate::output::EXIT_ERROR))
    };
    events.emit(&serde_json::json!({ "phase": "load" }));
    let plugin = match Plugin::load(path) {
        Ok(p) => p,
        Err(e) => return fail(&mut events, format!("{e:#}")),
    };
    let (major, minor) = plugin.api_version();
    events.emit(&serde_json::json!({ "api_version": format!("{major}.{minor}") }));
    events.emit(&serde_json::json!({ "phase": "initialize" }));
    if let Err(e) = plugin.initialize() {
        return fail(&mut events, format!("{e:#}"));
    }
    let gpu = client_options::is_gpu(backend, &plugin.extensions());
    let options = client_options::resolve(&[], gpu);
    events.emit(&serde_json::json!({ "client_options": options.iter().map(|o| o.to_string()).collect::<Vec<_>>() }));
    events.emit(&serde_json::json!({ "phase": "client" }));
    let named = client_options::NamedValues::new(&options);
    let client = match Client::create_with(&plugin, &named) {
        Ok(c) => c,
        Err(e) => return fail(&mut events, format!("{e:#}")),
    };
    let platform = client.platform_name().unwrap_or_else(|e| format!("(unknown: {e:#})"));
    let devices = client.addressable_devices().map(|d| d.len()).unwrap_or(0);
    events.emit(&serde_json::json!({ "platform": platform, "devices": devices }));
    events.emit(&serde_json::json!({ "phase": "done" }));
    drop(client);
    Ok(ExitCode::SUCCESS)
}

/// Runs [`child`] in a child process and collects what it said.
pub fn in_child(path: &Path, backend: Option<&str>, timeout: Duration) -> Result<Outcome> {
    let mut argv: Vec<std::ffi::OsString> = vec!["--child".into(), "load".into()];
    if let Some(b) = backend {
        argv.extend(["--backend".into(), b.into()]);
    }
    argv.push("--".into());
    argv.push(path.into());
    let mut outcome = Outcome { phase: "load".to_owned(), ..Default::default() };
    let ending = child::run("doctor", &argv, backend, timeout, |event| {
        let text = |k: &str| event.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        if let Some(p) = text("phase") {
            outcome.phase = p;
        }
        if let Some(v) = text("api_version") {
            outcome.api_version = Some(v);
        }
        if let Some(e) = text("error") {
            outcome.error = Some(e);
        }
        if let Some(p) = text("platform") {
            outcome.platform = Some(p);
            outcome.devices = event.get("devices").and_then(|d| d.as_u64()).map(|d| d as usize);
        }
        if let Some(options) = event.get("client_options").and_then(|o| o.as_array()) {
            outcome.client_options = options.iter().filter_map(|o| o.as_str().map(str::to_owned)).collect();
        }
    })?;
    outcome.ending = ending.describe();
    match ending {
        Ending::Signaled(s) => outcome.signal = Some(s),
        Ending::TimedOut(_) => outcome.timed_out = true,
        Ending::Exited(_) => {}
    }
    Ok(outcome)
}

impl Outcome {
    /// The findings of the loaded part, read with the static `diagnosis`
    /// (which may already say why).
    pub fn findings(&self, diagnosis: &Diagnosis) -> Vec<Finding> {
        let mut found = Vec::new();
        let during = PHASES.iter().find(|(p, _)| *p == self.phase).map_or(self.phase.as_str(), |(_, what)| what);
        let static_fails = diagnosis.findings.iter().filter(|f| f.status == Status::Fail).count();
        let see = if static_fails > 0 { "the failures found without loading it (above) say why" } else { "" };
        if let Some(version) = &self.api_version {
            found.push(finding("load", Status::Ok, format!("loaded; GetPjrtApi reports PJRT API {version}"), ""));
        }
        if let Some(signal) = self.signal {
            let (what, todo) = crate::plugin::diagnosis::explain_signal(signal);
            found.push(finding(
                self.phase_check(),
                Status::Fail,
                format!("the plugin {} while {during}: {what}", self.ending),
                if see.is_empty() { todo.to_owned() } else { format!("{todo}; {see}") },
            ));
            return found;
        }
        if self.timed_out {
            found.push(finding(
                self.phase_check(),
                Status::Fail,
                format!("the plugin {} while {during}", self.ending),
                "find what it waits for (network, a device, a lock); run it under `strace -f`",
            ));
            return found;
        }
        match (&self.error, self.phase.as_str()) {
            (Some(error), "load") => found.push(finding("load", Status::Fail, format!("dlopen/GetPjrtApi failed: {error}"), see)),
            (Some(error), "initialize") => {
                found.push(finding("load", Status::Fail, format!("PJRT_Plugin_Initialize failed: {error}"), see))
            }
            (Some(error), _) => found.push(finding(
                "client",
                Status::Fail,
                format!(
                    "PJRT_Client_Create{} failed: {error}",
                    if self.client_options.is_empty() { String::new() } else { format!(" ({})", self.client_options.join(", ")) }
                ),
                if see.is_empty() { "read the error: it names what the plugin missed" } else { see },
            )),
            (None, "done") => found.push(finding(
                "client",
                Status::Ok,
                format!(
                    "client created: platform {}, {} addressable device(s)",
                    self.platform.as_deref().unwrap_or("?"),
                    self.devices.unwrap_or(0)
                ),
                "",
            )),
            (None, _) => found.push(finding(
                self.phase_check(),
                Status::Fail,
                format!("the child {} while {during}, without a report", self.ending),
                see,
            )),
        }
        found
    }

    fn phase_check(&self) -> &'static str {
        if self.phase == "client" || self.phase == "done" {
            "client"
        } else {
            "load"
        }
    }
}

fn finding(check: &str, status: Status, why: String, todo: impl Into<String>) -> Finding {
    Finding { check: check.to_owned(), status, why, todo: todo.into() }
}
