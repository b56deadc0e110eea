//! The oxio conscience owns the live view of the grid: a registry of services fed by
//! their heartbeats, the score of each service computed from its stats by a
//! configurable expression (rising slowly, dropping at once, 0 when silent), admin
//! score locks and the optional lock of services at their first registration (the
//! only state kept on disk), and placement, which picks the services
//! that receive the chunks of new data, weighted by score and spread across locations.
//! It serves the `Conscience` and `ConscienceAdmin` gRPC APIs of `oxio.proto`; [`score`] and [`placement`]
//! are pure modules that other crates and tests may use directly. With
//! [`ConscienceConfig::metrics_listen`] set it also serves Prometheus metrics
//! ([`metrics`]) on a separate plain-HTTP port.

#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod locks;
pub mod metrics;
pub mod placement;
pub mod registry;
pub mod score;
mod service;
pub mod shortfall;

pub use config::ConscienceConfig;
pub use error::{Error, Result};

use locks::LockStore;
use oxio_proto::v1::conscience_server::ConscienceServer;
use registry::Registry;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Largest gRPC request accepted, in bytes.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Concurrent requests served per client connection.
pub const MAX_CONCURRENT_REQUESTS_PER_CONNECTION: usize = 256;
/// Longest time one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A running conscience.
#[derive(Debug)]
pub struct Started {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// The server; ends after `shutdown` fires.
    pub task: tokio::task::JoinHandle<Result<()>>,
    /// The metrics server, when [`ConscienceConfig::metrics_listen`] is set.
    pub metrics: Option<metrics::MetricsServer>,
}

/// Validates `config`, loads the locks, binds the listen address and serves the
/// `Conscience` gRPC API in a spawned task until `shutdown` is cancelled.
pub async fn start(config: ConscienceConfig, shutdown: CancellationToken) -> Result<Started> {
    let expressions = config.validate()?;
    let store = LockStore::new(config.data_dir.as_deref())?;
    let state = store.load()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;
    let rise_step = u32::try_from(config.score_rise_step)
        .map_err(|_| Error::Config("score_rise_step must be positive".into()))?;
    tracing::info!(
        %addr,
        locks = state.locks.len(),
        lock_new_services = ?config.lock_new_services,
        lock_file = ?store.path(),
        timeout_ms = config.service_timeout.as_millis() as u64,
        "conscience listening"
    );
    let registry = Registry::new(expressions, config.service_timeout, rise_step, state.locks)
        .with_lock_new_services(config.lock_new_services, state.known);
    let counters = std::sync::Arc::new(metrics::ConscienceMetrics::new()?);
    let counters_for_layer = counters.clone();
    let service = service::ConscienceService::new(registry, store, counters.clone());
    let metrics = match config.metrics_listen {
        Some(listen) => Some(
            metrics::serve(
                listen,
                counters,
                service.registry_handle(),
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let service = std::sync::Arc::new(service);
    let admin =
        oxio_proto::v1::conscience_admin_server::ConscienceAdminServer::from_arc(service.clone())
            .max_decoding_message_size(MAX_REQUEST_BYTES);
    let svc = ConscienceServer::from_arc(service).max_decoding_message_size(MAX_REQUEST_BYTES);
    let rpc_layer = oxio_proto::rpc::RpcLayer::new(
        counters_for_layer,
        &[
            <ConscienceServer<service::ConscienceService> as tonic::server::NamedService>::NAME,
            <oxio_proto::v1::conscience_admin_server::ConscienceAdminServer<
                service::ConscienceService,
            > as tonic::server::NamedService>::NAME,
        ],
    );
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .concurrency_limit_per_connection(MAX_CONCURRENT_REQUESTS_PER_CONNECTION)
            .timeout(REQUEST_TIMEOUT)
            .layer(rpc_layer)
            .add_service(svc)
            .add_service(admin)
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await?;
        tracing::info!(%addr, "conscience stopped");
        Ok(())
    });
    Ok(Started {
        addr,
        task,
        metrics,
    })
}

/// Runs the conscience until `shutdown` is cancelled (for hosts such as `oxiod`).
pub async fn run(config: ConscienceConfig, shutdown: CancellationToken) -> Result<()> {
    let started = start(config, shutdown).await?;
    started
        .task
        .await
        .map_err(|e| Error::Task(format!("conscience server task: {e}")))?
}
