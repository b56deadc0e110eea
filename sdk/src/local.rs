//! Short-circuit local reads ([`oxio_common::local_read`]): when the rawx holding a
//! chunk has its local-read socket in this client's local-read folder, the chunk file
//! is received from it over the socket and read here, with every segment verified
//! against the file's crc32c table, instead of streamed over TCP. Any failure (no
//! socket, refused, I/O error, checksum mismatch) sends the read back to the rawx's
//! HTTP GET, which answers, or finds and reports the corruption, as before.

use bytes::Bytes;
use oxio_common::local_read::{socket_path, Layout, Reply, MAX_REPLY_BYTES};
use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

/// Longest wait for a rawx's answer on its local-read socket.
const OPEN_TIMEOUT: Duration = Duration::from_secs(1);
/// Data read (and verified) from the file at once: a read-ahead that spares blocking
/// calls when the caller takes smaller pieces (an EC stripe's shard is 256 KiB).
const READ_BYTES: u64 = 1024 * 1024;

/// Opens chunks through the local-read sockets of one folder (cloned with every
/// reader that may fall back to HTTP: the folder is shared, not copied).
#[derive(Clone, Debug)]
pub struct LocalOpener {
    dir: Arc<Path>,
}

impl LocalOpener {
    /// Looks for local-read sockets in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        LocalOpener { dir: dir.into() }
    }

    /// Bytes `start..end` of chunk `chunk_id` of the rawx at `addr`, read from its
    /// file here; `None` when that rawx offers no local read of it (the caller then
    /// uses HTTP).
    pub async fn open(
        &self,
        addr: &str,
        chunk_id: &str,
        start: u64,
        end: u64,
    ) -> Option<LocalChunk> {
        let path = socket_path(&self.dir, addr);
        if !path.exists() {
            return None;
        }
        let opened = tokio::time::timeout(OPEN_TIMEOUT, exchange(&path, chunk_id)).await;
        let (reply, fd) = match opened {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(rawx = addr, socket = %path.display(), error = %e, "local read unavailable");
                return None;
            }
            Err(_) => {
                tracing::debug!(rawx = addr, "local-read socket gave no answer in time");
                return None;
            }
        };
        match (reply, fd) {
            (Reply::Open(layout), Some(fd)) if end <= layout.size => Some(LocalChunk {
                file: Arc::new(std::fs::File::from(fd)),
                layout,
                pos: start,
                end,
                ahead: Bytes::new(),
            }),
            (Reply::Open(layout), Some(_)) => {
                tracing::debug!(
                    rawx = addr,
                    chunk = chunk_id,
                    size = layout.size,
                    end,
                    "range past the chunk; left to HTTP"
                );
                None
            }
            (Reply::Open(_), None) => {
                tracing::debug!(rawx = addr, "local-read reply came without the file");
                None
            }
            (Reply::NotFound, _) => None,
            (Reply::Failed(m), _) => {
                tracing::debug!(rawx = addr, chunk = chunk_id, error = %m, "local read refused");
                None
            }
        }
    }
}

