//! Flexible checksums (`x-amz-checksum-crc32`, `-crc32c`, `-crc64nvme`, `-sha1`,
//! `-sha256`) of PutObject and UploadPart bodies. `s3s` decodes `aws-chunked` bodies
//! and checks chunk and trailer signatures, but not the checksums: the gateway
//! computes the announced algorithm over the body as it streams by and, at its end,
//! compares with the value sent in a header or in the trailer. A mismatch turns the
//! end of the body into an error, so the sdk abandons the upload before anything is
//! committed (no chunk is kept) and the client gets `BadDigest`. A verified PutObject
//! checksum is stored with the object (`system_meta` `checksum-<algorithm>`) and
//! returned by GET / HEAD with `x-amz-checksum-mode: ENABLED`.

use bytes::Bytes;
use futures::Stream;
use http::HeaderMap;
use oxio_sdk::{BodyMeta, ContentHeader};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result, TrailingHeaders};
use std::fmt::Display;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The checksum algorithms of S3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// CRC-32 (ISO-HDLC).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

/// Every algorithm.
pub const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::Crc32,
    Algorithm::Crc32c,
    Algorithm::Crc64Nvme,
    Algorithm::Sha1,
    Algorithm::Sha256,
];

/// Longest checksum value accepted in a header or trailer (base64 of SHA-256 is 44).
const MAX_VALUE_BYTES: usize = 128;

impl Algorithm {
    /// The request / response header (and trailer) carrying the value.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The name AWS uses in messages.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The `system_meta` key the verified value is stored under.
    pub fn meta_key(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "checksum-crc32",
            Algorithm::Crc32c => "checksum-crc32c",
            Algorithm::Crc64Nvme => "checksum-crc64nvme",
            Algorithm::Sha1 => "checksum-sha1",
            Algorithm::Sha256 => "checksum-sha256",
        }
    }

    fn of_header(name: &str) -> Option<Algorithm> {
        let name = name.trim();
        ALGORITHMS
            .into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(name))
    }

    fn hasher(self) -> ChecksumHasher {
        let mut h = ChecksumHasher::default();
        match self {
            Algorithm::Crc32 => h.crc32 = Some(Crc32::new()),
            Algorithm::Crc32c => h.crc32c = Some(Crc32c::new()),
            Algorithm::Crc64Nvme => h.crc64nvme = Some(Crc64Nvme::new()),
            Algorithm::Sha1 => h.sha1 = Some(Sha1::new()),
            Algorithm::Sha256 => h.sha256 = Some(Sha256::new()),
        }
        h
    }

    fn pick(self, c: s3s::dto::Checksum) -> Option<String> {
        match self {
            Algorithm::Crc32 => c.checksum_crc32,
            Algorithm::Crc32c => c.checksum_crc32c,
            Algorithm::Crc64Nvme => c.checksum_crc64nvme,
            Algorithm::Sha1 => c.checksum_sha1,
            Algorithm::Sha256 => c.checksum_sha256,
        }
    }

    /// The `BadDigest` answer for a mismatch, worded as AWS.
    pub fn mismatch(self) -> S3Error {
        S3Error::with_message(
            S3ErrorCode::BadDigest,
            format!(
                "The {} you specified did not match the calculated checksum.",
                self.name()
            ),
        )
    }
}

/// Where the announced value comes from.
#[derive(Clone, Debug)]
enum Source {
    /// A request header (known before the body).
    Header(String),
    /// The `aws-chunked` trailer (known once the body is read).
    Trailer(Option<TrailingHeaders>),
}

/// The checksum a request announces.
#[derive(Clone, Debug)]
pub struct Expected {
    /// Its algorithm.
    pub algorithm: Algorithm,
    source: Source,
}

/// The checksum a PutObject or UploadPart announces: the one named by `x-amz-trailer`
/// (value in the trailer), else a single `x-amz-checksum-*` header. Several headers,
/// an unknown trailer or an oversized value answer `InvalidRequest`.
pub fn expected(
    headers: &HeaderMap,
    trailers: Option<TrailingHeaders>,
) -> S3Result<Option<Expected>> {
    if let Some(t) = headers.get("x-amz-trailer") {
        let names = t.to_str().map_err(|_| bad_trailer())?;
        let mut found = None;
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match Algorithm::of_header(name) {
                Some(a) if found.is_none() => found = Some(a),
                _ => return Err(bad_trailer()),
            }
        }
        return Ok(found.map(|algorithm| Expected {
            algorithm,
            source: Source::Trailer(trailers),
        }));
    }
    let mut found: Option<Expected> = None;
    for a in ALGORITHMS {
        let Some(v) = headers.get(a.header()) else {
            continue;
        };
        if found.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
            ));
        }
        let v = v
            .to_str()
            .ok()
            .filter(|v| v.len() <= MAX_VALUE_BYTES)
            .ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    format!("Value for {} header is invalid.", a.header()),
                )
            })?;
        found = Some(Expected {
            algorithm: a,
            source: Source::Header(v.trim().to_string()),
        });
    }
    Ok(found)
}

