//! The oxio metadata directory: meta0 (prefix -> meta1 group table and group
//! membership), meta1 (accounts, access keys, container -> meta2 group) and meta2
//! (container contents, multipart uploads, stats and the rawx reverse index), each a set of Raft groups
//! (openraft) whose logs and state machines share one RocksDB per node. This crate owns
//! the storage layout, the Raft log store / state machine / transport, the command logic
//! of the three levels, the `Directory` gRPC service and the node lifecycle
//! ([`start`]): open, restart hosted groups, bootstrap a single-node directory, serve,
//! heartbeat to the conscience, and shut down cleanly. A replicated directory is
//! bootstrapped over several nodes by the `Bootstrap` RPC ([`cluster`], spread by
//! [`placement`]). Each node may serve Prometheus metrics ([`metrics`]).

#![warn(missing_docs)]

pub mod acl;
pub mod autogrow;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod error;
pub mod grow;
pub mod incomplete;
pub mod keys;
pub mod listing;
pub mod log_store;
pub mod meta0;
pub mod meta1;
pub mod meta1_admin;
pub mod meta2;
pub mod metrics;
pub mod multipart;
pub mod network;
pub mod node;
pub mod placement;
pub mod proposer;
pub mod purge;
pub mod purger;
pub mod read_barrier;
pub mod rebuild;
pub mod service;
pub mod sm_data;
pub mod snapshot;
pub mod snapshot_policy;
pub mod state_machine;
pub mod status;
pub mod tags;
mod typed_reads;
pub mod types;
pub mod version_tags;

pub use config::{BootstrapSpec, DirectoryConfig};
pub use error::{Error, Result};
pub use log_store::LogStore;
pub use state_machine::StateMachine;
pub use types::{Command, GroupKind, Reply, TypeConfig};

use node::Node;
use oxio_proto::v1::directory_server::DirectoryServer;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for every user of the database to let go of it.
const DB_RELEASE_WAIT: Duration = Duration::from_secs(10);

/// A started directory node.
#[derive(Debug)]
pub struct Started {
    /// The bound address (useful with port 0).
    pub addr: std::net::SocketAddr,
    /// Where `/metrics` is served, when asked for.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Serves until the shutdown token fires, then stops every group and closes the
    /// database.
    pub task: tokio::task::JoinHandle<Result<()>>,
}

/// Opens the store, restarts every group persisted on this node, binds, bootstraps
/// when asked and the node holds nothing yet, serves until `shutdown` is cancelled, then
/// shuts the Raft instances down cleanly (so a restart in the same process and data
/// directory works).
pub async fn start(config: DirectoryConfig, shutdown: CancellationToken) -> Result<Started> {
    start_with(config, None, shutdown).await
}

