//! Prometheus metrics of one rawx service, served on `GET /metrics`.
//!
//! Every service owns its own [`prometheus::Registry`] (never the process-global
//! one), so several rawx in one process (`oxiod dev`) keep separate figures. Request
//! counters are updated by the workers; the volume gauges and the checksum-failure
//! counter are copied from [`Stats`] at scrape time, `Stats` staying the one source
//! of truth that `/info` and the heartbeat also read. The scrubber updates its own
//! figures ([`ScrubMetrics`]) as it goes.

use crate::error::{Error, Result};
use crate::stats::Stats;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::Mutex;
use std::time::Duration;

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets in seconds: 100 µs to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Methods used as label values; anything else is counted as "OTHER" (bounded
/// label cardinality whatever clients send).
const KNOWN_METHODS: &[&str] = &["GET", "HEAD", "PUT", "DELETE", "POST"];

/// Figures of the background scrubber (see [`crate::scrub`]), updated as it runs.
#[derive(Debug, Clone)]
pub struct ScrubMetrics {
    /// Corrupt chunks found by scrub passes (a chunk still corrupt in a later pass
    /// counts again).
    pub corrupt_chunks: IntCounter,
    /// Chunks verified in the current (or last) pass.
    pub checked_chunks: IntGauge,
    /// Bytes read and verified in the current (or last) pass.
    pub checked_bytes: IntGauge,
    /// Completed passes since the volume was first scrubbed.
    pub passes: IntGauge,
    /// 0 idle, 1 running, 2 throttled (-1 disabled).
    pub state: IntGauge,
    /// Start of the last pass, seconds since the Unix epoch (0: never).
    pub last_pass_start: IntGauge,
    /// End of the last completed pass, seconds since the Unix epoch (0: never).
    pub last_pass_end: IntGauge,
}

impl ScrubMetrics {
    fn new(registry: &Registry) -> Result<Self> {
        let corrupt_chunks = IntCounter::new(
            "oxio_rawx_scrub_corrupt_chunks_total",
            "Corrupt chunks found by scrub passes (checksum mismatch or bad header)",
        )
        .map_err(metric_err)?;
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).map_err(metric_err);
        let m = ScrubMetrics {
            corrupt_chunks,
            checked_chunks: gauge(
                "oxio_rawx_scrub_checked_chunks",
                "Chunks verified by the current (or last) scrub pass",
            )?,
            checked_bytes: gauge(
                "oxio_rawx_scrub_checked_bytes",
                "Bytes read and verified by the current (or last) scrub pass",
            )?,
            passes: gauge(
                "oxio_rawx_scrub_passes",
                "Completed scrub passes over the volume",
            )?,
            state: gauge(
                "oxio_rawx_scrub_state",
                "Scrubber state: -1 disabled, 0 idle, 1 running, 2 throttled",
            )?,
            last_pass_start: gauge(
                "oxio_rawx_scrub_last_pass_start_seconds",
                "Start of the last scrub pass, seconds since the Unix epoch (0: never)",
            )?,
            last_pass_end: gauge(
                "oxio_rawx_scrub_last_pass_end_seconds",
                "End of the last completed scrub pass, seconds since the Unix epoch (0: never)",
            )?,
        };
        for c in [
            &m.checked_chunks,
            &m.checked_bytes,
            &m.passes,
            &m.state,
            &m.last_pass_start,
            &m.last_pass_end,
        ] {
            registry.register(Box::new(c.clone())).map_err(metric_err)?;
        }
        registry
            .register(Box::new(m.corrupt_chunks.clone()))
            .map_err(metric_err)?;
        Ok(m)
    }
}

/// The metrics of one rawx service.
#[derive(Debug)]
pub struct RawxMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    received: IntCounter,
    sent: IntCounter,
    chunks: IntGauge,
    used: IntGauge,
    checksum_failures: IntCounter,
    info: IntGaugeVec,
    local_opens: IntCounterVec,
    local_writes: IntCounterVec,
    scrub: ScrubMetrics,
    /// Serialises scrapes: the copy from [`Stats`] must not run twice at once.
    scrape: Mutex<()>,
}

fn metric_err(e: prometheus::Error) -> Error {
    Error::Metrics(e.to_string())
}

/// The label value of a request method.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("OTHER")
}

