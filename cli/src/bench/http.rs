//! The HTTP side shared by the S3 and rawx workloads: one pooled hyper client with
//! TCP_NODELAY and timeouts, error classification, and bounded body reads that check
//! the size (and optionally the bytes) of what comes back.
//!
//! The client is hyper's own pool, not `reqwest`: reqwest parses each response's URL
//! again (about a tenth of the client's CPU per 4 KiB GET), which a load generator
//! sharing the machine with the server under test cannot spare.

use super::driver::Failure;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use tokio::time::Instant;

/// Longest wait for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an error body read to find its S3 `<Code>`.
const ERROR_BODY_BYTES: usize = 8 * 1024;
/// Longest error code kept.
const MAX_CODE_CHARS: usize = 64;

/// A pooled client for `concurrency` requests in flight, each bounded by `timeout`
/// (sending it and reading its whole answer).
pub fn client(concurrency: usize, timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build(connector);
    HttpClient { inner, timeout }
}

/// The bench's HTTP/1 client.
#[derive(Debug)]
pub struct HttpClient {
    inner: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// A GET of `url`.
    pub fn get(&self, url: impl IntoUri) -> RequestBuilder<'_> {
        self.request(Method::GET, url)
    }

    /// A PUT of `url` (empty body unless given one).
    pub fn put(&self, url: impl IntoUri) -> RequestBuilder<'_> {
        self.request(Method::PUT, url)
    }

    /// A DELETE of `url`.
    pub fn delete(&self, url: impl IntoUri) -> RequestBuilder<'_> {
        self.request(Method::DELETE, url)
    }

    /// A HEAD of `url`.
    pub fn head(&self, url: impl IntoUri) -> RequestBuilder<'_> {
        self.request(Method::HEAD, url)
    }

    fn request(&self, method: Method, url: impl IntoUri) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            method,
            uri: url.into_uri(),
            body: Bytes::new(),
        }
    }
}

/// Where a request goes: a URL as text, or one already parsed for hyper (kept by a
/// caller that sends to it again and again).
pub trait IntoUri {
    /// The URI, or what is wrong with the URL.
    fn into_uri(self) -> std::result::Result<Uri, String>;
}

impl IntoUri for Uri {
    fn into_uri(self) -> std::result::Result<Uri, String> {
        Ok(self)
    }
}

impl IntoUri for &str {
    fn into_uri(self) -> std::result::Result<Uri, String> {
        self.parse::<Uri>()
            .map_err(|e| format!("URL {self:?}: {e}"))
    }
}

impl IntoUri for String {
    fn into_uri(self) -> std::result::Result<Uri, String> {
        self.as_str().into_uri()
    }
}

impl IntoUri for url::Url {
    fn into_uri(self) -> std::result::Result<Uri, String> {
        self.as_str().into_uri()
    }
}

/// One request being built.
pub struct RequestBuilder<'a> {
    client: &'a HttpClient,
    method: Method,
    uri: std::result::Result<Uri, String>,
    body: Bytes,
}

impl RequestBuilder<'_> {
    /// Sends `body` with the request.
    pub fn body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }

    /// Sends the request; the answer's body is read from what comes back, within the
    /// same deadline.
    pub async fn send(self) -> std::result::Result<Response, TransportError> {
        let deadline = Instant::now() + self.client.timeout;
        let uri = self.uri.map_err(TransportError::Request)?;
        let req = http::Request::builder()
            .method(self.method)
            .uri(uri)
            .body(Full::new(self.body))
            .map_err(|e| TransportError::Request(e.to_string()))?;
        match tokio::time::timeout_at(deadline, self.client.inner.request(req)).await {
            Err(_) => Err(TransportError::Timeout),
            Ok(Err(e)) if e.is_connect() => Err(TransportError::Connect(error_chain(&e))),
            Ok(Err(e)) => Err(TransportError::Request(error_chain(&e))),
            Ok(Ok(inner)) => Ok(Response { inner, deadline }),
        }
    }
}

/// An answer whose body is still to be read.
pub struct Response {
    inner: http::Response<hyper::body::Incoming>,
    deadline: Instant,
}

