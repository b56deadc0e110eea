//! Request routing and the chunk handlers (PUT, GET, HEAD, DELETE, `/info`,
//! `/metrics`, `/scrub`).

use crate::conn::{BodyReader, Conn, Timeouts};
use crate::error::{Error, Result};
use crate::format::{parse_chunk_id, ChunkAttrs, ChunkMeta};
use crate::http::{parse_range, BodyKind, Method, Request, ResponseHead};
use crate::metrics::{RawxMetrics, CONTENT_TYPE as METRICS_CONTENT_TYPE};
use crate::scrub::Scrubber;
use crate::store::Volume;
use compio::buf::{IntoInner, IoBuf};
use compio::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Bytes read from disk (and sent) per step of a GET, and received per step of a PUT.
pub const PIECE_BYTES: usize = 256 * 1024;
/// Most requests served on one connection before it is closed.
const MAX_REQUESTS_PER_CONNECTION: u64 = 1_000_000;
/// Header carrying the id of the client request (the S3 gateway's `x-amz-request-id`).
pub use oxio_proto::rpc::REQUEST_ID_HEADER;
/// Longest request id kept for logs; longer ones are cut.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// What every connection of a service shares.
#[derive(Debug)]
pub struct Shared {
    /// The volume.
    pub volume: Volume,
    /// Service id.
    pub id: String,
    /// Driver name in use ("io_uring" or "polling").
    pub driver: &'static str,
    /// Largest accepted chunk.
    pub max_chunk_bytes: u64,
    /// Connection timeouts.
    pub timeouts: Timeouts,
    /// Fires when the service stops.
    pub shutdown: CancellationToken,
    /// The service's metrics (one registry per service).
    pub metrics: Arc<RawxMetrics>,
    /// The background scrubber's state and trigger.
    pub scrub: Arc<Scrubber>,
}

/// The request id a client sent, cut to a bounded length on a char boundary.
pub fn request_id(req: &Request) -> &str {
    let id = req.header(REQUEST_ID_HEADER).unwrap_or_default();
    if id.len() <= MAX_REQUEST_ID_BYTES {
        return id;
    }
    let mut end = MAX_REQUEST_ID_BYTES;
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    &id[..end]
}

/// Whether the connection goes on after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    KeepAlive,
    Close,
}

/// Serves requests on one connection until the client leaves, an error forces a
/// close, or the service shuts down.
pub async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut conn = Conn::new(stream, shared.timeouts);
    let mut buf: Vec<u8> = Vec::with_capacity(PIECE_BYTES);
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let req = match conn.read_head(&shared.shutdown).await {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(Error::ClientGone(reason)) => {
                tracing::debug!(%reason, "connection ended inside a request head");
                return;
            }
            Err(e) => {
                let _ = send_error(&mut conn, &shared, &e, true, false).await;
                let wire = conn.take_counters();
                shared.metrics.observe(
                    "OTHER",
                    wire.status,
                    std::time::Duration::ZERO,
                    wire.bytes_in,
                    wire.bytes_out,
                );
                return;
            }
        };
        shared.volume.stats().request();
        let started = Instant::now();
        let target = req.target.clone();
        let span = tracing::info_span!(
            "rawx_request",
            method = req.method.as_str(),
            target = %target,
            request_id = request_id(&req),
        );
        let flow = handle(&mut conn, &req, &shared, &mut buf)
            .instrument(span.clone())
            .await;
        let wire = conn.take_counters();
        let elapsed = started.elapsed();
        shared.metrics.observe(
            req.method.as_str(),
            wire.status,
            elapsed,
            wire.bytes_in,
            wire.bytes_out,
        );
        span.in_scope(|| {
            tracing::info!(
                target: oxio_common::ACCESS_LOG_TARGET,
                status = wire.status.unwrap_or(0),
                bytes_in = wire.bytes_in,
                bytes_out = wire.bytes_out,
                micros = elapsed.as_micros() as u64,
                "rawx access"
            )
        });
        if flow == Flow::Close || !req.keep_alive() || shared.shutdown.is_cancelled() {
            return;
        }
    }
}

async fn handle(conn: &mut Conn, req: &Request, shared: &Shared, buf: &mut Vec<u8>) -> Flow {
    let has_body = !matches!(req.body_kind(), Ok(BodyKind::None | BodyKind::Length(0)));
    match route(conn, req, shared, buf).await {
        Ok(flow) => flow,
        Err(Error::ClientGone(reason)) => {
            tracing::debug!(%reason, "client gone");
            Flow::Close
        }
        Err(e) => {
            // A body we did not read fully makes the connection unusable.
            let close = has_body || !req.keep_alive();
            match send_error(conn, shared, &e, close, req.method == Method::Head).await {
                Ok(()) if !close => Flow::KeepAlive,
                _ => Flow::Close,
            }
        }
    }
}

