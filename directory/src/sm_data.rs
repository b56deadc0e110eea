//! Access to one group's state-machine data range (`s + group + sub-key`): a read-only
//! view for queries, and a write overlay that collects the changes of one `apply` call so
//! that later entries of the same call see earlier ones before the single batch is written.

use crate::error::Result;
use crate::keys;
use rocksdb::{DBRawIterator, ReadOptions, WriteBatch, DB};
use std::collections::BTreeMap;

/// `(key suffix, value)` pairs read from a range.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Read-only view of a group's state-machine data.
#[derive(Clone, Copy)]
pub struct SmView<'a> {
    db: &'a DB,
    group: u64,
}

impl<'a> SmView<'a> {
    /// The data of `group` in `db`.
    pub fn new(db: &'a DB, group: u64) -> Self {
        SmView { db, group }
    }

    /// Value of a sub-key.
    pub fn get(&self, sub: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(keys::named(keys::SM_DATA, self.group, sub))?)
    }

    /// Up to `limit` `(sub-key suffix after prefix, value)` pairs whose sub-key starts with
    /// `prefix`, in key order. The bool says whether more remained.
    pub fn scan(&self, prefix: &[u8], limit: usize) -> Result<(Rows, bool)> {
        self.scan_from(prefix, b"", limit)
    }

    /// As [`SmView::scan`], from the first sub-key `>= prefix + from`.
    pub fn scan_from(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<(Rows, bool)> {
        let mut cursor = self.cursor(prefix);
        cursor.seek(from);
        let mut out = Vec::new();
        while let Some((k, v)) = cursor.current() {
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push((k.to_vec(), v.to_vec()));
            cursor.next();
        }
        cursor.status()?;
        Ok((out, false))
    }

    /// A cursor over the sub-keys starting with `prefix`; keys it yields have the prefix
    /// removed.
    pub fn cursor(&self, prefix: &[u8]) -> Cursor<'a> {
        self.cursor_within(prefix, b"")
    }

    /// As [`SmView::cursor`] (keys yielded without `prefix`), but ending after the
    /// keys that start with `prefix + within`. The store stops there itself: a walk
    /// past the last such key does not step over the deletion markers that follow it
    /// (keys deleted but not yet compacted away), which a cursor bounded only by
    /// `prefix` reads one by one before it finds the next live key or the end.
    pub fn cursor_within(&self, prefix: &[u8], within: &[u8]) -> Cursor<'a> {
        let full = keys::named(keys::SM_DATA, self.group, prefix);
        let mut bound = full.clone();
        bound.extend_from_slice(within);
        let mut ro = ReadOptions::default();
        if let Some(end) = keys::prefix_end(&bound) {
            ro.set_iterate_upper_bound(end);
        }
        let it = self.db.raw_iterator_opt(ro);
        Cursor { it, prefix: full }
    }
}

/// A positioned iterator over one key prefix, yielding keys without the prefix.
pub struct Cursor<'a> {
    it: DBRawIterator<'a>,
    prefix: Vec<u8>,
}

impl Cursor<'_> {
    /// Moves to the first key `>= prefix + suffix`.
    pub fn seek(&mut self, suffix: &[u8]) {
        let mut k = self.prefix.clone();
        k.extend_from_slice(suffix);
        self.it.seek(k);
    }

    /// The current `(suffix, value)`, or `None` at the end of the prefix.
    pub fn current(&self) -> Option<(&[u8], &[u8])> {
        if !self.it.valid() {
            return None;
        }
        let (k, v) = (self.it.key()?, self.it.value()?);
        let suffix = k.strip_prefix(self.prefix.as_slice())?;
        Some((suffix, v))
    }

    /// Advances by one key.
    pub fn next(&mut self) {
        self.it.next();
    }

    /// The iterator's error, if it stopped on one.
    pub fn status(&self) -> Result<()> {
        Ok(self.it.status()?)
    }
}

