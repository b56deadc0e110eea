//! Cross-service test support: a grid of real services (conscience, directory node,
//! rawx) started in-process on loopback with port 0, each rawx stoppable on its own
//! for fault injection, plus helpers to drive it through the sdk; and
//! [`DirectoryNodes`], several directory nodes on reserved ports for the replicated
//! directory tests.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One rawx of a [`TestGrid`].
pub struct TestRawx {
    /// Service id.
    pub id: String,
    /// Address the rawx serves on.
    pub addr: std::net::SocketAddr,
    /// Stops this rawx alone.
    pub shutdown: CancellationToken,
    started: Option<oxio_rawx::Started>,
}

/// A small grid of real services in this process.
pub struct TestGrid {
    /// Keeps the data folders alive.
    pub dir: tempfile::TempDir,
    /// Stops the conscience and directory.
    pub shutdown: CancellationToken,
    /// The rawx services.
    pub rawx: Vec<TestRawx>,
    /// A client of the grid.
    pub sdk: oxio_sdk::Client,
    /// Conscience replicas: address and the token stopping that one.
    consciences: Vec<(String, CancellationToken)>,
    /// Folder of the rawx's local-read sockets, when the grid reads locally.
    local_read_dir: Option<std::path::PathBuf>,
    /// The directory node's task: it closes its database when it ends, which the
    /// drop waits for before the folder goes.
    directory: Option<tokio::task::JoinHandle<oxio_directory::Result<()>>>,
}

/// A loopback address where every connection is refused, for as long as the returned
/// socket lives: it is bound there but never listens, so no other socket (a later
/// port-0 listener of the same test, say) can take the port meanwhile.
pub fn refused_addr() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("refused address: socket");
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .expect("refused address: bind");
    let addr = socket.local_addr().expect("refused address");
    (socket, addr)
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// What [`TestGrid::start_with`] starts.
#[derive(Debug, Clone, Default)]
pub struct GridSpec {
    /// Number of rawx services.
    pub rawx: usize,
    /// Number of conscience replicas (0 counts as 1); every service reports to all.
    pub consciences: usize,
    /// Capacity of each rawx volume in bytes (None: the file system's).
    pub rawx_capacity: Option<u64>,
    /// The sdk's fragment deadline (None: its default).
    pub fragment_deadline: Option<Duration>,
    /// Rawx offer local reads and writes in `<dir>/run` and the sdk reads locally.
    pub local_reads: bool,
    /// With `local_reads`, the sdk also writes new chunks locally.
    pub local_writes: bool,
}

impl TestGrid {
    /// Starts a conscience, a bootstrapped directory node and `rawx` rawx services.
    pub async fn start(rawx: usize) -> Result<Self> {
        Self::start_with(GridSpec {
            rawx,
            ..Default::default()
        })
        .await
    }

