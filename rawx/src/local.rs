//! The local-read socket ([`oxio_common::local_read`]): a rawx with a local-read
//! folder binds a Unix socket there and hands readers on its host the open, validated
//! chunk file instead of streaming its bytes over TCP. The reader verifies each
//! segment's crc32c itself and falls back to an HTTP GET on any failure, so a corrupt
//! chunk is still found, reported and answered by the rawx.
//!
//! Served by [`ACCEPTORS`] blocking threads (each exchange is an open, a 4 KiB header
//! read and one `sendmsg`), with per-connection timeouts; the socket is removed at
//! shutdown. Not offered on `direct-io` volumes, whose reads bypass the page cache.

use crate::error::{Error, Result};
use crate::format::{parse_chunk_id, ChunkMeta, HEADER_BYTES};
use crate::metrics::RawxMetrics;
use crate::store::Volume;
use oxio_common::local_read::{bindable_socket_path, Layout, Reply, REQUEST_BYTES};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use std::io::{ErrorKind, IoSlice, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Threads accepting on the socket.
pub const ACCEPTORS: usize = 2;
/// Longest a reader may take to send its request or receive the reply.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often an idle acceptor looks at the shutdown token.
const STOP_POLL: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 250_000_000,
};

/// The running local-read socket of one rawx.
#[derive(Debug)]
pub struct LocalReads {
    path: PathBuf,
    threads: Vec<JoinHandle<()>>,
}

impl LocalReads {
    /// Path of the socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the acceptors (after the stop token fired) and removes the socket.
    pub fn join(self) -> bool {
        let mut ok = true;
        for t in self.threads {
            ok &= t.join().is_ok();
        }
        let _ = std::fs::remove_file(&self.path);
        ok
    }
}

/// Binds the socket of the rawx advertising `advertised` in `dir` (a stale socket
/// left by a dead rawx is replaced; any other file there is an error) and starts the
/// acceptors, which end when `stop` fires.
pub fn start(
    dir: &Path,
    advertised: &str,
    volume: Volume,
    metrics: Arc<RawxMetrics>,
    stop: CancellationToken,
) -> Result<LocalReads> {
    let path = bindable_socket_path(dir, advertised).map_err(Error::Config)?;
    let listener = bind_socket(&path)?;
    let listener = Arc::new(listener);
    let mut threads = Vec::with_capacity(ACCEPTORS);
    for n in 0..ACCEPTORS {
        let (listener, volume, metrics, token) = (
            listener.clone(),
            volume.clone(),
            metrics.clone(),
            stop.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("rawx-local{n}"))
            .spawn(move || accept_loop(&listener, &volume, &metrics, &token));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                stop.cancel();
                LocalReads { path, threads }.join();
                return Err(Error::io("spawn local-read thread", e));
            }
        }
    }
    Ok(LocalReads { path, threads })
}

/// Binds a Unix socket at `path` for the service's user and group only (mode 0660),
/// non-blocking: a stale socket left by a dead rawx is replaced; a live one, or any
/// other file there, is an error.
pub(crate) fn bind_socket(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create local-read folder", e))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A live rawx accepts a connect; only a socket nobody listens on (its
            // process died) is replaced.
            match UnixStream::connect(path) {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(|e| Error::io("remove stale socket", e))?;
                }
                Ok(_) => {
                    return Err(Error::Config(format!(
                        "local socket {} is in use by another process",
                        path.display()
                    )))
                }
                Err(e) => return Err(Error::io("probe existing local socket", e)),
            }
        }
        Ok(_) => {
            return Err(Error::Config(format!(
                "{} exists and is not a socket: choose another local-read folder",
                path.display()
            )))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("stat local socket", e)),
    }
    let listener = UnixListener::bind(path).map_err(|e| Error::io("bind local socket", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| Error::io("set local socket mode", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("set non-blocking", e))?;
    Ok(listener)
}

fn accept_loop(
    listener: &UnixListener,
    volume: &Volume,
    metrics: &RawxMetrics,
    stop: &CancellationToken,
) {
    while !stop.is_cancelled() {
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        match poll(&mut fds, Some(&STOP_POLL)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "local-read socket poll failed; local reads stop");
                return;
            }
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            // Another acceptor took it.
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::warn!(error = %e, "local-read accept failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if let Err(e) = exchange(&stream, volume, metrics) {
            tracing::debug!(error = %e, "local-read exchange failed");
        }
    }
}

