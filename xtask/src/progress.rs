//! Progress on stderr for work that may take more than a second (hashing,
//! downloads, verifying).
//! Hidden when stderr is not a terminal, so scripts and benchmarks see
//! nothing and pay (almost) nothing.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner counting bytes (total unknown), e.g. NAR bytes hashed.
pub(crate) fn bytes_spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}: {bytes} ({bytes_per_sec}, {elapsed})").expect("valid template"));
    bar.set_message(message);
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(250));
    }
    bar
}

/// A bar of `total` bytes, or a byte counter when the total is unknown
/// (e.g. a download whose server does not say how many).
pub(crate) fn bytes_bar(message: String, total: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr_with_hz(4));
    let template = if total.is_some() {
        "{msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
    } else {
        "{msg}: {bytes} ({bytes_per_sec})"
    };
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar.set_message(message);
    bar
}
