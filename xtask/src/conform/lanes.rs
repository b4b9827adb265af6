//! How the checks are dealt into child processes ("lanes"), and how a lane
//! survives the crashes of the plugin it runs.
//!
//! Each lane is one process that loads the plugin, creates its client and
//! compiles each program once for all its checks; a crash ends the process
//! and a new one resumes after the check it was in. What a process costs
//! (a plugin load of ~20 ms of CPU, a client, each compilation of 40-60 ms)
//! is what [`plan`] saves: the lanes are few, the checks that compile the
//! same program share one, and the checks that feed the plugin what it may
//! not survive come last, where a crash leaves little to resume.
//!
//! Processes are forked from a server that loaded the plugin once
//! ([`super::zygote`]), or, where it cannot serve, started afresh. The lead
//! lane (`api`, `client` and more) starts first; the others start once the
//! lead has made its client, and are told what is broken (a plugin that
//! does not load, a client that is not created, or a crash while making
//! one, is not tried again), or not started at all: an accelerator plugin,
//! found by its extensions, takes its device once per client, and its
//! other checks run after the lead, in one process.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use anyhow::Result;

use super::harness::Status;
use super::report::CheckResult;
use crate::plugin::child;
use crate::plugin::client_options::ClientOption;

/// Checks that feed the plugin what it may not survive (real plugins abort
/// or crash in them): each comes last in its lane, so that the process
/// that resumes after its crash has little left to do.
const LAST: &[&str] = &["compile.mlir_without_options", "errors.unknown_element_type", "errors.mistyped_client_option"];

/// Groups whose checks compile the test program, run by the lead lane,
/// which compiles it once (and once more, for `executable.fingerprint`);
/// `api` and `client.create` come first.
const WITH_THE_LEAD: &[&str] = &["api", "compile", "execute", "errors", "extensions"];

/// The checks of the two-output program (`checks::compile::TWO_OUTPUTS`):
/// run by the second lane, which compiles it once for all of them, while
/// the lead compiles the test program. A unit test below reads the checks'
/// sources to keep this list true.
const WITH_THE_TWO_OUTPUT_PROGRAM: &[&str] = &[
    "compile.two_outputs",
    "executable.name",
    "executable.num_replicas",
    "executable.num_partitions",
    "executable.num_outputs",
    "executable.output_element_types",
    "executable.output_dimensions",
    "executable.output_memory_kinds",
    "executable.size_of_generated_code",
    "executable.compiled_memory_stats",
    "executable.cost_analysis",
    "executable.optimized_program",
    "executable.serialize",
    "executable.compile_options",
    "executable.addressable_devices",
    "executable.device_assignment",
    "execute.two_outputs",
    "execute.donation",
    "execute.non_donatable_input",
    "layouts.executable_output_layouts",
    "layouts.executable_parameter_layouts",
];

/// Checks run by the second lane although their group is the lead's: the
/// two-output program's, and one that only makes a client.
fn beside_the_lead(id: &str) -> bool {
    WITH_THE_TWO_OUTPUT_PROGRAM.contains(&id) || id == "errors.unknown_client_option"
}

/// The checks (`groups`: name and check ids, in the report's order) dealt
/// into at most `jobs` lanes, each an ordered list of check ids; the first
/// lane leads, beginning with `api` and `client`. With one job, one lane.
pub fn plan(groups: &[(&str, Vec<String>)], jobs: usize) -> Vec<Vec<String>> {
    let last = |id: &String| LAST.contains(&id.as_str());
    let ordered = |ids: Vec<String>| -> Vec<String> {
        let (hostile, rest): (Vec<String>, Vec<String>) = ids.into_iter().partition(last);
        rest.into_iter().chain(hostile).collect()
    };
    if jobs <= 1 {
        return vec![ordered(groups.iter().flat_map(|(_, ids)| ids.iter().cloned()).collect())];
    }
    let (mut lead, mut second, mut hostile) = (Vec::new(), Vec::new(), Vec::new());
    for (group, ids) in groups {
        for id in ids {
            if last(id) {
                hostile.push(id.clone());
            } else if id == "client.create" || (WITH_THE_LEAD.contains(group) && !beside_the_lead(id)) {
                lead.push(id.clone());
            } else {
                second.push(id.clone());
            }
        }
    }
    let mut lanes = vec![lead, second];
    if jobs >= 3 {
        lanes.push(hostile);
    } else {
        lanes[1].extend(hostile);
    }
    lanes.retain(|lane| !lane.is_empty());
    lanes
}

