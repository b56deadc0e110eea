//! Errors of the gateway itself, and the one place where sdk errors become S3 errors.

use s3s::{S3Error, S3ErrorCode};

/// Failures starting or running the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A setting is invalid.
    #[error("invalid S3 gateway setting: {0}")]
    Config(String),
    /// A metric could not be registered or encoded.
    #[error("metrics: {0}")]
    Metrics(String),
    /// Other I/O failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Result with the gateway [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Maps an sdk error to the S3 error a client expects.
pub fn s3_error(e: oxio_sdk::Error) -> S3Error {
    use oxio_sdk::Error as E;
    if matches!(e, E::QuotaExceeded) {
        // Not an AWS code (AWS has no bucket quotas); the name Ceph's gateway uses.
        let mut err = S3Error::with_message(
            S3ErrorCode::Custom("QuotaExceeded".into()),
            "The bucket's quota does not leave room for this object",
        );
        err.set_status_code(http::StatusCode::FORBIDDEN);
        return err;
    }
    let code = match &e {
        E::NoSuchContainer => S3ErrorCode::NoSuchBucket,
        E::ContainerExists => S3ErrorCode::BucketAlreadyOwnedByYou,
        E::ContainerNotEmpty => S3ErrorCode::BucketNotEmpty,
        E::NoSuchKey => S3ErrorCode::NoSuchKey,
        E::NoSuchAccessKey => S3ErrorCode::InvalidAccessKeyId,
        E::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
        E::InvalidRange => S3ErrorCode::InvalidRange,
        E::BadDigest => S3ErrorCode::BadDigest,
        E::PreconditionFailed => S3ErrorCode::PreconditionFailed,
        E::QuotaExceeded => S3ErrorCode::AccessDenied,
        E::IncompleteBody { .. } => S3ErrorCode::IncompleteBody,
        E::Body(_) => S3ErrorCode::IncompleteBody,
        E::Quorum { .. } | E::Placement(_) | E::Unavailable(_) => S3ErrorCode::ServiceUnavailable,
        E::Internal(_) => S3ErrorCode::InternalError,
    };
    if code == S3ErrorCode::InternalError || code == S3ErrorCode::ServiceUnavailable {
        tracing::error!(error = %e, "request failed");
    }
    S3Error::with_message(code, e.to_string())
}
