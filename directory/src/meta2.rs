//! meta2: the contents of containers. One entry per key holds the prost-encoded
//! `ContentHeader`; a per-container record keeps the object and byte counts; a reverse
//! index `rawx id -> (chunk id, cid, key, version)` is maintained in the same Raft entry
//! as every put and delete, so a lost volume can be rebuilt from it.

use crate::error::Result;
use crate::keys::sm;
use crate::sm_data::{Overlay, SmView};
use crate::types::{Refusal, Reply, WriteCondition};
use oxio_proto::v1::{ChunkRecord, ContainerStatsReply, ContentHeader};
use prost::Message;
use serde::{Deserialize, Serialize};

#[path = "versions.rs"]
pub mod versions;

#[path = "version_listing.rs"]
pub mod version_listing;

use versions::Versioning;

/// Longest object key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest encoded content header: 1 MiB of inline data plus 64 KiB of metadata.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024 + 64 * 1024;
/// Most chunks one content may list.
pub const MAX_CHUNKS: usize = 4096;

/// The meta2 record of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMeta {
    /// Owner.
    pub account: String,
    /// Container name.
    pub name: String,
    /// Number of keys whose latest version is a live object.
    pub objects: u64,
    /// Sum of the sizes of every stored version.
    pub bytes: u64,
    /// Multipart uploads in progress.
    #[serde(default)]
    pub uploads: u64,
    /// Default storage policy of the container's new objects (`None`: the client's
    /// own rules apply). Records written before this field existed read `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The container's tag set, `(key, value)` in order (`None`: no tag set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<(String, String)>>,
    /// Versioning state (`None`: never configured, the container is unversioned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<Versioning>,
    /// Stored versions that are not the latest live object of their key (older
    /// versions and delete markers).
    #[serde(default)]
    pub noncurrent: u64,
    /// Canned ACL (`None`: private); see [`crate::acl`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    /// Most bytes the stored versions may hold (`None`: no quota); see
    /// [`ContainerMeta::admits`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
}

impl ContainerMeta {
    /// Whether `more` bytes may be stored: always without a quota or for an empty
    /// write, else when the bytes already stored plus `more` stay within it. A
    /// version being replaced still counts (the check happens before it is
    /// dropped), so a full container takes deletes, not same-size overwrites.
    pub fn admits(&self, more: u64) -> bool {
        match self.quota_bytes {
            Some(q) if more > 0 => self.bytes.saturating_add(more) <= q,
            _ => true,
        }
    }
}

/// One reverse-index entry: a chunk stored on a rawx.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReverseEntry {
    /// Service id of the rawx.
    pub rawx_id: String,
    /// 64 hex.
    pub chunk_id: String,
    /// Container of the content.
    pub cid: String,
    /// Key of the content.
    pub key: String,
    /// Version of the content (0 for a part of a multipart upload in progress).
    pub version: u64,
    /// Metachunk of the chunk in the content (entries written before this field
    /// existed read 0).
    #[serde(default)]
    pub metachunk: u32,
    /// Fragment (EC) or replica index of the chunk in its metachunk.
    #[serde(default)]
    pub fragment: u32,
}

fn container_key(cid: &str) -> Vec<u8> {
    sm::one(sm::M2_CONTAINER, cid.as_bytes())
}

