//! The tower layer that counts every `Directory` RPC at the service boundary: method
//! from the request path, status code from the `grpc-status` header (errors) or
//! trailer (answers), latency up to that status.

use super::{DirectoryMetrics, UNKNOWN_METHOD};
use http_body::{Body, Frame, SizeHint};
use oxio_proto::v1::directory_server::DirectoryServer;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::server::NamedService;
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;

/// Longest method name taken as a label; longer ones count as [`UNKNOWN_METHOD`].
const MAX_METHOD_BYTES: usize = 64;

/// Wraps the gRPC routes of a directory node with [`RpcMetricsService`].
#[derive(Clone, Debug)]
pub struct RpcMetricsLayer {
    metrics: Arc<DirectoryMetrics>,
}

impl RpcMetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Arc<DirectoryMetrics>) -> Self {
        RpcMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Counts each request `inner` answers (see the module doc).
#[derive(Clone, Debug)]
pub struct RpcMetricsService<S> {
    inner: S,
    metrics: Arc<DirectoryMetrics>,
}

/// The `Directory` method a request path names (`/oxio.v1.Directory/PutContent` →
/// `PutContent`), if it has that shape.
pub(crate) fn method_of(path: &str) -> Option<&str> {
    let service = <DirectoryServer<crate::service::DirectoryService> as NamedService>::NAME;
    path.strip_prefix('/')?
        .strip_prefix(service)?
        .strip_prefix('/')
        .filter(|m| {
            !m.is_empty()
                && m.len() <= MAX_METHOD_BYTES
                && m.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// The status code carried by `grpc-status` in `headers`, if present.
fn code_in(headers: &http::HeaderMap) -> Option<Code> {
    let v = headers.get("grpc-status")?;
    let n: i32 = v.to_str().ok()?.trim().parse().ok()?;
    Some(Code::from_i32(n))
}

/// One request waiting for its status.
#[derive(Debug)]
struct Pending {
    metrics: Arc<DirectoryMetrics>,
    method: Option<String>,
    start: Instant,
}

impl Pending {
    fn finish(self, code: Code) {
        // A method tonic does not route is answered UNIMPLEMENTED: naming it would let
        // any client create label values, so it counts as unknown.
        let method = match (&self.method, code) {
            (Some(m), c) if c != Code::Unimplemented => m.as_str(),
            _ => UNKNOWN_METHOD,
        };
        self.metrics.record_rpc(method, code, self.start.elapsed());
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RpcMetricsService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body + Unpin + Send + 'static,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this call; the fresh one waits for the
        // next poll_ready.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let pending = Pending {
            metrics: self.metrics.clone(),
            method: method_of(req.uri().path()).map(str::to_owned),
            start: Instant::now(),
        };
        Box::pin(async move {
            match inner.call(req).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let pending = match code_in(&parts.headers) {
                        Some(code) => {
                            pending.finish(code);
                            None
                        }
                        None => Some(pending),
                    };
                    Ok(http::Response::from_parts(
                        parts,
                        MeteredBody {
                            inner: body,
                            pending,
                        },
                    ))
                }
                Err(e) => {
                    pending.finish(Code::Internal);
                    Err(e)
                }
            }
        })
    }
}

/// A response body that records its request when the `grpc-status` trailer passes
/// (or, without one, when the body ends or is dropped).
#[derive(Debug)]
pub struct MeteredBody<B> {
    inner: B,
    pending: Option<Pending>,
}

impl<B> MeteredBody<B> {
    fn finish(&mut self, code: Code) {
        if let Some(p) = self.pending.take() {
            p.finish(code);
        }
    }
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if this.pending.is_some() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        this.finish(code_in(trailers).unwrap_or(Code::Unknown));
                    }
                }
                Poll::Ready(Some(Err(_))) => this.finish(Code::Internal),
                Poll::Ready(None) => this.finish(Code::Unknown),
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        // The client left before the status was sent.
        self.finish(Code::Cancelled);
    }
}
