//! The HTTP server: hyper connections served by the s3s service.

use crate::auth::{DirectoryAuth, KeyStore};
use crate::front::{Front, RecordOperation};
use crate::metrics::S3Metrics;
use crate::service::OxioS3;
use crate::storage_class::StorageClasses;
use crate::{Error, Result};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use oxio_sdk::Client;
use s3s::auth::S3Auth;
use s3s::config::{S3Config as S3ConfigValues, StaticConfigProvider};
use s3s::host::SingleDomain;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::S3;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Where and how the gateway serves.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// Listen address (port 0 allowed).
    pub listen: SocketAddr,
    /// Region reported to clients.
    pub region: String,
    /// Domain for virtual-hosted-style requests (`bucket.DOMAIN`); None: path style
    /// only.
    pub base_domain: Option<String>,
    /// `x-amz-storage-class` → storage policy name ("" = the bucket default and the
    /// size rule decide); see [`crate::default_storage_classes`].
    pub storage_classes: HashMap<String, String>,
}

/// A running gateway.
pub struct Started {
    /// Bound address.
    pub addr: SocketAddr,
    /// The accept loop; ends after shutdown.
    pub task: tokio::task::JoinHandle<()>,
}

/// The S3 HTTP service: routing, SigV4 verification with `auth`, virtual-hosted-style
/// buckets under `base_domain` (path style always works). `max_clock_skew_secs`
/// overrides the allowed request-time skew (default 15 minutes; tests replaying
/// dated examples lift it).
pub fn build_service(
    s3: impl S3,
    auth: impl S3Auth,
    base_domain: Option<&str>,
    max_clock_skew_secs: Option<u32>,
) -> Result<S3Service> {
    let mut builder = S3ServiceBuilder::new(s3);
    builder.set_auth(auth);
    builder.set_access(RecordOperation);
    if let Some(domain) = base_domain {
        let host = SingleDomain::new(domain)
            .map_err(|e| Error::Config(format!("base domain {domain:?}: {e}")))?;
        builder.set_host(host);
    }
    if let Some(skew) = max_clock_skew_secs {
        let mut config = S3ConfigValues::default();
        config.presigned_url_max_skew_time_secs = skew;
        builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(config))));
    }
    Ok(builder.build())
}

/// Largest buffer of one HTTP/1 connection, each way: hyper queues response body
/// pieces up to this many bytes and sends them in one `writev`, and reads request
/// bytes in reads up to this size. Hyper's default (about 400 KiB) cut a large GET
/// into `writev`s of 0.5 to 1 MiB, each waking the client again; with this buffer and
/// 16 pieces queued by the reader, a pinned 16 MiB GET cost the gateway 418 instead
/// of 511 ms of CPU per GiB (docs/performance.md). Request headers are limited to
/// [`crate::front::MAX_HEADER_SECTION_BYTES`] by [`crate::front::Front`], before
/// the signature is checked.
pub const CONN_BUF_BYTES: usize = 4 * 1024 * 1024;

/// Binds and serves until `shutdown` is cancelled.
pub async fn start(config: S3Config, sdk: Client, shutdown: CancellationToken) -> Result<Started> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let keys = KeyStore::new(sdk.clone());
    let metrics = Arc::new(S3Metrics::new(sdk.config().counters.clone())?);
    let classes = StorageClasses::new(&config.storage_classes)?;
    let s3 = OxioS3::new(sdk, keys.clone(), config.region.clone())
        .with_metrics(metrics.clone())
        .with_storage_classes(classes);
    let service = build_service(s3, DirectoryAuth(keys), config.base_domain.as_deref(), None)?;
    let service = Front::new(service, metrics);
    tracing::info!(%addr, region = %config.region, "S3 gateway listening");
    let task = tokio::spawn(async move {
        let conns = CancellationToken::new();
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let service = service.clone();
            let stop = conns.clone();
            tokio::spawn(async move {
                let mut builder = ConnBuilder::new(TokioExecutor::new());
                builder.http1().max_buf_size(CONN_BUF_BYTES);
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    }
                    _ = stop.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
                    }
                }
            });
        }
        conns.cancel();
        tracing::info!("S3 gateway stopped");
    });
    Ok(Started { addr, task })
}
