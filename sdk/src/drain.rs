//! Draining a live rawx: every chunk recorded on it moves to other rawx.
//!
//! The rawx's score is locked at 0 first (on every conscience), so nothing new is
//! placed there. Then, for each chunk its reverse index lists: the chunk is copied as
//! it is from the draining rawx to a rawx the conscience places away from the
//! metachunk's other chunks (the rawx verifies every segment checksum as it reads, and
//! the copy must come back with the same size and whole-data hash); when that copy
//! fails (unreadable or corrupt chunk), the chunk is regenerated from the other
//! fragments or replicas like a rebuild. The record is switched with `ReplaceChunk`,
//! and only then is the old chunk deleted. A content overwritten or deleted meanwhile
//! is skipped (its old chunk becomes garbage for `collect_garbage`). Runs are
//! idempotent and restartable: a moved chunk leaves the rawx's reverse index. The
//! lock stays: unlock the rawx to use it again.

use crate::client::{Client, Inner};
use crate::rebuild::{
    self, NewChunk, Outcome, RebuildOptions, RebuildProgress, RebuildReport, MAX_CONCURRENCY,
};
use crate::{Error, Result};
use bytes::Bytes;
use futures::StreamExt;
use oxio_common::StoragePolicy;
use oxio_proto::v1::{ChunkRecord, ContentHeader, RawxChunkEntry};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Bytes read from the draining rawx per piece.
const PIECE: u64 = 1 << 20;
/// Pieces queued toward the new rawx before the copy waits.
const QUEUE_DEPTH: usize = 4;
/// Most delete failures kept in a report.
pub const MAX_REPORTED: usize = 100;

/// What a drain did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// The rawx drained.
    pub rawx_id: String,
    /// Counts and failures (`done`: chunks moved).
    pub rebuild: RebuildReport,
    /// Of the moved chunks, those copied from the draining rawx itself.
    pub copied: u64,
    /// Of the moved chunks, those regenerated from the other chunks of their metachunk.
    pub regenerated: u64,
    /// Old chunks deleted from the drained rawx.
    pub deleted: u64,
    /// Old chunks whose delete failed (left for garbage collection), with why.
    pub delete_failures: Vec<String>,
}

impl DrainReport {
    /// Whether every recorded chunk moved (or was skipped).
    pub fn is_complete(&self) -> bool {
        self.rebuild.is_complete()
    }
}

/// How one chunk moved.
enum Moved {
    Copied,
    Regenerated,
}

impl Client {
    /// Drains the live rawx `rawx_id`: locks its score at 0, moves every chunk
    /// recorded on it to other rawx and deletes the old copies. `progress` is called
    /// once the chunks are listed and after each one.
    #[tracing::instrument(level = "info", skip(self, options, progress))]
    pub async fn drain_rawx(
        &self,
        rawx_id: &str,
        options: RebuildOptions,
        progress: impl Fn(RebuildProgress),
    ) -> Result<DrainReport> {
        if !(1..=MAX_CONCURRENCY).contains(&options.concurrency) {
            return Err(Error::InvalidArgument(format!(
                "concurrency must be 1 to {MAX_CONCURRENCY}"
            )));
        }
        let addr = self.rawx_addr_up(rawx_id).await.map_err(|e| match e {
            Error::Unavailable(_) => Error::Unavailable(format!(
                "rawx {rawx_id} is down: a drain reads it; use the volume rebuild instead"
            )),
            e => e,
        })?;
        self.lock_service("rawx", rawx_id, 0).await?;
        let inner = self.shared().clone();
        let (work, more) = rebuild::list_all(&inner, rawx_id).await?;
        let mut report = DrainReport {
            rawx_id: rawx_id.to_string(),
            ..Default::default()
        };
        report.rebuild.more_remaining = more;
        report.rebuild.progress.total = work.len() as u64;
        tracing::info!(rawx = rawx_id, chunks = work.len(), "drain listed");
        progress(report.rebuild.progress);
        let mut results = futures::stream::iter(work)
            .map(|(group, entry)| {
                let inner = inner.clone();
                let addr = addr.clone();
                async move {
                    let (outcome, how) = drain_one(&inner, group, rawx_id, &addr, &entry).await;
                    let deleted = match outcome {
                        Outcome::Done(_) => Some(inner.rawx.delete(&addr, &entry.chunk_id).await),
                        _ => None,
                    };
                    (entry, outcome, how, deleted)
                }
            })
            .buffer_unordered(options.concurrency);
        while let Some((entry, outcome, how, deleted)) = results.next().await {
            match how {
                Some(Moved::Copied) => report.copied += 1,
                Some(Moved::Regenerated) => report.regenerated += 1,
                None => {}
            }
            crate::repair::note_delete(
                deleted,
                &entry.chunk_id,
                &mut report.deleted,
                &mut report.delete_failures,
            );
            report.rebuild.record(&entry, outcome);
            progress(report.rebuild.progress);
        }
        tracing::info!(
            rawx = rawx_id,
            moved = report.rebuild.progress.done,
            copied = report.copied,
            regenerated = report.regenerated,
            failed = report.rebuild.progress.failed,
            "drain finished"
        );
        Ok(report)
    }
}

