//! Streaming download of a byte range: inline data sliced, replicated metachunks read
//! from one copy (switching copy on failure), erasure-coded metachunks read stripe by
//! stripe from the data fragments (opened at once), with parity fragments opened and
//! decoded as soon as a data fragment is missing, fails, is cut short by a checksum
//! failure, or does not answer within [`crate::ClientConfig::fragment_deadline`].

use crate::client::Inner;
use crate::ec::{self, Geometry};
use crate::rawx::ChunkReader;
use crate::{Error, Result};
use bytes::Bytes;
use oxio_common::StoragePolicy;
use oxio_proto::v1::{ChunkRecord, ContentHeader};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Pieces queued toward the client before the reader waits. The S3 gateway writes
/// what is queued in one `writev` (up to its connection buffer, `CONN_BUF_BYTES` in
/// oxio-s3-proxy): 16 shards of 1 MiB stripes in EC 4+2 are 4 MiB. With 4 pieces
/// it wrote about 1 MiB per call (16 calls per 16 MiB object; 6 with 16 pieces).
const QUEUE_DEPTH: usize = 16;
/// Largest piece sent for replicated data.
const PIECE_BYTES: usize = 256 * 1024;

/// Streams bytes `start..end` of a content. Errors after the first byte end the
/// stream with that error.
pub fn read_range(
    inner: Arc<Inner>,
    header: ContentHeader,
    start: u64,
    end: u64,
) -> mpsc::Receiver<Result<Bytes>> {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let request_id = crate::rawx::current_request_id();
    tokio::spawn(crate::rawx::with_request_id(request_id, async move {
        if let Err(e) = read_into(&inner, &header, start, end, &tx).await {
            tracing::warn!(error = %e, "object read failed");
            let _ = tx.send(Err(e)).await;
        }
    }));
    rx
}

/// Bytes `start..end` of an inline content, moved out of its header without a copy
/// (`None`, the header untouched, when it is chunked or the range falls outside).
pub fn take_inline_range(header: &mut ContentHeader, start: u64, end: u64) -> Option<Bytes> {
    if header.policy != "INLINE" || end < start || end > header.inline_data.len() as u64 {
        return None;
    }
    let data = Bytes::from(std::mem::take(&mut header.inline_data));
    Some(data.slice(start as usize..end as usize))
}

async fn read_into(
    inner: &Inner,
    header: &ContentHeader,
    start: u64,
    end: u64,
    tx: &mpsc::Sender<Result<Bytes>>,
) -> Result<()> {
    if end <= start {
        return Ok(());
    }
    if header.policy == "INLINE" {
        let data = Bytes::copy_from_slice(
            header
                .inline_data
                .get(start as usize..end as usize)
                .ok_or(Error::InvalidRange)?,
        );
        let _ = tx.send(Ok(data)).await;
        return Ok(());
    }
    let policy: StoragePolicy = header
        .policy
        .parse()
        .map_err(|e| Error::Internal(format!("stored content has {e}")))?;
    let mut mc_start = 0u64;
    for (n, &mc_size) in header.metachunk_sizes.iter().enumerate() {
        let mc_end = mc_start + mc_size;
        if mc_end > start && mc_start < end {
            let from = start.max(mc_start) - mc_start;
            let to = end.min(mc_end) - mc_start;
            let chunks: Vec<&ChunkRecord> = header
                .chunks
                .iter()
                .filter(|c| c.metachunk as usize == n)
                .collect();
            match policy {
                StoragePolicy::ErasureCoded { k, m } => {
                    let geo = Geometry {
                        k: k as usize,
                        m: m as usize,
                        stripe_bytes: inner.config.stripe_bytes,
                    };
                    read_ec(inner, geo, &chunks, mc_size, from, to, tx).await?;
                }
                StoragePolicy::Replicated { .. } => {
                    read_replicated(inner, &chunks, from, to, tx).await?
                }
            }
        }
        mc_start = mc_end;
        if mc_start >= end {
            return Ok(());
        }
    }
    // The record's metachunks end before its size: end the stream with an error
    // rather than let it look complete.
    Err(Error::Internal(format!(
        "the content's metachunks hold {mc_start} bytes, short of the {end} asked for"
    )))
}

