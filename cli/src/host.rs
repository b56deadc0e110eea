//! Starting and stopping the services of one host inside one process.

use anyhow::{Context, Result};
use oxio_conscience::ConscienceConfig;
use oxio_directory::{BootstrapSpec, DirectoryConfig};
use oxio_rawx::RawxConfig;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Default heartbeat period of every service.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The services running in this process.
pub struct Host {
    shutdown: CancellationToken,
    heartbeat: Duration,
    directory_peers: Vec<String>,
    directory_auto_grow: Duration,
    conscience: Option<oxio_conscience::Started>,
    directory: Vec<oxio_directory::Started>,
    rawx: Vec<oxio_rawx::Started>,
    s3: Option<oxio_s3_proxy::Started>,
}

impl Host {
    /// An empty host; services stop when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Host {
            shutdown,
            heartbeat: HEARTBEAT,
            directory_peers: Vec::new(),
            directory_auto_grow: oxio_directory::config::DEFAULT_AUTO_GROW_INTERVAL,
            conscience: None,
            directory: Vec::new(),
            rawx: Vec::new(),
            s3: None,
        }
    }

    /// Sets the heartbeat period of the services started from now on.
    pub fn set_heartbeat(&mut self, every: Duration) {
        self.heartbeat = every;
    }

    /// Sets the directory node addresses the directory nodes started from now on may
    /// ask for meta0 (`directory-addrs`).
    pub fn set_directory_peers(&mut self, peers: Vec<String>) {
        self.directory_peers = peers;
    }

    /// Sets how often the directory nodes started from now on look for joined nodes
    /// to give meta2 groups (zero: never; see `oxio_directory::autogrow`).
    pub fn set_directory_auto_grow(&mut self, every: Duration) {
        self.directory_auto_grow = every;
    }

    /// Starts a conscience.
    pub async fn start_conscience(&mut self, cfg: ConscienceConfig) -> Result<SocketAddr> {
        let s = oxio_conscience::start(cfg, self.shutdown.child_token())
            .await
            .context("starting the conscience")?;
        let addr = s.addr;
        self.conscience = Some(s);
        Ok(addr)
    }

    /// Starts a directory node (a host may run several: `oxiod dev
    /// --directory-replicas`).
    #[allow(clippy::too_many_arguments)]
    pub async fn start_directory(
        &mut self,
        node_id: u64,
        listen: SocketAddr,
        data_dir: std::path::PathBuf,
        location: String,
        conscience: Vec<String>,
        bootstrap: Option<BootstrapSpec>,
        metrics_listen: Option<SocketAddr>,
    ) -> Result<SocketAddr> {
        let mut cfg = DirectoryConfig::new(node_id, data_dir);
        cfg.listen = listen;
        cfg.metrics_listen = metrics_listen;
        cfg.location = location;
        cfg.conscience = conscience;
        cfg.bootstrap = bootstrap;
        cfg.heartbeat_interval = self.heartbeat;
        cfg.peers = self.directory_peers.clone();
        cfg.auto_grow_interval = self.directory_auto_grow;
        let s = oxio_directory::start(cfg, self.shutdown.child_token())
            .await
            .with_context(|| format!("starting directory node {node_id}"))?;
        let addr = s.addr;
        self.directory.push(s);
        Ok(addr)
    }

    /// Starts one rawx.
    pub fn start_rawx(
        &mut self,
        mut cfg: RawxConfig,
        conscience: Vec<String>,
    ) -> Result<(SocketAddr, &'static str)> {
        cfg.conscience = conscience;
        cfg.heartbeat_interval = self.heartbeat;
        let id = cfg.id.clone();
        let s = oxio_rawx::start(cfg, self.shutdown.child_token())
            .with_context(|| format!("starting {id}"))?;
        let out = (s.addr, s.driver);
        self.rawx.push(s);
        Ok(out)
    }

    /// Starts the S3 gateway.
    pub async fn start_s3(
        &mut self,
        listen: SocketAddr,
        region: String,
        storage_classes: std::collections::HashMap<String, String>,
        sdk: oxio_sdk::Client,
    ) -> Result<SocketAddr> {
        let mut classes = oxio_s3_proxy::default_storage_classes();
        classes.extend(storage_classes);
        let s = oxio_s3_proxy::start(
            oxio_s3_proxy::S3Config {
                listen,
                region,
                base_domain: None,
                storage_classes: classes,
            },
            sdk,
            self.shutdown.child_token(),
        )
        .await
        .context("starting the S3 gateway")?;
        let addr = s.addr;
        self.s3 = Some(s);
        Ok(addr)
    }

    /// Stops everything: front end first, then storage, directory, conscience.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        if let Some(s) = self.s3 {
            let _ = s.task.await;
        }
        let rawx = self.rawx;
        tokio::task::spawn_blocking(move || {
            for r in rawx {
                if let Err(e) = r.join() {
                    tracing::warn!(error = %e, "rawx stopped with an error");
                }
            }
        })
        .await
        .context("joining rawx threads")?;
        for d in self.directory {
            match d.task.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "directory stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "directory task failed"),
                Ok(Ok(())) => {}
            }
        }
        if let Some(c) = self.conscience {
            let _ = c.task.await;
        }
        Ok(())
    }
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// Raises this process's soft limit on open files to its hard limit, as servers that
/// hold many files and sockets do (chunk files that local reads keep open, RocksDB's
/// tables, client connections). Returns the soft limit now in force; a limit that
/// cannot be read or raised is left as it is.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    // An unlimited hard limit: the kernel's default ceiling (`fs.nr_open`).
    const NO_HARD_LIMIT: u64 = 1 << 20;
    let limit = getrlimit(Resource::Nofile);
    let target = limit.maximum.unwrap_or(NO_HARD_LIMIT);
    if limit.current.is_some_and(|soft| soft < target) {
        let raised = rustix::process::Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, soft = ?limit.current, "open-file limit left as it is");
        }
    }
    getrlimit(Resource::Nofile).current
}
