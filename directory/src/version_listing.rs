//! ListObjectVersions over the two key spaces of a container: the latest live
//! versions (content keys) and every other version (the version key space, newest
//! first per key). Keys come out in order, each with its versions newest first;
//! prefix, delimiter roll-up into common prefixes, `key_marker` /
//! `version_id_marker` paging and `max_keys` follow S3. The work of one page is
//! bounded by its size: rolled-up keys are skipped by seeking past their prefix.

use super::versions::{self, presented_id, VersionRef};
use crate::error::Result;
use crate::keys::{prefix_end, sm};
use crate::listing::{rollup, MAX_KEYS};
use crate::sm_data::{Cursor, SmView};
use oxio_proto::v1::{ContentHeader, ListContentVersionsReply, VersionEntry};
use prost::Message;

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct VersionParams<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Empty: no roll-up.
    pub delimiter: &'a str,
    /// Keys after this one (or this key's versions after `version_id_marker`).
    pub key_marker: &'a str,
    /// Empty, or the version of `key_marker` the previous page ended with.
    pub version_id_marker: &'a str,
    /// Page size; 0 means [`MAX_KEYS`], larger values are capped to it.
    pub max_keys: u32,
}

/// Where the versions of one key start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum From {
    /// With the latest live version.
    Start,
    /// After the latest live version: the whole version key space of the key.
    AfterCurrent,
    /// After the stored version with this number.
    After(u64),
}

struct Walk<'a> {
    view: SmView<'a>,
    cid: &'a str,
    current: Cursor<'a>,
    older: Cursor<'a>,
    reply: ListContentVersionsReply,
    max: usize,
    count: usize,
    /// Key (or common prefix) and version id of the last item returned.
    last: (String, String),
}

