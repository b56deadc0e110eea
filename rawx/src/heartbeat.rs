//! The heartbeat toward the conscience: a std thread running a small tokio
//! current-thread runtime around `oxio_proto::reporter::run`, so the compio workers
//! never need tokio.

use crate::error::{Error, Result};
use crate::stats::Stats;
use oxio_proto::reporter::{ExtraStats, ReporterConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Figures added to each heartbeat: `chunks`, `bytes`, `reqs_per_s`, `checksum_errors`.
pub fn extra_stats(stats: Arc<Stats>) -> ExtraStats {
    Arc::new(move || {
        HashMap::from([
            ("chunks".to_string(), stats.chunks() as f64),
            ("bytes".to_string(), stats.bytes() as f64),
            ("reqs_per_s".to_string(), stats.take_rate()),
            (
                "checksum_errors".to_string(),
                stats.checksum_errors() as f64,
            ),
        ])
    })
}

/// Starts the heartbeat thread; it ends when `shutdown` fires.
pub fn spawn(
    cfg: ReporterConfig,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("build heartbeat runtime", e))?;
    std::thread::Builder::new()
        .name(format!("{}-heartbeat", cfg.id))
        .spawn(move || {
            runtime.block_on(oxio_proto::reporter::run(
                cfg,
                Some(extra_stats(stats)),
                shutdown,
            ));
        })
        .map_err(|e| Error::io("spawn heartbeat thread", e))
}
