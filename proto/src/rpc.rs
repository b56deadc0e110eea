//! What every gRPC server and client of the grid shares at its boundary.
//!
//! - The request id that follows one S3 request across services: a task-local on the
//!   client side ([`with_request_id`]), `x-oxio-request-id` on the wire (metadata of
//!   gRPC calls, a header of rawx requests), a `tracing` span on the server side.
//! - [`RpcLayer`], the tower layer a gRPC server wraps around its routes: for every
//!   request it opens a span carrying the method and the request id, and reports
//!   the method, the status code (from the `grpc-status` header of an error, or the
//!   trailer of an answer), the latency up to that status and the bytes of the
//!   request and response bodies to an [`RpcRecorder`].

use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

/// Header (HTTP) and metadata key (gRPC) carrying the request id between services.
pub const REQUEST_ID_HEADER: &str = "x-oxio-request-id";
/// Longest request id passed on; a longer or odd one is dropped.
pub const MAX_REQUEST_ID_BYTES: usize = 128;
/// Method label of requests that name no method of the service.
pub const UNKNOWN_METHOD: &str = "unknown";
/// Longest method name taken as a label; longer ones count as [`UNKNOWN_METHOD`].
const MAX_METHOD_BYTES: usize = 64;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// Runs `fut` so that every internal call it makes on this task (gRPC to the
/// directory or the conscience, HTTP to a rawx) carries `id`; `None` runs it
/// unchanged. Tasks spawned inside must be wrapped again with
/// [`current_request_id`].
pub async fn with_request_id<F: Future>(id: Option<Arc<str>>, fut: F) -> F::Output {
    match id {
        Some(id) => REQUEST_ID.scope(id, fut).await,
        None => fut.await,
    }
}

/// The request id of the current task, if any.
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

/// Whether `id` may be passed on and logged: 1 to [`MAX_REQUEST_ID_BYTES`] bytes of
/// ASCII letters, digits and `-_.:`.
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A client interceptor adding the current request id to every gRPC call.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdInterceptor;

impl tonic::service::Interceptor for RequestIdInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(id) = current_request_id() {
            if let Ok(v) = id.parse::<MetadataValue<Ascii>>() {
                req.metadata_mut().insert(REQUEST_ID_HEADER, v);
            }
        }
        Ok(req)
    }
}

/// A gRPC client whose calls carry the current request id.
pub type Traced<C> = tonic::service::interceptor::InterceptedService<C, RequestIdInterceptor>;

/// Where [`RpcLayer`] reports each request.
pub trait RpcRecorder: Send + Sync + 'static {
    /// One request of `method` ended with `code` after `elapsed`, having read
    /// `bytes_in` bytes of request body and sent `bytes_out` of response body
    /// (gRPC framing included).
    fn record_rpc(
        &self,
        method: &str,
        code: Code,
        elapsed: Duration,
        bytes_in: u64,
        bytes_out: u64,
    );
}

/// Wraps the routes of a gRPC server with [`RpcService`].
#[derive(Debug)]
pub struct RpcLayer<R> {
    recorder: Arc<R>,
    services: &'static [&'static str],
}

impl<R> Clone for RpcLayer<R> {
    fn clone(&self) -> Self {
        RpcLayer {
            recorder: self.recorder.clone(),
            services: self.services,
        }
    }
}

impl<R> RpcLayer<R> {
    /// A layer reporting into `recorder` the methods of the gRPC services named
    /// `services` (`NamedService::NAME`, e.g. `oxio.v1.Directory`); other paths
    /// count as [`UNKNOWN_METHOD`].
    pub fn new(recorder: Arc<R>, services: &'static [&'static str]) -> Self {
        RpcLayer { recorder, services }
    }
}

impl<S, R> Layer<S> for RpcLayer<R> {
    type Service = RpcService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcService {
            inner,
            recorder: self.recorder.clone(),
            services: self.services,
        }
    }
}

/// Spans and counts each request `inner` answers (see the module doc).
#[derive(Debug)]
pub struct RpcService<S, R> {
    inner: S,
    recorder: Arc<R>,
    services: &'static [&'static str],
}

impl<S: Clone, R> Clone for RpcService<S, R> {
    fn clone(&self) -> Self {
        RpcService {
            inner: self.inner.clone(),
            recorder: self.recorder.clone(),
            services: self.services,
        }
    }
}

