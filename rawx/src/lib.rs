//! oxio rawx: the chunk server. It owns one volume folder of checksummed chunk files
//! (format in [`format`]) and serves them over a small, strict HTTP/1.1 protocol on
//! compio (io_uring when the kernel allows, polling otherwise), thread-per-core: each
//! worker thread runs its own compio runtime and its own `SO_REUSEPORT` listener.
//! Every read verifies the crc32c of each segment it touches. The service reports
//! itself to the conscience with a heartbeat thread, and a background scrubber
//! ([`scrub`]) re-reads every chunk at a bounded rate to find bit rot.
//!
//! Protocol: `PUT /<CHUNKID>` (Content-Length or chunked body, `x-oxio-chunk-*`
//! attributes) answers `201` once the chunk is durable; `GET`/`HEAD /<CHUNKID>` with
//! optional `Range`; `DELETE /<CHUNKID>`; `GET /info`; `GET /metrics` (Prometheus
//! text format, one registry per service, see [`metrics`]); `GET /scrub` (scrubber
//! state and corrupt chunks, JSON) and `POST /scrub` (start a pass now: `202`, or
//! `409` when one is running). A request may carry
//! `x-oxio-request-id` (the id of the client request it serves): it is recorded in
//! the request's `rawx_request` span and in the access line (target
//! [`oxio_common::ACCESS_LOG_TARGET`], off by default). With a
//! local-read folder, readers on the same host may also open chunk files through a
//! Unix socket ([`local`]) and read them without the TCP hop, and writers on the same
//! host may write a new chunk's data into its pending file themselves
//! ([`local_write`]).

#![warn(missing_docs)]

pub mod config;
pub mod conn;
pub mod direct;
pub mod error;
pub mod format;
pub mod handler;
pub mod heartbeat;
pub mod http;
pub mod local;
pub mod local_write;
pub mod metrics;
pub mod scan;
pub mod scrub;
pub mod server;
pub mod stats;
pub mod store;

pub use config::{Driver, RawxConfig};
pub use error::{Error, Result};
pub use server::{start, Started};
