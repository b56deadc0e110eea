//! Shared vocabulary of oxio: identifiers (container, content and chunk ids), service
//! locations and their distance, storage policies, byte sizes and the error type for
//! parsing them, the names and messages of the local-read and local-write sockets
//! ([`local_read`], [`local_write`]), the checksums of chunk data ([`segments`]) and
//! the aligned buffers of direct transfers ([`aligned`]). No async runtime and no I/O
//! live here, so every crate can depend on it.

pub mod aligned;
pub mod error;
pub mod ids;
pub mod local_read;
pub mod local_write;
pub mod location;
pub mod policy;
pub mod segments;
pub mod size;

pub use error::{Error, Result};
pub use ids::{cid_prefix, container_id, name_prefix, ChunkId, ContentId, PREFIX_COUNT};
pub use location::Location;
pub use policy::StoragePolicy;
pub use size::ByteSize;

/// `tracing` target of the per-request access lines of the S3 gateway (`s3 access`)
/// and of the rawx (`rawx access`). They are info-level lines, left out by the
/// binaries' default filter (one line per request is megabytes per second at full
/// load, and formatting it cost the pinned 4 KiB GET a tenth of its rate); any
/// `RUST_LOG` that lets `info` through for this target (`RUST_LOG=info`) shows them.
pub const ACCESS_LOG_TARGET: &str = "oxio_access";

/// Objects strictly smaller than this are stored inline in their meta2 record.
pub const DEFAULT_INLINE_MAX_BYTES: u64 = 32 * 1024;
/// Data bytes per erasure-coded stripe.
pub const DEFAULT_STRIPE_BYTES: usize = 1024 * 1024;
/// Data bytes per metachunk (the unit placed on one set of rawx).
pub const DEFAULT_METACHUNK_BYTES: u64 = 256 * 1024 * 1024;

/// Default ports of the services (DESIGN.md).
pub mod ports {
    /// Conscience gRPC.
    pub const CONSCIENCE: u16 = 6000;
    /// Directory gRPC.
    pub const DIRECTORY: u16 = 6001;
    /// S3 HTTP.
    pub const S3: u16 = 6007;
    /// Swift HTTP.
    pub const SWIFT: u16 = 6008;
    /// First rawx; rawx n listens on `RAWX_BASE + n`.
    pub const RAWX_BASE: u16 = 6200;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
