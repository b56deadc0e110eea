//! The wire between oxio services: generated tonic/prost code for `proto/oxio.proto`
//! (conscience and directory APIs, Raft transport), plus the client-side glue every
//! service shares to report itself to the conscience (system statistics and the
//! heartbeat loop), and what every gRPC boundary shares ([`rpc`]: the request id
//! passed between services, request metrics and spans).

#![allow(clippy::large_enum_variant)]

/// Generated messages and services of package `oxio.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("oxio.v1");
}

pub mod content;
pub mod reporter;
pub mod rpc;
pub mod sysstat;

pub use v1::conscience_client::ConscienceClient;
pub use v1::directory_client::DirectoryClient;

/// Opens a lazily connected gRPC channel to `host:port` with sane timeouts.
pub fn channel(addr: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let uri = if addr.starts_with("http://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Ok(tonic::transport::Endpoint::from_shared(uri)?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(30))
        .tcp_nodelay(true)
        .connect_lazy())
}
