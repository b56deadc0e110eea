//! `drain_rawx`: one of 7 rawx holding chunks of EC and replicated objects (one of them
//! damaged on disk) is drained; afterwards it is locked at score 0, holds no chunk
//! file, its reverse index is empty (a second run finds nothing), and every object
//! reads back, also with the drained rawx stopped.

use bytes::Bytes;
use oxio_common::StoragePolicy;
use oxio_sdk::rebuild::RebuildOptions;
use oxio_sdk::PutOptions;
use oxio_tests::{random_bytes as random, TestGrid};
use std::collections::HashMap;

/// Size of the chunk file header: data starts here.
const HEADER_BYTES: u64 = 4096;

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
    grid.sdk
        .put_object("acct", "bkt", key, body, opts)
        .await
        .unwrap();
}

/// Complete chunk files in a rawx volume (`<3 hex>/<chunk id>`).
fn chunk_files(volume: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(volume).unwrap() {
        let d = d.unwrap();
        if !d.file_type().unwrap().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(d.path()).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            if name.len() == 64 {
                out.push(name);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drained_rawx_holds_nothing() {
    let mut grid = TestGrid::start(7).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, n) in [40_000usize, (1 << 20) + 3, 3 * (1 << 20) + 777, 70_000]
        .into_iter()
        .enumerate()
    {
        let key = format!("ec-{i}");
        let data = random(n);
        put_policy(
            &grid,
            &key,
            &data,
            StoragePolicy::ErasureCoded { k: 4, m: 2 },
        )
        .await;
        objects.push((key, data));
    }
    for (i, n) in [300_000usize, 50_000].into_iter().enumerate() {
        let key = format!("copies-{i}");
        let data = random(n);
        put_policy(&grid, &key, &data, StoragePolicy::Replicated { copies: 3 }).await;
        objects.push((key, data));
    }

    // The victim: the rawx holding the most chunks, among those holding a copy of
    // "copies-0".
    let mut per_rawx: HashMap<String, Vec<(String, oxio_proto::v1::ChunkRecord)>> = HashMap::new();
    for (key, _) in &objects {
        let h = grid.sdk.head_object("acct", "bkt", key).await.unwrap();
        for c in h.chunks {
            per_rawx
                .entry(c.rawx_id.clone())
                .or_default()
                .push((key.clone(), c));
        }
    }
    let copies_rawx: Vec<String> = grid
        .sdk
        .head_object("acct", "bkt", "copies-0")
        .await
        .unwrap()
        .chunks
        .iter()
        .map(|c| c.rawx_id.clone())
        .collect();
    let victim = copies_rawx
        .iter()
        .max_by_key(|r| (per_rawx[*r].len(), (*r).clone()))
        .unwrap()
        .clone();
    let held = per_rawx[&victim].clone();
    assert!(held.iter().any(|(k, _)| k.starts_with("ec-")));
    let x = grid.rawx.iter().position(|r| r.id == victim).unwrap();
    let volume = grid.rawx_volume(x);
    assert_eq!(chunk_files(&volume).len(), held.len());

    // One EC fragment on the victim is damaged: it cannot be copied and is regenerated.
    let (_, bad) = held.iter().find(|(k, _)| k.starts_with("ec-")).unwrap();
    let id = bad.chunk_id.to_ascii_uppercase();
    let path = volume.join(&id[..3]).join(&id);
    let mut raw = std::fs::read(&path).unwrap();
    raw[(HEADER_BYTES + bad.size / 2) as usize] ^= 0x40;
    std::fs::write(&path, raw).unwrap();

    let report = grid
        .sdk
        .drain_rawx(&victim, RebuildOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    let n = held.len() as u64;
    assert_eq!(report.rebuild.progress.total, n, "{report:?}");
    assert_eq!(report.rebuild.progress.done, n, "{report:?}");
    assert_eq!(
        (report.copied, report.regenerated),
        (n - 1, 1),
        "{report:?}"
    );
    assert_eq!(report.deleted, n);

    assert!(
        chunk_files(&volume).is_empty(),
        "{victim} still holds {:?}",
        chunk_files(&volume)
    );
    let svc = grid
        .sdk
        .list_services("rawx")
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.info.as_ref().is_some_and(|i| i.id == victim))
        .unwrap();
    assert!(svc.locked, "{victim} is not locked");
    assert_eq!(svc.score, 0);

    // Idempotent: nothing left in the reverse index.
    let again = grid
        .sdk
        .drain_rawx(&victim, RebuildOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(again.rebuild.progress.total, 0, "{again:?}");

    for (key, data) in &objects {
        let h = grid.sdk.head_object("acct", "bkt", key).await.unwrap();
        assert!(h.chunks.iter().all(|c| c.rawx_id != victim), "{key}");
        let got = grid.get("acct", "bkt", key, 0, None).await.unwrap();
        assert!(got == *data, "{key} differs after the drain");
    }
    grid.stop_rawx(x).await.unwrap();
    for (key, data) in &objects {
        let got = grid.get("acct", "bkt", key, 0, None).await.unwrap();
        assert!(got == *data, "{key} differs with the drained rawx stopped");
    }
}
