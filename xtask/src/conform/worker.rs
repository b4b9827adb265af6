//! The child's side of a lane: runs the checks it is given, in order, in
//! this process, reporting each as it begins and ends (see
//! [`crate::plugin::child::Events`]); a crash ends the process, and the
//! parent resumes after the check it was in.

use anyhow::{bail, Result};
use pjrt_sys::history as api_history;
use pjrt_sys::{PJRT_Client_PlatformName_Args, PJRT_Plugin_Attributes_Args};
use serde::Serialize;

use super::checks;
use super::harness::{self, CheckError, Ctx, Status};
use super::report;

/// One event of a child.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event<'a> {
    Begin { id: &'a str },
    Result { id: &'a str, status: Status, detail: &'a str, since: Option<String> },
    Info { info: serde_json::Value },
}

/// Runs `names` (comma-separated group names and check ids, in that order)
/// with `ctx`, then looks again at the verdicts that asked for it.
pub fn run(ctx: &mut Ctx, names: &str) -> Result<()> {
    let mut all: Vec<(&str, Option<checks::Check>)> =
        checks::groups().into_iter().flat_map(|g| g.checks.into_iter().map(move |c| (g.name, Some(c)))).collect();
    let mut chosen: Vec<checks::Check> = Vec::new();
    for name in names.split(',') {
        let before = chosen.len();
        for (group, slot) in all.iter_mut() {
            if *group == name || slot.as_ref().is_some_and(|c| c.id == name) {
                chosen.extend(slot.take());
            }
        }
        if chosen.len() == before {
            bail!("no check group or check named {name} (or named twice)");
        }
    }
    for check in &chosen {
        ctx.events.emit(&Event::Begin { id: &check.id });
        ctx.current = check.id.clone();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (check.run)(ctx)));
        let since = ctx.take_since();
        let (status, detail) = judge(outcome, check.optional);
        let since = (since > 0).then(|| format!("0.{since}"));
        ctx.events.emit(&Event::Result { id: &check.id, status, detail: &detail, since });
        if let Some(info) = info_after(&check.id, ctx, status) {
            ctx.events.emit(&Event::Info { info });
        }
    }
    for (id, detail) in ctx.run_rechecks() {
        ctx.events.emit(&Event::Result { id: &id, status: Status::Fail, detail: &detail, since: None });
    }
    Ok(())
}

/// Ends the process once every result is written, without tearing the
/// client and the plugin down (not a check; a crash there would be
/// nobody's news) and without waiting for it.
pub fn end() -> ! {
    // SAFETY: _exit(2) ends the process; nothing is left to flush (events
    // are written with one write each, stdout is unused).
    unsafe { libc::_exit(0) }
}

/// A check's outcome as a status and its reason.
fn judge(outcome: std::thread::Result<harness::Outcome>, optional: bool) -> (Status, String) {
    match outcome {
        Ok(Ok(detail)) => (Status::Pass, detail),
        Ok(Err(CheckError::Fail(m))) => (Status::Fail, m),
        Ok(Err(CheckError::Unsupported(m))) => (Status::Unsupported, m),
        Ok(Err(CheckError::Skip(m))) => (Status::Skip, m),
        Ok(Err(CheckError::Pjrt { function, code, message })) => {
            let text = format!("{function} failed with {}: {}", pjrt_sys::loader::error_code_name(code), checks_first_line(&message));
            if code == pjrt_sys::PJRT_Error_Code_UNIMPLEMENTED {
                (Status::Unsupported, text)
            } else if optional {
                (Status::Unsupported, format!("{text} (an optional entry point)"))
            } else {
                (Status::Fail, text)
            }
        }
        Err(panic) => {
            let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            (Status::Error, format!("the check itself panicked (a bug of pjrtpkgs, not of the plugin): {}", message.unwrap_or_default()))
        }
    }
}

fn checks_first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(240).collect()
}

/// What the parent should learn after a check: the plugin's identity after
/// `api.load`, the platform and options after `client.create`.
fn info_after(id: &str, ctx: &mut Ctx, status: Status) -> Option<serde_json::Value> {
    match (id, status) {
        ("api.load", Status::Pass) => {
            let plugin = ctx.plugin().ok()?;
            let (major, minor) = plugin.api_version();
            let extensions: Vec<report::ExtensionInfo> = plugin
                .extensions()
                .iter()
                .map(|e| {
                    let run = api_history::enumerator("PJRT_Extension_Type", e.kind as i64);
                    report::ExtensionInfo {
                        kind: e.kind as i64,
                        name: run.map(|r| r.name.trim_start_matches("PJRT_Extension_Type_").to_string()),
                        struct_size: e.struct_size as u64,
                        since: run.map(|r| r.since),
                    }
                })
                .collect();
            Some(serde_json::json!({
                "api_version": format!("{major}.{minor}"),
                "api_struct_size": plugin.struct_size(),
                "extensions": extensions,
            }))
        }
        ("plugin.attributes", Status::Pass) => {
            let mut a = pjrt_sys::args!(PJRT_Plugin_Attributes_Args {});
            pjrt_sys::call!(ctx.plugin_ref(), PJRT_Plugin_Attributes, &mut a).ok()?;
            let attributes = harness::named_values(a.attributes, a.num_attributes).ok()?;
            Some(serde_json::json!({ "attributes": attributes }))
        }
        ("client.create", _) => {
            let mut info = serde_json::json!({ "client_options": ctx.options });
            if let Ok(client) = ctx.client() {
                let mut a = pjrt_sys::args!(PJRT_Client_PlatformName_Args { client: client });
                if pjrt_sys::call!(ctx.plugin_ref(), PJRT_Client_PlatformName, &mut a).is_ok() {
                    info["platform"] = harness::text(a.platform_name, a.platform_name_size).into();
                }
            }
            Some(info)
        }
        _ => None,
    }
}
