//! The background scrubber over live servers (both drivers): `POST /scrub` starts a
//! pass, `GET /scrub` reports exactly the chunks damaged on disk, the pass stays under
//! the configured rate, and a disabled scrubber says so.

mod common;

use common::*;
use oxio_rawx::Driver;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CID: &str = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";
const HEADER_BYTES: usize = 4096;

fn put(addr: SocketAddr, id: &str, body: &[u8], position: &str) {
    let mut c = Client::connect(addr);
    let headers = [
        ("x-oxio-chunk-container", CID),
        ("x-oxio-chunk-content", "00112233445566778899aabbccddeeff"),
        ("x-oxio-chunk-position", position),
        ("x-oxio-chunk-policy", "EC42"),
    ];
    let r = c.request("PUT", &format!("/{id}"), &headers, Some(body));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

fn scrub_status(addr: SocketAddr) -> Value {
    let r = Client::connect(addr).request("GET", "/scrub", &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_slice(&r.body).unwrap()
}

fn post_scrub(addr: SocketAddr) -> u16 {
    Client::connect(addr)
        .request("POST", "/scrub", &[], None)
        .status
}

/// Waits until pass `pass` has completed and the scrubber is idle again.
fn wait_pass(addr: SocketAddr, pass: u64) -> Value {
    let mut last = Value::Null;
    let done = wait_until(Duration::from_secs(120), || {
        last = scrub_status(addr);
        last["pass"].as_u64() == Some(pass) && last["state"] == "idle"
    });
    assert!(done, "scrub pass {pass} did not end: {last}");
    last
}

fn flip(path: &std::path::Path, offset: usize) {
    let mut raw = std::fs::read(path).unwrap();
    raw[offset] ^= 0x01;
    std::fs::write(path, raw).unwrap();
}

fn chunk_file(volume: &std::path::Path, id: &str) -> std::path::PathBuf {
    let id = id.to_ascii_uppercase();
    volume.join(&id[..3]).join(id)
}

fn finds_exactly_the_damaged_chunks(driver: Driver) {
    let Some(srv) = start_fresh(driver) else {
        return;
    };
    let ids: Vec<String> = (1..=5u8).map(chunk_id).collect();
    for (i, id) in ids.iter().enumerate() {
        put(
            srv.addr,
            id,
            &data(100_000 + i, i as u32),
            &format!("0.{i}"),
        );
    }
    let st = scrub_status(srv.addr);
    assert_eq!(st["state"], "idle", "{st}");
    assert_eq!(st["pass"], 0);
    assert_eq!(st["corrupt"].as_array().unwrap().len(), 0);

    // a data byte of chunk 1 (segment 10) and the header of chunk 3
    flip(
        &chunk_file(&srv.volume, &ids[1]),
        HEADER_BYTES + 10 * 4096 + 5,
    );
    flip(&chunk_file(&srv.volume, &ids[3]), 0);
    let before: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| std::fs::read(chunk_file(&srv.volume, id)).unwrap())
        .collect();

    assert_eq!(post_scrub(srv.addr), 202);
    let st = wait_pass(srv.addr, 1);
    assert_eq!(st["checked_chunks"], 5, "{st}");
    assert!(st["checked_bytes"].as_u64().unwrap() >= 3 * 100_000, "{st}");
    let corrupt = st["corrupt"].as_array().unwrap();
    let mut found: Vec<&str> = corrupt
        .iter()
        .map(|c| c["chunk_id"].as_str().unwrap())
        .collect();
    found.sort();
    let mut want = vec![ids[1].to_ascii_uppercase(), ids[3].to_ascii_uppercase()];
    want.sort();
    assert_eq!(found, want, "{st}");
    let data_err = corrupt
        .iter()
        .find(|c| c["chunk_id"] == ids[1].to_ascii_uppercase().as_str())
        .unwrap();
    assert_eq!(data_err["container"], CID);
    assert_eq!(data_err["content"], "00112233445566778899aabbccddeeff");
    assert_eq!(data_err["position"], "0.1");
    assert!(data_err["error"].as_str().unwrap().contains("segment 10"));
    assert!(data_err["found_ms"].as_u64().unwrap() > 0);
    let header_err = corrupt
        .iter()
        .find(|c| c["chunk_id"] == ids[3].to_ascii_uppercase().as_str())
        .unwrap();
    assert!(header_err["error"].as_str().unwrap().contains("header"));
    // the magic is damaged but the metadata JSON still tells where the chunk belongs
    assert_eq!(header_err["position"], "0.3");

    // the scrubber changes nothing on disk
    for (id, raw) in ids.iter().zip(&before) {
        assert_eq!(&std::fs::read(chunk_file(&srv.volume, id)).unwrap(), raw);
    }
    let m = Client::connect(srv.addr).request("GET", "/metrics", &[], None);
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("oxio_rawx_scrub_corrupt_chunks_total 2"),
        "{text}"
    );
    assert!(text.contains("oxio_rawx_scrub_checked_chunks 5"), "{text}");
    assert!(text.contains("oxio_rawx_scrub_passes 1"), "{text}");

    // a second pass reports the same two chunks, once each
    assert_eq!(post_scrub(srv.addr), 202);
    let st = wait_pass(srv.addr, 2);
    assert_eq!(st["corrupt"].as_array().unwrap().len(), 2, "{st}");
    srv.stop();
}

fn rate_is_bounded(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path().join("vol"), driver);
    cfg.scrub_rate_bytes_per_s = 1024 * 1024;
    let Some(srv) = start(cfg, Some(tmp)) else {
        return;
    };
    for i in 0..3u8 {
        put(
            srv.addr,
            &chunk_id(i + 1),
            &data(1024 * 1024, u32::from(i)),
            "0",
        );
    }
    let t = Instant::now();
    assert_eq!(post_scrub(srv.addr), 202);
    // 3 MiB at 1 MiB/s runs for seconds: a second request meets the running pass.
    assert_eq!(post_scrub(srv.addr), 409);
    let st = wait_pass(srv.addr, 1);
    let wall = t.elapsed();
    let pass_ms =
        st["last_pass_end_ms"].as_u64().unwrap() - st["last_pass_start_ms"].as_u64().unwrap();
    assert!(pass_ms >= 2_000, "pass took {pass_ms} ms");
    assert!(wall >= Duration::from_secs(2), "{wall:?}");
    assert_eq!(st["checked_chunks"], 3);
    assert!(st["checked_bytes"].as_u64().unwrap() >= 3 * 1024 * 1024);
    assert_eq!(st["corrupt"].as_array().unwrap().len(), 0);
    srv.stop();
}

#[test]
fn scrub_finds_damage_polling() {
    finds_exactly_the_damaged_chunks(Driver::Polling);
}

#[test]
fn scrub_finds_damage_io_uring() {
    finds_exactly_the_damaged_chunks(Driver::IoUring);
}

#[test]
fn scrub_rate_polling() {
    rate_is_bounded(Driver::Polling);
}

#[test]
fn scrub_rate_io_uring() {
    rate_is_bounded(Driver::IoUring);
}

#[test]
fn disabled_scrubber_refuses_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path().join("vol"), Driver::Polling);
    cfg.scrub_rate_bytes_per_s = 0;
    let srv = start(cfg, Some(tmp)).unwrap();
    assert_eq!(scrub_status(srv.addr)["state"], "disabled");
    assert_eq!(post_scrub(srv.addr), 409);
    let r = Client::connect(srv.addr).request("DELETE", "/scrub", &[], None);
    assert_eq!(r.status, 405);
    srv.stop();
}
