//! The load loop: `concurrency` workers claim operation numbers from one counter until
//! the stop condition, time each request (with a timeout) into per-worker HDR
//! histograms, and merge them at the end. A live progress line goes to stderr.

use super::args::Stop;
use super::error::{Error, Result};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Highest latency the histograms track (longer ones are clamped to it).
pub const LATENCY_MAX_US: u64 = 3_600_000_000;
/// Significant figures kept by the histograms.
const SIGNIFICANT_FIGURES: u8 = 3;
/// Most distinct error kinds kept; the rest are counted as "other".
pub const MAX_ERROR_KINDS: usize = 64;
/// Longest example message kept for an error kind, in characters.
pub const MAX_DETAIL_CHARS: usize = 400;
/// Most tallies shared by the workers (each histogram set is a few hundred KiB, so
/// 1024 workers do not get one each; a shard's lock is held for a few nanoseconds).
const MAX_TALLY_SHARDS: u64 = 16;
/// Time between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The kind of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// Object or chunk write.
    Put,
    /// Object or chunk read.
    Get,
    /// One listing page.
    List,
    /// Object or chunk removal.
    Delete,
}

impl OpKind {
    /// Every kind, in index order.
    pub const ALL: [OpKind; 4] = [OpKind::Put, OpKind::Get, OpKind::List, OpKind::Delete];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Get => "get",
            OpKind::List => "list",
            OpKind::Delete => "delete",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What one request did: payload bytes moved, or its failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The request's kind.
    pub kind: OpKind,
    /// Payload bytes on success, what failed on failure.
    pub result: std::result::Result<u64, Failure>,
}

/// A failed request: its kind and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `http_503`, `http_404:NoSuchKey`, `timeout`, `connect`, `verify_bytes`, ...
    pub kind: String,
    /// What it said (the S3 error's `<Message>`, the transport error), when known:
    /// the first one of each kind is reported next to the count.
    pub detail: Option<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.detail {
            Some(d) => write!(f, "{} ({d})", self.kind),
            None => f.write_str(&self.kind),
        }
    }
}

impl Outcome {
    /// A success that moved `bytes` payload bytes.
    pub fn ok(kind: OpKind, bytes: u64) -> Self {
        Outcome {
            kind,
            result: Ok(bytes),
        }
    }

    /// A failure of kind `error` that said nothing more.
    pub fn err(kind: OpKind, error: impl Into<String>) -> Self {
        Self::failed(
            kind,
            Failure {
                kind: error.into(),
                detail: None,
            },
        )
    }

    /// A failure with what it said.
    pub fn failed(kind: OpKind, failure: Failure) -> Self {
        Outcome {
            kind,
            result: Err(failure),
        }
    }
}

/// One benchmark workload: operation `seq` of a phase.
pub trait Workload: Send + Sync + 'static {
    /// Runs operation number `seq` (0, 1, 2, ... across all workers).
    fn op(&self, seq: u64) -> impl Future<Output = Outcome> + Send;
    /// The kind operation `seq` has (to account a timed-out request).
    fn kind_of(&self, seq: u64) -> OpKind;
}

/// A latency histogram in microseconds.
pub fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, SIGNIFICANT_FIGURES)
        .map_err(|e| Error::Histogram(e.to_string()))
}

/// Counts and latencies of successful requests per kind, and failures by error kind.
#[derive(Debug, Clone)]
pub struct Tally {
    latency_us: Vec<Histogram<u64>>,
    ops: [u64; 4],
    bytes: [u64; 4],
    errors: BTreeMap<String, u64>,
    /// The first detail seen of each kind in `errors`.
    details: BTreeMap<String, String>,
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Result<Self> {
        Ok(Tally {
            latency_us: OpKind::ALL
                .iter()
                .map(|_| new_histogram())
                .collect::<Result<_>>()?,
            ops: [0; 4],
            bytes: [0; 4],
            errors: BTreeMap::new(),
            details: BTreeMap::new(),
        })
    }

