//! meta2 object versioning with S3 semantics.
//!
//! A container is unversioned until its versioning is first set, then `Enabled` or
//! `Suspended` (never unversioned again). Per key the state machine keeps:
//!
//! - under the content key (`2o` + cid + key) the latest version when it is a live
//!   object: GET, HEAD, ListObjects and conditional writes read only this;
//! - under the version key space every other version, newest first:
//!   `2v` + cid + key + 0 + BE(`!version`) → encoded `ContentHeader` (older versions,
//!   and delete markers, including the latest one when the key is "deleted");
//! - `2n` + cid + key → BE version of the key's `null` version when it lives in the
//!   version key space (so a suspended write finds the one it replaces in one read).
//!
//! Version ids are 16 lower-case hex digits of the directory-assigned version
//! (unique and increasing per key); a version written while unversioned or suspended
//! has the id `null` (stored as an empty `version_id`). Every stored version keeps its
//! chunks in the reverse index; only a version removed for good (a suspended write
//! over the `null` version, a DELETE naming a version, an overwrite while unversioned)
//! leaves it, its chunks returned to the caller as garbage. Container counts:
//! `objects` counts keys whose latest version is live, `noncurrent` the other stored
//! versions and markers, `bytes` the size of every stored version (what a quota
//! needs).

use crate::error::Result;
use crate::keys::sm;
use crate::meta2::{self, load_meta, stats_of, store_meta, ContainerMeta};
use crate::sm_data::{Overlay, Rows, SmView};
use crate::types::{Refusal, Reply};
use oxio_proto::v1::{ContentHeader, DeleteContentVersionReply};
use prost::Message;
use serde::{Deserialize, Serialize};

/// meta2 sub-key kind of stored versions that are not the latest live object.
pub const M2_VERSION: &[u8] = b"2v";
/// meta2 sub-key kind of the pointer to a key's `null` version in [`M2_VERSION`].
pub const M2_NULL_VERSION: &[u8] = b"2n";
/// The version id of versions written while unversioned or suspended.
pub const NULL_VERSION_ID: &str = "null";

/// Versioning state of a container once it was configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Every write adds a version; DELETE adds a delete marker.
    Enabled,
    /// Writes replace the `null` version; older versions stay.
    Suspended,
}

impl Versioning {
    /// The S3 name (`Enabled`, `Suspended`).
    pub fn as_str(self) -> &'static str {
        match self {
            Versioning::Enabled => "Enabled",
            Versioning::Suspended => "Suspended",
        }
    }

    /// Parses the S3 name; anything else is `None`.
    pub fn parse(s: &str) -> Option<Versioning> {
        match s {
            "Enabled" => Some(Versioning::Enabled),
            "Suspended" => Some(Versioning::Suspended),
            _ => None,
        }
    }
}

/// One version named by a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionRef {
    /// The `null` version.
    Null,
    /// The version with this directory-assigned number.
    Id(u64),
}

impl VersionRef {
    /// Parses a version id as returned by [`version_id`] (or `null`); `None` when it
    /// is malformed.
    pub fn parse(s: &str) -> Option<VersionRef> {
        if s == NULL_VERSION_ID {
            return Some(VersionRef::Null);
        }
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(VersionRef::Id)
    }

    /// Whether `h` is the version this names.
    pub fn names(self, h: &ContentHeader) -> bool {
        match self {
            VersionRef::Null => h.version_id.is_empty(),
            VersionRef::Id(v) => !h.version_id.is_empty() && h.version == v,
        }
    }
}

/// The version id of directory version `version` (opaque to clients, URL-safe).
pub fn version_id(version: u64) -> String {
    format!("{version:016x}")
}

/// The id a client sees for a stored header: its own, or `null`.
pub fn presented_id(h: &ContentHeader) -> String {
    if h.version_id.is_empty() {
        NULL_VERSION_ID.to_string()
    } else {
        h.version_id.clone()
    }
}

