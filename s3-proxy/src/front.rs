//! The hyper service in front of s3s: an `x-amz-request-id` (fresh, or the one the
//! client chose in `x-request-id`) and an `x-amz-id-2` on every response, a `tracing` span per request carrying that id, the id passed
//! to the sdk so every chunk request to a rawx carries it (`x-oxio-request-id`),
//! request and byte counting, and `GET /metrics` for requests without any
//! authentication.
//!
//! `/metrics` is answered here only when the request has no `Authorization` header
//! and no `X-Amz-*` query parameter: only an unsigned listing of a public bucket
//! named `metrics` is shadowed; an authenticated `GET /metrics` stays a ListObjects
//! of bucket `metrics`.

use crate::metrics::{S3Metrics, CONTENT_TYPE};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use s3s::access::{S3Access, S3AccessContext};
use s3s::service::S3Service;
use s3s::{s3_error, HttpError, S3Error, S3ErrorCode, S3Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::Instrument;

/// Response header with the id of the request (as AWS).
pub const REQUEST_ID_HEADER: &str = "x-amz-request-id";
/// Response header with the extended request id (as AWS).
pub const ID2_HEADER: &str = "x-amz-id-2";
/// Operation label of requests refused before s3s resolved an operation.
const UNKNOWN_OPERATION: &str = "unknown";

/// Request header a client may set to choose the request id (as behind most
/// proxies): when it is 1 to 128 letters, digits or `-_.:`, it becomes the
/// `x-amz-request-id` of the answer and follows the request into every service.
pub const CLIENT_REQUEST_ID_HEADER: &str = "x-request-id";
/// The id AWS SDKs send with each call (the same for its retries); logged as such.
pub const SDK_INVOCATION_ID_HEADER: &str = "amz-sdk-invocation-id";

/// The request id a client chose ([`CLIENT_REQUEST_ID_HEADER`]), when usable.
pub fn client_request_id(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(CLIENT_REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| oxio_sdk::rawx::valid_request_id(v))
        .map(str::to_string)
}

/// A fresh request id: 16 random bytes as 32 upper-case hex digits.
pub fn new_request_id() -> String {
    format!("{:032X}", rand::random::<u128>())
}

/// A fresh extended request id: 32 random bytes, base64.
fn new_id2() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// Whether a request is the anonymous `GET /metrics` the gateway answers itself.
pub fn is_anonymous_metrics<B>(req: &Request<B>) -> bool {
    if req.method() != Method::GET || req.uri().path() != "/metrics" {
        return false;
    }
    if req.headers().contains_key(http::header::AUTHORIZATION) {
        return false;
    }
    let signed_query = req.uri().query().is_some_and(|q| {
        q.split('&').any(|pair| {
            pair.get(..6)
                .is_some_and(|p| p.eq_ignore_ascii_case("x-amz-"))
        })
    });
    !signed_query
}

/// Longest validity of a presigned URL (`X-Amz-Expires`), as AWS: seven days.
pub const PRESIGNED_MAX_EXPIRES_SECS: u64 = 7 * 24 * 3600;

/// The error AWS answers for a presigned query whose `X-Amz-Expires` is not a number
/// of seconds between 1 and seven days (`None`: no such parameter, or a valid one).
/// s3s itself checks the signature and whether the URL has expired, measured from
/// its `X-Amz-Date`.
pub fn presigned_expiry_error(query: &str) -> Option<S3Error> {
    let value = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        k.eq_ignore_ascii_case("X-Amz-Expires").then_some(v)
    })?;
    match value.parse::<u64>() {
        Ok(n) if (1..=PRESIGNED_MAX_EXPIRES_SECS).contains(&n) => None,
        Ok(0) => Some(S3Error::with_message(
            S3ErrorCode::AuthorizationQueryParametersError,
            "X-Amz-Expires must be non-negative and more than zero",
        )),
        Ok(_) => Some(S3Error::with_message(
            S3ErrorCode::AuthorizationQueryParametersError,
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        )),
        Err(_) => Some(S3Error::with_message(
            S3ErrorCode::AuthorizationQueryParametersError,
            "X-Amz-Expires should be a number",
        )),
    }
}