impl RawxMetrics {
    /// A fresh registry holding every rawx metric, all at zero.
    pub fn new() -> Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "oxio_rawx_http_requests_total",
                "HTTP requests answered, by method and status (\"none\": no answer sent)",
            ),
            &["method", "status"],
        )
        .map_err(metric_err)?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "oxio_rawx_http_request_duration_seconds",
                "Time from a parsed request head to the end of its answer, by method",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method"],
        )
        .map_err(metric_err)?;
        let received = IntCounter::new(
            "oxio_rawx_http_received_bytes_total",
            "Bytes read from clients (request heads and bodies)",
        )
        .map_err(metric_err)?;
        let sent = IntCounter::new(
            "oxio_rawx_http_sent_bytes_total",
            "Bytes written to clients (response heads and bodies)",
        )
        .map_err(metric_err)?;
        let chunks = IntGauge::new(
            "oxio_rawx_volume_chunks",
            "Complete chunks stored on the volume",
        )
        .map_err(metric_err)?;
        let used = IntGauge::new(
            "oxio_rawx_volume_used_bytes",
            "Bytes used by complete chunk files (headers and checksum tables included)",
        )
        .map_err(metric_err)?;
        let checksum_failures = IntCounter::new(
            "oxio_rawx_chunk_checksum_failures_total",
            "Checksum mismatches and corrupt chunk headers detected",
        )
        .map_err(metric_err)?;
        let info = IntGaugeVec::new(
            Opts::new(
                "oxio_rawx_service_info",
                "Always 1: the service id and the I/O driver its workers use",
            ),
            &["driver", "id"],
        )
        .map_err(metric_err)?;
        let local_opens = IntCounterVec::new(
            Opts::new(
                "oxio_rawx_local_opens_total",
                "Chunk files handed to local readers over the local-read socket, by result \
                 (\"open\", \"not_found\", \"error\")",
            ),
            &["result"],
        )
        .map_err(metric_err)?;
        let local_writes = IntCounterVec::new(
            Opts::new(
                "oxio_rawx_local_writes_total",
                "Chunks written by local writers through the local-write socket, by result \
                 (\"stored\", \"refused\": no pending file given, \"failed\": the commit \
                 failed, \"abandoned\": the writer went away before its commit)",
            ),
            &["result"],
        )
        .map_err(metric_err)?;
        registry
            .register(Box::new(requests.clone()))
            .and_then(|_| registry.register(Box::new(local_opens.clone())))
            .and_then(|_| registry.register(Box::new(local_writes.clone())))
            .and_then(|_| registry.register(Box::new(duration.clone())))
            .and_then(|_| registry.register(Box::new(received.clone())))
            .and_then(|_| registry.register(Box::new(sent.clone())))
            .and_then(|_| registry.register(Box::new(chunks.clone())))
            .and_then(|_| registry.register(Box::new(used.clone())))
            .and_then(|_| registry.register(Box::new(checksum_failures.clone())))
            .and_then(|_| registry.register(Box::new(info.clone())))
            .map_err(metric_err)?;
        let scrub = ScrubMetrics::new(&registry)?;
        Ok(RawxMetrics {
            registry,
            requests,
            duration,
            received,
            sent,
            chunks,
            used,
            checksum_failures,
            info,
            local_opens,
            local_writes,
            scrub,
            scrape: Mutex::new(()),
        })
    }

    /// The scrubber's figures.
    pub fn scrub(&self) -> &ScrubMetrics {
        &self.scrub
    }

    /// Sets `oxio_rawx_service_info{driver, id} 1` (once the workers know their driver).
    pub fn set_info(&self, id: &str, driver: &str) {
        self.info.reset();
        self.info.with_label_values(&[driver, id]).set(1);
    }

    /// Records one answer of the local-read socket (`result`: "open", "not_found"
    /// or "error").
    pub fn local_open(&self, result: &str) {
        self.local_opens.with_label_values(&[result]).inc();
    }

    /// Records one write of the local-write socket (`result`: "stored", "refused",
    /// "failed" or "abandoned").
    pub fn local_write(&self, result: &str) {
        self.local_writes.with_label_values(&[result]).inc();
    }

    /// Records one request: `status` is None when no answer was sent (client gone).
    pub fn observe(
        &self,
        method: &str,
        status: Option<u16>,
        elapsed: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let method = method_label(method);
        let mut code = [0u8; 5];
        let status = match status {
            Some(s) => format_status(s, &mut code),
            None => "none",
        };
        self.requests.with_label_values(&[method, status]).inc();
        self.duration
            .with_label_values(&[method])
            .observe(elapsed.as_secs_f64());
        self.received.inc_by(bytes_in);
        self.sent.inc_by(bytes_out);
    }

    /// Copies the volume figures from `stats` and encodes every metric in the
    /// Prometheus text format.
    pub fn render(&self, stats: &Stats) -> Result<Vec<u8>> {
        {
            let _guard = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
            self.chunks
                .set(i64::try_from(stats.chunks()).unwrap_or(i64::MAX));
            self.used
                .set(i64::try_from(stats.bytes()).unwrap_or(i64::MAX));
            let seen = stats.checksum_errors();
            let counted = self.checksum_failures.get();
            if seen > counted {
                self.checksum_failures.inc_by(seen - counted);
            }
        }
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(metric_err)?;
        Ok(out)
    }
}