impl Walk<'_> {
    /// The smallest key at or after `from` holding any version.
    fn next_key(&mut self, from_current: &[u8], from_older: &[u8]) -> Result<Option<Vec<u8>>> {
        self.current.seek(from_current);
        self.older.seek(from_older);
        let a = self.current.current().map(|(k, _)| k.to_vec());
        let b = match self.older.current() {
            Some((k, _)) => Some(
                versions::parse_version_suffix(k)
                    .ok_or_else(|| crate::Error::Corrupt("version key".into()))?
                    .0
                    .to_vec(),
            ),
            None => None,
        };
        self.current.status()?;
        self.older.status()?;
        Ok(match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Emits one version; `false` when the page is full (it then ends truncated,
    /// continuing at the previous entry).
    fn emit(&mut self, key: &str, h: ContentHeader, is_latest: bool) -> bool {
        if self.count == self.max {
            self.truncate();
            return false;
        }
        let mut h = h;
        let version_id = presented_id(&h);
        self.last = (key.to_string(), version_id.clone());
        self.reply.versions.push(VersionEntry {
            key: key.to_string(),
            version_id,
            is_latest,
            delete_marker: h.delete_marker,
            size: h.size,
            storage_class: h.system_meta.remove("storage-class").unwrap_or_default(),
            etag: std::mem::take(&mut h.etag),
            mtime_ms: h.mtime_ms,
        });
        self.count += 1;
        true
    }

    fn truncate(&mut self) {
        self.reply.truncated = true;
        self.reply.next_key_marker = self.last.0.clone();
        self.reply.next_version_id_marker = self.last.1.clone();
    }

    /// Emits the versions of `key` from `from`; `false` when the page filled up.
    fn key_versions(&mut self, key: &str, from: From) -> Result<bool> {
        let cur = versions::current(&self.view, self.cid, key)?;
        let newest_older = versions::newest_noncurrent(&self.view, self.cid, key)?;
        let newest_older = newest_older.map(|h| h.version);
        if from == From::Start {
            if let Some(c) = cur.clone() {
                if !self.emit(key, c, true) {
                    return Ok(false);
                }
            }
        }
        let mut seek = versions::versions_of(self.cid, key);
        let prefix_len = versions::versions_of_container(self.cid).len();
        let base = seek[prefix_len..].to_vec();
        seek.truncate(prefix_len);
        let mut start = base.clone();
        if let From::After(v) = from {
            // The next version after `v`: one number lower in the inverted order.
            match v.checked_sub(1) {
                Some(next) => start.extend_from_slice(&(!next).to_be_bytes()),
                None => return Ok(true),
            }
        }
        self.older.seek(&start);
        // At most one entry more than the page holds is read.
        while let Some((k, v)) = self.older.current() {
            if !k.starts_with(&base) {
                break;
            }
            let h = ContentHeader::decode(v)?;
            let is_latest = cur.is_none() && newest_older == Some(h.version);
            if !self.emit(key, h, is_latest) {
                return Ok(false);
            }
            self.older.next();
        }
        self.older.status()?;
        Ok(true)
    }
}

/// Lists one page of the versions of container `cid`.
pub fn list_versions(
    view: &SmView<'_>,
    cid: &str,
    p: &VersionParams<'_>,
) -> Result<ListContentVersionsReply> {
    let prefix = p.prefix.as_bytes();
    let delimiter = p.delimiter.as_bytes();
    let max = match p.max_keys {
        0 => MAX_KEYS,
        n => n.min(MAX_KEYS),
    } as usize;
    let mut w = Walk {
        view: *view,
        cid,
        current: view.cursor_within(&sm::contents_of(cid), prefix),
        older: view.cursor_within(&versions::versions_of_container(cid), prefix),
        reply: ListContentVersionsReply::default(),
        max,
        count: 0,
        last: (String::new(), String::new()),
    };
    let marker = p.key_marker.as_bytes();
    // Keys strictly after the marker (no key holds a 0 byte: `marker + 0` is the
    // next possible key, `marker + 1` skips the marker's own versions).
    let after = |k: &[u8]| -> (Vec<u8>, Vec<u8>) {
        let mut a = k.to_vec();
        a.push(0);
        let mut b = k.to_vec();
        b.push(1);
        (a, b)
    };
    let (mut from_current, mut from_older) = (prefix.to_vec(), prefix.to_vec());
    if !marker.is_empty() && marker >= prefix {
        // A marker inside a rolled-up prefix: that prefix was returned already.
        if let Some(cp) = rollup(marker, prefix, delimiter) {
            match prefix_end(cp) {
                Some(end) => (from_current, from_older) = (end.clone(), end),
                None => return Ok(w.reply),
            }
        } else {
            let resume = match VersionRef::parse(p.version_id_marker) {
                Some(v) if !p.version_id_marker.is_empty() => Some(v),
                _ => None,
            };
            let key = String::from_utf8_lossy(marker).into_owned();
            if let Some(v) = resume {
                let cur = versions::current(view, cid, &key)?;
                let from = match (v, cur) {
                    (v, Some(c)) if v.names(&c) => Some(From::AfterCurrent),
                    (VersionRef::Id(n), _) => Some(From::After(n)),
                    (VersionRef::Null, _) => {
                        match versions::find(view, cid, &key, Some(VersionRef::Null))? {
                            Ok(h) => Some(From::After(h.version)),
                            Err(_) => None,
                        }
                    }
                };
                if let Some(from) = from {
                    if !w.key_versions(&key, from)? {
                        return Ok(w.reply);
                    }
                }
            }
            (from_current, from_older) = after(marker);
        }
    }
    // Each round emits at least one entry or common prefix, or ends the page.
    for _ in 0..=max {
        let Some(key) = w.next_key(&from_current, &from_older)? else {
            break;
        };
        if !key.starts_with(prefix) {
            break;
        }
        if let Some(cp) = rollup(&key, prefix, delimiter) {
            if w.count == w.max {
                w.truncate();
                break;
            }
            let cp = cp.to_vec();
            let cp_text = String::from_utf8_lossy(&cp).into_owned();
            w.last = (cp_text.clone(), String::new());
            w.reply.common_prefixes.push(cp_text);
            w.count += 1;
            match prefix_end(&cp) {
                Some(end) => (from_current, from_older) = (end.clone(), end),
                None => break,
            }
            continue;
        }
        let k = String::from_utf8_lossy(&key).into_owned();
        if !w.key_versions(&k, From::Start)? {
            break;
        }
        (from_current, from_older) = after(&key);
    }
    Ok(w.reply)
}