impl Response {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> std::result::Result<Option<Bytes>, TransportError> {
        // Bounded: each pass takes a frame of the body, which ends or fails, within
        // the request's deadline.
        loop {
            let frame = tokio::time::timeout_at(self.deadline, self.inner.body_mut().frame());
            match frame.await {
                Err(_) => return Err(TransportError::Timeout),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(TransportError::Body(e.to_string())),
                Ok(Some(Ok(f))) => {
                    if let Ok(data) = f.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// Why a request got no (whole) answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The request's deadline passed.
    #[error("timed out")]
    Timeout,
    /// No connection could be made.
    #[error("connecting: {0}")]
    Connect(String),
    /// The answer's body broke off.
    #[error("reading the body: {0}")]
    Body(String),
    /// The request could not be made or sent.
    #[error("{0}")]
    Request(String),
}

/// `e` and its sources, joined.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    // Bounded: error chains are short; at most 8 links are shown.
    for _ in 0..8 {
        let Some(s) = source else { break };
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A failed request: its kind ([`transport_kind`]) and the error, with its causes.
pub fn transport_failure(e: &TransportError) -> Failure {
    Failure {
        kind: transport_kind(e).to_string(),
        detail: Some(e.to_string()),
    }
}

/// The error kind of a failed request: `timeout`, `connect`, `body` or `request`.
pub fn transport_kind(e: &TransportError) -> &'static str {
    match e {
        TransportError::Timeout => "timeout",
        TransportError::Connect(_) => "connect",
        TransportError::Body(_) => "body",
        TransportError::Request(_) => "request",
    }
}

/// An unsuccessful answer: its kind, `http_<status>` plus `:<Code>` when the body is
/// an S3 error document (or the rawx `x-oxio-error` header says one), and what it
/// said (the S3 error's `<Message>`, else the first line of a text body).
pub async fn status_failure(mut resp: Response) -> Failure {
    let status = resp.status().as_u16();
    let header_code = resp
        .headers()
        .get("x-oxio-error")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(MAX_CODE_CHARS).collect::<String>());
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c[..c.len().min(ERROR_BODY_BYTES - body.len())]),
            _ => break,
        }
    }
    let kind = match header_code.or_else(|| s3_error_code(&body)) {
        Some(code) => format!("http_{status}:{code}"),
        None => format!("http_{status}"),
    };
    Failure {
        kind,
        detail: error_detail(&body),
    }
}

/// What an error body says: an S3 error document's `<Message>` (unescaped), else
/// the first line of a text body; `None` when empty or not text. The body is at most
/// [`ERROR_BODY_BYTES`]; the report keeps [`super::driver::MAX_DETAIL_CHARS`] of it
/// (`Tally::add_detail`).
pub fn error_detail(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let said = match element(text, "Message") {
        Some(raw) => quick_xml::escape::unescape(raw)
            .map(|s| s.into_owned())
            .unwrap_or_else(|_| raw.to_string()),
        None if text.trim_start().starts_with('<') => return None,
        None => text.lines().next().unwrap_or("").to_string(),
    };
    let said = said.trim();
    (!said.is_empty()).then(|| said.to_string())
}

/// The `<Code>` of an S3 error document.
pub fn s3_error_code(body: &[u8]) -> Option<String> {
    let code = element(std::str::from_utf8(body).ok()?, "Code")?.trim();
    let ok = !code.is_empty()
        && code.len() <= MAX_CODE_CHARS
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    ok.then(|| code.to_string())
}

/// The text of the first `<name>` element of an S3 error document (as written,
/// entities not replaced); `None` when it is missing or not closed.
fn element<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{name}>"))?;
    Some(&text[start..start + len])
}

/// Reads a body of at most `limit` bytes and returns it (for listings).
pub async fn read_limited(
    mut resp: Response,
    limit: usize,
) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > limit {
                    return Err("body_too_large".into());
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(transport_kind(&e).into()),
        }
    }
}

/// Reads a body that must be exactly `size` bytes, comparing it with `expected` when
/// given; returns the byte count. Nothing is buffered.
pub async fn read_checked(
    mut resp: Response,
    size: usize,
    expected: Option<&[u8]>,
) -> std::result::Result<u64, String> {
    let mut pos = 0usize;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                let end = pos + c.len();
                if end > size {
                    return Err("verify_size".into());
                }
                if let Some(want) = expected {
                    if want.get(pos..end) != Some(&c[..]) {
                        return Err("verify_bytes".into());
                    }
                }
                pos = end;
            }
            Ok(None) if pos == size => return Ok(pos as u64),
            Ok(None) => return Err("verify_size".into()),
            Err(e) => return Err(transport_kind(&e).into()),
        }
    }
}

