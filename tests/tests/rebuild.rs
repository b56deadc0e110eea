//! `rebuild_rawx`: a rawx whose volume is lost entirely is rebuilt from the meta2
//! reverse indexes; afterwards no record names it, every object reads back intact even
//! with any two more rawx stopped (every pair tried), and a second run finds nothing left to do but the
//! chunks of a multipart part never completed (skipped, as documented).

use bytes::Bytes;
use oxio_common::StoragePolicy;
use oxio_sdk::PutOptions;
use oxio_tests::{random_bytes as random, TestGrid};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_volume_is_rebuilt_elsewhere() {
    let mut grid = TestGrid::start(7).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();

    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, n) in [40_000usize, (1 << 20) + 3, 5 * (1 << 20) + 777]
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
    let data = random(300_000);
    put_policy(
        &grid,
        "copies",
        &data,
        StoragePolicy::Replicated { copies: 3 },
    )
    .await;
    objects.push(("copies".into(), data));

    // A multipart upload left in progress: its part's chunks are indexed (version 0)
    // but belong to no object yet.
    let upload = grid
        .sdk
        .create_upload("acct", "bkt", "mpu", PutOptions::default())
        .await
        .unwrap();
    let part_data = random(100_000);
    let part = grid
        .sdk
        .upload_part(
            "acct",
            "bkt",
            "mpu",
            &upload.upload_id,
            1,
            futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(part_data))]),
            None,
            None,
        )
        .await
        .unwrap();
    let part_rawx: HashSet<String> = part.chunks.iter().map(|c| c.rawx_id.clone()).collect();

    // The victim: among the rawx holding a chunk of the part, the one holding the most
    // object chunks.
    let mut per_rawx: HashMap<String, usize> = part_rawx.iter().map(|r| (r.clone(), 0)).collect();
    for (key, _) in &objects {
        let h = grid.sdk.head_object("acct", "bkt", key).await.unwrap();
        for c in &h.chunks {
            if let Some(n) = per_rawx.get_mut(&c.rawx_id) {
                *n += 1;
            }
        }
    }
    let (lost_id, lost_chunks) = per_rawx
        .iter()
        .max_by_key(|(id, n)| (**n, (*id).clone()))
        .map(|(id, n)| (id.clone(), *n))
        .unwrap();
    let x = grid.rawx.iter().position(|r| r.id == lost_id).unwrap();
    grid.stop_rawx(x).await.unwrap();
    std::fs::remove_dir_all(grid.rawx_volume(x)).unwrap();

    let calls = AtomicU64::new(0);
    let first_total = AtomicU64::new(u64::MAX);
    let report = grid
        .sdk
        .rebuild_rawx(&lost_id, |p| {
            if calls.fetch_add(1, Ordering::Relaxed) == 0 {
                first_total.store(p.total, Ordering::Relaxed);
            }
        })
        .await
        .unwrap();
    assert!(report.is_complete(), "failures: {:?}", report.failures);
    let total = lost_chunks as u64 + 1;
    assert_eq!(report.progress.total, total);
    assert_eq!(report.progress.done, lost_chunks as u64);
    assert_eq!(report.progress.skipped, 1, "the unfinished part's chunk");
    assert!(report.progress.bytes > 0);
    // Told the total up front, then once per chunk.
    assert_eq!(first_total.load(Ordering::Relaxed), total);
    assert_eq!(calls.load(Ordering::Relaxed), total + 1);

    // Every record now names a live rawx, never the lost one, and a metachunk's
    // chunks are still on distinct rawx.
    let live: HashSet<String> = grid
        .rawx
        .iter()
        .filter(|r| r.id != lost_id)
        .map(|r| r.id.clone())
        .collect();
    for (key, _) in &objects {
        let h = grid.sdk.head_object("acct", "bkt", key).await.unwrap();
        let mut seen: HashSet<(u32, String)> = HashSet::new();
        for c in &h.chunks {
            assert_ne!(c.rawx_id, lost_id, "{key} still lists the lost rawx");
            assert!(
                live.contains(&c.rawx_id),
                "{key}: unknown rawx {}",
                c.rawx_id
            );
            assert!(
                seen.insert((c.metachunk, c.rawx_id.clone())),
                "{key}: two chunks of metachunk {} on {}",
                c.metachunk,
                c.rawx_id
            );
        }
    }

    // Any two more rawx gone: EC 4+2 and three copies still read back byte for byte,
    // which needs the rebuilt chunks wherever the stopped ones held fragments. Every
    // pair of the six others is tried.
    let others: Vec<usize> = (0..grid.rawx.len()).filter(|&i| i != x).collect();
    let mut pairs = 0;
    for (n, &a) in others.iter().enumerate() {
        for &b in &others[n + 1..] {
            grid.stop_rawx(a).await.unwrap();
            grid.stop_rawx(b).await.unwrap();
            for (key, data) in &objects {
                let got = grid.get("acct", "bkt", key, 0, None).await.unwrap();
                assert!(
                    got == *data,
                    "{key} differs after the rebuild with rawx {a} and {b} stopped"
                );
            }
            grid.restart_rawx(a).unwrap();
            grid.restart_rawx(b).unwrap();
            pairs += 1;
        }
    }
    assert_eq!(pairs, 15);

    // Nothing left to do but the unfinished part, skipped again.
    let again = grid.sdk.rebuild_rawx(&lost_id, |_| {}).await.unwrap();
    assert_eq!(again.progress.total, 1);
    assert_eq!((again.progress.done, again.progress.skipped), (0, 1));
    assert!(again.is_complete());
    // Once the upload is aborted the lost rawx is listed nowhere.
    grid.sdk
        .abort_upload("acct", "bkt", "mpu", &upload.upload_id)
        .await
        .unwrap();
    let last = grid.sdk.rebuild_rawx(&lost_id, |_| {}).await.unwrap();
    assert_eq!(last.progress.total, 0);
}