fn bad_trailer() -> S3Error {
    s3_error!(
        InvalidRequest,
        "The value specified in the x-amz-trailer header is not supported"
    )
}

/// What reading a body showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The announced checksum matched; the computed value (base64).
    Matched(String),
    /// The announced checksum did not match.
    Mismatch(Algorithm),
    /// `s3s` found a chunk or trailer signature that does not match (`aws-chunked`
    /// bodies signed chunk by chunk).
    BadSignature,
    /// The body's SHA-256 differs from the `x-amz-content-sha256` it was signed with.
    ContentSha256Mismatch,
}

/// The outcome of a body, once known.
pub type Verdict = Arc<Mutex<Option<Outcome>>>;

/// How `s3s` reports a chunk or trailer signature mismatch in the body stream (its
/// error type is not public).
const CHUNK_SIGNATURE_MISMATCH: &str = "AwsChunkedStreamError: SignatureMismatch";
/// How `s3s` reports a body whose SHA-256 is not the signed `x-amz-content-sha256`.
const CONTENT_SHA256_MISMATCH: &str = "UploadStreamError: Sha256Mismatch";

/// A body stream checked against an announced checksum (a pass-through without one).
pub struct Verify<S> {
    inner: S,
    hasher: Option<ChecksumHasher>,
    expected: Option<Expected>,
    verdict: Verdict,
    store: Option<BodyMeta>,
}

/// Wraps `body`: with `expected`, its end becomes an error when the checksum does not
/// match; a match is recorded in the verdict and, with `store`, in the stored headers.
pub fn verify<S>(
    body: S,
    expected: Option<Expected>,
    store: Option<BodyMeta>,
) -> (Verify<S>, Verdict) {
    let verdict: Verdict = Arc::default();
    let v = Verify {
        inner: body,
        hasher: expected.as_ref().map(|e| e.algorithm.hasher()),
        expected,
        verdict: verdict.clone(),
        store,
    };
    (v, verdict)
}

impl<S> Verify<S> {
    fn record(&self, o: Outcome) {
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(o);
        }
    }

    /// Compares the finished hash with the announced value; `Err` on a mismatch.
    fn finish(&mut self, hasher: ChecksumHasher) -> Result<(), String> {
        let Some(e) = &self.expected else {
            return Ok(());
        };
        let a = e.algorithm;
        let computed = a.pick(hasher.finalize()).unwrap_or_default();
        let announced = match &e.source {
            Source::Header(v) => Some(v.clone()),
            Source::Trailer(t) => t
                .as_ref()
                .and_then(|t| {
                    t.read(|m| {
                        m.get(a.header())
                            .and_then(|v| v.to_str().ok())
                            .map(|v| v.trim().to_string())
                    })
                })
                .flatten(),
        };
        let ok = announced.as_deref() == Some(computed.as_str());
        self.record(if ok {
            Outcome::Matched(computed.clone())
        } else {
            Outcome::Mismatch(a)
        });
        if !ok {
            return Err(format!("{} checksum mismatch", a.name()));
        }
        if let Some(store) = &self.store {
            if let Ok(mut m) = store.lock() {
                m.insert(a.meta_key().to_string(), computed);
            }
        }
        Ok(())
    }
}

impl<S, E> Stream for Verify<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(b))) => {
                if let Some(h) = this.hasher.as_mut() {
                    h.update(&b);
                }
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                let msg = e.to_string();
                if msg.contains(CHUNK_SIGNATURE_MISMATCH) {
                    this.record(Outcome::BadSignature);
                } else if msg.contains(CONTENT_SHA256_MISMATCH) {
                    this.record(Outcome::ContentSha256Mismatch);
                }
                Poll::Ready(Some(Err(msg)))
            }
            Poll::Ready(None) => match this.hasher.take() {
                None => Poll::Ready(None),
                Some(h) => match this.finish(h) {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(e))),
                },
            },
        }
    }
}

/// The error to answer for a failed upload (the sdk only saw a body error):
/// `BadDigest` when the checksum did not match, `SignatureDoesNotMatch` when a chunk
/// signature did not, `fallback` otherwise.
pub fn upload_error(verdict: &Verdict, fallback: S3Error) -> S3Error {
    match verdict.lock().ok().and_then(|v| v.clone()) {
        Some(Outcome::Mismatch(a)) => a.mismatch(),
        Some(Outcome::BadSignature) => S3Error::with_message(
            S3ErrorCode::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method.",
        ),
        Some(Outcome::ContentSha256Mismatch) => {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            );
            e.set_status_code(http::StatusCode::BAD_REQUEST);
            e
        }
        _ => fallback,
    }
}

/// The verified value, to answer in PutObject / UploadPart.
pub fn verified(verdict: &Verdict, expected: Option<&Expected>) -> Option<(Algorithm, String)> {
    let a = expected?.algorithm;
    match verdict.lock().ok()?.clone()? {
        Outcome::Matched(v) => Some((a, v)),
        _ => None,
    }
}