/// Reads and drops a small body so the connection goes back to the pool.
pub async fn drain(mut resp: Response) {
    let mut left = ERROR_BODY_BYTES;
    while let Ok(Some(c)) = resp.chunk().await {
        if c.len() >= left {
            break;
        }
        left -= c.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on a free port that answers each connection with `answer` (after
    /// reading the request head) and then holds it open for `hold`.
    async fn server(answer: &'static [u8], hold: Duration) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    let _ = conn.write_all(answer).await;
                    tokio::time::sleep(hold).await;
                });
            }
        });
        format!("http://{addr}/b/k")
    }

    /// The head of a 10-byte answer and its first 3 bytes.
    const PARTIAL_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";

    #[tokio::test]
    async fn failures_are_classified() {
        let http = client(2, Duration::from_millis(300));
        // Nothing listens: the port of a listener just closed.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let e = http.get(url).send().await.err().expect("refused");
        assert_eq!(transport_kind(&e), "connect", "{e}");
        // No answer within the deadline.
        let url = server(b"", Duration::from_secs(5)).await;
        let e = http.get(url).send().await.err().expect("no answer");
        assert_eq!(transport_kind(&e), "timeout", "{e}");
        // A body that stalls after its first bytes: the same deadline covers it.
        let url = server(PARTIAL_ANSWER, Duration::from_secs(5)).await;
        let resp = http.get(url).send().await.expect("head");
        assert_eq!(read_checked(resp, 10, None).await, Err("timeout".into()));
        // A body cut short by the server closing.
        let url = server(PARTIAL_ANSWER, Duration::ZERO).await;
        let resp = http.get(url).send().await.expect("head");
        assert_eq!(read_checked(resp, 10, None).await, Err("body".into()));
        // An S3 error answer.
        let url = server(
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 39\r\n\r\n<Error><Code>NoSuchKey</Code></Error>\n\n",
            Duration::ZERO,
        )
        .await;
        let resp = http.get(url).send().await.expect("answer");
        assert_eq!(status_failure(resp).await.kind, "http_404:NoSuchKey");
        // What it said comes along.
        let url = server(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 84\r\n\r\n<Error><Code>ServiceUnavailable</Code><Message>6 needed, 0 &lt; 6</Message></Error>\n",
            Duration::ZERO,
        )
        .await;
        let resp = http.get(url).send().await.expect("answer");
        assert_eq!(
            status_failure(resp).await,
            Failure {
                kind: "http_503:ServiceUnavailable".into(),
                detail: Some("6 needed, 0 < 6".into()),
            }
        );
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let e = http.get(url).send().await.err().expect("refused");
        let f = transport_failure(&e);
        assert_eq!(f.kind, "connect");
        assert!(
            f.detail.as_deref().is_some_and(|d| d.contains("refused")),
            "{f}"
        );
        // A URL that is not one.
        let e = http.get("not a url").send().await.err().expect("bad URL");
        assert_eq!(transport_kind(&e), "request", "{e}");
    }

    #[test]
    fn error_details_are_the_message_or_the_first_text_line() {
        let xml =
            b"<?xml version=\"1.0\"?><Error><Code>X</Code><Message> a &amp; b </Message></Error>";
        assert_eq!(error_detail(xml).as_deref(), Some("a & b"));
        assert_eq!(error_detail(b"<Error><Code>X</Code></Error>"), None);
        assert_eq!(
            error_detail(b"chunk not found\nmore"),
            Some("chunk not found".into())
        );
        assert_eq!(error_detail(b""), None);
        assert_eq!(error_detail(b"\xff\xfe"), None);
    }

    #[test]
    fn finds_s3_error_codes() {
        let xml =
            b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>x</Message></Error>";
        assert_eq!(s3_error_code(xml).as_deref(), Some("NoSuchBucket"));
        assert_eq!(s3_error_code(b"<Code></Code>"), None);
        assert_eq!(s3_error_code(b"<Code>a b<c</Code>"), None);
        assert_eq!(s3_error_code(b"not xml"), None);
    }
}
