//! Listing of a container's keys with S3 semantics: prefix, delimiter roll-up into
//! common prefixes, `start_after` and `max_keys` paging. Written against a small cursor
//! trait so the same code runs on RocksDB and on an in-memory map in tests.

use crate::error::Result;
use crate::keys::prefix_end;
use oxio_proto::v1::{ListContentsReply, ListEntry};

/// Default and largest page size.
pub const MAX_KEYS: u32 = 1000;

/// A sorted key space that can be positioned and walked forward.
pub trait KeyCursor {
    /// Moves to the first key `>= key`.
    fn seek(&mut self, key: &[u8]);
    /// The current `(key, value)`; `None` at the end.
    fn current(&self) -> Option<(&[u8], &[u8])>;
    /// Advances by one key.
    fn next(&mut self);
}

impl KeyCursor for crate::sm_data::Cursor<'_> {
    fn seek(&mut self, key: &[u8]) {
        crate::sm_data::Cursor::seek(self, key)
    }
    fn current(&self) -> Option<(&[u8], &[u8])> {
        crate::sm_data::Cursor::current(self)
    }
    fn next(&mut self) {
        crate::sm_data::Cursor::next(self)
    }
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct ListParams<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Empty: no roll-up.
    pub delimiter: &'a str,
    /// Only keys (and common prefixes) strictly after this.
    pub start_after: &'a str,
    /// Page size; 0 means [`MAX_KEYS`], larger values are capped to it.
    pub max_keys: u32,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The common prefix `key` rolls up into, if any.
pub(crate) fn rollup<'k>(key: &'k [u8], prefix: &[u8], delimiter: &[u8]) -> Option<&'k [u8]> {
    let rest = key.strip_prefix(prefix)?;
    let i = find(rest, delimiter)?;
    Some(&key[..prefix.len() + i + delimiter.len()])
}

