//! Prometheus metrics of the S3 gateway, served on `GET /metrics` of the S3 port to
//! requests without any authentication (see [`crate::front`]).
//!
//! The gateway owns its own [`prometheus::Registry`] (never the process-global one).
//! Request figures are updated by the front service; the sdk's counters (degraded
//! erasure-coded reads) are copied at scrape time from [`SdkCounters`], which stays
//! their one source of truth.

use crate::{Error, Result};
use oxio_sdk::client::SdkCounters;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets in seconds: 1 ms to 120 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Longest operation name kept as a label value; s3s names are far shorter.
const MAX_OPERATION_LABEL: usize = 64;

/// How an object's bytes were stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// In the meta2 record.
    Inline,
    /// In chunks on rawx services.
    Chunked,
}

impl Layout {
    fn label(self) -> &'static str {
        match self {
            Layout::Inline => "inline",
            Layout::Chunked => "chunked",
        }
    }
}

/// The metrics of one S3 gateway.
#[derive(Debug)]
pub struct S3Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    received: IntCounter,
    sent: IntCounter,
    objects: IntCounterVec,
    degraded_reads: IntCounter,
    local_reads: IntCounter,
    local_fallbacks: IntCounter,
    local_writes: IntCounter,
    sdk: Arc<SdkCounters>,
    /// Serialises scrapes: the copy from the sdk counters must not run twice at once.
    scrape: Mutex<()>,
}

fn metric_err(e: prometheus::Error) -> Error {
    Error::Metrics(e.to_string())
}

impl S3Metrics {
    /// A fresh registry with every gateway metric at zero; `sdk` are the counters of
    /// the client the gateway uses.
    pub fn new(sdk: Arc<SdkCounters>) -> Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "oxio_s3_http_requests_total",
                "S3 requests answered, by S3 operation and HTTP status",
            ),
            &["operation", "status"],
        )
        .map_err(metric_err)?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "oxio_s3_http_request_duration_seconds",
                "Time from the request to its response head, by S3 operation",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .map_err(metric_err)?;
        let received = IntCounter::new(
            "oxio_s3_http_received_bytes_total",
            "Request body bytes received from S3 clients",
        )
        .map_err(metric_err)?;
        let sent = IntCounter::new(
            "oxio_s3_http_sent_bytes_total",
            "Response body bytes sent to S3 clients",
        )
        .map_err(metric_err)?;
        let objects = IntCounterVec::new(
            Opts::new(
                "oxio_s3_objects_stored_total",
                "Objects written, by layout: inline (in meta2) or chunked (on rawx)",
            ),
            &["layout"],
        )
        .map_err(metric_err)?;
        let degraded_reads = IntCounter::new(
            "oxio_s3_sdk_degraded_reads_total",
            "Erasure-coded metachunk reads that decoded around a missing or bad fragment",
        )
        .map_err(metric_err)?;
        let local_reads = IntCounter::new(
            "oxio_s3_sdk_local_reads_total",
            "Chunk reads served from the chunk file through a rawx's local-read socket",
        )
        .map_err(metric_err)?;
        let local_fallbacks = IntCounter::new(
            "oxio_s3_sdk_local_read_fallbacks_total",
            "Local chunk reads that failed part-way and went on over HTTP",
        )
        .map_err(metric_err)?;
        let local_writes = IntCounter::new(
            "oxio_s3_sdk_local_writes_total",
            "Chunks written into their file through a rawx's local-write socket",
        )
        .map_err(metric_err)?;
        registry
            .register(Box::new(requests.clone()))
            .and_then(|_| registry.register(Box::new(local_reads.clone())))
            .and_then(|_| registry.register(Box::new(local_writes.clone())))
            .and_then(|_| registry.register(Box::new(local_fallbacks.clone())))
            .and_then(|_| registry.register(Box::new(duration.clone())))
            .and_then(|_| registry.register(Box::new(received.clone())))
            .and_then(|_| registry.register(Box::new(sent.clone())))
            .and_then(|_| registry.register(Box::new(objects.clone())))
            .and_then(|_| registry.register(Box::new(degraded_reads.clone())))
            .map_err(metric_err)?;
        // Both layouts show from the start, at 0.
        for layout in [Layout::Inline, Layout::Chunked] {
            objects.with_label_values(&[layout.label()]);
        }
        Ok(S3Metrics {
            registry,
            requests,
            duration,
            received,
            sent,
            objects,
            degraded_reads,
            local_reads,
            local_fallbacks,
            local_writes,
            sdk,
            scrape: Mutex::new(()),
        })
    }

    /// Records one answered request.
    pub fn observe(&self, operation: &str, status: u16, elapsed: Duration) {
        let operation = operation_label(operation);
        let status = status.to_string();
        self.requests
            .with_label_values(&[operation, status.as_str()])
            .inc();
        self.duration
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts request body bytes.
    pub fn received(&self, n: u64) {
        self.received.inc_by(n);
    }

    /// Counts response body bytes.
    pub fn sent(&self, n: u64) {
        self.sent.inc_by(n);
    }

    /// Counts one object stored with `layout`.
    pub fn object_stored(&self, layout: Layout) {
        self.objects.with_label_values(&[layout.label()]).inc();
    }

    /// Copies the sdk counters and encodes every metric in the Prometheus text format.
    pub fn render(&self) -> Result<Vec<u8>> {
        {
            let _guard = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
            for (counter, seen) in [
                (&self.degraded_reads, self.sdk.degraded_reads()),
                (&self.local_reads, self.sdk.local_reads()),
                (&self.local_fallbacks, self.sdk.local_fallbacks()),
                (&self.local_writes, self.sdk.local_writes()),
            ] {
                let counted = counter.get();
                if seen > counted {
                    counter.inc_by(seen - counted);
                }
            }
        }
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(metric_err)?;
        Ok(out)
    }
}

