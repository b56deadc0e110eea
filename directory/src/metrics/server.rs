//! The tiny HTTP/1.1 server answering `GET /metrics` of a directory node, with a cap
//! on connections, a deadline per connection and per request head, and a head size
//! limit.

use super::{DirectoryMetrics, CONTENT_TYPE};
use crate::error::{Error, Result};
use crate::node::Node;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Most metrics connections served at once; more wait in the accept backlog.
const MAX_CONNECTIONS: usize = 64;
/// Longest time one metrics connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Binds the metrics listener (before anything else starts, so a taken port fails the
/// start cleanly); returns it with its bound address.
pub(crate) async fn bind(listen: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let bind_err = |source| Error::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    Ok((listener, addr))
}

/// Serves `GET /metrics` on `listener` (bound at `addr`) until `shutdown` fires; the
/// returned accept loop ends then. The node is held weakly: a scrape during shutdown
/// renders the request counters alone.
pub(crate) fn spawn(
    listener: TcpListener,
    addr: SocketAddr,
    metrics: Arc<DirectoryMetrics>,
    node: Weak<Node>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tracing::info!(%addr, "directory metrics listening");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let metrics = metrics.clone();
            let node = node.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let answer = answer(&req, &metrics, &node);
                    async move { Ok::<_, std::convert::Infallible>(answer) }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(MAX_HEAD_BYTES);
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "metrics connection failed"),
                    Err(_) => tracing::debug!(%peer, "metrics connection timed out"),
                    Ok(Ok(())) => {}
                }
                drop(permit);
            });
        }
        tracing::info!(%addr, "directory metrics stopped");
    })
}

fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}

/// The answer to one metrics request.
fn answer<B>(
    req: &Request<B>,
    metrics: &DirectoryMetrics,
    node: &Weak<Node>,
) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return text_response(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec());
    }
    if req.method() != Method::GET {
        return text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"only GET\n".to_vec(),
        );
    }
    let node = node.upgrade();
    match metrics.render(node.as_deref()) {
        Ok(body) => text_response(StatusCode::OK, CONTENT_TYPE, body),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("{e}\n").into_bytes(),
            )
        }
    }
}
