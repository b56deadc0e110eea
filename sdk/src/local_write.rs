//! Local writes ([`oxio_common::local_write`]): when the rawx a new chunk goes to has
//! its write socket in this client's local-read folder, the chunk's data is written
//! here, straight into the rawx's pending file, instead of being sent over TCP. The
//! rawx then writes the tail, the checksum table (computed here as the data passes)
//! and the header, fsyncs and publishes the chunk as for a PUT.
//!
//! The pending file comes open with `O_DIRECT` when the rawx writes directly: data
//! goes out in whole aligned blocks, from the shard's own buffer when it is aligned,
//! else through an aligned copy ([`AlignedBuf`]). Writes run on tokio's blocking pool. Any failure
//! before the rawx handed its file over leaves the chunk to the HTTP PUT; a failure
//! after fails the chunk, as a broken PUT would (the rawx removes the pending file
//! when the connection ends without a commit).

use crate::local::request;
use bytes::Bytes;
use oxio_common::aligned::AlignedBuf;
use oxio_common::local_write::{socket_path, Commit, Pending, Reply, WriteRequest, MAX_LINE_BYTES};
use oxio_common::segments::SegmentHasher;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// Longest wait for a rawx's pending file.
const OPEN_TIMEOUT: Duration = Duration::from_secs(1);
/// Whole blocks gathered before they go to the file in one vectored write (a write
/// is a hop to the blocking pool, and with `O_DIRECT` a wait for the disk).
const WRITE_BYTES: usize = 1024 * 1024;
/// Most buffers in one vectored write (far under the system's `IOV_MAX`).
const MAX_QUEUED: usize = 256;

/// What a local write needs to know about the chunk.
#[derive(Debug, Clone)]
pub struct NewChunk<'a> {
    /// The rawx's advertised address.
    pub addr: &'a str,
    /// The new chunk's id.
    pub chunk_id: &'a str,
    /// Container id.
    pub cid: &'a str,
    /// Content id.
    pub content_id: &'a str,
    /// Position in the content.
    pub position: &'a str,
    /// Storage policy.
    pub policy: &'a str,
    /// Most data bytes the chunk will hold.
    pub max_bytes: u64,
}

/// Asks the rawx of `chunk` (whose write socket is in `dir`) for its pending file;
/// `None` when it offers no local write (the caller then uses HTTP).
pub async fn open(dir: &Path, chunk: &NewChunk<'_>) -> Option<LocalChunkWrite> {
    let path = socket_path(dir, chunk.addr);
    if !path.exists() {
        return None;
    }
    let req = WriteRequest {
        chunk_id: chunk.chunk_id.to_string(),
        max_bytes: chunk.max_bytes,
        container: chunk.cid.to_string(),
        content: chunk.content_id.to_string(),
        position: chunk.position.to_string(),
        policy: chunk.policy.to_string(),
        request_id: crate::rawx::current_request_id().map(|id| id.to_string()),
    };
    let line = match req.encode() {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(rawx = chunk.addr, error = %e, "no local write");
            return None;
        }
    };
    let opened = tokio::time::timeout(OPEN_TIMEOUT, async {
        let mut stream = UnixStream::connect(&path).await?;
        let (reply, fd) = request(&mut stream, &line, MAX_LINE_BYTES).await?;
        Ok::<_, std::io::Error>((stream, reply, fd))
    })
    .await;
    let (stream, reply, fd) = match opened {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            tracing::debug!(rawx = chunk.addr, error = %e, "local write unavailable");
            return None;
        }
        Err(_) => {
            tracing::debug!(
                rawx = chunk.addr,
                "local-write socket gave no answer in time"
            );
            return None;
        }
    };
    match (Reply::decode(&reply), fd) {
        (Ok(Reply::Pending(pending)), Some(fd)) => Some(LocalChunkWrite {
            stream,
            file: Arc::new(std::fs::File::from(fd)),
            pending,
            hasher: SegmentHasher::new(pending.segment_bytes),
            written: 0,
            queued: Vec::new(),
            queued_len: 0,
            carry: Vec::new(),
        }),
        (Ok(Reply::Failed(m)), _) => {
            tracing::debug!(rawx = chunk.addr, chunk = chunk.chunk_id, error = %m, "local write refused");
            None
        }
        (other, _) => {
            tracing::debug!(rawx = chunk.addr, reply = ?other, "unexpected local-write reply");
            None
        }
    }
}

