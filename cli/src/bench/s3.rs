//! The S3 workloads: PUT, GET (size-checked, some byte-checked), mixed and
//! ListObjectsV2 pages over keys `oxio-bench/<run>/<index>` of one bucket, signed with
//! query SigV4 by `rusty-s3` (UNSIGNED-PAYLOAD) and sent with a pooled hyper
//! client; plus the bucket set-up and the clean-up at the end.
//!
//! The GET URL of each prepared object is signed once and reused while half its
//! validity is left ([`GetUrls`]): building and signing a URL cost the client about a
//! fifth of its CPU per 4 KiB GET, CPU the server on the same machine could not use.
//! The server still verifies the signature of every request.

use super::args::{Op, Plan, Stop};
use super::driver::{drive, OpKind, Outcome, Phase, Workload};
use super::error::{Error, Result};
use super::http::{drain, read_checked, read_limited, status_failure, transport_failure, IntoUri};
use super::payload::{mix64, Payload};
use super::report::{Cleanup, CpuUse, Report, RunInfo};
use super::{cpu, prepare_failed};
use bytes::Bytes;
use http::StatusCode;
use rusty_s3::actions::{ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, info_span, warn, Instrument};

/// Keys per listing page.
pub const LIST_PAGE_KEYS: u64 = 1000;
/// Largest listing body accepted.
const MAX_LIST_BODY_BYTES: usize = 8 * 1024 * 1024;
/// One GET in this many compares the bytes, not only the size.
pub const VERIFY_EVERY: u64 = 8;
/// Presigned URLs stay valid this much longer than the request timeout.
const SIGN_SLACK: Duration = Duration::from_secs(300);
/// Longest validity S3 accepts for a presigned URL.
const MAX_SIGN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Salt that decorrelates the GET/PUT choice of a mixed run from the key choice.
const MIX_SALT: u64 = 0x6d69_7865_6421;

/// Connection to one bucket and the run's key space.
pub struct S3Store {
    http: super::http::HttpClient,
    bucket: Bucket,
    creds: Credentials,
    prefix: String,
    payload: Payload,
    sign_ttl: Duration,
    get_urls: GetUrls,
}

/// Most prepared objects whose GET URLs are kept (about 0.45 KiB each: a signed URL
/// of about 330 bytes and its 112-byte slot).
const MAX_KEPT_URLS: u64 = 100_000;

/// Signed GET URLs by object index, parsed for hyper, each with the time it was
/// signed.
struct GetUrls {
    urls: Vec<Mutex<Option<(Instant, http::Uri)>>>,
    /// A URL is signed again once this old (half its validity).
    reuse_for: Duration,
}

impl GetUrls {
    fn new(objects: u64, sign_ttl: Duration) -> Self {
        let n = if objects <= MAX_KEPT_URLS { objects } else { 0 };
        GetUrls {
            urls: (0..n).map(|_| Mutex::new(None)).collect(),
            reuse_for: sign_ttl / 2,
        }
    }

    /// The URL of object `index`: the kept one while young enough, else `sign()`'s,
    /// which is kept.
    fn get(
        &self,
        index: u64,
        sign: impl FnOnce() -> url::Url,
    ) -> std::result::Result<http::Uri, String> {
        let Some(slot) = usize::try_from(index).ok().and_then(|i| self.urls.get(i)) else {
            return sign().into_uri();
        };
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some((at, uri)) if at.elapsed() < self.reuse_for => Ok(uri.clone()),
            _ => {
                let uri = sign().into_uri()?;
                *slot = Some((Instant::now(), uri.clone()));
                Ok(uri)
            }
        }
    }
}

impl S3Store {
    /// A store for `bucket` at `endpoint`; keys live under `oxio-bench/<run>/`.
    pub fn new(
        plan: &Plan,
        endpoint: &str,
        creds: Credentials,
        region: &str,
        bucket: &str,
        run: u64,
    ) -> Result<Self> {
        let bad = |detail: String| Error::Endpoint {
            url: endpoint.to_string(),
            detail,
        };
        let url: url::Url = endpoint.parse().map_err(|e| bad(format!("{e}")))?;
        if url.scheme() != "http" {
            return Err(bad(
                "only http:// endpoints are supported (this oxio is built without TLS)".into(),
            ));
        }
        let bucket = Bucket::new(url, UrlStyle::Path, bucket.to_string(), region.to_string())
            .map_err(|e| bad(e.to_string()))?;
        let size = usize::try_from(plan.size_bytes)
            .map_err(|_| Error::Usage("--size does not fit in memory".into()))?;
        let sign_ttl = (plan.timeout + SIGN_SLACK).min(MAX_SIGN_TTL);
        let get_objects = match plan.op {
            Op::Get | Op::Mixed => plan.objects,
            Op::Put | Op::List => 0,
        };
        Ok(S3Store {
            http: super::http::client(plan.concurrency, plan.timeout),
            bucket,
            creds,
            prefix: format!("oxio-bench/{run:016x}/"),
            payload: Payload::new(size, run),
            sign_ttl,
            get_urls: GetUrls::new(get_objects, sign_ttl),
        })
    }

