//! `oxiod dev`: a whole grid in one process — a conscience, one directory node with its
//! meta0 / meta1 / meta2 groups (or several nodes replicating every group, bootstrapped
//! through the `Bootstrap` RPC), N rawx on N volume folders, and the S3 gateway —
//! talking to each other over gRPC and HTTP on loopback exactly as across hosts.

use crate::host::Host;
use anyhow::{bail, Context, Result};
use oxio_directory::BootstrapSpec;
use oxio_proto::v1::AccessKeyRecord;
use oxio_rawx::RawxConfig;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Most directory nodes `oxiod dev` runs (ports base+1 ..= base+5).
pub const MAX_DEV_DIRECTORY_NODES: usize = 5;

/// Scrub rate of each rawx of the dev grid (all its volumes share one disk).
pub const DEV_SCRUB_RATE_BYTES_PER_S: u64 = 4 << 20;

/// The account `oxiod dev` creates and whose key it prints.
pub const DEV_ACCOUNT: &str = "dev";

/// Options of `oxiod dev`.
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// Data folder (all services' state lives under it).
    pub data: PathBuf,
    /// S3 listen address; default 127.0.0.1:(port_base + 7).
    pub s3_listen: Option<SocketAddr>,
    /// Base of internal ports: conscience = base, directory node i = base + i
    /// (i from 1), rawx n = base + 200 + n; `/metrics` of the conscience on base + 9,
    /// of directory node i on base + 20 + i.
    pub port_base: u16,
    /// Directory nodes, each hosting a replica of every group (1 keeps the single-node
    /// layout `<data>/directory`; more use `<data>/directory/node<i>`).
    pub directory_replicas: usize,
    /// Number of rawx services (volumes).
    pub rawx_count: usize,
    /// Worker threads per rawx.
    pub rawx_workers: usize,
    /// Chunk files opened with O_DIRECT.
    pub direct_io: bool,
    /// Chunk files written with O_DIRECT (read through the page cache).
    pub direct_writes: bool,
    /// Local-read sockets under `<data>/run`: the gateway reads chunk files itself
    /// instead of over TCP (see `oxio_common::local_read`; off with direct I/O).
    pub local_reads: bool,
    /// With local reads, the gateway also writes new chunks into their files itself
    /// through each rawx's local-write socket (see `oxio_common::local_write`).
    pub local_writes: bool,
    /// Region reported to S3 clients.
    pub region: String,
}

