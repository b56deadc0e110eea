//! Progress bars of long transfers, drawn on stderr and only on a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Template of a byte transfer bar.
const BYTES_TEMPLATE: &str =
    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes}  {bytes_per_sec}  ETA {eta}";

/// A bar counting `len` bytes on stderr; hidden when `hidden` is set (the
/// `--no-progress` flag) or stderr is not a terminal.
pub fn bytes_bar(len: u64, hidden: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if hidden || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template(BYTES_TEMPLATE) {
        bar.set_style(style);
    }
    bar
}
