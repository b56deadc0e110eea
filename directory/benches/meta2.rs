//! meta2 key encoding and listing scans: `keys::sm::content` for 1,000 object keys,
//! and ListObjects pages (the first 1,000 keys, the 500 under one prefix, the 20
//! common prefixes a delimiter rolls 10,000 keys up into) read by
//! `listing::list` from 10,000 content headers in RocksDB, the code path of the
//! `ListContents` RPC after its read barrier.
//!
//! `cargo bench -p oxio-directory --bench meta2` (add `-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use oxio_directory::keys::sm;
use oxio_directory::listing::{self, ListParams};
use oxio_directory::sm_data::{Overlay, SmView};
use oxio_proto::v1::{ContentHeader, ListEntry};
use prost::Message;
use std::hint::black_box;

/// A container id (64 hex digits, as meta2 stores them).
const CID: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// meta2 group the rows are written under.
const GROUP: u64 = 1000;
/// Objects stored for the scans.
const OBJECTS: usize = 10_000;
/// One listing page.
const PAGE: usize = 1000;

fn object_key(i: usize) -> String {
    format!("dataset/shard-{:02}/sample-{i:08}.tar", i % 20)
}

fn key_encode(c: &mut Criterion) {
    let names: Vec<String> = (0..PAGE).map(object_key).collect();
    let mut group = c.benchmark_group("meta2_key");
    group.throughput(Throughput::Elements(PAGE as u64));
    group.bench_function("encode_1000", |b| {
        b.iter(|| {
            for n in &names {
                black_box(sm::content(black_box(CID), n));
            }
        })
    });
    group.finish();
}

fn scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let db = rocksdb::DB::open_default(dir.path()).expect("RocksDB");
    let mut ov = Overlay::new(&db, GROUP);
    for i in 0..OBJECTS {
        let header = ContentHeader {
            content_id: vec![7; 16],
            size: 4096 + i as u64,
            etag: format!("{:032x}", i),
            mtime_ms: 1_700_000_000_000 + i as u64,
            policy: "EC42".into(),
            content_type: "application/x-tar".into(),
            ..Default::default()
        };
        ov.put(sm::content(CID, &object_key(i)), header.encode_to_vec());
    }
    db.write(ov.into_batch()).expect("write");
    db.flush().expect("flush");

    let entry = |k: &[u8], v: &[u8]| -> oxio_directory::error::Result<ListEntry> {
        let h = ContentHeader::decode(v)?;
        Ok(ListEntry {
            key: String::from_utf8_lossy(k).into_owned(),
            size: h.size,
            etag: h.etag,
            mtime_ms: h.mtime_ms,
            policy: h.policy,
            ..Default::default()
        })
    };
    let mut group = c.benchmark_group("meta2_list");
    // Throughput counts the entries of the page: 1,000 keys; the 500 keys under one
    // of the 20 shards; the 20 common prefixes rolled up from all 10,000 keys.
    for (name, prefix, delimiter, entries) in [
        ("page_1000", "", "", PAGE),
        ("shard_prefix_500", "dataset/shard-07/", "", OBJECTS / 20),
        ("delimiter_rollup_20", "dataset/", "/", 20),
    ] {
        group.throughput(Throughput::Elements(entries as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let view = SmView::new(&db, GROUP);
                let mut cursor = view.cursor(&sm::contents_of(CID));
                let params = ListParams {
                    prefix,
                    delimiter,
                    start_after: "",
                    max_keys: PAGE as u32,
                };
                let page = listing::list(&mut cursor, &params, entry).expect("list");
                assert_eq!(page.entries.len() + page.common_prefixes.len(), entries);
                black_box(page)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, key_encode, scan);
criterion_main!(benches);
