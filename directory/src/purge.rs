//! meta2's durable queue of chunks to delete from the rawx.
//!
//! Every apply that makes chunks garbage (an object deleted or replaced, a version
//! removed for good, a part replaced, an upload aborted, the parts a completion did
//! not use, a chunk swapped by a rebuild) writes, in the same Raft entry, one entry
//! per chunk: key `2d` + chunk id, value a [`PendingDelete`] (JSON). So a chunk is
//! either named by a record or queued, never forgotten, whatever dies when. The
//! group's leader works through the queue ([`crate::purger`]), deletes each chunk
//! on its rawx (a 404 counts as done) and removes the entries it finished with one
//! [`apply_ack`] command; an entry whose delete failed stays and is tried again.

use crate::error::Result;
use crate::keys::sm;
use crate::meta2;
use crate::sm_data::{Overlay, SmView};
use crate::types::Reply;
use oxio_proto::v1::ChunkRecord;
use serde::{Deserialize, Serialize};

/// meta2: chunks to delete, followed by the chunk id.
pub const M2_PURGE: &[u8] = b"2d";
/// Most entries one page returns, and one acknowledgement removes.
pub const MAX_PAGE: usize = 1000;
/// Longest chunk id accepted in an acknowledgement.
pub const MAX_CHUNK_ID_BYTES: usize = 128;

/// One chunk waiting for its delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDelete {
    /// Service id of the rawx holding it.
    pub rawx_id: String,
    /// Address of that rawx when the chunk was written.
    pub addr: String,
    /// 64 hex.
    pub chunk_id: String,
    /// Container the chunk belonged to (for logs).
    pub cid: String,
}

fn entry_key(chunk_id: &str) -> Vec<u8> {
    sm::one(M2_PURGE, chunk_id.as_bytes())
}

/// Queues `chunks` (of container `cid`) for deletion.
pub(crate) fn enqueue(ov: &mut Overlay<'_>, cid: &str, chunks: &[ChunkRecord]) -> Result<()> {
    for c in chunks {
        if c.chunk_id.is_empty() {
            continue;
        }
        let e = PendingDelete {
            rawx_id: c.rawx_id.clone(),
            addr: c.addr.clone(),
            chunk_id: c.chunk_id.clone(),
            cid: cid.to_string(),
        };
        ov.put(entry_key(&c.chunk_id), serde_json::to_vec(&e)?);
    }
    Ok(())
}

/// Chunks that no longer belong to `cid`/`key`: out of the reverse index and into
/// the queue, in the same apply.
pub(crate) fn discard(
    ov: &mut Overlay<'_>,
    cid: &str,
    key: &str,
    chunks: &[ChunkRecord],
) -> Result<()> {
    meta2::unindex(ov, cid, key, chunks);
    enqueue(ov, cid, chunks)
}

/// Up to `max` (at most [`MAX_PAGE`]) entries whose chunk id sorts strictly after
/// `after` (empty: from the start), and whether more follow.
pub fn list(view: &SmView<'_>, after: &str, max: usize) -> Result<(Vec<PendingDelete>, bool)> {
    let max = max.clamp(1, MAX_PAGE);
    let mut cursor = view.cursor(M2_PURGE);
    cursor.seek(after.as_bytes());
    let mut out = Vec::new();
    while let Some((k, v)) = cursor.current() {
        if !after.is_empty() && k == after.as_bytes() {
            cursor.next();
            continue;
        }
        if out.len() == max {
            return Ok((out, true));
        }
        out.push(serde_json::from_slice(v)?);
        cursor.next();
    }
    cursor.status()?;
    Ok((out, false))
}

/// Applies `AckChunkDeletes`: the chunks named were deleted (or found absent) on
/// their rawx; their entries go. Unknown ids are ignored (acknowledged twice, or by
/// a former leader).
pub fn apply_ack(ov: &mut Overlay<'_>, chunk_ids: &[String]) -> Result<Reply> {
    for id in chunk_ids.iter().take(MAX_PAGE) {
        ov.delete(entry_key(id));
    }
    Ok(Reply::Done)
}

#[cfg(test)]
#[path = "purge_tests.rs"]
mod tests;