async fn read_replicated(
    inner: &Inner,
    chunks: &[&ChunkRecord],
    from: u64,
    to: u64,
    tx: &mpsc::Sender<Result<Bytes>>,
) -> Result<()> {
    let mut pos = from;
    let mut copies = chunks.iter();
    let mut errors = Vec::new();
    'copies: while pos < to {
        let Some(c) = copies.next() else {
            return Err(Error::Quorum {
                ok: 0,
                needed: 1,
                detail: errors.join("; "),
            });
        };
        let deadline = inner.config.fragment_deadline;
        let mut reader = match within(deadline, inner.rawx.get(&c.addr, &c.chunk_id, pos, to)).await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(rawx = %c.rawx_id, chunk = %c.chunk_id, error = %e, "copy unreadable, trying another");
                errors.push(e.to_string());
                continue;
            }
        };
        while pos < to {
            let n = ((to - pos) as usize).min(PIECE_BYTES);
            // Sent as the buffers the body arrived in, never copied.
            match within(deadline, reader.read_pieces(n)).await {
                Ok(pieces) => {
                    pos += n as u64;
                    for piece in pieces {
                        if tx.send(Ok(piece)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                Err(e) => {
                    errors.push(e.to_string());
                    continue 'copies;
                }
            }
        }
    }
    Ok(())
}

/// State of the fragments of one erasure-coded metachunk during a read.
struct Fragments<'a> {
    inner: &'a Inner,
    records: Vec<Option<&'a ChunkRecord>>,
    readers: Vec<Option<ChunkReader>>,
    dead: Vec<bool>,
    errors: Vec<String>,
}

impl Fragments<'_> {
    fn mark_dead(&mut self, j: usize, e: Error) {
        if let Some(r) = self.records[j] {
            tracing::warn!(rawx = %r.rawx_id, chunk = %r.chunk_id, error = %e, "fragment unreadable, decoding around it");
        }
        self.errors.push(e.to_string());
        self.readers[j] = None;
        self.dead[j] = true;
    }

    async fn open(&mut self, j: usize, start: u64, end: u64) -> bool {
        self.open_all(&[j], start, end).await;
        self.readers[j].is_some()
    }

    /// Opens the fragments `js` at once (each within the fragment deadline).
    async fn open_all(&mut self, js: &[usize], start: u64, end: u64) {
        let inner = self.inner;
        let deadline = inner.config.fragment_deadline;
        let opening = js.iter().map(|&j| {
            let rec = self.records[j];
            async move {
                let r = match rec {
                    None => None,
                    Some(rec) => Some(
                        within(
                            deadline,
                            inner.rawx.get(&rec.addr, &rec.chunk_id, start, end),
                        )
                        .await,
                    ),
                };
                (j, r)
            }
        });
        for (j, r) in futures::future::join_all(opening).await {
            match r {
                None => self.dead[j] = true,
                Some(Ok(reader)) => self.readers[j] = Some(reader),
                Some(Err(e)) => self.mark_dead(j, e),
            }
        }
    }

    /// The next `len` bytes of fragment `j` as received (within the fragment
    /// deadline), or `None` (the fragment is then dead).
    async fn read(&mut self, j: usize, len: usize) -> Option<Vec<Bytes>> {
        let deadline = self.inner.config.fragment_deadline;
        let r = self.readers[j].as_mut()?;
        match within(deadline, r.read_pieces(len)).await {
            Ok(pieces) => Some(pieces),
            Err(e) => {
                self.mark_dead(j, e);
                None
            }
        }
    }
}

/// `fut`, or [`Error::Unavailable`] when it takes longer than `deadline`.
async fn within<T>(
    deadline: std::time::Duration,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Unavailable(format!(
            "rawx gave no answer within the fragment deadline ({deadline:?})"
        ))),
    }
}