/// As [`start`], serving on `listener` (already bound, so its port cannot be taken
/// between reserving it and starting) instead of binding `config.listen`.
pub async fn start_on(
    config: DirectoryConfig,
    listener: std::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<Started> {
    start_with(config, Some(listener), shutdown).await
}

/// Validates `config` and starts the node inside its tracing span.
async fn start_with(
    config: DirectoryConfig,
    listener: Option<std::net::TcpListener>,
    shutdown: CancellationToken,
) -> Result<Started> {
    use tracing::Instrument;
    config.validate()?;
    let span = tracing::info_span!("directory", node = config.node_id);
    start_inner(config, listener, shutdown)
        .instrument(span)
        .await
}

async fn start_inner(
    config: DirectoryConfig,
    listener: Option<std::net::TcpListener>,
    shutdown: CancellationToken,
) -> Result<Started> {
    let data_dir = config.data_dir.clone();
    let db = {
        let dir = data_dir.clone();
        tokio::task::spawn_blocking(move || node::open_db(&dir)).await??
    };
    let db = Arc::new(db);

    let listener = match listener {
        Some(l) => {
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)?
        }
        None => tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?,
    };
    let addr = listener.local_addr()?;
    let metrics_listener = match config.metrics_listen {
        Some(m) => Some(metrics::bind(m).await?),
        None => None,
    };
    let rpc_metrics = Arc::new(metrics::DirectoryMetrics::new()?);
    let advertise = config.advertise.clone().unwrap_or_else(|| addr.to_string());

    let node = Node::open_with(
        config.node_id,
        advertise.clone(),
        db,
        data_dir.join("snapshots"),
        node::group_settings_with(
            config.snapshot_every_entries,
            config.log_kept_after_snapshot,
        )?,
    )
    .await?;
    node.set_location(&config.location);
    node.set_peers(&config.peers);

    let stop = shutdown.child_token();
    let dir_service = service::DirectoryService::new(node.clone());
    let typed_reads = Arc::new(typed_reads::TypedReads::new(
        dir_service.clone(),
        rpc_metrics.clone(),
    ));
    let svc = DirectoryServer::new(dir_service)
        .max_decoding_message_size(network::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(network::MAX_MESSAGE_BYTES);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let serve_stop = stop.clone();
    let rpc_layer = oxio_proto::rpc::RpcLayer::new(
        rpc_metrics.clone(),
        &[<DirectoryServer<service::DirectoryService> as tonic::server::NamedService>::NAME],
    );
    // Clients in this process (a gateway of the same host) call the same stack
    // directly, and the hottest read typed, until the node is told to stop or its
    // server ends.
    let in_process = oxio_proto::local::register(
        &advertise,
        tower::ServiceBuilder::new()
            .map_response(|r: http::Response<_>| r.map(tonic::body::Body::new))
            .layer(rpc_layer.clone())
            .service(svc.clone()),
    )
    .with_directory_reads(typed_reads);
    let server = tokio::spawn(async move {
        let serve = tonic::transport::Server::builder()
            .layer(rpc_layer)
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, serve_stop.clone().cancelled_owned());
        tokio::pin!(serve);
        // In-process calls end with the order to stop, not once the network
        // connections have drained; or with the server, if it ends first.
        let deregister = async move {
            serve_stop.cancelled().await;
            drop(in_process);
        };
        tokio::select! {
            r = &mut serve => r,
            () = deregister => serve.await,
        }
    });

    let purge_metrics = rpc_metrics.clone();
    let (metrics_addr, metrics_task) = match metrics_listener {
        Some((listener, at)) => {
            let weak = Arc::downgrade(&node);
            let task = metrics::spawn(listener, at, rpc_metrics, weak, stop.clone());
            (Some(at), Some(task))
        }
        None => (None, None),
    };

    if !config.conscience.is_empty() {
        let weak = Arc::downgrade(&node);
        let extra: oxio_proto::reporter::ExtraStats =
            Arc::new(move || weak.upgrade().map(|n| n.stats()).unwrap_or_default());
        let cfg = oxio_proto::reporter::ReporterConfig {
            conscience: config.conscience.clone(),
            service_type: oxio_proto::DIRECTORY_SERVICE_TYPE.into(),
            id: format!("directory-{}", config.node_id),
            addr: advertise.clone(),
            location: config.location.clone(),
            volume: Some(data_dir.clone()),
            interval: config.heartbeat_interval,
        };
        tokio::spawn(oxio_proto::reporter::run(cfg, Some(extra), stop.clone()));
    }

    if !config.conscience.is_empty() && !config.auto_grow_interval.is_zero() {
        autogrow::spawn(
            Arc::downgrade(&node),
            config.conscience.clone(),
            config.auto_grow_interval,
            stop.clone(),
        );
    }

    if !config.purge_interval.is_zero() {
        purger::spawn(
            Arc::downgrade(&node),
            purge_metrics,
            config.purge_interval,
            stop.clone(),
        );
    }

    if let Some(spec) = &config.bootstrap {
        if let Err(e) = node.bootstrap(spec).await {
            tracing::error!(error = %e, "bootstrap failed");
            stop.cancel();
            finish(node, server, metrics_task).await.ok();
            return Err(e);
        }
    }
    tracing::info!(%addr, advertise = %advertise, "directory serving");

    let task = tokio::spawn(async move {
        stop.cancelled().await;
        finish(node, server, metrics_task).await
    });
    Ok(Started {
        addr,
        metrics_addr,
        task,
    })
}

/// Waits for the servers to stop, stops every group and closes the database.
async fn finish(
    node: Arc<Node>,
    server: tokio::task::JoinHandle<std::result::Result<(), tonic::transport::Error>>,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
) -> Result<()> {
    let served = server.await;
    if let Some(t) = metrics_task {
        if let Err(e) = t.await {
            tracing::warn!(error = %e, "metrics server task failed");
        }
    }
    node.shutdown().await;
    let db = node.db().clone();
    drop(node);
    // Raft workers drop their handles shortly after shutdown; wait (bounded) so the
    // RocksDB lock is released before a restart opens the same directory.
    let deadline = Instant::now() + DB_RELEASE_WAIT;
    let mut db = db;
    loop {
        match Arc::try_unwrap(db) {
            Ok(db) => {
                drop(db);
                break;
            }
            Err(still_shared) => {
                if Instant::now() >= deadline {
                    tracing::warn!("database still referenced after shutdown");
                    break;
                }
                db = still_shared;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    tracing::info!("directory stopped");
    served??;
    Ok(())
}

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod multipart_tests;
#[cfg(test)]
mod replicated_tests;
#[cfg(test)]
mod retry_tests;
#[cfg(test)]
mod sm_tests;
#[cfg(test)]
mod spread_tests;
#[cfg(test)]
mod test_sm;
#[cfg(test)]
mod write_tests;