    /// Accounts one finished request that took `latency`.
    pub fn record(&mut self, outcome: &Outcome, latency: Duration) {
        match &outcome.result {
            Ok(bytes) => {
                let i = outcome.kind.index();
                let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency_us[i].saturating_record(us.clamp(1, LATENCY_MAX_US));
                self.ops[i] += 1;
                self.bytes[i] += bytes;
            }
            Err(failure) => {
                self.add_errors(&failure.kind, 1);
                if let Some(d) = &failure.detail {
                    self.add_detail(&failure.kind, d);
                }
            }
        }
    }

    /// Keeps `detail` as the example of `kind` when it is the first one of a kind
    /// counted on its own (not under "other").
    fn add_detail(&mut self, kind: &str, detail: &str) {
        if self.errors.contains_key(kind) && !self.details.contains_key(kind) {
            let kept: String = detail.chars().take(MAX_DETAIL_CHARS).collect();
            self.details.insert(kind.to_string(), kept);
        }
    }

    fn add_errors(&mut self, kind: &str, n: u64) {
        if let Some(slot) = self.errors.get_mut(kind) {
            *slot += n;
        } else if self.errors.len() < MAX_ERROR_KINDS {
            self.errors.insert(kind.to_string(), n);
        } else {
            *self.errors.entry("other".to_string()).or_default() += n;
        }
    }

    /// Adds `other` into this tally.
    pub fn merge(&mut self, other: &Tally) -> Result<()> {
        for i in 0..OpKind::ALL.len() {
            self.latency_us[i]
                .add(&other.latency_us[i])
                .map_err(|e| Error::Histogram(e.to_string()))?;
            self.ops[i] += other.ops[i];
            self.bytes[i] += other.bytes[i];
        }
        for (kind, n) in &other.errors {
            self.add_errors(kind, *n);
        }
        for (kind, d) in &other.details {
            self.add_detail(kind, d);
        }
        Ok(())
    }

    /// Successful requests of `kind`.
    pub fn ops(&self, kind: OpKind) -> u64 {
        self.ops[kind.index()]
    }

    /// Payload bytes of successful requests of `kind`.
    pub fn bytes(&self, kind: OpKind) -> u64 {
        self.bytes[kind.index()]
    }

    /// Latencies (µs) of successful requests of `kind`.
    pub fn latency_us(&self, kind: OpKind) -> &Histogram<u64> {
        &self.latency_us[kind.index()]
    }

    /// Successful requests of every kind.
    pub fn total_ops(&self) -> u64 {
        self.ops.iter().sum()
    }

    /// Payload bytes of every kind.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }

    /// Latencies of every kind in one histogram.
    pub fn total_latency_us(&self) -> Result<Histogram<u64>> {
        let mut all = new_histogram()?;
        for h in &self.latency_us {
            all.add(h).map_err(|e| Error::Histogram(e.to_string()))?;
        }
        Ok(all)
    }

    /// Failed requests by error kind.
    pub fn errors(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }

    /// The first thing each error kind said, for the kinds that said something.
    pub fn error_details(&self) -> &BTreeMap<String, String> {
        &self.details
    }