/// The version id a write answers in a container in `meta`'s state: "" when
/// unversioned, `null` when suspended, the id of `version` when enabled.
pub(crate) fn reply_id(meta: &ContainerMeta, version: u64) -> String {
    match meta.versioning {
        None => String::new(),
        Some(Versioning::Enabled) => version_id(version),
        Some(Versioning::Suspended) => NULL_VERSION_ID.to_string(),
    }
}

/// Read access shared by the read-only view and the write overlay.
pub(crate) trait Reader {
    /// Value of a sub-key.
    fn get_sub(&self, sub: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Up to `limit` rows under `prefix` (suffixes after it), in key order.
    fn scan_sub(&self, prefix: &[u8], limit: usize) -> Result<(Rows, bool)>;
}

impl Reader for SmView<'_> {
    fn get_sub(&self, sub: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(sub)
    }
    fn scan_sub(&self, prefix: &[u8], limit: usize) -> Result<(Rows, bool)> {
        self.scan(prefix, limit)
    }
}

impl Reader for Overlay<'_> {
    fn get_sub(&self, sub: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(sub)
    }
    fn scan_sub(&self, prefix: &[u8], limit: usize) -> Result<(Rows, bool)> {
        self.scan(prefix, limit)
    }
}

/// Prefix of a container's version key space.
pub(crate) fn versions_of_container(cid: &str) -> Vec<u8> {
    sm::one(M2_VERSION, cid.as_bytes())
}

/// Prefix of the stored versions of one key (`key` holds no 0 byte).
pub(crate) fn versions_of(cid: &str, key: &str) -> Vec<u8> {
    let mut k = versions_of_container(cid);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k
}

/// Key of one stored version: newer versions sort first.
pub(crate) fn version_key(cid: &str, key: &str, version: u64) -> Vec<u8> {
    let mut k = versions_of(cid, key);
    k.extend_from_slice(&(!version).to_be_bytes());
    k
}

/// Splits a version key suffix (after [`versions_of_container`]) into key and version.
pub(crate) fn parse_version_suffix(suffix: &[u8]) -> Option<(&[u8], u64)> {
    let n = suffix.len().checked_sub(9)?;
    if suffix[n] != 0 {
        return None;
    }
    let inv: [u8; 8] = suffix[n + 1..].try_into().ok()?;
    Some((&suffix[..n], !u64::from_be_bytes(inv)))
}

