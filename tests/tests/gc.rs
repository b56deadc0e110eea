//! Garbage collection: chunk files no meta2 record names (orphans) are deleted once
//! older than the grace period; recorded chunks, young orphans and every object's
//! bytes are left alone; a dry run deletes nothing.

use oxio_sdk::gc::GcOptions;
use oxio_tests::TestGrid;
use std::time::{Duration, SystemTime};

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + seed * 13) % 249) as u8).collect()
}

fn chunk_files(volume: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(volume).unwrap().flatten() {
        if d.path().is_dir() {
            for f in std::fs::read_dir(d.path()).unwrap().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.len() == 64 {
                    out.push(name);
                }
            }
        }
    }
    out.sort();
    out
}

/// Stores a chunk no record names, straight on the rawx, `age` old.
async fn plant_orphan(grid: &TestGrid, rawx: usize, id: &str, age: Duration) {
    let http = reqwest::Client::new();
    let r = http
        .put(format!("http://{}/{id}", grid.rawx_addr(rawx)))
        .body(vec![9u8; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let path = grid.rawx_volume(rawx).join(&id[..3]).join(id);
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_past_the_grace_period_are_removed() {
    let grid = TestGrid::start(6).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();
    for i in 0..8 {
        grid.put("acct", "bkt", &format!("k{i}"), &pattern(100_000, i))
            .await
            .unwrap();
    }
    let recorded = chunk_files(&grid.rawx_volume(2));
    assert_eq!(
        recorded.len(),
        8,
        "EC 4+2 on six rawx: one fragment of each object"
    );
    let old: Vec<String> = (0..3)
        .map(|n| format!("{:02X}", 0xE0 + n).repeat(32))
        .collect();
    for id in &old {
        plant_orphan(&grid, 2, id, Duration::from_secs(2 * 3600)).await;
    }
    let young = "D1".repeat(32);
    plant_orphan(&grid, 2, &young, Duration::ZERO).await;

    let dry = grid
        .sdk
        .collect_garbage(
            "rawx-2",
            GcOptions {
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            dry.listed,
            dry.recorded,
            dry.young,
            dry.orphans,
            dry.deleted
        ),
        (12, 8, 1, 3, 0)
    );
    assert_eq!(dry.orphan_ids, old);
    assert_eq!(
        chunk_files(&grid.rawx_volume(2)).len(),
        12,
        "a dry run deletes nothing"
    );

    let done = grid
        .sdk
        .collect_garbage("rawx-2", GcOptions::default())
        .await
        .unwrap();
    assert_eq!((done.orphans, done.deleted), (3, 3), "{done:?}");
    assert!(done.failures.is_empty());
    let mut left = recorded.clone();
    left.push(young.clone());
    left.sort();
    assert_eq!(chunk_files(&grid.rawx_volume(2)), left);
    for i in 0..8 {
        let got = grid
            .get("acct", "bkt", &format!("k{i}"), 0, None)
            .await
            .unwrap();
        assert!(got == pattern(100_000, i), "k{i} changed");
    }

    // With no grace at all the young orphan goes too, and deleted objects' chunks
    // (were their background delete lost) would be found the same way.
    let now = grid
        .sdk
        .collect_garbage(
            "rawx-2",
            GcOptions {
                grace: Duration::ZERO,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((now.orphans, now.deleted), (1, 1));
    assert_eq!(chunk_files(&grid.rawx_volume(2)), recorded);

    let err = grid
        .sdk
        .collect_garbage("rawx-99", GcOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rawx-99"), "{err}");
}
