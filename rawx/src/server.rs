//! Service start-up and shutdown: binds one `SO_REUSEPORT` listener per worker, runs a
//! compio runtime per worker thread (thread-per-core, nothing shared on the hot path but
//! atomic counters), and joins them when the shutdown token fires.

use crate::config::{Driver, RawxConfig};
use crate::conn::Timeouts;
use crate::error::{Error, Result};
use crate::handler::{serve_connection, Shared};
use crate::local::LocalReads;
use crate::metrics::RawxMetrics;
use crate::scan::scan_volume;
use crate::scrub::Scrubber;
use crate::stats::Stats;
use crate::store::Volume;
use compio::driver::{DriverType, ProactorBuilder};
use compio::runtime::RuntimeBuilder;
use futures::future::{select, Either};
use socket2::{Domain, Protocol, Socket, Type};
use std::cell::Cell;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Most simultaneous connections per worker; more are closed at once.
const MAX_CONNECTIONS_PER_WORKER: usize = 4096;
/// Listen backlog of each listener.
const LISTEN_BACKLOG: i32 = 1024;
/// How long a stopping worker waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long `start` waits for the workers to build their runtimes.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running rawx service.
#[derive(Debug)]
pub struct Started {
    /// Address the service listens on.
    pub addr: SocketAddr,
    /// Driver the workers use: "io_uring" or "polling".
    pub driver: &'static str,
    workers: Vec<JoinHandle<()>>,
    heartbeat: Option<JoinHandle<()>>,
    scrub: Option<JoinHandle<()>>,
    local: Option<LocalReads>,
    /// Removed when the service is joined (or dropped).
    write_socket: Option<crate::local_write::WriteSocket>,
    bridge: JoinHandle<()>,
}

impl Started {
    /// Blocks until every thread of the service has exited (call after cancelling the
    /// shutdown token).
    pub fn join(self) -> Result<()> {
        let mut result = Ok(());
        if let Some(local) = self.local {
            if !local.join() {
                result = Err(Error::WorkerPanicked);
            }
        }
        let threads = self
            .workers
            .into_iter()
            .chain(self.heartbeat)
            .chain(self.scrub)
            .chain([self.bridge]);
        for handle in threads {
            if handle.join().is_err() {
                result = Err(Error::WorkerPanicked);
            }
        }
        // Its file goes with it.
        drop(self.write_socket);
        result
    }
}

fn driver_name(t: DriverType) -> &'static str {
    if t.is_iouring() {
        "io_uring"
    } else {
        "polling"
    }
}

fn bind_reuseport(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| Error::io("create listen socket", e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| Error::io("set SO_REUSEADDR", e))?;
    socket
        .set_reuse_port(true)
        .map_err(|e| Error::io("set SO_REUSEPORT", e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("set non-blocking", e))?;
    socket
        .bind(&addr.into())
        .map_err(|e| Error::io("bind rawx listener", e))?;
    socket
        .listen(LISTEN_BACKLOG)
        .map_err(|e| Error::io("listen", e))?;
    Ok(socket.into())
}

/// Whether the volume's file system takes `O_DIRECT` writes; when it does not, the
/// rawx writes through the page cache and says so.
fn direct_writes_work(config: &RawxConfig) -> bool {
    match crate::direct::probe(&config.volume) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(id = %config.id, volume = %config.volume.display(), error = %e,
                "the volume's file system refuses O_DIRECT: chunk files are written through the page cache");
            false
        }
    }
}

