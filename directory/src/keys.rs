//! RocksDB key layout. Every key starts with a one-byte tag and the big-endian group id,
//! so all groups hosted by a node share one database and each group's data is one
//! contiguous range:
//!
//! | tag | rest | value |
//! |---|---|---|
//! | `l` | group, index (BE u64) | log entry ([`crate::codec`]: MessagePack, older ones JSON) |
//! | `r` | group, name | JSON Raft metadata (vote, committed, last purged) |
//! | `m` | group, name | JSON state-machine metadata (applied, membership, snapshot) |
//! | `s` | group, sub-key | state-machine data (see [`sm`]) |
//! | `g` | group | JSON [`crate::types::GroupKind`] of a group hosted here |
//! | `n` | name | node-level flags |

/// Raft log entries.
pub const LOG: u8 = b'l';
/// Raft metadata (vote, committed, purged).
pub const RAFT_META: u8 = b'r';
/// State-machine metadata (applied, membership, current snapshot).
pub const SM_META: u8 = b'm';
/// State-machine data.
pub const SM_DATA: u8 = b's';
/// Groups hosted by this node.
pub const HOSTED: u8 = b'g';
/// Node-level flags.
pub const NODE: u8 = b'n';

/// `SM_META` name of the last applied log id.
pub const APPLIED: &[u8] = b"applied";
/// `SM_META` name of the last applied membership.
pub const MEMBERSHIP: &[u8] = b"membership";

/// `tag + group`.
pub fn group_prefix(tag: u8, group: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + 32);
    k.push(tag);
    k.extend_from_slice(&group.to_be_bytes());
    k
}

/// `tag + group + name`.
pub fn named(tag: u8, group: u64, name: &[u8]) -> Vec<u8> {
    let mut k = group_prefix(tag, group);
    k.extend_from_slice(name);
    k
}