pub(crate) fn load_meta(ov: &Overlay<'_>, cid: &str) -> Result<Option<ContainerMeta>> {
    match ov.get(&container_key(cid))? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

pub(crate) fn store_meta(ov: &mut Overlay<'_>, cid: &str, meta: &ContainerMeta) -> Result<()> {
    ov.put(container_key(cid), serde_json::to_vec(meta)?);
    Ok(())
}

/// Removes the reverse-index entries of `chunks` stored under `cid`/`key`.
pub(crate) fn unindex(ov: &mut Overlay<'_>, cid: &str, key: &str, chunks: &[ChunkRecord]) {
    for c in chunks {
        ov.delete(sm::reverse(&c.rawx_id, &c.chunk_id, cid, key));
    }
}

/// Adds reverse-index entries for `chunks` of `cid`/`key` at `version`.
pub(crate) fn index(
    ov: &mut Overlay<'_>,
    cid: &str,
    key: &str,
    chunks: &[ChunkRecord],
    version: u64,
) -> Result<()> {
    for c in chunks {
        let e = ReverseEntry {
            rawx_id: c.rawx_id.clone(),
            chunk_id: c.chunk_id.clone(),
            cid: cid.to_string(),
            key: key.to_string(),
            version,
            metachunk: c.metachunk,
            fragment: c.fragment,
        };
        ov.put(
            sm::reverse(&c.rawx_id, &c.chunk_id, cid, key),
            serde_json::to_vec(&e)?,
        );
    }
    Ok(())
}

/// Applies `InitContainer` (idempotent).
pub fn apply_init_container(
    ov: &mut Overlay<'_>,
    cid: &str,
    account: &str,
    name: &str,
) -> Result<Reply> {
    if load_meta(ov, cid)?.is_none() {
        let meta = ContainerMeta {
            account: account.to_string(),
            name: name.to_string(),
            objects: 0,
            bytes: 0,
            uploads: 0,
            policy: None,
            tags: None,
            versioning: None,
            noncurrent: 0,
            acl: None,
            quota_bytes: None,
        };
        store_meta(ov, cid, &meta)?;
    }
    Ok(Reply::Done)
}

/// Applies `SetContainerPolicy`: sets (or clears, with `None`) the container's default
/// storage policy and returns the updated record. The name was validated by the leader.
pub fn apply_set_container_policy(
    ov: &mut Overlay<'_>,
    cid: &str,
    policy: Option<&str>,
) -> Result<Reply> {
    let Some(mut meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    meta.policy = policy.map(str::to_string);
    store_meta(ov, cid, &meta)?;
    Ok(Reply::Encoded(stats_of(&meta).encode_to_vec()))
}

/// Applies `SetContainerQuota`: sets (or clears, with `None`) the container's quota
/// and returns the updated record. A quota below what is stored already is kept:
/// it refuses new bytes until enough is deleted.
pub fn apply_set_container_quota(
    ov: &mut Overlay<'_>,
    cid: &str,
    quota_bytes: Option<u64>,
) -> Result<Reply> {
    let Some(mut meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    meta.quota_bytes = quota_bytes;
    store_meta(ov, cid, &meta)?;
    Ok(Reply::Encoded(stats_of(&meta).encode_to_vec()))
}

/// Applies `DropContainer`: only an empty container goes; multipart uploads in
/// progress and stored versions (delete markers included) count as content.
pub fn apply_drop_container(ov: &mut Overlay<'_>, cid: &str) -> Result<Reply> {
    let Some(meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    if meta.objects > 0 || meta.uploads > 0 || meta.noncurrent > 0 {
        return Ok(Reply::Refused(Refusal::NotEmpty));
    }
    ov.delete(container_key(cid));
    Ok(Reply::Done)
}

/// Applies `PutContent`: checks the condition against what the key holds, assigns
/// `max(proposed, previous + 1)` as version, stores the header following the
/// container's versioning (see [`versions`]), updates the counts and the reverse
/// index, returns the header removed for good. An unversioned container answers
/// `Reply::Put`; a versioned one an encoded `PutContentReply` with the version id.
pub fn apply_put_content(
    ov: &mut Overlay<'_>,
    cid: &str,
    key: &str,
    header: &[u8],
    proposed_version: u64,
    condition: Option<&WriteCondition>,
) -> Result<Reply> {
    let Some(mut meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    let Ok(h) = ContentHeader::decode(header) else {
        return Ok(Reply::Refused(Refusal::Invalid));
    };
    if meta.versioning.is_some() && key.as_bytes().contains(&0) {
        return Ok(Reply::Refused(Refusal::Invalid));
    }
    let floor = forget_old_puts(ov, proposed_version)?;
    if let Some(version) = applied_put(ov, cid, &h.content_id)? {
        // The same upload applied again: a client retry after a lost reply (leader
        // change). Answer as the first time did, minus the replaced header, whose
        // chunks the first reply already handed over for deletion.
        return put_reply(&meta, version, None);
    }
    if let Err(r) = check_condition(ov, cid, key, condition)? {
        return Ok(Reply::Refused(r));
    }
    if !meta.admits(h.size) {
        return Ok(Reply::Refused(Refusal::QuotaExceeded));
    }
    let content_id = h.content_id.clone();
    let (version, replaced) = store_content(ov, &mut meta, cid, key, h, proposed_version)?;
    store_meta(ov, cid, &meta)?;
    record_put(ov, cid, &content_id, version, proposed_version, floor);
    put_reply(&meta, version, replaced)
}

/// How long a put is remembered to recognise a retry of it, in microseconds of the
/// leaders' clock (the proposed versions): far longer than any client retry.
pub const PUT_RETRY_WINDOW_US: u64 = 10 * 60 * 1_000_000;
/// Most expired put records removed per applied put (keeps every apply bounded; puts
/// arrive at least as fast as they expire, so the records cannot pile up).
const PUT_RECORDS_PRUNED_PER_APPLY: usize = 16;

/// The version a put of `content_id` was given, if one was applied in the last
/// [`PUT_RETRY_WINDOW_US`].
fn applied_put(ov: &Overlay<'_>, cid: &str, content_id: &[u8]) -> Result<Option<u64>> {
    if content_id.is_empty() {
        return Ok(None);
    }
    Ok(ov
        .get(&sm::put_id(cid, content_id))?
        .and_then(|v| v.get(..8).and_then(|b| b.try_into().ok()))
        .map(u64::from_be_bytes))
}

/// Remembers that the upload `content_id` was stored as `version` at `now_us`
/// (`floor`: the group's put floor, lowered when a leader's clock went back).
fn record_put(
    ov: &mut Overlay<'_>,
    cid: &str,
    content_id: &[u8],
    version: u64,
    now_us: u64,
    floor: u64,
) {
    if content_id.is_empty() {
        return;
    }
    let mut v = version.to_be_bytes().to_vec();
    v.extend_from_slice(&now_us.to_be_bytes());
    ov.put(sm::put_id(cid, content_id), v);
    ov.put(sm::put_order(now_us, cid, content_id), Vec::new());
    if now_us < floor {
        ov.put(sm::M2_PUT_FLOOR.to_vec(), now_us.to_be_bytes().to_vec());
    }
}

/// The time no put record is older than ([`sm::M2_PUT_FLOOR`]; 0 when unset).
fn put_floor(ov: &Overlay<'_>) -> Result<u64> {
    Ok(ov
        .get(sm::M2_PUT_FLOOR)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// Drops the oldest put records older than the retry window (a bounded number) and
/// answers the put floor after it. The scan starts at the floor: the records before
/// it are deleted, and walking over their tombstones on every put would make each
/// put slower the longer the group has been taking writes.
fn forget_old_puts(ov: &mut Overlay<'_>, now_us: u64) -> Result<u64> {
    let floor = put_floor(ov)?;
    let (rows, _) = ov.scan_from(
        sm::M2_PUT_ORDER,
        &floor.to_be_bytes(),
        PUT_RECORDS_PRUNED_PER_APPLY,
    )?;
    let mut pruned_to = floor;
    for (suffix, _) in rows {
        if suffix.len() < 8 + 64 {
            continue;
        }
        let at = u64::from_be_bytes(suffix[..8].try_into().unwrap_or([0; 8]));
        if at.saturating_add(PUT_RETRY_WINDOW_US) >= now_us {
            break;
        }
        let cid = String::from_utf8_lossy(&suffix[8..8 + 64]).into_owned();
        ov.delete(sm::put_id(&cid, &suffix[8 + 64..]));
        ov.delete(sm::one(sm::M2_PUT_ORDER, &suffix));
        pruned_to = pruned_to.max(at);
    }
    if pruned_to != floor {
        ov.put(sm::M2_PUT_FLOOR.to_vec(), pruned_to.to_be_bytes().to_vec());
    }
    Ok(pruned_to)
}

/// The reply to a put stored as `version`.
fn put_reply(meta: &ContainerMeta, version: u64, replaced: Option<Vec<u8>>) -> Result<Reply> {
    if meta.versioning.is_none() {
        return Ok(Reply::Put { version, replaced });
    }
    let version_id = versions::reply_id(meta, version);
    let replaced = replaced
        .map(|b| ContentHeader::decode(b.as_slice()))
        .transpose()?;
    Ok(Reply::Encoded(
        oxio_proto::v1::PutContentReply {
            version,
            replaced,
            version_id,
        }
        .encode_to_vec(),
    ))
}

/// Checks a write condition against the content `key` holds now (pending changes
/// included): `Ok(Err(refusal))` when it does not hold.
pub(crate) fn check_condition(
    ov: &Overlay<'_>,
    cid: &str,
    key: &str,
    condition: Option<&WriteCondition>,
) -> Result<std::result::Result<(), Refusal>> {
    let Some(c) = condition else {
        return Ok(Ok(()));
    };
    let current = match ov.get(&sm::content(cid, key))? {
        Some(v) => Some(ContentHeader::decode(v.as_slice())?.etag),
        None => None,
    };
    Ok(c.check(current.as_deref()))
}

/// Stores `h` under `key` as the next version (at least `proposed_version`) following
/// the container's versioning, keeps the counts in `meta` and the reverse index in
/// step, and returns the assigned version and the encoded header removed for good.
/// The caller stores `meta`.
pub(crate) fn store_content(
    ov: &mut Overlay<'_>,
    meta: &mut ContainerMeta,
    cid: &str,
    key: &str,
    h: ContentHeader,
    proposed_version: u64,
) -> Result<(u64, Option<Vec<u8>>)> {
    versions::store_version(ov, meta, cid, key, h, proposed_version)
}

/// Applies `DeleteContent`: removes the key's latest live version for good (in a
/// versioned container the next newest object becomes the latest), returns the
/// removed header.
pub fn apply_delete_content(ov: &mut Overlay<'_>, cid: &str, key: &str) -> Result<Reply> {
    let Some(mut meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    if meta.versioning.is_some() {
        let removed = versions::delete_current(ov, &mut meta, cid, key)?;
        store_meta(ov, cid, &meta)?;
        return Ok(match removed {
            Some(v) => Reply::Deleted(v),
            None => Reply::Refused(Refusal::NoSuchKey),
        });
    }
    let ck = sm::content(cid, key);
    let Some(v) = ov.get(&ck)? else {
        return Ok(Reply::Refused(Refusal::NoSuchKey));
    };
    let h = ContentHeader::decode(v.as_slice())?;
    crate::purge::discard(ov, cid, key, &h.chunks)?;
    crate::incomplete::forget(ov, cid, key, h.version);
    meta.objects = meta.objects.saturating_sub(1);
    meta.bytes = meta.bytes.saturating_sub(h.size);
    ov.delete(ck);
    store_meta(ov, cid, &meta)?;
    Ok(Reply::Deleted(v))
}

/// The meta2 record of a container.
pub fn container_meta(view: &SmView<'_>, cid: &str) -> Result<Option<ContainerMeta>> {
    match view.get(&container_key(cid))? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// The `ContainerStats` answer for a container record.
pub fn stats_of(meta: &ContainerMeta) -> ContainerStatsReply {
    ContainerStatsReply {
        objects: meta.objects,
        bytes: meta.bytes,
        policy: meta.policy.clone().unwrap_or_default(),
        has_tags: meta.tags.is_some(),
        versioning: meta
            .versioning
            .map(|v| v.as_str().to_string())
            .unwrap_or_default(),
        noncurrent_versions: meta.noncurrent,
        acl: meta.acl.clone().unwrap_or_default(),
        quota_bytes: meta.quota_bytes,
        tags: meta
            .tags
            .iter()
            .flatten()
            .map(|(key, value)| oxio_proto::v1::Tag {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

/// The header stored under a key, or why there is none.
pub fn get_content(
    view: &SmView<'_>,
    cid: &str,
    key: &str,
) -> Result<std::result::Result<ContentHeader, Refusal>> {
    if container_meta(view, cid)?.is_none() {
        return Ok(Err(Refusal::NoSuchContainer));
    }
    match view.get(&sm::content(cid, key))? {
        Some(v) => Ok(Ok(ContentHeader::decode(v.as_slice())?)),
        None => Ok(Err(Refusal::NoSuchKey)),
    }
}

/// Up to `limit` chunks recorded on one rawx, in index order.
pub fn chunks_on_rawx(view: &SmView<'_>, rawx_id: &str, limit: usize) -> Result<Vec<ReverseEntry>> {
    let (rows, _) = view.scan(&sm::reverse_of(rawx_id), limit)?;
    rows.into_iter()
        .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
        .collect()
}
