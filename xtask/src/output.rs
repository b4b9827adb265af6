//! The ground floor: how every verb writes its output and which exit
//! statuses all of them share. Nothing here knows any verb.

use std::io::Write;

use anyhow::{Context, Result};

/// Exit status for "the command could not do its job": bad input (a usage
/// error included), I/O, the network, a stdout closed before the output was
/// written (`| head`). Verbs with a verdict (diff-headers, smoke, --check
/// modes) document their own codes on top of this one.
pub const EXIT_ERROR: u8 = 1;

pub(crate) const STDOUT_CLOSED: &str =
    "cannot write the output: stdout was closed before it was all written (e.g. by `| head`); the output is incomplete";

/// Writes `text` to stdout and flushes it. A stdout closed early (`| head`,
/// `| true`) is an error saying so, never a panic: verbs print through this.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).context(STDOUT_CLOSED)
}

/// [`emit`] with a newline.
pub fn emit_line(text: &str) -> Result<()> {
    emit(&format!("{text}\n"))
}

/// The safety net under `println!`/`eprintln!`, which panic when their stream
/// is a pipe nobody reads any more: such a panic is reported as the error it
/// is (exit 1, no backtrace). Any other panic is left alone (a bug: 101).
pub(crate) mod closed_output {
    use std::any::Any;

    /// The message std's print macros panic with: "failed printing to stdout: ...".
    pub(crate) fn stream(payload: &(dyn Any + Send)) -> Option<&'static str> {
        let text = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied())?;
        ["stdout", "stderr"].into_iter().find(|s| text.starts_with(&format!("failed printing to {s}")))
    }

    pub(crate) fn message(stream: &str) -> String {
        if stream == "stdout" {
            super::STDOUT_CLOSED.to_owned()
        } else {
            "cannot write messages: stderr was closed early".to_owned()
        }
    }

    /// Keeps the default hook for real panics, silences the closed-stream ones.
    pub(crate) fn install_hook() {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if stream(info.payload()).is_none() {
                default(info);
            }
        }));
    }
}