    /// Starts the grid `spec` describes.
    pub async fn start_with(spec: GridSpec) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let shutdown = CancellationToken::new();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse()?;
        let mut consciences = Vec::new();
        for _ in 0..spec.consciences.max(1) {
            let token = shutdown.child_token();
            let c = oxio_conscience::start(
                oxio_conscience::ConscienceConfig {
                    listen: any,
                    ..Default::default()
                },
                token.clone(),
            )
            .await?;
            consciences.push((c.addr.to_string(), token));
        }
        let conscience: Vec<String> = consciences.iter().map(|(a, _)| a.clone()).collect();
        let mut dcfg = oxio_directory::DirectoryConfig::new(1, dir.path().join("directory"));
        dcfg.listen = any;
        dcfg.bootstrap = Some(oxio_directory::BootstrapSpec {
            meta1_groups: 2,
            meta2_groups: 2,
        });
        let d = oxio_directory::start(dcfg, shutdown.child_token()).await?;
        let mut cfg = oxio_sdk::ClientConfig::new(conscience.clone(), vec![d.addr.to_string()]);
        // These tests exercise erasure coding at every chunked size: no size rule
        // (tests/s3/test_policy.py covers it through the gateway).
        cfg.small_policy = None;
        if let Some(d) = spec.fragment_deadline {
            cfg.fragment_deadline = d;
        }
        let local_read_dir = spec.local_reads.then(|| dir.path().join("run"));
        cfg.local_read_dir = local_read_dir.clone();
        cfg.local_writes = spec.local_writes;
        let sdk = oxio_sdk::Client::new(cfg)?;
        let mut grid = TestGrid {
            dir,
            shutdown,
            rawx: Vec::new(),
            sdk,
            consciences,
            local_read_dir,
            directory: Some(d.task),
        };
        grid.add_rawx(spec.rawx, spec.rawx_capacity)?;
        grid.wait_rawx_up(spec.rawx).await?;
        Ok(grid)
    }

    /// Six rawx offering local reads and writes, the sdk reading locally (and writing
    /// locally when `writes`), account `acct` with container `bkt`.
    pub async fn start_local(writes: bool) -> Result<Self> {
        let grid = Self::start_with(GridSpec {
            rawx: 6,
            local_reads: true,
            local_writes: writes,
            ..Default::default()
        })
        .await?;
        grid.sdk.create_account("acct").await?;
        grid.sdk.create_container("acct", "bkt").await?;
        Ok(grid)
    }

    /// The sum over the grid's rawx of the metric sample `sample` (name and labels as
    /// the text format writes them, e.g. `oxio_rawx_local_opens_total{result="open"}`);
    /// 0 where a rawx has none.
    pub async fn rawx_metric_sum(&self, sample: &str) -> u64 {
        let prefix = format!("{sample} ");
        let mut total = 0;
        for r in &self.rawx {
            let text = reqwest::get(format!("http://{}/metrics", r.addr))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            total += text
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str())?.parse::<u64>().ok())
                .unwrap_or(0);
        }
        total
    }

    /// Starts `n` more rawx (ids and volumes numbered after the existing ones), each
    /// limited to `capacity` bytes when given. Does not wait for them to register.
    pub fn add_rawx(&mut self, n: usize, capacity: Option<u64>) -> Result<()> {
        self.add_rawx_on("host1", n, capacity)
    }

    /// As [`TestGrid::add_rawx`], on host `host` of rack1 (location
    /// `local.rack1.<host>.vol<i>`).
    pub fn add_rawx_on(&mut self, host: &str, n: usize, capacity: Option<u64>) -> Result<()> {
        let any: std::net::SocketAddr = "127.0.0.1:0".parse()?;
        let first = self.rawx.len();
        for i in first..first + n {
            let mut cfg = oxio_rawx::RawxConfig::new(
                format!("rawx-{i}"),
                any,
                self.dir.path().join(format!("vol{i}")),
            );
            cfg.location = format!("local.rack1.{host}.vol{i}");
            cfg.workers = 1;
            cfg.conscience = self.conscience_addrs();
            cfg.heartbeat_interval = Duration::from_millis(200);
            cfg.capacity_bytes = capacity;
            cfg.local_read_dir = self.local_read_dir.clone();
            let token = CancellationToken::new();
            let started = oxio_rawx::start(cfg, token.clone())?;
            self.rawx.push(TestRawx {
                id: format!("rawx-{i}"),
                addr: started.addr,
                shutdown: token,
                started: Some(started),
            });
        }
        Ok(())
    }

    /// Addresses of the conscience replicas.
    pub fn conscience_addrs(&self) -> Vec<String> {
        self.consciences.iter().map(|(a, _)| a.clone()).collect()
    }

    /// Stops conscience replica `i` (the others keep running).
    pub fn stop_conscience(&self, i: usize) {
        self.consciences[i].1.cancel();
    }

    /// Waits until the conscience sees `n` rawx up with a usable score.
    pub async fn wait_rawx_up(&self, n: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = self
                .sdk
                .list_services("rawx")
                .await
                .map(|s| s.iter().filter(|s| s.up && s.score > 0).count())
                .unwrap_or(0);
            if up >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {up} of {n} rawx up after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Address of rawx `i`.
    pub fn rawx_addr(&self, i: usize) -> std::net::SocketAddr {
        self.rawx[i].addr
    }

    /// Volume folder of rawx `i`.
    pub fn rawx_volume(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("vol{i}"))
    }

    /// Stops rawx `i` and waits for its threads.
    pub async fn stop_rawx(&mut self, i: usize) -> Result<()> {
        let r = &mut self.rawx[i];
        r.shutdown.cancel();
        if let Some(s) = r.started.take() {
            tokio::task::spawn_blocking(move || s.join()).await??;
        }
        Ok(())
    }

    /// Starts one more rawx that the grid reaches only through a [`StallProxy`]
    /// (it advertises the proxy's address), so a test can make it hang.
    pub async fn add_stallable_rawx(&mut self) -> Result<StallProxy> {
        let proxy = StallProxy::bind().await?;
        let i = self.rawx.len();
        let mut cfg = oxio_rawx::RawxConfig::new(
            format!("rawx-{i}"),
            "127.0.0.1:0".parse()?,
            self.dir.path().join(format!("vol{i}")),
        );
        cfg.location = format!("local.rack1.host1.vol{i}");
        cfg.workers = 1;
        cfg.conscience = self.conscience_addrs();
        cfg.heartbeat_interval = Duration::from_millis(200);
        cfg.advertise = Some(proxy.addr.to_string());
        let token = CancellationToken::new();
        let started = oxio_rawx::start(cfg, token.clone())?;
        proxy.forward_to(started.addr);
        self.rawx.push(TestRawx {
            id: format!("rawx-{i}"),
            addr: started.addr,
            shutdown: token,
            started: Some(started),
        });
        Ok(proxy)
    }

    /// Starts rawx `i` again (after [`TestGrid::stop_rawx`]) with its id, volume,
    /// location and address.
    pub fn restart_rawx(&mut self, i: usize) -> Result<()> {
        let addr = self.rawx[i].addr;
        let mut cfg = oxio_rawx::RawxConfig::new(format!("rawx-{i}"), addr, self.rawx_volume(i));
        cfg.location = format!("local.rack1.host1.vol{i}");
        cfg.workers = 1;
        cfg.conscience = self.conscience_addrs();
        cfg.heartbeat_interval = Duration::from_millis(200);
        cfg.local_read_dir = self.local_read_dir.clone();
        let token = CancellationToken::new();
        let started = oxio_rawx::start(cfg, token.clone())?;
        self.rawx[i] = TestRawx {
            id: format!("rawx-{i}"),
            addr: started.addr,
            shutdown: token,
            started: Some(started),
        };
        Ok(())
    }

    /// Puts `data` under `key`.
    pub async fn put(
        &self,
        account: &str,
        container: &str,
        key: &str,
        data: &[u8],
    ) -> Result<oxio_sdk::ContentHeader> {
        self.put_with_policy(account, container, key, data, None)
            .await
    }

    /// Puts `data` under `key` with storage policy `policy` (the default when None).
    pub async fn put_with_policy(
        &self,
        account: &str,
        container: &str,
        key: &str,
        data: &[u8],
        policy: Option<oxio_common::StoragePolicy>,
    ) -> Result<oxio_sdk::ContentHeader> {
        let body = futures::stream::iter(
            data.chunks(64 * 1024)
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let opts = oxio_sdk::PutOptions {
            expected_len: Some(data.len() as u64),
            policy,
            ..Default::default()
        };
        Ok(self
            .sdk
            .put_object(account, container, key, body, opts)
            .await?)
    }

    /// Checks that `key` reads back as `data`, whole and in a few ranges (the first
    /// byte, around a quarter, a third and the middle, the last bytes).
    pub async fn check_reads(&self, account: &str, container: &str, key: &str, data: &[u8]) {
        let got = self.get(account, container, key, 0, None).await.unwrap();
        assert!(got == data, "{key}: full read differs");
        let len = data.len() as u64;
        for (a, b) in [
            (0, 1),
            (len / 4 - 3, len / 4 + 3),
            (len / 2 - 1000, len / 2 + 1000),
            (len / 3, len - 1),
            (len - 7, len),
        ] {
            let got = self.get(account, container, key, a, Some(b)).await.unwrap();
            assert!(
                got[..] == data[a as usize..b as usize],
                "{key}: range {a}..{b} differs"
            );
        }
    }

    /// Reads bytes `start..end` of `key`.
    pub async fn get(
        &self,
        account: &str,
        container: &str,
        key: &str,
        start: u64,
        end: Option<u64>,
    ) -> Result<Vec<u8>> {
        let header = self.sdk.head_object(account, container, key).await?;
        let end = end.unwrap_or(header.size);
        let mut rx = self.sdk.read_object(header, start, end);
        let mut out = Vec::new();
        while let Some(piece) = rx.recv().await {
            out.extend_from_slice(&piece.with_context(|| format!("reading {key}"))?);
        }
        Ok(out)
    }
}