/// Most bytes a request's header section may hold (each header counted as
/// `name: value` and its line end), twice the 8 KiB S3 documents for a PUT. hyper
/// buffers up to [`crate::server::CONN_BUF_BYTES`] of request head; this is the
/// limit a client meets.
pub const MAX_HEADER_SECTION_BYTES: usize = 16 * 1024;

/// `RequestHeaderSectionTooLarge` (400) when `headers` hold more than
/// [`MAX_HEADER_SECTION_BYTES`].
pub fn header_section_error(headers: &http::HeaderMap) -> Option<S3Error> {
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if bytes <= MAX_HEADER_SECTION_BYTES {
        return None;
    }
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("RequestHeaderSectionTooLarge".into()),
        format!(
            "Your request header section exceeds the maximum allowed size: \
             {bytes} bytes, at most {MAX_HEADER_SECTION_BYTES}"
        ),
    );
    e.set_status_code(StatusCode::BAD_REQUEST);
    Some(e)
}

/// Request headers whose semantics this store does not offer, refused rather than
/// ignored, since a client would otherwise believe them applied:
/// - server-side encryption (SSE-S3, SSE-KMS or SSE-C, for the object or a copy
///   source): objects are stored unencrypted; `NotImplemented`;
/// - object lock (retention, legal hold): no bucket has an Object Lock
///   configuration, so a write asking for it gets S3's `InvalidRequest`, and a bucket
///   created with it enabled `NotImplemented`;
/// - appends (`x-amz-write-offset-bytes`): the write would replace the object with
///   the appended bytes alone; `NotImplemented`;
/// - conditional deletes (`If-Match` and its kin on a DELETE): the delete would run
///   unconditionally; `NotImplemented`.
pub fn unsupported_header_error(method: &Method, headers: &http::HeaderMap) -> Option<S3Error> {
    let not_offered = |name: &str, what: &str| {
        Some(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            format!("{what} ({name}) is not offered by this store; send the request without it"),
        ))
    };
    for (name, value) in headers {
        let name = name.as_str();
        if name.starts_with("x-amz-server-side-encryption")
            || name.starts_with("x-amz-copy-source-server-side-encryption")
        {
            return not_offered(
                name,
                "server-side encryption (objects are stored unencrypted)",
            );
        }
        if name.starts_with("x-amz-object-lock-") {
            return Some(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                format!("Bucket is missing Object Lock Configuration ({name})"),
            ));
        }
        if name == "x-amz-bucket-object-lock-enabled"
            && value.to_str().is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return not_offered(name, "object lock");
        }
        if name == "x-amz-write-offset-bytes" {
            return not_offered(name, "appending to an object");
        }
        if method == Method::DELETE && (name == "if-match" || name.starts_with("x-amz-if-match-")) {
            return not_offered(name, "a conditional delete (nothing was deleted)");
        }
    }
    None
}

/// Where the access hook writes the S3 operation s3s resolved for a request.
#[derive(Clone, Debug, Default)]
struct OperationSlot(Arc<OnceLock<String>>);

/// Access control of the gateway: signed requests (the signature itself is checked
/// by the auth provider), and unsigned ones only for the reads a public bucket may
/// serve ([`crate::anonymous`]; the bucket's ACL is checked by the operation), plus
/// recording the operation name for the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordOperation;

#[async_trait::async_trait]
impl S3Access for RecordOperation {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let name = cx.s3_op().name().to_string();
        if let Some(slot) = cx.extensions_mut().get::<OperationSlot>() {
            let _ = slot.0.set(name);
        }
        if let Some(e) = cx.uri().query().and_then(presigned_expiry_error) {
            return Err(e);
        }
        match cx.credentials() {
            Some(_) => Ok(()),
            None if crate::anonymous::allowed_operation(cx.s3_op().name()) => Ok(()),
            None => Err(s3_error!(AccessDenied, "Access Denied")),
        }
    }
}

/// A body that counts the data bytes going through it.
pub struct Counted<B> {
    inner: B,
    metrics: Arc<S3Metrics>,
    sent: bool,
    /// Set once a request body was read to its end (see [`Front::serve`]); `None`
    /// for an answer's body and for an empty request body (nothing to read).
    ended: Option<Arc<AtomicBool>>,
}