/// Reads one request, answers it and hands out the file when the chunk is served.
fn exchange(stream: &UnixStream, volume: &Volume, metrics: &RawxMetrics) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    stream.set_write_timeout(Some(EXCHANGE_TIMEOUT))?;
    let mut req = [0u8; REQUEST_BYTES];
    let mut got = 0;
    while got < req.len() {
        let mut s = stream;
        match s.read(&mut req[got..])? {
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
        if req[..got].contains(&b'\n') {
            break;
        }
    }
    let line = req[..got].strip_suffix(b"\n");
    let (reply, file) = match line.map(std::str::from_utf8) {
        Some(Ok(id)) => open(volume, id),
        _ => (Reply::Failed("request is not a chunk id line".into()), None),
    };
    metrics.local_open(match reply {
        Reply::Open(_) => "open",
        Reply::NotFound => "not_found",
        Reply::Failed(_) => "error",
    });
    send_reply(stream, &reply, file.as_ref())
}

/// Opens and validates chunk `id` as a GET would.
fn open(volume: &Volume, id: &str) -> (Reply, Option<std::fs::File>) {
    let opened = parse_chunk_id(id).and_then(|id| {
        let file = match std::fs::File::open(volume.chunk_path(&id)) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(Error::ChunkNotFound(id)),
            Err(e) => return Err(Error::io("open chunk", e)),
        };
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("stat chunk", e))?
            .len();
        let mut header = vec![0u8; HEADER_BYTES as usize];
        if file_len >= HEADER_BYTES {
            file.read_exact_at(&mut header, 0)
                .map_err(|e| Error::io("read chunk header", e))?;
        }
        let meta = ChunkMeta::decode_header(&header, file_len, &id)?;
        Ok((meta, file))
    });
    match opened {
        Ok((meta, file)) => (
            Reply::Open(Layout {
                size: meta.size,
                segment_bytes: meta.segment_bytes,
                data_offset: HEADER_BYTES,
                table_offset: meta.table_offset,
            }),
            Some(file),
        ),
        Err(Error::ChunkNotFound(_)) => (Reply::NotFound, None),
        Err(e) => {
            if !matches!(e, Error::BadRequest(_)) {
                tracing::warn!(chunk = %id, error = %e, "local read refused");
            }
            (Reply::Failed(e.to_string()), None)
        }
    }
}

fn send_reply(
    stream: &UnixStream,
    reply: &Reply,
    file: Option<&std::fs::File>,
) -> std::io::Result<()> {
    let line = reply.encode();
    let bytes = line.as_bytes();
    // The file rides on the first byte; the rest of a short write follows plainly.
    let sent = send_with_fd(stream, bytes, file.map(|f| f.as_fd()), SendFlags::empty())?;
    let mut s = stream;
    std::io::Write::write_all(&mut s, &bytes[sent..])
}

/// One `sendmsg` of `bytes` on a local socket with `fd` attached (the local-read and
/// local-write replies); `flags` are added to `MSG_NOSIGNAL`. Returns the bytes sent.
pub(crate) fn send_with_fd(
    stream: impl AsFd,
    bytes: &[u8],
    fd: Option<BorrowedFd<'_>>,
    flags: SendFlags,
) -> rustix::io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = fd.map(|f| [f]);
    if let Some(fds) = &fds {
        if !control.push(SendAncillaryMessage::ScmRights(fds)) {
            // The buffer is sized for exactly one descriptor: cannot happen.
            return Err(rustix::io::Errno::NOBUFS);
        }
    }
    sendmsg(
        stream,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL | flags,
    )
}
