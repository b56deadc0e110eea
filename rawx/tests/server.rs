//! Live server tests on 127.0.0.1:0 with a plain std TcpStream client, run under both
//! the polling and the io_uring driver.

mod common;

use common::*;
use oxio_rawx::Driver;
use std::time::Duration;

fn crc_hex(d: &[u8]) -> String {
    format!("crc32c:{:08x}", crc32c::crc32c(d))
}

fn put_get_ranges_head_delete(driver: Driver) {
    let Some(srv) = start_fresh(driver) else {
        return;
    };
    let mut c = Client::connect(srv.addr);
    let id = chunk_id(0xab);
    let body = data(300_000, 1);
    // lower-case id in the URL is accepted and stored upper-case
    let r = c.request("PUT", &format!("/{id}"), &put_headers(), Some(&body));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-oxio-chunk-size"), Some("300000"));
    assert_eq!(r.header("x-oxio-chunk-hash"), Some(crc_hex(&body).as_str()));
    let upper = id.to_ascii_uppercase();
    let files = volume_files(&srv.volume);
    assert_eq!(files, vec![upper.clone()]);

    // full GET on the same connection (keep-alive)
    let r = c.request("GET", &format!("/{upper}"), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    assert_eq!(r.header("x-oxio-chunk-container"), Some(CID));
    assert_eq!(
        r.header("x-oxio-chunk-content"),
        Some("00112233445566778899aabbccddeeff")
    );
    assert_eq!(r.header("x-oxio-chunk-position"), Some("3.1"));
    assert_eq!(r.header("x-oxio-chunk-policy"), Some("EC42"));
    assert_eq!(r.header("x-oxio-chunk-size"), Some("300000"));
    assert_eq!(r.header("x-oxio-chunk-hash"), Some(crc_hex(&body).as_str()));

    // ranges: across segment boundaries (4 KiB segments), open-ended, suffix
    for (spec, a, b) in [
        ("bytes=4000-9000", 4000usize, 9000usize),
        ("bytes=0-0", 0, 0),
        ("bytes=4096-8191", 4096, 8191),
        ("bytes=299990-", 299_990, 299_999),
        ("bytes=-100", 299_900, 299_999),
        ("bytes=1000-999999", 1000, 299_999),
        ("bytes=100000-299999", 100_000, 299_999),
    ] {
        let r = c.request("GET", &format!("/{id}"), &[("range", spec)], None);
        assert_eq!(r.status, 206, "{spec}");
        assert_eq!(r.body, &body[a..=b], "{spec}");
        let want = format!("bytes {a}-{b}/300000");
        assert_eq!(r.header("content-range"), Some(want.as_str()), "{spec}");
    }
    let r = c.request(
        "GET",
        &format!("/{id}"),
        &[("range", "bytes=300000-")],
        None,
    );
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */300000"));

    // HEAD: headers without a body; the next request on the connection still parses
    let r = c.request("HEAD", &format!("/{id}"), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("300000"));
    assert_eq!(r.header("x-oxio-chunk-policy"), Some("EC42"));
    assert!(r.body.is_empty());

    // duplicate id
    let r = c.request("PUT", &format!("/{upper}"), &put_headers(), Some(b"other"));
    assert_eq!(r.status, 409);
    let mut c = Client::connect(srv.addr);

    // /info
    let r = c.request("GET", "/info", &[], None);
    assert_eq!(r.status, 200);
    let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(info["id"], "rawx-test");
    assert_eq!(info["chunks"], 1);
    assert!(info["bytes"].as_u64().unwrap() > 300_000);
    assert_eq!(info["driver"], srv_driver(driver));

    // DELETE, then 404s
    let r = c.request("DELETE", &format!("/{id}"), &[], None);
    assert_eq!(r.status, 204);
    let r = c.request("GET", &format!("/{id}"), &[], None);
    assert_eq!(r.status, 404);
    let r = c.request("HEAD", &format!("/{id}"), &[], None);
    assert_eq!(r.status, 404);
    let r = c.request("DELETE", &format!("/{id}"), &[], None);
    assert_eq!(r.status, 404);
    let r = c.request("GET", "/info", &[], None);
    let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(info["chunks"], 0);
    assert!(volume_files(&srv.volume).is_empty());
    srv.stop();
}

fn srv_driver(d: Driver) -> &'static str {
    match d {
        Driver::IoUring => "io_uring",
        _ => "polling",
    }
}

