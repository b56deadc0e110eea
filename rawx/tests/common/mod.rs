//! A tiny blocking HTTP/1.1 client and server fixture for the rawx tests.
#![allow(dead_code)]

use oxio_rawx::{Driver, RawxConfig, Started};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The container id the tests' chunks belong to.
pub const CID: &str = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";

/// The `x-oxio-chunk-*` attributes of the tests' PUTs.
pub fn put_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("x-oxio-chunk-container", CID),
        ("x-oxio-chunk-content", "00112233445566778899aabbccddeeff"),
        ("x-oxio-chunk-position", "3.1"),
        ("x-oxio-chunk-policy", "EC42"),
    ]
}

pub struct Server {
    pub started: Option<Started>,
    pub addr: SocketAddr,
    pub volume: PathBuf,
    pub shutdown: CancellationToken,
    pub _tmp: Option<tempfile::TempDir>,
}

impl Server {
    pub fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.started.take() {
            s.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.started.take() {
            let _ = s.join();
        }
    }
}

pub fn config(volume: PathBuf, driver: Driver) -> RawxConfig {
    let mut c = RawxConfig::new("rawx-test", "127.0.0.1:0".parse().unwrap(), volume);
    c.driver = driver;
    c.workers = 2;
    c.segment_bytes = 4096;
    c
}

/// Starts a server, or returns None (with a note) if io_uring is refused here.
pub fn start(cfg: RawxConfig, tmp: Option<tempfile::TempDir>) -> Option<Server> {
    let shutdown = CancellationToken::new();
    let driver = cfg.driver;
    let volume = cfg.volume.clone();
    match oxio_rawx::start(cfg, shutdown.clone()) {
        Ok(started) => {
            match driver {
                Driver::IoUring => assert_eq!(started.driver, "io_uring"),
                Driver::Polling => assert_eq!(started.driver, "polling"),
                Driver::Auto => {}
            }
            Some(Server {
                addr: started.addr,
                started: Some(started),
                volume,
                shutdown,
                _tmp: tmp,
            })
        }
        Err(oxio_rawx::Error::Runtime(e)) if driver == Driver::IoUring => {
            eprintln!("NOTE: skipping io_uring run, the kernel refused it: {e}");
            None
        }
        Err(e) => panic!("start failed: {e}"),
    }
}

pub fn start_fresh(driver: Driver) -> Option<Server> {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path().join("vol"), driver);
    start(cfg, Some(tmp))
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(s),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    pub fn shutdown_write(&mut self) {
        self.reader
            .get_mut()
            .shutdown(std::net::Shutdown::Write)
            .unwrap();
    }

    /// Reads a response head; reads the body by Content-Length unless `head_only`.
    pub fn read_response(&mut self, head_only: bool) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let mut parts = line.trim_end().splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut l = String::new();
            self.reader.read_line(&mut l).unwrap();
            let l = l.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').unwrap();
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if !head_only && status != 204 && status >= 200 {
            let len: usize = resp.header("content-length").unwrap().parse().unwrap();
            let mut body = vec![0u8; len];
            self.reader.read_exact(&mut body).unwrap();
            resp.body = body;
        }
        resp
    }

    /// Reads until the server closes; returns what came.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.reader.read_to_end(&mut out);
        out
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: test\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!("content-length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        self.send(&bytes);
        self.read_response(method == "HEAD")
    }
}

pub fn chunk_id(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

pub fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Polls `cond` until it holds or `deadline` passes.
pub fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Every file under the volume (relative names).
pub fn volume_files(volume: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(volume) {
        for d in dirs.flatten() {
            if let Ok(files) = std::fs::read_dir(d.path()) {
                for f in files.flatten() {
                    out.push(f.file_name().to_string_lossy().into_owned());
                }
            }
        }
    }
    out
}

/// Reads one reply line of a local socket (read or write), with the file descriptor
/// that may ride on it.
pub fn recv_line_with_fd(
    s: &std::os::unix::net::UnixStream,
) -> (String, Option<std::os::fd::OwnedFd>) {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut line = Vec::new();
    let mut fd = None;
    while !line.contains(&b'\n') {
        let mut buf = [0u8; 1024];
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let msg = recvmsg(
            s,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .unwrap();
        assert!(msg.bytes > 0, "socket closed before the reply line");
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                fd = fds.into_iter().next().or(fd);
            }
        }
        line.extend_from_slice(&buf[..msg.bytes]);
    }
    (String::from_utf8(line).unwrap(), fd)
}
