//! Errors of the directory crate and their mapping onto gRPC statuses.

use openraft::AnyError;
use openraft::StorageError;
use openraft::StorageIOError;

/// Everything that can go wrong inside a directory node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RocksDB refused a read or a write.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A file-system operation failed (snapshots, data directory).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A stored or transported JSON value did not decode.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A stored protobuf value did not decode.
    #[error("protobuf: {0}")]
    Prost(#[from] prost::DecodeError),
    /// The gRPC server could not bind or serve.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A background task panicked or was cancelled.
    #[error("task: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// openraft reported an error (rendered, because its error types are generic).
    #[error("raft: {0}")]
    Raft(String),
    /// The configuration is unusable; the message says what to change.
    #[error("config: {0}")]
    Config(String),
    /// Stored data is not what this code wrote.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A wait ran past its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The cluster is not in a state that allows the operation; the message says why.
    #[error("{0}")]
    Precondition(String),
    /// A listener could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// A metric could not be registered or encoded.
    #[error("metrics: {0}")]
    Metrics(String),
    /// Another directory node answered with an error or could not be reached.
    #[error("node {addr}: {message}")]
    Peer {
        /// The node's address.
        addr: String,
        /// What it answered (or why it could not be reached).
        message: String,
    },
}

/// Result of the directory crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps any displayable openraft error.
    pub(crate) fn raft(e: impl std::fmt::Display) -> Self {
        Error::Raft(e.to_string())
    }
}

impl From<StorageError<u64>> for Error {
    fn from(e: StorageError<u64>) -> Self {
        Error::Raft(e.to_string())
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Timeout(m) => tonic::Status::unavailable(m),
            Error::Config(m) => tonic::Status::invalid_argument(m),
            Error::Precondition(m) => tonic::Status::failed_precondition(m),
            e @ Error::Peer { .. } => tonic::Status::unavailable(e.to_string()),
            other => tonic::Status::internal(other.to_string()),
        }
    }
}

/// Maps a crate error onto an openraft log-store read error.
pub(crate) fn read_logs_err(e: impl Into<Error>) -> StorageError<u64> {
    let e: Error = e.into();
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

/// Maps a crate error onto an openraft log-store write error.
pub(crate) fn write_logs_err(e: impl Into<Error>) -> StorageError<u64> {
    let e: Error = e.into();
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

/// Maps a crate error onto an openraft vote read error.
pub(crate) fn read_vote_err(e: impl Into<Error>) -> StorageError<u64> {
    let e: Error = e.into();
    StorageIOError::read_vote(AnyError::new(&e)).into()
}

/// Maps a crate error onto an openraft vote write error.
pub(crate) fn write_vote_err(e: impl Into<Error>) -> StorageError<u64> {
    let e: Error = e.into();
    StorageIOError::write_vote(AnyError::new(&e)).into()
}

/// Maps a crate error onto an openraft state-machine read error.
pub(crate) fn read_sm_err(e: impl Into<Error>) -> StorageError<u64> {
    let e: Error = e.into();
    StorageIOError::read_state_machine(AnyError::new(&e)).into()
}

/// Maps a crate error onto an openraft state-machine write error.
pub(crate) fn write_sm_err(e: impl Into<Error>) -> StorageError<u64> {
    let e: Error = e.into();
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

/// Maps a crate error onto an openraft snapshot read error.
pub(crate) fn read_snap_err(e: impl Into<Error>) -> StorageError<u64> {
    let e: Error = e.into();
    StorageIOError::read_snapshot(None, AnyError::new(&e)).into()
}

/// Maps a crate error onto an openraft snapshot write error.
pub(crate) fn write_snap_err(e: impl Into<Error>) -> StorageError<u64> {
    let e: Error = e.into();
    StorageIOError::write_snapshot(None, AnyError::new(&e)).into()
}