/// Binds, spawns the worker threads and the heartbeat, and returns at once; the service
/// stops accepting and its threads exit when `shutdown` is cancelled.
///
/// Before serving, the volume folder is created if needed, stale `.pending` files are
/// removed and the chunks are counted (a synchronous scan of the volume).
pub fn start(config: RawxConfig, shutdown: CancellationToken) -> Result<Started> {
    config.validate()?;
    let report = scan_volume(&config.volume)?;
    if config.direct_io {
        crate::direct::probe(&config.volume).map_err(|e| {
            Error::Config(format!(
                "direct-io: the file system of {} refuses O_DIRECT ({e}); turn direct-io off \
                 for this volume (tmpfs, for one, does not support it)",
                config.volume.display()
            ))
        })?;
    }
    let direct_writes = config.direct_io || (config.direct_writes && direct_writes_work(&config));
    let stats = Arc::new(Stats::new(report.chunks, report.bytes));
    let metrics = Arc::new(RawxMetrics::new()?);
    let scrub = Arc::new(Scrubber::new(
        &config.volume,
        config.scrub_rate_bytes_per_s,
        metrics.scrub().clone(),
    ));
    let workers = config.effective_workers();
    let first = bind_reuseport(config.listen)?;
    let addr = first
        .local_addr()
        .map_err(|e| Error::io("read bound address", e))?;
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(bind_reuseport(addr)?);
    }
    let advertised = config.advertise.clone().unwrap_or_else(|| addr.to_string());
    let local_dir = config.local_read_dir.as_ref().filter(|_| !config.direct_io);
    let write_socket = match local_dir {
        Some(dir) => Some(crate::local_write::WriteSocket::bind(dir, &advertised)?),
        None => None,
    };
    // One listener on the write socket per worker.
    let mut write_listeners = match &write_socket {
        Some(w) => (0..workers)
            .map(|_| w.listener().map(Some))
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    }
    .into_iter();
    // Our own token: a failed start stops the workers it already spawned without
    // touching the caller's token. A bridge thread forwards the caller's cancel, so the
    // compio tasks are never woken from the caller's thread (compio aborts the process
    // when a task is woken from a thread that is unwinding a panic).
    let stop = CancellationToken::new();
    let bridge = spawn_bridge(shutdown, stop.clone())?;
    let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<DriverType, String>>();
    let volume = Volume::new(config.volume.clone(), config.segment_bytes, stats.clone())
        .with_capacity(config.capacity_bytes)
        .with_direct_io(config.direct_io)
        .with_direct_writes(direct_writes);
    let mut handles = Vec::with_capacity(workers);
    for (index, listener) in listeners.into_iter().enumerate() {
        let ready = ready_tx.clone();
        let volume = volume.clone();
        let worker_stop = stop.clone();
        let params = WorkerParams {
            index,
            listener,
            driver: config.driver,
            volume,
            id: config.id.clone(),
            max_chunk_bytes: config.max_chunk_bytes,
            stop: worker_stop,
            metrics: metrics.clone(),
            scrub: scrub.clone(),
            local_writes: write_listeners.next().flatten(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("rawx-w{index}"))
            .spawn(move || worker_main(params, ready))
            .map_err(|e| Error::io("spawn rawx worker", e));
        match handle {
            Ok(h) => handles.push(h),
            Err(e) => {
                stop.cancel();
                join_all(handles);
                let _ = bridge.join();
                return Err(e);
            }
        }
    }
    drop(ready_tx);
    // Each worker reports its driver; all must agree before anyone serves.
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut driver_type = None;
    let mut failure = None;
    for _ in 0..handles.len() {
        let wait = deadline.saturating_duration_since(Instant::now());
        match ready_rx.recv_timeout(wait) {
            Ok(Ok(t)) => {
                if driver_type.is_some_and(|d| d != t) {
                    failure = Some("workers ended up on different drivers".to_string());
                }
                driver_type = Some(t);
            }
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("worker did not start in time".to_string()),
        }
        if failure.is_some() {
            break;
        }
    }
    let driver = match (failure, driver_type) {
        (None, Some(t)) => driver_name(t),
        (failure, _) => {
            stop.cancel();
            join_all(handles);
            let _ = bridge.join();
            return Err(Error::Runtime(
                failure.unwrap_or_else(|| "no worker started".to_string()),
            ));
        }
    };
    metrics.set_info(&config.id, driver);
    tracing::info!(id = %config.id, %addr, driver, workers, direct_io = config.direct_io, direct_writes, chunks = report.chunks, volume = %config.volume.display(), "rawx started");
    let scrub_thread = match crate::scrub::spawn(&config, scrub, volume.clone(), stop.clone()) {
        Ok(h) => h,
        Err(e) => {
            stop.cancel();
            join_all(handles);
            let _ = bridge.join();
            return Err(e);
        }
    };
    let local = match local_dir {
        None => None,
        Some(dir) => {
            match crate::local::start(
                dir,
                &advertised,
                volume.clone(),
                metrics.clone(),
                stop.clone(),
            ) {
                Ok(l) => {
                    tracing::info!(id = %config.id, socket = %l.path().display(), "local reads offered");
                    if let Some(w) = &write_socket {
                        tracing::info!(id = %config.id, socket = %w.path().display(), "local writes offered");
                    }
                    Some(l)
                }
                Err(e) => {
                    stop.cancel();
                    join_all(handles);
                    join_all(scrub_thread.into_iter().collect());
                    let _ = bridge.join();
                    return Err(e);
                }
            }
        }
    };
    let heartbeat = if config.conscience.is_empty() {
        None
    } else {
        let reporter = oxio_proto::reporter::ReporterConfig {
            conscience: config.conscience.clone(),
            service_type: "rawx".to_string(),
            id: config.id.clone(),
            addr: advertised,
            location: config.location.clone(),
            volume: Some(config.volume.clone()),
            interval: config.heartbeat_interval,
        };
        match crate::heartbeat::spawn(reporter, stats, config.capacity_bytes, stop.clone()) {
            Ok(h) => Some(h),
            Err(e) => {
                stop.cancel();
                join_all(handles);
                join_all(scrub_thread.into_iter().collect());
                if let Some(l) = local {
                    l.join();
                }
                let _ = bridge.join();
                return Err(e);
            }
        }
    };
    Ok(Started {
        addr,
        driver,
        workers: handles,
        heartbeat,
        scrub: scrub_thread,
        local,
        write_socket,
        bridge,
    })
}