async fn route(conn: &mut Conn, req: &Request, shared: &Shared, buf: &mut Vec<u8>) -> Result<Flow> {
    let path = &req.target[1..];
    if path == "chunks" || path.starts_with("chunks?") {
        return match req.method {
            Method::Get => list(conn, req, shared).await,
            _ => Err(Error::MethodNotAllowed),
        };
    }
    if path == "info" {
        return match req.method {
            Method::Get => info(conn, shared).await,
            _ => Err(Error::MethodNotAllowed),
        };
    }
    if path == "metrics" {
        return match req.method {
            Method::Get => metrics(conn, shared).await,
            _ => Err(Error::MethodNotAllowed),
        };
    }
    if path == "scrub" {
        if !matches!(req.body_kind()?, BodyKind::None | BodyKind::Length(0)) {
            return Err(Error::BadRequest("/scrub takes no body".into()));
        }
        return match req.method {
            Method::Get => scrub_status(conn, shared).await,
            Method::Post => scrub_start(conn, shared).await,
            _ => Err(Error::MethodNotAllowed),
        };
    }
    let id = parse_chunk_id(path)?;
    tracing::Span::current().record("target", id.as_str());
    match req.method {
        Method::Put => put(conn, req, shared, &id, buf).await,
        Method::Get | Method::Head => {
            if req.body_kind()? != BodyKind::None {
                return Err(Error::BadRequest("GET and HEAD take no body".into()));
            }
            get(conn, req, shared, &id, buf).await
        }
        Method::Delete => {
            shared.volume.delete(&id).await?;
            tracing::debug!(chunk = %id, "chunk deleted");
            send_small(conn, ResponseHead::new(204), b"").await
        }
        Method::Post | Method::Other(_) => Err(Error::MethodNotAllowed),
    }
}

/// A read found a chunk damaged: counted, and put on the scrubber's corrupt list (the
/// list `oxio volume scrub --repair` repairs from), with the header's ids when known.
fn report_corruption(shared: &Shared, err: &Error, meta: Option<&ChunkMeta>) {
    shared.volume.stats().checksum_error();
    let chunk_id = match err {
        Error::ChecksumMismatch { chunk, .. } | Error::CorruptHeader { chunk, .. } => chunk.clone(),
        _ => return,
    };
    let field = |f: fn(&ChunkMeta) -> &String| meta.map(f).cloned().unwrap_or_default();
    shared.scrub.record_corrupt(crate::scrub::CorruptChunk {
        chunk_id,
        container: field(|m| &m.container),
        content: field(|m| &m.content),
        position: field(|m| &m.position),
        error: err.to_string(),
        found_ms: oxio_common::now_ms(),
    });
}

/// Sends a head and a small body in one write.
async fn send_small(conn: &mut Conn, mut head: ResponseHead, body: &[u8]) -> Result<Flow> {
    head.content_length = body.len() as u64;
    conn.set_status(head.status);
    let mut out = Vec::with_capacity(256 + body.len());
    head.encode(&mut out);
    out.extend_from_slice(body);
    let (res, _) = conn.write_all(out).await;
    res?;
    Ok(if head.close {
        Flow::Close
    } else {
        Flow::KeepAlive
    })
}

/// Answers `err`; `head_request`: the body is announced but not sent (HEAD).
async fn send_error(
    conn: &mut Conn,
    shared: &Shared,
    err: &Error,
    close: bool,
    head_request: bool,
) -> Result<()> {
    let status = err.status();
    if err.is_corruption() {
        report_corruption(shared, err, None);
        tracing::error!(error = %err, "chunk corruption detected");
    } else if status >= 500 {
        tracing::error!(error = %err, status, "request failed");
    } else {
        tracing::debug!(error = %err, status, "request rejected");
    }
    let mut head = ResponseHead::new(status).header("content-type", "text/plain");
    if let Some(code) = err.error_code() {
        head = head.header("x-oxio-error", code);
    }
    if let Error::RangeNotSatisfiable { size } = err {
        head = head.header("content-range", format!("bytes */{size}"));
    }
    if matches!(err, Error::MethodNotAllowed) {
        head = head.header("allow", "GET, HEAD, PUT, DELETE");
    }
    head.close = close;
    let body = format!("{err}\n");
    if head_request {
        head.content_length = body.len() as u64;
        conn.set_status(head.status);
        let mut out = Vec::with_capacity(256);
        head.encode(&mut out);
        let (res, _) = conn.write_all(out).await;
        return res;
    }
    send_small(conn, head, body.as_bytes()).await.map(|_| ())
}

