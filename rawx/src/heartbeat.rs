//! The heartbeat toward the conscience: a std thread running a small tokio
//! current-thread runtime around `oxio_proto::reporter::run`, so the compio workers
//! never need tokio.

use crate::error::{Error, Result};
use crate::stats::Stats;
use oxio_proto::reporter::{ExtraStats, ReporterConfig};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Figures added to each heartbeat: `chunks`, `bytes`, `reqs_per_s`, `checksum_errors`;
/// with a capacity, `space` (replacing the file system's figure) is the free share of
/// the capacity, counting the file system's free bytes when they are fewer.
pub fn extra_stats(stats: Arc<Stats>, capacity: Option<(u64, PathBuf)>) -> ExtraStats {
    Arc::new(move || {
        let mut figures = HashMap::from([
            ("chunks".to_string(), stats.chunks() as f64),
            ("bytes".to_string(), stats.bytes() as f64),
            ("reqs_per_s".to_string(), stats.take_rate()),
            (
                "checksum_errors".to_string(),
                stats.checksum_errors() as f64,
            ),
        ]);
        if let Some((capacity, volume)) = &capacity {
            let used = stats.bytes() + stats.reserved();
            figures.insert(
                "space".to_string(),
                capacity_space_pct(
                    *capacity,
                    used,
                    oxio_proto::sysstat::space_avail_bytes(volume),
                ),
            );
        }
        figures
    })
}

/// Free percentage of a volume limited to `capacity` bytes holding `used` bytes, on a
/// file system with `fs_avail` bytes left (None: unknown, not counted).
pub fn capacity_space_pct(capacity: u64, used: u64, fs_avail: Option<u64>) -> f64 {
    if capacity == 0 {
        return 0.0;
    }
    let mut free = capacity.saturating_sub(used);
    if let Some(avail) = fs_avail {
        free = free.min(avail);
    }
    (100.0 * free as f64 / capacity as f64).clamp(0.0, 100.0)
}

/// Starts the heartbeat thread; it ends when `shutdown` fires.
pub fn spawn(
    cfg: ReporterConfig,
    stats: Arc<Stats>,
    capacity: Option<u64>,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>> {
    let capacity = capacity.zip(cfg.volume.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("build heartbeat runtime", e))?;
    std::thread::Builder::new()
        .name(format!("{}-heartbeat", cfg.id))
        .spawn(move || {
            runtime.block_on(oxio_proto::reporter::run(
                cfg,
                Some(extra_stats(stats, capacity)),
                shutdown,
            ));
        })
        .map_err(|e| Error::io("spawn heartbeat thread", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_space_is_the_free_share() {
        assert_eq!(capacity_space_pct(1000, 0, None), 100.0);
        assert_eq!(capacity_space_pct(1000, 250, None), 75.0);
        assert_eq!(capacity_space_pct(1000, 2000, None), 0.0);
        // The file system has less room than the capacity says: it wins.
        assert_eq!(capacity_space_pct(1000, 0, Some(100)), 10.0);
        assert_eq!(capacity_space_pct(0, 0, None), 0.0);
    }

    #[test]
    fn extra_stats_replace_space_only_with_a_capacity() {
        let stats = Arc::new(Stats::new(3, 600));
        let dir = std::env::temp_dir();
        let plain = extra_stats(stats.clone(), None)();
        assert!(!plain.contains_key("space"));
        assert_eq!(plain["chunks"], 3.0);
        let capped = extra_stats(stats, Some((1000, dir)))();
        assert_eq!(capped["space"], 40.0);
    }
}