/// Forwards `outer` (the caller's token) to `inner` (the workers' token) from a
/// dedicated thread; ends when either fires.
fn spawn_bridge(outer: CancellationToken, inner: CancellationToken) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rawx-shutdown".into())
        .spawn(move || {
            futures::executor::block_on(async {
                let a = pin!(outer.cancelled());
                let b = pin!(inner.cancelled());
                let _ = select(a, b).await;
            });
            inner.cancel();
        })
        .map_err(|e| Error::io("spawn shutdown thread", e))
}

fn join_all(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.join();
    }
}

struct WorkerParams {
    index: usize,
    listener: std::net::TcpListener,
    driver: Driver,
    volume: Volume,
    id: String,
    max_chunk_bytes: u64,
    stop: CancellationToken,
    metrics: Arc<RawxMetrics>,
    scrub: Arc<Scrubber>,
    /// The local-write socket, when local writes are offered.
    local_writes: Option<std::os::unix::net::UnixListener>,
}

/// Body of a worker thread: build the runtime, report the driver, serve until `stop`.
fn worker_main(p: WorkerParams, ready: mpsc::Sender<std::result::Result<DriverType, String>>) {
    let mut proactor = ProactorBuilder::new();
    match p.driver {
        Driver::Auto => {}
        Driver::IoUring => {
            proactor.driver_type(DriverType::IoUring);
        }
        Driver::Polling => {
            proactor.driver_type(DriverType::Poll);
        }
    }
    let runtime = match RuntimeBuilder::new().with_proactor(proactor).build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!(
                "worker {}: cannot build {:?} runtime: {e}",
                p.index, p.driver
            )));
            return;
        }
    };
    let driver_type = runtime.driver_type();
    let shared = Arc::new(Shared {
        volume: p.volume,
        id: p.id,
        driver: driver_name(driver_type),
        max_chunk_bytes: p.max_chunk_bytes,
        timeouts: Timeouts::default(),
        shutdown: p.stop.clone(),
        metrics: p.metrics,
        scrub: p.scrub,
    });
    let index = p.index;
    let listener = p.listener;
    let stop = p.stop;
    let local_writes = p.local_writes;
    runtime.block_on(async move {
        let listener = match compio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!(
                    "worker {index}: cannot register listener: {e}"
                )));
                return;
            }
        };
        let _ = ready.send(Ok(driver_type));
        drop(ready);
        if let Some(local) = local_writes {
            compio::runtime::spawn(crate::local_write::accept_loop(
                local,
                shared.clone(),
                stop.clone(),
            ))
            .detach();
        }
        accept_loop(index, listener, shared, stop).await;
    });
    tracing::debug!(worker = index, "rawx worker stopped");
}

/// `fut`'s output, or `None` when `stop` fires first.
pub(crate) async fn until_stopped<F: std::future::Future>(
    fut: F,
    stop: &CancellationToken,
) -> Option<F::Output> {
    let fut = pin!(fut);
    let cancelled = pin!(stop.cancelled());
    match select(fut, cancelled).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}

async fn accept_loop(
    index: usize,
    listener: compio::net::TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let active = Rc::new(Cell::new(0usize));
    // Bounded: ends when `stop` fires.
    while let Some(accepted) = until_stopped(listener.accept(), &stop).await {
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(worker = index, error = %e, "accept failed");
                compio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if active.get() >= MAX_CONNECTIONS_PER_WORKER {
            tracing::warn!(worker = index, %peer, "too many connections, closing new one");
            drop(stream);
            continue;
        }
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        active.set(active.get() + 1);
        let active = active.clone();
        let shared = shared.clone();
        compio::runtime::spawn(async move {
            serve_connection(stream, shared).await;
            active.set(active.get().saturating_sub(1));
        })
        .detach();
    }
    drop(listener);
    // Give in-flight requests a bounded time to finish; idle connections close at once.
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while active.get() > 0 && Instant::now() < deadline {
        compio::time::sleep(Duration::from_millis(10)).await;
    }
    if active.get() > 0 {
        tracing::warn!(
            worker = index,
            connections = active.get(),
            "closing busy connections at shutdown"
        );
    }
}