/// `GET /chunks?after=ID&limit=N`: one page of the complete chunks, in id order, as
/// JSON `{chunks: [{id, bytes, mtime_ms}], truncated}` (for garbage collection).
async fn list(conn: &mut Conn, req: &Request, shared: &Shared) -> Result<Flow> {
    let (after, limit) = list_query(&req.target)?;
    let volume = shared.volume.root().to_path_buf();
    let chunks =
        compio::runtime::spawn_blocking(move || crate::scan::list_chunks(&volume, &after, limit))
            .await
            .map_err(|_| Error::Runtime("chunk listing task panicked".into()))??;
    let body = serde_json::json!({
        "truncated": chunks.len() == limit.clamp(1, crate::scan::MAX_LIST),
        "chunks": chunks,
    })
    .to_string();
    let head = ResponseHead::new(200).header("content-type", "application/json");
    send_small(conn, head, body.as_bytes()).await
}

/// `after` and `limit` of a `/chunks?...` target.
fn list_query(target: &str) -> Result<(String, usize)> {
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let (mut after, mut limit) = (String::new(), crate::scan::MAX_LIST);
    for pair in query.split('&').filter(|p| !str::is_empty(p)).take(8) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "after" {
            after = value.to_string();
        } else if name == "limit" {
            limit = value
                .parse()
                .map_err(|_| Error::BadRequest(format!("bad limit {value:?}")))?;
        } else {
            return Err(Error::BadRequest(format!("unknown parameter {name:?}")));
        }
    }
    Ok((after, limit))
}

async fn info(conn: &mut Conn, shared: &Shared) -> Result<Flow> {
    let stats = shared.volume.stats();
    let body = serde_json::json!({
        "id": shared.id,
        "chunks": stats.chunks(),
        "bytes": stats.bytes(),
        "driver": shared.driver,
        "direct_io": shared.volume.direct_io(),
        "direct_writes": shared.volume.direct_writes(),
        "capacity_bytes": shared.volume.capacity(),
        "reserved_bytes": stats.reserved(),
        "requests": stats.requests(),
        "checksum_errors": stats.checksum_errors(),
    })
    .to_string();
    let head = ResponseHead::new(200).header("content-type", "application/json");
    send_small(conn, head, body.as_bytes()).await
}

async fn metrics(conn: &mut Conn, shared: &Shared) -> Result<Flow> {
    let body = shared.metrics.render(shared.volume.stats())?;
    let head = ResponseHead::new(200).header("content-type", METRICS_CONTENT_TYPE);
    send_small(conn, head, &body).await
}

async fn scrub_status(conn: &mut Conn, shared: &Shared) -> Result<Flow> {
    let body = serde_json::to_vec(&shared.scrub.status())
        .map_err(|e| Error::Runtime(format!("encode scrub status: {e}")))?;
    let head = ResponseHead::new(200).header("content-type", "application/json");
    send_small(conn, head, &body).await
}

async fn scrub_start(conn: &mut Conn, shared: &Shared) -> Result<Flow> {
    shared.scrub.request_pass()?;
    tracing::info!("scrub pass requested");
    let head = ResponseHead::new(202).header("content-type", "application/json");
    send_small(conn, head, br#"{"accepted":true}"#).await
}

fn attrs_from(req: &Request) -> Result<ChunkAttrs> {
    let get = |n: &str| req.header(n).unwrap_or_default().to_string();
    let attrs = ChunkAttrs {
        container: get("x-oxio-chunk-container"),
        content: get("x-oxio-chunk-content"),
        position: get("x-oxio-chunk-position"),
        policy: get("x-oxio-chunk-policy"),
    };
    attrs.validate()?;
    Ok(attrs)
}

async fn put(
    conn: &mut Conn,
    req: &Request,
    shared: &Shared,
    id: &str,
    buf: &mut Vec<u8>,
) -> Result<Flow> {
    let attrs = attrs_from(req)?;
    let kind = req.body_kind()?;
    let limit_bytes = shared.max_chunk_bytes;
    match kind {
        BodyKind::None => return Err(Error::LengthRequired),
        BodyKind::Length(n) if n > limit_bytes => return Err(Error::TooLarge { limit_bytes }),
        BodyKind::Length(n) => shared.volume.check_room(n)?,
        _ => {}
    }
    let size = match kind {
        BodyKind::Length(n) => Some(n),
        _ => None,
    };
    let mut writer = shared.volume.create(id, attrs, size).await?;
    if req.expects_continue() {
        let (res, _) = conn.write_all(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]).await;
        res?;
    }
    let mut body = BodyReader::new(kind);
    let mut data = std::mem::take(buf);
    data.clear();
    data.reserve(PIECE_BYTES);
    // Bounded: each round consumes at least one body byte or ends.
    loop {
        data.clear();
        let mut ended = false;
        while data.len() < data.capacity() {
            let (res, back) = body.read(conn, data).await;
            data = back;
            if res? == 0 {
                ended = true;
                break;
            }
        }
        if writer.written() + data.len() as u64 > limit_bytes {
            return Err(Error::TooLarge { limit_bytes });
        }
        if !data.is_empty() {
            let (res, back) = writer.append(data).await;
            data = back;
            res?;
        }
        if ended || body.is_done() {
            break;
        }
    }
    *buf = data;
    let meta = writer.commit().await?;
    tracing::debug!(chunk = %id, size = meta.size, "chunk stored");
    let head = ResponseHead::new(201)
        .header("x-oxio-chunk-size", meta.size.to_string())
        .header("x-oxio-chunk-hash", meta.hash_string());
    send_small(conn, head, b"").await
}