/// Key of log entry `index` of `group`.
pub fn log(group: u64, index: u64) -> Vec<u8> {
    let mut k = group_prefix(LOG, group);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// Index of a log key, if it is one of `group`.
pub fn log_index(group: u64, key: &[u8]) -> Option<u64> {
    let p = group_prefix(LOG, group);
    let rest = key.strip_prefix(p.as_slice())?;
    let b: [u8; 8] = rest.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// Key of a hosted-group record.
pub fn hosted(group: u64) -> Vec<u8> {
    group_prefix(HOSTED, group)
}

/// Group id of a hosted-group key.
pub fn hosted_group(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(&[HOSTED])?;
    let b: [u8; 8] = rest.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// Node-level flag key.
pub fn node_flag(name: &str) -> Vec<u8> {
    let mut k = vec![NODE];
    k.extend_from_slice(name.as_bytes());
    k
}

/// The end (exclusive) of the range of keys starting with `prefix`, or `None` when no
/// such bound exists (all bytes 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Appends `s` preceded by its length (BE u16) so that variable-length components can be
/// concatenated without ambiguity. Callers cap component lengths well under 64 KiB.
pub fn push_lp(k: &mut Vec<u8>, s: &[u8]) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(&s[..len as usize]);
}

/// Sub-keys of the state-machine data range (after `s + group`).
pub mod sm {
    use super::push_lp;

    /// meta0: packed prefix table (65,536 BE u64).
    pub const META0_TABLE: &[u8] = b"0t";
    /// meta0: group records, followed by the BE u64 group id.
    pub const META0_GROUP: &[u8] = b"0g";
    /// meta1: accounts, followed by the account name.
    pub const ACCOUNT: &[u8] = b"1a";
    /// meta1: access keys, followed by the access key.
    pub const ACCESS_KEY: &[u8] = b"1k";
    /// meta1: access keys by account, followed by lp(account) + access key.
    pub const ACCESS_KEY_BY_ACCOUNT: &[u8] = b"1K";
    /// meta1: containers, followed by the cid.
    pub const CONTAINER: &[u8] = b"1c";
    /// meta1: containers by account, followed by lp(account) + name.
    pub const CONTAINER_BY_ACCOUNT: &[u8] = b"1n";
    /// meta2: container records, followed by the cid.
    pub const M2_CONTAINER: &[u8] = b"2c";
    /// meta2: contents, followed by the cid (64 bytes) and the key.
    pub const M2_CONTENT: &[u8] = b"2o";
    /// meta2: reverse index, followed by lp(rawx id) + chunk id + 0 + cid + key.
    pub const M2_REVERSE: &[u8] = b"2r";
    /// meta2: multipart uploads, followed by the cid, the key, 0 and the upload id.
    pub const M2_UPLOAD: &[u8] = b"2u";
    /// meta2: uploads by initiation, followed by the cid, the key, 0, the initiation
    /// time (BE u64 microseconds) and the upload id. Empty values.
    pub const M2_UPLOAD_ORDER: &[u8] = b"2U";
    /// meta2: parts, followed by the cid, the upload id, 0 and the BE u32 part number.
    pub const M2_PART: &[u8] = b"2p";
    /// meta2: recently applied puts, followed by the cid and the content id; the value
    /// is the assigned version (BE u64) then the apply time (BE u64 microseconds).
    pub const M2_PUT_ID: &[u8] = b"2i";
    /// meta2: the same puts by apply time: followed by the BE u64 time, the cid and
    /// the content id. Empty values.
    pub const M2_PUT_ORDER: &[u8] = b"2I";
    /// meta2: every [`M2_PUT_ORDER`] record is at this time or later (BE u64
    /// microseconds): pruning starts there instead of walking over the deleted ones.
    pub const M2_PUT_FLOOR: &[u8] = b"2F";

    /// `kind + a`.
    pub fn one(kind: &[u8], a: &[u8]) -> Vec<u8> {
        let mut k = kind.to_vec();
        k.extend_from_slice(a);
        k
    }

    /// `kind + lp(a) + b`.
    pub fn lp_then(kind: &[u8], a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut k = kind.to_vec();
        push_lp(&mut k, a);
        k.extend_from_slice(b);
        k
    }

    /// meta0 group record key.
    pub fn meta0_group(id: u64) -> Vec<u8> {
        one(META0_GROUP, &id.to_be_bytes())
    }

    /// meta2 content key prefix of a container (`cid` is 64 bytes).
    pub fn contents_of(cid: &str) -> Vec<u8> {
        one(M2_CONTENT, cid.as_bytes())
    }

    /// meta2 content key.
    pub fn content(cid: &str, key: &str) -> Vec<u8> {
        let mut k = contents_of(cid);
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// Upload record key. Multipart keys never contain a 0 byte, so `key + 0` keeps
    /// the keys' own order.
    pub fn upload(cid: &str, key: &str, upload_id: &str) -> Vec<u8> {
        let mut k = one(M2_UPLOAD, cid.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k.push(0);
        k.extend_from_slice(upload_id.as_bytes());
        k
    }

    /// Prefix of the upload order index of a container.
    pub fn upload_order_of(cid: &str) -> Vec<u8> {
        one(M2_UPLOAD_ORDER, cid.as_bytes())
    }

    /// Suffix (after [`upload_order_of`]) of one upload in the order index.
    pub fn upload_order_suffix(key: &str, initiated_us: u64, upload_id: &str) -> Vec<u8> {
        let mut k = key.as_bytes().to_vec();
        k.push(0);
        k.extend_from_slice(&initiated_us.to_be_bytes());
        k.extend_from_slice(upload_id.as_bytes());
        k
    }

    /// Splits an order-index suffix into `(key, initiated_us, upload_id)`.
    pub fn parse_upload_order(suffix: &[u8]) -> Option<(&[u8], u64, &[u8])> {
        let nul = suffix.iter().position(|&b| b == 0)?;
        let (key, rest) = suffix.split_at(nul);
        let rest = &rest[1..];
        if rest.len() < 8 {
            return None;
        }
        let (ts, id) = rest.split_at(8);
        let ts: [u8; 8] = ts.try_into().ok()?;
        Some((key, u64::from_be_bytes(ts), id))
    }

    /// Prefix of the parts of one upload.
    pub fn parts_of(cid: &str, upload_id: &str) -> Vec<u8> {
        let mut k = one(M2_PART, cid.as_bytes());
        k.extend_from_slice(upload_id.as_bytes());
        k.push(0);
        k
    }

    /// Key of one part.
    pub fn part(cid: &str, upload_id: &str, part_number: u32) -> Vec<u8> {
        let mut k = parts_of(cid, upload_id);
        k.extend_from_slice(&part_number.to_be_bytes());
        k
    }

    /// Key of a recently applied put.
    pub fn put_id(cid: &str, content_id: &[u8]) -> Vec<u8> {
        let mut k = one(M2_PUT_ID, cid.as_bytes());
        k.extend_from_slice(content_id);
        k
    }

    /// Key of a recently applied put in apply-time order.
    pub fn put_order(applied_us: u64, cid: &str, content_id: &[u8]) -> Vec<u8> {
        let mut k = one(M2_PUT_ORDER, &applied_us.to_be_bytes());
        k.extend_from_slice(cid.as_bytes());
        k.extend_from_slice(content_id);
        k
    }

    /// Reverse-index prefix of one rawx.
    pub fn reverse_of(rawx_id: &str) -> Vec<u8> {
        lp_then(M2_REVERSE, rawx_id.as_bytes(), b"")
    }

    /// Reverse-index key of one chunk of one content.
    pub fn reverse(rawx_id: &str, chunk_id: &str, cid: &str, key: &str) -> Vec<u8> {
        let mut k = reverse_of(rawx_id);
        push_lp(&mut k, chunk_id.as_bytes());
        k.extend_from_slice(cid.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_index_and_decode() {
        assert!(log(1, 2) < log(1, 256));
        assert!(log(1, u64::MAX) < log(2, 0));
        assert_eq!(log_index(7, &log(7, 42)), Some(42));
        assert_eq!(log_index(8, &log(7, 42)), None);
    }

    #[test]
    fn prefix_end_bounds_the_range() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xFF]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
    }

    #[test]
    fn length_prefix_separates_components() {
        // "ab"+"c" and "a"+"bc" must not collide.
        assert_ne!(
            sm::lp_then(b"x", b"ab", b"c"),
            sm::lp_then(b"x", b"a", b"bc")
        );
        assert_eq!(hosted_group(&hosted(1001)), Some(1001));
    }

    #[test]
    fn upload_order_sorts_by_key_then_time_and_parses() {
        let a = sm::upload_order_suffix("a", 9, "ff");
        let a2 = sm::upload_order_suffix("a", 10, "00");
        let ab = sm::upload_order_suffix("a/b", 1, "00");
        assert!(a < a2 && a2 < ab);
        let (k, t, id) = sm::parse_upload_order(&a2).unwrap();
        assert_eq!((k, t, id), (&b"a"[..], 10, &b"00"[..]));
        assert!(sm::part("C", "u", 2) < sm::part("C", "u", 256));
    }
}
