//! The replicated state machine of one group: applies committed commands to the group's
//! RocksDB range (meta0, meta1 or meta2 logic by group kind), with the data, the last
//! applied log id and the last membership written in one batch per `apply` call (made
//! durable by the log, see `apply_entries`); snapshots built and installed.

use crate::error::{read_sm_err, read_snap_err, write_sm_err, write_snap_err, Error, Result};
use crate::keys;
use crate::log_store::write_unsynced;
use crate::sm_data::{Overlay, SmView};
use crate::snapshot;
use crate::types::{
    Command, DirEntry, DirLogId, DirMembership, DirSnapshotMeta, GroupKind, Refusal, Reply,
    TypeConfig,
};
use crate::{meta0, meta1, meta2, multipart, rebuild, tags};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, StorageError};
use rocksdb::DB;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Snapshots built and installed, counted over every group that shares it (one per
/// node, read by the metrics).
#[derive(Debug, Default)]
pub struct SnapshotCounters {
    built: AtomicU64,
    installed: AtomicU64,
}

impl SnapshotCounters {
    /// Snapshots built so far.
    pub fn built(&self) -> u64 {
        self.built.load(Ordering::Relaxed)
    }

    /// Snapshots received from a leader and installed so far.
    pub fn installed(&self) -> u64 {
        self.installed.load(Ordering::Relaxed)
    }
}

/// State machine of one group.
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<DB>,
    group: u64,
    kind: GroupKind,
    snapshot_dir: PathBuf,
    counters: Arc<SnapshotCounters>,
}

impl StateMachine {
    /// The state machine of `group` in `db`; snapshots go to `snapshot_dir`.
    pub fn new(db: Arc<DB>, group: u64, snapshot_dir: PathBuf) -> Self {
        StateMachine {
            db,
            group,
            kind: GroupKind::of(group),
            snapshot_dir,
            counters: Arc::default(),
        }
    }

    /// The same state machine, counting its snapshots in `counters`.
    pub fn counting(mut self, counters: Arc<SnapshotCounters>) -> Self {
        self.counters = counters;
        self
    }

