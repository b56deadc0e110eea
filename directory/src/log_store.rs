//! The Raft log of one group, stored in the node's shared RocksDB under `l + group`.
//!
//! Durability rule: an append (and a vote) is acknowledged to openraft only after the
//! WAL holding it reached the disk. An append writes its batch at once (unsynced, so
//! the Raft core goes on with the next entries) and hands openraft's flush callback to
//! the node's [`WalSyncer`], which syncs the WAL once for every append queued meanwhile,
//! of every group, then completes their callbacks: the group commit of the node.
//! Votes, truncations and purges are written synced.

use crate::error::{read_logs_err, read_vote_err, write_logs_err, write_vote_err, Error};
use crate::keys;
use crate::snapshot_policy::LogBytes;
use crate::types::{DirEntry, DirLogId, TypeConfig};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageError, Vote};
use rocksdb::{ReadOptions, WriteBatch, WriteOptions, DB};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"purged";

/// Writes `batch` with a synced WAL on the blocking pool.
pub(crate) async fn write_synced(db: &Arc<DB>, batch: WriteBatch) -> Result<(), Error> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        db.write_opt(batch, &wo)
    })
    .await??;
    Ok(())
}

/// Writes `batch` without waiting for the disk, on the blocking pool: the state
/// machine's applies, which the log makes durable (see [`crate::state_machine`]).
pub(crate) async fn write_unsynced(db: &Arc<DB>, batch: WriteBatch) -> Result<(), Error> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || db.write(batch)).await??;
    Ok(())
}

/// Appends waiting for one WAL sync at most; a fuller queue makes appends wait.
const SYNC_QUEUE: usize = 4096;

/// The group commit of one node's log appends: callbacks of appends already written
/// wait here; one WAL sync (`flush_wal(true)`, which covers every write issued before
/// it) completes all those queued when it started.
#[derive(Clone)]
pub struct WalSyncer {
    tx: tokio::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
}

impl WalSyncer {
    /// Starts the syncer of `db` (on the current tokio runtime); it ends once every
    /// handle is dropped. It holds the database weakly: the database closes when the
    /// stores that write to it are dropped, not when this task next wakes (or when its
    /// runtime is dropped), so that whoever removes the database's folder after
    /// dropping them finds it closed.
    pub fn spawn(db: Arc<DB>) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<LogFlushed<TypeConfig>>(SYNC_QUEUE);
        let db = Arc::downgrade(&db);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiting = vec![first];
                while waiting.len() < SYNC_QUEUE {
                    match rx.try_recv() {
                        Ok(cb) => waiting.push(cb),
                        Err(_) => break,
                    }
                }
                let failure = match db.upgrade() {
                    // Every store is gone: nothing is left to make durable for.
                    None => Some("the database is closed".to_string()),
                    Some(db) => {
                        match tokio::task::spawn_blocking(move || db.flush_wal(true)).await {
                            Ok(Ok(())) => None,
                            Ok(Err(e)) => Some(e.to_string()),
                            Err(e) => Some(format!("WAL sync task: {e}")),
                        }
                    }
                };
                if let Some(f) = &failure {
                    tracing::error!(error = %f, appends = waiting.len(), "WAL sync failed");
                }
                for cb in waiting {
                    cb.log_io_completed(match &failure {
                        None => Ok(()),
                        Some(f) => Err(std::io::Error::other(f.clone())),
                    });
                }
            }
        });
        WalSyncer { tx }
    }
}

/// Log storage of one Raft group.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    group: u64,
    syncer: WalSyncer,
    appended: Arc<LogBytes>,
}

impl LogStore {
    /// The log of `group` inside `db`, its appends made durable by `syncer`.
    pub fn new(db: Arc<DB>, group: u64, syncer: WalSyncer) -> Self {
        LogStore {
            db,
            group,
            syncer,
            appended: Arc::default(),
        }
    }

