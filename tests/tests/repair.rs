//! `repair_corrupt`: fragments of EC 4+2 objects and one copy of a THREECOPIES object
//! are damaged in place; a scrub reports them, the repair regenerates each elsewhere,
//! switches its record and deletes the corrupt file. Afterwards every chunk reads back
//! from its rawx with valid checksums, a second scrub finds nothing, every object reads
//! back intact, and the EC objects still read with two more rawx stopped.

use bytes::Bytes;
use oxio_common::StoragePolicy;
use oxio_sdk::rawx::RawxClient;
use oxio_sdk::rebuild::RebuildOptions;
use oxio_sdk::PutOptions;
use oxio_tests::{random_bytes as random, TestGrid};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Size of the chunk file header: data starts here.
const HEADER_BYTES: u64 = 4096;

fn flip(path: &std::path::Path, offset: u64) {
    let mut raw = std::fs::read(path).unwrap();
    raw[offset as usize] ^= 0x20;
    std::fs::write(path, raw).unwrap();
}

async fn put_policy(grid: &TestGrid, key: &str, data: &[u8], policy: StoragePolicy) {
    let body = futures::stream::iter(
        data.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let opts = PutOptions {
        expected_len: Some(data.len() as u64),
        policy: Some(policy),
        ..Default::default()
    };
    let h = grid
        .sdk
        .put_object("acct", "bkt", key, body, opts)
        .await
        .unwrap();
    assert_eq!(h.policy, policy.to_string());
}

/// Runs one scrub pass on rawx `id` and returns the corrupt chunk ids it lists.
async fn scrub(grid: &TestGrid, id: &str) -> (BTreeSet<String>, u64) {
    let before = grid.sdk.scrub_status(id).await.unwrap().pass;
    grid.sdk.start_scrub(id).await.unwrap();
    let st = grid
        .sdk
        .wait_scrub_pass(id, before, Duration::from_secs(120), |_| {})
        .await
        .unwrap();
    (
        st.corrupt.iter().map(|c| c.chunk_id.clone()).collect(),
        st.corrupt_found,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrubbed_corruption_is_repaired() {
    let mut grid = TestGrid::start(7).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();
    let index: BTreeMap<String, usize> = grid
        .rawx
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();

    let ec = StoragePolicy::ErasureCoded { k: 4, m: 2 };
    let mut objects = Vec::new();
    for (i, n) in [40_000usize, (1 << 20) + 3, 5 * (1 << 20) + 777]
        .into_iter()
        .enumerate()
    {
        let data = random(n);
        put_policy(&grid, &format!("ec-{i}"), &data, ec).await;
        objects.push((format!("ec-{i}"), data));
    }
    let data = random(300_000);
    put_policy(
        &grid,
        "copies",
        &data,
        StoragePolicy::Replicated { copies: 3 },
    )
    .await;
    objects.push(("copies".to_string(), data));

    // rawx id -> chunk ids damaged there; key -> fragments damaged.
    let mut flipped: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut damaged: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for (i, (key, _)) in objects.iter().enumerate() {
        let h = grid.sdk.head_object("acct", "bkt", key).await.unwrap();
        let chosen: Vec<u32> = if key == "copies" {
            vec![0]
        } else {
            vec![(i % 6) as u32, ((i + 3) % 6) as u32]
        };
        for (n, c) in h.chunks.iter().enumerate() {
            let pick = if key == "copies" {
                n == 0
            } else {
                chosen.contains(&c.fragment)
            };
            if !pick {
                continue;
            }
            let id = c.chunk_id.to_ascii_uppercase();
            let path = grid.rawx_volume(index[&c.rawx_id]).join(&id[..3]).join(&id);
            flip(&path, HEADER_BYTES + c.size / 2);
            flipped.entry(c.rawx_id.clone()).or_default().insert(id);
            damaged.entry(key.clone()).or_default().insert(c.fragment);
        }
    }
    let total: usize = flipped.values().map(BTreeSet::len).sum();
    assert_eq!(total, 7);

    for (rawx, ids) in &flipped {
        let (found, _) = scrub(&grid, rawx).await;
        assert_eq!(&found, ids, "{rawx}: scrub report differs from the damage");
        let calls = std::sync::atomic::AtomicU64::new(0);
        let report = grid
            .sdk
            .repair_corrupt(rawx, RebuildOptions::default(), |_| {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            .await
            .unwrap();
        assert!(report.is_complete(), "{rawx}: {report:?}");
        assert_eq!(report.corrupt_listed, ids.len() as u64);
        assert_eq!(report.rebuild.progress.done, ids.len() as u64, "{report:?}");
        assert_eq!(report.deleted, ids.len() as u64);
        assert!(report.unrecorded.is_empty());
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::Relaxed),
            ids.len() as u64 + 1
        );
        let v = grid.rawx_volume(index[rawx]);
        for id in ids {
            assert!(!v.join(&id[..3]).join(id).exists(), "{id} still on {rawx}");
        }
    }

    // Every chunk reads back whole from its rawx (the rawx verifies every segment),
    // and no record names a damaged chunk.
    let all_flipped: BTreeSet<String> = flipped.values().flatten().cloned().collect();
    let rawx = RawxClient::new(Duration::from_secs(5)).unwrap();
    for (key, _) in &objects {
        let h = grid.sdk.head_object("acct", "bkt", key).await.unwrap();
        let want = if key == "copies" { 3 } else { 6 };
        assert_eq!(h.chunks.len(), want, "{key}");
        for c in &h.chunks {
            assert!(!all_flipped.contains(&c.chunk_id.to_ascii_uppercase()));
            let mut r = rawx.get(&c.addr, &c.chunk_id, 0, c.size).await.unwrap();
            let got = r.read_exact(c.size as usize).await.unwrap();
            assert_eq!(got.len() as u64, c.size, "{key} fragment {}", c.fragment);
        }
    }

    // A second scrub of every rawx finds nothing.
    for r in grid.rawx.iter().map(|r| r.id.clone()).collect::<Vec<_>>() {
        let (found, corrupt_found) = scrub(&grid, &r).await;
        assert!(found.is_empty(), "{r}: {found:?}");
        assert_eq!(corrupt_found, 0, "{r}");
    }

    for (key, data) in &objects {
        let got = grid.get("acct", "bkt", key, 0, None).await.unwrap();
        assert!(got == *data, "{key} differs after the repair");
    }

    // Stop two rawx holding undamaged fragments of the largest object: its reads now
    // need the repaired ones.
    let h = grid.sdk.head_object("acct", "bkt", "ec-2").await.unwrap();
    let repaired = &damaged["ec-2"];
    let stop: Vec<usize> = h
        .chunks
        .iter()
        .filter(|c| !repaired.contains(&c.fragment))
        .take(2)
        .map(|c| index[&c.rawx_id])
        .collect();
    assert_eq!(stop.len(), 2);
    for i in stop {
        grid.stop_rawx(i).await.unwrap();
    }
    for (key, data) in objects.iter().filter(|(k, _)| k.starts_with("ec-")) {
        let got = grid.get("acct", "bkt", key, 0, None).await.unwrap();
        assert!(got == *data, "{key} differs with two rawx stopped");
    }
}
