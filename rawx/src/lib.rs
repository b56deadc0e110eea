//! oxio rawx: the chunk server. It owns one volume folder of checksummed chunk files
//! (format in [`format`]) and serves them over a small, strict HTTP/1.1 protocol on
//! compio (io_uring when the kernel allows, polling otherwise), thread-per-core: each
//! worker thread runs its own compio runtime and its own `SO_REUSEPORT` listener.
//! Every read verifies the crc32c of each segment it touches. The service reports
//! itself to the conscience with a heartbeat thread.
//!
//! Protocol: `PUT /<CHUNKID>` (Content-Length or chunked body, `x-oxio-chunk-*`
//! attributes) answers `201` once the chunk is durable; `GET`/`HEAD /<CHUNKID>` with
//! optional `Range`; `DELETE /<CHUNKID>`; `GET /info`.

#![warn(missing_docs)]

pub mod config;
pub mod conn;
pub mod error;
pub mod format;
pub mod handler;
pub mod heartbeat;
pub mod http;
pub mod scan;
pub mod server;
pub mod stats;
pub mod store;

pub use config::{Driver, RawxConfig};
pub use error::{Error, Result};
pub use server::{start, Started};
