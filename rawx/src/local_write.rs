//! The local-write socket ([`oxio_common::local_write`]): a rawx with a local-read
//! folder also binds a write socket there, and a writer on its host (the S3 gateway's
//! sdk) writes a chunk's data into the rawx's pending file itself instead of sending
//! it over TCP. The rawx creates the pending file as for a PUT (new id, room on the
//! volume, `O_DIRECT` when the volume writes directly), hands it over, and at the
//! writer's commit writes the tail, the checksum table and the header, fsyncs and
//! publishes the chunk exactly as a PUT does. A writer that goes away before its
//! commit leaves nothing behind.
//!
//! Served on the worker runtimes (each worker accepts on the same socket), one task
//! per connection: a connection lives as long as its write, and the commit's fsyncs go
//! through the worker's io_uring like a PUT's.

use crate::error::{Error, Result};
use crate::format::{parse_chunk_id, ChunkAttrs};
use crate::handler::Shared;
use crate::local::send_with_fd;
use crate::server::until_stopped;
use crate::store::ChunkWriter;
use compio::buf::BufResult;
use compio::io::{AsyncRead, AsyncReadExt};
use compio::net::UnixStream;
use oxio_common::local_write::{
    bindable_socket_path, Commit, Pending, Reply, WriteRequest, MAX_LINE_BYTES,
};
use rustix::net::SendFlags;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Longest a writer may take to send its request, and to take the reply.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(1);

/// The bound write socket of one rawx; its file is removed when this is dropped.
#[derive(Debug)]
pub struct WriteSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl WriteSocket {
    /// Binds the write socket of the rawx advertising `advertised` in `dir` (a stale
    /// socket left by a dead rawx is replaced; any other file there is an error).
    pub fn bind(dir: &Path, advertised: &str) -> Result<WriteSocket> {
        let path = bindable_socket_path(dir, advertised).map_err(Error::Config)?;
        let listener = crate::local::bind_socket(&path)?;
        Ok(WriteSocket { path, listener })
    }

    /// Path of the socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A listener on the socket for one worker.
    pub fn listener(&self) -> Result<UnixListener> {
        self.listener
            .try_clone()
            .map_err(|e| Error::io("share local-write socket", e))
    }
}

impl Drop for WriteSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Accepts local writers on `listener` until `stop` fires, each served by its own task.
pub async fn accept_loop(listener: UnixListener, shared: Arc<Shared>, stop: CancellationToken) {
    let listener = match compio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the local-write socket; local writes off");
            return;
        }
    };
    // Bounded: ends when `stop` fires.
    while let Some(accepted) = until_stopped(listener.accept(), &stop).await {
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "local-write accept failed");
                compio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let stop = stop.clone();
        compio::runtime::spawn(async move {
            let started = std::time::Instant::now();
            let span = tracing::info_span!(
                "rawx_request",
                method = "LOCAL_WRITE",
                target = tracing::field::Empty,
                request_id = tracing::field::Empty,
            );
            let (result, size) = serve(stream, &shared, &stop).instrument(span.clone()).await;
            shared.metrics.local_write(result);
            span.in_scope(|| {
                tracing::info!(
                    result,
                    bytes = size,
                    micros = started.elapsed().as_micros() as u64,
                    "rawx local write"
                )
            });
        })
        .detach();
    }
}

/// Serves one write; returns the result counted in the metrics and the data bytes
/// stored.
async fn serve(
    mut stream: UnixStream,
    shared: &Shared,
    stop: &CancellationToken,
) -> (&'static str, u64) {
    let (line, rest) = match read_line(&mut stream, Vec::new(), Some(EXCHANGE_TIMEOUT)).await {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(error = %e, "local-write request unreadable");
            return ("refused", 0);
        }
    };
    let (request, mut writer, pending) = match open(&line, &rest, shared).await {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(error = %e, "local write refused");
            let _ = send(&stream, &Reply::Failed(e.to_string()), None).await;
            return ("refused", 0);
        }
    };
    let span = tracing::Span::current();
    span.record("target", format!("/{}", request.chunk_id));
    if let Some(id) = &request.request_id {
        span.record("request_id", id.as_str());
    }
    let fd = match writer.pending_fd() {
        Ok(fd) => fd,
        Err(e) => {
            let _ = send(&stream, &Reply::Failed(e.to_string()), None).await;
            return ("refused", 0);
        }
    };
    writer.reserve(request.max_bytes);
    if let Err(e) = send(&stream, &Reply::Pending(pending), Some(fd)).await {
        tracing::debug!(chunk = %request.chunk_id, error = %e, "local writer gone before its file");
        return ("abandoned", 0);
    }
    // The writer writes the data now; its commit comes when it is done, however long
    // that takes (its own deadlines bound it), or the connection ends.
    let commit = until_stopped(read_commit(&mut stream, &pending, request.max_bytes), stop)
        .await
        .unwrap_or_else(|| Err(Error::Runtime("rawx stopping".into())));
    let (commit, tail, table) = match commit {
        Ok(x) => x,
        Err(e @ Error::BadRequest(_)) => {
            tracing::warn!(chunk = %request.chunk_id, error = %e, "bad local-write commit");
            let _ = send(&stream, &Reply::Failed(e.to_string()), None).await;
            return ("failed", 0);
        }
        Err(e) => {
            tracing::debug!(chunk = %request.chunk_id, error = %e, "local write abandoned");
            return ("abandoned", 0);
        }
    };
    match writer
        .commit_written(commit.size, &tail, table, commit.crc)
        .await
    {
        Ok(meta) => {
            tracing::debug!(chunk = %request.chunk_id, size = meta.size, "chunk stored by a local writer");
            let reply = Reply::Stored {
                size: meta.size,
                hash: meta.hash_string(),
            };
            // Stored either way: a writer gone now finds the chunk published.
            let _ = send(&stream, &reply, None).await;
            ("stored", meta.size)
        }
        Err(e) => {
            tracing::warn!(chunk = %request.chunk_id, error = %e, "local write commit failed");
            let _ = send(&stream, &Reply::Failed(e.to_string()), None).await;
            ("failed", 0)
        }
    }
}

