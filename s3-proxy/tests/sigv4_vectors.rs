//! SigV4 header authentication as the gateway configures it, checked against the
//! signed examples of the AWS S3 documentation ("Signature Calculations for the
//! Authorization Header: Transferring Payload in a Single Chunk"): the documented
//! signatures are accepted, and any change to the request or the key is refused with
//! SignatureDoesNotMatch.

use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::{Body, S3Request, S3Response, S3Result, S3};

mod common;
use common::{get_example, put_example, ACCESS_KEY, GET_SIG, PUT_SIG, SECRET_KEY};

/// Answers GET and PUT without storing anything: only authentication is under test.
struct Accepting;

#[async_trait::async_trait]
impl S3 for Accepting {
    async fn get_object(
        &self,
        _req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        Ok(S3Response::new(GetObjectOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        // Read the body as the gateway does: a body whose hash differs from the
        // signed x-amz-content-sha256 must fail while being read.
        if let Some(mut body) = req.input.body {
            while let Some(piece) = futures::StreamExt::next(&mut body).await {
                piece.map_err(|e| s3s::s3_error!(BadDigest, "body: {e}"))?;
            }
        }
        Ok(S3Response::new(PutObjectOutput::default()))
    }
}

fn service(secret: &str) -> s3s::service::S3Service {
    // The examples are dated 2013: lift the clock-skew check, nothing else.
    oxio_s3_proxy::server::build_service(
        Accepting,
        SimpleAuth::from_single(ACCESS_KEY, secret),
        Some("s3.amazonaws.com"),
        Some(u32::MAX),
    )
    .unwrap()
}

fn get(signature: &str) -> http::Request<Body> {
    get_example(signature).body(Body::empty()).unwrap()
}

fn put(signature: &str, body: &'static str) -> http::Request<Body> {
    put_example(signature, body.len())
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn call(svc: &s3s::service::S3Service, req: http::Request<Body>) -> (u16, String) {
    let resp = svc.call(req).await.expect("service answered");
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn documented_get_object_signature_is_accepted() {
    let (status, body) = call(&service(SECRET_KEY), get(GET_SIG)).await;
    assert!(status < 300, "status {status}: {body}");
}

#[tokio::test]
async fn documented_put_object_signature_is_accepted() {
    let (status, body) = call(&service(SECRET_KEY), put(PUT_SIG, "Welcome to Amazon S3.")).await;
    assert!(status < 300, "status {status}: {body}");
}

#[tokio::test]
async fn altered_signature_or_key_is_refused() {
    let mut bad = GET_SIG.to_string();
    bad.replace_range(63..64, "2");
    let (status, body) = call(&service(SECRET_KEY), get(&bad)).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{body}"
    );

    let (status, body) = call(&service("another-secret"), get(GET_SIG)).await;
    assert_eq!(status, 403);
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
}

#[tokio::test]
async fn body_that_does_not_match_the_signed_hash_is_refused() {
    let (status, body) = call(&service(SECRET_KEY), put(PUT_SIG, "Welcome to Amazon S4.")).await;
    assert!(status >= 400, "status {status}: {body}");
    assert!(body.contains("<Code>"), "{body}");
}
