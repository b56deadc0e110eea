//! Errors of the conscience service.

use std::path::PathBuf;

/// What can go wrong starting or running the conscience.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field is wrong; the message says which and how to fix it.
    #[error("invalid conscience config: {0}")]
    Config(String),
    /// A score expression does not parse or reads an unknown stat.
    #[error("score expression for service type `{service_type}`: {source}")]
    Expression {
        /// The service type (or "default") the expression is for.
        service_type: String,
        /// The parse or validation failure.
        source: crate::score::ScoreError,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The system error.
        source: std::io::Error,
    },
    /// Reading or writing the lock file failed.
    #[error("lock file {path}: {source}")]
    LockIo {
        /// The file (or its temporary sibling).
        path: PathBuf,
        /// The system error.
        source: std::io::Error,
    },
    /// The lock file exists but cannot be decoded.
    #[error("lock file {path} is corrupt: {detail}")]
    LockCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A metric could not be registered or encoded.
    #[error("metrics: {0}")]
    Metrics(String),
    /// A blocking task (lock file write) panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

/// Result of the conscience's fallible operations.
pub type Result<T> = std::result::Result<T, Error>;
