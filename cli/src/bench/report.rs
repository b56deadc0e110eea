//! The benchmark report: throughput, latency percentiles from the HDR histograms,
//! errors by kind, the client's CPU; rendered as text for people or one JSON object.

use super::driver::{Measured, OpKind};
use super::error::Result;
use hdrhistogram::Histogram;
use oxio_common::ByteSize;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

const MIB: f64 = 1024.0 * 1024.0;

/// Latency percentiles in milliseconds (zeros when nothing was measured).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// Percentiles of a histogram of microseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// Figures of one request kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpFigures {
    /// Successful requests.
    pub ops: u64,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Requests per second.
    pub ops_per_s: f64,
    /// Payload MiB per second.
    pub mib_per_s: f64,
    /// Latency percentiles.
    pub latency_ms: Latency,
}

/// What the end of the run removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Cleanup {
    /// `--keep` was given: nothing removed.
    pub kept: bool,
    /// Objects or chunks removed.
    pub deleted: u64,
    /// Removals that failed.
    pub errors: u64,
    /// The bucket was created by the run and removed.
    pub bucket_deleted: bool,
}

/// CPU time spent during the measured phase.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuUse {
    /// The client's user + system time.
    pub client: Duration,
    /// The in-process server's (rawx threads, with `--local`).
    pub server: Option<Duration>,
}

/// Describes the run for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// Operation measured ("put", ...).
    pub op: &'static str,
    /// Endpoint URL or `local rawx ADDR (driver)`.
    pub target: String,
    /// Bucket (S3 runs).
    pub bucket: Option<String>,
    /// Object size.
    pub size_bytes: u64,
    /// Objects prepared.
    pub objects: u64,
    /// Requests in flight.
    pub concurrency: usize,
}

/// The result of one `oxio bench` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Operation measured.
    pub op: &'static str,
    /// What was measured.
    pub target: String,
    /// Bucket (S3 runs).
    pub bucket: Option<String>,
    /// Object size.
    pub size_bytes: u64,
    /// Objects prepared before measuring (get, mixed, list).
    pub objects: u64,
    /// Requests in flight.
    pub concurrency: usize,
    /// Successful requests.
    pub ops: u64,
    /// Failed requests.
    pub errors: u64,
    /// Failed requests by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// What the first failure of each kind said (the S3 error's message, the
    /// transport error), for the kinds that said something.
    pub error_details: BTreeMap<String, String>,
    /// Measured wall time.
    pub duration_s: f64,
    /// Successful requests per second.
    pub ops_per_s: f64,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Payload MiB per second.
    pub mib_per_s: f64,
    /// Latency of successful requests.
    pub latency_ms: Latency,
    /// The same figures per request kind (several for mixed).
    pub by_op: BTreeMap<&'static str, OpFigures>,
    /// CPU seconds the client used while measuring.
    pub client_cpu_s: f64,
    /// The client's CPU use in percent of one core.
    pub client_cpu_pct: f64,
    /// CPU seconds of the in-process rawx (`--local` only).
    pub server_cpu_s: Option<f64>,
    /// What the end of the run removed.
    pub cleanup: Cleanup,
}

fn rate(n: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        n / secs
    } else {
        0.0
    }
}

impl Report {
    /// The report of a measured phase (cleanup filled in later).
    pub fn new(info: RunInfo, measured: &Measured, cpu: CpuUse) -> Result<Self> {
        let t = &measured.tally;
        let secs = measured.elapsed.as_secs_f64();
        let mut by_op = BTreeMap::new();
        for kind in OpKind::ALL {
            let ops = t.ops(kind);
            if ops == 0 {
                continue;
            }
            by_op.insert(
                kind.as_str(),
                OpFigures {
                    ops,
                    bytes: t.bytes(kind),
                    ops_per_s: rate(ops as f64, secs),
                    mib_per_s: rate(t.bytes(kind) as f64 / MIB, secs),
                    latency_ms: Latency::from_histogram(t.latency_us(kind)),
                },
            );
        }
        let client_cpu_s = cpu.client.as_secs_f64();
        Ok(Report {
            op: info.op,
            target: info.target,
            bucket: info.bucket,
            size_bytes: info.size_bytes,
            objects: info.objects,
            concurrency: info.concurrency,
            ops: t.total_ops(),
            errors: t.total_errors(),
            errors_by_kind: t.errors().clone(),
            error_details: t.error_details().clone(),
            duration_s: secs,
            ops_per_s: rate(t.total_ops() as f64, secs),
            bytes: t.total_bytes(),
            mib_per_s: rate(t.total_bytes() as f64 / MIB, secs),
            latency_ms: Latency::from_histogram(&t.total_latency_us()?),
            by_op,
            client_cpu_s,
            client_cpu_pct: rate(client_cpu_s * 100.0, secs),
            server_cpu_s: cpu.server.map(|d| d.as_secs_f64()),
            cleanup: Cleanup::default(),
        })
    }