    /// Read-only view of the group's data (for queries after a linearizable barrier).
    pub fn view(&self) -> SmView<'_> {
        SmView::new(&self.db, self.group)
    }

    fn meta_json<T: serde::de::DeserializeOwned>(&self, name: &[u8]) -> Result<Option<T>> {
        match self
            .db
            .get_pinned(keys::named(keys::SM_META, self.group, name))?
        {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// Applies one command to the overlay.
    fn apply_command(&self, ov: &mut Overlay<'_>, cmd: &Command) -> Result<Reply> {
        let kind = self.kind;
        let wrong = Ok(Reply::Refused(Refusal::WrongGroup));
        match cmd {
            Command::Meta0Init {
                prefix_to_meta1,
                groups,
            } => match kind {
                GroupKind::Meta0 => meta0::apply_init(ov, prefix_to_meta1, groups),
                _ => wrong,
            },
            Command::Batch { commands } => {
                let mut replies = Vec::with_capacity(commands.len());
                for c in commands {
                    replies.push(match c {
                        Command::Batch { .. } => Reply::Refused(Refusal::Invalid),
                        c => self.apply_command(ov, c)?,
                    });
                }
                Ok(Reply::Batch(replies))
            }
            Command::Meta0AddGroups { groups } => match kind {
                GroupKind::Meta0 => meta0::apply_add_groups(ov, groups),
                _ => wrong,
            },
            Command::CreateAccount { account, ctime_ms } => match kind {
                GroupKind::Meta1 => meta1::apply_create_account(ov, account, *ctime_ms),
                _ => wrong,
            },
            Command::PutAccessKey { record } => match kind {
                GroupKind::Meta1 => meta1::apply_put_access_key(ov, record),
                _ => wrong,
            },
            Command::CreateContainer {
                account,
                name,
                cid,
                meta2_group,
                ctime_ms,
            } => match kind {
                GroupKind::Meta1 => {
                    meta1::apply_create_container(ov, account, name, cid, *meta2_group, *ctime_ms)
                }
                _ => wrong,
            },
            Command::DeleteContainer { cid } => match kind {
                GroupKind::Meta1 => meta1::apply_delete_container(ov, cid),
                _ => wrong,
            },
            Command::DeleteAccessKey { access_key } => match kind {
                GroupKind::Meta1 => crate::meta1_admin::apply_delete_access_key(ov, access_key),
                _ => wrong,
            },
            Command::DeleteAccount { account } => match kind {
                GroupKind::Meta1 => crate::meta1_admin::apply_delete_account(ov, account),
                _ => wrong,
            },
            Command::InitContainer { cid, account, name } => match kind {
                GroupKind::Meta2 => meta2::apply_init_container(ov, cid, account, name),
                _ => wrong,
            },
            Command::SetContainerPolicy { cid, policy } => match kind {
                GroupKind::Meta2 => meta2::apply_set_container_policy(ov, cid, policy.as_deref()),
                _ => wrong,
            },
            Command::SetContainerQuota { cid, quota_bytes } => match kind {
                GroupKind::Meta2 => meta2::apply_set_container_quota(ov, cid, *quota_bytes),
                _ => wrong,
            },
            Command::DropContainer { cid } => match kind {
                GroupKind::Meta2 => meta2::apply_drop_container(ov, cid),
                _ => wrong,
            },
            Command::PutContent {
                cid,
                key,
                header,
                proposed_version,
                condition,
            } => match kind {
                GroupKind::Meta2 => meta2::apply_put_content(
                    ov,
                    cid,
                    key,
                    header,
                    *proposed_version,
                    condition.as_ref(),
                ),
                _ => wrong,
            },
            Command::SetContentTags { cid, key, tags } => match kind {
                GroupKind::Meta2 => tags::apply_set_content_tags(ov, cid, key, tags),
                _ => wrong,
            },
            Command::SetVersionTags {
                cid,
                key,
                version,
                tags,
            } => match kind {
                GroupKind::Meta2 => {
                    crate::version_tags::apply_set_version_tags(ov, cid, key, *version, tags)
                }
                _ => wrong,
            },
            Command::SetContainerAcl { cid, acl } => match kind {
                GroupKind::Meta2 => crate::acl::apply_set_container_acl(ov, cid, acl),
                _ => wrong,
            },
            Command::SetContainerTags { cid, tags } => match kind {
                GroupKind::Meta2 => tags::apply_set_container_tags(ov, cid, tags.as_deref()),
                _ => wrong,
            },
            Command::DeleteContent { cid, key } => match kind {
                GroupKind::Meta2 => meta2::apply_delete_content(ov, cid, key),
                _ => wrong,
            },
            Command::CreateUpload {
                cid,
                key,
                upload_id,
                template,
                initiated_us,
            } => match kind {
                GroupKind::Meta2 => {
                    multipart::apply_create_upload(ov, cid, key, upload_id, template, *initiated_us)
                }
                _ => wrong,
            },
            Command::PutPart {
                cid,
                key,
                upload_id,
                part,
            } => match kind {
                GroupKind::Meta2 => multipart::apply_put_part(ov, cid, key, upload_id, part),
                _ => wrong,
            },
            Command::CompleteUpload {
                cid,
                key,
                upload_id,
                parts,
                proposed_version,
                mtime_ms,
                condition,
            } => match kind {
                GroupKind::Meta2 => multipart::apply_complete_upload(
                    ov,
                    cid,
                    key,
                    upload_id,
                    parts,
                    (*proposed_version, *mtime_ms),
                    condition.as_ref(),
                ),
                _ => wrong,
            },
            Command::AbortUpload {
                cid,
                key,
                upload_id,
            } => match kind {
                GroupKind::Meta2 => multipart::apply_abort_upload(ov, cid, key, upload_id),
                _ => wrong,
            },
            Command::ReplaceChunk {
                cid,
                key,
                version,
                old_chunk_id,
                chunk,
            } => match kind {
                GroupKind::Meta2 => {
                    rebuild::apply_replace_chunk(ov, cid, key, *version, old_chunk_id, chunk)
                }
                _ => wrong,
            },
            Command::AddMissingChunk {
                cid,
                key,
                version,
                chunk,
            } => match kind {
                GroupKind::Meta2 => {
                    crate::incomplete::apply_add_missing_chunk(ov, cid, key, *version, chunk)
                }
                _ => wrong,
            },
            Command::AckChunkDeletes { chunk_ids } => match kind {
                GroupKind::Meta2 => crate::purge::apply_ack(ov, chunk_ids),
                _ => wrong,
            },
            Command::SetVersioning { cid, state } => match kind {
                GroupKind::Meta2 => meta2::versions::apply_set_versioning(ov, cid, *state),
                _ => wrong,
            },
            Command::DeleteVersion {
                cid,
                key,
                version,
                clock,
            } => match kind {
                GroupKind::Meta2 => {
                    meta2::versions::apply_delete_version(ov, cid, key, *version, *clock)
                }
                _ => wrong,
            },
        }
    }

    /// Applies entries and writes everything, the applied mark included, in one batch.
    /// The batch is not synced: the entries are durable in the log already (an
    /// append is acknowledged only once synced), and RocksDB's single WAL makes this
    /// batch durable with the next synced write of the node (the next append, vote or
    /// purge, of any group). A crash that loses it loses the applied mark with it, so
    /// the entries are applied again from the log at restart; a log purge, synced,
    /// always follows the applies and the snapshot it depends on.
    async fn apply_entries(&self, entries: Vec<DirEntry>) -> Result<Vec<Reply>> {
        let mut replies = Vec::with_capacity(entries.len());
        let mut last_applied: Option<DirLogId> = None;
        let mut membership: Option<DirMembership> = None;
        let batch = {
            let mut ov = Overlay::new(&self.db, self.group);
            for e in entries {
                last_applied = Some(e.log_id);
                let reply = match &e.payload {
                    EntryPayload::Blank => Reply::Done,
                    EntryPayload::Normal(cmd) => self.apply_command(&mut ov, cmd)?,
                    EntryPayload::Membership(m) => {
                        membership = Some(DirMembership::new(Some(e.log_id), m.clone()));
                        Reply::Done
                    }
                };
                replies.push(reply);
            }
            ov.into_batch()
        };
        let mut batch = batch;
        if let Some(l) = last_applied {
            batch.put(
                keys::named(keys::SM_META, self.group, keys::APPLIED),
                serde_json::to_vec(&Some(l))?,
            );
        }
        if let Some(m) = membership {
            batch.put(
                keys::named(keys::SM_META, self.group, keys::MEMBERSHIP),
                serde_json::to_vec(&m)?,
            );
        }
        write_unsynced(&self.db, batch).await?;
        Ok(replies)
    }

    async fn open_current(&self) -> Result<Option<Snapshot<TypeConfig>>> {
        let dir = self.snapshot_dir.clone();
        let group = self.group;
        let Some((meta, file)) =
            tokio::task::spawn_blocking(move || snapshot::open_current(&dir, group)).await??
        else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(
        &mut self,
    ) -> std::result::Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let db = self.db.clone();
        let dir = self.snapshot_dir.clone();
        let group = self.group;
        tokio::task::spawn_blocking(move || snapshot::build(&db, group, &dir))
            .await
            .map_err(write_snap_err)?
            .map_err(write_snap_err)?;
        self.counters.built.fetch_add(1, Ordering::Relaxed);
        self.open_current()
            .await
            .map_err(read_snap_err)?
            .ok_or_else(|| read_snap_err(Error::Corrupt("snapshot vanished after build".into())))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<(Option<DirLogId>, DirMembership), StorageError<u64>> {
        let applied: Option<DirLogId> = self
            .meta_json::<Option<DirLogId>>(keys::APPLIED)
            .map_err(read_sm_err)?
            .flatten();
        let membership: DirMembership = self
            .meta_json(keys::MEMBERSHIP)
            .map_err(read_sm_err)?
            .unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> std::result::Result<Vec<Reply>, StorageError<u64>>
    where
        I: IntoIterator<Item = DirEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<DirEntry> = entries.into_iter().collect();
        self.apply_entries(entries).await.map_err(write_sm_err)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> std::result::Result<Box<tokio::fs::File>, StorageError<u64>> {
        // An anonymous temporary file: it disappears with its last handle.
        let dir = self.snapshot_dir.clone();
        let f = tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir))
            .await
            .map_err(write_snap_err)?
            .map_err(write_snap_err)?;
        Ok(Box::new(tokio::fs::File::from_std(f)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &DirSnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> std::result::Result<(), StorageError<u64>> {
        let mut file = *snapshot;
        use tokio::io::AsyncWriteExt;
        file.flush().await.map_err(write_snap_err)?;
        let std_file = file.into_std().await;
        let db = self.db.clone();
        let dir = self.snapshot_dir.clone();
        let group = self.group;
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || snapshot::install(&db, group, &dir, std_file, &meta))
            .await
            .map_err(write_snap_err)?
            .map_err(write_snap_err)?;
        self.counters.installed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> std::result::Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        self.open_current().await.map_err(read_snap_err)
    }
}
