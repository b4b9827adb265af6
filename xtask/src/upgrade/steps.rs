//! The steps of one `upgrade-xla` run: numbering, timing, and what each
//! one did, wrote, or would stop a real run for.
//!
//! A real run stops at the first refusal or failure. A dry run does not:
//! it records the reason, goes on with every step that still has its
//! inputs, and ends with all of them in one report (and an exit status
//! that says whether a real run would succeed).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

use super::staging::Change;
use super::FAIL_AT_ENV;

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    Failed(String),
    /// Not run: a step it needs failed, or it is the commit of a dry run.
    Skipped(String),
}

impl Outcome {
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Done(_) => "done",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Outcome::Done(d) | Outcome::Failed(d) | Outcome::Skipped(d) => d,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepLog {
    pub name: &'static str,
    pub number: usize,
    pub outcome: Outcome,
    pub took: Duration,
    /// Files the step stages, with how each differs from the project.
    pub writes: Vec<(PathBuf, Change)>,
}

/// A reason a real run stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub step: &'static str,
    pub reason: String,
}

pub struct Runner {
    pub dry_run: bool,
    fail_at: Option<String>,
    index: usize,
    total: usize,
    pub steps: Vec<StepLog>,
    pub stops: Vec<Stop>,
    started: Instant,
}

impl Runner {
    /// `total`: the number of steps this run numbers (the same for a dry
    /// run and a real one).
    pub fn new(dry_run: bool, total: usize, fail_at: Option<String>) -> Self {
        Runner { dry_run, fail_at, index: 0, total, steps: Vec::new(), stops: Vec::new(), started: Instant::now() }
    }

    pub fn fail_at(&self) -> Option<&str> {
        self.fail_at.as_deref()
    }

    /// Runs step `name`. A failure ends a real run (the error, with the
    /// step named); in a dry run it is recorded as a reason to stop and the
    /// step yields `None`.
    pub fn step<T>(&mut self, name: &'static str, what: &str, f: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
        self.index += 1;
        let label = format!("[{}/{}] {what}", self.index, self.total);
        let bar = indicatif::ProgressBar::new_spinner().with_message(label.clone());
        bar.enable_steady_tick(Duration::from_millis(120));
        let t = Instant::now();
        let injected = self.fail_at.as_deref() == Some(name) && name != "commit";
        let result = if injected { Err(anyhow!("injected failure at step `{name}` ({FAIL_AT_ENV}={name})")) } else { f() };
        bar.finish_and_clear();
        // A signal ends the run here, whatever the step's outcome.
        super::interrupt::check()?;
        let took = t.elapsed();
        eprintln!("{label}: {} ({:.2} s)", if result.is_ok() { "done" } else { "FAILED" }, took.as_secs_f64());
        match result {
            Ok(v) => {
                self.steps.push(StepLog { name, number: self.index, outcome: Outcome::Done(String::new()), took, writes: Vec::new() });
                Ok(Some(v))
            }
            Err(e) if self.dry_run => {
                let reason = format!("{e:#}");
                eprintln!("  a real run would stop here: {reason}");
                self.steps.push(StepLog { name, number: self.index, outcome: Outcome::Failed(reason.clone()), took, writes: Vec::new() });
                self.stops.push(Stop { step: name, reason });
                Ok(None)
            }
            Err(e) => Err(e.context(format!("upgrade-xla step `{name}` failed; no project file was changed"))),
        }
    }

    /// Numbers and records a step that cannot run (`why`).
    pub fn skip(&mut self, name: &'static str, what: &str, why: &str) {
        self.index += 1;
        eprintln!("[{}/{}] {what}: skipped ({why})", self.index, self.total);
        self.steps.push(StepLog {
            name,
            number: self.index,
            outcome: Outcome::Skipped(why.to_string()),
            took: Duration::ZERO,
            writes: Vec::new(),
        });
    }

    /// A refusal: ends a real run with `reason`; a dry run records it and
    /// goes on as if it had been lifted.
    pub fn refuse(&mut self, step: &'static str, reason: String) -> Result<()> {
        if !self.dry_run {
            bail!("{reason}");
        }
        eprintln!("  a real run would stop here: {reason}");
        self.stops.push(Stop { step, reason });
        Ok(())
    }

    /// Notes on the last step of that name what it stages.
    pub fn wrote(&mut self, name: &str, writes: Vec<(PathBuf, Change)>) {
        if let Some(s) = self.steps.iter_mut().rev().find(|s| s.name == name) {
            s.writes.extend(writes);
        }
    }

    /// Sets how long the last step of that name took (work done elsewhere,
    /// e.g. on a background thread).
    pub fn took(&mut self, name: &str, took: Duration) {
        if let Some(s) = self.steps.iter_mut().rev().find(|s| s.name == name) {
            s.took = took;
        }
    }

    /// Sets the detail of the last step of that name.
    pub fn detail(&mut self, name: &str, detail: String) {
        if let Some(s) = self.steps.iter_mut().rev().find(|s| s.name == name) {
            if let Outcome::Done(d) | Outcome::Skipped(d) = &mut s.outcome {
                *d = detail;
            }
        }
    }

    pub fn would_succeed(&self) -> bool {
        self.stops.is_empty()
    }

    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .steps
            .iter()
            .filter(|s| !matches!(s.outcome, Outcome::Skipped(_)))
            .map(|s| format!("{} {:.2}", s.name, s.took.as_secs_f64()))
            .collect();
        format!("total {:.2} s ({})", self.started.elapsed().as_secs_f64(), parts.join(", "))
    }

    /// The dry run's own section: every step, what it would write, and why
    /// a real run would stop.
    pub fn dry_run_markdown(&self, files: &[(PathBuf, Change)]) -> String {
        use std::fmt::Write as _;
        let mut m = String::new();
        let _ = writeln!(m, "## Dry run: what a real run would do\n");
        if self.stops.is_empty() {
            let _ = writeln!(m, "Nothing was written. A real run would succeed and write {} file(s).\n", files.len());
        } else {
            let _ = writeln!(
                m,
                "Nothing was written. **A real run would stop** ({} reason(s) below). What follows the first one is shown as a run \
                 with every refusal lifted would do it.\n",
                self.stops.len()
            );
        }
        let _ = writeln!(m, "| step | outcome | would write |\n|---|---|---|");
        for s in &self.steps {
            let outcome = match &s.outcome {
                Outcome::Done(d) if d.is_empty() => "done".to_string(),
                Outcome::Done(d) => format!("done: {d}"),
                Outcome::Failed(_) => "**FAILED** (below)".to_string(),
                Outcome::Skipped(why) => format!("skipped: {why}"),
            };
            let writes: Vec<String> = s.writes.iter().map(|(p, c)| format!("{} `{}`", c.word(), p.display())).collect();
            let _ = writeln!(m, "| {}. {} | {} | {} |", s.number, s.name, cell(&outcome), writes.join("<br>"));
        }
        m.push('\n');
        if !self.stops.is_empty() {
            let _ = writeln!(m, "### Why a real run would stop\n");
            for (i, s) in self.stops.iter().enumerate() {
                let _ = writeln!(m, "{}. **{}**: {}", i + 1, s.step, cell(&s.reason));
            }
            m.push('\n');
        }
        m
    }
}

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
