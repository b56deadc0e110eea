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
    /// Number of keys.
    pub objects: u64,
    /// Sum of the content sizes.
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

/// Applies `DropContainer`: only an empty container goes; multipart uploads in
/// progress count as content (their parts hold chunks).
pub fn apply_drop_container(ov: &mut Overlay<'_>, cid: &str) -> Result<Reply> {
    let Some(meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    if meta.objects > 0 || meta.uploads > 0 {
        return Ok(Reply::Refused(Refusal::NotEmpty));
    }
    ov.delete(container_key(cid));
    Ok(Reply::Done)
}

/// Applies `PutContent`: checks the condition against what the key holds, assigns
/// `max(proposed, previous + 1)` as version, stores the header, updates the counts and
/// the reverse index, returns the replaced header.
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
    if let Err(r) = check_condition(ov, cid, key, condition)? {
        return Ok(Reply::Refused(r));
    }
    let (version, replaced) = store_content(ov, &mut meta, cid, key, h, proposed_version)?;
    store_meta(ov, cid, &meta)?;
    Ok(Reply::Put { version, replaced })
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

/// Stores `h` under `key` as the next version (at least `proposed_version`), keeps the
/// counts in `meta` and the reverse index in step, and returns the assigned version
/// and the encoded header it replaced. The caller stores `meta`.
pub(crate) fn store_content(
    ov: &mut Overlay<'_>,
    meta: &mut ContainerMeta,
    cid: &str,
    key: &str,
    mut h: ContentHeader,
    proposed_version: u64,
) -> Result<(u64, Option<Vec<u8>>)> {
    let ck = sm::content(cid, key);
    let prev = match ov.get(&ck)? {
        Some(v) => Some((ContentHeader::decode(v.as_slice())?, v)),
        None => None,
    };
    let mut version = proposed_version;
    if let Some((p, _)) = &prev {
        version = version.max(p.version.saturating_add(1));
        unindex(ov, cid, key, &p.chunks);
        meta.bytes = meta.bytes.saturating_sub(p.size);
    } else {
        meta.objects = meta.objects.saturating_add(1);
    }
    h.version = version;
    meta.bytes = meta.bytes.saturating_add(h.size);
    index(ov, cid, key, &h.chunks, version)?;
    ov.put(ck, h.encode_to_vec());
    Ok((version, prev.map(|(_, bytes)| bytes)))
}

/// Applies `DeleteContent`: removes the key, returns the removed header.
pub fn apply_delete_content(ov: &mut Overlay<'_>, cid: &str, key: &str) -> Result<Reply> {
    let Some(mut meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    let ck = sm::content(cid, key);
    let Some(v) = ov.get(&ck)? else {
        return Ok(Reply::Refused(Refusal::NoSuchKey));
    };
    let h = ContentHeader::decode(v.as_slice())?;
    unindex(ov, cid, key, &h.chunks);
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
