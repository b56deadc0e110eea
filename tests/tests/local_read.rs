//! Short-circuit local reads: with every rawx offering its local-read socket and the
//! sdk looking there, whole and range reads of erasure-coded and replicated objects
//! return the right bytes from the chunk files, without any HTTP fallback, each file
//! handed over once and kept open for the reads after; a fragment
//! damaged on disk is caught by the sdk's own checksum check, read again over HTTP
//! (where the rawx finds and counts the damage) and decoded around; a range read
//! that fails partway resumes over HTTP from its first byte not handed out; a rawx
//! without a socket is read over HTTP.

use oxio_common::StoragePolicy;
use oxio_tests::{random_bytes as random, TestGrid};
use std::net::SocketAddr;

/// Size of the chunk file header: data starts here.
const HEADER_BYTES: u64 = 4096;

async fn local_grid() -> TestGrid {
    TestGrid::start_local(false).await.unwrap()
}

/// The value of the unlabelled counter `name` in a rawx's `/metrics`.
async fn rawx_counter(addr: SocketAddr, name: &str) -> u64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from the metrics of {addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_are_read_from_their_files() {
    let grid = local_grid().await;
    for r in &grid.rawx {
        let sock =
            oxio_common::local_read::socket_path(&grid.dir.path().join("run"), &r.addr.to_string());
        assert!(
            sock.exists(),
            "{} has no socket at {}",
            r.id,
            sock.display()
        );
    }
    let counters = grid.sdk.config().counters.clone();
    let sizes = [40_000usize, (1 << 20) + 3, 5 * (1 << 20) + 777];
    for (i, &n) in sizes.iter().enumerate() {
        let data = random(n);
        let key = format!("ec{i}");
        let h = grid.put("acct", "bkt", &key, &data).await.unwrap();
        assert_eq!(h.policy, "EC42");
        let before = counters.local_reads();
        grid.check_reads("acct", "bkt", &key, &data).await;
        assert!(
            counters.local_reads() >= before + 6 * 4,
            "{key}: {} local chunk reads for 6 reads of 4 data fragments",
            counters.local_reads() - before
        );
    }
    let data = random(300_000);
    let copies = Some(StoragePolicy::Replicated { copies: 3 });
    grid.put_with_policy("acct", "bkt", "rep", &data, copies)
        .await
        .unwrap();
    let before = counters.local_reads();
    grid.check_reads("acct", "bkt", "rep", &data).await;
    assert!(counters.local_reads() >= before + 6);
    assert_eq!(counters.local_fallbacks(), 0);
    assert_eq!(counters.degraded_reads(), 0);
    // Each file was handed over once: the later reads of a chunk used the file the
    // sdk kept open. The 12 data fragments of the three EC objects, and one to three
    // of the replicated object's copies.
    let opens = grid
        .rawx_metric_sum("oxio_rawx_local_opens_total{result=\"open\"}")
        .await;
    assert!(
        (13..=15).contains(&opens),
        "{opens} chunk files handed over by the rawx"
    );
    assert!(
        counters.local_reads() > opens,
        "{} local reads, {opens} files handed over",
        counters.local_reads()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_fragment_goes_back_to_http_and_is_decoded_around() {
    let grid = local_grid().await;
    let counters = grid.sdk.config().counters.clone();
    let data = random(3 * (1 << 20) + 5);
    let h = grid.put("acct", "bkt", "o", &data).await.unwrap();
    // Damage data fragment 1 in the middle of its file.
    let c = h.chunks.iter().find(|c| c.fragment == 1).unwrap();
    let r = grid.rawx.iter().position(|r| r.id == c.rawx_id).unwrap();
    let id = c.chunk_id.to_ascii_uppercase();
    let path = grid.rawx_volume(r).join(&id[..3]).join(&id);
    let mut raw = std::fs::read(&path).unwrap();
    raw[(HEADER_BYTES + c.size / 2) as usize] ^= 0x20;
    std::fs::write(&path, raw).unwrap();
    let failures = "oxio_rawx_chunk_checksum_failures_total";
    let rawx_before = rawx_counter(grid.rawx_addr(r), failures).await;

    let got = grid.get("acct", "bkt", "o", 0, None).await.unwrap();
    assert!(got == data, "read with one damaged fragment differs");
    assert_eq!(
        counters.local_fallbacks(),
        1,
        "the damage sends one read to HTTP"
    );
    assert_eq!(counters.degraded_reads(), 1, "and the stripe is decoded");
    // The rawx itself saw the damage on the HTTP read.
    assert!(rawx_counter(grid.rawx_addr(r), failures).await > rawx_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_read_that_fails_across_a_window_resumes_where_it_stopped() {
    // A replicated range read takes pieces that do not fall on the local reader's
    // 4 MiB windows. The first copy is damaged at 5 MiB, inside its second window:
    // the piece that crosses into that window fails, and the read goes on over HTTP
    // from the piece's first byte, not from the window's, until the rawx cuts the
    // body at the damage and the next copy takes over.
    let grid = local_grid().await;
    let counters = grid.sdk.config().counters.clone();
    let data = random(6 * (1 << 20) + 11);
    let copies = Some(StoragePolicy::Replicated { copies: 3 });
    let h = grid
        .put_with_policy("acct", "bkt", "rep", &data, copies)
        .await
        .unwrap();
    let c = &h.chunks[0];
    let r = grid.rawx.iter().position(|r| r.id == c.rawx_id).unwrap();
    let id = c.chunk_id.to_ascii_uppercase();
    let path = grid.rawx_volume(r).join(&id[..3]).join(&id);
    let mut raw = std::fs::read(&path).unwrap();
    raw[(HEADER_BYTES + 5 * (1 << 20) + 3) as usize] ^= 0x20;
    std::fs::write(&path, raw).unwrap();

    let from = 100u64;
    let got = grid.get("acct", "bkt", "rep", from, None).await.unwrap();
    assert_eq!(got.len(), data.len() - from as usize);
    let first_bad = got
        .iter()
        .zip(&data[from as usize..])
        .position(|(a, b)| a != b);
    assert_eq!(first_bad, None, "bytes from offset {from} differ");
    assert!(counters.local_fallbacks() >= 1, "the damage went unseen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rawx_without_a_socket_is_read_over_http() {
    let grid = local_grid().await;
    let counters = grid.sdk.config().counters.clone();
    let data = random(2 * (1 << 20));
    let h = grid.put("acct", "bkt", "o", &data).await.unwrap();
    let c = h.chunks.iter().find(|c| c.fragment == 0).unwrap();
    let r = grid.rawx.iter().find(|r| r.id == c.rawx_id).unwrap();
    let sock =
        oxio_common::local_read::socket_path(&grid.dir.path().join("run"), &r.addr.to_string());
    std::fs::remove_file(&sock).unwrap();
    let before = counters.local_reads();
    let got = grid.get("acct", "bkt", "o", 0, None).await.unwrap();
    assert!(got == data);
    assert_eq!(
        counters.local_reads() - before,
        3,
        "three fragments read locally"
    );
    assert_eq!(counters.local_fallbacks(), 0);
    assert_eq!(counters.degraded_reads(), 0);
}