/// The method of `service` a request path names (`/oxio.v1.Directory/PutContent` →
/// `PutContent`), if it has that shape.
pub fn method_of<'p>(path: &'p str, service: &str) -> Option<&'p str> {
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
struct Pending<R: RpcRecorder> {
    recorder: Arc<R>,
    method: Option<String>,
    start: Instant,
    bytes_in: Arc<AtomicU64>,
    bytes_out: u64,
    span: tracing::Span,
}

impl<R: RpcRecorder> Pending<R> {
    fn finish(self, code: Code) {
        // The status may pass long after the handler returned (in a trailer polled by
        // the connection): report it inside the request's span all the same.
        let _entered = self.span.enter();
        // A method tonic does not route is answered UNIMPLEMENTED: naming it would let
        // any client create label values, so it counts as unknown.
        let method = match (&self.method, code) {
            (Some(m), c) if c != Code::Unimplemented => m.as_str(),
            _ => UNKNOWN_METHOD,
        };
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        report(
            &*self.recorder,
            method,
            code,
            self.start.elapsed(),
            bytes_in,
            self.bytes_out,
        );
    }
}

/// Logs (at debug) and records one answered request.
fn report<R: RpcRecorder + ?Sized>(
    recorder: &R,
    method: &str,
    code: Code,
    elapsed: Duration,
    bytes_in: u64,
    bytes_out: u64,
) {
    tracing::debug!(
        method,
        code = code_name(code),
        elapsed_us = elapsed.as_micros() as u64,
        bytes_in,
        bytes_out,
        "rpc answered"
    );
    recorder.record_rpc(method, code, elapsed, bytes_in, bytes_out);
}

/// Bytes a message of `encoded_len` bytes takes in a gRPC body (5-byte frame header).
pub fn framed_len(encoded_len: usize) -> u64 {
    encoded_len as u64 + 5
}

/// Runs a call answered in-process without a body (a typed call, see
/// [`crate::local::DirectoryReads`]) and reports it as [`RpcService`] reports the
/// others: a debug `rpc` span, its status code, latency and the bytes the request and
/// answer would take encoded.
pub async fn typed_call<R, Req, T, F>(
    recorder: &R,
    service: &'static str,
    method: &'static str,
    req: Req,
    handler: impl FnOnce(Req) -> F,
) -> Result<T, tonic::Status>
where
    R: RpcRecorder + ?Sized,
    Req: prost::Message,
    T: prost::Message,
    F: Future<Output = Result<T, tonic::Status>>,
{
    let span = tracing::debug_span!(
        "rpc",
        service,
        method,
        request_id = current_request_id().as_deref().unwrap_or(""),
    );
    async move {
        let start = Instant::now();
        let bytes_in = framed_len(req.encoded_len());
        let answer = handler(req).await;
        let (code, bytes_out) = match &answer {
            Ok(t) => (Code::Ok, framed_len(t.encoded_len())),
            Err(s) => (s.code(), 0),
        };
        report(recorder, method, code, start.elapsed(), bytes_in, bytes_out);
        answer
    }
    .instrument(span)
    .await
}

impl<S, R, ReqBody, ResBody> Service<http::Request<ReqBody>> for RpcService<S, R>
where
    S: Service<http::Request<CountedBody<ReqBody>>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    R: RpcRecorder,
    ReqBody: Body + Unpin + Send + 'static,
    ResBody: Body + Unpin + Send + 'static,
{
    type Response = http::Response<MeteredBody<ResBody, R>>;
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
        let path = req.uri().path();
        let (service, method) = self
            .services
            .iter()
            .find_map(|svc| method_of(path, svc).map(|m| (*svc, m.to_owned())))
            .unzip();
        let request_id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|id| valid_request_id(id))
            .map(Arc::<str>::from);
        let bytes_in = Arc::new(AtomicU64::new(0));
        let span = tracing::debug_span!(
            "rpc",
            service = service.unwrap_or(UNKNOWN_METHOD),
            method = method.as_deref().unwrap_or(UNKNOWN_METHOD),
            request_id = request_id.as_deref().unwrap_or(""),
        );
        let pending = Pending {
            recorder: self.recorder.clone(),
            method,
            start: Instant::now(),
            bytes_in: bytes_in.clone(),
            bytes_out: 0,
            span: span.clone(),
        };
        let req = req.map(|inner| CountedBody {
            inner,
            bytes: bytes_in,
        });
        let call = async move {
            // What the handler calls on (another service) carries the same id.
            let answer = with_request_id(request_id, inner.call(req)).await;
            match answer {
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
        };
        Box::pin(call.instrument(span))
    }
}