impl Drop for TestGrid {
    /// Stops every service, then waits until the directory node has closed its
    /// database, so that removing the folder does not race RocksDB's last writes
    /// (which left half-removed folders in /tmp); a node still running after 30 s
    /// fails the test, as [`DirectoryNodes::shutdown`] does. The wait needs the
    /// multi-thread runtime every grid test runs on; elsewhere the drop does not wait.
    fn drop(&mut self) {
        for r in &self.rawx {
            r.shutdown.cancel();
        }
        self.shutdown.cancel();
        let Some(task) = self.directory.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            let stopped = tokio::task::block_in_place(|| {
                runtime.block_on(tokio::time::timeout(Duration::from_secs(30), task))
            });
            // A second panic while a failed test unwinds would abort the run.
            if stopped.is_err() && !std::thread::panicking() {
                panic!("the test grid's directory node still runs 30 s after its shutdown");
            }
        }
    }
}

/// A TCP proxy in front of a service that can be made to hang: while stalled it
/// accepts connections and keeps them open but moves no byte either way (a
/// stuck disk, a frozen process), as a deadline test needs.
pub struct StallProxy {
    /// Where clients connect.
    pub addr: std::net::SocketAddr,
    target: std::sync::Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl StallProxy {
    /// Binds on loopback; forwards nothing until [`StallProxy::forward_to`].
    pub async fn bind() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let target: std::sync::Arc<std::sync::Mutex<Option<std::net::SocketAddr>>> =
            std::sync::Arc::default();
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (t, st) = (target.clone(), stalled.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Some(to) = *t.lock().unwrap_or_else(|e| e.into_inner()) else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pump(cr, sw, st.clone()), pump(sr, cw, st));
                });
            }
        });
        Ok(StallProxy {
            addr,
            target,
            stalled,
            task,
        })
    }

    /// Sends what arrives to `to`.
    pub fn forward_to(&self, to: std::net::SocketAddr) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = Some(to);
    }

    /// Stops (`true`) or resumes (`false`) moving bytes.
    pub fn stall(&self, on: bool) {
        self.stalled.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, holding each piece while `stalled` is set.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while stalled.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Directory nodes on ports reserved up front (so each knows its peers, and meta0
/// lives on one of them), registering with one conscience; started on demand.
pub struct DirectoryNodes {
    tmp: tempfile::TempDir,
    /// Stops the conscience and every node.
    pub stop: CancellationToken,
    /// The conscience's address.
    pub conscience: String,
    /// Node `i`'s listener, bound from the start (so no other socket takes its
    /// port before the node starts) and handed to it by [`DirectoryNodes::start`].
    listeners: std::sync::Mutex<Vec<Option<std::net::TcpListener>>>,
    /// Every node's address, node `i` (from 1) at `peers[i - 1]`.
    pub peers: Vec<String>,
    /// The started nodes' tasks (each closes its database when it ends).
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<oxio_directory::Result<()>>>>,
}

impl DirectoryNodes {
    /// A conscience and `n` reserved ports; no node started yet.
    pub async fn new(n: usize) -> DirectoryNodes {
        let tmp = tempfile::tempdir().expect("directory test grid");
        let stop = CancellationToken::new();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("directory test grid");
        let conscience = oxio_conscience::start(
            oxio_conscience::ConscienceConfig {
                listen: any,
                ..Default::default()
            },
            stop.child_token(),
        )
        .await
        .expect("directory test grid");
        let listeners: Vec<std::net::TcpListener> = (0..n)
            .map(|_| std::net::TcpListener::bind(any).expect("directory test grid"))
            .collect();
        let peers = listeners
            .iter()
            .map(|l| l.local_addr().expect("directory test grid").to_string())
            .collect();
        DirectoryNodes {
            tmp,
            stop,
            conscience: conscience.addr.to_string(),
            listeners: std::sync::Mutex::new(listeners.into_iter().map(Some).collect()),
            peers,
            tasks: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Stops the conscience and every node, and waits (30 s at most each) until each
    /// node has closed its database, before the folder holding them is removed.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("directory test grid"));
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("a directory test node stops")
                .expect("directory test node task")
                .expect("a directory test node stops cleanly");
        }
    }

    /// Starts node `id` (1..=n); `auto_grow` as in `DirectoryConfig`.
    pub async fn start(&self, id: u64, auto_grow: Duration) {
        let mut cfg =
            oxio_directory::DirectoryConfig::new(id, self.tmp.path().join(format!("d{id}")));
        let listener = self
            .listeners
            .lock()
            .expect("directory test grid")
            .get_mut(id as usize - 1)
            .and_then(Option::take)
            .expect("each directory test node starts once");
        cfg.listen = listener.local_addr().expect("directory test grid");
        cfg.peers = self.peers.clone();
        cfg.conscience = vec![self.conscience.clone()];
        cfg.heartbeat_interval = Duration::from_millis(200);
        cfg.auto_grow_interval = auto_grow;
        cfg.location = format!("local.rack1.host{id}.meta");
        let started = oxio_directory::start_on(cfg, listener, self.stop.child_token())
            .await
            .expect("directory test grid");
        self.tasks
            .lock()
            .expect("directory test grid")
            .push(started.task);
    }

    /// Waits until `n` directory nodes are up with a score above 0.
    pub async fn wait_registered(&self, sdk: &oxio_sdk::Client, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while sdk
            .list_services("directory")
            .await
            .map(|s| s.iter().filter(|s| s.up && s.score > 0).count())
            .unwrap_or(0)
            < n
        {
            assert!(Instant::now() < deadline, "joined nodes did not register");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