    /// Key of object `index`: zero padded so keys sort in index order.
    pub fn key(&self, index: u64) -> String {
        format!("{}{index:010}", self.prefix)
    }

    async fn put(&self, index: u64) -> Outcome {
        let key = self.key(index);
        let url = self
            .bucket
            .put_object(Some(&self.creds), &key)
            .sign(self.sign_ttl);
        let body = self.payload.body(index);
        let len = body.len() as u64;
        match self.http.put(url).body(body).send().await {
            Ok(resp) if resp.status().is_success() => {
                drain(resp).await;
                Outcome::ok(OpKind::Put, len)
            }
            Ok(resp) => Outcome::failed(OpKind::Put, status_failure(resp).await),
            Err(e) => Outcome::failed(OpKind::Put, transport_failure(&e)),
        }
    }

    async fn get(&self, index: u64, verify_bytes: bool) -> Outcome {
        let url = self.get_urls.get(index, || {
            self.bucket
                .get_object(Some(&self.creds), &self.key(index))
                .sign(self.sign_ttl)
        });
        let Ok(url) = url else {
            return Outcome::err(OpKind::Get, "request");
        };
        match self.http.get(url).send().await {
            Ok(resp) if resp.status().is_success() => {
                let expected = verify_bytes.then(|| self.payload.expected(index));
                match read_checked(resp, self.payload.size(), expected).await {
                    Ok(n) => Outcome::ok(OpKind::Get, n),
                    Err(kind) => Outcome::err(OpKind::Get, kind),
                }
            }
            Ok(resp) => Outcome::failed(OpKind::Get, status_failure(resp).await),
            Err(e) => Outcome::failed(OpKind::Get, transport_failure(&e)),
        }
    }

    async fn delete(&self, index: u64) -> Outcome {
        let key = self.key(index);
        let url = self
            .bucket
            .delete_object(Some(&self.creds), &key)
            .sign(self.sign_ttl);
        match self.http.delete(url).send().await {
            Ok(resp) if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND => {
                drain(resp).await;
                Outcome::ok(OpKind::Delete, 0)
            }
            Ok(resp) => Outcome::failed(OpKind::Delete, status_failure(resp).await),
            Err(e) => Outcome::failed(OpKind::Delete, transport_failure(&e)),
        }
    }

    /// Lists page `page` of `objects` keys (found with start-after, so pages are
    /// independent) and checks it holds the expected keys.
    async fn list_page(&self, page: u64, objects: u64) -> Outcome {
        let first = page * LIST_PAGE_KEYS;
        let want = (objects - first).min(LIST_PAGE_KEYS) as usize;
        let start_after = (page > 0).then(|| self.key(first - 1));
        let mut action = ListObjectsV2::new(&self.bucket, Some(&self.creds));
        action.with_prefix(self.prefix.as_str());
        action.with_max_keys(LIST_PAGE_KEYS as usize);
        if let Some(s) = &start_after {
            action.with_start_after(s.as_str());
        }
        let url = action.sign(self.sign_ttl);
        let resp = match self.http.get(url).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => return Outcome::failed(OpKind::List, status_failure(r).await),
            Err(e) => return Outcome::failed(OpKind::List, transport_failure(&e)),
        };
        let body = match read_limited(resp, MAX_LIST_BODY_BYTES).await {
            Ok(b) => b,
            Err(kind) => return Outcome::err(OpKind::List, kind),
        };
        let Ok(text) = std::str::from_utf8(&body) else {
            return Outcome::err(OpKind::List, "list_parse");
        };
        match ListObjectsV2::parse_response(text) {
            Ok(parsed)
                if parsed.contents.len() == want
                    && parsed.contents.first().map(|c| c.key.as_str())
                        == Some(self.key(first).as_str()) =>
            {
                Outcome::ok(OpKind::List, 0)
            }
            Ok(_) => Outcome::err(OpKind::List, "list_keys"),
            Err(_) => Outcome::err(OpKind::List, "list_parse"),
        }
    }

    /// Makes sure the bucket exists; true when this call created it.
    pub async fn ensure_bucket(&self) -> Result<bool> {
        let setup = |detail: String| Error::Setup {
            what: "bucket",
            detail,
        };
        let url = self
            .bucket
            .head_bucket(Some(&self.creds))
            .sign(self.sign_ttl);
        let resp = self
            .http
            .head(url)
            .send()
            .await
            .map_err(|e| setup(format!("HEAD {}: {e}", self.bucket.name())))?;
        match resp.status() {
            s if s.is_success() => return Ok(false),
            StatusCode::NOT_FOUND => {}
            _ => {
                return Err(setup(format!(
                    "HEAD {}: {}",
                    self.bucket.name(),
                    status_failure(resp).await
                )))
            }
        }
        let action = self.bucket.create_bucket(&self.creds);
        let body = action.body();
        let url = action.sign(self.sign_ttl);
        let resp = self
            .http
            .put(url)
            .body(Bytes::from(body))
            .send()
            .await
            .map_err(|e| setup(format!("create {}: {e}", self.bucket.name())))?;
        if resp.status().is_success() {
            drain(resp).await;
            return Ok(true);
        }
        let failure = status_failure(resp).await;
        if failure.kind.ends_with(":BucketAlreadyOwnedByYou") {
            return Ok(false);
        }
        Err(setup(format!("create {}: {failure}", self.bucket.name())))
    }

    /// Removes the (empty) bucket.
    pub async fn delete_bucket(&self) -> std::result::Result<(), String> {
        let url = self.bucket.delete_bucket(&self.creds).sign(self.sign_ttl);
        match self.http.delete(url).send().await {
            Ok(resp) if resp.status().is_success() => {
                drain(resp).await;
                Ok(())
            }
            Ok(resp) => Err(status_failure(resp).await.to_string()),
            Err(e) => Err(transport_failure(&e).to_string()),
        }
    }
}

