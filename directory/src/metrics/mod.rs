//! Prometheus metrics of one directory node, served on `GET /metrics` when
//! [`crate::DirectoryConfig::metrics_listen`] is set.
//!
//! The node owns its own [`prometheus::Registry`] (never the process-global one, so
//! several nodes in one process keep separate figures). gRPC requests are counted at
//! the service boundary by the shared tower layer ([`oxio_proto::rpc::RpcLayer`])
//! wrapped around every `Directory` RPC, the Raft transport included. The Raft gauges (per group, from
//! openraft's `RaftMetrics`), the node's group counts, the snapshot counters and the
//! RocksDB size are read from the live node at each scrape, so groups that left
//! disappear from them.

mod server;
#[cfg(test)]
mod tests;

pub(crate) use server::{bind, spawn};

use crate::error::{Error, Result};
use crate::node::Node;
use crate::types::GroupKind;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::Mutex;
use std::time::Duration;
use tonic::Code;

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets of gRPC requests, seconds: 100 µs to 10 s.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Most groups given per-group Raft series in one scrape (in group id order); the
/// node-level group counts still cover every group.
pub const MAX_GROUP_SERIES: usize = 10_000;

/// RocksDB property read for the size on disk.
const LIVE_SST_PROPERTY: &str = "rocksdb.live-sst-files-size";
/// RocksDB property read for the memory held by memtables.
const MEMTABLES_PROPERTY: &str = "rocksdb.cur-size-all-mem-tables";

pub use oxio_proto::rpc::{code_name, UNKNOWN_METHOD};

/// The metrics of one directory node.
#[derive(Debug)]
pub struct DirectoryMetrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    received_bytes: IntCounterVec,
    sent_bytes: IntCounterVec,
    term: IntGaugeVec,
    is_leader: IntGaugeVec,
    leader_node: IntGaugeVec,
    last_log_index: IntGaugeVec,
    committed_index: IntGaugeVec,
    applied_index: IntGaugeVec,
    apply_lag: IntGaugeVec,
    snapshot_index: IntGaugeVec,
    voters: IntGaugeVec,
    groups_hosted: IntGaugeVec,
    groups_led: IntGaugeVec,
    snapshots_built: IntCounter,
    snapshots_installed: IntCounter,
    live_sst_bytes: IntGauge,
    memtables_bytes: IntGauge,
    chunks_deleted: IntCounter,
    chunk_delete_failures: IntCounter,
    typed_calls: IntCounterVec,
    /// Serialises scrapes: the gauges are rebuilt from scratch by each one.
    scrape: Mutex<()>,
}

fn metric_err(e: prometheus::Error) -> Error {
    Error::Metrics(e.to_string())
}

fn group_gauge(name: &str, help: &str) -> Result<IntGaugeVec> {
    IntGaugeVec::new(Opts::new(name, help), &["group", "kind"]).map_err(metric_err)
}

/// A gauge value from a count or index (saturating: prometheus gauges are signed).
fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The highest log index a majority of `voters` holds: `matched` gives each voter's
/// (`None`: unknown, counted as 0). What a leader has committed, up to the
/// current-term rule.
pub fn quorum_index(voters: &[u64], matched: impl Fn(u64) -> Option<u64>) -> u64 {
    if voters.is_empty() {
        return 0;
    }
    let mut held: Vec<u64> = voters.iter().map(|v| matched(*v).unwrap_or(0)).collect();
    held.sort_unstable_by(|a, b| b.cmp(a));
    held[voters.len() / 2]
}

