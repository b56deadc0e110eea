//! HTTP client of the rawx chunk servers: streaming chunk uploads, range reads,
//! deletes. One pooled connection set shared by every call.

use crate::client::SdkCounters;
use crate::local::{LocalChunk, LocalOpener};
use crate::local_write::{LocalChunkWrite, NewChunk};
use crate::{Error, Result};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The request id every internal call of one client request carries (the rawx logs
/// it in its request span, the directory and the conscience in their RPC spans):
/// set with [`with_request_id`]; tasks spawned inside must be wrapped again with
/// [`current_request_id`] (the sdk does so for its own).
pub use oxio_proto::rpc::{
    current_request_id, valid_request_id, with_request_id, REQUEST_ID_HEADER,
};

/// Adds the current request id, if any, to a rawx request.
fn tag(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match current_request_id() {
        Some(id) => rb.header(REQUEST_ID_HEADER, &*id),
        None => rb,
    }
}

/// Metadata a rawx stores in the chunk file header.
#[derive(Clone, Debug)]
pub struct ChunkMeta {
    /// Container id.
    pub cid: String,
    /// Content id, hex.
    pub content_id: String,
    /// "N.M" or "N".
    pub position: String,
    /// Storage policy name.
    pub policy: String,
    /// Most data bytes the chunk will hold, when known: a rawx on this host then
    /// sets that much room aside and lets the chunk be written locally.
    pub max_bytes: Option<u64>,
}

/// What a rawx says after storing a chunk.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Data bytes.
    pub size: u64,
    /// "crc32c:xxxxxxxx".
    pub hash: String,
}

/// Shared HTTP client for rawx.
#[derive(Clone)]
pub struct RawxClient {
    http: reqwest::Client,
    /// Short-circuit reads of rawx on this host, when set.
    local: Option<(LocalOpener, Arc<SdkCounters>)>,
    /// Also write new chunks through the local-write sockets of that folder.
    local_writes: bool,
}

