//! Bit rot on disk: with up to m = 2 fragments of every EC 4+2 metachunk damaged in
//! place, full and range reads still return the right bytes, and a scrub of every
//! rawx reports each damaged fragment exactly once and nothing else.

use oxio_rawx::scrub::ScrubStatus;
use oxio_tests::{random_bytes as random, TestGrid};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Size of the chunk file header: data starts here.
const HEADER_BYTES: u64 = 4096;
/// Largest answer read from a rawx.
const MAX_ANSWER_BYTES: u64 = 16 * 1024 * 1024;

/// One HTTP/1.1 request without a body, `connection: close`; answers (status, body).
async fn rawx_http(addr: SocketAddr, method: &str, path: &str) -> (u16, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        (&mut s).take(MAX_ANSWER_BYTES).read_to_end(&mut raw),
    )
    .await
    .unwrap()
    .unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let line = std::str::from_utf8(&raw[..end]).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    (status, raw[end + 4..].to_vec())
}

async fn scrub_status(addr: SocketAddr) -> ScrubStatus {
    let (status, body) = rawx_http(addr, "GET", "/scrub").await;
    assert_eq!(status, 200);
    ScrubStatus::from_json(&body).unwrap()
}

/// Flips one data byte of a chunk file in place.
fn flip(path: &std::path::Path, offset: u64) {
    let mut raw = std::fs::read(path).unwrap();
    raw[offset as usize] ^= 0x20;
    std::fs::write(path, raw).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_scrub_survive_bit_rot() {
    let grid = TestGrid::start(6).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();
    let index: BTreeMap<String, usize> = grid
        .rawx
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();
    let sizes = [40_000usize, (1 << 20) + 3, 5 * (1 << 20) + 777];
    let mut objects = Vec::new();
    // rawx index -> chunk ids flipped there
    let mut flipped: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (i, &n) in sizes.iter().enumerate() {
        let data = random(n);
        let key = format!("o{i}");
        let h = grid.put("acct", "bkt", &key, &data).await.unwrap();
        assert_eq!(h.policy, "EC42");
        // Two fragments of each metachunk, a different pair per object (data and
        // parity alike).
        let pair = [i % 6, (i + 3) % 6];
        for c in &h.chunks {
            if !pair.contains(&(c.fragment as usize)) {
                continue;
            }
            let r = index[&c.rawx_id];
            let id = c.chunk_id.to_ascii_uppercase();
            let path = grid.rawx_volume(r).join(&id[..3]).join(&id);
            assert!(c.size > 0, "fragment {} of {key} is empty", c.fragment);
            flip(&path, HEADER_BYTES + c.size / 2);
            flipped.entry(r).or_default().push(id);
        }
        objects.push((key, data));
    }
    assert!(flipped.values().map(Vec::len).sum::<usize>() >= 2 * sizes.len());

    // With 2 rotten fragments per metachunk.
    for (key, data) in &objects {
        grid.check_reads("acct", "bkt", key, data).await;
    }

    for r in 0..grid.rawx.len() {
        let addr = grid.rawx_addr(r);
        let before = scrub_status(addr).await.pass;
        let (status, _) = rawx_http(addr, "POST", "/scrub").await;
        assert_eq!(status, 202, "rawx {r}");
        let deadline = Instant::now() + Duration::from_secs(120);
        let st = loop {
            let st = scrub_status(addr).await;
            if st.pass > before && st.state == oxio_rawx::scrub::ScrubState::Idle {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "rawx {r}: scrub did not end: {st:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut reported: Vec<String> = st.corrupt.iter().map(|c| c.chunk_id.clone()).collect();
        reported.sort();
        let mut want = flipped.get(&r).cloned().unwrap_or_default();
        want.sort();
        assert_eq!(
            reported, want,
            "rawx {r}: scrub report differs from the damage"
        );
        assert!(st.checked_chunks >= want.len() as u64);
        for c in &st.corrupt {
            assert!(c.error.contains("checksum mismatch"), "{c:?}");
            assert_eq!(c.container.len(), 64, "{c:?}");
        }
    }
}
