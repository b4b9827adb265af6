//! Progress on stderr for hashing work that may take more than a second.
//! Hidden when stderr is not a terminal, so scripts and benchmarks see
//! nothing and pay (almost) nothing.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner counting bytes (total unknown), e.g. NAR bytes hashed.
pub fn bytes_spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}: {bytes} ({bytes_per_sec}, {elapsed})").expect("valid template"));
    bar.set_message(message);
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(250));
    }
    bar
}

/// A bar for a download of `total` bytes when the server says how many.
pub fn download_bar(url: &str, total: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr_with_hz(4));
    let template = if total.is_some() {
        "downloading {msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
    } else {
        "downloading {msg}: {bytes} ({bytes_per_sec})"
    };
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar.set_message(url.to_string());
    bar
}