/// A request body that counts the bytes read through it.
#[derive(Debug)]
pub struct CountedBody<B> {
    inner: B,
    bytes: Arc<AtomicU64>,
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                use bytes::Buf;
                this.bytes
                    .fetch_add(data.remaining() as u64, Ordering::Relaxed);
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

/// A response body that records its request when the `grpc-status` trailer passes
/// (or, without one, when the body ends or is dropped).
#[derive(Debug)]
pub struct MeteredBody<B, R: RpcRecorder> {
    inner: B,
    pending: Option<Pending<R>>,
}

impl<B, R: RpcRecorder> MeteredBody<B, R> {
    fn finish(&mut self, code: Code) {
        if let Some(p) = self.pending.take() {
            p.finish(code);
        }
    }
}

impl<B: Body + Unpin, R: RpcRecorder> Body for MeteredBody<B, R> {
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
                    if let Some(data) = frame.data_ref() {
                        use bytes::Buf;
                        if let Some(p) = this.pending.as_mut() {
                            p.bytes_out = p.bytes_out.saturating_add(data.remaining() as u64);
                        }
                    }
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

impl<B, R: RpcRecorder> Drop for MeteredBody<B, R> {
    fn drop(&mut self) {
        // The client left before the status was sent.
        self.finish(Code::Cancelled);
    }
}

/// The gRPC name of a status code, as other gRPC tools label it (`OK`, `NotFound`, …).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_come_from_the_path_of_the_named_service() {
        let s = "oxio.v1.Directory";
        assert_eq!(
            method_of("/oxio.v1.Directory/PutContent", s),
            Some("PutContent")
        );
        assert_eq!(method_of("/oxio.v1.Conscience/Place", s), None);
        assert_eq!(method_of("/oxio.v1.Directory/", s), None);
        assert_eq!(method_of("/oxio.v1.Directory/a/b", s), None);
        let long = format!("/oxio.v1.Directory/{}", "A".repeat(65));
        assert_eq!(method_of(&long, s), None);
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(valid_request_id("0123ABCDEF"));
        assert!(valid_request_id("client-1.retry:2_x"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("has space"));
        assert!(!valid_request_id("new\nline"));
        assert!(!valid_request_id(&"a".repeat(MAX_REQUEST_ID_BYTES + 1)));
    }

    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;
    use std::sync::Mutex;

    type TestBody =
        StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