/// Writes a status code as decimal into `buf` (no allocation on the hot path).
fn format_status(status: u16, buf: &mut [u8; 5]) -> &str {
    let mut n = status;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("invalid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &RawxMetrics, stats: &Stats) -> String {
        String::from_utf8(m.render(stats).unwrap()).unwrap()
    }

    #[test]
    fn status_codes_format() {
        let mut b = [0u8; 5];
        assert_eq!(format_status(201, &mut b), "201");
        assert_eq!(format_status(0, &mut b), "0");
        assert_eq!(format_status(65535, &mut b), "65535");
    }

    #[test]
    fn requests_and_bytes_are_counted_by_label() {
        let m = RawxMetrics::new().unwrap();
        m.set_info("rawx-3", "polling");
        m.observe("PUT", Some(201), Duration::from_millis(3), 1000, 50);
        m.observe("PUT", Some(201), Duration::from_millis(5), 24, 50);
        m.observe("BREW", Some(405), Duration::from_micros(10), 10, 100);
        m.observe("GET", None, Duration::from_micros(10), 10, 0);
        let stats = Stats::new(7, 4096);
        let t = text(&m, &stats);
        assert!(t.contains("oxio_rawx_http_requests_total{method=\"PUT\",status=\"201\"} 2"));
        assert!(t.contains("oxio_rawx_http_requests_total{method=\"OTHER\",status=\"405\"} 1"));
        assert!(t.contains("oxio_rawx_http_requests_total{method=\"GET\",status=\"none\"} 1"));
        assert!(t.contains("oxio_rawx_http_request_duration_seconds_count{method=\"PUT\"} 2"));
        assert!(t.contains("oxio_rawx_http_received_bytes_total 1044"));
        assert!(t.contains("oxio_rawx_http_sent_bytes_total 200"));
        assert!(t.contains("oxio_rawx_volume_chunks 7"));
        assert!(t.contains("oxio_rawx_volume_used_bytes 4096"));
        assert!(t.contains("oxio_rawx_service_info{driver=\"polling\",id=\"rawx-3\"} 1"));
        assert!(t.contains("# TYPE oxio_rawx_http_request_duration_seconds histogram"));
        assert!(t.contains("oxio_rawx_scrub_corrupt_chunks_total 0"));
    }

    #[test]
    fn scrub_figures_are_exported() {
        let m = RawxMetrics::new().unwrap();
        m.scrub().corrupt_chunks.inc_by(2);
        m.scrub().checked_bytes.set(12345);
        m.scrub().state.set(2);
        let t = text(&m, &Stats::new(0, 0));
        assert!(t.contains("oxio_rawx_scrub_corrupt_chunks_total 2"));
        assert!(t.contains("oxio_rawx_scrub_checked_bytes 12345"));
        assert!(t.contains("oxio_rawx_scrub_state 2"));
        assert!(t.contains("oxio_rawx_scrub_passes 0"));
    }

    #[test]
    fn checksum_failures_follow_stats_and_never_go_down() {
        let m = RawxMetrics::new().unwrap();
        let stats = Stats::new(0, 0);
        stats.checksum_error();
        stats.checksum_error();
        assert!(text(&m, &stats).contains("oxio_rawx_chunk_checksum_failures_total 2"));
        // A second scrape does not count them twice.
        assert!(text(&m, &stats).contains("oxio_rawx_chunk_checksum_failures_total 2"));
        stats.checksum_error();
        assert!(text(&m, &stats).contains("oxio_rawx_chunk_checksum_failures_total 3"));
    }

    #[test]
    fn registries_are_per_service() {
        let a = RawxMetrics::new().unwrap();
        let b = RawxMetrics::new().unwrap();
        a.set_info("rawx-0", "io_uring");
        b.set_info("rawx-1", "io_uring");
        a.observe("GET", Some(200), Duration::from_millis(1), 1, 1);
        let stats = Stats::new(0, 0);
        let tb = text(&b, &stats);
        assert!(!tb.contains("oxio_rawx_http_requests_total{"));
        assert!(tb.contains("id=\"rawx-1\""));
        assert!(!tb.contains("id=\"rawx-0\""));
    }
}
