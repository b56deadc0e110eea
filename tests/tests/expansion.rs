//! Growing a grid needs no rebalancing: empty rawx added to a running grid score
//! higher than the filled ones (their `space` is larger) and take most new chunks,
//! while every chunk already written stays where it is.

use oxio_tests::{GridSpec, TestGrid};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Volume capacity of every rawx: the first 200 objects fill it to about 86 %.
const CAPACITY: u64 = 8_600_000;
/// First objects: 128 KiB, EC 4+2 fragments of 32 KiB (one per rawx of six).
const OLD_SIZE: usize = 128 * 1024;
const OLD_COUNT: usize = 200;
/// Objects written after the expansion: 36 KiB, just above the inline limit.
const NEW_SIZE: usize = 36 * 1024;
const NEW_COUNT: usize = 100;

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect()
}

/// (rawx id, chunk id) of every chunk of `key`.
async fn chunks_of(grid: &TestGrid, key: &str) -> Vec<(String, String)> {
    let h = grid.sdk.head_object("acct", "bkt", key).await.unwrap();
    assert_eq!(h.policy, "EC42", "{key} must be erasure coded");
    h.chunks
        .iter()
        .map(|c| (c.rawx_id.clone(), c.chunk_id.clone()))
        .collect()
}

async fn scores(grid: &TestGrid) -> HashMap<String, i32> {
    grid.sdk
        .list_services("rawx")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|s| s.info.map(|i| (i.id, if s.up { s.score } else { 0 })))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_rawx_take_new_writes_and_old_chunks_stay() {
    let mut grid = TestGrid::start_with(GridSpec {
        rawx: 6,
        rawx_capacity: Some(CAPACITY),
        ..Default::default()
    })
    .await
    .unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();
    let mut before = HashMap::new();
    for i in 0..OLD_COUNT {
        let key = format!("old-{i:03}");
        grid.put("acct", "bkt", &key, &pattern(OLD_SIZE, i))
            .await
            .unwrap();
        before.insert(key.clone(), chunks_of(&grid, &key).await);
    }

    let old_ids: HashSet<String> = (0..6).map(|i| format!("rawx-{i}")).collect();
    grid.add_rawx(6, Some(CAPACITY)).unwrap();
    grid.wait_rawx_up(12).await.unwrap();
    // New services start low and rise step by step: wait until the empty ones score
    // well above the filled ones (cube root of 100 % against about 14 % free: about
    // 1.9 times at equal cpu and io), as they will for as long as they hold less.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = scores(&grid).await;
        let (mut min_new, mut max_old) = (i32::MAX, 0);
        for (id, &sc) in &s {
            if old_ids.contains(id) {
                max_old = max_old.max(sc);
            } else {
                min_new = min_new.min(sc);
            }
        }
        if s.len() == 12 && max_old > 0 && min_new as f64 >= 1.5 * max_old as f64 {
            eprintln!("scores after expansion: {s:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new rawx never clearly outscored the filled ones: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut per_rawx: HashMap<String, usize> = HashMap::new();
    let mut on_new = 0usize;
    let mut total = 0usize;
    for i in 0..NEW_COUNT {
        let key = format!("new-{i:03}");
        grid.put("acct", "bkt", &key, &pattern(NEW_SIZE, i))
            .await
            .unwrap();
        for (rawx, _) in chunks_of(&grid, &key).await {
            total += 1;
            if !old_ids.contains(&rawx) {
                on_new += 1;
            }
            *per_rawx.entry(rawx).or_default() += 1;
        }
    }
    let share = on_new as f64 / total as f64;
    eprintln!(
        "chunks written after adding 6 empty rawx to 6 filled ones: {on_new} of {total} \
         ({:.1} %) on the new ones; per rawx: {per_rawx:?}",
        100.0 * share
    );
    // Equal scores would give 50 %; the filled rawx (about 14 % free against 100 %)
    // score lower, so the new ones take most chunks (about 62 % expected).
    assert!(
        share > 0.55,
        "new writes must land mostly on the new rawx: {:.1} %",
        100.0 * share
    );

    // Nothing already written moved: same rawx, same chunk ids, files still in place,
    // and no old chunk id on a new volume.
    let new_volumes: Vec<_> = (6..12).map(|i| grid.rawx_volume(i)).collect();
    for (key, chunks) in &before {
        assert_eq!(&chunks_of(&grid, key).await, chunks, "{key} changed");
        for (rawx, chunk) in chunks {
            let i: usize = rawx.trim_start_matches("rawx-").parse().unwrap();
            let upper = chunk.to_uppercase();
            let path = grid.rawx_volume(i).join(&upper[..3]).join(&upper);
            assert!(path.exists(), "{key}: chunk file {path:?} is gone");
            for v in &new_volumes {
                assert!(
                    !v.join(&upper[..3]).join(&upper).exists(),
                    "{key}: chunk {chunk} was copied to {v:?}"
                );
            }
        }
    }
    for i in (0..OLD_COUNT).step_by(20) {
        let key = format!("old-{i:03}");
        let got = grid.get("acct", "bkt", &key, 0, None).await.unwrap();
        assert!(got == pattern(OLD_SIZE, i), "{key} reads back different");
    }
}
