//! Deleting an object deletes its chunks through meta2's durable queue: every chunk
//! goes, a chunk whose rawx is down stays queued and is deleted once the rawx is
//! back, and the directory counts what it deleted and what failed.

use oxio_tests::TestGrid;
use std::time::{Duration, Instant};

fn chunk_files(volume: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(volume) else {
        return out;
    };
    for d in dirs.flatten() {
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

async fn wait_for(what: &str, deadline: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !ok() {
        assert!(Instant::now() < until, "{what} after {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_objects_lose_their_chunks_even_across_a_rawx_outage() {
    let mut grid = TestGrid::start(6).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();
    let data: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
    grid.put("acct", "bkt", "a", &data).await.unwrap();
    grid.put("acct", "bkt", "b", &data).await.unwrap();
    let volumes: Vec<_> = (0..6).map(|i| grid.rawx_volume(i)).collect();
    let count = || volumes.iter().map(|v| chunk_files(v).len()).sum::<usize>();
    assert_eq!(count(), 12, "two EC 4+2 objects");

    // A delete while every rawx is up: the six chunks go.
    grid.sdk.delete_object("acct", "bkt", "a").await.unwrap();
    wait_for("a's chunks deleted", Duration::from_secs(20), || {
        count() == 6
    })
    .await;

    // rawx-0 is down when b is deleted: its chunk stays, the other five go.
    let on_0 = chunk_files(&volumes[0]);
    assert_eq!(on_0.len(), 1);
    grid.stop_rawx(0).await.unwrap();
    grid.sdk.delete_object("acct", "bkt", "b").await.unwrap();
    wait_for(
        "b's reachable chunks deleted",
        Duration::from_secs(20),
        || volumes[1..].iter().all(|v| chunk_files(v).is_empty()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        chunk_files(&volumes[0]),
        on_0,
        "deleted while its rawx was down?"
    );

    // Back up: the queued delete is retried and done.
    grid.restart_rawx(0).unwrap();
    wait_for(
        "the queued chunk deleted once its rawx is back",
        Duration::from_secs(90),
        || chunk_files(&volumes[0]).is_empty(),
    )
    .await;
}
