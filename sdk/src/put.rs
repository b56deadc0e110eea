//! Streaming upload: inline when small, otherwise metachunk by metachunk, stripe by
//! stripe, to the rawx the conscience picks. The proxy holds at most one stripe plus
//! the shards queued toward each rawx, whatever the object size.

use crate::client::Inner;
use crate::ec::{Geometry, StripeEncoder, BUFFER_ALIGN};
use crate::md5_batch::{self, StreamMd5};
use crate::rawx::ChunkMeta;
use crate::{Error, Result};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use oxio_common::aligned::AlignedBuf;
use oxio_common::{ChunkId, ContentId, StoragePolicy};
use oxio_proto::v1::ChunkRecord;
use std::collections::VecDeque;
use std::fmt::Display;
use tokio::sync::mpsc;

/// Shards queued toward one rawx before the producer waits.
const QUEUE_DEPTH: usize = 4;

/// The outcome of streaming an object's bytes.
#[derive(Debug)]
pub struct Uploaded {
    /// The content id used for the chunks.
    pub content_id: ContentId,
    /// Bytes received.
    pub size: u64,
    /// MD5 of the bytes.
    pub md5: [u8; 16],
    /// The bytes, when small enough to be stored inline.
    pub inline: Option<Bytes>,
    /// Policy used for chunks ("INLINE" when inline).
    pub policy: String,
    /// Data bytes of each metachunk.
    pub metachunk_sizes: Vec<u64>,
    /// Every chunk written.
    pub chunks: Vec<ChunkRecord>,
    /// Some metachunk was placed with less spread than the topology allows.
    pub placement_degraded: bool,
}

/// The body as it arrives: its pieces are kept as received until taken, so each
/// byte is copied at most once, into the stripe it belongs to.
struct Incoming<S> {
    body: S,
    pieces: VecDeque<Bytes>,
    /// Bytes in `pieces`.
    len: usize,
    /// Bytes received so far.
    received: u64,
}

impl<S, E> Incoming<S>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: Display,
{
    fn new(body: S) -> Self {
        Incoming {
            body,
            pieces: VecDeque::new(),
            len: 0,
            received: 0,
        }
    }

