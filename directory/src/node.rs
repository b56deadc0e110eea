//! One directory node: the shared RocksDB, the Raft instances of the groups it hosts,
//! the list of hosted groups persisted for restarts, and the single-node bootstrap.

use crate::config::BootstrapSpec;
use crate::error::{Error, Result};
use crate::keys;
use crate::log_store::{write_synced, LogStore};
use crate::meta0;
use crate::network::{Channels, NetworkFactory};
use crate::snapshot_policy::{LogBytes, SnapshotRule};
use crate::state_machine::{SnapshotCounters, StateMachine};
use crate::types::{
    Command, DirRaft, GroupKind, GroupRecord, MemberRecord, Reply, META0_GROUP, META2_BASE,
};
use openraft::error::InitializeError;
use openraft::error::RaftError;
use openraft::{BasicNode, SnapshotPolicy};
use rocksdb::{Options, WriteBatch, DB};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long bootstrap waits for a new group to elect this node.
const LEADER_WAIT: Duration = Duration::from_secs(30);
/// Node flag set once bootstrap completed.
const BOOTSTRAPPED: &str = "bootstrapped";
/// Node flag set when bootstrap starts, so an interrupted run resumes.
const BOOTSTRAPPING: &str = "bootstrapping";
/// Most groups one node hosts.
pub const MAX_HOSTED_GROUPS: usize = 200_000;

/// A group hosted by this node.
pub struct Group {
    /// Group id.
    pub id: u64,
    /// Level of the group.
    pub kind: GroupKind,
    /// The group's Raft instance.
    pub raft: DirRaft,
    /// The group's state machine (read side).
    pub sm: StateMachine,
    /// Batches the group's writes into entries.
    pub proposer: crate::proposer::Proposer,
    /// Shares leadership checks between concurrent reads.
    pub reads: crate::read_barrier::ReadBarrier,
}

/// Raft figures of a group as this node sees them.
#[derive(Clone, Debug, Default)]
pub struct GroupView {
    /// Current term.
    pub term: u64,
    /// Last applied log index.
    pub applied_index: u64,
    /// Last log index.
    pub last_log_index: u64,
    /// Whether this node leads the group.
    pub is_leader: bool,
    /// Address of the leader, when known.
    pub leader_addr: Option<String>,
    /// Voters and their addresses.
    pub members: Vec<MemberRecord>,
}

/// A running directory node.
pub struct Node {
    /// Raft node id.
    pub id: u64,
    /// Advertised `host:port`.
    pub addr: String,
    db: Arc<DB>,
    snapshot_dir: PathBuf,
    settings: GroupSettings,
    channels: Channels,
    groups: RwLock<BTreeMap<u64, Arc<Group>>>,
    snapshots: Arc<SnapshotCounters>,
    location: RwLock<String>,
    /// Group commit of every group's log appends.
    syncer: crate::log_store::WalSyncer,
    /// Other directory nodes to ask for meta0 when this node hosts no replica of it.
    peers: RwLock<Vec<String>>,
}

/// How a node runs its groups: openraft's settings, and when a group snapshots.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    /// Settings of every group's Raft instance (openraft's own snapshot policy off).
    pub raft: Arc<openraft::Config>,
    /// When a group snapshots (see [`crate::snapshot_policy`]).
    pub snapshots: SnapshotRule,
}

/// The settings of every group, with the default snapshot rule.
pub fn group_settings() -> Result<GroupSettings> {
    group_settings_with(
        crate::config::DEFAULT_SNAPSHOT_EVERY_ENTRIES,
        crate::config::DEFAULT_LOG_KEPT_AFTER_SNAPSHOT,
    )
}

/// The settings of every group: a snapshot after at least `snapshot_every` applied
/// entries (and as much log as the last snapshot, see [`crate::snapshot_policy`]),
/// after which the log is purged but for its last `log_kept` entries (a follower
/// further behind catches up from the snapshot).
pub fn group_settings_with(snapshot_every: u64, log_kept: u64) -> Result<GroupSettings> {
    let raft = openraft::Config {
        cluster_name: "oxio-directory".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        max_payload_entries: 64,
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: log_kept,
        snapshot_max_chunk_size: 1024 * 1024,
        ..Default::default()
    }
    .validate()
    .map_err(Error::raft)?;
    Ok(GroupSettings {
        raft: Arc::new(raft),
        snapshots: SnapshotRule::new(snapshot_every),
    })
}