/// What a phase does with each operation number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PUT object `seq`.
    Put,
    /// GET object `seq % objects`.
    Get {
        /// Prepared objects.
        objects: u64,
    },
    /// GET or overwrite a random prepared object.
    Mixed {
        /// Prepared objects.
        objects: u64,
        /// GET share in percent.
        get_percent: u8,
    },
    /// List page `seq % pages`.
    List {
        /// Prepared keys.
        objects: u64,
    },
    /// DELETE object `seq`.
    Delete,
}

impl Mode {
    /// Whether mixed operation `seq` is a GET.
    fn mixed_is_get(seq: u64, get_percent: u8) -> bool {
        mix64(seq ^ MIX_SALT) % 100 < u64::from(get_percent)
    }
}

/// One S3 phase: a store and a mode.
pub struct S3Load {
    store: Arc<S3Store>,
    mode: Mode,
}

impl Workload for S3Load {
    async fn op(&self, seq: u64) -> Outcome {
        let s = &self.store;
        match self.mode {
            Mode::Put => s.put(seq).await,
            Mode::Get { objects } => s.get(seq % objects, seq.is_multiple_of(VERIFY_EVERY)).await,
            Mode::Mixed {
                objects,
                get_percent,
            } => {
                let index = mix64(seq) % objects;
                if Mode::mixed_is_get(seq, get_percent) {
                    s.get(index, seq.is_multiple_of(VERIFY_EVERY)).await
                } else {
                    s.put(index).await
                }
            }
            Mode::List { objects } => {
                let pages = objects.div_ceil(LIST_PAGE_KEYS).max(1);
                s.list_page(seq % pages, objects).await
            }
            Mode::Delete => s.delete(seq).await,
        }
    }

    fn kind_of(&self, seq: u64) -> OpKind {
        match self.mode {
            Mode::Put => OpKind::Put,
            Mode::Get { .. } => OpKind::Get,
            Mode::Mixed { get_percent, .. } if Mode::mixed_is_get(seq, get_percent) => OpKind::Get,
            Mode::Mixed { .. } => OpKind::Put,
            Mode::List { .. } => OpKind::List,
            Mode::Delete => OpKind::Delete,
        }
    }
}

