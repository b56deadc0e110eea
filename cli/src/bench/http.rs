//! The HTTP side shared by the S3 and rawx workloads: one pooled client with
//! TCP_NODELAY and timeouts, error classification, and bounded body reads that check
//! the size (and optionally the bytes) of what comes back.

use super::error::{Error, Result};
use std::time::Duration;

/// Longest wait for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an error body read to find its S3 `<Code>`.
const ERROR_BODY_BYTES: usize = 8 * 1024;
/// Longest error code kept.
const MAX_CODE_CHARS: usize = 64;

/// A pooled client for `concurrency` requests in flight, each bounded by `timeout`.
pub fn client(concurrency: usize, timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(concurrency)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .build()
        .map_err(Error::Client)
}

/// The error kind of a failed request: `timeout`, `connect`, `body` or `request`.
pub fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    }
}

/// The error kind of an unsuccessful answer: `http_<status>` plus `:<Code>` when the
/// body is an S3 error document (or the rawx `x-oxio-error` header says one).
pub async fn status_kind(mut resp: reqwest::Response) -> String {
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
    match header_code.or_else(|| s3_error_code(&body)) {
        Some(code) => format!("http_{status}:{code}"),
        None => format!("http_{status}"),
    }
}

/// The `<Code>` of an S3 error document.
pub fn s3_error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = text[start..start + len].trim();
    let ok = !code.is_empty()
        && code.len() <= MAX_CODE_CHARS
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    ok.then(|| code.to_string())
}

/// Reads a body of at most `limit` bytes and returns it (for listings).
pub async fn read_limited(
    mut resp: reqwest::Response,
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
    mut resp: reqwest::Response,
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
pub async fn drain(mut resp: reqwest::Response) {
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