impl<B> Counted<B> {
    /// A request body; `ended`, when given, is set once it was read to its end.
    fn received(inner: B, metrics: Arc<S3Metrics>, ended: Option<Arc<AtomicBool>>) -> Self {
        Counted {
            inner,
            metrics,
            sent: false,
            ended,
        }
    }

    fn sent(inner: B, metrics: Arc<S3Metrics>) -> Self {
        Counted {
            inner,
            metrics,
            sent: true,
            ended: None,
        }
    }
}

impl<B> HttpBody for Counted<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if this.sent {
                        this.metrics.sent(n);
                    } else {
                        this.metrics.received(n);
                    }
                }
                if let Some(ended) = &this.ended {
                    if this.inner.is_end_stream() {
                        ended.store(true, Ordering::Relaxed);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(ended) = &this.ended {
                    ended.store(true, Ordering::Relaxed);
                }
            }
            _ => {}
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

/// The gateway's hyper service: ids, spans, metrics, then s3s.
#[derive(Clone)]
pub struct Front {
    s3: S3Service,
    metrics: Arc<S3Metrics>,
}

impl Front {
    /// Wraps `s3` (built with [`RecordOperation`] as its access hook, so that the
    /// operation label is known) and counts into `metrics`.
    pub fn new(s3: S3Service, metrics: Arc<S3Metrics>) -> Self {
        Front { s3, metrics }
    }

    /// Serves one request.
    pub async fn serve<B>(
        &self,
        mut req: Request<B>,
    ) -> Result<Response<Counted<s3s::Body>>, HttpError>
    where
        B: HttpBody<Data = Bytes> + Send + Sync + Unpin + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        // Whether the request's body was read to its end by the time the answer is
        // ready; an early answer (an error before the body was needed) leaves it
        // unread, and hyper then closes the connection after the answer. Not
        // tracked (no allocation) for an empty body: GET, HEAD, DELETE.
        let body_read = (!req.body().is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        let request_id = client_request_id(req.headers()).unwrap_or_else(new_request_id);
        let invocation = req
            .headers()
            .get(SDK_INVOCATION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| oxio_sdk::rawx::valid_request_id(v))
            .unwrap_or_default();
        let span = tracing::info_span!(
            "s3_request",
            request_id = %request_id,
            sdk_invocation_id = invocation,
            method = %req.method(),
            path = %req.uri().path(),
        );
        let (operation, result) = if is_anonymous_metrics(&req) {
            ("Metrics".to_string(), Ok(self.metrics_response()))
        } else if let Some(e) = header_section_error(req.headers()) {
            // Before s3s: its signature check would first hash every header the
            // request lists as signed.
            let resp = error_response(e, &request_id);
            (UNKNOWN_OPERATION.to_string(), Ok(resp))
        } else if let Some(e) = unsupported_header_error(req.method(), req.headers()) {
            let resp = error_response(e, &request_id);
            (UNKNOWN_OPERATION.to_string(), Ok(resp))
        } else {
            let slot = OperationSlot::default();
            req.extensions_mut().insert(slot.clone());
            let metrics = self.metrics.clone();
            let ended = body_read.clone();
            let req = req.map(|b| s3s::Body::http_body(Counted::received(b, metrics, ended)));
            let id: Arc<str> = Arc::from(request_id.as_str());
            let result = oxio_sdk::rawx::with_request_id(Some(id), self.s3.call(req))
                .instrument(span.clone())
                .await;
            let op = slot
                .0
                .get()
                .cloned()
                .unwrap_or_else(|| UNKNOWN_OPERATION.to_string());
            (op, result)
        };
        let elapsed = started.elapsed();
        let mut resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                self.metrics.observe(&operation, 500, elapsed);
                span.in_scope(|| tracing::error!(operation, error = ?e, "S3 request failed"));
                return Err(e);
            }
        };
        if operation == "HeadObject"
            && resp.status() == StatusCode::OK
            && resp.headers().contains_key(http::header::CONTENT_RANGE)
        {
            // A HEAD of one part (`partNumber`) or of a `Range` answers 206 as its
            // GET does; s3s answers every HeadObject with 200.
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        }
        let status = resp.status().as_u16();
        self.metrics.observe(&operation, status, elapsed);
        span.in_scope(|| {
            tracing::info!(
                target: oxio_common::ACCESS_LOG_TARGET,
                operation,
                status,
                micros = elapsed.as_micros() as u64,
                "s3 access"
            )
        });
        let headers = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID_HEADER, v);
        }
        if let Ok(v) = HeaderValue::from_str(&new_id2()) {
            headers.insert(ID2_HEADER, v);
        }
        if body_read.is_some_and(|read| !read.load(Ordering::Relaxed)) {
            // Said, so that a client does not send its next request on a connection
            // hyper is about to close (it closes one whose request body was left
            // unread), which the client would see as a failed request.
            headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        let metrics = self.metrics.clone();
        Ok(resp.map(|b| Counted::sent(b, metrics)))
    }

    fn metrics_response(&self) -> Response<s3s::Body> {
        let (status, content_type, body) = match self.metrics.render() {
            Ok(text) => (StatusCode::OK, CONTENT_TYPE, text),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode metrics");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("{e}\n").into_bytes(),
                )
            }
        };
        let mut resp = Response::new(s3s::Body::from(body));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        resp
    }
}