/// A bounded, safe label value for an operation name.
fn operation_label(op: &str) -> &str {
    if op.is_empty()
        || op.len() > MAX_OPERATION_LABEL
        || !op.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return "unknown";
    }
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &S3Metrics) -> String {
        String::from_utf8(m.render().unwrap()).unwrap()
    }

    #[test]
    fn requests_bytes_and_layouts_are_counted() {
        let m = S3Metrics::new(Arc::default()).unwrap();
        m.observe("PutObject", 200, Duration::from_millis(12));
        m.observe("PutObject", 200, Duration::from_millis(2));
        m.observe("GetObject", 404, Duration::from_millis(1));
        m.observe("weird op{}", 400, Duration::from_millis(1));
        m.received(1 << 20);
        m.sent(42);
        m.object_stored(Layout::Chunked);
        let t = text(&m);
        assert!(t.contains("oxio_s3_http_requests_total{operation=\"PutObject\",status=\"200\"} 2"));
        assert!(t.contains("oxio_s3_http_requests_total{operation=\"GetObject\",status=\"404\"} 1"));
        assert!(t.contains("oxio_s3_http_requests_total{operation=\"unknown\",status=\"400\"} 1"));
        assert!(
            t.contains("oxio_s3_http_request_duration_seconds_count{operation=\"PutObject\"} 2")
        );
        assert!(t.contains("oxio_s3_http_received_bytes_total 1048576"));
        assert!(t.contains("oxio_s3_http_sent_bytes_total 42"));
        assert!(t.contains("oxio_s3_objects_stored_total{layout=\"chunked\"} 1"));
        assert!(t.contains("oxio_s3_objects_stored_total{layout=\"inline\"} 0"));
    }

    #[test]
    fn degraded_reads_follow_the_sdk_counter() {
        let sdk = Arc::new(SdkCounters::default());
        let m = S3Metrics::new(sdk.clone()).unwrap();
        assert!(text(&m).contains("oxio_s3_sdk_degraded_reads_total 0"));
        sdk.degraded_read();
        sdk.degraded_read();
        assert!(text(&m).contains("oxio_s3_sdk_degraded_reads_total 2"));
        // Copied, not added again, on the next scrape.
        assert!(text(&m).contains("oxio_s3_sdk_degraded_reads_total 2"));
    }
}