/// Opens (creating if needed) the node's RocksDB under `data_dir/db`.
pub fn open_db(data_dir: &Path) -> Result<DB> {
    let path = data_dir.join("db");
    std::fs::create_dir_all(&path)?;
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    Ok(DB::open(&opts, path)?)
}

impl Node {
    /// A node over an opened database, restarting every group persisted as hosted.
    pub async fn open(
        id: u64,
        addr: String,
        db: Arc<DB>,
        snapshot_dir: PathBuf,
    ) -> Result<Arc<Node>> {
        Node::open_with(id, addr, db, snapshot_dir, group_settings()?).await
    }

    /// As [`Node::open`], with the group settings `settings` (see
    /// [`group_settings_with`]).
    pub async fn open_with(
        id: u64,
        addr: String,
        db: Arc<DB>,
        snapshot_dir: PathBuf,
        settings: GroupSettings,
    ) -> Result<Arc<Node>> {
        std::fs::create_dir_all(&snapshot_dir)?;
        let syncer = crate::log_store::WalSyncer::spawn(db.clone());
        let node = Arc::new(Node {
            id,
            addr,
            db,
            snapshot_dir,
            settings,
            syncer,
            channels: Channels::default(),
            groups: RwLock::new(BTreeMap::new()),
            snapshots: Arc::default(),
            location: RwLock::new(String::new()),
            peers: RwLock::new(Vec::new()),
        });
        for gid in node.persisted_groups()? {
            node.start_group(gid).await?;
        }
        let n = node.groups_snapshot().len();
        tracing::info!(node = id, groups = n, "directory node opened");
        Ok(node)
    }

    /// Sets the node's dotted location (reported by `Status`, used to spread groups).
    pub fn set_location(&self, location: &str) {
        *self.location.write().unwrap_or_else(|p| p.into_inner()) = location.to_string();
    }

    /// Sets the directory node addresses this node may ask for meta0 (its own is
    /// ignored).
    pub fn set_peers(&self, peers: &[String]) {
        let own = self.addr.clone();
        *self.peers.write().unwrap_or_else(|p| p.into_inner()) = peers
            .iter()
            .filter(|p| **p != own)
            .take(crate::config::MAX_PEERS)
            .cloned()
            .collect();
    }