impl RawxClient {
    /// A client with pooled keep-alive connections.
    pub fn new(connect_timeout: Duration) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}")))?;
        Ok(RawxClient {
            http,
            local: None,
            local_writes: false,
        })
    }

    /// Reads chunks of the rawx whose local-read socket is in `dir` straight from
    /// their files ([`crate::local`]), counting them in `counters`.
    pub fn with_local_reads(mut self, dir: std::path::PathBuf, counters: Arc<SdkCounters>) -> Self {
        self.local = Some((LocalOpener::new(dir), counters));
        self
    }

    /// With local reads set, also writes new chunks of a known maximum size
    /// ([`ChunkMeta::max_bytes`]) into their files through the rawx's local-write
    /// socket ([`crate::local_write`]).
    pub fn with_local_writes(mut self, on: bool) -> Self {
        self.local_writes = on;
        self
    }

    /// Uploads one chunk whose bytes arrive on `body` (a bounded channel: the
    /// producer waits when the rawx is slower) and end with an empty `Bytes`:
    /// written into its file here when the rawx offers a local write, else sent with
    /// an HTTP PUT. Returns once the rawx has made the chunk durable.
    pub async fn put(
        &self,
        addr: &str,
        chunk_id: &str,
        meta: &ChunkMeta,
        body: mpsc::Receiver<Bytes>,
    ) -> Result<Stored> {
        if let (Some((opener, counters)), true, Some(max_bytes)) =
            (&self.local, self.local_writes, meta.max_bytes)
        {
            let chunk = NewChunk {
                addr,
                chunk_id,
                cid: &meta.cid,
                content_id: &meta.content_id,
                position: &meta.position,
                policy: &meta.policy,
                max_bytes,
            };
            if let Some(w) = crate::local_write::open(opener.dir(), &chunk).await {
                counters.local_write();
                return put_local(addr, w, body).await;
            }
        }
        let stream = upload_body(body);
        let resp = tag(self.http.put(format!("http://{addr}/{chunk_id}")))
            .header("x-oxio-chunk-container", &meta.cid)
            .header("x-oxio-chunk-content", &meta.content_id)
            .header("x-oxio-chunk-position", &meta.position)
            .header("x-oxio-chunk-policy", &meta.policy)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("rawx {addr}: {e}")))?;
        let status = resp.status();
        if status != reqwest::StatusCode::CREATED {
            let text = resp.text().await.unwrap_or_default();
            return Err(Error::Unavailable(format!(
                "rawx {addr} answered {status}: {}",
                text.trim()
            )));
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let size = header("x-oxio-chunk-size")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Internal(format!("rawx {addr} gave no chunk size")))?;
        let hash = header("x-oxio-chunk-hash").unwrap_or_default();
        Ok(Stored { size, hash })
    }

    /// Opens a read of bytes `start..end` (end exclusive) of a chunk: from its file
    /// when its rawx offers a local read, over HTTP otherwise.
    pub async fn get(
        &self,
        addr: &str,
        chunk_id: &str,
        start: u64,
        end: u64,
    ) -> Result<ChunkReader> {
        if end <= start {
            return Err(Error::Internal("empty chunk range".into()));
        }
        if let Some((opener, counters)) = &self.local {
            if let Some(chunk) = opener.open(addr, chunk_id, start, end).await {
                counters.local_read();
                return Ok(ChunkReader {
                    source: Source::Local {
                        chunk,
                        client: self.clone(),
                        chunk_id: chunk_id.to_string(),
                    },
                    addr: addr.to_string(),
                });
            }
        }
        let body = self.get_http(addr, chunk_id, start, end).await?;
        Ok(ChunkReader {
            source: Source::Http(body),
            addr: addr.to_string(),
        })
    }

    /// Opens an HTTP read of bytes `start..end` of a chunk.
    async fn get_http(&self, addr: &str, chunk_id: &str, start: u64, end: u64) -> Result<HttpBody> {
        let resp = tag(self.http.get(format!("http://{addr}/{chunk_id}")))
            .header("range", format!("bytes={}-{}", start, end - 1))
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("rawx {addr}: {e}")))?;
        let status = resp.status();
        if status != reqwest::StatusCode::PARTIAL_CONTENT && status != reqwest::StatusCode::OK {
            return Err(Error::Unavailable(format!(
                "rawx {addr} chunk {chunk_id}: {status}"
            )));
        }
        if status == reqwest::StatusCode::OK && start != 0 {
            return Err(Error::Internal(format!("rawx {addr} ignored the range")));
        }
        Ok(HttpBody {
            stream: Box::pin(resp.bytes_stream()),
            queued: std::collections::VecDeque::new(),
            queued_len: 0,
            remaining: end - start,
        })
    }

    /// Deletes a chunk; a chunk already gone counts as deleted.
    pub async fn delete(&self, addr: &str, chunk_id: &str) -> Result<()> {
        let resp = tag(self.http.delete(format!("http://{addr}/{chunk_id}")))
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("rawx {addr}: {e}")))?;
        match resp.status() {
            s if s.is_success() || s == reqwest::StatusCode::NOT_FOUND => Ok(()),
            s => Err(Error::Unavailable(format!(
                "rawx {addr} delete {chunk_id}: {s}"
            ))),
        }
    }
}

/// One complete chunk file a rawx lists (`GET /chunks`).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ListedChunk {
    /// Upper-case 64-hex chunk id.
    pub id: String,
    /// File size in bytes.
    pub bytes: u64,
    /// Last modification, milliseconds since the epoch.
    pub mtime_ms: u64,
}

/// One page of a rawx's chunk listing.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ChunkPage {
    /// The chunks, in id order.
    pub chunks: Vec<ListedChunk>,
    /// More may follow the last one.
    pub truncated: bool,
}

/// Largest listing page body accepted (1,000 entries take about 120 KB).
const MAX_LIST_BODY: usize = 1 << 20;

impl RawxClient {
    /// Lists up to `limit` complete chunks of the rawx at `addr` with ids after
    /// `after` ("" = from the start).
    pub async fn list_chunks(&self, addr: &str, after: &str, limit: usize) -> Result<ChunkPage> {
        let req = tag(self
            .http
            .get(format!("http://{addr}/chunks?after={after}&limit={limit}")));
        get_json(req, addr, "chunk listing", MAX_LIST_BODY).await
    }
}

