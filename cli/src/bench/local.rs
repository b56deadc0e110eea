//! `--local`: the storage microbenchmark. Starts one rawx in this process on
//! 127.0.0.1:0 over the given volume folder and drives its chunk protocol
//! (`PUT`/`GET`/`DELETE /<64-hex chunk id>`) directly, without S3 or the directory.

use super::args::{Op, Plan, Stop};
use super::driver::{drive, OpKind, Outcome, Phase, Workload};
use super::error::{Error, Result};
use super::http::{drain, read_checked, status_failure, transport_failure};
use super::payload::Payload;
use super::report::{Cleanup, CpuUse, Report, RunInfo};
use super::{cpu, prepare_failed};
use http::StatusCode;
use oxio_rawx::RawxConfig;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

/// Prefix of the rawx worker thread names (their CPU is the server's).
const RAWX_THREAD_PREFIX: &str = "rawx-";
/// One GET in this many compares the bytes, not only the size.
const VERIFY_EVERY: u64 = 8;

/// The in-process rawx and the run's chunk ids.
struct LocalStore {
    http: super::http::HttpClient,
    base: String,
    run: u64,
    payload: Payload,
}

impl LocalStore {
    /// Chunk id of chunk `index`: 64 hex digits, unique to the run.
    fn url(&self, index: u64) -> String {
        format!("{}/{:016X}{index:048X}", self.base, self.run)
    }

    async fn put(&self, index: u64) -> Outcome {
        let body = self.payload.body(index);
        let len = body.len() as u64;
        match self.http.put(self.url(index)).body(body).send().await {
            Ok(resp) if resp.status() == StatusCode::CREATED => {
                drain(resp).await;
                Outcome::ok(OpKind::Put, len)
            }
            Ok(resp) => Outcome::failed(OpKind::Put, status_failure(resp).await),
            Err(e) => Outcome::failed(OpKind::Put, transport_failure(&e)),
        }
    }

    async fn get(&self, index: u64) -> Outcome {
        match self.http.get(self.url(index)).send().await {
            Ok(resp) if resp.status() == StatusCode::OK => {
                let expected = index
                    .is_multiple_of(VERIFY_EVERY)
                    .then(|| self.payload.expected(index));
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
        match self.http.delete(self.url(index)).send().await {
            Ok(resp) if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND => {
                drain(resp).await;
                Outcome::ok(OpKind::Delete, 0)
            }
            Ok(resp) => Outcome::failed(OpKind::Delete, status_failure(resp).await),
            Err(e) => Outcome::failed(OpKind::Delete, transport_failure(&e)),
        }
    }
}

/// What a local phase does with each operation number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Put,
    Get { objects: u64 },
    Delete,
}

struct LocalLoad {
    store: Arc<LocalStore>,
    mode: Mode,
}

impl Workload for LocalLoad {
    async fn op(&self, seq: u64) -> Outcome {
        match self.mode {
            Mode::Put => self.store.put(seq).await,
            Mode::Get { objects } => self.store.get(seq % objects).await,
            Mode::Delete => self.store.delete(seq).await,
        }
    }