async fn read_ec(
    inner: &Inner,
    geo: Geometry,
    chunks: &[&ChunkRecord],
    mc_size: u64,
    from: u64,
    to: u64,
    tx: &mpsc::Sender<Result<Bytes>>,
) -> Result<()> {
    let width = geo.k + geo.m;
    let sb = geo.stripe_bytes as u64;
    let first = from / sb;
    let last = (to - 1) / sb;
    let read_end = geo.chunk_offset(last) + geo.shard_len(geo.stripe_len(mc_size, last)) as u64;
    let mut records: Vec<Option<&ChunkRecord>> = vec![None; width];
    for c in chunks {
        if let Some(slot) = records.get_mut(c.fragment as usize) {
            *slot = Some(*c);
        }
    }
    let mut frags = Fragments {
        inner,
        records,
        readers: (0..width).map(|_| None).collect(),
        dead: vec![false; width],
        errors: Vec::new(),
    };
    let begin = geo.chunk_offset(first);
    let mut degraded = false;
    let data: Vec<usize> = (0..geo.k).collect();
    frags.open_all(&data, begin, read_end).await;
    for i in first..=last {
        let len = geo.stripe_len(mc_size, i);
        let sl = geo.shard_len(len);
        let mut shards: Vec<Option<Vec<Bytes>>> = vec![None; width];
        let mut present = 0;
        for (j, shard) in shards.iter_mut().enumerate() {
            if frags.readers[j].is_some() {
                *shard = frags.read(j, sl).await;
                present += usize::from(shard.is_some());
            }
        }
        // Open more fragments (parity first) until k shards of this stripe are here.
        let mut j = geo.k;
        let mut tried_data = false;
        while present < geo.k {
            if j >= width {
                if tried_data {
                    return Err(Error::Quorum {
                        ok: present,
                        needed: geo.k,
                        detail: frags.errors.join("; "),
                    });
                }
                tried_data = true;
                j = 0;
                continue;
            }
            if frags.readers[j].is_none()
                && !frags.dead[j]
                && frags.open(j, geo.chunk_offset(i), read_end).await
            {
                shards[j] = frags.read(j, sl).await;
                present += usize::from(shards[j].is_some());
            }
            j += 1;
        }
        let stripe_start = i * sb;
        let lo = from.max(stripe_start) - stripe_start;
        let hi = to.min(stripe_start + len as u64) - stripe_start;
        if shards[..geo.k].iter().all(Option::is_some) {
            // Intact: the data shards' bytes, in order, are the stripe (the code is
            // systematic): the buffers they arrived in go to the client as they are,
            // sliced to the range, never copied.
            let mut pos = 0u64;
            for piece in shards[..geo.k].iter().flatten().flatten() {
                let (p0, p1) = (pos, pos + piece.len() as u64);
                pos = p1;
                let (a, b) = (lo.max(p0), hi.min(p1));
                if a < b {
                    let slice = piece.slice((a - p0) as usize..(b - p0) as usize);
                    if tx.send(Ok(slice)).await.is_err() {
                        return Ok(());
                    }
                }
                if pos >= hi {
                    break;
                }
            }
            continue;
        }
        if !degraded {
            degraded = true;
            inner.config.counters.degraded_read();
        }
        let joined: Vec<Option<Vec<u8>>> = shards
            .iter()
            .map(|s| s.as_ref().map(|pieces| pieces.concat()))
            .collect();
        let data = ec::reconstruct(geo, sl, &joined)?;
        let mut out = Vec::with_capacity((hi - lo) as usize);
        for (j, shard) in data.iter().enumerate() {
            let s0 = (j * sl) as u64;
            let s1 = s0 + sl as u64;
            let a = lo.max(s0);
            let b = hi.min(s1);
            if a < b {
                out.extend_from_slice(&shard[(a - s0) as usize..(b - s0) as usize]);
            }
        }
        if tx.send(Ok(Bytes::from(out))).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}
