//! meta2 multipart uploads. An upload record holds the template of the final object;
//! each part record holds the part's size, MD5 and chunk records (its chunks are in
//! the reverse index from the moment the part is recorded). Completion is one command:
//! it validates the client's part list, concatenates the parts' metachunks into the
//! object's header (no data is copied), stores it like `PutContent`, and returns the
//! parts that were not listed so their chunks can be deleted.

use crate::error::Result;
use crate::keys::sm;
use crate::meta2::{self, load_meta, store_meta};
use crate::sm_data::{Overlay, SmView};
use crate::types::{Refusal, Reply, WriteCondition};
use md5::{Digest, Md5};
use oxio_proto::v1::{
    AbortUploadReply, CompleteUploadReply, ContentHeader, CreateUploadReply, PartRecord,
    PutPartReply, UploadRecord,
};
use prost::Message;

/// Highest part number (as S3).
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Smallest size of every part but the last (as S3: 5 MiB).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// Most chunks a completed object may list: 10,000 parts of one EC 4+2 metachunk,
/// with room to spare.
pub const MAX_COMPLETED_CHUNKS: usize = 65_536;
/// Default and largest page of parts or uploads.
pub const MAX_PAGE: u32 = 1000;
/// Longest upload id, in bytes.
pub const MAX_UPLOAD_ID_BYTES: usize = 128;

fn load_upload(
    ov: &Overlay<'_>,
    cid: &str,
    key: &str,
    upload_id: &str,
) -> Result<Option<UploadRecord>> {
    match ov.get(&sm::upload(cid, key, upload_id))? {
        Some(v) => Ok(Some(UploadRecord::decode(v.as_slice())?)),
        None => Ok(None),
    }
}

/// Every part of an upload, ordered by part number (pending changes included).
fn load_parts(ov: &Overlay<'_>, cid: &str, upload_id: &str) -> Result<Vec<PartRecord>> {
    let (rows, _) = ov.scan(&sm::parts_of(cid, upload_id), MAX_PART_NUMBER as usize)?;
    rows.into_iter()
        .map(|(_, v)| Ok(PartRecord::decode(v.as_slice())?))
        .collect()
}

/// Removes the upload record, its order entry and every part (with their reverse-index
/// entries); returns the parts.
fn forget_upload(ov: &mut Overlay<'_>, cid: &str, up: &UploadRecord) -> Result<Vec<PartRecord>> {
    let parts = load_parts(ov, cid, &up.upload_id)?;
    for p in &parts {
        meta2::unindex(ov, cid, &up.key, &p.chunks);
        ov.delete(sm::part(cid, &up.upload_id, p.part_number));
    }
    ov.delete(sm::upload(cid, &up.key, &up.upload_id));
    let mut order = sm::upload_order_of(cid);
    order.extend(sm::upload_order_suffix(
        &up.key,
        up.initiated_us,
        &up.upload_id,
    ));
    ov.delete(order);
    Ok(parts)
}