/// What the lead lane tells the others once it has made its client (or
/// failed to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// Run, skipping what needs these broken prerequisites (what: reason).
    Go(BTreeMap<String, String>),
    /// Do not run: the checks are run after the lead, in one process.
    Stop,
}

/// Where the other lanes wait for the lead's word.
#[derive(Default)]
pub struct Gate {
    word: Mutex<Option<Word>>,
    opened: Condvar,
}

impl Gate {
    /// Opens the gate with `word`; later calls change nothing.
    pub fn open(&self, word: Word) {
        let mut slot = self.word.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(word);
            self.opened.notify_all();
        }
    }

    /// The word, once the gate is open.
    fn wait(&self) -> Word {
        let slot = self.word.lock().unwrap_or_else(|p| p.into_inner());
        let slot = self.opened.wait_while(slot, |w| w.is_none()).unwrap_or_else(|p| p.into_inner());
        slot.clone().expect("opened")
    }
}

/// A lane's part in the gate.
#[derive(Clone, Copy)]
pub enum Role<'g> {
    /// Opens the gate once `client.create` has a result (or it ends).
    Lead(&'g Gate),
    /// Starts once the gate is open, if told to.
    Gated(&'g Gate),
    /// Runs on its own (one lane, or the checks of stopped lanes).
    Alone,
}

/// What is the same for every lane of a run.
pub struct Setup<'a> {
    pub path: &'a Path,
    pub backend: Option<&'a str>,
    pub options: &'a [ClientOption],
    pub timeout: Duration,
    pub bar: &'a indicatif::ProgressBar,
    /// Whether the plugin, by the `info` the lead collected, is an
    /// accelerator's (then the gate says stop).
    pub accelerator: &'a (dyn Fn(&[serde_json::Value]) -> bool + Sync),
    /// The fork server, if the plugin allows one.
    pub zygote: Option<&'a super::zygote::Zygote>,
}

/// What the processes of one lane reported.
#[derive(Default)]
pub struct LaneRun {
    pub results: Vec<CheckResult>,
    pub info: Vec<serde_json::Value>,
    pub crashed: Vec<String>,
    pub broken: BTreeMap<String, String>,
    /// The checks the lane did not run (the gate said stop).
    pub unreported: Vec<String>,
    pub processes: super::report::Processes,
}

/// The prerequisites a lead lane's results say are broken: a plugin that
/// did not load, a client that was not created.
fn broken_by(results: &BTreeMap<String, CheckResult>, broken: &mut BTreeMap<String, String>) {
    for (id, what) in [("api.load", "plugin"), ("client.create", "client")] {
        if let Some(r) = results.get(id).filter(|r| r.status == Status::Fail) {
            broken.entry(what.to_string()).or_insert_with(|| format!("{id} failed: {}", r.detail));
        }
    }
}