/// Where the grid answers, once started.
#[derive(Clone, Debug)]
pub struct DevGrid {
    /// S3 endpoint URL.
    pub endpoint: String,
    /// Conscience address.
    pub conscience: String,
    /// Directory node addresses, comma separated.
    pub directory: String,
    /// Access key of the dev account.
    pub access_key: String,
    /// Its secret.
    pub secret_key: String,
    /// Region.
    pub region: String,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// Where directory node `i` (from 1) serves `/metrics`: base + 20 + i (`start` keeps
/// the base far enough below `u16::MAX`).
fn directory_metrics_port(port_base: u16, node: usize) -> u16 {
    port_base + 20 + node as u16
}

/// Starts the grid and returns once S3 answers with working credentials.
pub async fn start(opts: &DevOptions, shutdown: CancellationToken) -> Result<(Host, DevGrid)> {
    if opts.rawx_count < 6 {
        bail!(
            "--rawx {} is too few: EC 4+2 needs at least 6 rawx",
            opts.rawx_count
        );
    }
    if opts.directory_replicas == 0 || opts.directory_replicas > MAX_DEV_DIRECTORY_NODES {
        bail!(
            "--directory-replicas {} must be 1 to {MAX_DEV_DIRECTORY_NODES} (ports base+1.. stop below the S3 port base+7)",
            opts.directory_replicas
        );
    }
    if opts.port_base as usize + 200 + opts.rawx_count > u16::MAX as usize {
        bail!(
            "--port-base {} leaves no room for {} rawx ports above it",
            opts.port_base,
            opts.rawx_count
        );
    }
    std::fs::create_dir_all(&opts.data)
        .with_context(|| format!("cannot create {}", opts.data.display()))?;
    let data = opts
        .data
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", opts.data.display()))?;
    let mut host = Host::new(shutdown);

    let c_addr = host
        .start_conscience(oxio_conscience::ConscienceConfig {
            listen: loopback(opts.port_base),
            data_dir: Some(data.join("conscience")),
            metrics_listen: Some(loopback(opts.port_base + 9)),
            ..Default::default()
        })
        .await?;
    let conscience = vec![c_addr.to_string()];
    let d_addrs = start_directory(&mut host, opts, &data, &conscience).await?;
    let local_read_dir = local_read_dir(opts, &data);
    let mut driver = "";
    for i in 0..opts.rawx_count {
        let mut cfg = RawxConfig::new(
            format!("rawx-{i}"),
            rawx_addr(opts, i),
            data.join("rawx").join(format!("vol{i}")),
        );
        cfg.local_read_dir = local_read_dir.clone();
        cfg.location = format!("local.rack1.host1.vol{i}");
        cfg.workers = opts.rawx_workers;
        cfg.direct_io = opts.direct_io;
        cfg.direct_writes = opts.direct_writes;
        // Six volumes share one disk here: scrub gently.
        cfg.scrub_rate_bytes_per_s = DEV_SCRUB_RATE_BYTES_PER_S;
        driver = host.start_rawx(cfg, conscience.clone())?.1;
    }
    tracing::info!(driver, count = opts.rawx_count, "rawx started");

    let mut sdk_cfg = oxio_sdk::ClientConfig::new(conscience.clone(), d_addrs.clone());
    sdk_cfg.local_read_dir = local_read_dir;
    sdk_cfg.local_writes = opts.local_writes;
    let sdk = oxio_sdk::Client::new(sdk_cfg)?;
    wait_for_rawx(&sdk, opts.rawx_count).await?;
    let key = dev_credentials(&sdk).await?;
    let s3_listen = opts
        .s3_listen
        .unwrap_or_else(|| loopback(opts.port_base + 7));
    let s3_addr = host
        .start_s3(s3_listen, opts.region.clone(), Default::default(), sdk)
        .await?;
    let grid = DevGrid {
        endpoint: format!("http://{s3_addr}"),
        conscience: c_addr.to_string(),
        directory: d_addrs.join(","),
        access_key: key.access_key,
        secret_key: key.secret_key,
        region: opts.region.clone(),
    };
    write_env(&data, &grid)?;
    Ok((host, grid))
}

/// `<data>/run` when local reads are on and every rawx's socket paths (read and write)
/// fit a Unix socket address; `None` otherwise (said in the log).
fn local_read_dir(opts: &DevOptions, data: &std::path::Path) -> Option<PathBuf> {
    if !opts.local_reads || opts.direct_io {
        return None;
    }
    let dir = data.join("run");
    for i in 0..opts.rawx_count {
        let addr = rawx_addr(opts, i).to_string();
        let bindable = oxio_common::local_read::bindable_socket_path(&dir, &addr)
            .and_then(|_| oxio_common::local_write::bindable_socket_path(&dir, &addr));
        if let Err(e) = bindable {
            tracing::warn!(error = %e, "no local reads: chunks are read over HTTP");
            return None;
        }
    }
    Some(dir)
}

/// Address of rawx `i` of the dev grid.
fn rawx_addr(opts: &DevOptions, i: usize) -> SocketAddr {
    loopback(opts.port_base + 200 + i as u16)
}

/// Groups of the dev directory.
const DEV_GROUPS: BootstrapSpec = BootstrapSpec {
    meta1_groups: 4,
    meta2_groups: 4,
};

/// Starts the directory nodes and bootstraps them; returns their addresses. One node
/// bootstraps itself at start; several are bootstrapped together with one replica of
/// every group each, through the same `Bootstrap` RPC an operator uses (idempotent, so
/// a restart only reloads the groups from each node's RocksDB).
async fn start_directory(
    host: &mut Host,
    opts: &DevOptions,
    data: &std::path::Path,
    conscience: &[String],
) -> Result<Vec<String>> {
    let n = opts.directory_replicas;
    let dir = data.join("directory");
    if n == 1 {
        if dir.join("node1").exists() {
            bail!(
                "{} holds a replicated directory: start with --directory-replicas matching it",
                dir.display()
            );
        }
        let addr = host
            .start_directory(
                1,
                loopback(opts.port_base + 1),
                dir,
                "local.rack1.host1.meta".to_string(),
                conscience.to_vec(),
                Some(DEV_GROUPS),
                Some(loopback(directory_metrics_port(opts.port_base, 1))),
            )
            .await?;
        return Ok(vec![addr.to_string()]);
    }
    if dir.join("db").exists() {
        bail!(
            "{} holds a single-node directory: start with --directory-replicas 1",
            dir.display()
        );
    }
    let mut nodes = Vec::with_capacity(n);
    for i in 1..=n {
        let addr = host
            .start_directory(
                i as u64,
                loopback(opts.port_base + i as u16),
                dir.join(format!("node{i}")),
                format!("local.rack1.host{i}.meta"),
                conscience.to_vec(),
                None,
                Some(loopback(directory_metrics_port(opts.port_base, i))),
            )
            .await?;
        nodes.push(oxio_proto::v1::GroupMember {
            node_id: i as u64,
            addr: addr.to_string(),
        });
    }
    let addrs: Vec<String> = nodes.iter().map(|m| m.addr.clone()).collect();
    let admin = oxio_sdk::Client::new(oxio_sdk::ClientConfig::new(
        conscience.to_vec(),
        addrs.clone(),
    ))?;
    let reply = admin
        .directory_bootstrap(
            &addrs[0],
            oxio_proto::v1::BootstrapRequest {
                replicas: n as u32,
                meta1_groups: DEV_GROUPS.meta1_groups,
                meta2_groups: DEV_GROUPS.meta2_groups,
                nodes,
                forwarded: false,
                node_locations: Default::default(),
            },
        )
        .await
        .context("bootstrapping the replicated directory")?;
    tracing::info!(
        nodes = n,
        existed = reply.already_bootstrapped,
        "replicated directory ready"
    );
    Ok(addrs)
}

/// Waits until the conscience sees `count` rawx up with a usable score.
async fn wait_for_rawx(sdk: &oxio_sdk::Client, count: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = match sdk.list_services("rawx").await {
            Ok(s) => s.iter().filter(|s| s.up && s.score > 0).count(),
            Err(_) => 0,
        };
        if up >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {up} of {count} rawx registered with the conscience after 60 s; see the log above");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The dev account's access key, created on first start and kept in the directory.
async fn dev_credentials(sdk: &oxio_sdk::Client) -> Result<AccessKeyRecord> {
    sdk.create_account(DEV_ACCOUNT)
        .await
        .context("creating the dev account")?;
    let keys = sdk
        .list_access_keys(DEV_ACCOUNT)
        .await
        .context("listing the dev account's keys")?;
    if let Some(k) = keys.into_iter().next() {
        return Ok(k);
    }
    sdk.put_access_key(crate::keys::new_access_key(DEV_ACCOUNT))
        .await
        .context("storing the dev access key")
}

/// Writes `<data>/dev.env` for `. var/dev/dev.env` in another shell.
fn write_env(data: &std::path::Path, g: &DevGrid) -> Result<()> {
    let text = format!(
        "# oxio dev grid: source this file (. {}/dev.env)\n\
         export AWS_ENDPOINT_URL={}\n\
         export AWS_ACCESS_KEY_ID={}\n\
         export AWS_SECRET_ACCESS_KEY={}\n\
         export AWS_REGION={}\n\
         export AWS_DEFAULT_REGION={}\n\
         export OXIO_CONSCIENCE={}\n\
         export OXIO_DIRECTORY={}\n",
        data.display(),
        g.endpoint,
        g.access_key,
        g.secret_key,
        g.region,
        g.region,
        g.conscience,
        g.directory
    );
    let path = data.join("dev.env");
    let tmp = data.join("dev.env.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