/// Applies `CreateUpload`: records the upload unless its id is taken.
pub fn apply_create_upload(
    ov: &mut Overlay<'_>,
    cid: &str,
    key: &str,
    upload_id: &str,
    template: &[u8],
    initiated_us: u64,
) -> Result<Reply> {
    let Some(mut meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    let Ok(template) = ContentHeader::decode(template) else {
        return Ok(Reply::Refused(Refusal::Invalid));
    };
    if key.as_bytes().contains(&0) || upload_id.as_bytes().contains(&0) {
        return Ok(Reply::Refused(Refusal::Invalid));
    }
    if load_upload(ov, cid, key, upload_id)?.is_some() {
        return Ok(Reply::Refused(Refusal::UploadExists));
    }
    let up = UploadRecord {
        key: key.to_string(),
        upload_id: upload_id.to_string(),
        initiated_us,
        template: Some(template),
    };
    ov.put(sm::upload(cid, key, upload_id), up.encode_to_vec());
    let mut order = sm::upload_order_of(cid);
    order.extend(sm::upload_order_suffix(key, initiated_us, upload_id));
    ov.put(order, Vec::new());
    meta.uploads = meta.uploads.saturating_add(1);
    store_meta(ov, cid, &meta)?;
    Ok(Reply::Encoded(
        CreateUploadReply { upload: Some(up) }.encode_to_vec(),
    ))
}

/// Applies `PutPart`: records the part, indexes its chunks, returns the part it
/// replaced.
pub fn apply_put_part(
    ov: &mut Overlay<'_>,
    cid: &str,
    key: &str,
    upload_id: &str,
    part: &[u8],
) -> Result<Reply> {
    let Some(meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    let Ok(part) = PartRecord::decode(part) else {
        return Ok(Reply::Refused(Refusal::Invalid));
    };
    if !(1..=MAX_PART_NUMBER).contains(&part.part_number) {
        return Ok(Reply::Refused(Refusal::Invalid));
    }
    if load_upload(ov, cid, key, upload_id)?.is_none() {
        return Ok(Reply::Refused(Refusal::NoSuchUpload));
    }
    // Parts count against the quota only once completed; a part that could never
    // fit is refused early. The completion checks the whole object.
    if !meta.admits(part.size) {
        return Ok(Reply::Refused(Refusal::QuotaExceeded));
    }
    let pk = sm::part(cid, upload_id, part.part_number);
    let replaced = match ov.get(&pk)? {
        Some(v) => {
            let old = PartRecord::decode(v.as_slice())?;
            crate::purge::discard(ov, cid, key, &old.chunks)?;
            Some(old)
        }
        None => None,
    };
    // Parts are indexed at version 0 until the completed object re-indexes them.
    meta2::index(ov, cid, key, &part.chunks, 0)?;
    ov.put(pk, part.encode_to_vec());
    Ok(Reply::Encoded(PutPartReply { replaced }.encode_to_vec()))
}

/// Normalises an etag for comparison: no quotes, lower case.
fn bare_etag(e: &str) -> String {
    e.trim().trim_matches('"').to_ascii_lowercase()
}

/// The S3 multipart etag: hex MD5 of the concatenated binary part MD5s, `-`, count.
/// `None` when a part's etag is not 32 hex digits.
pub fn multipart_etag(part_etags: &[&str]) -> Option<String> {
    let mut md5 = Md5::new();
    for e in part_etags {
        let raw = hex::decode(bare_etag(e)).ok()?;
        if raw.len() != 16 {
            return None;
        }
        md5.update(&raw);
    }
    Some(format!(
        "{}-{}",
        hex::encode(md5.finalize()),
        part_etags.len()
    ))
}

/// What a completion decided, before it is written.
struct Assembled {
    header: ContentHeader,
    used: Vec<u32>,
}

/// Validates the client's list against the stored parts and builds the header.
fn assemble(
    template: &ContentHeader,
    stored: &[PartRecord],
    listed: &[(u32, String)],
    mtime_ms: u64,
) -> std::result::Result<Assembled, Refusal> {
    if listed.is_empty() {
        return Err(Refusal::Invalid);
    }
    if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(Refusal::InvalidPartOrder);
    }
    let mut chosen = Vec::with_capacity(listed.len());
    for (n, etag) in listed {
        let part = stored
            .binary_search_by_key(n, |p| p.part_number)
            .ok()
            .map(|i| &stored[i])
            .ok_or(Refusal::InvalidPart)?;
        if bare_etag(&part.etag) != bare_etag(etag) {
            return Err(Refusal::InvalidPart);
        }
        chosen.push(part);
    }
    if chosen[..chosen.len() - 1]
        .iter()
        .any(|p| p.size < MIN_PART_BYTES)
    {
        return Err(Refusal::EntityTooSmall);
    }
    let chunk_count: usize = chosen.iter().map(|p| p.chunks.len()).sum();
    if chunk_count > MAX_COMPLETED_CHUNKS {
        return Err(Refusal::EntityTooLarge);
    }
    let etags: Vec<&str> = chosen.iter().map(|p| p.etag.as_str()).collect();
    let etag = multipart_etag(&etags).ok_or(Refusal::InvalidPart)?;
    let mut header = ContentHeader {
        placement_degraded: false,
        content_id: template.content_id.clone(),
        version: 0,
        size: 0,
        policy: template.policy.clone(),
        etag,
        mtime_ms,
        content_type: template.content_type.clone(),
        user_meta: template.user_meta.clone(),
        system_meta: template.system_meta.clone(),
        tags: template.tags.clone(),
        inline_data: Vec::new(),
        metachunk_sizes: Vec::new(),
        part_sizes: Vec::with_capacity(chosen.len()),
        chunks: Vec::with_capacity(chunk_count),
        ..Default::default()
    };
    for p in &chosen {
        header.placement_degraded |= p.placement_degraded;
        let base = header.metachunk_sizes.len() as u32;
        header.size = header.size.saturating_add(p.size);
        header.part_sizes.push(p.size);
        header.metachunk_sizes.extend_from_slice(&p.metachunk_sizes);
        for c in &p.chunks {
            let mut c = c.clone();
            c.metachunk = c.metachunk.saturating_add(base);
            header.chunks.push(c);
        }
    }
    Ok(Assembled {
        header,
        used: chosen.iter().map(|p| p.part_number).collect(),
    })
}

/// Applies `CompleteUpload`: checks the condition, validates, stores the object under
/// its key (as a put: version rules, stats, reverse index; the leader's proposed version
/// and modification time come as one pair), forgets the upload, and answers the stored
/// header, the replaced one and the parts that were not used.
pub fn apply_complete_upload(
    ov: &mut Overlay<'_>,
    cid: &str,
    key: &str,
    upload_id: &str,
    listed: &[(u32, String)],
    (proposed_version, mtime_ms): (u64, u64),
    condition: Option<&WriteCondition>,
) -> Result<Reply> {
    let Some(mut meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    let Some(up) = load_upload(ov, cid, key, upload_id)? else {
        return Ok(Reply::Refused(Refusal::NoSuchUpload));
    };
    // A failed condition leaves the upload in place (it can still be aborted).
    if let Err(r) = meta2::check_condition(ov, cid, key, condition)? {
        return Ok(Reply::Refused(r));
    }
    let stored = load_parts(ov, cid, upload_id)?;
    let template = up.template.clone().unwrap_or_default();
    let assembled = match assemble(&template, &stored, listed, mtime_ms) {
        Ok(a) => a,
        Err(r) => return Ok(Reply::Refused(r)),
    };
    // Over the quota, the upload stays in place (it can be aborted).
    if !meta.admits(assembled.header.size) {
        return Ok(Reply::Refused(Refusal::QuotaExceeded));
    }
    let parts = forget_upload(ov, cid, &up)?;
    let unused: Vec<PartRecord> = parts
        .into_iter()
        .filter(|p| assembled.used.binary_search(&p.part_number).is_err())
        .collect();
    for p in &unused {
        crate::purge::enqueue(ov, cid, &p.chunks)?;
    }
    let (version, replaced) = meta2::store_content(
        ov,
        &mut meta,
        cid,
        key,
        assembled.header.clone(),
        proposed_version,
    )?;
    meta.uploads = meta.uploads.saturating_sub(1);
    store_meta(ov, cid, &meta)?;
    let replaced = replaced
        .map(|b| ContentHeader::decode(b.as_slice()))
        .transpose()?;
    Ok(Reply::Encoded(
        CompleteUploadReply {
            header: Some(ContentHeader {
                version,
                version_id: meta2::versions::reply_id(&meta, version),
                ..assembled.header
            }),
            replaced,
            unused,
        }
        .encode_to_vec(),
    ))
}

/// Applies `AbortUpload`: forgets the upload and returns its parts.
pub fn apply_abort_upload(
    ov: &mut Overlay<'_>,
    cid: &str,
    key: &str,
    upload_id: &str,
) -> Result<Reply> {
    let Some(mut meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    let Some(up) = load_upload(ov, cid, key, upload_id)? else {
        return Ok(Reply::Refused(Refusal::NoSuchUpload));
    };
    let parts = forget_upload(ov, cid, &up)?;
    for p in &parts {
        crate::purge::enqueue(ov, cid, &p.chunks)?;
    }
    meta.uploads = meta.uploads.saturating_sub(1);
    store_meta(ov, cid, &meta)?;
    Ok(Reply::Encoded(AbortUploadReply { parts }.encode_to_vec()))
}

/// The upload record, or why there is none.
pub fn get_upload(
    view: &SmView<'_>,
    cid: &str,
    key: &str,
    upload_id: &str,
) -> Result<std::result::Result<UploadRecord, Refusal>> {
    if meta2::container_meta(view, cid)?.is_none() {
        return Ok(Err(Refusal::NoSuchContainer));
    }
    match view.get(&sm::upload(cid, key, upload_id))? {
        Some(v) => Ok(Ok(UploadRecord::decode(v.as_slice())?)),
        None => Ok(Err(Refusal::NoSuchUpload)),
    }
}

fn page_size(max: u32) -> usize {
    let n = match max {
        0 => MAX_PAGE,
        n => n.min(MAX_PAGE),
    };
    n as usize
}

/// Parts of an upload numbered after `marker`, at most `max` (0: [`MAX_PAGE`]), without
/// their chunk records. Returns the parts and whether more follow.
pub fn list_parts(
    view: &SmView<'_>,
    cid: &str,
    upload_id: &str,
    marker: u32,
    max: u32,
) -> Result<(Vec<PartRecord>, bool)> {
    let limit = page_size(max);
    let mut cursor = view.cursor(&sm::parts_of(cid, upload_id));
    cursor.seek(&marker.saturating_add(1).to_be_bytes());
    let mut out = Vec::new();
    let mut truncated = false;
    while let Some((k, v)) = cursor.current() {
        if k.len() != 4 {
            cursor.next();
            continue;
        }
        if out.len() == limit {
            truncated = true;
            break;
        }
        let mut p = PartRecord::decode(v)?;
        p.chunks.clear();
        out.push(p);
        cursor.next();
    }
    cursor.status()?;
    Ok((out, truncated))
}

/// One page of [`list_uploads`].
#[derive(Debug, Default)]
pub struct UploadsPage {
    /// Uploads (templates without metadata maps), in key then initiation order.
    pub uploads: Vec<UploadRecord>,
    /// Common prefixes (with a delimiter), in order; each counts as one entry.
    pub common_prefixes: Vec<String>,
    /// More follow.
    pub truncated: bool,
    /// Where the next page starts (S3 `NextKeyMarker`): the last upload's key, or the
    /// last common prefix when the page ended on one.
    pub next_key_marker: String,
    /// With `next_key_marker`: the last upload's id (empty after a common prefix).
    pub next_upload_id_marker: String,
}

/// One page of uploads in progress: keys starting with `prefix`, ordered by key then
/// initiation time, after the markers (S3 semantics: `upload_id_marker` only counts
/// with `key_marker`). With a `delimiter`, the keys that hold it after the prefix
/// roll up into common prefixes (each counted once, as one entry, and only when it
/// sorts after `key_marker`, so a marker that is a common prefix continues past it).
pub fn list_uploads(
    view: &SmView<'_>,
    cid: &str,
    prefix: &str,
    delimiter: &str,
    key_marker: &str,
    upload_id_marker: &str,
    max: u32,
) -> Result<UploadsPage> {
    let limit = page_size(max);
    let mut cursor = view.cursor_within(&sm::upload_order_of(cid), prefix.as_bytes());
    // Where to start, and the exact entry to skip when it is the marker itself.
    let mut skip: Option<Vec<u8>> = None;
    let mut seek = prefix.as_bytes().to_vec();
    if !key_marker.is_empty() {
        let marker_pos = if upload_id_marker.is_empty() {
            None
        } else {
            match view.get(&sm::upload(cid, key_marker, upload_id_marker))? {
                Some(v) => {
                    let up = UploadRecord::decode(v.as_slice())?;
                    Some(sm::upload_order_suffix(
                        key_marker,
                        up.initiated_us,
                        upload_id_marker,
                    ))
                }
                None => None,
            }
        };
        let from = match marker_pos {
            Some(pos) => {
                skip = Some(pos.clone());
                pos
            }
            // After every upload of the marker key.
            None => {
                let mut k = key_marker.as_bytes().to_vec();
                k.push(1);
                k
            }
        };
        if from > seek {
            seek = from;
        }
    }
    cursor.seek(&seek);
    let mut page = UploadsPage::default();
    let mut entries = 0usize;
    // Bounded walk: every step either emits an entry or skips one index entry (the
    // marker), a key outside the prefix ends it, a common prefix seeks past itself.
    let mut steps = 2 * limit + 2;
    while let Some((k, _)) = cursor.current() {
        if steps == 0 {
            page.truncated = entries > 0;
            break;
        }
        steps -= 1;
        if skip.as_deref() == Some(k) {
            cursor.next();
            continue;
        }
        let Some((key, _, id)) = sm::parse_upload_order(k) else {
            cursor.next();
            continue;
        };
        if !key.starts_with(prefix.as_bytes()) {
            break;
        }
        if !delimiter.is_empty() {
            if let Some(cp) = crate::listing::rollup(key, prefix.as_bytes(), delimiter.as_bytes()) {
                let cp = cp.to_vec();
                if cp.as_slice() > key_marker.as_bytes() {
                    if entries == limit {
                        page.truncated = true;
                        break;
                    }
                    entries += 1;
                    let cp = String::from_utf8_lossy(&cp).into_owned();
                    page.next_key_marker = cp.clone();
                    page.next_upload_id_marker.clear();
                    page.common_prefixes.push(cp);
                }
                // Past every key under this common prefix.
                match crate::keys::prefix_end(&cp) {
                    Some(end) => cursor.seek(&end),
                    None => break,
                }
                continue;
            }
        }
        if entries == limit {
            page.truncated = true;
            break;
        }
        let key = String::from_utf8_lossy(key).into_owned();
        let id = String::from_utf8_lossy(id).into_owned();
        if let Some(v) = view.get(&sm::upload(cid, &key, &id))? {
            let mut up = UploadRecord::decode(v.as_slice())?;
            if let Some(t) = up.template.as_mut() {
                t.user_meta.clear();
                t.system_meta.clear();
            }
            entries += 1;
            page.next_key_marker = key;
            page.next_upload_id_marker = id;
            page.uploads.push(up);
        }
        cursor.next();
    }
    cursor.status()?;
    if !page.truncated {
        page.next_key_marker.clear();
        page.next_upload_id_marker.clear();
    }
    Ok(page)
}
