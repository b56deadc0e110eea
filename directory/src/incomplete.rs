//! meta2 index of incomplete contents: stored versions with fewer chunks than their
//! policy's width in some metachunk (a put reaches its quorum, k+1 fragments for EC,
//! without every fragment; a failed fragment simply has no chunk record).
//!
//! Keys `2m` + cid (64 bytes) + lp(key) + BE u64 version, value an
//! [`IncompleteEntry`] (JSON). The entry is written in the same apply that stores the
//! version (computed from its chunk records and policy), removed when the version is
//! dropped (replaced, deleted) and when [`apply_add_missing_chunk`] fills its last
//! empty slot. Moving a version between the content key and the version key space
//! keeps its entry (the version number does not change).

use crate::error::Result;
use crate::keys::{push_lp, sm};
use crate::meta2;
use crate::sm_data::{Overlay, SmView};
use crate::types::{Refusal, Reply};
use oxio_proto::v1::{AddMissingChunkReply, ChunkRecord, ContentHeader};
use prost::Message;
use serde::{Deserialize, Serialize};

/// meta2: incomplete contents, followed by the cid, lp(key) and the BE u64 version.
pub const M2_INCOMPLETE: &[u8] = b"2m";
/// Most entries one page returns.
pub const MAX_PAGE: usize = 1000;
/// Longest cursor accepted, in bytes once decoded (cid, length prefix, key, version).
pub const MAX_CURSOR_BYTES: usize = 64 + 2 + meta2::MAX_KEY_BYTES + 8;

/// One incomplete content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncompleteEntry {
    /// Container id.
    pub cid: String,
    /// Object key.
    pub key: String,
    /// The stored version.
    pub version: u64,
    /// Chunks missing over all its metachunks.
    pub missing: u32,
}

/// One page of the incomplete contents of a group.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IncompletePage {
    /// Entries in index order.
    pub entries: Vec<IncompleteEntry>,
    /// When more remain: the cursor (index suffix of the last entry) for the next page.
    pub next: Option<Vec<u8>>,
}

fn entry_key(cid: &str, key: &str, version: u64) -> Vec<u8> {
    let mut k = sm::one(M2_INCOMPLETE, cid.as_bytes());
    push_lp(&mut k, key.as_bytes());
    k.extend_from_slice(&version.to_be_bytes());
    k
}

pub use oxio_proto::content::missing_slots;

/// Writes or removes the entry of `h` (stored under `cid`/`key` at `h.version`) after
/// its chunk records changed.
pub(crate) fn note(ov: &mut Overlay<'_>, cid: &str, key: &str, h: &ContentHeader) -> Result<()> {
    let k = entry_key(cid, key, h.version);
    let missing = missing_slots(h).len();
    if missing == 0 {
        ov.delete(k);
        return Ok(());
    }
    let e = IncompleteEntry {
        cid: cid.to_string(),
        key: key.to_string(),
        version: h.version,
        missing: u32::try_from(missing).unwrap_or(u32::MAX),
    };
    ov.put(k, serde_json::to_vec(&e)?);
    Ok(())
}

/// Removes the entry of version `version` of `cid`/`key` (the version is dropped).
pub(crate) fn forget(ov: &mut Overlay<'_>, cid: &str, key: &str, version: u64) {
    ov.delete(entry_key(cid, key, version));
}

/// Up to `max` (at most [`MAX_PAGE`]; 0 means [`MAX_PAGE`]) entries strictly after
/// the cursor `start_after` (empty: from the start).
pub fn list_incomplete(
    view: &SmView<'_>,
    start_after: &[u8],
    max: usize,
) -> Result<IncompletePage> {
    let max = if max == 0 {
        MAX_PAGE
    } else {
        max.min(MAX_PAGE)
    };
    let mut cursor = view.cursor(M2_INCOMPLETE);
    cursor.seek(start_after);
    let mut page = IncompletePage::default();
    let mut last: Option<Vec<u8>> = None;
    while let Some((k, v)) = cursor.current() {
        if !start_after.is_empty() && k == start_after {
            cursor.next();
            continue;
        }
        if page.entries.len() == max {
            page.next = last;
            return Ok(page);
        }
        page.entries.push(serde_json::from_slice(v)?);
        last = Some(k.to_vec());
        cursor.next();
    }
    cursor.status()?;
    Ok(page)
}

/// Applies `AddMissingChunk`: when `key` still holds `version` and its slot
/// (metachunk, fragment) named by `chunk` is empty, the record is added, indexed in
/// the reverse index, and the incomplete entry updated. Already added (the chunk id
/// is listed): answers `added = false` and changes nothing.
pub fn apply_add_missing_chunk(
    ov: &mut Overlay<'_>,
    cid: &str,
    key: &str,
    version: u64,
    chunk: &[u8],
) -> Result<Reply> {
    let Ok(new) = ChunkRecord::decode(chunk) else {
        return Ok(Reply::Refused(Refusal::Invalid));
    };
    if meta2::load_meta(ov, cid)?.is_none() {
        return Ok(Reply::Refused(Refusal::ContentChanged));
    }
    // The latest live version lives under the content key, older ones in the
    // version key space.
    let ck = sm::content(cid, key);
    let latest = match ov.get(&ck)? {
        Some(b) => Some(ContentHeader::decode(b.as_slice())?),
        None => None,
    };
    let (ck, mut h) = match latest {
        Some(h) if h.version == version => (ck, h),
        _ => {
            let vk = meta2::versions::version_key(cid, key, version);
            match ov.get(&vk)? {
                Some(b) if !key.as_bytes().contains(&0) => {
                    (vk, ContentHeader::decode(b.as_slice())?)
                }
                _ => return Ok(Reply::Refused(Refusal::ContentChanged)),
            }
        }
    };
    if h.version != version || h.delete_marker {
        return Ok(Reply::Refused(Refusal::ContentChanged));
    }
    if h.chunks.iter().any(|c| c.chunk_id == new.chunk_id) {
        return Ok(encoded(false, missing_slots(&h).is_empty()));
    }
    if !missing_slots(&h).contains(&(new.metachunk, new.fragment)) {
        // The slot is filled (or outside the policy's width): nothing to add.
        return Ok(Reply::Refused(Refusal::ContentChanged));
    }
    let at = h
        .chunks
        .iter()
        .position(|c| (c.metachunk, c.fragment) > (new.metachunk, new.fragment))
        .unwrap_or(h.chunks.len());
    h.chunks.insert(at, new.clone());
    meta2::index(ov, cid, key, std::slice::from_ref(&new), version)?;
    note(ov, cid, key, &h)?;
    let complete = missing_slots(&h).is_empty();
    ov.put(ck, h.encode_to_vec());
    Ok(encoded(true, complete))
}

fn encoded(added: bool, complete: bool) -> Reply {
    Reply::Encoded(AddMissingChunkReply { added, complete }.encode_to_vec())
}

#[cfg(test)]
#[path = "incomplete_tests.rs"]
mod tests;
