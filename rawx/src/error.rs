//! The one error type of the rawx crate, and its mapping to HTTP answers.
//!
//! Every handler returns `Result<_, Error>`; [`Error::status`] and
//! [`Error::error_code`] are the only place where a failure becomes a status code and an
//! `x-oxio-error` header.

use std::io;

/// Everything that can go wrong in the chunk server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is inconsistent; the message says what to change.
    #[error("invalid rawx config: {0}")]
    Config(String),
    /// A system call failed; `context` names the operation.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A compio runtime could not be built or a worker did not start.
    #[error("runtime: {0}")]
    Runtime(String),
    /// A worker thread panicked.
    #[error("rawx worker thread panicked")]
    WorkerPanicked,
    /// No chunk with that id on this volume.
    #[error("chunk {0} not found")]
    ChunkNotFound(String),
    /// The chunk id is already used (complete or being written).
    #[error("chunk {0} already exists")]
    ChunkExists(String),
    /// The chunk file header is unreadable or inconsistent with the file.
    #[error("chunk {chunk}: corrupt header: {reason}")]
    CorruptHeader {
        /// Chunk id.
        chunk: String,
        /// What is wrong.
        reason: String,
    },
    /// A segment's data does not match its stored crc32c.
    #[error("chunk {chunk}: checksum mismatch in segment {segment}")]
    ChecksumMismatch {
        /// Chunk id.
        chunk: String,
        /// Index of the bad segment.
        segment: u64,
    },
    /// A metric could not be registered or encoded.
    #[error("metrics: {0}")]
    Metrics(String),
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A PUT without `Content-Length` nor `Transfer-Encoding: chunked`.
    #[error("length required")]
    LengthRequired,
    /// The request body is larger than the configured limit.
    #[error("body larger than {limit_bytes} bytes")]
    TooLarge {
        /// The limit that was passed.
        limit_bytes: u64,
    },
    /// The volume has no room for the chunk (its configured capacity or the file
    /// system is full); the client should write elsewhere.
    #[error("volume full (capacity {capacity_bytes} bytes; 0 = the file system is full)")]
    VolumeFull {
        /// The configured capacity, 0 when the file system itself ran out of space.
        capacity_bytes: u64,
    },
    /// The request head is larger than allowed.
    #[error("request head too large")]
    HeadTooLarge,
    /// The `Range` cannot be served from a chunk of `size` bytes.
    #[error("range not satisfiable for {size} bytes")]
    RangeNotSatisfiable {
        /// Data size of the chunk.
        size: u64,
    },
    /// A feature of HTTP this server does not implement.
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// The scrubber cannot start a pass now (one is running, or it is disabled).
    #[error("scrub: {0}")]
    ScrubConflict(String),
    /// The client stopped sending (early end of body, read timeout): no answer is possible.
    #[error("client connection lost: {0}")]
    ClientGone(String),
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an `io::Error` with what was being done.
    pub fn io(context: &'static str, source: io::Error) -> Self {
        Error::Io { context, source }
    }

    /// The HTTP status answered for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::ChunkNotFound(_) => 404,
            Error::MethodNotAllowed => 405,
            Error::ChunkExists(_) | Error::ScrubConflict(_) => 409,
            Error::LengthRequired => 411,
            Error::TooLarge { .. } => 413,
            Error::RangeNotSatisfiable { .. } => 416,
            Error::HeadTooLarge => 431,
            Error::VolumeFull { .. } => 507,
            Error::NotImplemented(_) => 501,
            Error::ClientGone(_) => 400,
            Error::Config(_)
            | Error::Io { .. }
            | Error::Runtime(_)
            | Error::WorkerPanicked
            | Error::Metrics(_)
            | Error::CorruptHeader { .. }
            | Error::ChecksumMismatch { .. } => 500,
        }
    }

    /// Value of the `x-oxio-error` header, for errors a client must tell apart.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Error::ChecksumMismatch { .. } => Some("checksum-mismatch"),
            Error::CorruptHeader { .. } => Some("corrupt-header"),
            Error::VolumeFull { .. } => Some("volume-full"),
            _ => None,
        }
    }

    /// Whether the data on disk is damaged (counted and logged as corruption).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::ChecksumMismatch { .. } | Error::CorruptHeader { .. }
        )
    }
}
