//! The heartbeat loop every service runs: sample system figures, add the service's own
//! stats, and send them to every conscience replica once per interval.

use crate::sysstat::SysStats;
use crate::v1::ServiceInfo;
use crate::ConscienceClient;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a service says about itself.
#[derive(Clone, Debug)]
pub struct ReporterConfig {
    /// Conscience addresses (`host:port`); the service reports to all of them.
    pub conscience: Vec<String>,
    /// Service type ("rawx", "directory", "s3").
    pub service_type: String,
    /// Stable service id.
    pub id: String,
    /// `host:port` the service answers on.
    pub addr: String,
    /// Dotted location.
    pub location: String,
    /// Folder whose device and file system give the io and space figures.
    pub volume: Option<PathBuf>,
    /// Time between two heartbeats.
    pub interval: Duration,
}

/// Service-specific figures added to each heartbeat (chunk count, requests/s, ...).
pub type ExtraStats = Arc<dyn Fn() -> HashMap<String, f64> + Send + Sync>;

/// Runs until `shutdown` fires. Failures to reach a conscience are logged once per
/// change of state and retried at the next interval.
pub async fn run(cfg: ReporterConfig, extra: Option<ExtraStats>, shutdown: CancellationToken) {
    let mut stats = SysStats::new(cfg.volume.as_deref());
    let mut clients: Vec<(
        String,
        Option<ConscienceClient<tonic::transport::Channel>>,
        bool,
    )> = cfg
        .conscience
        .iter()
        .map(|a| (a.clone(), None, true))
        .collect();
    let mut ticker = tokio::time::interval(cfg.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let sample = stats.sample();
        let mut figures = HashMap::from([
            ("cpu".to_string(), sample.cpu_idle),
            ("io".to_string(), sample.io_idle),
            ("space".to_string(), sample.space_free),
        ]);
        if let Some(extra) = &extra {
            figures.extend(extra());
        }
        let info = ServiceInfo {
            service_type: cfg.service_type.clone(),
            id: cfg.id.clone(),
            addr: cfg.addr.clone(),
            location: cfg.location.clone(),
            stats: figures,
        };
        for (addr, client, healthy) in clients.iter_mut() {
            if client.is_none() {
                match crate::channel(addr) {
                    Ok(ch) => *client = Some(ConscienceClient::new(ch)),
                    Err(e) => {
                        tracing::warn!(conscience = %addr, error = %e, "bad conscience address");
                        continue;
                    }
                }
            }
            let Some(c) = client.as_mut() else { continue };
            let mut req = tonic::Request::new(info.clone());
            req.set_timeout(Duration::from_secs(2));
            match c.heartbeat(req).await {
                Ok(_) => {
                    if !*healthy {
                        tracing::info!(conscience = %addr, id = %cfg.id, "conscience reachable again");
                    }
                    *healthy = true;
                }
                Err(e) => {
                    if *healthy {
                        tracing::warn!(conscience = %addr, id = %cfg.id, error = %e.message(), "heartbeat failed");
                    }
                    *healthy = false;
                }
            }
        }
    }
}
