//! The front service: a fresh, unique `x-amz-request-id` on every response, the same
//! id visible to the sdk while the operation runs (so it reaches the rawx), counters
//! by operation and status, and `/metrics` served only to unauthenticated requests.
//! Signed requests reuse the documented AWS SigV4 examples (see sigv4_vectors.rs).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use oxio_s3_proxy::front::{Front, REQUEST_ID_HEADER};
use oxio_s3_proxy::metrics::S3Metrics;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, S3};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

mod common;
use common::{ACCESS_KEY, GET_SIG, PUT_BODY, PUT_SIG, SECRET_KEY};

/// Records the request id the sdk would send to the rawx during each operation.
#[derive(Clone, Default)]
struct Recording {
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl Recording {
    fn note(&self) {
        let id = oxio_sdk::rawx::current_request_id().map(|s| s.to_string());
        self.seen.lock().unwrap().push(id);
    }
}

#[async_trait::async_trait]
impl S3 for Recording {
    async fn get_object(
        &self,
        _req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.note();
        Ok(S3Response::new(GetObjectOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.note();
        if let Some(mut body) = req.input.body {
            while let Some(piece) = futures::StreamExt::next(&mut body).await {
                piece.map_err(|e| s3s::s3_error!(BadDigest, "body: {e}"))?;
            }
        }
        Ok(S3Response::new(PutObjectOutput::default()))
    }
}

fn front(s3: Recording) -> (Front, Arc<S3Metrics>) {
    let svc = oxio_s3_proxy::server::build_service(
        s3,
        SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY),
        Some("s3.amazonaws.com"),
        Some(u32::MAX),
    )
    .unwrap();
    let metrics = Arc::new(S3Metrics::new(Arc::default()).unwrap());
    (Front::new(svc, metrics.clone()), metrics)
}

fn get_example() -> http::Request<Full<Bytes>> {
    common::get_example(GET_SIG)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn put_example() -> http::Request<Full<Bytes>> {
    common::put_example(PUT_SIG, PUT_BODY.len())
        .body(Full::new(Bytes::from_static(PUT_BODY.as_bytes())))
        .unwrap()
}

fn anonymous(method: &str, uri: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "examplebucket.s3.amazonaws.com")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Status, request id header, body.
async fn call(f: &Front, req: http::Request<Full<Bytes>>) -> (u16, String, String) {
    let resp = f.serve(req).await.expect("service answered");
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get(REQUEST_ID_HEADER)
        .expect("x-amz-request-id on every response")
        .to_str()
        .unwrap()
        .to_string();
    assert!(resp.headers().contains_key("x-amz-id-2"));
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, id, String::from_utf8_lossy(&body).into_owned())
}

fn sample(text: &str, key: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn every_response_has_a_unique_request_id_seen_by_the_sdk() {
    let s3 = Recording::default();
    let (f, _) = front(s3.clone());
    let mut ids = HashSet::new();
    let (status, put_id, body) = call(&f, put_example()).await;
    assert!(status < 300, "{status}: {body}");
    ids.insert(put_id.clone());
    let (status, get_id, body) = call(&f, get_example()).await;
    assert!(status < 300, "{status}: {body}");
    ids.insert(get_id.clone());
    for _ in 0..20 {
        // Unsigned writes are refused by the access hook (unsigned reads go on to
        // the operation, which checks the bucket's ACL).
        let (status, id, _) = call(&f, anonymous("PUT", "/bucket/key")).await;
        assert_eq!(status, 403);
        ids.insert(id);
    }
    let (_, id, _) = call(&f, anonymous("GET", "/metrics")).await;
    ids.insert(id);
    assert_eq!(ids.len(), 23, "request ids must be unique per response");
    let seen = s3.seen.lock().unwrap().clone();
    assert_eq!(seen, vec![Some(put_id), Some(get_id)]);
}

#[tokio::test]
async fn metrics_count_operations_statuses_and_bytes() {
    let (f, _) = front(Recording::default());
    call(&f, put_example()).await;
    call(&f, get_example()).await;
    call(&f, get_example()).await;
    let (status, _, _) = call(&f, anonymous("PUT", "/bucket/key")).await;
    assert_eq!(status, 403);
    let (status, _, text) = call(&f, anonymous("GET", "/metrics")).await;
    assert_eq!(status, 200);
    let put = "oxio_s3_http_requests_total{operation=\"PutObject\",status=\"200\"}";
    let get = "oxio_s3_http_requests_total{operation=\"GetObject\",status=\"200\"}";
    let denied = "oxio_s3_http_requests_total{operation=\"PutObject\",status=\"403\"}";
    assert_eq!(sample(&text, put), 1.0, "{text}");
    assert_eq!(sample(&text, get), 2.0, "{text}");
    assert_eq!(sample(&text, denied), 1.0, "{text}");
    assert!(sample(&text, "oxio_s3_http_received_bytes_total") >= PUT_BODY.len() as f64);
    assert!(sample(&text, "oxio_s3_http_sent_bytes_total") > 0.0);
    // The signed PUT and the refused one.
    let put_latency = "oxio_s3_http_request_duration_seconds_count{operation=\"PutObject\"}";
    assert_eq!(sample(&text, put_latency), 2.0);
}

#[tokio::test]
async fn metrics_path_with_credentials_goes_to_s3() {
    let (f, _) = front(Recording::default());
    let mut req = anonymous("GET", "/metrics");
    req.headers_mut().insert(
        "authorization",
        http::HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host,Signature=00",
        ),
    );
    let (status, _, body) = call(&f, req).await;
    assert_ne!(status, 200);
    assert!(!body.contains("oxio_s3_"), "{body}");
    let (status, _, body) = call(&f, anonymous("GET", "/metrics?X-Amz-Signature=00")).await;
    assert_ne!(status, 200);
    assert!(!body.contains("oxio_s3_"), "{body}");
    let (status, _, body) = call(&f, anonymous("PUT", "/metrics")).await;
    assert_eq!(status, 403, "{body}");
}