    /// See [`Node::set_peers`].
    pub fn peers(&self) -> Vec<String> {
        self.peers.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The node's dotted location ("" when not configured).
    pub fn location(&self) -> String {
        self.location
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Approximate bytes of `group`'s log and state-machine data in the SST files.
    pub fn group_size_bytes(&self, group: u64) -> u64 {
        let bounds: Vec<(Vec<u8>, Vec<u8>)> =
            [keys::LOG, keys::SM_DATA, keys::SM_META, keys::RAFT_META]
                .iter()
                .map(|tag| {
                    let start = keys::group_prefix(*tag, group);
                    let end = keys::group_prefix(*tag, group.saturating_add(1));
                    (start, end)
                })
                .collect();
        let ranges: Vec<rocksdb::Range<'_>> = bounds
            .iter()
            .map(|(s, e)| rocksdb::Range::new(s, e))
            .collect();
        self.db.get_approximate_sizes(&ranges).iter().sum()
    }

    /// The database (shared by every group).
    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// Snapshots built and installed by every group of this node since it opened.
    pub fn snapshot_counters(&self) -> &SnapshotCounters {
        &self.snapshots
    }

    /// The peer channel cache.
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    fn persisted_groups(&self) -> Result<Vec<u64>> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_upper_bound(vec![keys::HOSTED + 1]);
        let mut it = self.db.raw_iterator_opt(ro);
        it.seek([keys::HOSTED]);
        let mut out = Vec::new();
        while it.valid() && out.len() < MAX_HOSTED_GROUPS {
            if let Some(g) = it.key().and_then(keys::hosted_group) {
                out.push(g);
            }
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    async fn start_group(&self, gid: u64) -> Result<Arc<Group>> {
        if let Some(g) = self.group(gid) {
            return Ok(g);
        }
        let appended = Arc::new(LogBytes::default());
        let log =
            LogStore::new(self.db.clone(), gid, self.syncer.clone()).counting(appended.clone());
        {
            // A snapshot install a crash cut short is finished before Raft reads the
            // state (otherwise it would find no applied mark over a purged log).
            let (db, dir) = (self.db.clone(), self.snapshot_dir.clone());
            tokio::task::spawn_blocking(move || crate::snapshot::resume_install(&db, gid, &dir))
                .await
                .map_err(|e| Error::Raft(format!("snapshot recovery task: {e}")))??;
        }
        let sm = StateMachine::new(self.db.clone(), gid, self.snapshot_dir.clone())
            .counting(self.snapshots.clone());
        let net = NetworkFactory::new(gid, self.id, self.channels.clone());
        let raft = DirRaft::new(self.id, self.settings.raft.clone(), net, log, sm.clone())
            .await
            .map_err(Error::raft)?;
        crate::snapshot_policy::spawn(
            raft.clone(),
            gid,
            self.snapshot_dir.clone(),
            self.settings.snapshots,
            appended,
        );
        let proposer = crate::proposer::Proposer::spawn(raft.clone());
        let reads = crate::read_barrier::ReadBarrier::spawn(raft.clone());
        let g = Arc::new(Group {
            id: gid,
            kind: GroupKind::of(gid),
            raft,
            sm,
            proposer,
            reads,
        });
        let mut groups = self.groups.write().unwrap_or_else(|p| p.into_inner());
        if groups.len() >= MAX_HOSTED_GROUPS {
            return Err(Error::Config(format!(
                "node hosts {MAX_HOSTED_GROUPS} groups already"
            )));
        }
        Ok(groups.entry(gid).or_insert(g).clone())
    }

    /// Records `gid` as hosted here (durably) and starts its Raft instance.
    pub async fn host_group(&self, gid: u64) -> Result<Arc<Group>> {
        if let Some(g) = self.group(gid) {
            return Ok(g);
        }
        let mut b = WriteBatch::default();
        b.put(keys::hosted(gid), serde_json::to_vec(&GroupKind::of(gid))?);
        write_synced(&self.db, b).await?;
        self.start_group(gid).await
    }

    /// A hosted group.
    pub fn group(&self, gid: u64) -> Option<Arc<Group>> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&gid)
            .cloned()
    }

    /// Every hosted group, by id.
    pub fn groups_snapshot(&self) -> Vec<Arc<Group>> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Raft figures of a group from its local metrics.
    pub fn view(&self, g: &Group) -> GroupView {
        let m = g.raft.metrics().borrow().clone();
        let leader_addr = m.current_leader.and_then(|l| {
            if l == self.id {
                Some(self.addr.clone())
            } else {
                m.membership_config
                    .membership()
                    .get_node(&l)
                    .map(|n| n.addr.clone())
            }
        });
        let members = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| MemberRecord {
                node_id: *id,
                addr: if *id == self.id {
                    self.addr.clone()
                } else {
                    n.addr.clone()
                },
            })
            .collect();
        GroupView {
            term: m.current_term,
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            last_log_index: m.last_log_index.unwrap_or(0),
            is_leader: m.current_leader == Some(self.id),
            leader_addr,
            members,
        }
    }