impl DirectoryMetrics {
    /// A fresh registry with every directory metric.
    pub fn new() -> Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "oxio_directory_grpc_requests_total",
                "Directory gRPC requests answered, by method and gRPC status code",
            ),
            &["method", "code"],
        )
        .map_err(metric_err)?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "oxio_directory_grpc_request_duration_seconds",
                "Time from a directory gRPC request to its status, by method",
            )
            .buckets(LATENCY_BUCKETS_S.to_vec()),
            &["method"],
        )
        .map_err(metric_err)?;
        let received_bytes = IntCounterVec::new(
            Opts::new(
                "oxio_directory_grpc_received_bytes_total",
                "Bytes of directory gRPC request bodies read, by method",
            ),
            &["method"],
        )
        .map_err(metric_err)?;
        let sent_bytes = IntCounterVec::new(
            Opts::new(
                "oxio_directory_grpc_sent_bytes_total",
                "Bytes of directory gRPC response bodies sent, by method",
            ),
            &["method"],
        )
        .map_err(metric_err)?;
        let chunks_deleted = IntCounter::new(
            "oxio_directory_purge_deleted_chunks_total",
            "Queued garbage chunks deleted from their rawx (or found absent) and acknowledged",
        )
        .map_err(metric_err)?;
        let chunk_delete_failures = IntCounter::new(
            "oxio_directory_purge_failed_deletes_total",
            "Deletes of queued chunks that failed (rawx unreachable or erroring); the chunk stays queued",
        )
        .map_err(metric_err)?;
        let typed_calls = IntCounterVec::new(
            Opts::new(
                "oxio_directory_typed_calls_total",
                "Calls from a client of this process answered typed, without protobuf \
                 encoding (also counted in oxio_directory_grpc_requests_total), by method",
            ),
            &["method"],
        )
        .map_err(metric_err)?;
        let leader_node = group_gauge(
            "oxio_directory_raft_leader_node",
            "Node id of the group's leader as this node knows it (0: none known)",
        )?;
        let committed_index = group_gauge(
            "oxio_directory_raft_committed_index",
            "Highest log index a majority of the group's voters holds; only the leader knows it, so only its series exists",
        )?;
        let term = group_gauge(
            "oxio_directory_raft_term",
            "Current Raft term of each hosted group",
        )?;
        let is_leader = group_gauge(
            "oxio_directory_raft_is_leader",
            "1 when this node leads the group, 0 otherwise",
        )?;
        let last_log_index = group_gauge(
            "oxio_directory_raft_last_log_index",
            "Index of the last entry in the group's local Raft log",
        )?;
        let applied_index = group_gauge(
            "oxio_directory_raft_applied_index",
            "Index of the last entry applied to the group's state machine",
        )?;
        let apply_lag = group_gauge(
            "oxio_directory_raft_apply_lag_entries",
            "Log entries not yet applied (last log index minus applied index)",
        )?;
        let snapshot_index = group_gauge(
            "oxio_directory_raft_snapshot_index",
            "Last log index included in the group's current snapshot (0: none)",
        )?;
        let voters = group_gauge(
            "oxio_directory_raft_voters",
            "Voters in the group's current membership",
        )?;
        let groups_hosted = IntGaugeVec::new(
            Opts::new(
                "oxio_directory_raft_groups_hosted",
                "Raft groups hosted by this node, by kind",
            ),
            &["kind"],
        )
        .map_err(metric_err)?;
        let groups_led = IntGaugeVec::new(
            Opts::new(
                "oxio_directory_raft_groups_led",
                "Raft groups this node leads, by kind",
            ),
            &["kind"],
        )
        .map_err(metric_err)?;
        let snapshots_built = IntCounter::new(
            "oxio_directory_raft_snapshots_built_total",
            "Snapshots built by the groups of this node since it started",
        )
        .map_err(metric_err)?;
        let snapshots_installed = IntCounter::new(
            "oxio_directory_raft_snapshots_installed_total",
            "Snapshots received from a leader and installed since this node started",
        )
        .map_err(metric_err)?;
        let live_sst_bytes = IntGauge::new(
            "oxio_directory_rocksdb_live_sst_files_size_bytes",
            "Size on disk of the live SST files of the node's RocksDB",
        )
        .map_err(metric_err)?;
        let memtables_bytes = IntGauge::new(
            "oxio_directory_rocksdb_memtables_size_bytes",
            "Memory held by the memtables of the node's RocksDB",
        )
        .map_err(metric_err)?;
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(term.clone()),
            Box::new(is_leader.clone()),
            Box::new(received_bytes.clone()),
            Box::new(sent_bytes.clone()),
            Box::new(leader_node.clone()),
            Box::new(chunks_deleted.clone()),
            Box::new(chunk_delete_failures.clone()),
            Box::new(typed_calls.clone()),
            Box::new(committed_index.clone()),
            Box::new(last_log_index.clone()),
            Box::new(applied_index.clone()),
            Box::new(apply_lag.clone()),
            Box::new(snapshot_index.clone()),
            Box::new(voters.clone()),
            Box::new(groups_hosted.clone()),
            Box::new(groups_led.clone()),
            Box::new(snapshots_built.clone()),
            Box::new(snapshots_installed.clone()),
            Box::new(live_sst_bytes.clone()),
            Box::new(memtables_bytes.clone()),
        ] {
            registry.register(c).map_err(metric_err)?;
        }
        Ok(DirectoryMetrics {
            registry,
            requests,
            latency,
            received_bytes,
            sent_bytes,
            term,
            is_leader,
            leader_node,
            committed_index,
            last_log_index,
            applied_index,
            apply_lag,
            snapshot_index,
            voters,
            groups_hosted,
            groups_led,
            snapshots_built,
            snapshots_installed,
            live_sst_bytes,
            memtables_bytes,
            chunks_deleted,
            chunk_delete_failures,
            typed_calls,
            scrape: Mutex::new(()),
        })
    }

    /// Counts one answered request of `method` (the `Directory` method name, or
    /// [`UNKNOWN_METHOD`]) and records its latency and bytes.
    pub fn record_rpc(
        &self,
        method: &str,
        code: Code,
        elapsed: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        self.requests
            .with_label_values(&[method, code_name(code)])
            .inc();
        self.latency
            .with_label_values(&[method])
            .observe(elapsed.as_secs_f64());
        self.received_bytes
            .with_label_values(&[method])
            .inc_by(bytes_in);
        self.sent_bytes
            .with_label_values(&[method])
            .inc_by(bytes_out);
    }

    /// Counts chunks of the delete queue deleted and acknowledged.
    pub fn chunks_deleted(&self, n: u64) {
        self.chunks_deleted.inc_by(n);
    }

    /// The counter of typed in-process calls of `method` (module `typed_reads`),
    /// resolved once so that a call only increments it.
    pub fn typed_calls(&self, method: &str) -> IntCounter {
        self.typed_calls.with_label_values(&[method])
    }

    /// Counts one failed delete of a queued chunk.
    pub fn chunk_delete_failed(&self) {
        self.chunk_delete_failures.inc();
    }

    /// Rebuilds the node gauges from `node` (when it still runs) and encodes every
    /// metric in the Prometheus text format.
    pub fn render(&self, node: Option<&Node>) -> Result<Vec<u8>> {
        let families = {
            let _guard = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(node) = node {
                self.read_node(node);
            }
            self.registry.gather()
        };
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&families, &mut out)
            .map_err(metric_err)?;
        Ok(out)
    }

    /// Sets the Raft, snapshot and RocksDB figures from the live node.
    fn read_node(&self, node: &Node) {
        for v in [
            &self.term,
            &self.is_leader,
            &self.leader_node,
            &self.committed_index,
            &self.last_log_index,
            &self.applied_index,
            &self.apply_lag,
            &self.snapshot_index,
            &self.voters,
        ] {
            v.reset();
        }
        let kinds = [GroupKind::Meta0, GroupKind::Meta1, GroupKind::Meta2];
        let mut hosted = [0i64; 3];
        let mut led = [0i64; 3];
        for (n, g) in node.groups_snapshot().iter().enumerate() {
            let slot = kinds.iter().position(|k| *k == g.kind).unwrap_or(2);
            let m = g.raft.metrics().borrow().clone();
            let leads = m.current_leader == Some(node.id);
            hosted[slot] += 1;
            led[slot] += i64::from(leads);
            if n >= MAX_GROUP_SERIES {
                continue;
            }
            let group = g.id.to_string();
            let labels = [group.as_str(), kinds[slot].as_str()];
            let last_log = m.last_log_index.unwrap_or(0);
            let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
            self.term
                .with_label_values(&labels)
                .set(gauge_value(m.current_term));
            self.is_leader
                .with_label_values(&labels)
                .set(i64::from(leads));
            self.leader_node
                .with_label_values(&labels)
                .set(gauge_value(m.current_leader.unwrap_or(0)));
            if leads {
                let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
                let replication = m.replication.as_ref();
                let committed = quorum_index(&voters, |v| {
                    if v == node.id {
                        m.last_log_index
                    } else {
                        replication
                            .and_then(|r| r.get(&v))
                            .and_then(|l| l.as_ref())
                            .map(|l| l.index)
                    }
                });
                self.committed_index
                    .with_label_values(&labels)
                    .set(gauge_value(committed));
            }
            self.last_log_index
                .with_label_values(&labels)
                .set(gauge_value(last_log));
            self.applied_index
                .with_label_values(&labels)
                .set(gauge_value(applied));
            self.apply_lag
                .with_label_values(&labels)
                .set(gauge_value(last_log.saturating_sub(applied)));
            self.snapshot_index
                .with_label_values(&labels)
                .set(gauge_value(m.snapshot.map(|l| l.index).unwrap_or(0)));
            let voter_count = m.membership_config.membership().voter_ids().count();
            self.voters
                .with_label_values(&labels)
                .set(gauge_value(voter_count as u64));
        }
        for (i, k) in kinds.iter().enumerate() {
            self.groups_hosted
                .with_label_values(&[k.as_str()])
                .set(hosted[i]);
            self.groups_led.with_label_values(&[k.as_str()]).set(led[i]);
        }
        let counts = node.snapshot_counters();
        catch_up(&self.snapshots_built, counts.built());
        catch_up(&self.snapshots_installed, counts.installed());
        let db = node.db();
        for (gauge, property) in [
            (&self.live_sst_bytes, LIVE_SST_PROPERTY),
            (&self.memtables_bytes, MEMTABLES_PROPERTY),
        ] {
            match db.property_int_value(property) {
                Ok(Some(v)) => gauge.set(gauge_value(v)),
                Ok(None) => {}
                Err(e) => tracing::warn!(property, error = %e, "cannot read rocksdb property"),
            }
        }
    }
}

/// Raises a prometheus counter to `total` (the node's counters only grow).
fn catch_up(counter: &IntCounter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

impl oxio_proto::rpc::RpcRecorder for DirectoryMetrics {
    fn record_rpc(
        &self,
        method: &str,
        code: Code,
        elapsed: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        DirectoryMetrics::record_rpc(self, method, code, elapsed, bytes_in, bytes_out);
    }
}
