//! Progress bars for long command-line work (`peerix cid` of a large file, `peerix ipfs add` and
//! `cat`): on stderr, and only when stderr is a terminal, so scripts and pipes see nothing.

use std::io::{IsTerminal, Read};

use indicatif::{ProgressBar, ProgressBarIter, ProgressStyle};

/// Reads of `inner` counted on a bar: `total` bytes when known, a running count otherwise.
pub fn reading<R: Read>(inner: R, total: Option<u64>, what: &str) -> ProgressBarIter<R> {
    bar(total, what).wrap_read(inner)
}

fn bar(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{msg} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{msg} {spinner} {binary_bytes} {binary_bytes_per_sec}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}
