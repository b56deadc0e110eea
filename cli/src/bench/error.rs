//! Errors of `oxio bench`: bad options, a target that cannot be set up, a phase that
//! failed. Failed measured requests are not errors: they are counted in the report.

/// Why a benchmark could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options do not describe a runnable benchmark; the message says what to fix.
    #[error("{0}")]
    Usage(String),
    /// The endpoint URL is not usable.
    #[error("endpoint {url:?}: {detail}")]
    Endpoint {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Setting up the target (bucket, in-process rawx) failed.
    #[error("{what}: {detail}")]
    Setup {
        /// The step that failed.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// A phase whose every request must succeed (preparing objects) had failures.
    #[error("{phase}: {failed} of {total} requests failed (first kinds: {kinds})")]
    Phase {
        /// The phase: "prepare", ...
        phase: &'static str,
        /// Requests that failed.
        failed: u64,
        /// Requests attempted.
        total: u64,
        /// The most frequent error kinds.
        kinds: String,
    },
    /// The in-process rawx failed to start or stop.
    #[error("local rawx: {0}")]
    Rawx(#[from] oxio_rawx::Error),
    /// The histogram could not be built.
    #[error("latency histogram: {0}")]
    Histogram(String),
    /// A worker task panicked or was cancelled.
    #[error("bench worker: {0}")]
    Worker(String),
}

/// Result of the bench module.
pub type Result<T> = std::result::Result<T, Error>;
