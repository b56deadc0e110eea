//! meta2 support for rebuilding a lost rawx: paging through the reverse index of one
//! rawx, and replacing one chunk record of a content by a rebuilt copy in one Raft
//! command that also moves the chunk's reverse-index entry.
//!
//! Chunks of multipart parts not yet completed are indexed with version 0 and are not
//! part of any content: [`apply_replace_chunk`] refuses them (`ContentChanged`), and the
//! rebuild skips them (an abandoned upload's parts are garbage; a completed one is
//! re-indexed under the object's version).

use crate::error::Result;
use crate::keys::sm;
use crate::meta2::{self, ReverseEntry};
use crate::sm_data::{Overlay, SmView};
use crate::types::{Refusal, Reply};
use oxio_proto::v1::{ChunkRecord, ContentHeader, ReplaceChunkReply};
use prost::Message;

/// Most reverse-index entries one page returns.
pub const MAX_PAGE: usize = 1000;
/// Longest cursor accepted, in bytes once decoded (length prefix, chunk id, cid, key).
pub const MAX_CURSOR_BYTES: usize = 16 + 64 + 64 + meta2::MAX_KEY_BYTES + 64;

/// One page of the chunks a rawx holds in a group.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RawxPage {
    /// Entries in index order.
    pub entries: Vec<ReverseEntry>,
    /// When more remain: the cursor (index suffix of the last entry) for the next page.
    pub next: Option<Vec<u8>>,
}

/// Up to `max` (at most [`MAX_PAGE`]; 0 means [`MAX_PAGE`]) reverse-index entries of
/// `rawx_id` strictly after the cursor `start_after` (empty: from the start).
pub fn list_rawx_chunks(
    view: &SmView<'_>,
    rawx_id: &str,
    start_after: &[u8],
    max: usize,
) -> Result<RawxPage> {
    let max = if max == 0 {
        MAX_PAGE
    } else {
        max.min(MAX_PAGE)
    };
    let mut cursor = view.cursor(&sm::reverse_of(rawx_id));
    cursor.seek(start_after);
    let mut page = RawxPage::default();
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

/// Applies `ReplaceChunk`: when `key` still holds `version` and that version lists
/// `old_chunk_id`, the record becomes `chunk` (keeping the old metachunk and fragment)
/// and the reverse index moves from the old rawx to the new one. Already replaced
/// (the new chunk id is listed): answers `replaced = false` and changes nothing.
pub fn apply_replace_chunk(
    ov: &mut Overlay<'_>,
    cid: &str,
    key: &str,
    version: u64,
    old_chunk_id: &str,
    chunk: &[u8],
) -> Result<Reply> {
    let Ok(mut new) = ChunkRecord::decode(chunk) else {
        return Ok(Reply::Refused(Refusal::Invalid));
    };
    if meta2::load_meta(ov, cid)?.is_none() {
        return Ok(Reply::Refused(Refusal::ContentChanged));
    }
    // The version lives under the content key when it is the latest live one, in the
    // version key space otherwise (older versions of a versioned container).
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
        return Ok(encoded(false));
    }
    let Some(slot) = h.chunks.iter_mut().find(|c| c.chunk_id == old_chunk_id) else {
        return Ok(Reply::Refused(Refusal::ContentChanged));
    };
    new.metachunk = slot.metachunk;
    new.fragment = slot.fragment;
    let old = std::mem::replace(slot, new.clone());
    crate::purge::discard(ov, cid, key, std::slice::from_ref(&old))?;
    meta2::index(ov, cid, key, std::slice::from_ref(&new), version)?;
    ov.put(ck, h.encode_to_vec());
    Ok(encoded(true))
}

fn encoded(replaced: bool) -> Reply {
    Reply::Encoded(ReplaceChunkReply { replaced }.encode_to_vec())
}

#[cfg(test)]
#[path = "rebuild_tests.rs"]
mod tests;