/// Lists one page. `entry` turns a stored `(key, value)` into a listing entry.
pub fn list<C, F>(
    cursor: &mut C,
    params: &ListParams<'_>,
    mut entry: F,
) -> Result<ListContentsReply>
where
    C: KeyCursor,
    F: FnMut(&[u8], &[u8]) -> Result<ListEntry>,
{
    let prefix = params.prefix.as_bytes();
    let delimiter = params.delimiter.as_bytes();
    let start_after = params.start_after.as_bytes();
    let max = match params.max_keys {
        0 => MAX_KEYS,
        n => n.min(MAX_KEYS),
    } as usize;

    let mut reply = ListContentsReply::default();
    let mut seek_to = prefix.to_vec();
    if start_after > prefix {
        seek_to = start_after.to_vec();
    }
    // A start_after that is (or lies under) a common prefix: everything under that
    // prefix was already rolled up, skip all of it.
    if let Some(cp) = rollup(start_after, prefix, delimiter) {
        match prefix_end(cp) {
            Some(end) if end > seek_to => seek_to = end,
            Some(_) => {}
            None => return Ok(reply),
        }
    }
    cursor.seek(&seek_to);

    let mut count = 0usize;
    let mut last: Vec<u8> = Vec::new();
    // Each step returns an item, skips the one key equal to start_after, or stops.
    let mut steps_left = 2 * max + 2;
    while steps_left > 0 {
        steps_left -= 1;
        let Some((key, value)) = cursor.current() else {
            break;
        };
        if !key.starts_with(prefix) {
            break;
        }
        if key <= start_after {
            cursor.next();
            continue;
        }
        if let Some(cp) = rollup(key, prefix, delimiter) {
            if count == max {
                reply.truncated = true;
                break;
            }
            let cp = cp.to_vec();
            reply
                .common_prefixes
                .push(String::from_utf8_lossy(&cp).into_owned());
            count += 1;
            match prefix_end(&cp) {
                Some(end) => cursor.seek(&end),
                None => {
                    last = cp;
                    break;
                }
            }
            last = cp;
            continue;
        }
        if count == max {
            reply.truncated = true;
            break;
        }
        reply.entries.push(entry(key, value)?);
        count += 1;
        last = key.to_vec();
        cursor.next();
    }
    if reply.truncated {
        reply.next_start_after = String::from_utf8_lossy(&last).into_owned();
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An in-memory cursor.
    struct MapCursor {
        keys: Vec<(Vec<u8>, Vec<u8>)>,
        pos: usize,
        seeks: usize,
    }

    impl MapCursor {
        fn new(keys: &[&str]) -> Self {
            let m: BTreeMap<Vec<u8>, Vec<u8>> = keys
                .iter()
                .map(|k| (k.as_bytes().to_vec(), Vec::new()))
                .collect();
            MapCursor {
                keys: m.into_iter().collect(),
                pos: 0,
                seeks: 0,
            }
        }
    }

    impl KeyCursor for MapCursor {
        fn seek(&mut self, key: &[u8]) {
            self.seeks += 1;
            self.pos = self.keys.partition_point(|(k, _)| k.as_slice() < key);
        }
        fn current(&self) -> Option<(&[u8], &[u8])> {
            self.keys
                .get(self.pos)
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
        }
        fn next(&mut self) {
            self.pos += 1;
        }
    }

    fn run(keys: &[&str], p: ListParams<'_>) -> (Vec<String>, Vec<String>, bool, String) {
        let mut c = MapCursor::new(keys);
        let r = list(&mut c, &p, |k, _| {
            Ok(ListEntry {
                key: String::from_utf8_lossy(k).into_owned(),
                ..Default::default()
            })
        })
        .unwrap();
        (
            r.entries.into_iter().map(|e| e.key).collect(),
            r.common_prefixes,
            r.truncated,
            r.next_start_after,
        )
    }

    const KEYS: &[&str] = &[
        "a",
        "b/1",
        "b/2",
        "b/3/x",
        "c",
        "d/e/f",
        "d/g",
        "photos/2024/feb.jpg",
        "photos/2024/jan.jpg",
        "photos/2025/mar.jpg",
        "photos/readme",
        "z",
    ];

    fn p<'a>(
        prefix: &'a str,
        delimiter: &'a str,
        start_after: &'a str,
        max: u32,
    ) -> ListParams<'a> {
        ListParams {
            prefix,
            delimiter,
            start_after,
            max_keys: max,
        }
    }

    #[test]
    fn table_of_listings() {
        type Case<'a> = (ListParams<'a>, &'a [&'a str], &'a [&'a str], bool, &'a str);
        let cases: Vec<Case<'_>> = vec![
            // everything, flat
            (p("", "", "", 0), KEYS, &[], false, ""),
            // prefix only
            (p("b/", "", "", 0), &["b/1", "b/2", "b/3/x"], &[], false, ""),
            // delimiter at top level
            (
                p("", "/", "", 0),
                &["a", "c", "z"],
                &["b/", "d/", "photos/"],
                false,
                "",
            ),
            // delimiter under a prefix
            (
                p("photos/", "/", "", 0),
                &["photos/readme"],
                &["photos/2024/", "photos/2025/"],
                false,
                "",
            ),
            // start_after a plain key
            (
                p("", "", "c", 0),
                &[
                    "d/e/f",
                    "d/g",
                    "photos/2024/feb.jpg",
                    "photos/2024/jan.jpg",
                    "photos/2025/mar.jpg",
                    "photos/readme",
                    "z",
                ],
                &[],
                false,
                "",
            ),
            // start_after a key that does not exist
            (
                p("", "", "b/25", 0),
                &[
                    "b/3/x",
                    "c",
                    "d/e/f",
                    "d/g",
                    "photos/2024/feb.jpg",
                    "photos/2024/jan.jpg",
                    "photos/2025/mar.jpg",
                    "photos/readme",
                    "z",
                ],
                &[],
                false,
                "",
            ),
            // start_after before the prefix has no effect
            (p("d/", "", "a", 0), &["d/e/f", "d/g"], &[], false, ""),
            // start_after past the prefix: nothing
            (p("b/", "", "c", 0), &[], &[], false, ""),
            // paging: max 2 flat
            (p("", "", "", 2), &["a", "b/1"], &[], true, "b/1"),
            // paging with roll-up: the common prefix is the page end
            (p("", "/", "", 2), &["a"], &["b/"], true, "b/"),
            // next page after a common prefix skips everything under it
            (p("", "/", "b/", 2), &["c"], &["d/"], true, "d/"),
            (p("", "/", "d/", 2), &["z"], &["photos/"], false, ""),
            // start_after inside a rolled-up prefix skips the rest of that prefix
            (
                p("", "/", "b/2", 0),
                &["c", "z"],
                &["d/", "photos/"],
                false,
                "",
            ),
            // exact page size is not truncated
            (p("b/", "", "", 3), &["b/1", "b/2", "b/3/x"], &[], false, ""),
            // multi-byte delimiter
            (
                p("", "/2", "", 0),
                &[
                    "a",
                    "b/1",
                    "b/3/x",
                    "c",
                    "d/e/f",
                    "d/g",
                    "photos/readme",
                    "z",
                ],
                &["b/2", "photos/2"],
                false,
                "",
            ),
            // max_keys above the cap is capped (not an error)
            (
                p("photos/2024/", "", "", 5000),
                &["photos/2024/feb.jpg", "photos/2024/jan.jpg"],
                &[],
                false,
                "",
            ),
        ];
        for (i, (params, entries, cps, truncated, next)) in cases.into_iter().enumerate() {
            let got = run(KEYS, params.clone());
            let want_entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
            let want_cps: Vec<String> = cps.iter().map(|s| s.to_string()).collect();
            assert_eq!(got.0, want_entries, "case {i} entries {params:?}");
            assert_eq!(got.1, want_cps, "case {i} common prefixes {params:?}");
            assert_eq!(got.2, truncated, "case {i} truncated {params:?}");
            assert_eq!(got.3, next, "case {i} next_start_after {params:?}");
        }
    }

    #[test]
    fn paging_visits_every_key_once() {
        let keys: Vec<String> = (0..57)
            .map(|i| format!("dir{}/file{:03}", i % 5, i))
            .chain((0..13).map(|i| format!("top{i:02}")))
            .collect();
        let refs: Vec<&str> = keys.iter().map(|s| s.as_str()).collect();
        // Flat paging by 7.
        let mut seen = Vec::new();
        let mut start = String::new();
        for _ in 0..100 {
            let (e, _, trunc, next) = run(&refs, p("", "", &start, 7));
            seen.extend(e);
            if !trunc {
                break;
            }
            start = next;
        }
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        // Delimited paging by 2: 5 common prefixes + 13 top-level keys, each once.
        let mut items = Vec::new();
        let mut start = String::new();
        for _ in 0..100 {
            let (e, cps, trunc, next) = run(&refs, p("", "/", &start, 2));
            items.extend(cps);
            items.extend(e);
            if !trunc {
                break;
            }
            start = next;
        }
        items.sort();
        let mut want: Vec<String> = (0..5).map(|i| format!("dir{i}/")).collect();
        want.extend((0..13).map(|i| format!("top{i:02}")));
        want.sort();
        assert_eq!(items, want);
    }

    #[test]
    fn rolled_up_keys_are_skipped_by_seek_not_scanned() {
        let keys: Vec<String> = (0..500).map(|i| format!("big/{i:04}")).collect();
        let mut refs: Vec<&str> = keys.iter().map(|s| s.as_str()).collect();
        refs.push("zz");
        let mut c = MapCursor::new(&refs);
        let r = list(&mut c, &p("", "/", "", 0), |k, _| {
            Ok(ListEntry {
                key: String::from_utf8_lossy(k).into_owned(),
                ..Default::default()
            })
        })
        .unwrap();
        assert_eq!(r.common_prefixes, vec!["big/"]);
        assert_eq!(r.entries.len(), 1);
        // One initial seek plus one seek past "big/".
        assert_eq!(c.seeks, 2);
    }
}