/// Runs an S3 benchmark: bucket, prepare, measure, clean up.
pub async fn run(
    plan: &Plan,
    endpoint: &str,
    creds: Credentials,
    region: &str,
    bucket: &str,
) -> Result<Report> {
    let run_id = rand::random::<u64>();
    let store = Arc::new(S3Store::new(plan, endpoint, creds, region, bucket, run_id)?);
    let span =
        info_span!("bench_s3", op = plan.op.as_str(), bucket, run = %format!("{run_id:016x}"));
    async move {
        let created = store.ensure_bucket().await?;
        info!(created, "bucket ready");
        let phase = |name, stop| Phase {
            name,
            stop,
            concurrency: plan.concurrency,
            timeout: plan.timeout,
            progress: plan.progress,
        };
        let load = |mode| {
            Arc::new(S3Load {
                store: store.clone(),
                mode,
            })
        };
        if plan.objects > 0 {
            let prepared = drive(
                load(Mode::Put),
                &phase("prepare", Stop::Count(plan.objects)),
            )
            .await?;
            if prepared.tally.total_errors() > 0 {
                if !plan.keep {
                    cleanup(&store, plan, plan.objects, created).await;
                }
                return Err(prepare_failed(&prepared));
            }
        }
        let mode = match plan.op {
            Op::Put => Mode::Put,
            Op::Get => Mode::Get {
                objects: plan.objects,
            },
            Op::Mixed => Mode::Mixed {
                objects: plan.objects,
                get_percent: plan.get_percent,
            },
            Op::List => Mode::List {
                objects: plan.objects,
            },
        };
        let cpu_before = cpu::process_cpu();
        let measured = drive(load(mode), &phase(plan.op.as_str(), plan.stop)).await?;
        let cpu_use = CpuUse {
            client: cpu::process_cpu().saturating_sub(cpu_before),
            server: None,
        };
        let info = RunInfo {
            op: plan.op.as_str(),
            target: endpoint.to_string(),
            bucket: Some(bucket.to_string()),
            size_bytes: plan.size_bytes,
            objects: plan.objects,
            concurrency: plan.concurrency,
        };
        let mut report = Report::new(info, &measured, cpu_use)?;
        let written = match plan.op {
            Op::Put => measured.issued,
            _ => plan.objects,
        };
        report.cleanup = if plan.keep {
            Cleanup {
                kept: true,
                ..Cleanup::default()
            }
        } else {
            cleanup(&store, plan, written, created).await
        };
        Ok(report)
    }
    .instrument(span)
    .await
}

/// Deletes objects `0..written` and the bucket when the run created it.
async fn cleanup(store: &Arc<S3Store>, plan: &Plan, written: u64, created: bool) -> Cleanup {
    let mut result = Cleanup::default();
    if written > 0 {
        let phase = Phase {
            name: "cleanup",
            stop: Stop::Count(written),
            concurrency: plan.concurrency,
            timeout: plan.timeout,
            progress: plan.progress,
        };
        let load = Arc::new(S3Load {
            store: store.clone(),
            mode: Mode::Delete,
        });
        match drive(load, &phase).await {
            Ok(m) => {
                result.deleted = m.tally.total_ops();
                result.errors = m.tally.total_errors();
                if result.errors > 0 {
                    warn!(errors = %m.tally.top_errors(3), "some objects were not deleted");
                }
            }
            Err(e) => {
                warn!(error = %e, "cleanup failed");
                result.errors = written;
            }
        }
    }
    if created && result.errors == 0 {
        match store.delete_bucket().await {
            Ok(()) => result.bucket_deleted = true,
            Err(kind) => {
                warn!(error = %kind, "could not delete the bucket");
                result.errors += 1;
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_split_follows_the_percentage() {
        let gets = (0..10_000u64)
            .filter(|&s| Mode::mixed_is_get(s, 70))
            .count();
        assert!((6_600..=7_400).contains(&gets), "{gets} GETs of 10000");
        assert!((0..1000u64).all(|s| !Mode::mixed_is_get(s, 0)));
        assert!((0..1000u64).all(|s| Mode::mixed_is_get(s, 100)));
    }

    #[test]
    fn get_urls_are_signed_once_while_young_and_again_when_old() {
        let signed = std::cell::Cell::new(0);
        let sign = |i: u64| {
            signed.set(signed.get() + 1);
            url::Url::parse(&format!("http://h/b/{i}?n={}", signed.get())).unwrap()
        };
        let urls = GetUrls::new(3, Duration::from_secs(600));
        let first = urls.get(1, || sign(1));
        assert_eq!(urls.get(1, || sign(1)), first, "kept");
        assert_eq!(signed.get(), 1);
        assert_ne!(urls.get(2, || sign(2)), first, "another object");
        // Past the kept objects every GET is signed.
        urls.get(7, || sign(7)).unwrap();
        urls.get(7, || sign(7)).unwrap();
        assert_eq!(signed.get(), 4);
        // A URL past half its validity is signed again.
        let urls = GetUrls::new(3, Duration::ZERO);
        let a = urls.get(0, || sign(0));
        assert_ne!(urls.get(0, || sign(0)), a);
        // Too many objects: none kept.
        assert!(GetUrls::new(MAX_KEPT_URLS + 1, Duration::from_secs(600))
            .urls
            .is_empty());
    }
}
