//! The local-write socket: a writer on the rawx's host gets a new chunk's pending file,
//! writes the data itself and commits it with its tail and checksum table; the rawx
//! then serves the chunk as if it had been PUT. A writer that goes away before its
//! commit, or commits badly, leaves nothing behind; taken ids, oversized and malformed
//! requests are refused; the socket goes away with the rawx.

mod common;

use common::*;
use oxio_common::local_write::{socket_path, Commit, Pending, Reply, WriteRequest};
use oxio_rawx::Driver;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Sends `bytes` and reads one reply line with the file that may come with it.
fn exchange(s: &mut UnixStream, bytes: &[u8]) -> (Reply, Option<OwnedFd>) {
    s.write_all(bytes).unwrap();
    let (line, fd) = recv_line_with_fd(s);
    (Reply::decode(&line).unwrap(), fd)
}

fn connect(sock: &std::path::Path) -> UnixStream {
    let s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn request(id: &str, max_bytes: u64) -> Vec<u8> {
    WriteRequest {
        chunk_id: id.to_string(),
        max_bytes,
        container: CID.to_string(),
        content: "00112233445566778899aabbccddeeff".into(),
        position: "3.1".into(),
        policy: "EC42".into(),
        request_id: Some("local-write-test".into()),
    }
    .encode()
    .unwrap()
    .into_bytes()
}

/// Writes `data`'s whole blocks into `file` as an `O_DIRECT` writer must (aligned
/// buffer, aligned offsets) and returns the commit message (line, tail, table).
fn write_and_commit_message(file: &std::fs::File, pending: &Pending, data: &[u8]) -> Vec<u8> {
    let align = pending.align as usize;
    let whole = data.len() / align * align;
    if whole > 0 {
        let mut buf = oxio_common::aligned::AlignedBuf::with_capacity(whole, align).unwrap();
        buf.push(&data[..whole]);
        let n = rustix::io::pwrite(file, buf.as_ref(), pending.data_offset).unwrap();
        assert_eq!(n, whole);
    }
    let mut h = oxio_common::segments::SegmentHasher::new(pending.segment_bytes);
    h.update(data);
    let (table, crc) = h.finish();
    let mut msg = Commit {
        size: data.len() as u64,
        tail_bytes: (data.len() - whole) as u64,
        crc,
    }
    .encode()
    .into_bytes();
    msg.extend_from_slice(&data[whole..]);
    msg.extend_from_slice(&table);
    msg
}

fn metric(addr: std::net::SocketAddr, result: &str) -> u64 {
    let mut c = Client::connect(addr);
    let r = c.request("GET", "/metrics", &[], None);
    let text = String::from_utf8(r.body).unwrap();
    let name = format!("oxio_rawx_local_writes_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(name.as_str())?.parse().ok())
        .unwrap_or(0)
}

fn local_write_round_trip(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut cfg = config(tmp.path().join("vol"), driver);
    cfg.local_read_dir = Some(run.clone());
    let Some(srv) = start(cfg, None) else {
        return;
    };
    let sock = socket_path(&run, &srv.addr.to_string());
    assert!(sock.exists());
    for (n, size) in [(1u8, 50_000usize), (2, 3 * 4096), (3, 100), (4, 0)] {
        let id = chunk_id(n);
        let body = data(size, u32::from(n));
        let mut s = connect(&sock);
        let (reply, fd) = exchange(&mut s, &request(&id, 1 << 20));
        let Reply::Pending(pending) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(pending.segment_bytes, 4096);
        let file = std::fs::File::from(fd.expect("the pending file comes with PENDING"));
        let msg = write_and_commit_message(&file, &pending, &body);
        drop(file);
        let (reply, fd) = exchange(&mut s, &msg);
        assert!(fd.is_none());
        let Reply::Stored { size: stored, hash } = reply else {
            panic!("{size} bytes: {reply:?}")
        };
        assert_eq!(stored, size as u64);
        // Served as a PUT chunk: whole, in ranges, with the same hash.
        let mut c = Client::connect(srv.addr);
        let r = c.request("GET", &format!("/{id}"), &[], None);
        assert_eq!(r.status, 200, "{size} bytes");
        assert!(r.body == body, "{size} bytes: data differs");
        assert_eq!(r.header("x-oxio-chunk-hash"), Some(hash.as_str()));
        assert_eq!(r.header("x-oxio-chunk-position"), Some("3.1"));
        if size > 5000 {
            let r = c.request(
                "GET",
                &format!("/{id}"),
                &[("range", "bytes=4000-4999")],
                None,
            );
            assert_eq!(r.status, 206);
            assert!(r.body == body[4000..5000]);
        }
    }
    assert_eq!(metric(srv.addr, "stored"), 4);
    assert!(
        !volume_files(&srv.volume)
            .iter()
            .any(|f| f.ends_with(".pending")),
        "pending files left"
    );
    srv.stop();
    assert!(!sock.exists(), "the write socket outlived its rawx");
}

#[test]
fn a_locally_written_chunk_is_served_as_a_put_one_polling() {
    local_write_round_trip(Driver::Polling);
}

#[test]
fn a_locally_written_chunk_is_served_as_a_put_one_io_uring() {
    local_write_round_trip(Driver::IoUring);
}

#[test]
fn abandoned_bad_and_refused_writes_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut cfg = config(tmp.path().join("vol"), Driver::Polling);
    cfg.local_read_dir = Some(run.clone());
    cfg.max_chunk_bytes = 1 << 20;
    let srv = start(cfg, None).unwrap();
    let sock = socket_path(&run, &srv.addr.to_string());
    let no_pending = |volume: &std::path::Path| {
        wait_until(Duration::from_secs(10), || {
            !volume_files(volume).iter().any(|f| f.ends_with(".pending"))
        })
    };

    // A writer that goes away after writing, before its commit.
    let id = chunk_id(7);
    let mut s = connect(&sock);
    let (reply, fd) = exchange(&mut s, &request(&id, 1 << 20));
    let Reply::Pending(pending) = reply else {
        panic!("{reply:?}")
    };
    let file = std::fs::File::from(fd.unwrap());
    let _ = write_and_commit_message(&file, &pending, &data(20_000, 1));
    drop(file);
    drop(s);
    assert!(no_pending(&srv.volume), "an abandoned pending file stayed");
    assert!(wait_until(Duration::from_secs(10), || metric(
        srv.addr,
        "abandoned"
    ) == 1));

    // A commit whose tail is not size % align: refused, nothing stored.
    let mut s = connect(&sock);
    let (reply, fd) = exchange(&mut s, &request(&id, 1 << 20));
    let Reply::Pending(pending) = reply else {
        panic!("{reply:?}")
    };
    let file = std::fs::File::from(fd.unwrap());
    let body = data(20_000, 2);
    let _ = write_and_commit_message(&file, &pending, &body);
    let bad = Commit {
        size: body.len() as u64,
        tail_bytes: 5,
        crc: 0,
    }
    .encode();
    let (reply, _) = exchange(&mut s, bad.as_bytes());
    assert!(matches!(reply, Reply::Failed(_)), "{reply:?}");
    drop(s);
    assert!(no_pending(&srv.volume));
    let mut c = Client::connect(srv.addr);
    assert_eq!(c.request("GET", &format!("/{id}"), &[], None).status, 404);

    // Refused before any file: a taken id, over the rawx's largest chunk, malformed
    // lines.
    let taken = chunk_id(9);
    let r = c.request("PUT", &format!("/{taken}"), &put_headers(), Some(b"x"));
    assert_eq!(r.status, 201);
    for (what, req) in [
        ("taken id", request(&taken, 4096)),
        ("too large", request(&chunk_id(10), 2 << 20)),
        ("not a write", b"READ x\n".to_vec()),
        ("bad id", request("zz", 4096)),
    ] {
        let mut s = connect(&sock);
        let (reply, fd) = exchange(&mut s, &req);
        assert!(matches!(reply, Reply::Failed(_)), "{what}: {reply:?}");
        assert!(fd.is_none(), "{what}: a file came with the refusal");
    }
    assert!(wait_until(Duration::from_secs(10), || metric(
        srv.addr, "refused"
    ) == 4));
    assert_eq!(metric(srv.addr, "stored"), 0);
    assert!(no_pending(&srv.volume));
    srv.stop();
}
