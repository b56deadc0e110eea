//! The signed examples of the AWS S3 documentation ("Signature Calculations for the
//! Authorization Header: Transferring Payload in a Single Chunk"), shared by the
//! gateway's tests. Each builder returns the request head; the test adds a body of
//! whatever body type its service takes.
#![allow(dead_code)]

/// The documentation's access key.
pub const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
/// The documentation's secret key.
pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// Signature of the GET example.
pub const GET_SIG: &str = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
/// Signature of the PUT example.
pub const PUT_SIG: &str = "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd";
/// Body of the PUT example.
pub const PUT_BODY: &str = "Welcome to Amazon S3.";

/// `GET /test.txt` with a range, signed with `signature`.
pub fn get_example(signature: &str) -> http::request::Builder {
    http::Request::builder()
        .method("GET")
        .uri("/test.txt")
        .header("host", "examplebucket.s3.amazonaws.com")
        .header("range", "bytes=0-9")
        .header(
            "x-amz-content-sha256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        )
        .header("x-amz-date", "20130524T000000Z")
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/us-east-1/s3/aws4_request,\
                 SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature={signature}"
            ),
        )
}

/// `PUT /test$file.text` signed with `signature` for the hash of [`PUT_BODY`]; the
/// caller sends a body of `body_len` bytes.
pub fn put_example(signature: &str, body_len: usize) -> http::request::Builder {
    http::Request::builder()
        .method("PUT")
        .uri("/test%24file.text")
        .header("host", "examplebucket.s3.amazonaws.com")
        .header("date", "Fri, 24 May 2013 00:00:00 GMT")
        .header("x-amz-date", "20130524T000000Z")
        .header("x-amz-storage-class", "REDUCED_REDUNDANCY")
        .header("x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        .header("content-length", body_len.to_string())
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20130524/us-east-1/s3/aws4_request,\
                 SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature={signature}"
            ),
        )
}