/// Runs the checks `ids` in processes of their own, one after another,
/// resuming after each crash, until each has a result.
pub fn run_lane(setup: &Setup, ids: &[String], role: Role, broken: &BTreeMap<String, String>) -> Result<LaneRun> {
    let mut run = LaneRun { broken: broken.clone(), ..Default::default() };
    let mut results: BTreeMap<String, CheckResult> = BTreeMap::new();
    let mut remaining: Vec<String> = ids.to_vec();
    let open_gate = |run: &LaneRun, results: &BTreeMap<String, CheckResult>| {
        if let Role::Lead(gate) = role {
            let mut broken = run.broken.clone();
            broken_by(results, &mut broken);
            gate.open(if (setup.accelerator)(&run.info) { Word::Stop } else { Word::Go(broken) });
        }
    };
    if let Role::Gated(gate) = role {
        match gate.wait() {
            Word::Go(b) => run.broken.extend(b),
            Word::Stop => {
                run.unreported = remaining;
                return Ok(run);
            }
        }
    }
    let mut zygote = setup.zygote;
    while !remaining.is_empty() {
        // Where the child keeps the PJRT call it is in (see pjrt_sys::in_flight).
        let in_flight = tempfile::Builder::new().prefix("pjrtpkgs-in-flight-").tempfile()?;
        in_flight.as_file().set_len(pjrt_sys::in_flight::FILE_SIZE)?;
        let mut begun: Option<String> = None;
        let mut making: Option<String> = None;
        let broken = run.broken.clone();
        let (results_ref, run_ref) = (&mut results, &mut run);
        let on_event = |event: serde_json::Value| match event.get("event").and_then(|e| e.as_str()) {
            Some("begin") => {
                let id = event["id"].as_str().unwrap_or_default().to_string();
                setup.bar.set_message(id.clone());
                begun = Some(id);
            }
            Some("result") => {
                if let Some(result) = serde_json::from_value::<CheckResult>(event.clone()).ok().filter(|r| ids.contains(&r.id)) {
                    begun = None;
                    let id = result.id.clone();
                    if results_ref.insert(id.clone(), result).is_none() {
                        setup.bar.inc(1);
                    }
                    if id == "client.create" {
                        open_gate(run_ref, results_ref);
                    }
                }
            }
            Some("info") => {
                run_ref.info.push(event["info"].clone());
                // An accelerator is known by its extensions, reported
                // with api.load: the other lanes need not wait.
                if let Role::Lead(gate) = role {
                    if (setup.accelerator)(&run_ref.info) {
                        gate.open(Word::Stop);
                    }
                }
            }
            Some("making") => making = event["what"].as_str().map(str::to_string),
            Some("made") => making = None,
            _ => {}
        };
        let ending = match zygote.filter(|z| z.alive()) {
            Some(z) => match z.run(&remaining, &broken, in_flight.path(), setup.timeout, on_event)? {
                Some(ending) => {
                    run.processes.forked += 1;
                    ending
                }
                None => {
                    // The server died, its worker with it: the checks not
                    // reported run in processes of their own.
                    zygote = None;
                    run.processes.forked += 1;
                    remaining.retain(|id| !results.contains_key(id));
                    continue;
                }
            },
            None => {
                let mut argv: Vec<OsString> = vec!["--child".into(), remaining.join(",").into()];
                if let Some(backend) = setup.backend {
                    argv.extend(["--backend".into(), backend.into()]);
                }
                for o in setup.options {
                    argv.extend(["--client-option".into(), format!("{}:{}={}", o.name, o.type_name, o.value).into()]);
                }
                for (what, reason) in &broken {
                    argv.extend(["--broken".into(), format!("{what}={reason}").into()]);
                }
                argv.extend(["--in-flight".into(), in_flight.path().into()]);
                argv.push("--".into());
                argv.push(setup.path.into());
                let ending = child::run("conform", &argv, setup.backend, setup.timeout, on_event)?;
                run.processes.started += 1;
                ending
            }
        };
        remaining.retain(|id| !results.contains_key(id));
        if remaining.is_empty() {
            break;
        }
        // The child ended before its last check: blame the check it was in,
        // or the first one it never reached, and resume after it. Whose
        // fault it was is in the record the child left: the plugin's if it
        // died inside a call into the plugin (or on a plugin thread, or in
        // plugin code), the harness's otherwise.
        let record = pjrt_sys::in_flight::Record::read(in_flight.path()).unwrap_or_default();
        let (culprit, began) = match begun {
            Some(id) => (id, true),
            None => (remaining[0].clone(), false),
        };
        let plugin_fault = match ending {
            child::Ending::Signaled(_) => record.plugin_to_blame(),
            _ => record.in_call,
        };
        let call = record.call.clone().filter(|_| record.in_call);
        let detail = blame(ending, &record, plugin_fault, began);
        // A crash while making the plugin or the client would repeat in
        // every check that needs it: later children are told to skip them.
        if let Some(what) = making {
            run.broken.insert(what.clone(), format!("making the {what}: {detail} (in {culprit})"));
        }
        let status = if plugin_fault {
            run.crashed.push(culprit.clone());
            Status::Fail
        } else {
            Status::Error
        };
        setup.bar.inc(1);
        results.insert(culprit.clone(), CheckResult { id: culprit.clone(), status, detail, since: None, call });
        remaining.retain(|id| id != &culprit);
        if results.contains_key("client.create") {
            open_gate(&run, &results);
        }
    }
    open_gate(&run, &results);
    broken_by(&results, &mut run.broken);
    run.results = ids.iter().filter_map(|id| results.remove(id)).collect();
    Ok(run)
}