/// Sends a GET built by `req` to the rawx at `addr` and decodes its JSON answer of at
/// most `max_body` bytes; `what` names the resource in errors.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    req: reqwest::RequestBuilder,
    addr: &str,
    what: &str,
    max_body: usize,
) -> Result<T> {
    let resp = req
        .send()
        .await
        .map_err(|e| Error::Unavailable(format!("rawx {addr}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::Unavailable(format!("rawx {addr} {what}: {status}")));
    }
    let too_large = || Error::Internal(format!("rawx {addr}: {what} too large"));
    if resp.content_length().is_some_and(|n| n as usize > max_body) {
        return Err(too_large());
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| Error::Unavailable(format!("rawx {addr}: {e}")))?;
    if body.len() > max_body {
        return Err(too_large());
    }
    serde_json::from_slice(&body)
        .map_err(|e| Error::Internal(format!("rawx {addr}: bad {what}: {e}")))
}

/// Writes the bytes of `body` into the chunk's file and commits it (see
/// [`RawxClient::put`] for the end marker); a body abandoned without it, or any
/// failure, drops the write, and the rawx removes the pending file.
async fn put_local(
    addr: &str,
    mut w: LocalChunkWrite,
    mut body: mpsc::Receiver<Bytes>,
) -> Result<Stored> {
    let failed = |e: String| Error::Unavailable(format!("rawx {addr} local write: {e}"));
    // Bounded by the body: each pass takes one piece of it.
    loop {
        match body.recv().await {
            Some(piece) if piece.is_empty() => break,
            Some(piece) => w.write(piece).await.map_err(failed)?,
            None => return Err(failed("chunk upload abandoned".into())),
        }
    }
    let (size, hash) = w.commit().await.map_err(failed)?;
    Ok(Stored { size, hash })
}

/// The body of a chunk upload. The producer ends a complete chunk with an empty
/// `Bytes`; a channel closed without it (the upload was abandoned: client gone,
/// quorum lost, error) ends the body with an error, so the HTTP request is cut
/// short and the rawx discards the partial chunk instead of storing it.
fn upload_body(
    mut rx: mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    let mut state = BodyState::Open;
    futures::stream::poll_fn(move |cx| {
        if state != BodyState::Open {
            return std::task::Poll::Ready(None);
        }
        rx.poll_recv(cx).map(|item| match item {
            Some(b) if b.is_empty() => {
                state = BodyState::Complete;
                None
            }
            Some(b) => Some(Ok(b)),
            None => {
                state = BodyState::Aborted;
                Some(Err(std::io::Error::other("chunk upload abandoned")))
            }
        })
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Open,
    Complete,
    Aborted,
}

type ByteStream = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A read of a chunk range, consumed in exact-size pieces: over HTTP, or from the
/// chunk file when its rawx offered a local read (falling back to HTTP, from where
/// it stopped, on any failure there). HTTP bodies' buffers are kept as they arrived:
/// [`ChunkReader::read_pieces`] hands them out without copying,
/// [`ChunkReader::read_exact`] joins them when it must.
pub struct ChunkReader {
    source: Source,
    addr: String,
}

enum Source {
    Http(HttpBody),
    Local {
        chunk: LocalChunk,
        /// Where the HTTP fallback goes.
        client: RawxClient,
        chunk_id: String,
    },
}

/// A streaming HTTP body of a chunk range.
struct HttpBody {
    stream: ByteStream,
    /// Received and not yet consumed, in order.
    queued: std::collections::VecDeque<Bytes>,
    queued_len: usize,
    remaining: u64,
}

impl HttpBody {
    /// Receives until `n` bytes are queued.
    async fn fill(&mut self, n: usize, addr: &str) -> Result<()> {
        if n as u64 > self.remaining + self.queued_len as u64 {
            return Err(Error::Internal(format!(
                "read past the requested range of {addr}"
            )));
        }
        while self.queued_len < n {
            match self.stream.next().await {
                Some(Ok(b)) => {
                    self.remaining = self.remaining.saturating_sub(b.len() as u64);
                    self.queued_len += b.len();
                    if !b.is_empty() {
                        self.queued.push_back(b);
                    }
                }
                Some(Err(e)) => return Err(Error::Unavailable(format!("rawx {addr}: {e}"))),
                None => {
                    return Err(Error::Unavailable(format!(
                        "rawx {addr} ended the chunk early"
                    )))
                }
            }
        }
        Ok(())
    }

    async fn read_pieces(&mut self, n: usize, addr: &str) -> Result<Vec<Bytes>> {
        self.fill(n, addr).await?;
        let mut out = Vec::new();
        let mut left = n;
        while left > 0 {
            let Some(mut b) = self.queued.pop_front() else {
                break;
            };
            if b.len() > left {
                self.queued.push_front(b.split_off(left));
            }
            left -= b.len();
            self.queued_len -= b.len();
            out.push(b);
        }
        Ok(out)
    }
}

impl ChunkReader {
    /// The next `n` bytes as the buffers they arrived in (the last one split), with
    /// no copy; an error if the rawx stops early (a checksum failure on the rawx cuts
    /// the body short).
    pub async fn read_pieces(&mut self, n: usize) -> Result<Vec<Bytes>> {
        let addr = &self.addr;
        let (failure, client, chunk_id, from, end) = match &mut self.source {
            Source::Http(body) => return body.read_pieces(n, addr).await,
            Source::Local {
                chunk,
                client,
                chunk_id,
            } => match chunk.read_pieces(n).await {
                Ok(pieces) => return Ok(pieces),
                Err(e) => (
                    e,
                    client.clone(),
                    chunk_id.clone(),
                    chunk.position(),
                    chunk.end(),
                ),
            },
        };
        tracing::warn!(rawx = %addr, chunk = %chunk_id, error = %failure, "local read failed; reading over HTTP");
        if let Some((opener, counters)) = &client.local {
            counters.local_fallback();
            opener.forget(addr, &chunk_id);
        }
        let mut body = client.get_http(addr, &chunk_id, from, end).await?;
        let pieces = body.read_pieces(n, addr).await;
        self.source = Source::Http(body);
        pieces
    }

    /// The next `n` bytes in one buffer (copied together only when they arrived in
    /// several); errors as [`ChunkReader::read_pieces`].
    pub async fn read_exact(&mut self, n: usize) -> Result<Bytes> {
        let mut pieces = self.read_pieces(n).await?;
        if pieces.len() == 1 {
            return Ok(pieces.pop().unwrap_or_default());
        }
        let mut joined = BytesMut::with_capacity(n);
        for p in &pieces {
            joined.extend_from_slice(p);
        }
        Ok(joined.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_id_is_scoped_to_the_task() {
        assert!(current_request_id().is_none());
        let seen = with_request_id(Some(Arc::from("REQ42")), async { current_request_id() }).await;
        assert_eq!(seen.as_deref(), Some("REQ42"));
        assert!(current_request_id().is_none());
        let none = with_request_id(None, async { current_request_id() }).await;
        assert!(none.is_none());
        let built = with_request_id(Some(Arc::from("REQ43")), async {
            tag(reqwest::Client::new().get("http://127.0.0.1:1/x"))
                .build()
                .unwrap()
        })
        .await;
        assert_eq!(built.headers()[REQUEST_ID_HEADER], "REQ43");
    }

    async fn drain(rx: mpsc::Receiver<Bytes>) -> Vec<std::io::Result<Bytes>> {
        upload_body(rx).collect().await
    }

    #[tokio::test]
    async fn body_ends_cleanly_only_after_the_end_marker() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        tx.send(Bytes::new()).await.unwrap();
        drop(tx);
        let items = drain(rx).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap(), &Bytes::from_static(b"abc"));

        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        drop(tx);
        let items = drain(rx).await;
        assert_eq!(items.len(), 2);
        assert!(
            items[1].is_err(),
            "a body closed without the marker must fail"
        );
    }
}
