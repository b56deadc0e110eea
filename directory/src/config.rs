//! Configuration of a directory node.

use crate::error::{Error, Result};
use crate::types::META2_BASE;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Most meta2 groups a bootstrap may create.
pub const MAX_META2_GROUPS: u32 = 100_000;

/// Groups to create when a fresh node bootstraps a single-node directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapSpec {
    /// Number of meta1 groups (ids `1..=meta1_groups`).
    pub meta1_groups: u32,
    /// Number of meta2 groups (ids `1000..1000 + meta2_groups`).
    pub meta2_groups: u32,
}

impl Default for BootstrapSpec {
    fn default() -> Self {
        BootstrapSpec {
            meta1_groups: 4,
            meta2_groups: 8,
        }
    }
}

impl BootstrapSpec {
    /// Checks the group counts against the id space.
    pub fn validate(&self) -> Result<()> {
        if self.meta1_groups == 0 || u64::from(self.meta1_groups) >= META2_BASE {
            return Err(Error::Config(format!(
                "bootstrap.meta1_groups must be in 1..{META2_BASE}, got {}",
                self.meta1_groups
            )));
        }
        if self.meta2_groups == 0 || self.meta2_groups > MAX_META2_GROUPS {
            return Err(Error::Config(format!(
                "bootstrap.meta2_groups must be in 1..={MAX_META2_GROUPS}, got {}",
                self.meta2_groups
            )));
        }
        Ok(())
    }
}

/// What one directory node needs to run.
#[derive(Clone, Debug)]
pub struct DirectoryConfig {
    /// Raft node id, unique in the directory.
    pub node_id: u64,
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// `host:port` other nodes and clients use; default: the bound address.
    pub advertise: Option<String>,
    /// Data directory; RocksDB lives under `data_dir/db`, snapshots under
    /// `data_dir/snapshots`.
    pub data_dir: PathBuf,
    /// Groups to create when the node holds none yet (single-node grids).
    pub bootstrap: Option<BootstrapSpec>,
    /// Conscience addresses to heartbeat to (empty: no heartbeats).
    pub conscience: Vec<String>,
    /// Dotted location of the node.
    pub location: String,
    /// Time between two heartbeats.
    pub heartbeat_interval: Duration,
    /// Where `GET /metrics` (Prometheus text format) is served over HTTP; none when
    /// unset.
    pub metrics_listen: Option<SocketAddr>,
    /// Pause between two rounds of the chunk delete worker when its queues are
    /// empty (see [`crate::purger`]); zero turns the worker off (the queue then only
    /// grows: for tests of the queue itself).
    pub purge_interval: Duration,
    /// Other directory nodes (`host:port`), asked for the meta0 table when this node
    /// hosts no meta0 replica (a grid with more nodes than replicas). `oxiod run`
    /// passes `directory-addrs`.
    pub peers: Vec<String>,
    /// Time between two checks for directory nodes that joined and are in no meta2
    /// group yet (see [`crate::autogrow`]; only the node leading meta0 acts); zero
    /// turns automatic growth off. Needs `conscience`.
    pub auto_grow_interval: Duration,
    /// Applied entries between two snapshots of a group, at least (a group also
    /// waits until its log grew by the size of its last snapshot; see
    /// [`crate::snapshot_policy`]).
    pub snapshot_every_entries: u64,
    /// Log entries kept after a snapshot (the rest is purged).
    pub log_kept_after_snapshot: u64,
}

/// Default [`DirectoryConfig::auto_grow_interval`].
pub const DEFAULT_AUTO_GROW_INTERVAL: Duration = Duration::from_secs(10);
/// Default [`DirectoryConfig::snapshot_every_entries`].
pub const DEFAULT_SNAPSHOT_EVERY_ENTRIES: u64 = 5000;
/// Default [`DirectoryConfig::log_kept_after_snapshot`].
pub const DEFAULT_LOG_KEPT_AFTER_SNAPSHOT: u64 = 1000;

/// Most peers a node keeps.
pub const MAX_PEERS: usize = 64;

impl DirectoryConfig {
    /// A node with id `node_id` keeping its data under `data_dir`, listening on the
    /// default directory port of every interface, without bootstrap or heartbeats.
    pub fn new(node_id: u64, data_dir: impl Into<PathBuf>) -> Self {
        DirectoryConfig {
            node_id,
            listen: SocketAddr::from(([0, 0, 0, 0], oxio_common::ports::DIRECTORY)),
            advertise: None,
            data_dir: data_dir.into(),
            bootstrap: None,
            conscience: Vec::new(),
            location: String::new(),
            heartbeat_interval: Duration::from_secs(1),
            metrics_listen: None,
            purge_interval: Duration::from_secs(1),
            peers: Vec::new(),
            auto_grow_interval: DEFAULT_AUTO_GROW_INTERVAL,
            snapshot_every_entries: DEFAULT_SNAPSHOT_EVERY_ENTRIES,
            log_kept_after_snapshot: DEFAULT_LOG_KEPT_AFTER_SNAPSHOT,
        }
    }

    /// Checks fields against each other.
    pub fn validate(&self) -> Result<()> {
        if let Some(b) = &self.bootstrap {
            b.validate()?;
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::Config("data_dir must be set".into()));
        }
        if !self.conscience.is_empty() && self.heartbeat_interval.is_zero() {
            return Err(Error::Config(
                "heartbeat_interval must be positive when conscience is set".into(),
            ));
        }
        if self.snapshot_every_entries == 0 {
            return Err(Error::Config(
                "snapshot_every_entries must be above 0 (5000 is usual)".into(),
            ));
        }
        if let Some(m) = self.metrics_listen {
            if m.port() != 0 && m == self.listen {
                return Err(Error::Config(format!(
                    "metrics_listen {m} is the gRPC listen address: give it a port of its own"
                )));
            }
        }
        if let Some(a) = &self.advertise {
            if a.is_empty() || !a.contains(':') {
                return Err(Error::Config(format!(
                    "advertise must be host:port, got {a:?}"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_explains_bad_bootstrap() {
        let mut c = DirectoryConfig::new(1, "/tmp/x");
        assert!(c.validate().is_ok());
        c.bootstrap = Some(BootstrapSpec {
            meta1_groups: 0,
            meta2_groups: 1,
        });
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("meta1_groups"));
        c.bootstrap = Some(BootstrapSpec {
            meta1_groups: 1000,
            meta2_groups: 1,
        });
        assert!(c.validate().is_err());
        c.bootstrap = Some(BootstrapSpec::default());
        c.metrics_listen = Some(c.listen);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("metrics_listen"));
        c.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        assert!(c.validate().is_ok());
        c.advertise = Some("nohost".into());
        assert!(c.validate().is_err());
    }
}