    /// Receives until `want` bytes are held or the body ends; false when it ended.
    async fn fill(&mut self, want: usize) -> Result<bool> {
        while self.len < want {
            match self.body.next().await {
                Some(Ok(b)) => {
                    self.received += b.len() as u64;
                    self.len += b.len();
                    if !b.is_empty() {
                        self.pieces.push_back(b);
                    }
                }
                Some(Err(e)) => return Err(Error::Body(e.to_string())),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// The next `n` bytes held (at most [`Incoming::len`]): a slice of one piece
    /// when it holds them all, else one buffer aligned to [`BUFFER_ALIGN`] they are
    /// copied into.
    fn take(&mut self, n: usize) -> Result<Bytes> {
        let n = n.min(self.len);
        if let Some(front) = self.pieces.front_mut() {
            if front.len() >= n {
                self.len -= n;
                let out = front.split_to(n);
                if front.is_empty() {
                    self.pieces.pop_front();
                }
                return Ok(out);
            }
        }
        let mut out = AlignedBuf::with_capacity(n, BUFFER_ALIGN)
            .map_err(|e| Error::Internal(format!("stripe buffer: {e}")))?;
        self.len -= n;
        // Bounded: each pass moves a piece, or part of one and ends.
        while out.len() < n {
            let Some(mut piece) = self.pieces.pop_front() else {
                break;
            };
            let need = n - out.len();
            if piece.len() > need {
                out.push(&piece.split_to(need));
                self.pieces.push_front(piece);
            } else {
                out.push(&piece);
            }
        }
        Ok(Bytes::from_owner(out))
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Streams `body` into the grid for container `cid`: inline when shorter than the
/// client's `inline_max_bytes`, chunked otherwise, under a fresh content id.
pub async fn upload<S, E>(
    inner: &Inner,
    cid: &str,
    body: S,
    expected_len: Option<u64>,
    policy: StoragePolicy,
) -> Result<Uploaded>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
    E: Display,
{
    let spec = UploadSpec {
        content_id: ContentId::random(),
        policy,
        inline_max: inner.config.inline_max_bytes,
        expected_len,
    };
    upload_with(inner, cid, body, spec).await
}

/// How [`upload_with`] stores a body.
#[derive(Clone, Debug)]
pub struct UploadSpec {
    /// Content id written into the chunks.
    pub content_id: ContentId,
    /// Policy of the chunks.
    pub policy: StoragePolicy,
    /// Bodies strictly shorter are returned inline; 0 forces the chunked path (an
    /// empty body then yields no metachunk at all).
    pub inline_max: u64,
    /// Length the client announced, checked against what arrives.
    pub expected_len: Option<u64>,
}

/// Streams `body` into the grid for container `cid` as `spec` says.
pub async fn upload_with<S, E>(
    inner: &Inner,
    cid: &str,
    body: S,
    spec: UploadSpec,
) -> Result<Uploaded>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
    E: Display,
{
    let UploadSpec {
        content_id,
        policy,
        inline_max,
        expected_len,
    } = spec;
    let mut incoming = Incoming::new(body);
    let inline_max = usize::try_from(inline_max).unwrap_or(usize::MAX);
    let more = incoming.fill(inline_max.max(1)).await?;
    if !more && incoming.len() < inline_max {
        check_len(expected_len, incoming.received)?;
        let data = incoming.take(incoming.len())?;
        return Ok(Uploaded {
            content_id,
            size: incoming.received,
            md5: md5_batch::md5(&data),
            inline: Some(data),
            policy: "INLINE".into(),
            metachunk_sizes: Vec::new(),
            chunks: Vec::new(),
            placement_degraded: false,
        });
    }
    if !more && incoming.is_empty() {
        // Forced chunked path with an empty body: no metachunk at all (and the ended
        // body is not polled again).
        check_len(expected_len, incoming.received)?;
        return Ok(Uploaded {
            content_id,
            size: 0,
            md5: md5_batch::md5(b""),
            inline: None,
            policy: policy.to_string(),
            metachunk_sizes: Vec::new(),
            chunks: Vec::new(),
            placement_degraded: false,
        });
    }
    let mut written: Vec<ChunkRecord> = Vec::new();
    let mut placement_degraded = false;
    let mut md5 = StreamMd5::new();
    let result = upload_chunked(
        inner,
        cid,
        &content_id,
        &mut incoming,
        policy,
        expected_len,
        &mut md5,
        &mut written,
        &mut placement_degraded,
    )
    .await;
    let received = incoming.received;
    let result = result.and_then(|sizes| check_len(expected_len, received).map(|_| sizes));
    let result = match result {
        Ok(sizes) => md5.finalize().await.map(|digest| (sizes, digest)),
        Err(e) => Err(e),
    };
    match result {
        Ok((metachunk_sizes, digest)) => Ok(Uploaded {
            content_id,
            size: received,
            md5: digest,
            inline: None,
            policy: policy.to_string(),
            metachunk_sizes,
            chunks: written,
            placement_degraded,
        }),
        Err(e) => {
            inner.delete_chunks_later(written);
            Err(e)
        }
    }
}

fn check_len(expected: Option<u64>, got: u64) -> Result<()> {
    match expected {
        Some(e) if e != got => Err(Error::IncompleteBody { expected: e, got }),
        _ => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn upload_chunked<S, E>(
    inner: &Inner,
    cid: &str,
    content_id: &ContentId,
    incoming: &mut Incoming<S>,
    policy: StoragePolicy,
    expected_len: Option<u64>,
    md5: &mut StreamMd5,
    written: &mut Vec<ChunkRecord>,
    placement_degraded: &mut bool,
) -> Result<Vec<u64>>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
    E: Display,
{
    let cfg = &inner.config;
    let stripe_bytes = cfg.stripe_bytes;
    let width = policy.width();
    let quorum = policy.write_quorum();
    let mut encoder = match policy {
        StoragePolicy::ErasureCoded { k, m } => Some(StripeEncoder::new(Geometry {
            k: k as usize,
            m: m as usize,
            stripe_bytes,
        })),
        StoragePolicy::Replicated { .. } => None,
    };
    let mut sizes = Vec::new();
    let mut eof = false;
    let mut metachunk = 0u32;
    while !eof {
        // Only start a metachunk when there is at least one byte for it.
        if incoming.is_empty() && !incoming.fill(1).await? {
            break;
        }
        let (targets, degraded) = inner.conscience.place("rawx", width, &[]).await?;
        if degraded {
            tracing::warn!(
                content = %content_id,
                metachunk,
                "metachunk placed with less spread than the topology allows; content flagged"
            );
            *placement_degraded = true;
        }
        // The most this metachunk holds: what is left of the announced length, up to
        // a whole metachunk; and so the most each of its chunks holds.
        let done: u64 = sizes.iter().sum();
        let mc_max = expected_len.map_or(cfg.metachunk_bytes, |n| {
            n.saturating_sub(done).clamp(1, cfg.metachunk_bytes)
        });
        let chunk_max = match encoder.as_ref() {
            Some(enc) => enc.geometry().chunk_len(mc_max),
            None => mc_max,
        };
        let mut senders = Vec::with_capacity(width);
        let mut tasks = Vec::with_capacity(width);
        for (j, svc) in targets.iter().enumerate() {
            let info = svc.info.clone().unwrap_or_default();
            let chunk_id = ChunkId::random().to_string();
            let (tx, rx) = mpsc::channel::<Bytes>(QUEUE_DEPTH);
            let meta = ChunkMeta {
                cid: cid.to_string(),
                content_id: content_id.to_string(),
                position: match policy {
                    StoragePolicy::ErasureCoded { .. } => format!("{metachunk}.{j}"),
                    StoragePolicy::Replicated { .. } => format!("{metachunk}"),
                },
                policy: policy.to_string(),
                max_bytes: Some(chunk_max),
            };
            let rawx = inner.rawx.clone();
            let addr = info.addr.clone();
            let id = chunk_id.clone();
            let request_id = crate::rawx::current_request_id();
            tasks.push(tokio::spawn(crate::rawx::with_request_id(
                request_id,
                async move {
                    let stored = rawx.put(&addr, &id, &meta, rx).await;
                    (info, id, stored)
                },
            )));
            senders.push(Some(tx));
        }
        let mut size = 0u64;
        let mut failed = 0usize;
        while size < cfg.metachunk_bytes {
            let want = (stripe_bytes as u64).min(cfg.metachunk_bytes - size) as usize;
            if !incoming.fill(want).await? {
                eof = true;
            }
            let n = want.min(incoming.len());
            if n == 0 {
                break;
            }
            let stripe = incoming.take(n)?;
            md5.update(stripe.clone()).await?;
            size += n as u64;
            let shards: Vec<Bytes> = match encoder.as_mut() {
                Some(enc) => enc.encode(&stripe)?,
                None => vec![stripe; width],
            };
            for (j, shard) in shards.into_iter().enumerate() {
                if let Some(tx) = &senders[j] {
                    // A rawx that takes nothing for the fragment deadline is left
                    // behind (its upload ends as aborted); the others go on.
                    let sent = tokio::time::timeout(cfg.fragment_deadline, tx.send(shard)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        if sent.is_err() {
                            tracing::warn!(rawx = %targets[j].info.as_ref().map(|i| i.id.as_str()).unwrap_or(""), deadline = ?cfg.fragment_deadline, "rawx too slow, fragment abandoned");
                        }
                        senders[j] = None;
                        failed += 1;
                    }
                }
            }
            if width - failed < quorum {
                break;
            }
            if eof {
                break;
            }
        }
        if width - failed >= quorum {
            // The end marker: without it a chunk upload ends as aborted and the
            // rawx discards it.
            for tx in senders.iter().flatten() {
                let _ = tokio::time::timeout(cfg.fragment_deadline, tx.send(Bytes::new())).await;
            }
        }
        drop(senders);
        let mut ok = 0usize;
        let mut errors = Vec::new();
        for (j, mut t) in tasks.into_iter().enumerate() {
            // Every byte is sent: each rawx has the fragment deadline to say it is
            // durable, else the fragment counts as failed (its upload is dropped).
            let answer = match tokio::time::timeout(cfg.fragment_deadline, &mut t).await {
                Ok(a) => a,
                Err(_) => {
                    t.abort();
                    errors.push(format!(
                        "fragment {j}: no answer within the fragment deadline ({:?})",
                        cfg.fragment_deadline
                    ));
                    continue;
                }
            };
            match answer {
                Ok((info, chunk_id, Ok(stored))) => {
                    ok += 1;
                    written.push(ChunkRecord {
                        metachunk,
                        fragment: j as u32,
                        rawx_id: info.id,
                        addr: info.addr,
                        chunk_id,
                        size: stored.size,
                        hash: stored.hash,
                    });
                }
                Ok((info, _, Err(e))) => {
                    tracing::warn!(rawx = %info.id, error = %e, "chunk write failed");
                    errors.push(format!("{}: {e}", info.id));
                }
                Err(e) => errors.push(format!("upload task: {e}")),
            }
        }
        if ok < quorum {
            return Err(Error::Quorum {
                ok,
                needed: quorum,
                detail: errors.join("; "),
            });
        }
        sizes.push(size);
        metachunk += 1;
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pieces_are_taken_in_order_and_copied_only_when_joined() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let cuts = [0usize, 3000, 3001, 7000, 10_000];
        let pieces: Vec<std::result::Result<Bytes, std::io::Error>> = cuts
            .windows(2)
            .map(|w| Ok(Bytes::copy_from_slice(&data[w[0]..w[1]])))
            .collect();
        let mut incoming = Incoming::new(futures::stream::iter(pieces));
        assert!(incoming.fill(2000).await.unwrap());
        // Within the first piece: a slice of it.
        let a = incoming.take(2000).unwrap();
        assert_eq!(&a[..], &data[..2000]);
        assert!(incoming.fill(5000).await.unwrap());
        // Across three pieces: joined, into a buffer a direct write takes as it is.
        let b = incoming.take(5000).unwrap();
        assert_eq!(&b[..], &data[2000..7000]);
        assert_eq!(
            b.as_ptr() as usize % BUFFER_ALIGN,
            0,
            "joined stripe aligned"
        );
        assert!(!incoming.fill(5000).await.unwrap(), "the body ended");
        assert_eq!(incoming.len(), 3000);
        assert_eq!(incoming.received, 10_000);
        let c = incoming.take(5000).unwrap();
        assert_eq!(&c[..], &data[7000..]);
        assert!(incoming.is_empty());
    }
}
