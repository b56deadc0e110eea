//! A strict, small HTTP/1.1 request-head parser, `Range` parsing and response heads.

use crate::error::{Error, Result};

/// Largest request head (request line + headers + blank line).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header lines in a request.
pub const MAX_HEADERS: usize = 64;

/// Request methods the server knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// POST (only `/scrub` takes it)
    Post,
    /// Anything else (answered 405).
    Other(String),
}

impl Method {
    /// The method as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Post => "POST",
            Method::Other(m) => m,
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Request target (path), as sent.
    pub target: String,
    /// True for HTTP/1.1, false for HTTP/1.0.
    pub http11: bool,
    /// Header lines, names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a request head (everything up to and including the blank line).
pub fn parse_head(head: &[u8]) -> Result<Request> {
    let text = std::str::from_utf8(head)
        .map_err(|_| Error::BadRequest("request head is not UTF-8".into()))?;
    let text = text
        .strip_suffix("\r\n\r\n")
        .ok_or_else(|| Error::BadRequest("request head not terminated".into()))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::BadRequest("malformed request line".into()));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(Error::BadRequest("malformed method".into()));
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::BadRequest("malformed request target".into()));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(Error::NotImplemented(format!("version {version}"))),
    };
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "POST" => Method::Post,
        other => Method::Other(other.to_string()),
    };
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() >= MAX_HEADERS {
            return Err(Error::HeadTooLarge);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| Error::BadRequest("header line without ':'".into()))?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            // Also rejects obsolete line folding (a line starting with space).
            return Err(Error::BadRequest("malformed header name".into()));
        }
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        if value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(Error::BadRequest(
                "control character in header value".into(),
            ));
        }
        headers.push((name.to_ascii_lowercase(), value.to_string()));
    }
    Ok(Request {
        method,
        target: target.to_string(),
        http11,
        headers,
    })
}

impl Request {
    /// First value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the client wants the connection kept after this request.
    pub fn keep_alive(&self) -> bool {
        if self.http11 {
            !self.header_has_token("connection", "close")
        } else {
            self.header_has_token("connection", "keep-alive")
        }
    }

    /// Whether the client waits for `100 Continue` before sending the body.
    pub fn expects_continue(&self) -> bool {
        self.http11 && self.header_has_token("expect", "100-continue")
    }

    /// The body framing, rejecting ambiguous combinations.
    pub fn body_kind(&self) -> Result<BodyKind> {
        let te: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == "transfer-encoding")
            .map(|(_, v)| v.as_str())
            .collect();
        let cl: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == "content-length")
            .map(|(_, v)| v.as_str())
            .collect();
        if !te.is_empty() {
            if !cl.is_empty() {
                return Err(Error::BadRequest(
                    "both Content-Length and Transfer-Encoding".into(),
                ));
            }
            if te.len() == 1 && te[0].eq_ignore_ascii_case("chunked") {
                return Ok(BodyKind::Chunked);
            }
            return Err(Error::NotImplemented(format!(
                "transfer-encoding {}",
                te.join(",")
            )));
        }
        let mut length = None;
        for v in cl {
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::BadRequest("malformed Content-Length".into()));
            }
            let n: u64 = v
                .parse()
                .map_err(|_| Error::BadRequest("malformed Content-Length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::BadRequest("conflicting Content-Length".into()));
            }
            length = Some(n);
        }
        Ok(length.map_or(BodyKind::None, BodyKind::Length))
    }
}

/// Parses `Range: bytes=...` against a chunk of `size` bytes.
/// Returns the inclusive byte range `(first, last)`, clamped to the data.
pub fn parse_range(value: &str, size: u64) -> Result<(u64, u64)> {
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(|| Error::BadRequest("range unit must be bytes".into()))?;
    if spec.contains(',') {
        return Err(Error::NotImplemented("multiple ranges".into()));
    }
    let (a, b) = spec
        .split_once('-')
        .ok_or_else(|| Error::BadRequest("malformed range".into()))?;
    let num = |s: &str| -> Result<u64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::BadRequest("malformed range".into()));
        }
        s.parse()
            .map_err(|_| Error::BadRequest("malformed range".into()))
    };
    let unsatisfiable = Error::RangeNotSatisfiable { size };
    if a.is_empty() {
        let n = num(b)?;
        if n == 0 || size == 0 {
            return Err(unsatisfiable);
        }
        return Ok((size - n.min(size), size - 1));
    }
    let start = num(a)?;
    let end = if b.is_empty() { u64::MAX } else { num(b)? };
    if end < start {
        return Err(Error::BadRequest("range end before start".into()));
    }
    if start >= size {
        return Err(unsatisfiable);
    }
    Ok((start, end.min(size - 1)))
}

