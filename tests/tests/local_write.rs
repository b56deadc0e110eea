//! Local writes: with every rawx offering its local-write socket and the sdk using
//! them, erasure-coded and replicated objects of many sizes are written straight into
//! the chunk files, each chunk committed by its rawx (counted on both sides), and read
//! back right, over HTTP as well as locally; every chunk's hash is what the rawx
//! serves; a rawx without a write socket gets its chunk over HTTP.

use oxio_common::StoragePolicy;
use oxio_tests::{random_bytes as random, TestGrid};

async fn local_grid() -> TestGrid {
    TestGrid::start_local(true).await.unwrap()
}

/// Sum over the grid's rawx of `oxio_rawx_local_writes_total{result}`.
async fn rawx_local_writes(grid: &TestGrid, result: &str) -> u64 {
    grid.rawx_metric_sum(&format!(
        "oxio_rawx_local_writes_total{{result=\"{result}\"}}"
    ))
    .await
}

/// Every chunk of `h` answers an HTTP GET with the hash and size its record has.
async fn chunks_match_their_records(h: &oxio_sdk::ContentHeader) {
    for c in &h.chunks {
        let resp = reqwest::get(format!("http://{}/{}", c.addr, c.chunk_id))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "chunk {}", c.chunk_id);
        let hash = resp
            .headers()
            .get("x-oxio-chunk-hash")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert_eq!(
            hash.as_deref(),
            Some(c.hash.as_str()),
            "chunk {}",
            c.chunk_id
        );
        assert_eq!(resp.bytes().await.unwrap().len() as u64, c.size);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_are_written_into_their_files() {
    let grid = local_grid().await;
    for r in &grid.rawx {
        let sock = oxio_common::local_write::socket_path(
            &grid.dir.path().join("run"),
            &r.addr.to_string(),
        );
        assert!(sock.exists(), "{} has no write socket", r.id);
    }
    let counters = grid.sdk.config().counters.clone();
    // A stripe and a bit, several stripes with an odd tail, an exact block multiple.
    let sizes = [40_000usize, (1 << 20) + 3, 5 * (1 << 20) + 777, 4 << 20];
    let mut written = 0;
    for (i, &n) in sizes.iter().enumerate() {
        let data = random(n);
        let key = format!("ec{i}");
        let before = counters.local_writes();
        let h = grid.put("acct", "bkt", &key, &data).await.unwrap();
        assert_eq!(h.policy, "EC42");
        assert_eq!(h.chunks.len(), 6);
        assert_eq!(
            counters.local_writes() - before,
            6,
            "{key}: chunks written locally"
        );
        written += 6;
        grid.check_reads("acct", "bkt", &key, &data).await;
        chunks_match_their_records(&h).await;
    }
    let data = random(300_000);
    let copies = Some(StoragePolicy::Replicated { copies: 3 });
    let h = grid
        .put_with_policy("acct", "bkt", "rep", &data, copies)
        .await
        .unwrap();
    written += 3;
    grid.check_reads("acct", "bkt", "rep", &data).await;
    chunks_match_their_records(&h).await;
    assert_eq!(counters.local_writes(), written);
    assert_eq!(rawx_local_writes(&grid, "stored").await, written);
    assert_eq!(rawx_local_writes(&grid, "abandoned").await, 0);
    assert_eq!(counters.degraded_reads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rawx_without_a_write_socket_gets_its_chunk_over_http() {
    let grid = local_grid().await;
    let counters = grid.sdk.config().counters.clone();
    let r = &grid.rawx[2];
    let sock =
        oxio_common::local_write::socket_path(&grid.dir.path().join("run"), &r.addr.to_string());
    std::fs::remove_file(&sock).unwrap();
    let data = random(2 * (1 << 20) + 5);
    let h = grid.put("acct", "bkt", "o", &data).await.unwrap();
    assert_eq!(h.chunks.len(), 6);
    assert_eq!(counters.local_writes(), 5, "five chunks written locally");
    assert!(
        h.chunks.iter().any(|c| c.rawx_id == r.id),
        "the rawx without a socket still holds a chunk"
    );
    grid.check_reads("acct", "bkt", "o", &data).await;
    chunks_match_their_records(&h).await;
}