/// A chunk being written into its rawx's pending file.
#[derive(Debug)]
pub struct LocalChunkWrite {
    stream: UnixStream,
    file: Arc<std::fs::File>,
    pending: Pending,
    hasher: SegmentHasher,
    /// Data bytes in the file (whole blocks).
    written: u64,
    /// Whole blocks gathered for the next write, in order, each aligned.
    queued: Vec<Bytes>,
    /// Bytes in `queued`.
    queued_len: usize,
    /// Data bytes past the last whole block, not yet written (fewer than a block).
    carry: Vec<u8>,
}

impl LocalChunkWrite {
    /// Appends `data` to the chunk: its whole blocks go to the file once about
    /// [`WRITE_BYTES`] are gathered.
    pub async fn write(&mut self, data: Bytes) -> Result<(), String> {
        self.hasher.update(&data);
        let align = self.pending.align as usize;
        let out = if self.carry.is_empty() && (data.as_ptr() as usize).is_multiple_of(align) {
            let whole = data.len() / align * align;
            self.carry.extend_from_slice(&data[whole..]);
            data.slice(..whole)
        } else {
            let total = self.carry.len() + data.len();
            let whole = total / align * align;
            if whole == 0 {
                self.carry.extend_from_slice(&data);
                return Ok(());
            }
            let mut joined = AlignedBuf::with_capacity(whole, align)
                .map_err(|e| format!("aligned buffer: {e}"))?;
            let from_carry = joined.push(&self.carry[..self.carry.len().min(whole)]);
            joined.push(&data[..whole - from_carry]);
            let mut rest = self.carry.split_off(from_carry);
            rest.extend_from_slice(&data[whole - from_carry..]);
            self.carry = rest;
            Bytes::from_owner(joined)
        };
        if !out.is_empty() {
            self.queued_len += out.len();
            self.queued.push(out);
        }
        if self.queued_len >= WRITE_BYTES || self.queued.len() >= MAX_QUEUED {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes the gathered blocks to the file.
    async fn flush(&mut self) -> Result<(), String> {
        if self.queued.is_empty() {
            return Ok(());
        }
        let file = self.file.clone();
        let offset = self.pending.data_offset + self.written;
        let len = self.queued_len as u64;
        let bufs = std::mem::take(&mut self.queued);
        self.queued_len = 0;
        tokio::task::spawn_blocking(move || write_all_at(&file, &bufs, offset))
            .await
            .map_err(|e| format!("local write task: {e}"))??;
        self.written += len;
        Ok(())
    }

    /// Hands the tail and the checksums to the rawx, which makes the chunk durable
    /// and publishes it; returns its size and hash.
    pub async fn commit(mut self) -> Result<(u64, String), String> {
        self.flush().await?;
        let size = self.hasher.size();
        let (table, crc) = self.hasher.finish();
        let commit = Commit {
            size,
            tail_bytes: self.carry.len() as u64,
            crc,
        };
        let mut msg = commit.encode().into_bytes();
        msg.extend_from_slice(&self.carry);
        msg.extend_from_slice(&table);
        self.stream
            .write_all(&msg)
            .await
            .map_err(|e| format!("local-write commit: {e}"))?;
        let (line, _) = request(&mut self.stream, "", MAX_LINE_BYTES)
            .await
            .map_err(|e| format!("local-write commit answer: {e}"))?;
        match Reply::decode(&line)? {
            Reply::Stored { size: stored, hash } if stored == size => Ok((stored, hash)),
            Reply::Stored { size: stored, .. } => Err(format!(
                "rawx stored {stored} bytes of a {size} byte local write"
            )),
            Reply::Failed(m) => Err(format!("local-write commit refused: {m}")),
            Reply::Pending(_) => Err("unexpected local-write reply to a commit".into()),
        }
    }
}

/// Writes all of `bufs`, in order, at `offset`.
fn write_all_at(file: &std::fs::File, bufs: &[Bytes], offset: u64) -> Result<(), String> {
    let total: usize = bufs.iter().map(Bytes::len).sum();
    let mut done = 0;
    // Bounded: each pass writes at least one byte or ends.
    while done < total {
        // The buffers from `done` on (the first one cut where the last write ended).
        let mut skip = done;
        let slices: Vec<std::io::IoSlice<'_>> = bufs
            .iter()
            .filter_map(|b| {
                if skip >= b.len() {
                    skip -= b.len();
                    return None;
                }
                let s = std::io::IoSlice::new(&b[skip..]);
                skip = 0;
                Some(s)
            })
            .collect();
        match rustix::io::pwritev(file, &slices, offset + done as u64) {
            Ok(0) => return Err("chunk file took no bytes".into()),
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("write chunk file: {e}")),
        }
    }
    Ok(())
}
