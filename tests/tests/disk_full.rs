//! A full volume: writes move to the other rawx, the full one scores 0, nothing
//! stored is damaged, and deletes still work (and give the room back).

use oxio_tests::TestGrid;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Capacity of the small volume: about 16 fragments of the objects below.
const SMALL: u64 = 600_000;
/// 128 KiB objects: EC 4+2 fragments of 32 KiB.
const SIZE: usize = 128 * 1024;

fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 13 + seed * 29) % 253) as u8).collect()
}

/// Score and `space` of `id` as the conscience lists them.
async fn state(grid: &TestGrid, id: &str) -> (i32, f64) {
    let s = grid.sdk.list_services("rawx").await.unwrap();
    let s = s
        .into_iter()
        .find(|s| s.info.as_ref().is_some_and(|i| i.id == id))
        .unwrap();
    let space = s.info.unwrap().stats.get("space").copied().unwrap_or(-1.0);
    (s.score, space)
}

fn files_in(volume: &std::path::Path) -> (usize, usize) {
    let (mut chunks, mut pending) = (0, 0);
    for d in std::fs::read_dir(volume).unwrap().flatten() {
        if !d.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(".pending") {
                pending += 1;
            } else if name.len() == 64 {
                chunks += 1;
            }
        }
    }
    (chunks, pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_volume_takes_no_writes_and_deletes_still_work() {
    let mut grid = TestGrid::start(6).await.unwrap();
    grid.add_rawx(1, Some(SMALL)).unwrap();
    grid.wait_rawx_up(7).await.unwrap();
    let small = "rawx-6";
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();

    // Fill: six of seven rawx take each object, so the small volume fills quickly.
    let mut keys = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let i = keys.len();
        let key = format!("fill-{i:03}");
        grid.put("acct", "bkt", &key, &pattern(SIZE, i))
            .await
            .unwrap_or_else(|e| panic!("{key}: writes must go on while one volume fills: {e}"));
        keys.push(key);
        let (score, space) = state(&grid, small).await;
        if score == 0 && space < 5.0 {
            eprintln!(
                "{small} full after {} objects (space {space:.1} %)",
                keys.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline && keys.len() < 200,
            "{small} never scored 0: score {score}, space {space}"
        );
    }

    // Full: new writes all land elsewhere.
    for i in 0..20 {
        let key = format!("after-{i:02}");
        let h = grid
            .put("acct", "bkt", &key, &pattern(SIZE, 1000 + i))
            .await
            .unwrap();
        assert_eq!(h.chunks.len(), 6, "{key} has every fragment");
        assert!(
            h.chunks.iter().all(|c| c.rawx_id != small),
            "{key} got a chunk on the full volume"
        );
        keys.push(key);
    }

    // Nothing damaged, nothing half-written on the full volume.
    for (i, key) in keys.iter().enumerate() {
        let seed = if key.starts_with("fill") {
            i
        } else {
            1000 + i - (keys.len() - 20)
        };
        let got = grid.get("acct", "bkt", key, 0, None).await.unwrap();
        assert!(got == pattern(SIZE, seed), "{key} reads back different");
    }
    let volume = grid.rawx_volume(6);
    let (chunks_before, pending) = files_in(&volume);
    assert_eq!(pending, 0, "a refused write left a .pending file");
    assert!(chunks_before > 0);

    // Deletes work on the full volume and give its room back.
    let mut on_small = HashSet::new();
    for key in &keys {
        let h = grid.sdk.head_object("acct", "bkt", key).await.unwrap();
        if h.chunks.iter().any(|c| c.rawx_id == small) {
            on_small.insert(key.clone());
        }
    }
    for key in &on_small {
        grid.sdk.delete_object("acct", "bkt", key).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (chunks, _) = files_in(&volume);
        let (score, space) = state(&grid, small).await;
        if chunks == 0 && score > 0 {
            eprintln!(
                "deleted {} objects: {chunks_before} chunks gone from {small}, space {space:.1} %, score {score}",
                on_small.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after deletes {small} still has {chunks} chunks, score {score}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for key in keys.iter().filter(|k| !on_small.contains(*k)) {
        assert!(grid.sdk.head_object("acct", "bkt", key).await.is_ok());
    }
}