/// Moves one chunk: a verified copy when the draining rawx serves it, a regeneration
/// from the other chunks otherwise.
async fn drain_one(
    inner: &Arc<Inner>,
    group: u64,
    rawx_id: &str,
    addr: &str,
    e: &RawxChunkEntry,
) -> (Outcome, Option<Moved>) {
    if e.version == 0 {
        return (
            Outcome::Skipped("part of a multipart upload not completed"),
            None,
        );
    }
    let header = match rebuild::get_header(inner, group, e).await {
        Ok(Some(h)) => h,
        Ok(None) => return (Outcome::Skipped("content changed"), None),
        Err(err) => {
            return (
                Outcome::Failed(format!("reading the content header: {err}")),
                None,
            )
        }
    };
    let Some(old) = header
        .chunks
        .iter()
        .find(|c| c.chunk_id.eq_ignore_ascii_case(&e.chunk_id) && c.rawx_id == rawx_id)
        .cloned()
    else {
        return (Outcome::Skipped("content changed"), None);
    };
    match copy_chunk(inner, e, &header, &old, addr).await {
        Ok(new) => {
            let bytes = new.size;
            match rebuild::replace(inner, group, e, new.clone()).await {
                Ok(_) => (Outcome::Done(bytes), Some(Moved::Copied)),
                Err(Some(err)) => {
                    inner.delete_chunks_later(vec![new]);
                    (
                        Outcome::Failed(format!("replacing the chunk record: {err}")),
                        None,
                    )
                }
                Err(None) => {
                    inner.delete_chunks_later(vec![new]);
                    (Outcome::Skipped("content changed"), None)
                }
            }
        }
        Err(err) => {
            tracing::info!(chunk = %e.chunk_id, error = %err, "copy failed, regenerating the chunk");
            match rebuild::rebuild_one(inner, group, rawx_id, e).await {
                Outcome::Done(b) => (Outcome::Done(b), Some(Moved::Regenerated)),
                other => (other, None),
            }
        }
    }
}

/// Copies `old` from the rawx at `src` to a freshly placed rawx and returns the new
/// record; the copy must match the old chunk's size and whole-data hash.
async fn copy_chunk(
    inner: &Arc<Inner>,
    e: &RawxChunkEntry,
    header: &ContentHeader,
    old: &ChunkRecord,
    src: &str,
) -> Result<ChunkRecord> {
    if old.size == 0 {
        return Err(Error::Internal("record has no chunk size".into()));
    }
    let policy: StoragePolicy = header
        .policy
        .parse()
        .map_err(|err| Error::Internal(format!("stored content has {err}")))?;
    let mut reader = inner.rawx.get(src, &old.chunk_id, 0, old.size).await?;
    let NewChunk {
        target,
        chunk_id,
        meta,
    } = rebuild::place_new_chunk(inner, &e.cid, header, old, policy).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE_DEPTH);
    let rawx = inner.rawx.clone();
    let (to, id) = (target.addr.clone(), chunk_id.clone());
    let upload = tokio::spawn(crate::rawx::with_request_id(
        crate::rawx::current_request_id(),
        async move { rawx.put(&to, &id, &meta, rx).await },
    ));
    let mut left = old.size;
    let mut fed = Ok(());
    while left > 0 {
        let n = left.min(PIECE);
        let piece = match reader.read_exact(n as usize).await {
            Ok(p) => p,
            Err(err) => {
                fed = Err(err);
                break;
            }
        };
        if tx.send(piece).await.is_err() {
            fed = Err(Error::Unavailable("new rawx closed the upload".into()));
            break;
        }
        left -= n;
    }
    if fed.is_ok() {
        // The end marker: without it the rawx discards the upload.
        let _ = tx.send(Bytes::new()).await;
    }
    drop(tx);
    let stored = upload
        .await
        .map_err(|err| Error::Internal(format!("upload task: {err}")));
    fed?;
    let stored = stored??;
    let new = ChunkRecord {
        metachunk: old.metachunk,
        fragment: old.fragment,
        rawx_id: target.id.clone(),
        addr: target.addr.clone(),
        chunk_id,
        size: stored.size,
        hash: stored.hash,
    };
    if new.size != old.size || (!old.hash.is_empty() && !new.hash.eq_ignore_ascii_case(&old.hash)) {
        let why = format!(
            "copy has {} bytes hash {:?}, the chunk {} bytes hash {:?}",
            new.size, new.hash, old.size, old.hash
        );
        inner.delete_chunks_later(vec![new]);
        return Err(Error::Internal(why));
    }
    Ok(new)
}
