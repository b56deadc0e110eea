//! The gateway's per-request CPU outside the data path:
//! - `sigv4`: one presigned ListObjectsV2 request through an s3s service (routing,
//!   SigV4 verification of the query signature, an empty listing answered), against
//!   the same request unsigned (rejected by the access check) as the baseline;
//! - `xml_listing`: one ListObjectsV2 page of 1,000 keys turned from directory rows
//!   into S3 objects (`listing::render`) and written as XML by s3s.
//!
//! `cargo bench -p oxio-s3-proxy --bench s3` (add `-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use oxio_s3_proxy::listing;
use oxio_sdk::{ListEntry, ListPage};
use s3s::dto::{ListObjectsV2Input, ListObjectsV2Output};
use s3s::{S3Request, S3Response, S3Result, S3};
use std::hint::black_box;
use std::time::Duration;

const ACCESS_KEY: &str = "AKIAOXIOBENCH0000001";
const SECRET_KEY: &str = "bench-secret-key-of-forty-characters-000";
const REGION: &str = "us-east-1";
/// Keys in the listing page.
const PAGE: usize = 1000;

/// An S3 implementation that lists nothing.
struct Empty;

#[async_trait::async_trait]
impl S3 for Empty {
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(req.input.bucket),
            key_count: Some(0),
            is_truncated: Some(false),
            ..Default::default()
        }))
    }
}

fn request(uri: &str) -> s3s::HttpRequest {
    http::Request::builder()
        .method("GET")
        .uri(uri)
        .header("host", "127.0.0.1:6007")
        .body(s3s::Body::empty())
        .expect("request")
}

fn sigv4(c: &mut Criterion) {
    let mut builder = s3s::service::S3ServiceBuilder::new(Empty);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let base = url::Url::parse("http://127.0.0.1:6007").expect("url");
    let bucket =
        rusty_s3::Bucket::new(base, rusty_s3::UrlStyle::Path, "bench", REGION).expect("bucket");
    let creds = rusty_s3::Credentials::new(ACCESS_KEY, SECRET_KEY);
    let signed = {
        use rusty_s3::S3Action;
        bucket
            .list_objects_v2(Some(&creds))
            .sign(Duration::from_secs(3600))
    };
    let signed = format!("{}?{}", signed.path(), signed.query().unwrap_or_default());
    let unsigned = "/bench?list-type=2".to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // Both answer as expected before anything is measured.
    let status = |uri: &str| {
        rt.block_on(service.call(request(uri)))
            .map(|r| r.status())
            .expect("answer")
    };
    assert_eq!(status(&signed), http::StatusCode::OK);
    assert_eq!(status(&unsigned), http::StatusCode::FORBIDDEN);

    let mut group = c.benchmark_group("sigv4");
    group.throughput(Throughput::Elements(1));
    for (name, uri) in [
        ("presigned_list", &signed),
        ("unsigned_baseline", &unsigned),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(rt.block_on(service.call(request(uri)))))
        });
    }
    group.finish();
}

fn xml_listing(c: &mut Criterion) {
    let page = ListPage {
        entries: (0..PAGE)
            .map(|i| ListEntry {
                key: format!("dataset/shard-{:02}/sample-{i:08}.tar", i % 20),
                size: 4096 + i as u64,
                etag: format!("\"{i:032x}\""),
                mtime_ms: 1_700_000_000_000 + i as u64,
                policy: "EC42".into(),
                ..Default::default()
            })
            .collect(),
        common_prefixes: Vec::new(),
        truncated: true,
        next_start_after: "dataset/shard-19/sample-00000999.tar".into(),
    };
    let mut group = c.benchmark_group("xml_listing");
    group.throughput(Throughput::Elements(PAGE as u64));
    group.bench_function("list_objects_v2_1000", |b| {
        b.iter(|| {
            let p = listing::render(page.clone(), false);
            let out = ListObjectsV2Output {
                name: Some("bench".into()),
                key_count: Some(p.key_count),
                max_keys: Some(PAGE as i32),
                is_truncated: Some(p.truncated),
                contents: Some(p.contents),
                common_prefixes: p.common_prefixes,
                ..Default::default()
            };
            let mut xml = Vec::with_capacity(256 * 1024);
            let mut ser = s3s::xml::Serializer::new(&mut xml);
            s3s::xml::Serialize::serialize(&out, &mut ser).expect("xml");
            black_box(xml)
        })
    });
    group.finish();
}

criterion_group!(benches, sigv4, xml_listing);
criterion_main!(benches);