fn chunked_put(driver: Driver) {
    let Some(srv) = start_fresh(driver) else {
        return;
    };
    let mut c = Client::connect(srv.addr);
    let id = chunk_id(0x11);
    let body = data(70_000, 2);
    let mut req = format!(
        "PUT /{id} HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\nx-oxio-chunk-policy: EC42\r\nx-oxio-chunk-position: 7\r\n\r\n"
    )
    .into_bytes();
    let mut off = 0;
    for (i, size) in [1usize, 4095, 4097, 10_000, 51_807].iter().enumerate() {
        if i == 2 {
            req.extend_from_slice(format!("{size:X};ext=1\r\n").as_bytes());
        } else {
            req.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        }
        req.extend_from_slice(&body[off..off + size]);
        req.extend_from_slice(b"\r\n");
        off += size;
    }
    assert_eq!(off, body.len());
    req.extend_from_slice(b"0\r\nx-trailer: yes\r\n\r\n");
    // send in small pieces to exercise the framing across reads
    for piece in req.chunks(1000) {
        c.send(piece);
    }
    let r = c.read_response(false);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-oxio-chunk-size"), Some("70000"));
    assert_eq!(r.header("x-oxio-chunk-hash"), Some(crc_hex(&body).as_str()));
    // keep-alive after a chunked body
    let r = c.request("GET", &format!("/{id}"), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    assert_eq!(r.header("x-oxio-chunk-position"), Some("7"));
    // empty chunked body is an empty chunk
    let id2 = chunk_id(0x12);
    c.send(
        format!("PUT /{id2} HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n").as_bytes(),
    );
    let r = c.read_response(false);
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-oxio-chunk-size"), Some("0"));
    let r = c.request("GET", &format!("/{id2}"), &[], None);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    srv.stop();
}

fn cut_off_put_leaves_nothing(driver: Driver) {
    let Some(srv) = start_fresh(driver) else {
        return;
    };
    let id = chunk_id(0x22);
    {
        let mut c = Client::connect(srv.addr);
        c.send(format!("PUT /{id} HTTP/1.1\r\ncontent-length: 100000\r\n\r\n").as_bytes());
        c.send(&data(30_000, 3));
        // wait until the server has created the pending file, then drop the connection
        assert!(wait_until(Duration::from_secs(10), || !volume_files(
            &srv.volume
        )
        .is_empty()));
        c.shutdown_write();
        let rest = c.read_to_close();
        assert!(rest.is_empty(), "no answer to a cut-off body");
    }
    assert!(wait_until(Duration::from_secs(10), || volume_files(
        &srv.volume
    )
    .is_empty()));
    // the same with a chunked body cut inside a chunk
    {
        let mut c = Client::connect(srv.addr);
        c.send(
            format!("PUT /{id} HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n10000\r\n").as_bytes(),
        );
        c.send(&data(1000, 4));
        assert!(wait_until(Duration::from_secs(10), || !volume_files(
            &srv.volume
        )
        .is_empty()));
        drop(c);
    }
    assert!(wait_until(Duration::from_secs(10), || volume_files(
        &srv.volume
    )
    .is_empty()));
    let mut c = Client::connect(srv.addr);
    let r = c.request("GET", &format!("/{id}"), &[], None);
    assert_eq!(r.status, 404);
    // and the id can still be written afterwards
    let r = c.request("PUT", &format!("/{id}"), &[], Some(b"hello"));
    assert_eq!(r.status, 201);
    srv.stop();
}

fn bad_requests(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path().join("vol"), driver);
    cfg.max_chunk_bytes = 100_000;
    let Some(srv) = start(cfg, Some(tmp)) else {
        return;
    };
    let mut c = Client::connect(srv.addr);
    assert_eq!(c.request("GET", "/nothex", &[], None).status, 400);
    assert_eq!(
        c.request("GET", &format!("/{}", "g".repeat(64)), &[], None)
            .status,
        400
    );
    assert_eq!(c.request("GET", "/", &[], None).status, 400);
    assert_eq!(
        c.request("POST", &format!("/{}", chunk_id(1)), &[], None)
            .status,
        405
    );
    assert_eq!(
        c.request("GET", &format!("/{}", chunk_id(1)), &[], None)
            .status,
        404
    );
    let r = c.request(
        "GET",
        &format!("/{}", chunk_id(1)),
        &[("range", "bytes=x")],
        None,
    );
    assert_eq!(r.status, 404, "unknown chunk before range parsing");
    let r = c.request(
        "PUT",
        &format!("/{}", chunk_id(2)),
        &[("x-oxio-chunk-position", "a.b")],
        Some(b"x"),
    );
    assert_eq!(r.status, 400);
    // PUT without a length
    let mut c = Client::connect(srv.addr);
    c.send(format!("PUT /{} HTTP/1.1\r\n\r\n", chunk_id(3)).as_bytes());
    assert_eq!(c.read_response(false).status, 411);
    // too large by Content-Length: rejected before the body
    let mut c = Client::connect(srv.addr);
    c.send(
        format!(
            "PUT /{} HTTP/1.1\r\ncontent-length: 100001\r\n\r\n",
            chunk_id(4)
        )
        .as_bytes(),
    );
    let r = c.read_response(false);
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    // too large while streaming a chunked body
    let mut c = Client::connect(srv.addr);
    let mut req = format!(
        "PUT /{} HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
        chunk_id(5)
    )
    .into_bytes();
    for _ in 0..30 {
        req.extend_from_slice(b"1000\r\n");
        req.extend_from_slice(&[7u8; 4096]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.send(&req);
    assert_eq!(c.read_response(false).status, 413);
    assert!(wait_until(Duration::from_secs(10), || volume_files(
        &srv.volume
    )
    .is_empty()));
    // oversized head
    let mut c = Client::connect(srv.addr);
    let big = format!(
        "GET /info HTTP/1.1\r\nx-big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    c.send(big.as_bytes());
    assert_eq!(c.read_response(false).status, 431);
    // garbage request line
    let mut c = Client::connect(srv.addr);
    c.send(b"HELLO\r\n\r\n");
    assert_eq!(c.read_response(false).status, 400);
    srv.stop();
}

fn corruption_detected(driver: Driver) {
    let Some(srv) = start_fresh(driver) else {
        return;
    };
    let mut c = Client::connect(srv.addr);
    let id = chunk_id(0x33).to_ascii_uppercase();
    let body = data(600_000, 5);
    assert_eq!(
        c.request("PUT", &format!("/{id}"), &[], Some(&body)).status,
        201
    );
    let path = srv.volume.join(&id[..3]).join(&id);
    // flip one data byte in segment 100 (bytes 409600..413696), after the first 256 KiB piece
    let mut file = std::fs::read(&path).unwrap();
    file[4096 + 410_000] ^= 0x40;
    std::fs::write(&path, &file).unwrap();

    // a range inside the bad segment: 500 before any body
    let r = c.request(
        "GET",
        &format!("/{id}"),
        &[("range", "bytes=409700-409800")],
        None,
    );
    assert_eq!(r.status, 500);
    assert_eq!(r.header("x-oxio-error"), Some("checksum-mismatch"));
    // ranges touching only intact segments still work
    let r = c.request(
        "GET",
        &format!("/{id}"),
        &[("range", "bytes=0-409599")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &body[..409_600]);
    let r = c.request(
        "GET",
        &format!("/{id}"),
        &[("range", "bytes=413696-")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &body[413_696..]);
    // HEAD only validates the header
    assert_eq!(c.request("HEAD", &format!("/{id}"), &[], None).status, 200);
    // full GET: head goes out (first piece intact), the body stops short and the
    // connection closes
    c.send(format!("GET /{id} HTTP/1.1\r\n\r\n").as_bytes());
    let r = c.read_response(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("600000"));
    let got = c.read_to_close();
    assert!(got.len() < 600_000 - 4096, "short body, got {}", got.len());
    assert_eq!(&got[..], &body[..got.len()]);

    // corruption inside the first piece: 500 for a full GET
    let mut c = Client::connect(srv.addr);
    let id2 = chunk_id(0x34).to_ascii_uppercase();
    assert_eq!(
        c.request("PUT", &format!("/{id2}"), &[], Some(&body[..10_000]))
            .status,
        201
    );
    let path2 = srv.volume.join(&id2[..3]).join(&id2);
    let mut file = std::fs::read(&path2).unwrap();
    file[4096 + 5000] ^= 1;
    std::fs::write(&path2, &file).unwrap();
    let r = c.request("GET", &format!("/{id2}"), &[], None);
    assert_eq!(r.status, 500);
    assert_eq!(r.header("x-oxio-error"), Some("checksum-mismatch"));
    // the connection survives a 500 on a GET
    let r = c.request(
        "GET",
        &format!("/{id2}"),
        &[("range", "bytes=0-4095")],
        None,
    );
    assert_eq!(r.status, 206);
    // Both damaged chunks found by reads are on the scrubber's corrupt list, the input
    // of `oxio volume scrub --repair`, with the header's ids when the header was read.
    let r = c.request("GET", "/scrub", &[], None);
    let status: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let listed: Vec<&serde_json::Value> = status["corrupt"].as_array().unwrap().iter().collect();
    for bad in [&id, &id2] {
        let e = listed
            .iter()
            .find(|e| e["chunk_id"] == bad.as_str())
            .unwrap_or_else(|| panic!("{bad} not listed: {status}"));
        assert!(e["error"].as_str().unwrap().contains("segment"), "{e}");
    }

    // garbage header
    file[2] = b'?';
    std::fs::write(&path2, &file).unwrap();
    let r = c.request("GET", &format!("/{id2}"), &[], None);
    assert_eq!(r.status, 500);
    assert_eq!(r.header("x-oxio-error"), Some("corrupt-header"));
    assert_eq!(c.request("HEAD", &format!("/{id2}"), &[], None).status, 500);
    // truncated file
    std::fs::write(&path2, &file[..8000]).unwrap();
    let r = c.request("GET", &format!("/{id2}"), &[], None);
    assert_eq!(r.header("x-oxio-error"), Some("corrupt-header"));

    let r = c.request("GET", "/info", &[], None);
    let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(info["checksum_errors"].as_u64().unwrap() >= 5);
    srv.stop();
}

fn restart_cleans_pending_and_counts(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let vol = tmp.path().join("vol");
    {
        let srv = start(config(vol.clone(), driver), None);
        let Some(srv) = srv else { return };
        let mut c = Client::connect(srv.addr);
        for i in 0..3 {
            assert_eq!(
                c.request(
                    "PUT",
                    &format!("/{}", chunk_id(i)),
                    &[],
                    Some(&data(5000, 9))
                )
                .status,
                201
            );
        }
        srv.stop();
    }
    let stale = vol
        .join("ABC")
        .join(format!("{}.pending", "ABC0".repeat(16)));
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, b"partial").unwrap();
    let srv = start(config(vol.clone(), driver), Some(tmp)).unwrap();
    assert!(!stale.exists());
    let mut c = Client::connect(srv.addr);
    let r = c.request("GET", "/info", &[], None);
    let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(info["chunks"], 3);
    let r = c.request("GET", &format!("/{}", chunk_id(1)), &[], None);
    assert_eq!(r.body, data(5000, 9));
    srv.stop();
}

fn shutdown_with_idle_connection(driver: Driver) {
    let Some(srv) = start_fresh(driver) else {
        return;
    };
    let mut c = Client::connect(srv.addr);
    assert_eq!(c.request("GET", "/info", &[], None).status, 200);
    // the keep-alive connection stays open while we stop the server
    let started = std::time::Instant::now();
    srv.stop();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "idle connections must not delay shutdown"
    );
    assert!(c.read_to_close().is_empty());
}

fn pending_files(volume: &std::path::Path) -> usize {
    let mut n = 0;
    for dir in std::fs::read_dir(volume).unwrap().flatten() {
        if dir.path().is_dir() {
            n += std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .filter(|f| f.file_name().to_string_lossy().ends_with(".pending"))
                .count();
        }
    }
    n
}

/// A volume with a capacity answers 507 once full (known and unknown lengths), keeps
/// no partial file, still serves and deletes, and takes writes again once room is made.
fn capacity_full_answers_507(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path().join("vol"), driver);
    cfg.capacity_bytes = Some(100_000);
    let Some(srv) = start(cfg, Some(tmp)) else {
        return;
    };
    let mut c = Client::connect(srv.addr);
    let h = put_headers();
    for n in 1..=2u8 {
        let r = c.request(
            "PUT",
            &format!("/{}", chunk_id(n)),
            &h,
            Some(&data(30_000, n as u32)),
        );
        assert_eq!(r.status, 201, "chunk {n} fits");
    }
    let r = c.request(
        "PUT",
        &format!("/{}", chunk_id(3)),
        &h,
        Some(&data(30_000, 3)),
    );
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-oxio-error"), Some("volume-full"));
    // Unknown length: refused while streaming, nothing left behind.
    let mut c = Client::connect(srv.addr);
    let body = data(30_000, 3);
    let mut req = format!("PUT /{} HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\nx-oxio-chunk-position: 1\r\n\r\n", chunk_id(4)).into_bytes();
    for piece in body.chunks(8192) {
        req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.send(&req);
    let r = c.read_response(false);
    assert_eq!(r.status, 507);
    assert_eq!(pending_files(&srv.volume), 0);
    let mut c = Client::connect(srv.addr);
    let r = c.request("GET", &format!("/{}", chunk_id(1)), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data(30_000, 1));
    assert_eq!(
        c.request("GET", &format!("/{}", chunk_id(3)), &[], None)
            .status,
        404
    );
    assert_eq!(
        c.request("DELETE", &format!("/{}", chunk_id(1)), &[], None)
            .status,
        204
    );
    let r = c.request(
        "PUT",
        &format!("/{}", chunk_id(3)),
        &h,
        Some(&data(30_000, 3)),
    );
    assert_eq!(r.status, 201, "room made by the delete is used again");
    srv.stop();
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// A `bytes`-large tmpfs, or `None` (with a note) where mounting is not allowed.
    fn mount(bytes: u64) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallFs { dir }),
            Ok(o) => {
                eprintln!(
                    "NOTE: cannot mount a tmpfs ({}), full file system test skipped",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("NOTE: no mount command ({e}), full file system test skipped");
                None
            }
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A volume on a file system that fills up (no capacity set): the write the file
/// system refuses (ENOSPC) answers 507 volume-full and leaves no partial file, the
/// chunks already there still read back, deletes work, and the room a delete makes
/// is used again.
fn filesystem_full_answers_507(driver: Driver) {
    let Some(fs) = SmallFs::mount(1 << 20) else {
        return;
    };
    let cfg = config(fs.dir.path().join("vol"), driver);
    let Some(srv) = start(cfg, None) else {
        return;
    };
    let mut c = Client::connect(srv.addr);
    let h = put_headers();
    let mut stored = Vec::new();
    let mut full = None;
    for n in 1..=20u8 {
        let mut c = Client::connect(srv.addr);
        let r = c.request(
            "PUT",
            &format!("/{}", chunk_id(n)),
            &h,
            Some(&data(200_000, n as u32)),
        );
        match r.status {
            201 => stored.push(n),
            507 => {
                assert_eq!(r.header("x-oxio-error"), Some("volume-full"));
                full = Some(n);
                break;
            }
            other => panic!("PUT {n}: {other} {}", String::from_utf8_lossy(&r.body)),
        }
    }
    let full = full.expect("a 1 MiB file system never filled up");
    assert!(!stored.is_empty(), "not even one chunk fit");
    assert_eq!(
        pending_files(&srv.volume),
        0,
        "a refused write left a partial file"
    );
    for &n in &stored {
        let r = c.request("GET", &format!("/{}", chunk_id(n)), &[], None);
        assert_eq!(r.status, 200, "chunk {n}");
        assert_eq!(r.body, data(200_000, n as u32));
    }
    assert_eq!(
        c.request("GET", &format!("/{}", chunk_id(full)), &[], None)
            .status,
        404
    );
    assert_eq!(
        c.request("DELETE", &format!("/{}", chunk_id(stored[0])), &[], None)
            .status,
        204
    );
    let r = c.request(
        "PUT",
        &format!("/{}", chunk_id(full)),
        &h,
        Some(&data(200_000, full as u32)),
    );
    assert_eq!(r.status, 201, "room made by the delete is used again");
    srv.stop();
    drop(fs);
}

/// With `direct_io` (O_DIRECT reads and writes): see [`direct_round_trip`].
fn direct_io_round_trip(driver: Driver) {
    direct_round_trip(driver, true);
}

/// With `direct_writes` only (the default; reads through the page cache): see
/// [`direct_round_trip`].
fn direct_writes_round_trip(driver: Driver) {
    direct_round_trip(driver, false);
}

/// O_DIRECT writes, and reads too when `direct_io`: chunks of every alignment
/// round-trip, ranges and the file layout match the buffered path, damage is still
/// detected, `/info` tells the mode, and a restarted service with neither reads
/// what the direct one wrote.
fn direct_round_trip(driver: Driver, direct_io: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let volume = tmp.path().join("vol");
    let mut cfg = config(volume.clone(), driver);
    cfg.direct_io = direct_io;
    cfg.direct_writes = true;
    std::fs::create_dir_all(&volume).unwrap();
    if let Err(e) = oxio_rawx::direct::probe(&volume) {
        eprintln!("NOTE: skipping direct I/O run, this file system refuses O_DIRECT: {e}");
        return;
    }
    let Some(srv) = start(cfg, None) else {
        return;
    };
    let mut c = Client::connect(srv.addr);
    let info = c.request("GET", "/info", &[], None);
    let info: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(info["direct_io"], direct_io, "{info}");
    assert_eq!(info["direct_writes"], true, "{info}");
    let sizes = [
        0usize,
        1,
        4095,
        4096,
        4097,
        70_000,
        (1 << 20) + 12_345,
        3 << 20,
    ];
    for (n, &size) in sizes.iter().enumerate() {
        let body = data(size, n as u32 + 40);
        let id = chunk_id(0x50 + n as u8).to_ascii_uppercase();
        let r = c.request("PUT", &format!("/{id}"), &put_headers(), Some(&body));
        assert_eq!(
            r.status,
            201,
            "size {size}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("x-oxio-chunk-hash"), Some(crc_hex(&body).as_str()));
        let file_len = std::fs::metadata(volume.join(&id[..3]).join(&id))
            .unwrap()
            .len();
        assert_eq!(
            file_len,
            oxio_rawx::format::file_len(size as u64, 4096),
            "size {size}"
        );
        let path = volume.join(&id[..3]).join(&id);
        assert_eq!(
            resident_pages(&path),
            0,
            "size {size}: written around the page cache"
        );
        let r = c.request("GET", &format!("/{id}"), &[], None);
        assert_eq!(r.status, 200);
        assert!(r.body == body, "size {size} reads back different");
        if size > 10_000 {
            let (a, b) = (size / 3, size / 3 + 9_000);
            let r = c.request(
                "GET",
                &format!("/{id}"),
                &[("range", &format!("bytes={a}-{b}"))],
                None,
            );
            assert_eq!(r.status, 206);
            assert!(r.body[..] == body[a..=b], "size {size}: range differs");
        }
    }
    // Damage in the last chunk is detected through the direct read path too.
    let id = chunk_id(0x50 + 7).to_ascii_uppercase();
    let path = volume.join(&id[..3]).join(&id);
    let mut file = std::fs::read(&path).unwrap();
    file[4096 + 2_000_000] ^= 0x08;
    std::fs::write(&path, &file).unwrap();
    let r = c.request(
        "GET",
        &format!("/{id}"),
        &[("range", "bytes=1999000-2001000")],
        None,
    );
    assert_eq!(r.status, 500);
    assert_eq!(r.header("x-oxio-error"), Some("checksum-mismatch"));
    srv.stop();
    // The same files through the buffered path.
    let mut cfg = config(volume.clone(), driver);
    cfg.direct_io = false;
    cfg.direct_writes = false;
    let Some(srv) = start(cfg, Some(tmp)) else {
        return;
    };
    let mut c = Client::connect(srv.addr);
    let id = chunk_id(0x50 + 6).to_ascii_uppercase();
    let r = c.request("GET", &format!("/{id}"), &[], None);
    assert_eq!(r.status, 200);
    assert!(r.body == data((1 << 20) + 12_345, 46));
    // A buffered write leaves its pages in the page cache, which the check above sees.
    let id = chunk_id(0x60).to_ascii_uppercase();
    let r = c.request(
        "PUT",
        &format!("/{id}"),
        &put_headers(),
        Some(&data(70_000, 9)),
    );
    assert_eq!(r.status, 201);
    assert!(resident_pages(&volume.join(&id[..3]).join(&id)) > 0);
    srv.stop();
}

/// Pages of the file at `path` held in the page cache (mincore over a mapping).
fn resident_pages(path: &std::path::Path) -> usize {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    if len == 0 {
        return 0;
    }
    let page = 4096;
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: a read-only shared mapping of `len` bytes of an open file, unmapped
    // before return; `vec` has one byte per page of it, as mincore requires.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED);
        assert_eq!(libc::mincore(map, len, vec.as_mut_ptr()), 0);
        libc::munmap(map, len);
    }
    vec.iter().filter(|b| *b & 1 == 1).count()
}

macro_rules! both_drivers {
    ($($name:ident),*) => {
        mod polling {
            $( #[test] fn $name() { super::$name(oxio_rawx::Driver::Polling) } )*
        }
        mod io_uring {
            $( #[test] fn $name() { super::$name(oxio_rawx::Driver::IoUring) } )*
        }
    };
}

both_drivers!(
    put_get_ranges_head_delete,
    chunked_put,
    cut_off_put_leaves_nothing,
    bad_requests,
    corruption_detected,
    restart_cleans_pending_and_counts,
    shutdown_with_idle_connection,
    capacity_full_answers_507,
    filesystem_full_answers_507,
    direct_io_round_trip,
    direct_writes_round_trip
);

#[test]
fn auto_driver_starts() {
    let srv = start_fresh(Driver::Auto).unwrap();
    let d = srv.started.as_ref().unwrap().driver;
    assert!(d == "io_uring" || d == "polling");
    let mut c = Client::connect(srv.addr);
    assert_eq!(c.request("GET", "/info", &[], None).status, 200);
    srv.stop();
}

/// Cancelling the shutdown token from a thread that is unwinding a panic (a Drop guard
/// in the host program) must stop the service, not abort the process.
#[test]
fn cancel_from_panicking_thread_does_not_abort() {
    let srv = start_fresh(Driver::Polling).unwrap();
    let mut c = Client::connect(srv.addr);
    assert_eq!(c.request("GET", "/info", &[], None).status, 200);
    struct CancelOnDrop(tokio_util::sync::CancellationToken);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.cancel();
        }
    }
    let token = srv.shutdown.clone();
    let t = std::thread::spawn(move || {
        let _guard = CancelOnDrop(token);
        panic!("host program panics");
    });
    assert!(t.join().is_err());
    assert!(c.read_to_close().is_empty());
    srv.stop();
}

#[test]
fn chunk_listing_pages_and_refuses_bad_parameters() {
    let srv = start_fresh(Driver::Polling).unwrap();
    let mut c = Client::connect(srv.addr);
    let mut ids: Vec<String> = (0..3u8)
        .map(|n| chunk_id(0x70 + n).to_ascii_uppercase())
        .collect();
    for id in &ids {
        assert_eq!(
            c.request("PUT", &format!("/{id}"), &[], Some(b"abc"))
                .status,
            201
        );
    }
    ids.sort();
    let page = |c: &mut Client, q: &str| -> serde_json::Value {
        let r = c.request("GET", &format!("/chunks{q}"), &[], None);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        serde_json::from_slice(&r.body).unwrap()
    };
    let p1 = page(&mut c, "?limit=2");
    assert_eq!(p1["truncated"], true);
    let got: Vec<&str> = p1["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[0].as_str(), ids[1].as_str()]);
    assert_eq!(p1["chunks"][0]["bytes"], 4096 + 3 + 4);
    let p2 = page(&mut c, &format!("?after={}&limit=2", ids[1]));
    assert_eq!(p2["truncated"], false);
    assert_eq!(p2["chunks"][0]["id"], ids[2].as_str());
    assert_eq!(page(&mut c, "")["chunks"].as_array().unwrap().len(), 3);
    for bad in ["?limit=x", "?color=red", "?after=not-hex"] {
        assert_eq!(
            c.request("GET", &format!("/chunks{bad}"), &[], None).status,
            400,
            "{bad}"
        );
    }
    assert_eq!(c.request("DELETE", "/chunks", &[], None).status, 405);
    srv.stop();
}
