//! The wire between oxio services: generated tonic/prost code for `proto/oxio.proto`
//! (conscience and directory APIs, Raft transport), plus the client-side glue every
//! service shares to report itself to the conscience (system statistics and the
//! heartbeat loop), and what every gRPC boundary shares ([`rpc`]: the request id
//! passed between services, request metrics and spans; [`local`]: calls between
//! services of one process without the network).

#![allow(clippy::large_enum_variant)]

/// Generated messages and services of package `oxio.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("oxio.v1");
}

pub mod content;
pub mod local;
pub mod reporter;
pub mod rpc;
pub mod sysstat;

pub use v1::conscience_client::ConscienceClient;
pub use v1::directory_client::DirectoryClient;

/// Service type directory nodes register under with the conscience.
pub const DIRECTORY_SERVICE_TYPE: &str = "directory";

/// The addresses of `services` (all of them, or with `usable_only` those up with a
/// score above 0: a service locked at 0 or full takes no new work), at most `max`,
/// sorted, without duplicates.
pub fn service_addrs(
    services: Vec<v1::ServiceState>,
    usable_only: bool,
    max: usize,
) -> Vec<String> {
    let mut addrs: Vec<String> = services
        .into_iter()
        .filter(|s| !usable_only || (s.up && s.score > 0))
        .filter_map(|s| s.info.map(|i| i.addr))
        .filter(|a| !a.is_empty())
        .take(max)
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}

/// Longest a call through [`channel`] (or in-process, [`local`]) may take.
pub const RPC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Opens a lazily connected gRPC channel to `host:port` with sane timeouts.
pub fn channel(addr: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let uri = if addr.starts_with("http://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Ok(tonic::transport::Endpoint::from_shared(uri)?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(RPC_TIMEOUT)
        .tcp_nodelay(true)
        .connect_lazy())
}
