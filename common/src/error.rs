//! Errors of the common crate: parsing ids, locations, policies and sizes.

/// Why a value could not be parsed or validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An id was not of the expected length or not hex.
    #[error("invalid {kind} id {value:?}: expected {expected}")]
    InvalidId {
        /// Which id ("chunk", "content", "container").
        kind: &'static str,
        /// The text given.
        value: String,
        /// What a valid one looks like.
        expected: &'static str,
    },
    /// A location was empty, had more than 4 levels or an empty level.
    #[error(
        "invalid location {0:?}: expected 1 to 4 non-empty dotted levels, e.g. site.rack.host.vol0"
    )]
    InvalidLocation(String),
    /// A storage policy name was not understood.
    #[error("unknown storage policy {0:?}: expected SINGLE, TWOCOPIES, THREECOPIES or EC<k><m> (e.g. EC42)")]
    InvalidPolicy(String),
    /// A byte size was not understood.
    #[error("invalid size {0:?}: expected a number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB)")]
    InvalidSize(String),
}

/// Result with the common [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