    /// Creates meta0, `meta1_groups` meta1 and `meta2_groups` meta2 groups with this node
    /// as only voter, waits for their leaders and writes the meta0 table. Idempotent: a
    /// node that finished once does nothing; an interrupted run resumes.
    pub async fn bootstrap(&self, spec: &BootstrapSpec) -> Result<()> {
        spec.validate()?;
        if self.db.get(keys::node_flag(BOOTSTRAPPED))?.is_some() {
            tracing::debug!("directory already bootstrapped");
            return Ok(());
        }
        let resuming = self.db.get(keys::node_flag(BOOTSTRAPPING))?.is_some();
        if !resuming && !self.groups_snapshot().is_empty() {
            tracing::info!("node already hosts groups; bootstrap skipped");
            return Ok(());
        }
        let mut b = WriteBatch::default();
        b.put(keys::node_flag(BOOTSTRAPPING), b"1");
        write_synced(&self.db, b).await?;
        let mut plan = vec![META0_GROUP];
        plan.extend(1..=u64::from(spec.meta1_groups));
        plan.extend(META2_BASE..META2_BASE + u64::from(spec.meta2_groups));
        tracing::info!(
            meta1 = spec.meta1_groups,
            meta2 = spec.meta2_groups,
            "bootstrapping directory"
        );
        let me = BasicNode::new(self.addr.clone());
        for gid in &plan {
            let g = self.host_group(*gid).await?;
            if g.raft.is_initialized().await.map_err(Error::raft)? {
                continue;
            }
            let members = BTreeMap::from([(self.id, me.clone())]);
            match g.raft.initialize(members).await {
                Ok(()) => {}
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(Error::raft(e)),
            }
        }
        for gid in &plan {
            let g = self
                .group(*gid)
                .ok_or_else(|| Error::Raft(format!("group {gid} vanished")))?;
            self.wait_leader(&g, LEADER_WAIT).await?;
        }
        let groups: Vec<GroupRecord> = plan
            .iter()
            .map(|gid| GroupRecord {
                id: *gid,
                kind: GroupKind::of(*gid),
                members: vec![MemberRecord {
                    node_id: self.id,
                    addr: self.addr.clone(),
                }],
            })
            .collect();
        let meta0 = self
            .group(META0_GROUP)
            .ok_or_else(|| Error::Raft("meta0 vanished".into()))?;
        let reply = meta0
            .raft
            .client_write(Command::Meta0Init {
                prefix_to_meta1: meta0::even_table(spec.meta1_groups),
                groups,
            })
            .await
            .map_err(Error::raft)?;
        if reply.data != Reply::Done {
            return Err(Error::Raft(format!("meta0 init refused: {:?}", reply.data)));
        }
        let mut b = WriteBatch::default();
        b.put(keys::node_flag(BOOTSTRAPPED), b"1");
        b.delete(keys::node_flag(BOOTSTRAPPING));
        write_synced(&self.db, b).await?;
        tracing::info!(groups = plan.len(), "directory bootstrapped");
        Ok(())
    }

    /// Waits until `g` has a leader (any node), up to `timeout`.
    pub async fn wait_leader(&self, g: &Group, timeout: Duration) -> Result<()> {
        g.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "group has a leader")
            .await
            .map_err(|e| Error::Timeout(format!("group {}: {e}", g.id)))?;
        Ok(())
    }

    /// Figures for heartbeats: groups hosted and led, and `apply_lag`, the largest
    /// number of log entries any local replica has not applied yet.
    pub fn stats(&self) -> HashMap<String, f64> {
        let groups = self.groups_snapshot();
        let mut led = 0usize;
        let mut apply_lag = 0u64;
        for g in &groups {
            let m = g.raft.metrics().borrow().clone();
            if m.current_leader == Some(self.id) {
                led += 1;
            }
            let last = m.last_log_index.unwrap_or(0);
            let applied = m.last_applied.map_or(0, |l| l.index);
            apply_lag = apply_lag.max(last.saturating_sub(applied));
        }
        HashMap::from([
            ("groups_hosted".to_string(), groups.len() as f64),
            ("groups_led".to_string(), led as f64),
            ("apply_lag".to_string(), apply_lag as f64),
        ])
    }

    /// Stops every Raft instance and forgets them.
    pub async fn shutdown(&self) {
        let groups: Vec<Arc<Group>> = {
            let mut map = self.groups.write().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *map).into_values().collect()
        };
        for g in groups {
            if let Err(e) = g.raft.shutdown().await {
                tracing::warn!(group = g.id, error = %e, "raft shutdown failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn group_sizes_count_only_their_own_keys() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(open_db(dir.path()).unwrap());
        let node = Node::open(
            1,
            "127.0.0.1:1".into(),
            db.clone(),
            dir.path().join("snapshots"),
        )
        .await
        .unwrap();
        // Random bytes: the SST files' compression cannot shrink them.
        for i in 0..2000u32 {
            let value: Vec<u8> = (0..1000).map(|_| rand::random::<u8>()).collect();
            db.put(keys::named(keys::SM_DATA, 1001, &i.to_be_bytes()), &value)
                .unwrap();
            db.put(keys::log(1001, u64::from(i)), &value).unwrap();
        }
        db.put(keys::named(keys::SM_DATA, 1003, b"x"), b"y")
            .unwrap();
        db.flush().unwrap();
        let busy = node.group_size_bytes(1001);
        assert!(busy > 1_000_000, "{busy}");
        assert!(node.group_size_bytes(1002) < busy / 100);
        assert!(node.group_size_bytes(1003) < busy / 100);
    }
}