/// `api.load`'s result when the fork server died, or ran past the time
/// limit, loading the plugin: as if a lane's process had, in that check;
/// the plugin is then broken for every other check.
pub fn died_loading(ending: child::Ending, record: &pjrt_sys::in_flight::Record) -> LaneRun {
    let plugin_fault = match ending {
        child::Ending::Signaled(_) => record.plugin_to_blame(),
        _ => record.in_call,
    };
    let detail = blame(ending, record, plugin_fault, true);
    let mut run = LaneRun::default();
    run.broken.insert("plugin".into(), format!("making the plugin: {detail} (in api.load)"));
    let status = if plugin_fault {
        run.crashed.push("api.load".into());
        Status::Fail
    } else {
        Status::Error
    };
    let call = record.call.clone().filter(|_| record.in_call);
    run.results.push(CheckResult { id: "api.load".into(), status, detail, since: None, call });
    run
}

/// Why a child died, as the result of the check it was in: the plugin's
/// fault ("the plugin crashed with SIGSEGV (signal 11) in PJRT_Client_Compile
/// during this check") or the harness's.
fn blame(ending: child::Ending, record: &pjrt_sys::in_flight::Record, plugin_fault: bool, began: bool) -> String {
    let when = if began { "during this check" } else { "before the check began (see stderr)" };
    if plugin_fault {
        let place = match (&record.call, record.in_call) {
            (Some(call), true) => format!(" in {call}"),
            _ if !record.on_harness_thread && record.signal != 0 => " on one of its own threads".to_string(),
            _ => " in its own code".to_string(),
        };
        return format!("the plugin {}{place} {when}", ending.describe());
    }
    let after = match &record.call {
        Some(call) => format!("after {call} returned"),
        None => "before any call into the plugin".to_string(),
    };
    let fault = if record.fault_address != 0 { format!(", at address {:#x}", record.fault_address) } else { String::new() };
    format!(
        "the harness (not the plugin) {} outside any plugin call, {after}{fault}, {when}: a fault of pjrtpkgs, \
         or of its reading of memory the plugin handed over; not counted against the plugin",
        ending.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn groups() -> Vec<(&'static str, Vec<String>)> {
        super::super::checks::groups().iter().map(|g| (g.name, g.checks.iter().map(|c| c.id.clone()).collect())).collect()
    }

    /// Every check of `groups` is in exactly one lane.
    fn covers(groups: &[(&str, Vec<String>)], lanes: &[Vec<String>]) -> bool {
        let planned: Vec<&String> = lanes.iter().flatten().collect();
        let unique: BTreeSet<&String> = planned.iter().copied().collect();
        let all: BTreeSet<&String> = groups.iter().flat_map(|(_, ids)| ids.iter()).collect();
        planned.len() == unique.len() && unique == all
    }

    #[test]
    fn every_plan_runs_every_check_once_the_lead_first() {
        let groups = groups();
        for jobs in 1..=5 {
            let lanes = plan(&groups, jobs);
            assert!(covers(&groups, &lanes), "jobs {jobs}: {lanes:?}");
            assert!(lanes.len() <= jobs.max(1), "jobs {jobs}: {} lanes", lanes.len());
            assert_eq!(lanes[0][0], "api.load", "jobs {jobs}: the lead loads the plugin first");
            let client = lanes[0].iter().position(|id| id == "client.create").expect("the lead makes the client");
            let api = &groups.iter().find(|(name, _)| *name == "api").unwrap().1;
            assert_eq!(&lanes[0][..api.len()], &api[..], "jobs {jobs}: the api group, then the client");
            assert_eq!(client, api.len(), "jobs {jobs}");
            // The checks that may crash come after every other check of their lane.
            for lane in &lanes {
                let first_last = lane.iter().position(|id| LAST.contains(&id.as_str())).unwrap_or(lane.len());
                assert!(lane[first_last..].iter().all(|id| LAST.contains(&id.as_str())), "jobs {jobs}: {lane:?}");
            }
        }
    }

    /// The check ids whose code compiles `program` ("PROGRAM" through
    /// `ctx.executable()`, "TWO_OUTPUTS" through `ctx.program` or the
    /// compile module's `executable` helper), read from the checks' sources.
    fn users_of(program: &str) -> BTreeSet<String> {
        let sources = [
            include_str!("checks/compile.rs"),
            include_str!("checks/execute.rs"),
            include_str!("checks/errors.rs"),
            include_str!("checks/extensions.rs"),
        ];
        let mut users = BTreeSet::new();
        for source in sources {
            // Each function's body, by name; a helper's use counts for its callers.
            let bodies: Vec<(&str, &str)> = source.split("\nfn ").skip(1).filter_map(|f| f.split_once('(')).collect();
            let direct = |body: &str| match program {
                "PROGRAM" => body.contains("ctx.executable()") || body.contains("ctx.spare()") || body.contains("ctx.take_spare()"),
                _ => body.contains("TWO_OUTPUTS)") || body.contains("= executable(ctx)"),
            };
            let mut using: BTreeSet<&str> = bodies.iter().filter(|(_, b)| direct(b)).map(|(n, _)| *n).collect();
            loop {
                let more: Vec<&str> = bodies
                    .iter()
                    .filter(|(n, b)| !using.contains(n) && using.iter().any(|u| b.contains(&format!("{u}(ctx"))))
                    .map(|(n, _)| *n)
                    .collect();
                if more.is_empty() {
                    break;
                }
                using.extend(more);
            }
            for line in source.lines() {
                let line = line.trim();
                for prefix in ["check(\"", "optional(\""] {
                    if let Some((id, f)) = line.strip_prefix(prefix).and_then(|l| l.split_once("\", ")) {
                        if using.contains(f.trim_end_matches("),")) {
                            users.insert(id.to_string());
                        }
                    }
                }
            }
        }
        users
    }

    #[test]
    fn each_program_is_compiled_by_one_lane() {
        let two_outputs = users_of("TWO_OUTPUTS");
        let listed: BTreeSet<String> = WITH_THE_TWO_OUTPUT_PROGRAM.iter().map(|s| s.to_string()).collect();
        assert_eq!(two_outputs, listed, "WITH_THE_TWO_OUTPUT_PROGRAM is not the checks that compile TWO_OUTPUTS");
        let program = users_of("PROGRAM");
        assert!(program.contains("execute.smoke") && program.contains("executable.fingerprint"), "{program:?}");
        let groups = groups();
        for jobs in 2..=4 {
            let lanes = plan(&groups, jobs);
            for id in &program {
                assert!(lanes[0].contains(id), "jobs {jobs}: {id} compiles the test program and is not with the lead");
            }
            for id in &two_outputs {
                assert!(lanes[1].contains(id), "jobs {jobs}: {id} compiles the two-output program and is not in the second lane");
            }
        }
    }
}