/// Pending changes of one `apply` call on top of the stored data.
pub struct Overlay<'a> {
    view: SmView<'a>,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Overlay<'a> {
    /// An empty overlay over `group`'s data.
    pub fn new(db: &'a DB, group: u64) -> Self {
        Overlay {
            view: SmView::new(db, group),
            pending: BTreeMap::new(),
        }
    }

    /// Value of a sub-key, pending changes first.
    pub fn get(&self, sub: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.pending.get(sub) {
            Some(v) => Ok(v.clone()),
            None => self.view.get(sub),
        }
    }

    /// Up to `limit` `(sub-key suffix after prefix, value)` pairs whose sub-key starts
    /// with `prefix`, stored data merged with the pending changes, in key order. The
    /// bool says whether more remained.
    pub fn scan(&self, prefix: &[u8], limit: usize) -> Result<(Rows, bool)> {
        self.scan_from(prefix, b"", limit)
    }

    /// As [`Overlay::scan`], from the first sub-key `>= prefix + from`.
    pub fn scan_from(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<(Rows, bool)> {
        let mut start = prefix.to_vec();
        start.extend_from_slice(from);
        let pending_in: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = self
            .pending
            .range(start..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .collect();
        // Deleted pending keys may hide stored ones: read enough stored rows to fill
        // the page after them.
        let deletes = pending_in.iter().filter(|(_, v)| v.is_none()).count();
        let (stored, more) = self.view.scan_from(
            prefix,
            from,
            limit.saturating_add(deletes).saturating_add(1),
        )?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
        let last_stored = more.then(|| merged.keys().next_back().cloned()).flatten();
        for (k, v) in pending_in {
            let suffix = k[prefix.len()..].to_vec();
            // Past the stored rows read, a pending key is only kept when the store
            // had nothing more; otherwise the page ends at the last stored row.
            if let Some(last) = &last_stored {
                if &suffix > last {
                    continue;
                }
            }
            match v {
                Some(v) => {
                    merged.insert(suffix, v.clone());
                }
                None => {
                    merged.remove(&suffix);
                }
            }
        }
        let truncated = merged.len() > limit || last_stored.is_some();
        let rows: Rows = merged.into_iter().take(limit).collect();
        Ok((rows, truncated))
    }

    /// Sets a sub-key.
    pub fn put(&mut self, sub: Vec<u8>, value: Vec<u8>) {
        self.pending.insert(sub, Some(value));
    }

    /// Removes a sub-key.
    pub fn delete(&mut self, sub: Vec<u8>) {
        self.pending.insert(sub, None);
    }

    /// The changes as one RocksDB batch (full keys).
    pub fn into_batch(self) -> WriteBatch {
        let group = self.view.group;
        let mut b = WriteBatch::default();
        for (sub, v) in self.pending {
            let k = keys::named(keys::SM_DATA, group, &sub);
            match v {
                Some(v) => b.put(k, v),
                None => b.delete(k),
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocksdb::perf::{set_perf_stats, PerfContext, PerfMetric, PerfStatsLevel};

    /// Deletion markers the store stepped over while `walk` ran (this thread).
    fn deletes_skipped(walk: impl FnOnce()) -> u64 {
        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut ctx = PerfContext::default();
        ctx.reset();
        walk();
        let n = ctx.metric(PerfMetric::InternalDeleteSkippedCount);
        set_perf_stats(PerfStatsLevel::Disable);
        n
    }

    /// Every key under `start` through the end of the cursor.
    fn walk_all(mut cursor: Cursor<'_>, start: &[u8]) -> Vec<Vec<u8>> {
        cursor.seek(start);
        let mut keys = Vec::new();
        while let Some((k, _)) = cursor.current() {
            keys.push(k.to_vec());
            cursor.next();
        }
        cursor.status().unwrap();
        keys
    }

    #[test]
    fn a_cursor_within_a_prefix_stops_before_the_deleted_keys_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::node::open_db(dir.path()).unwrap();
        let mut put = Overlay::new(&db, 7);
        for i in 0..10 {
            put.put(format!("ct/a/{i:04}").into_bytes(), b"v".to_vec());
        }
        for i in 0..5000 {
            put.put(format!("ct/b/{i:04}").into_bytes(), b"v".to_vec());
        }
        db.write(put.into_batch()).unwrap();
        let mut del = Overlay::new(&db, 7);
        for i in 0..5000 {
            del.delete(format!("ct/b/{i:04}").into_bytes());
        }
        db.write(del.into_batch()).unwrap();
        let view = SmView::new(&db, 7);
        let wanted: Vec<Vec<u8>> = (0..10).map(|i| format!("a/{i:04}").into_bytes()).collect();

        // Bounded by the container only: after the last "a/" key the walk steps over
        // every deleted "b/" key to find that nothing follows.
        let mut got = Vec::new();
        let skipped = deletes_skipped(|| got = walk_all(view.cursor(b"ct/"), b"a/"));
        assert_eq!(got, wanted);
        assert!(skipped >= 5000, "{skipped} deletion markers skipped");

        let mut got = Vec::new();
        let skipped = deletes_skipped(|| got = walk_all(view.cursor_within(b"ct/", b"a/"), b"a/"));
        assert_eq!(
            got, wanted,
            "keys are still yielded without the outer prefix"
        );
        assert_eq!(skipped, 0, "the walk ends at the prefix's bound");
    }
}
