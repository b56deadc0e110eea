//! The local-read socket: a rawx with a local-read folder hands out the open file of
//! a chunk it holds with its layout, answers NOTFOUND and ERROR otherwise, replaces a
//! dead rawx's socket, refuses a live one's or any other file, and removes its socket
//! when it stops.

mod common;

use common::*;
use oxio_common::local_read::{socket_path, Reply};
use oxio_rawx::Driver;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};

/// Sends `request` on the socket and returns the reply with the file, if any.
fn ask(sock: &std::path::Path, request: &[u8]) -> (Reply, Option<OwnedFd>) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(request).unwrap();
    let (line, fd) = recv_line_with_fd(&s);
    (Reply::decode(&line).unwrap(), fd)
}

fn metric(addr: std::net::SocketAddr, result: &str) -> u64 {
    let mut c = Client::connect(addr);
    let r = c.request("GET", "/metrics", &[], None);
    let text = String::from_utf8(r.body).unwrap();
    let name = format!("oxio_rawx_local_opens_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(name.as_str())?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn socket_hands_out_chunk_files() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut cfg = config(tmp.path().join("vol"), Driver::Polling);
    cfg.local_read_dir = Some(run.clone());
    let srv = start(cfg, None).unwrap();
    let sock = socket_path(&run, &srv.addr.to_string());
    assert!(sock.exists());

    let id = chunk_id(0x5a);
    let body = data(50_000, 7);
    let mut c = Client::connect(srv.addr);
    let r = c.request("PUT", &format!("/{id}"), &put_headers(), Some(&body));
    assert_eq!(r.status, 201);

    let (reply, fd) = ask(&sock, format!("{id}\n").as_bytes());
    let Reply::Open(layout) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(layout.size, body.len() as u64);
    assert_eq!(layout.segment_bytes, 4096);
    let file = std::fs::File::from(fd.expect("the chunk file comes with OPEN"));
    let mut got = vec![0u8; body.len()];
    file.read_exact_at(&mut got, layout.data_offset).unwrap();
    assert!(got == body, "data read from the handed-out file differs");
    let mut table = vec![0u8; 4 * layout.segments() as usize];
    file.read_exact_at(&mut table, layout.table_offset).unwrap();
    for (seg, want) in body.chunks(4096).zip(table.chunks_exact(4)) {
        assert_eq!(crc32c::crc32c(seg).to_le_bytes(), want);
    }

    let (reply, fd) = ask(&sock, format!("{}\n", chunk_id(0x11)).as_bytes());
    assert_eq!(reply, Reply::NotFound);
    assert!(fd.is_none());
    for bad in [&b"../../etc/passwd\n"[..], b"\n", b"zz\n"] {
        let (reply, fd) = ask(&sock, bad);
        assert!(matches!(reply, Reply::Failed(_)), "{bad:?}: {reply:?}");
        assert!(fd.is_none());
    }
    // The rawx counts a request before answering it.
    assert_eq!(metric(srv.addr, "open"), 1);
    assert_eq!(metric(srv.addr, "not_found"), 1);
    assert_eq!(metric(srv.addr, "error"), 3);

    srv.stop();
    assert!(!sock.exists(), "the socket outlived its rawx");
}

#[test]
fn stale_sockets_are_replaced_and_others_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let advertise = "127.0.0.1:1";
    let sock = socket_path(&run, advertise);
    let with = |vol: &str| {
        let mut cfg = config(tmp.path().join(vol), Driver::Polling);
        cfg.local_read_dir = Some(run.clone());
        cfg.advertise = Some(advertise.to_string());
        cfg
    };
    // A dead process's socket: the file stays, nobody accepts.
    drop(UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let first = start(with("a"), None).unwrap();
    let (reply, _) = ask(&sock, format!("{}\n", chunk_id(1)).as_bytes());
    assert_eq!(reply, Reply::NotFound);
    // A live one's.
    let err = oxio_rawx::start(with("b"), Default::default()).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    first.stop();
    // Not a socket at all.
    std::fs::write(&sock, b"x").unwrap();
    let err = oxio_rawx::start(with("c"), Default::default()).unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&sock).unwrap(), b"x");
    // Too long a path.
    let mut cfg = config(tmp.path().join("d"), Driver::Polling);
    cfg.local_read_dir = Some(tmp.path().join("x".repeat(120)));
    let err = oxio_rawx::start(cfg, Default::default()).unwrap_err();
    assert!(err.to_string().contains("shorter"), "{err}");
}