/// The S3 error document for `e` (serialized by s3s, as it does its own), answered by
/// the gateway itself for what it refuses before handing a request to s3s.
fn error_response(mut e: S3Error, request_id: &str) -> Response<s3s::Body> {
    let status = e.status_code().unwrap_or(StatusCode::BAD_REQUEST);
    e.set_request_id(request_id);
    let mut body = Vec::with_capacity(256);
    let mut ser = s3s::xml::Serializer::new(&mut body);
    let written = ser
        .decl()
        .and_then(|()| s3s::xml::Serialize::serialize(&e, &mut ser));
    let mut resp = match written {
        Ok(()) => {
            let mut resp = Response::new(s3s::Body::from(body));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/xml"),
            );
            resp
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot encode an S3 error document");
            Response::new(s3s::Body::empty())
        }
    };
    *resp.status_mut() = status;
    resp
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<Request<hyper::body::Incoming>> for Front {
    type Response = Response<Counted<s3s::Body>>;
    type Error = HttpError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<hyper::body::Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.serve(req).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_expiry_is_capped_at_seven_days() {
        let q = |e: &str| {
            format!(
                "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={e}&X-Amz-Date=20260101T000000Z"
            )
        };
        assert!(presigned_expiry_error(&q("1")).is_none());
        assert!(presigned_expiry_error(&q("604800")).is_none());
        assert!(presigned_expiry_error("list-type=2&prefix=a").is_none());
        for bad in ["604801", "0", "-5", "ten", ""] {
            let e = presigned_expiry_error(&q(bad)).expect(bad);
            assert_eq!(
                e.code(),
                &S3ErrorCode::AuthorizationQueryParametersError,
                "{bad}"
            );
        }
        let e = presigned_expiry_error(&q("604801")).unwrap();
        assert!(e.message().unwrap_or_default().contains("604800"));
    }

    #[test]
    fn the_gateway_s_own_errors_are_s3_error_documents() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-big", HeaderValue::from_str(&"v".repeat(20_000)).unwrap());
        let e = header_section_error(&headers).unwrap();
        let resp = error_response(e, "ID<&>");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            resp.headers()[http::header::CONTENT_TYPE],
            "application/xml"
        );
        let body = resp.into_body().bytes().unwrap_or_default();
        let body = std::str::from_utf8(&body).unwrap();
        assert!(body.starts_with("<?xml"), "{body}");
        assert!(
            body.contains("<Code>RequestHeaderSectionTooLarge</Code>"),
            "{body}"
        );
        assert!(
            body.contains("<RequestId>ID&lt;&amp;&gt;</RequestId>"),
            "{body}"
        );
        assert!(body.contains("at most 16384"), "{body}");
        // What XML gives a meaning is escaped in every element.
        let e = S3Error::with_message(S3ErrorCode::InvalidArgument, "a<b>&'\"c");
        let body = error_response(e, "id")
            .into_body()
            .bytes()
            .unwrap_or_default();
        let body = std::str::from_utf8(&body).unwrap();
        assert!(
            body.contains("<Message>a&lt;b&gt;&amp;&apos;&quot;c</Message>"),
            "{body}"
        );
    }

    #[test]
    fn a_header_section_over_the_limit_is_refused() {
        let mut headers = http::HeaderMap::new();
        // "x-big: " + value + line end: 9 bytes around the value.
        let fill = MAX_HEADER_SECTION_BYTES - "x-big".len() - 4;
        headers.insert("x-big", HeaderValue::from_str(&"v".repeat(fill)).unwrap());
        assert!(header_section_error(&headers).is_none(), "at the limit");
        headers.insert("x-one", HeaderValue::from_static(""));
        let e = header_section_error(&headers).expect("over the limit");
        assert_eq!(e.code().as_str(), "RequestHeaderSectionTooLarge");
        assert_eq!(e.status_code(), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn headers_whose_semantics_are_not_offered_are_refused_not_ignored() {
        let put = Method::PUT;
        for (method, name, value, code) in [
            (
                &put,
                "x-amz-server-side-encryption",
                "AES256",
                "NotImplemented",
            ),
            (
                &put,
                "x-amz-server-side-encryption-aws-kms-key-id",
                "k",
                "NotImplemented",
            ),
            (
                &put,
                "x-amz-server-side-encryption-customer-algorithm",
                "AES256",
                "NotImplemented",
            ),
            (
                &put,
                "x-amz-copy-source-server-side-encryption-customer-key",
                "k",
                "NotImplemented",
            ),
            (
                &put,
                "x-amz-object-lock-mode",
                "GOVERNANCE",
                "InvalidRequest",
            ),
            (&put, "x-amz-object-lock-legal-hold", "ON", "InvalidRequest"),
            (
                &put,
                "x-amz-bucket-object-lock-enabled",
                "True",
                "NotImplemented",
            ),
            (&put, "x-amz-write-offset-bytes", "10", "NotImplemented"),
            (&Method::DELETE, "if-match", "\"e\"", "NotImplemented"),
            (
                &Method::DELETE,
                "x-amz-if-match-size",
                "10",
                "NotImplemented",
            ),
            (
                &Method::DELETE,
                "x-amz-if-match-initiated-time",
                "x",
                "NotImplemented",
            ),
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert("x-amz-date", HeaderValue::from_static("20261207T000000Z"));
            assert!(unsupported_header_error(method, &headers).is_none());
            headers.insert(name, HeaderValue::from_static(value));
            let e = unsupported_header_error(method, &headers).expect(name);
            assert_eq!(e.code().as_str(), code, "{name}");
            assert!(e.message().unwrap_or_default().contains(name), "{e:?}");
        }
        // A conditional write is offered; a bucket created without object lock too.
        let mut headers = http::HeaderMap::new();
        headers.insert("if-match", HeaderValue::from_static("\"e\""));
        headers.insert(
            "x-amz-bucket-object-lock-enabled",
            HeaderValue::from_static("false"),
        );
        assert!(unsupported_header_error(&put, &headers).is_none());
    }

    fn req(uri: &str, auth: bool) -> Request<()> {
        let mut b = Request::builder().method(Method::GET).uri(uri);
        if auth {
            b = b.header("authorization", "AWS4-HMAC-SHA256 Credential=x");
        }
        b.body(()).unwrap()
    }

    #[test]
    fn only_unauthenticated_get_metrics_is_served_by_the_gateway() {
        assert!(is_anonymous_metrics(&req("/metrics", false)));
        assert!(is_anonymous_metrics(&req("/metrics?foo=1", false)));
        assert!(!is_anonymous_metrics(&req("/metrics", true)));
        assert!(!is_anonymous_metrics(&req(
            "/metrics?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab",
            false
        )));
        assert!(!is_anonymous_metrics(&req(
            "/metrics?x-amz-credential=a",
            false
        )));
        assert!(!is_anonymous_metrics(&req("/metrics/key", false)));
        assert!(!is_anonymous_metrics(&req("/other", false)));
        let put = Request::builder()
            .method(Method::PUT)
            .uri("/metrics")
            .body(())
            .unwrap();
        assert!(!is_anonymous_metrics(&put));
    }

    #[test]
    fn request_ids_are_unique_hex() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            assert_eq!(id.len(), 32);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
        }
    }
}