    /// One JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Aligned text for people.
    pub fn to_text(&self) -> String {
        let mut out = vec![format!(
            "oxio bench {} {} x{} against {}{}",
            self.op,
            ByteSize(self.size_bytes),
            self.concurrency,
            self.target,
            self.bucket
                .as_deref()
                .map(|b| format!(" bucket {b}"))
                .unwrap_or_default()
        )];
        out.push(format!(
            "  total    {} ops in {:.2} s  {:.1} ops/s  {:.2} MiB/s",
            self.ops, self.duration_s, self.ops_per_s, self.mib_per_s
        ));
        out.push(format!("  latency  {}", latency_text(&self.latency_ms)));
        if self.by_op.len() > 1 {
            for (name, f) in &self.by_op {
                out.push(format!(
                    "  {name:<7}  {} ops  {:.1} ops/s  {:.2} MiB/s  {}",
                    f.ops,
                    f.ops_per_s,
                    f.mib_per_s,
                    latency_text(&f.latency_ms)
                ));
            }
        }
        let errors = if self.errors_by_kind.is_empty() {
            "0".to_string()
        } else {
            let kinds: Vec<String> = self
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k} x{v}"))
                .collect();
            format!("{} ({})", self.errors, kinds.join(", "))
        };
        out.push(format!("  errors   {errors}"));
        for (kind, said) in &self.error_details {
            out.push(format!("           {kind}: {said}"));
        }
        let server = self
            .server_cpu_s
            .map(|s| format!(", in-process rawx {s:.2} s"))
            .unwrap_or_default();
        out.push(format!(
            "  cpu      client {:.2} s ({:.0}% of a core){server}",
            self.client_cpu_s, self.client_cpu_pct
        ));
        let c = &self.cleanup;
        out.push(if c.kept {
            "  cleanup  kept (--keep)".to_string()
        } else {
            format!(
                "  cleanup  {} deleted, {} errors{}",
                c.deleted,
                c.errors,
                if c.bucket_deleted {
                    ", bucket removed"
                } else {
                    ""
                }
            )
        });
        out.join("\n")
    }
}

fn latency_text(l: &Latency) -> String {
    format!(
        "ms p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        l.p50, l.p90, l.p99, l.p999, l.max
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::driver::{new_histogram, Failure, Outcome, Tally};

    #[test]
    fn percentiles_of_a_known_histogram() {
        let mut h = new_histogram().unwrap();
        for us in 1..=1000u64 {
            h.record(us).unwrap();
        }
        let l = Latency::from_histogram(&h);
        assert_eq!(l.p50, 0.5);
        assert_eq!(l.p90, 0.9);
        assert_eq!(l.p99, 0.99);
        assert_eq!(l.p999, 0.999);
        assert_eq!(l.max, 1.0);
        assert!((l.mean - 0.5005).abs() < 1e-9);
        assert_eq!(
            Latency::from_histogram(&new_histogram().unwrap()),
            Latency::default()
        );
    }

    fn measured() -> Measured {
        let mut tally = Tally::new().unwrap();
        for i in 0..100u64 {
            tally.record(
                &Outcome::ok(OpKind::Get, 1 << 20),
                Duration::from_millis(1 + i % 10),
            );
        }
        for _ in 0..50 {
            tally.record(
                &Outcome::ok(OpKind::Put, 1 << 20),
                Duration::from_millis(20),
            );
        }
        tally.record(
            &Outcome::err(OpKind::Put, "http_503:SlowDown"),
            Duration::ZERO,
        );
        tally.record(
            &Outcome::failed(
                OpKind::Put,
                Failure {
                    kind: "http_503:ServiceUnavailable".into(),
                    detail: Some("6 needed, 0 eligible".into()),
                },
            ),
            Duration::ZERO,
        );
        Measured {
            tally,
            elapsed: Duration::from_secs(2),
            issued: 151,
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let info = RunInfo {
            op: "mixed",
            target: "http://127.0.0.1:6007".into(),
            bucket: Some("b".into()),
            size_bytes: 1 << 20,
            objects: 10,
            concurrency: 4,
        };
        let cpu = CpuUse {
            client: Duration::from_millis(500),
            server: None,
        };
        let r = Report::new(info, &measured(), cpu).unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["op"], "mixed");
        assert_eq!(v["ops"], 150);
        assert_eq!(v["errors"], 2);
        assert_eq!(v["errors_by_kind"]["http_503:SlowDown"], 1);
        assert_eq!(
            v["error_details"],
            serde_json::json!({"http_503:ServiceUnavailable": "6 needed, 0 eligible"})
        );
        assert_eq!(v["ops_per_s"], 75.0);
        assert_eq!(v["mib_per_s"], 75.0);
        assert_eq!(v["bytes"], 150u64 << 20);
        assert_eq!(v["client_cpu_s"], 0.5);
        assert_eq!(v["client_cpu_pct"], 25.0);
        assert!(v["server_cpu_s"].is_null());
        assert_eq!(v["by_op"]["get"]["ops"], 100);
        // Three significant figures: values are within 0.1% of what was recorded.
        let near = |v: &serde_json::Value, want: f64| {
            let got = v.as_f64().unwrap();
            assert!((got - want).abs() <= want * 0.001, "{got} is not {want}");
        };
        near(&v["by_op"]["put"]["latency_ms"]["p50"], 20.0);
        near(&v["by_op"]["get"]["latency_ms"]["max"], 10.0);
        near(&v["by_op"]["get"]["latency_ms"]["p50"], 5.0);
        near(&v["latency_ms"]["max"], 20.0);
        near(&v["latency_ms"]["p99"], 20.0);
        near(&v["latency_ms"]["p50"], 8.0);
        for f in ["p50", "p90", "p999", "mean"] {
            assert!(v["latency_ms"][f].as_f64().unwrap() > 0.0, "{f}");
        }
        assert_eq!(v["cleanup"]["deleted"], 0);
        let text = r.to_text();
        assert!(text.contains("150 ops in 2.00 s") && text.contains("http_503:SlowDown x1"));
        assert!(
            text.contains("\n           http_503:ServiceUnavailable: 6 needed, 0 eligible\n"),
            "{text}"
        );
        assert!(text.contains("25% of a core"));
    }
}