    /// Failed requests.
    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The most frequent error kinds, for a message.
    pub fn top_errors(&self, n: usize) -> String {
        let mut kinds: Vec<(&String, &u64)> = self.errors.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        kinds
            .iter()
            .take(n)
            .map(|(k, v)| format!("{k} x{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How a phase runs.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Name shown on the progress line ("put", "prepare", "cleanup").
    pub name: &'static str,
    /// When it stops.
    pub stop: Stop,
    /// Requests in flight.
    pub concurrency: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Whether to draw the progress line.
    pub progress: bool,
}

/// What a phase measured.
#[derive(Debug)]
pub struct Measured {
    /// Counts and latencies.
    pub tally: Tally,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    /// Operations started (numbers `0..issued` were used).
    pub issued: u64,
}

#[derive(Default)]
struct Live {
    ops: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
}

/// Runs `work` as `phase` says and returns the merged figures.
pub async fn drive<W: Workload>(work: Arc<W>, phase: &Phase) -> Result<Measured> {
    let max_ops = phase.stop.max_ops();
    let next = Arc::new(AtomicU64::new(0));
    let live = Arc::new(Live::default());
    let start = Instant::now();
    let deadline = match phase.stop {
        Stop::Duration(d) => Some(start + d),
        Stop::Count(_) => None,
    };
    let stop_progress = CancellationToken::new();
    let progress = phase.progress.then(|| {
        tokio::spawn(progress_line(
            phase.name,
            live.clone(),
            start,
            stop_progress.clone(),
        ))
    });
    let workers = (phase.concurrency as u64).min(max_ops).max(1);
    let shards: Arc<Vec<Mutex<Tally>>> = Arc::new(
        (0..workers.min(MAX_TALLY_SHARDS))
            .map(|_| Tally::new().map(Mutex::new))
            .collect::<Result<_>>()?,
    );
    let mut set = tokio::task::JoinSet::new();
    for w in 0..workers {
        let work = work.clone();
        let next = next.clone();
        let live = live.clone();
        let shards = shards.clone();
        let timeout = phase.timeout;
        set.spawn(async move {
            let shard = &shards[(w % shards.len() as u64) as usize];
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= max_ops {
                    break;
                }
                let t0 = Instant::now();
                let outcome = match tokio::time::timeout(timeout, work.op(seq)).await {
                    Ok(o) => o,
                    Err(_) => Outcome::err(work.kind_of(seq), "timeout"),
                };
                let latency = t0.elapsed();
                shard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(&outcome, latency);
                match outcome.result {
                    Ok(b) => {
                        live.ops.fetch_add(1, Ordering::Relaxed);
                        live.bytes.fetch_add(b, Ordering::Relaxed);
                    }
                    Err(_) => {
                        live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    let mut failure = None;
    while let Some(joined) = set.join_next().await {
        if let Err(e) = joined {
            failure = Some(Error::Worker(e.to_string()));
        }
    }
    let mut total = Tally::new()?;
    for shard in shards.iter() {
        let t = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = total.merge(&t) {
            failure = Some(e);
        }
    }
    let elapsed = start.elapsed();
    stop_progress.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Measured {
        tally: total,
        elapsed,
        issued: next.load(Ordering::Relaxed).min(max_ops),
    })
}

async fn progress_line(
    name: &'static str,
    live: Arc<Live>,
    start: Instant,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    let mut last = (start, 0u64, 0u64);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let ops = live.ops.load(Ordering::Relaxed);
        let bytes = live.bytes.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        let dt = now.duration_since(last.0).as_secs_f64().max(1e-6);
        let line = format!(
            "\r\x1b[2K{name}: {:>6.1}s  {ops} ops  {:.0} ops/s  {:.1} MiB/s  {errors} errors",
            now.duration_since(start).as_secs_f64(),
            (ops - last.1) as f64 / dt,
            (bytes - last.2) as f64 / dt / (1024.0 * 1024.0),
        );
        last = (now, ops, bytes);
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }
    let _ = std::io::stderr().write_all(b"\r\x1b[2K");
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    impl Workload for Fake {
        async fn op(&self, seq: u64) -> Outcome {
            match seq % 10 {
                9 => Outcome::err(OpKind::Get, "http_500:InternalError"),
                8 => std::future::pending().await,
                _ => Outcome::ok(self.kind_of(seq), 100),
            }
        }

        fn kind_of(&self, seq: u64) -> OpKind {
            if seq.is_multiple_of(2) {
                OpKind::Put
            } else {
                OpKind::Get
            }
        }
    }

    #[tokio::test]
    async fn counts_successes_errors_and_timeouts() {
        let phase = Phase {
            name: "test",
            stop: Stop::Count(100),
            concurrency: 7,
            timeout: Duration::from_millis(20),
            progress: false,
        };
        let m = drive(Arc::new(Fake), &phase).await.unwrap();
        assert_eq!(m.issued, 100);
        assert_eq!(m.tally.total_ops(), 80);
        // seq % 10 == 8 is even: timed out puts; == 9: failed gets.
        assert_eq!(m.tally.errors().get("timeout"), Some(&10));
        assert_eq!(m.tally.errors().get("http_500:InternalError"), Some(&10));
        assert_eq!(m.tally.total_errors(), 20);
        assert_eq!(m.tally.ops(OpKind::Put), 40);
        assert_eq!(m.tally.ops(OpKind::Get), 40);
        assert_eq!(m.tally.total_bytes(), 8000);
        assert_eq!(m.tally.latency_us(OpKind::Put).len(), 40);
        assert_eq!(m.tally.total_latency_us().unwrap().len(), 80);
        assert!(m.tally.top_errors(1).ends_with("x10"));
    }

    #[tokio::test]
    async fn duration_phase_stops() {
        struct Quick;
        impl Workload for Quick {
            async fn op(&self, _seq: u64) -> Outcome {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Outcome::ok(OpKind::Put, 1)
            }
            fn kind_of(&self, _seq: u64) -> OpKind {
                OpKind::Put
            }
        }
        let phase = Phase {
            name: "test",
            stop: Stop::Duration(Duration::from_millis(200)),
            concurrency: 4,
            timeout: Duration::from_secs(5),
            progress: false,
        };
        let m = drive(Arc::new(Quick), &phase).await.unwrap();
        assert!(m.elapsed >= Duration::from_millis(200));
        assert!(m.tally.total_ops() > 0 && m.issued >= m.tally.total_ops());
    }

    #[test]
    fn error_kinds_are_bounded() {
        let mut a = Tally::new().unwrap();
        for i in 0..(MAX_ERROR_KINDS + 10) {
            a.record(&Outcome::err(OpKind::Get, format!("k{i}")), Duration::ZERO);
        }
        assert_eq!(a.errors().len(), MAX_ERROR_KINDS + 1);
        assert_eq!(a.errors().get("other"), Some(&10));
        let mut b = Tally::new().unwrap();
        b.record(&Outcome::err(OpKind::Get, "k0"), Duration::ZERO);
        b.record(&Outcome::err(OpKind::Get, "k0"), Duration::ZERO);
        b.record(&Outcome::ok(OpKind::Put, 5), Duration::from_millis(2));
        a.merge(&b).unwrap();
        assert_eq!(a.errors().get("k0"), Some(&3));
        assert_eq!(
            (a.total_errors(), a.total_ops()),
            (MAX_ERROR_KINDS as u64 + 12, 1)
        );
    }

    #[test]
    fn the_first_detail_of_each_kind_is_kept_and_merged() {
        let failed = |kind: &str, detail: &str| {
            Outcome::failed(
                OpKind::Put,
                Failure {
                    kind: kind.into(),
                    detail: Some(detail.into()),
                },
            )
        };
        let mut a = Tally::new().unwrap();
        a.record(&Outcome::err(OpKind::Put, "timeout"), Duration::ZERO);
        a.record(&failed("http_503", "first"), Duration::ZERO);
        a.record(&failed("http_503", "second"), Duration::ZERO);
        let mut b = Tally::new().unwrap();
        b.record(&failed("http_503", "from b"), Duration::ZERO);
        b.record(
            &failed("connect", &"x".repeat(2 * MAX_DETAIL_CHARS)),
            Duration::ZERO,
        );
        a.merge(&b).unwrap();
        assert_eq!(a.errors().get("http_503"), Some(&3));
        let details = a.error_details();
        assert_eq!(details.len(), 2, "{details:?}");
        assert_eq!(details["http_503"], "first");
        assert_eq!(details["connect"].len(), MAX_DETAIL_CHARS);
        // A kind counted under "other" keeps no detail.
        let mut full = Tally::new().unwrap();
        for i in 0..MAX_ERROR_KINDS {
            full.record(&Outcome::err(OpKind::Get, format!("k{i}")), Duration::ZERO);
        }
        full.record(&failed("late", "not kept"), Duration::ZERO);
        assert_eq!(full.errors().get("other"), Some(&1));
        assert!(full.error_details().is_empty());
    }
}