/// The checksum stored with an object, as the response fields of GET / HEAD.
pub fn stored(h: &ContentHeader) -> s3s::dto::Checksum {
    let get = |a: Algorithm| h.system_meta.get(a.meta_key()).cloned();
    s3s::dto::Checksum {
        checksum_crc32: get(Algorithm::Crc32),
        checksum_crc32c: get(Algorithm::Crc32c),
        checksum_crc64nvme: get(Algorithm::Crc64Nvme),
        checksum_sha1: get(Algorithm::Sha1),
        checksum_sha256: get(Algorithm::Sha256),
        ..Default::default()
    }
}

/// One algorithm's value as response fields.
pub fn fields(v: Option<(Algorithm, String)>) -> s3s::dto::Checksum {
    let mut c = s3s::dto::Checksum::default();
    if let Some((a, v)) = v {
        match a {
            Algorithm::Crc32 => c.checksum_crc32 = Some(v),
            Algorithm::Crc32c => c.checksum_crc32c = Some(v),
            Algorithm::Crc64Nvme => c.checksum_crc64nvme = Some(v),
            Algorithm::Sha1 => c.checksum_sha1 = Some(v),
            Algorithm::Sha256 => c.checksum_sha256 = Some(v),
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    // CRC32 of "hello world", base64.
    const HELLO_CRC32: &str = "DUoRhQ==";

    async fn drain(
        body: &[&'static str],
        e: Option<Expected>,
    ) -> (Vec<Result<Bytes, String>>, Verdict) {
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .iter()
            .map(|s| Ok(Bytes::from_static(s.as_bytes())))
            .collect();
        let (v, verdict) = verify(futures::stream::iter(chunks), e, None);
        (v.collect().await, verdict)
    }

    #[tokio::test]
    async fn a_matching_header_checksum_passes() {
        let e = expected(&headers(&[("x-amz-checksum-crc32", HELLO_CRC32)]), None).unwrap();
        let (items, verdict) = drain(&["hello ", "world"], e).await;
        assert!(items.iter().all(Result::is_ok));
        assert_eq!(
            verdict.lock().unwrap().clone(),
            Some(Outcome::Matched(HELLO_CRC32.to_string()))
        );
    }

    #[tokio::test]
    async fn a_wrong_checksum_ends_the_body_with_an_error() {
        let e = expected(&headers(&[("x-amz-checksum-crc32", "AAAAAA==")]), None).unwrap();
        let (items, verdict) = drain(&["hello world"], e).await;
        assert!(items.last().unwrap().is_err());
        let err = upload_error(&verdict, s3_error!(InternalError));
        assert_eq!(*err.code(), S3ErrorCode::BadDigest);
    }

    #[tokio::test]
    async fn a_missing_trailer_value_is_a_mismatch() {
        let e = expected(&headers(&[("x-amz-trailer", "x-amz-checksum-crc32")]), None)
            .unwrap()
            .unwrap();
        assert_eq!(e.algorithm, Algorithm::Crc32);
        let (items, _) = drain(&["hello world"], Some(e)).await;
        assert!(items.last().unwrap().is_err());
    }

    #[test]
    fn announcements_are_checked() {
        assert!(expected(&HeaderMap::new(), None).unwrap().is_none());
        let two = headers(&[("x-amz-checksum-crc32", "a"), ("x-amz-checksum-sha1", "b")]);
        assert_eq!(
            *expected(&two, None).unwrap_err().code(),
            S3ErrorCode::InvalidRequest
        );
        let unknown = headers(&[("x-amz-trailer", "x-amz-checksum-md4")]);
        assert_eq!(
            *expected(&unknown, None).unwrap_err().code(),
            S3ErrorCode::InvalidRequest
        );
        let sha = headers(&[("x-amz-checksum-sha256", "x")]);
        assert_eq!(
            expected(&sha, None).unwrap().unwrap().algorithm,
            Algorithm::Sha256
        );
    }

    #[tokio::test]
    async fn a_chunk_signature_mismatch_is_reported_as_such() {
        let items: Vec<Result<Bytes, String>> = vec![
            Ok(Bytes::from_static(b"x")),
            Err(CHUNK_SIGNATURE_MISMATCH.to_string()),
        ];
        let (v, verdict) = verify(futures::stream::iter(items), None, None);
        let _: Vec<_> = v.collect().await;
        let err = upload_error(&verdict, s3_error!(IncompleteBody));
        assert_eq!(*err.code(), S3ErrorCode::SignatureDoesNotMatch);
    }

    #[tokio::test]
    async fn a_content_sha256_mismatch_is_reported_as_such() {
        let items: Vec<Result<Bytes, String>> = vec![
            Ok(Bytes::from_static(b"x")),
            Err(CONTENT_SHA256_MISMATCH.to_string()),
        ];
        let (v, verdict) = verify(futures::stream::iter(items), None, None);
        let _: Vec<_> = v.collect().await;
        let err = upload_error(&verdict, s3_error!(IncompleteBody));
        assert_eq!(err.code().as_str(), "XAmzContentSHA256Mismatch");
        assert_eq!(err.status_code(), Some(http::StatusCode::BAD_REQUEST));
    }
}