/// Reason phrase of the status codes this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        507 => "Insufficient Storage",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A response head under construction.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Extra headers (Content-Length and Connection are added by [`ResponseHead::encode`]).
    pub headers: Vec<(&'static str, String)>,
    /// Value of Content-Length.
    pub content_length: u64,
    /// Whether the connection closes after this response.
    pub close: bool,
}

impl ResponseHead {
    /// A head with `status` and no body.
    pub fn new(status: u16) -> Self {
        ResponseHead {
            status,
            headers: Vec::new(),
            content_length: 0,
            close: false,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Appends the encoded head to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(256);
        let _ = write!(s, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (n, v) in &self.headers {
            let _ = write!(s, "{n}: {v}\r\n");
        }
        // 204 must not carry a Content-Length.
        if self.status != 204 {
            let _ = write!(s, "content-length: {}\r\n", self.content_length);
        }
        if self.close {
            s.push_str("connection: close\r\n");
        }
        s.push_str("\r\n");
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_put() {
        let r = parse_head(
            b"PUT /abc HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nX-Oxio-Chunk-Policy:  EC42 \r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.method, Method::Put);
        assert_eq!(r.target, "/abc");
        assert_eq!(r.header("x-oxio-chunk-policy"), Some("EC42"));
        assert_eq!(r.body_kind().unwrap(), BodyKind::Length(12));
        assert!(r.keep_alive());
    }

    #[test]
    fn rejects_bad_heads() {
        for bad in [
            &b"GET /x HTTP/1.1\r\nbad header\r\n\r\n"[..],
            b"GET /x HTTP/1.1\r\n folded: x\r\n\r\n",
            b"GET  /x HTTP/1.1\r\n\r\n",
            b"GET x HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/2.0\r\n\r\n",
            b"GET /x HTTP/1.1\r\n",
        ] {
            assert!(
                parse_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let many: String = (0..65).map(|i| format!("h{i}: v\r\n")).collect();
        let head = format!("GET /x HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(
            parse_head(head.as_bytes()),
            Err(Error::HeadTooLarge)
        ));
    }

    #[test]
    fn body_framing_is_strict() {
        let r = parse_head(
            b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap();
        assert!(r.body_kind().is_err());
        let r = parse_head(b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(r.body_kind().unwrap(), BodyKind::Chunked);
        let r = parse_head(b"PUT /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")
            .unwrap();
        assert!(r.body_kind().is_err());
        let r = parse_head(b"PUT /x HTTP/1.1\r\nContent-Length: -3\r\n\r\n").unwrap();
        assert!(r.body_kind().is_err());
        let r = parse_head(b"PUT /x HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(r.body_kind().unwrap(), BodyKind::None);
        assert!(!r.keep_alive());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), (0, 9));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), (90, 99));
        assert_eq!(parse_range("bytes=90-200", 100).unwrap(), (90, 99));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), (90, 99));
        assert_eq!(parse_range("bytes=-1000", 100).unwrap(), (0, 99));
        assert!(matches!(
            parse_range("bytes=100-", 100),
            Err(Error::RangeNotSatisfiable { .. })
        ));
        assert!(matches!(
            parse_range("bytes=-0", 100),
            Err(Error::RangeNotSatisfiable { .. })
        ));
        assert!(matches!(
            parse_range("bytes=0-", 0),
            Err(Error::RangeNotSatisfiable { .. })
        ));
        assert!(parse_range("bytes=5-1", 100).is_err());
        assert!(parse_range("items=0-1", 100).is_err());
        assert!(parse_range("bytes=0-1,3-4", 100).is_err());
        assert!(parse_range("bytes=a-b", 100).is_err());
    }

    #[test]
    fn head_encoding() {
        let mut out = Vec::new();
        let mut h = ResponseHead::new(201).header("x-oxio-chunk-size", "5");
        h.close = true;
        h.encode(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "HTTP/1.1 201 Created\r\nx-oxio-chunk-size: 5\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
    }
}
