//! When a group builds a snapshot.
//!
//! A snapshot copies the group's whole state, and lets the log before it be purged.
//! Taken every fixed number of entries, its cost grows with the state while its
//! benefit does not: a group holding millions of objects would rewrite all of them
//! every few seconds under a steady write load. So a group snapshots once both
//!
//! - at least [`SnapshotRule::min_entries`] entries were applied since the last
//!   snapshot, and
//! - the log written since then is at least as large as the last snapshot
//!   ([`SnapshotRule::log_per_snapshot_byte`] times its size).
//!
//! Snapshot writes are then at most about one byte per log byte, and the log kept
//! on disk stays within about the size of the state it describes. Each node decides
//! for its own replicas (a snapshot is local); openraft's own policy is off.

use crate::snapshot;
use crate::types::DirRaft;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a group checks whether to snapshot.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// When a group snapshots.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SnapshotRule {
    /// Applied entries since the last snapshot, at least.
    pub min_entries: u64,
    /// Log bytes written since the last snapshot, per byte of that snapshot, at least.
    pub log_per_snapshot_byte: f64,
}

impl SnapshotRule {
    /// The rule with `min_entries` and one log byte per snapshot byte.
    pub fn new(min_entries: u64) -> Self {
        SnapshotRule {
            min_entries,
            log_per_snapshot_byte: 1.0,
        }
    }

    /// Whether a group whose log grew by `entries` entries and `log_bytes` bytes since
    /// its last snapshot of `snapshot_bytes` bytes should snapshot now.
    pub fn due(&self, entries: u64, log_bytes: u64, snapshot_bytes: u64) -> bool {
        entries >= self.min_entries
            && log_bytes as f64 >= snapshot_bytes as f64 * self.log_per_snapshot_byte
    }
}

/// Bytes of log entries a group appended since its process started.
#[derive(Debug, Default)]
pub struct LogBytes(AtomicU64);

impl LogBytes {
    /// Counts `n` more bytes appended.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes appended so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the watcher knows of the group's last snapshot.
struct Last {
    index: u64,
    bytes: u64,
    log_bytes_then: u64,
}

/// Starts the task that snapshots `raft` (group `group`, snapshots in `dir`) by
/// `rule`; it ends when the group's Raft stops.
pub fn spawn(
    raft: DirRaft,
    group: u64,
    dir: PathBuf,
    rule: SnapshotRule,
    appended: Arc<LogBytes>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        let mut last: Option<Last> = None;
        let mut tick = tokio::time::interval(CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if metrics.has_changed().is_err() {
                return; // the Raft core stopped
            }
            let (applied, snap) = {
                let m = metrics.borrow_and_update();
                (
                    m.last_applied.map_or(0, |l| l.index),
                    m.snapshot.map_or(0, |l| l.index),
                )
            };
            let known = last.as_ref().map(|l| l.index);
            if known != Some(snap) {
                // A snapshot was built or installed since: measure it.
                let bytes = if snap == 0 {
                    0
                } else {
                    let path = snapshot::path(&dir, group);
                    tokio::fs::metadata(&path).await.map_or(0, |m| m.len())
                };
                last = Some(Last {
                    index: snap,
                    bytes,
                    log_bytes_then: appended.get(),
                });
            }
            let Some(l) = &last else { continue };
            let log_bytes = appended.get().saturating_sub(l.log_bytes_then);
            if rule.due(applied.saturating_sub(l.index), log_bytes, l.bytes) {
                tracing::debug!(
                    group,
                    entries = applied.saturating_sub(l.index),
                    log_bytes,
                    snapshot_bytes = l.bytes,
                    "snapshot due"
                );
                // Ignored by openraft while a snapshot is being built.
                if raft.trigger().snapshot().await.is_err() {
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_waits_for_entries_and_for_as_much_log_as_the_last_one() {
        let r = SnapshotRule::new(5000);
        // The first snapshot of a group: the entry count decides.
        assert!(!r.due(4999, 10 << 20, 0));
        assert!(r.due(5000, 0, 0));
        // Later ones also wait for the log to reach the last snapshot's size.
        assert!(!r.due(50_000, (64 << 20) - 1, 64 << 20));
        assert!(r.due(50_000, 64 << 20, 64 << 20));
        assert!(!r.due(4999, 1 << 30, 64 << 20));
    }
}
