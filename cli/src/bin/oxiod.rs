//! `oxiod`: runs oxio services. `oxiod dev` starts a whole local grid in one process;
//! `oxiod run FILE` starts the roles a TOML file lists for this host.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use oxio_cli::config::HostConfig;
use oxio_cli::dev::{self, DevOptions};
use oxio_cli::host::{wait_for_signal, Host};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// mimalloc: per-thread free lists for the many small, short-lived allocations of
/// request handling (headers, futures, protobuf messages).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "oxiod",
    version,
    about = "Runs oxio services: a whole local grid (`oxiod dev`) or the roles of a host file (`oxiod run`)"
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a complete local grid in this process: a conscience, a directory node
    /// (meta0, meta1 and meta2 Raft groups on RocksDB), rawx chunk servers on volume
    /// folders, and the S3 gateway. Prints the S3 endpoint and credentials and writes
    /// them to <DATA>/dev.env. Ctrl-C stops it; starting it again serves every object
    /// stored before.
    Dev {
        /// Folder holding all the grid's data.
        #[arg(long, default_value = "var/dev")]
        data: PathBuf,
        /// S3 listen address [default: 127.0.0.1:<port-base + 7>].
        #[arg(long)]
        s3_listen: Option<SocketAddr>,
        /// Internal ports: conscience = N, directory node i = N+i, rawx i = N+200+i,
        /// S3 = N+7, conscience /metrics = N+9, directory node i /metrics = N+20+i.
        #[arg(long, default_value_t = 6000)]
        port_base: u16,
        /// Directory nodes (1 to 5), each with a replica of every Raft group; several
        /// are bootstrapped together with that many replicas per group.
        #[arg(long, default_value_t = 1)]
        directory_replicas: usize,
        /// Number of rawx services, one volume folder each (at least 6 for EC 4+2).
        #[arg(long = "rawx", default_value_t = 6)]
        rawx_count: usize,
        /// Worker threads per rawx (0 = one per core).
        #[arg(long, default_value_t = 1)]
        rawx_workers: usize,
        /// Open chunk files with O_DIRECT (chunk traffic bypasses the page cache).
        #[arg(long)]
        direct_io: bool,
        /// Write chunk files through the page cache instead of with O_DIRECT (reads
        /// use the page cache either way, unless --direct-io).
        #[arg(long)]
        buffered_writes: bool,
        /// Read every chunk over HTTP: no local-read sockets under <DATA>/run, through
        /// which the gateway otherwise reads chunk files straight from disk.
        #[arg(long)]
        no_local_reads: bool,
        /// Send every new chunk over HTTP: the gateway otherwise writes chunks of
        /// the rawx of this host into their files itself, through their local-write
        /// sockets under <DATA>/run (on only with local reads).
        #[arg(long)]
        no_local_writes: bool,
        /// Region reported to S3 clients.
        #[arg(long, default_value = "us-east-1")]
        region: String,
    },
    /// Start the services a host file lists (see docs/ARCHITECTURE.md).
    Run {
        /// TOML file with [conscience], [directory], [[rawx]] and [s3] sections.
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let log = oxio_cli::logging::init(cli.log_json);
    let open_files = oxio_cli::host::raise_open_files_limit();
    tracing::debug!(limit = ?open_files, "open files");
    let result = run(cli.command).await;
    // Lines still queued are written before the process ends.
    drop(log);
    if let Err(e) = result {
        eprintln!("oxiod: {e:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command) -> Result<()> {
    let shutdown = CancellationToken::new();
    let host = match command {
        Command::Dev {
            data,
            s3_listen,
            port_base,
            directory_replicas,
            rawx_count,
            rawx_workers,
            direct_io,
            buffered_writes,
            no_local_reads,
            no_local_writes,
            region,
        } => {
            let opts = DevOptions {
                data: data.clone(),
                s3_listen,
                port_base,
                directory_replicas,
                rawx_count,
                rawx_workers,
                direct_io,
                direct_writes: !buffered_writes,
                local_reads: !no_local_reads,
                local_writes: !no_local_writes,
                region,
            };
            let (host, g) = dev::start(&opts, shutdown.clone()).await?;
            println!("oxio dev grid ready");
            println!("  S3 endpoint   {}", g.endpoint);
            println!("  region        {}", g.region);
            println!("  access key    {}", g.access_key);
            println!("  secret key    {}", g.secret_key);
            println!("  data          {}", data.display());
            println!(
                "  conscience    {}   directory {}",
                g.conscience, g.directory
            );
            println!(
                "In another shell:  . {}/dev.env && aws s3 ls",
                data.display()
            );
            host
        }
        Command::Run { config } => {
            let cfg = HostConfig::load(&config)?;
            let host = run_host(cfg, shutdown.clone()).await?;
            println!("oxiod ready");
            host
        }
    };
    wait_for_signal().await?;
    tracing::info!("stopping");
    host.stop().await
}

async fn run_host(cfg: HostConfig, shutdown: CancellationToken) -> Result<Host> {
    let mut host = Host::new(shutdown);
    host.set_heartbeat(cfg.heartbeat()?);
    host.set_directory_peers(cfg.directory_addrs.clone());
    if let Some(c) = &cfg.conscience {
        host.start_conscience(c.conscience_config(None)?).await?;
    }
    if let Some(d) = &cfg.directory {
        host.set_directory_auto_grow(d.auto_grow()?);
        let bootstrap = d.bootstrap_single.then_some(oxio_directory::BootstrapSpec {
            meta1_groups: d.meta1_groups,
            meta2_groups: d.meta2_groups,
        });
        host.start_directory(
            d.node_id,
            d.listen,
            d.data_dir.clone(),
            d.location.clone(),
            cfg.conscience_addrs.clone(),
            bootstrap,
            d.metrics_listen,
        )
        .await?;
    }
    for r in &cfg.rawx {
        let mut rc = oxio_rawx::RawxConfig::new(r.id.clone(), r.listen, r.volume.clone());
        rc.location = r.location.clone();
        rc.workers = r.workers;
        if let Some(rate) = r.scrub_rate_bytes_per_s {
            rc.scrub_rate_bytes_per_s = rate;
        }
        if let Some(secs) = r.scrub_interval_s {
            rc.scrub_interval = std::time::Duration::from_secs(secs);
        }
        rc.capacity_bytes = r.capacity_bytes()?;
        rc.direct_io = r.direct_io;
        rc.direct_writes = r.direct_writes;
        rc.driver = r.driver.into();
        rc.local_read_dir = cfg.local_read_dir.clone();
        host.start_rawx(rc, cfg.conscience_addrs.clone())?;
    }
    if let Some(s) = &cfg.s3 {
        let mut sdk_cfg =
            oxio_sdk::ClientConfig::new(cfg.conscience_addrs.clone(), cfg.directory_addrs.clone());
        s.apply_policies(&mut sdk_cfg)?;
        sdk_cfg.local_read_dir = cfg.local_read_dir.clone();
        sdk_cfg.local_writes = cfg.local_writes;
        let sdk = oxio_sdk::Client::new(sdk_cfg).context("configuring the sdk")?;
        host.start_s3(s.listen, s.region.clone(), s.storage_classes.clone(), sdk)
            .await?;
    }
    Ok(host)
}
