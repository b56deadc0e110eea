//! Errors of the sdk, in the terms a front end needs to answer its own clients.

/// What went wrong in an sdk call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The container does not exist.
    #[error("no such container")]
    NoSuchContainer,
    /// The container already exists.
    #[error("container already exists")]
    ContainerExists,
    /// The container still holds objects.
    #[error("container not empty")]
    ContainerNotEmpty,
    /// The object does not exist.
    #[error("no such key")]
    NoSuchKey,
    /// The access key is unknown.
    #[error("unknown access key")]
    NoSuchAccessKey,
    /// The caller gave something invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The requested range does not overlap the object.
    #[error("requested range not satisfiable")]
    InvalidRange,
    /// The condition of a conditional write did not hold (the key holds an object
    /// when none was allowed, or one with another ETag).
    #[error("at least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    /// The write would take the container over its quota of stored bytes.
    #[error("the write would take the container over its quota")]
    QuotaExceeded,
    /// The uploaded bytes do not match the digest the client sent.
    #[error("content MD5 mismatch")]
    BadDigest,
    /// The body ended before the announced length, or went past it.
    #[error("body length {got} does not match the announced {expected}")]
    IncompleteBody {
        /// Length announced.
        expected: u64,
        /// Length received.
        got: u64,
    },
    /// Reading the client's body failed.
    #[error("reading the request body failed: {0}")]
    Body(String),
    /// Not enough rawx took (or gave back) their fragments.
    #[error("quorum not reached: {ok} of {needed} needed fragments ({detail})")]
    Quorum {
        /// Fragments that succeeded.
        ok: usize,
        /// Fragments needed.
        needed: usize,
        /// What failed.
        detail: String,
    },
    /// Not enough services to place a metachunk.
    #[error("placement failed: {0}")]
    Placement(String),
    /// A service could not be reached or kept failing until the deadline.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Stored data is inconsistent (e.g. a content without its chunks).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with the sdk [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_) | Error::Quorum { .. } | Error::Placement(_)
        )
    }
}