fn chunk_headers(mut head: ResponseHead, meta: &ChunkMeta) -> ResponseHead {
    for (name, value) in [
        ("x-oxio-chunk-container", &meta.container),
        ("x-oxio-chunk-content", &meta.content),
        ("x-oxio-chunk-position", &meta.position),
        ("x-oxio-chunk-policy", &meta.policy),
    ] {
        if !value.is_empty() {
            head = head.header(name, value.clone());
        }
    }
    head.header("x-oxio-chunk-size", meta.size.to_string())
        .header("x-oxio-chunk-hash", meta.hash_string())
        .header("accept-ranges", "bytes")
}

async fn get(
    conn: &mut Conn,
    req: &Request,
    shared: &Shared,
    id: &str,
    buf: &mut Vec<u8>,
) -> Result<Flow> {
    let reader = shared.volume.open(id).await?;
    let meta = reader.meta().clone();
    let (status, first, last) = match req.header("range") {
        Some(r) => {
            let (a, b) = parse_range(r, meta.size)?;
            (206, a, b)
        }
        None if meta.size == 0 => (200, 0, 0),
        None => (200, 0, meta.size - 1),
    };
    let len = if meta.size == 0 { 0 } else { last - first + 1 };
    let mut head = chunk_headers(ResponseHead::new(status), &meta);
    if status == 206 {
        head = head.header(
            "content-range",
            format!("bytes {first}-{last}/{}", meta.size),
        );
    }
    head.content_length = len;
    conn.set_status(head.status);
    if req.method == Method::Head || len == 0 {
        let mut out = Vec::with_capacity(512);
        head.encode(&mut out);
        let (res, _) = conn.write_all(out).await;
        res?;
        return Ok(Flow::KeepAlive);
    }
    let seg = u64::from(meta.segment_bytes);
    let piece_segments = (PIECE_BYTES as u64 / seg).max(1);
    let last_segment = meta.segment_of(last);
    let mut segment = meta.segment_of(first);
    let mut data = std::mem::take(buf);
    // The first piece is read and verified before the head goes out, so a checksum
    // mismatch there is answered with a 500.
    let mut head_bytes = Some(head);
    // Bounded by the number of segments in the range.
    while segment <= last_segment {
        let count = piece_segments.min(last_segment - segment + 1);
        let (res, back) = reader.read_segments(segment, count, data).await;
        data = back;
        if let Err(e) = res {
            if head_bytes.is_some() {
                *buf = data;
                return Err(e);
            }
            if e.is_corruption() {
                report_corruption(shared, &e, Some(reader.meta()));
            }
            tracing::error!(chunk = %id, error = %e, "read failed mid-stream, closing connection");
            return Ok(Flow::Close);
        }
        let piece_start = segment * seg;
        let from = (first.max(piece_start) - piece_start) as usize;
        let to = ((last + 1).min(piece_start + data.len() as u64) - piece_start) as usize;
        if let Some(head) = head_bytes.take() {
            // Head and first piece in one write, without copying the piece.
            let mut out = Vec::with_capacity(512);
            head.encode(&mut out);
            let (res, back) = conn
                .write_vectored_all((out, (data.slice(from..to),)))
                .await;
            res?;
            data = back
                .map(|(_, (piece,))| piece.into_inner())
                .unwrap_or_default();
        } else {
            let (res, back) = conn.write_all(data.slice(from..to)).await;
            res?;
            data = back.map(IntoInner::into_inner).unwrap_or_default();
        }
        segment += count;
    }
    *buf = data;
    Ok(Flow::KeepAlive)
}