    /// Every request reported, as (method, code, bytes in, bytes out).
    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, Code, u64, u64)>>);

    impl RpcRecorder for Seen {
        fn record_rpc(&self, method: &str, code: Code, _: Duration, bytes_in: u64, bytes_out: u64) {
            self.0
                .lock()
                .unwrap()
                .push((method.to_string(), code, bytes_in, bytes_out));
        }
    }

    impl Seen {
        fn all(&self) -> Vec<(String, Code, u64, u64)> {
            self.0.lock().unwrap().clone()
        }
    }

    /// Reads the request body, then answers a status in the headers (trailers-only
    /// error) or in a trailer after one 5-byte message; remembers the request id the
    /// handler saw.
    #[derive(Clone)]
    struct Fake {
        header_status: Option<&'static str>,
        trailer_status: Option<&'static str>,
        saw_id: Arc<Mutex<Option<Arc<str>>>>,
    }

    impl<B> Service<http::Request<B>> for Fake
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: std::fmt::Debug,
    {
        type Response = http::Response<TestBody>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<B>) -> Self::Future {
            let this = self.clone();
            Box::pin(async move {
                *this.saw_id.lock().unwrap() = current_request_id();
                let _ = req.into_body().collect().await.unwrap();
                let mut frames = vec![Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0")))];
                if let Some(s) = this.trailer_status {
                    let mut t = http::HeaderMap::new();
                    t.insert("grpc-status", http::HeaderValue::from_static(s));
                    frames.push(Ok(Frame::trailers(t)));
                }
                let mut resp = http::Response::new(StreamBody::new(futures::stream::iter(frames)));
                if let Some(s) = this.header_status {
                    resp.headers_mut()
                        .insert("grpc-status", http::HeaderValue::from_static(s));
                }
                Ok(resp)
            })
        }
    }

    fn fake(header_status: Option<&'static str>, trailer_status: Option<&'static str>) -> Fake {
        Fake {
            header_status,
            trailer_status,
            saw_id: Arc::default(),
        }
    }

    fn request(path: &str, body: &'static [u8]) -> http::Request<http_body_util::Full<Bytes>> {
        http::Request::builder()
            .uri(path)
            .body(http_body_util::Full::new(Bytes::from_static(body)))
            .unwrap()
    }

    const SVC: &[&str] = &["oxio.v1.Directory"];

    #[tokio::test]
    async fn the_layer_counts_statuses_and_bytes_from_headers_and_trailers() {
        let seen = Arc::new(Seen::default());
        let layer = RpcLayer::new(seen.clone(), SVC);

        // An error answered trailers-only: counted as soon as the head is out.
        let mut svc = layer.layer(fake(Some("5"), None));
        let resp = svc
            .call(request("/oxio.v1.Directory/GetContent", b"abc"))
            .await
            .unwrap();
        assert_eq!(
            seen.all(),
            [("GetContent".to_string(), Code::NotFound, 3, 0)]
        );
        drop(resp);

        // An answer: counted when its grpc-status trailer passes, not before.
        let mut svc = layer.layer(fake(None, Some("0")));
        let resp = svc
            .call(request("/oxio.v1.Directory/PutContent", b"0123456789"))
            .await
            .unwrap();
        assert_eq!(seen.all().len(), 1);
        resp.into_body().collect().await.unwrap();
        assert_eq!(seen.all()[1], ("PutContent".to_string(), Code::Ok, 10, 5));

        // A body dropped before its status: the client went away.
        let resp = svc
            .call(request("/oxio.v1.Directory/Raft", b""))
            .await
            .unwrap();
        drop(resp);
        assert_eq!(seen.all()[2].0, "Raft");
        assert_eq!(seen.all()[2].1, Code::Cancelled);

        // Methods tonic does not route never become label values.
        let mut svc = layer.layer(fake(Some("12"), None));
        for path in ["/oxio.v1.Directory/Bogus1", "/x/y"] {
            drop(svc.call(request(path, b"")).await.unwrap());
        }
        let all = seen.all();
        assert!(all[3..]
            .iter()
            .all(|(m, c, _, _)| m == UNKNOWN_METHOD && *c == Code::Unimplemented));
    }

    #[tokio::test]
    async fn the_handler_runs_with_the_callers_request_id() {
        let seen = Arc::new(Seen::default());
        let f = fake(None, Some("0"));
        let mut svc = RpcLayer::new(seen, SVC).layer(f.clone());
        let mut req = request("/oxio.v1.Directory/GetContent", b"");
        req.headers_mut()
            .insert(REQUEST_ID_HEADER, http::HeaderValue::from_static("REQ-9"));
        drop(svc.call(req).await.unwrap());
        assert_eq!(f.saw_id.lock().unwrap().as_deref(), Some("REQ-9"));
        // An id that could not be logged safely is dropped.
        let mut req = request("/oxio.v1.Directory/GetContent", b"");
        req.headers_mut()
            .insert(REQUEST_ID_HEADER, http::HeaderValue::from_static("a b"));
        drop(svc.call(req).await.unwrap());
        assert!(f.saw_id.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn the_interceptor_adds_the_current_id() {
        use tonic::service::Interceptor;
        let mut i = RequestIdInterceptor;
        let plain = i.call(tonic::Request::new(())).unwrap();
        assert!(plain.metadata().get(REQUEST_ID_HEADER).is_none());
        let tagged = with_request_id(Some(Arc::from("REQ7")), async {
            i.call(tonic::Request::new(())).unwrap()
        })
        .await;
        assert_eq!(tagged.metadata().get(REQUEST_ID_HEADER).unwrap(), "REQ7");
    }
}