/// Parses the request and creates the pending file.
async fn open(
    line: &str,
    rest: &[u8],
    shared: &Shared,
) -> Result<(WriteRequest, ChunkWriter, Pending)> {
    if !rest.is_empty() {
        return Err(Error::BadRequest(
            "data sent before the pending file".into(),
        ));
    }
    let request = WriteRequest::decode(line).map_err(Error::BadRequest)?;
    let id = parse_chunk_id(&request.chunk_id)?;
    let attrs = ChunkAttrs {
        container: request.container.clone(),
        content: request.content.clone(),
        position: request.position.clone(),
        policy: request.policy.clone(),
    };
    attrs.validate()?;
    if request.max_bytes > shared.max_chunk_bytes {
        return Err(Error::TooLarge {
            limit_bytes: shared.max_chunk_bytes,
        });
    }
    shared.volume.check_room(request.max_bytes)?;
    // The writer writes the data; the rawx's own direct-write stage only ever holds
    // the tail (less than one block), so one block is all it needs.
    let writer = shared
        .volume
        .create(&id, attrs, Some(crate::direct::ALIGN as u64))
        .await?;
    let pending = Pending {
        segment_bytes: shared.volume.segment_bytes(),
        data_offset: crate::format::HEADER_BYTES,
        align: crate::direct::ALIGN as u32,
    };
    Ok((request, writer, pending))
}

/// Reads up to the first newline (at most [`MAX_LINE_BYTES`]) into `buf`; returns the
/// line and whatever came after it.
async fn read_line(
    stream: &mut UnixStream,
    mut buf: Vec<u8>,
    wait: Option<Duration>,
) -> Result<(String, Vec<u8>)> {
    // Bounded: each pass reads at least one byte, and at most MAX_LINE_BYTES are read
    // without a newline.
    loop {
        if let Some(at) = buf.iter().position(|&b| b == b'\n') {
            let rest = buf.split_off(at + 1);
            buf.pop();
            let line = String::from_utf8(buf)
                .map_err(|_| Error::BadRequest("local-write line is not text".into()))?;
            return Ok((line, rest));
        }
        if buf.len() >= MAX_LINE_BYTES {
            return Err(Error::BadRequest("local-write line too long".into()));
        }
        buf.reserve(MAX_LINE_BYTES);
        let read = stream.append(buf);
        let BufResult(res, back) = match wait {
            Some(w) => compio::time::timeout(w, read)
                .await
                .map_err(|_| Error::ClientGone("local writer sent nothing in time".into()))?,
            None => read.await,
        };
        buf = back;
        match res {
            Ok(0) => {
                return Err(Error::ClientGone(
                    "local writer closed the connection".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(Error::ClientGone(format!("local-write read: {e}"))),
        }
    }
}

/// Reads the commit line, then its tail and checksum table.
async fn read_commit(
    stream: &mut UnixStream,
    pending: &Pending,
    max_bytes: u64,
) -> Result<(Commit, Vec<u8>, Vec<u8>)> {
    let (line, mut rest) = read_line(stream, Vec::new(), None).await?;
    let commit = Commit::decode(&line, pending, max_bytes).map_err(Error::BadRequest)?;
    let want = usize::try_from(commit.tail_bytes + pending.table_bytes(commit.size))
        .map_err(|_| Error::BadRequest("commit too large".into()))?;
    if rest.len() > want {
        return Err(Error::BadRequest(
            "more bytes than the commit announced".into(),
        ));
    }
    rest.reserve_exact(want - rest.len());
    // Bounded: each pass reads at least one byte of `want`.
    while rest.len() < want {
        let len = rest.len();
        let BufResult(res, slice) = compio::time::timeout(
            EXCHANGE_TIMEOUT,
            stream.read(compio::buf::IoBuf::slice(rest, len..want)),
        )
        .await
        .map_err(|_| Error::ClientGone("commit cut short".into()))?;
        rest = compio::buf::IntoInner::into_inner(slice);
        match res {
            Ok(0) => return Err(Error::ClientGone("commit cut short".into())),
            Ok(_) => {}
            Err(e) => return Err(Error::ClientGone(format!("local-write read: {e}"))),
        }
    }
    let table = rest.split_off(commit.tail_bytes as usize);
    Ok((commit, rest, table))
}

/// Sends a reply line, with `fd` attached when given.
async fn send(stream: &UnixStream, reply: &Reply, fd: Option<OwnedFd>) -> Result<()> {
    let line = reply.encode();
    let bytes = line.as_bytes();
    let deadline = std::time::Instant::now() + EXCHANGE_TIMEOUT;
    let mut sent = 0;
    // Bounded: each pass sends bytes, or waits a millisecond until the deadline.
    while sent < bytes.len() {
        // The file rides on the first byte.
        let attached = fd.as_ref().filter(|_| sent == 0).map(|f| f.as_fd());
        match send_with_fd(stream, &bytes[sent..], attached, SendFlags::DONTWAIT) {
            Ok(n) => sent += n,
            Err(rustix::io::Errno::AGAIN) if std::time::Instant::now() < deadline => {
                compio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => return Err(Error::ClientGone(format!("local-write reply: {e}"))),
        }
    }
    Ok(())
}