fn null_pointer(cid: &str, key: &str) -> Vec<u8> {
    let mut k = sm::one(M2_NULL_VERSION, cid.as_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// The latest live version stored under the content key.
pub(crate) fn current<R: Reader>(r: &R, cid: &str, key: &str) -> Result<Option<ContentHeader>> {
    match r.get_sub(&sm::content(cid, key))? {
        Some(v) => Ok(Some(ContentHeader::decode(v.as_slice())?)),
        None => Ok(None),
    }
}

/// The newest version in the version key space (a delete marker when it is the
/// key's latest version).
pub(crate) fn newest_noncurrent<R: Reader>(
    r: &R,
    cid: &str,
    key: &str,
) -> Result<Option<ContentHeader>> {
    let (rows, _) = r.scan_sub(&versions_of(cid, key), 1)?;
    match rows.into_iter().next() {
        Some((_, v)) => Ok(Some(ContentHeader::decode(v.as_slice())?)),
        None => Ok(None),
    }
}

/// The noncurrent version `v` names, if stored.
fn find_noncurrent<R: Reader>(
    r: &R,
    cid: &str,
    key: &str,
    v: VersionRef,
) -> Result<Option<ContentHeader>> {
    let number = match v {
        VersionRef::Id(n) => n,
        VersionRef::Null => match r.get_sub(&null_pointer(cid, key))? {
            Some(b) => match <[u8; 8]>::try_from(b.as_slice()) {
                Ok(b) => u64::from_be_bytes(b),
                Err(_) => return Ok(None),
            },
            None => return Ok(None),
        },
    };
    match r.get_sub(&version_key(cid, key, number))? {
        Some(b) => {
            let h = ContentHeader::decode(b.as_slice())?;
            Ok(v.names(&h).then_some(h))
        }
        None => Ok(None),
    }
}

/// One version of a key: `None` names the latest one (a delete marker included).
/// `Ok(Err(NoSuchKey))` when it does not exist.
pub(crate) fn find<R: Reader>(
    r: &R,
    cid: &str,
    key: &str,
    v: Option<VersionRef>,
) -> Result<std::result::Result<ContentHeader, Refusal>> {
    let cur = current(r, cid, key)?;
    let found = match (v, cur) {
        (None, Some(c)) => Some(c),
        (None, None) => newest_noncurrent(r, cid, key)?,
        (Some(v), Some(c)) if v.names(&c) => Some(c),
        (Some(v), _) => find_noncurrent(r, cid, key, v)?,
    };
    Ok(found.ok_or(Refusal::NoSuchKey))
}

/// Stores `h` in the version key space (it is not the latest live object).
fn put_noncurrent(
    ov: &mut Overlay<'_>,
    meta: &mut ContainerMeta,
    cid: &str,
    key: &str,
    h: &ContentHeader,
) {
    if h.version_id.is_empty() {
        ov.put(null_pointer(cid, key), h.version.to_be_bytes().to_vec());
    }
    ov.put(version_key(cid, key, h.version), h.encode_to_vec());
    meta.noncurrent = meta.noncurrent.saturating_add(1);
}

/// Removes `h` from the version key space (the caller decides what becomes of it).
fn take_noncurrent(
    ov: &mut Overlay<'_>,
    meta: &mut ContainerMeta,
    cid: &str,
    key: &str,
    h: &ContentHeader,
) {
    if h.version_id.is_empty() {
        ov.delete(null_pointer(cid, key));
    }
    ov.delete(version_key(cid, key, h.version));
    meta.noncurrent = meta.noncurrent.saturating_sub(1);
}

/// Forgets a version for good: its chunks leave the reverse index for the delete
/// queue ([`crate::purge`]), its bytes the counts. Returns it when it held data (a marker holds none).
fn drop_version(
    ov: &mut Overlay<'_>,
    meta: &mut ContainerMeta,
    cid: &str,
    key: &str,
    h: ContentHeader,
) -> Result<Option<ContentHeader>> {
    crate::purge::discard(ov, cid, key, &h.chunks)?;
    crate::incomplete::forget(ov, cid, key, h.version);
    meta.bytes = meta.bytes.saturating_sub(h.size);
    Ok((!h.delete_marker).then_some(h))
}

/// Moves the latest live version into the version key space.
fn demote(
    ov: &mut Overlay<'_>,
    meta: &mut ContainerMeta,
    cid: &str,
    key: &str,
    cur: &ContentHeader,
) {
    ov.delete(sm::content(cid, key));
    meta.objects = meta.objects.saturating_sub(1);
    put_noncurrent(ov, meta, cid, key, cur);
}

/// After a removal: when the key has no live latest version and its newest stored
/// version is an object (not a marker), that version becomes the latest.
fn settle(ov: &mut Overlay<'_>, meta: &mut ContainerMeta, cid: &str, key: &str) -> Result<()> {
    if current(ov, cid, key)?.is_some() {
        return Ok(());
    }
    let Some(top) = newest_noncurrent(ov, cid, key)? else {
        return Ok(());
    };
    if top.delete_marker {
        return Ok(());
    }
    take_noncurrent(ov, meta, cid, key, &top);
    ov.put(sm::content(cid, key), top.encode_to_vec());
    meta.objects = meta.objects.saturating_add(1);
    Ok(())
}

/// Removes the key's `null` version (latest or not) for good; returns it when it
/// held data. A live latest version that is not `null` is demoted.
fn replace_null(
    ov: &mut Overlay<'_>,
    meta: &mut ContainerMeta,
    cid: &str,
    key: &str,
    cur: Option<ContentHeader>,
) -> Result<Option<ContentHeader>> {
    if let Some(c) = cur {
        ov.delete(sm::content(cid, key));
        meta.objects = meta.objects.saturating_sub(1);
        if c.version_id.is_empty() {
            // The null version is the latest: nothing else can be null.
            return drop_version(ov, meta, cid, key, c);
        }
        put_noncurrent(ov, meta, cid, key, &c);
    }
    match find_noncurrent(ov, cid, key, VersionRef::Null)? {
        Some(n) => {
            take_noncurrent(ov, meta, cid, key, &n);
            drop_version(ov, meta, cid, key, n)
        }
        None => Ok(None),
    }
}

/// The highest version the key holds (0 when none).
fn latest_version(
    ov: &Overlay<'_>,
    cid: &str,
    key: &str,
    cur: Option<&ContentHeader>,
) -> Result<u64> {
    Ok(match cur {
        Some(c) => c.version,
        None => newest_noncurrent(ov, cid, key)?.map_or(0, |h| h.version),
    })
}

/// Stores `h` as the key's latest version following the container's versioning
/// (the body of `PutContent` and `CompleteUpload`): assigns `max(proposed, latest +
/// 1)`, keeps counts and reverse index in step. Returns the version and the encoded
/// header removed for good (unversioned: the previous object; suspended: the previous
/// `null` version), whose chunks are garbage. The caller stores `meta`.
pub(crate) fn store_version(
    ov: &mut Overlay<'_>,
    meta: &mut ContainerMeta,
    cid: &str,
    key: &str,
    mut h: ContentHeader,
    proposed_version: u64,
) -> Result<(u64, Option<Vec<u8>>)> {
    let cur = current(ov, cid, key)?;
    let versioning = meta.versioning;
    let version =
        proposed_version.max(latest_version(ov, cid, key, cur.as_ref())?.saturating_add(1));
    h.version = version;
    h.delete_marker = false;
    let replaced = match versioning {
        None => {
            h.version_id.clear();
            match cur {
                Some(c) => {
                    meta.objects = meta.objects.saturating_sub(1);
                    drop_version(ov, meta, cid, key, c)?
                }
                None => None,
            }
        }
        Some(Versioning::Enabled) => {
            h.version_id = version_id(version);
            if let Some(c) = &cur {
                demote(ov, meta, cid, key, c);
            }
            None
        }
        Some(Versioning::Suspended) => {
            h.version_id.clear();
            replace_null(ov, meta, cid, key, cur)?
        }
    };
    meta.objects = meta.objects.saturating_add(1);
    meta.bytes = meta.bytes.saturating_add(h.size);
    meta2::index(ov, cid, key, &h.chunks, version)?;
    crate::incomplete::note(ov, cid, key, &h)?;
    ov.put(sm::content(cid, key), h.encode_to_vec());
    Ok((version, replaced.map(|r| r.encode_to_vec())))
}

/// Applies `SetVersioning`: the container's versioning becomes `state` (there is no
/// way back to unversioned); answers the updated stats.
pub fn apply_set_versioning(ov: &mut Overlay<'_>, cid: &str, state: Versioning) -> Result<Reply> {
    let Some(mut meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    meta.versioning = Some(state);
    store_meta(ov, cid, &meta)?;
    Ok(Reply::Encoded(stats_of(&meta).encode_to_vec()))
}

/// The leader's choices carried by a `DeleteVersion` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteClock {
    /// The applied marker version is at least this (microseconds).
    pub proposed_version: u64,
    /// Modification time of a delete marker.
    pub mtime_ms: u64,
}

/// Applies `DeleteVersion` (S3 DeleteObject). Without `version`: unversioned, the
/// object goes (`NoSuchKey` when there is none); enabled, a delete marker becomes the
/// latest version; suspended, a `null` delete marker replaces the `null` version.
/// With `version`: that version goes for good (`NoSuchKey` when it does not exist)
/// and, when it was the latest, the next newest object becomes the latest.
pub fn apply_delete_version(
    ov: &mut Overlay<'_>,
    cid: &str,
    key: &str,
    version: Option<VersionRef>,
    clock: DeleteClock,
) -> Result<Reply> {
    let Some(mut meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    if key.as_bytes().contains(&0) {
        return Ok(Reply::Refused(Refusal::Invalid));
    }
    let cur = current(ov, cid, key)?;
    let reply = match (version, meta.versioning) {
        (Some(v), _) => {
            let target = match cur {
                Some(c) if v.names(&c) => {
                    ov.delete(sm::content(cid, key));
                    meta.objects = meta.objects.saturating_sub(1);
                    c
                }
                _ => match find_noncurrent(ov, cid, key, v)? {
                    Some(h) => {
                        take_noncurrent(ov, &mut meta, cid, key, &h);
                        h
                    }
                    None => return Ok(Reply::Refused(Refusal::NoSuchKey)),
                },
            };
            let version_id = presented_id(&target);
            let delete_marker = target.delete_marker;
            let removed = drop_version(ov, &mut meta, cid, key, target)?;
            settle(ov, &mut meta, cid, key)?;
            DeleteContentVersionReply {
                version_id,
                delete_marker,
                removed: removed.into_iter().collect(),
            }
        }
        (None, None) => {
            let Some(c) = cur else {
                return Ok(Reply::Refused(Refusal::NoSuchKey));
            };
            ov.delete(sm::content(cid, key));
            meta.objects = meta.objects.saturating_sub(1);
            DeleteContentVersionReply {
                version_id: String::new(),
                delete_marker: false,
                removed: drop_version(ov, &mut meta, cid, key, c)?
                    .into_iter()
                    .collect(),
            }
        }
        (None, Some(state)) => {
            let number = clock
                .proposed_version
                .max(latest_version(ov, cid, key, cur.as_ref())?.saturating_add(1));
            let mut marker = ContentHeader {
                version: number,
                mtime_ms: clock.mtime_ms,
                delete_marker: true,
                ..Default::default()
            };
            let removed = match state {
                Versioning::Enabled => {
                    marker.version_id = version_id(number);
                    if let Some(c) = &cur {
                        demote(ov, &mut meta, cid, key, c);
                    }
                    None
                }
                Versioning::Suspended => replace_null(ov, &mut meta, cid, key, cur)?,
            };
            put_noncurrent(ov, &mut meta, cid, key, &marker);
            DeleteContentVersionReply {
                version_id: presented_id(&marker),
                delete_marker: true,
                removed: removed.into_iter().collect(),
            }
        }
    };
    store_meta(ov, cid, &meta)?;
    Ok(Reply::Encoded(reply.encode_to_vec()))
}

/// Applies the administrative `DeleteContent` in a versioned container: the latest
/// live version goes for good and the next newest object becomes the latest.
pub(crate) fn delete_current(
    ov: &mut Overlay<'_>,
    meta: &mut ContainerMeta,
    cid: &str,
    key: &str,
) -> Result<Option<Vec<u8>>> {
    let Some(c) = current(ov, cid, key)? else {
        return Ok(None);
    };
    let encoded = c.encode_to_vec();
    ov.delete(sm::content(cid, key));
    meta.objects = meta.objects.saturating_sub(1);
    drop_version(ov, meta, cid, key, c)?;
    settle(ov, meta, cid, key)?;
    Ok(Some(encoded))
}

/// One version of a key as a client sees it (`null` ids presented when the
/// container's versioning was ever configured), or why there is none.
pub fn get_version(
    view: &SmView<'_>,
    cid: &str,
    key: &str,
    version: Option<VersionRef>,
) -> Result<std::result::Result<ContentHeader, Refusal>> {
    let Some(meta) = meta2::container_meta(view, cid)? else {
        return Ok(Err(Refusal::NoSuchContainer));
    };
    Ok(find(view, cid, key, version)?.map(|mut h| {
        if meta.versioning.is_some() && h.version_id.is_empty() {
            h.version_id = NULL_VERSION_ID.to_string();
        }
        h
    }))
}

#[cfg(test)]
#[path = "versions_tests.rs"]
mod tests;