    fn kind_of(&self, _seq: u64) -> OpKind {
        match self.mode {
            Mode::Put => OpKind::Put,
            Mode::Get { .. } => OpKind::Get,
            Mode::Delete => OpKind::Delete,
        }
    }
}

/// Starts a rawx on `volume`, runs the plan against it, stops it.
pub async fn run(plan: &Plan, volume: &Path, direct_io: bool) -> Result<Report> {
    let shutdown = CancellationToken::new();
    let mut config = RawxConfig::new(
        "bench-rawx",
        SocketAddr::from(([127, 0, 0, 1], 0)),
        volume.to_path_buf(),
    );
    config.direct_io = direct_io;
    let token = shutdown.clone();
    let started = tokio::task::spawn_blocking(move || oxio_rawx::start(config, token))
        .await
        .map_err(|e| Error::Worker(e.to_string()))??;
    let addr = started.addr;
    let driver = started.driver;
    info!(%addr, driver, direct_io, volume = %volume.display(), "local rawx started");
    let result = measure(plan, addr, driver, direct_io)
        .instrument(info_span!("bench_local", op = plan.op.as_str(), %addr))
        .await;
    shutdown.cancel();
    let joined = tokio::task::spawn_blocking(move || started.join())
        .await
        .map_err(|e| Error::Worker(e.to_string()))?;
    let report = result?;
    joined?;
    Ok(report)
}

async fn measure(plan: &Plan, addr: SocketAddr, driver: &str, direct_io: bool) -> Result<Report> {
    let size = usize::try_from(plan.size_bytes)
        .map_err(|_| Error::Usage("--size does not fit in memory".into()))?;
    let run_id = rand::random::<u64>();
    let store = Arc::new(LocalStore {
        http: super::http::client(plan.concurrency, plan.timeout),
        base: format!("http://{addr}"),
        run: run_id,
        payload: Payload::new(size, run_id),
    });
    let phase = |name, stop| Phase {
        name,
        stop,
        concurrency: plan.concurrency,
        timeout: plan.timeout,
        progress: plan.progress,
    };
    let load = |mode| {
        Arc::new(LocalLoad {
            store: store.clone(),
            mode,
        })
    };
    let mode = match plan.op {
        Op::Get => Mode::Get {
            objects: plan.objects,
        },
        _ => Mode::Put,
    };
    if let Mode::Get { objects } = mode {
        let prepared = drive(load(Mode::Put), &phase("prepare", Stop::Count(objects))).await?;
        if prepared.tally.total_errors() > 0 {
            if !plan.keep {
                let _ = drive(load(Mode::Delete), &phase("cleanup", Stop::Count(objects))).await;
            }
            return Err(prepare_failed(&prepared));
        }
    }
    let total_before = cpu::process_cpu();
    let server_before = cpu::threads_cpu(RAWX_THREAD_PREFIX);
    let measured = drive(load(mode), &phase(plan.op.as_str(), plan.stop)).await?;
    let server = cpu::threads_cpu(RAWX_THREAD_PREFIX).saturating_sub(server_before);
    let total = cpu::process_cpu().saturating_sub(total_before);
    let info = RunInfo {
        op: plan.op.as_str(),
        target: format!(
            "local rawx {addr} ({driver}{})",
            if direct_io { ", O_DIRECT" } else { "" }
        ),
        bucket: None,
        size_bytes: plan.size_bytes,
        objects: plan.objects,
        concurrency: plan.concurrency,
    };
    let cpu_use = CpuUse {
        client: total.saturating_sub(server),
        server: Some(server),
    };
    let mut report = Report::new(info, &measured, cpu_use)?;
    if plan.keep {
        report.cleanup.kept = true;
        return Ok(report);
    }
    let written = match mode {
        Mode::Get { objects } => objects,
        _ => measured.issued,
    };
    if written > 0 {
        let m = drive(load(Mode::Delete), &phase("cleanup", Stop::Count(written))).await?;
        if m.tally.total_errors() > 0 {
            warn!(errors = %m.tally.top_errors(3), "some chunks were not deleted");
        }
        report.cleanup = Cleanup {
            kept: false,
            deleted: m.tally.total_ops(),
            errors: m.tally.total_errors(),
            bucket_deleted: false,
        };
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::args::Target;
    use std::time::Duration;

    fn plan(op: Op, volume: &Path) -> Plan {
        Plan {
            target: Target::Local {
                volume: volume.to_path_buf(),
                direct_io: false,
            },
            op,
            size_bytes: 100_000,
            objects: if op == Op::Get { 5 } else { 0 },
            concurrency: 4,
            stop: Stop::Count(20),
            get_percent: 70,
            timeout: Duration::from_secs(30),
            keep: false,
            json: true,
            progress: false,
        }
    }

    fn chunk_files(dir: &Path) -> usize {
        let mut n = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    n += 1;
                }
            }
        }
        n
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_put_and_get_round_trip_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(&plan(Op::Put, dir.path()), dir.path(), false)
            .await
            .unwrap();
        assert_eq!((r.ops, r.errors), (20, 0), "{:?}", r.errors_by_kind);
        assert_eq!(r.bytes, 20 * 100_000);
        assert_eq!(r.cleanup.deleted, 20);
        assert!(r.latency_ms.p50 > 0.0 && r.latency_ms.max >= r.latency_ms.p99);
        assert!(r.server_cpu_s.is_some());
        let r = run(&plan(Op::Get, dir.path()), dir.path(), false)
            .await
            .unwrap();
        assert_eq!((r.ops, r.errors), (20, 0), "{:?}", r.errors_by_kind);
        assert_eq!(r.by_op.get("get").map(|f| f.bytes), Some(20 * 100_000));
        assert_eq!(r.cleanup.deleted, 5);
        assert_eq!(chunk_files(dir.path()), 0, "chunks left behind");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_put_and_get_with_direct_io() {
        let dir = tempfile::tempdir().unwrap();
        if let Err(e) = oxio_rawx::direct::probe(dir.path()) {
            eprintln!("NOTE: skipping, this file system refuses O_DIRECT: {e}");
            return;
        }
        let r = run(&plan(Op::Put, dir.path()), dir.path(), true)
            .await
            .unwrap();
        assert_eq!((r.ops, r.errors), (20, 0), "{:?}", r.errors_by_kind);
        assert!(r.target.contains("O_DIRECT"), "{}", r.target);
        let r = run(&plan(Op::Get, dir.path()), dir.path(), true)
            .await
            .unwrap();
        assert_eq!((r.ops, r.errors), (20, 0), "{:?}", r.errors_by_kind);
        assert_eq!(chunk_files(dir.path()), 0, "chunks left behind");
    }
}
