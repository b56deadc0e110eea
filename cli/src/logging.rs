//! Log setup for the binaries: `tracing` to stderr, text or JSON, filtered by
//! `RUST_LOG`. Without it: `info`, less the per-request access lines
//! ([`oxio_common::ACCESS_LOG_TARGET`]) and the chatter of openraft, h2, tower and
//! hyper; `RUST_LOG=info` shows the access lines too.
//!
//! Lines are formatted where they are logged and written to stderr by one log
//! thread: a request never waits on a `write` to stderr, and lines logged while the
//! thread writes go out together in one write. At most [`MAX_QUEUED_LINES`] wait;
//! past that, logging waits for the thread rather than dropping lines.
//!
//! Text lines carry terminal colours only when stderr is a terminal and `NO_COLOR`
//! is unset: a log file or a pipe gets plain text (and no time is spent on escapes).

use std::io::{BufWriter, IsTerminal, Stderr};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};

/// Most log lines queued for the log thread.
pub const MAX_QUEUED_LINES: usize = 65_536;

/// The filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str =
    "info,oxio_access=warn,openraft=warn,h2=warn,tower=warn,hyper=warn";

/// Bytes the log thread gathers before a write (it also writes whenever the queue
/// runs empty).
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Installs the global subscriber. Keep the guard until the process ends: dropping
/// it writes out the lines still queued.
#[must_use = "dropping the guard stops the log thread"]
pub fn init(json: bool) -> WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(MAX_QUEUED_LINES)
        .thread_name("oxio-log")
        .finish(BufWriter::<Stderr>::with_capacity(
            WRITE_BUFFER_BYTES,
            std::io::stderr(),
        ));
    let ansi = colours_wanted(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}

/// Whether text lines get terminal colours: only on a terminal, and not when
/// `NO_COLOR` is set to anything but the empty string (no-color.org).
fn colours_wanted(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::{colours_wanted, DEFAULT_FILTER};
    use std::ffi::OsStr;
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn the_default_filter_leaves_out_access_lines_only() {
        let subscriber =
            tracing_subscriber::registry().with(tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
        tracing::subscriber::with_default(subscriber, || {
            assert!(!tracing::enabled!(target: oxio_common::ACCESS_LOG_TARGET, Level::INFO));
            assert!(tracing::enabled!(target: oxio_common::ACCESS_LOG_TARGET, Level::WARN));
            assert!(tracing::enabled!(target: "oxio_s3_proxy::server", Level::INFO));
            assert!(!tracing::enabled!(target: "oxio_s3_proxy::server", Level::DEBUG));
        });
        let explicit =
            tracing_subscriber::registry().with(tracing_subscriber::EnvFilter::new("info"));
        tracing::subscriber::with_default(explicit, || {
            assert!(tracing::enabled!(target: oxio_common::ACCESS_LOG_TARGET, Level::INFO));
        });
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours_wanted(true, None));
        assert!(colours_wanted(true, Some(OsStr::new(""))));
        assert!(!colours_wanted(true, Some(OsStr::new("1"))));
        assert!(!colours_wanted(false, None));
        assert!(!colours_wanted(false, Some(OsStr::new(""))));
    }
}