    /// The same log, counting the bytes of the entries it appends in `appended`.
    pub fn counting(mut self, appended: Arc<LogBytes>) -> Self {
        self.appended = appended;
        self
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, name: &[u8]) -> Result<Option<T>, Error> {
        match self
            .db
            .get_pinned(keys::named(keys::RAFT_META, self.group, name))?
        {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    fn last_log_id(&self) -> Result<Option<DirLogId>, Error> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(keys::group_prefix(keys::LOG, self.group));
        let mut it = self.db.raw_iterator_opt(ro);
        it.seek_for_prev(keys::log(self.group, u64::MAX));
        if !it.valid() {
            it.status()?;
            return Ok(None);
        }
        match (it.key(), it.value()) {
            (Some(k), Some(v)) if keys::log_index(self.group, k).is_some() => {
                let e: DirEntry = crate::codec::decode(v)?;
                Ok(Some(e.log_id))
            }
            _ => Ok(None),
        }
    }

    fn read_range(&self, start: u64, end: Option<u64>) -> Result<Vec<DirEntry>, Error> {
        let mut ro = ReadOptions::default();
        let upper = match end {
            Some(e) => keys::log(self.group, e),
            None => keys::group_prefix(keys::LOG, self.group + 1),
        };
        ro.set_iterate_upper_bound(upper);
        let mut it = self.db.raw_iterator_opt(ro);
        it.seek(keys::log(self.group, start));
        let mut out = Vec::new();
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let Some(index) = keys::log_index(self.group, k) else {
                break;
            };
            let e: DirEntry = crate::codec::decode(v)?;
            if e.log_id.index != index {
                return Err(Error::Corrupt(format!(
                    "group {} log key {index} holds entry {}",
                    self.group, e.log_id.index
                )));
            }
            out.push(e);
            it.next();
        }
        it.status()?;
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<DirEntry>, StorageError<u64>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.checked_add(1),
            Bound::Excluded(e) => Some(*e),
            Bound::Unbounded => None,
        };
        if matches!(end, Some(e) if e <= start) {
            return Ok(Vec::new());
        }
        self.read_range(start, end).map_err(read_logs_err)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last_purged: Option<DirLogId> = self.get_json(PURGED).map_err(read_logs_err)?;
        let last = self.last_log_id().map_err(read_logs_err)?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let v = serde_json::to_vec(vote).map_err(write_vote_err)?;
        let mut b = WriteBatch::default();
        b.put(keys::named(keys::RAFT_META, self.group, VOTE), v);
        write_synced(&self.db, b).await.map_err(write_vote_err)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.get_json(VOTE).map_err(read_vote_err)
    }

    async fn save_committed(
        &mut self,
        committed: Option<DirLogId>,
    ) -> Result<(), StorageError<u64>> {
        let v = serde_json::to_vec(&committed).map_err(write_logs_err)?;
        self.db
            .put(keys::named(keys::RAFT_META, self.group, COMMITTED), v)
            .map_err(write_logs_err)
    }

    async fn read_committed(&mut self) -> Result<Option<DirLogId>, StorageError<u64>> {
        Ok(self
            .get_json::<Option<DirLogId>>(COMMITTED)
            .map_err(read_logs_err)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = DirEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = WriteBatch::default();
        let mut bytes = 0u64;
        for e in entries {
            let v = crate::codec::encode(&e).map_err(write_logs_err)?;
            bytes += v.len() as u64;
            b.put(keys::log(self.group, e.log_id.index), v);
        }
        self.appended.add(bytes);
        // Written now (later reads see it), acknowledged once the WAL is on disk.
        self.db.write(b).map_err(write_logs_err)?;
        self.syncer
            .tx
            .send(callback)
            .await
            .map_err(|_| write_logs_err(Error::Raft("the WAL syncer stopped".into())))?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: DirLogId) -> Result<(), StorageError<u64>> {
        tracing::debug!(group = self.group, %log_id, "truncate log");
        let mut b = WriteBatch::default();
        b.delete_range(
            keys::log(self.group, log_id.index),
            keys::group_prefix(keys::LOG, self.group + 1),
        );
        write_synced(&self.db, b).await.map_err(write_logs_err)
    }

    async fn purge(&mut self, log_id: DirLogId) -> Result<(), StorageError<u64>> {
        tracing::debug!(group = self.group, %log_id, "purge log");
        let v = serde_json::to_vec(&log_id).map_err(write_logs_err)?;
        let mut b = WriteBatch::default();
        b.put(keys::named(keys::RAFT_META, self.group, PURGED), v);
        b.delete_range(
            keys::log(self.group, 0),
            keys::log(self.group, log_id.index.saturating_add(1)),
        );
        write_synced(&self.db, b).await.map_err(write_logs_err)
    }
}