/// Sends the request and receives the reply line with the file attached.
async fn exchange(
    path: &std::path::Path,
    chunk_id: &str,
) -> std::io::Result<(Reply, Option<OwnedFd>)> {
    let mut stream = UnixStream::connect(path).await?;
    stream.write_all(format!("{chunk_id}\n").as_bytes()).await?;
    let mut line = Vec::with_capacity(128);
    let mut fd = None;
    let mut buf = [0u8; MAX_REPLY_BYTES];
    // Bounded: every pass adds a byte or ends, and the line is at most MAX_REPLY_BYTES.
    while !line.contains(&b'\n') {
        if line.len() >= MAX_REPLY_BYTES {
            return Err(std::io::Error::other("local-read reply too long"));
        }
        stream.readable().await?;
        let want = MAX_REPLY_BYTES - line.len();
        let got = stream.try_io(Interest::READABLE, || {
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [IoSliceMut::new(&mut buf[..want])];
            let msg = recvmsg(&stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = m {
                    for f in fds {
                        // One file is expected; any other is closed on drop.
                        if fd.is_none() {
                            fd = Some(f);
                        }
                    }
                }
            }
            Ok(msg.bytes)
        });
        match got {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    let text = std::str::from_utf8(&line)
        .map_err(|_| std::io::Error::other("local-read reply is not text"))?;
    let reply = Reply::decode(text).map_err(std::io::Error::other)?;
    Ok((reply, fd))
}

/// A range of a chunk file received from its rawx, read and verified here.
#[derive(Debug)]
pub struct LocalChunk {
    file: Arc<std::fs::File>,
    layout: Layout,
    /// Next data byte to hand out.
    pos: u64,
    /// End of the range (exclusive).
    end: u64,
    /// Verified bytes from `pos` on, read ahead.
    ahead: Bytes,
}

impl LocalChunk {
    /// Next data byte to hand out (where an HTTP read would resume).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// End of the range (exclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The next `n` bytes, each segment verified; an error names what failed.
    pub async fn read_pieces(&mut self, n: usize) -> Result<Vec<Bytes>, String> {
        if self.pos + n as u64 > self.end {
            return Err("read past the requested range".into());
        }
        let mut out = Vec::with_capacity(2);
        let mut need = n as u64;
        // Bounded: each pass takes at least one byte of `need`.
        while need > 0 {
            if self.ahead.is_empty() {
                // What is still needed, or a read-ahead of READ_BYTES; read() stops
                // at the end of the range.
                let at = self.pos + (n as u64 - need);
                self.ahead = self.read(at, need.max(READ_BYTES)).await?;
                if self.ahead.is_empty() {
                    return Err("chunk file ended early".into());
                }
            }
            let take = need.min(self.ahead.len() as u64) as usize;
            out.push(self.ahead.split_to(take));
            need -= take as u64;
        }
        self.pos += n as u64;
        Ok(out)
    }

    /// Reads the segments covering `from..from + len` (clipped to the range end),
    /// verifies them and returns the bytes from `from` on.
    async fn read(&self, from: u64, len: u64) -> Result<Bytes, String> {
        let layout = self.layout;
        let seg = u64::from(layout.segment_bytes);
        let to = (from + len).min(self.end);
        let first = from / seg;
        let last = (to - 1) / seg;
        let seg_start = first * seg;
        let seg_end = ((last + 1) * seg).min(layout.size);
        let file = self.file.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let data = read_exact_at(&file, layout.data_offset + seg_start, seg_end - seg_start)?;
            let table_len = 4 * (last - first + 1);
            let table = read_exact_at(&file, layout.table_offset + 4 * first, table_len)?;
            for (i, (d, want)) in data
                .chunks(seg as usize)
                .zip(table.chunks_exact(4))
                .enumerate()
            {
                let want = u32::from_le_bytes([want[0], want[1], want[2], want[3]]);
                if crc32c::crc32c(d) != want {
                    return Err(format!("checksum mismatch in segment {}", first + i as u64));
                }
            }
            Ok(Bytes::from(data))
        })
        .await
        .map_err(|e| format!("local read task: {e}"))??;
        let skip = (from - seg_start) as usize;
        let keep = (to - seg_start) as usize;
        Ok(joined.slice(skip..keep))
    }
}

/// `len` bytes of `file` at `offset`, read into fresh memory (not zeroed first).
fn read_exact_at(file: &std::fs::File, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    let len = usize::try_from(len).map_err(|_| "read too large".to_string())?;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    // Bounded: each pass reads at least one byte or ends.
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err("chunk file ended early".into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("read chunk file: {e}")),
        }
    }
    // The spare capacity may have been larger than asked.
    buf.truncate(len);
    Ok(buf)
}
