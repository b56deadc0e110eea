//! `oxio`: the administration CLI of an oxio grid, in the style of OpenIO's `openio`.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use oxio_cli::cli_config;
use oxio_cli::container_cmd::{self, ContainerCmd};
use oxio_cli::grid_error::UsageError;
use oxio_cli::object_cmd::{self, ObjectCmd};
use oxio_cli::output::{Fields, Format, Rows};
use oxio_cli::units::parse_duration;
use oxio_proto::v1::ServiceState;
use serde_json::json;
use std::time::{Duration, Instant};

/// mimalloc: per-thread free lists for the many small, short-lived allocations of
/// request handling (headers, futures, protobuf messages).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status: the command failed (grid unreachable, request refused, not found).
const EXIT_ERROR: i32 = 1;
/// Exit status: bad arguments, options or configuration file.
const EXIT_USAGE: i32 = 2;
/// Exit status: `cluster wait` reached its timeout.
const EXIT_WAIT_TIMEOUT: i32 = 3;
/// Exit status: `volume rebuild` left chunks it could not rebuild.
const EXIT_REBUILD_INCOMPLETE: i32 = 4;

/// Longest `--timeout` accepted by `cluster wait`.
/// Pause between two polls of `cluster wait`.
const WAIT_POLL: Duration = Duration::from_millis(500);
/// Most laggards named in a `cluster wait` timeout message.
const MAX_LAGGARDS_SHOWN: usize = 20;

const EXIT_CODES_HELP: &str = "Exit codes:
  0  success
  1  error: grid unreachable, request refused, service not found
  2  usage error: bad arguments or options, bad configuration file
  3  `cluster wait` timed out; the message names the services not ready
  4  `volume rebuild`, `drain`, `repair-missing` or `scrub --repair` left chunks it
     could not handle; the summary lists why";

#[derive(Parser)]
#[command(
    name = "oxio",
    version,
    about = "Administer an oxio grid: services, accounts, containers, objects",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    /// Conscience address(es), comma separated [default: the configuration file's
    /// `conscience`, else 127.0.0.1:6000].
    #[arg(long, env = "OXIO_CONSCIENCE", global = true, value_delimiter = ',')]
    conscience: Option<Vec<String>>,
    /// Directory node address(es), comma separated [default: the configuration
    /// file's `directory`, else 127.0.0.1:6001].
    #[arg(long, env = "OXIO_DIRECTORY", global = true, value_delimiter = ',')]
    directory: Option<Vec<String>>,
    /// Configuration file (TOML with the keys `conscience`, `directory` and
    /// `account`; a flag or environment variable wins over it) [default:
    /// ~/.config/oxio/config.toml when it exists].
    #[arg(long, env = "OXIO_CONFIG", global = true)]
    config: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table", global = true)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Services registered with the conscience.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// S3 access keys of an account.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Containers (S3 buckets) of an account.
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Objects of a container.
    #[command(subcommand)]
    Object(ObjectCmd),
    /// Directory nodes and their Raft groups: bootstrap, status.
    #[command(subcommand)]
    Directory(DirectoryCmd),
    /// Volumes (rawx): rebuild a lost one, scrub and repair, drain, delete orphan chunks.
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Load-test an S3 endpoint (any S3 service), or one in-process rawx with --local.
    Bench(Box<oxio_cli::bench::BenchArgs>),
    /// Print a shell completion script (e.g. `oxio completion bash > /etc/bash_completion.d/oxio`).
    Completion {
        /// Shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum VolumeCmd {
    /// Re-create every chunk recorded on a lost rawx on other rawx (EC fragments
    /// re-encoded from the others, replicas copied) and update meta2. Idempotent: run
    /// it again after a partial failure.
    Rebuild {
        /// Service id of the lost rawx (as in `oxio cluster list`).
        rawx_id: String,
        /// Chunks rebuilt at once (1 to 64).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: u16,
        /// No progress bar (it is also off when stderr is not a terminal).
        #[arg(long)]
        no_progress: bool,
    },
    /// Delete the orphan chunks of a rawx: chunk files no meta2 record names (left by
    /// failed writes or lost background deletes), older than the grace period.
    Gc {
        /// Service id of the rawx (as in `oxio cluster list`).
        rawx_id: String,
        /// Unrecorded chunks younger than this are kept (writes in flight).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        grace: Duration,
        /// Report the orphans without deleting them.
        #[arg(long)]
        dry_run: bool,
    },
    #[command(flatten)]
    Repair(oxio_cli::volume_cmd::VolumeRepairCmd),
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// List services with type, id, address, location, score, up and locked.
    List {
        /// Only this service type (rawx, directory, ...).
        service_type: Option<String>,
    },
    /// Show one service: address, location, score, state, last heartbeat, stats.
    Show {
        /// Service id (rawx-0, ...).
        id: String,
        /// Service type, when the id is used by several types.
        #[arg(long = "type")]
        service_type: Option<String>,
    },
    /// Lock a service's score (0 drains it: no new data is placed there).
    Lock {
        /// Service type (rawx, ...).
        service_type: String,
        /// Service id.
        id: String,
        /// Score to lock at, 0 to 100.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
        score: u32,
    },
    /// Unlock a service's score: it follows its stats again.
    Unlock {
        /// Service type.
        service_type: String,
        /// Service id.
        id: String,
    },
    #[command(long_about = oxio_cli::admin_cmd::DEREGISTER_HELP)]
    /// Forget a service that is gone (a running one re-registers at its next heartbeat).
    Deregister {
        /// Service type (rawx, ...).
        service_type: String,
        /// Service id.
        id: String,
    },
    /// Unlock every locked registered service (of one type, or all).
    Unlockall {
        /// Only this service type.
        service_type: Option<String>,
    },
    /// Wait until every registered service of the given types is up with a score of
    /// at least --score (and at least one exists per type); exit 3 at the timeout.
    Wait {
        /// Lowest score accepted (scores go up to 100; more never succeeds).
        #[arg(long, default_value_t = 1)]
        score: u32,
        /// Give up after this long (`60s`, `500ms`, `2m`, `1h`; bare numbers are seconds).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
        /// Service types to wait for.
        #[arg(required = true)]
        service_types: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AccountCmd {
    /// List accounts.
    List,
    /// Create an account (idempotent).
    Create {
        /// Account name.
        name: String,
    },
    /// Show an account: its containers, objects and bytes (summed over its containers).
    Show {
        /// Account name.
        name: String,
    },
    /// Delete an account. Refused while it has containers (delete them first) or
    /// access keys (unless --force).
    Delete {
        /// Account name.
        name: String,
        /// Delete the account's access keys too (never its containers).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Create an access key for an existing account; its secret is shown this once.
    Create {
        /// Account the key signs for.
        account: String,
    },
    /// List the access keys of an account (secrets are not shown).
    List {
        /// Account.
        account: String,
    },
    /// Delete an access key. The S3 gateway caches secrets for up to 30 s: it may
    /// accept the key for that long after the deletion.
    Delete {
        /// The access key.
        access_key: String,
    },
}

#[derive(Subcommand)]
enum DirectoryCmd {
    /// Create a replicated directory over several directory nodes (idempotent: an
    /// existing directory is shown as it is).
    Bootstrap {
        /// Voters per Raft group.
        #[arg(long, default_value_t = 3)]
        replicas: u32,
        /// meta1 groups (accounts, containers).
        #[arg(long, default_value_t = 4)]
        meta1_groups: u32,
        /// meta2 groups (container contents).
        #[arg(long, default_value_t = 8)]
        meta2_groups: u32,
        /// Nodes as ID@HOST:PORT, comma separated [default: the directory services
        /// registered with the conscience, ids from their Status].
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
    },
    /// Add meta2 groups to a bootstrapped directory, up to --meta2-groups in all,
    /// spread over the directory nodes up (nodes that joined take them first);
    /// new containers then go to them too (idempotent).
    Grow {
        /// meta2 groups wanted in all.
        #[arg(long)]
        meta2_groups: u32,
        /// Voters per new group [default: as many as the existing meta2 groups].
        #[arg(long)]
        replicas: Option<u32>,
        /// Nodes as ID@HOST:PORT, comma separated [default: the directory services
        /// registered with the conscience that answer].
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
    },
    /// Every directory node's view of its groups: members, leader, term, applied and
    /// last log index, lag behind the leader's log, size on disk.
    Status,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(out) if out.is_empty() => {}
        Ok(out) => println!("{out}"),
        Err(e) => {
            if e.downcast_ref::<UsageError>().is_some() {
                eprintln!("oxio: {e:#}");
                std::process::exit(EXIT_USAGE);
            }
            if let Some(r) = e.downcast_ref::<oxio_cli::volume_cmd::VolumeIncomplete>() {
                println!("{}", r.summary);
                eprintln!("oxio: {}", r.message);
                std::process::exit(EXIT_REBUILD_INCOMPLETE);
            }
            if let Some(r) = e.downcast_ref::<RebuildIncomplete>() {
                println!("{}", r.summary);
                eprintln!("oxio: {}", r.message);
                std::process::exit(EXIT_REBUILD_INCOMPLETE);
            }
            if let Some(t) = e.downcast_ref::<WaitTimeout>() {
                println!("{}", t.table);
                eprintln!("oxio: {}", t.message);
                std::process::exit(EXIT_WAIT_TIMEOUT);
            }
            eprintln!("oxio: {e:#}");
            std::process::exit(EXIT_ERROR);
        }
    }
}

/// `cluster wait` gave up: the services not ready, rendered, and why.
#[derive(Debug)]
struct WaitTimeout {
    table: String,
    message: String,
}

impl std::fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WaitTimeout {}

/// The usual service row of `cluster list`.
fn service_row(s: &ServiceState) -> Vec<serde_json::Value> {
    let info = s.info.clone().unwrap_or_default();
    let stats: std::collections::BTreeMap<String, f64> = info.stats.into_iter().collect();
    vec![
        json!(info.service_type),
        json!(info.id),
        json!(info.addr),
        json!(info.location),
        json!(s.score),
        json!(s.up),
        json!(s.locked),
        json!(stats),
    ]
}

/// Columns of [`service_row`]; `stats` holds what the service last reported (cpu,
/// io and space idle / free %, and its type's own figures: rawx chunks and
/// requests per second, directory groups led and apply lag, ...).
const SERVICE_COLUMNS: [&str; 8] = [
    "type", "id", "addr", "location", "score", "up", "locked", "stats",
];

fn service_rows<'a>(services: impl IntoIterator<Item = &'a ServiceState>) -> Rows {
    let mut rows = Rows::new(&SERVICE_COLUMNS);
    for s in services {
        rows.push(service_row(s));
    }
    rows
}

/// Every field of one service, stats included, for `cluster show`.
fn service_fields(s: &ServiceState) -> Fields {
    let info = s.info.clone().unwrap_or_default();
    let stats: std::collections::BTreeMap<String, f64> = info.stats.into_iter().collect();
    Fields::new(vec![
        ("type", json!(info.service_type)),
        ("id", json!(info.id)),
        ("addr", json!(info.addr)),
        ("location", json!(info.location)),
        ("score", json!(s.score)),
        ("up", json!(s.up)),
        ("locked", json!(s.locked)),
        ("last_seen_ms_ago", json!(s.last_seen_ms_ago)),
        ("stats", json!(stats)),
    ])
}

/// Why each service of `service_types` is not ready (down, or score below
/// `min_score`), and the types with no service at all. Empty means ready.
fn laggards(services: &[ServiceState], service_types: &[String], min_score: u32) -> Vec<String> {
    let mut out = Vec::new();
    for t in service_types {
        let mut seen = false;
        for s in services {
            let Some(info) = &s.info else { continue };
            if &info.service_type != t {
                continue;
            }
            seen = true;
            if !s.up {
                out.push(format!("{t}/{} (down)", info.id));
            } else if i64::from(s.score) < i64::from(min_score) {
                let lock = if s.locked { ", locked" } else { "" };
                out.push(format!("{t}/{} (score {}{lock})", info.id, s.score));
            }
        }
        if !seen {
            out.push(format!("{t} (no service registered)"));
        }
    }
    out
}

/// Services of `service_types` that [`laggards`] names (for the timeout table).
fn not_ready<'a>(
    services: &'a [ServiceState],
    service_types: &[String],
    min_score: u32,
) -> impl Iterator<Item = &'a ServiceState> + 'a {
    let types: Vec<String> = service_types.to_vec();
    services.iter().filter(move |s| {
        s.info
            .as_ref()
            .is_some_and(|i| types.contains(&i.service_type))
            && (!s.up || i64::from(s.score) < i64::from(min_score))
    })
}

fn hint(addrs: &[String], what: &str) -> String {
    oxio_cli::grid_error::unreachable_hint(addrs, what)
}

/// A completion script for `shell`.
fn completion(shell: clap_complete::Shell) -> Result<String> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "oxio", &mut out);
    String::from_utf8(out).context("the completion script is not UTF-8")
}

async fn run(cli: Cli) -> Result<String> {
    let command = match cli.command {
        Command::Bench(mut args) => {
            args.json |= cli.format == Format::Json;
            let report = oxio_cli::bench::run(&args).await?;
            return Ok(oxio_cli::bench::render(&report, args.json));
        }
        Command::Completion { shell } => return completion(shell),
        other => other,
    };
    let file = cli_config::load(cli.config.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    let settings = file.resolve(cli.conscience.clone(), cli.directory.clone(), None);
    let account = |a: Option<String>| file.resolve(None, None, a).account;
    let (conscience, dirs) = (settings.conscience, settings.directory);
    let mut cfg = oxio_sdk::ClientConfig::new(conscience.clone(), dirs.clone());
    cfg.retry_deadline = std::time::Duration::from_secs(5);
    cfg.rpc_timeout = std::time::Duration::from_secs(5);
    let sdk = oxio_sdk::Client::new(cfg)?;
    let f = cli.format;
    let dir_hint = || hint(&dirs, "directory");
    match command {
        Command::Bench(_) | Command::Completion { .. } => {
            bail!("this command runs without the grid client")
        }
        Command::Cluster(cmd) => cluster(&sdk, cmd, f, &conscience).await,
        Command::Directory(cmd) => directory(&sdk, cmd, f, &dirs).await,
        Command::Volume(cmd) => volume(&sdk, cmd, f).await.with_context(dir_hint),
        Command::Account(AccountCmd::List) => {
            let accounts = sdk.list_accounts().await.with_context(dir_hint)?;
            let mut rows = Rows::new(&["account", "created_ms"]);
            for a in accounts {
                rows.push(vec![json!(a.account), json!(a.ctime_ms)]);
            }
            Ok(rows.render(f))
        }
        Command::Account(AccountCmd::Create { name }) => {
            let a = sdk.create_account(&name).await.with_context(dir_hint)?;
            let mut rows = Rows::new(&["account", "created_ms"]);
            rows.push(vec![json!(a.account), json!(a.ctime_ms)]);
            Ok(rows.render(f))
        }
        Command::Account(AccountCmd::Show { name }) => {
            container_cmd::account_show(&sdk, &name, &dirs, f).await
        }
        Command::Account(AccountCmd::Delete { name, force }) => {
            oxio_cli::admin_cmd::account_delete(&sdk, &name, force, f, &dirs).await
        }
        Command::Key(cmd) => key(&sdk, cmd, f, &dirs).await,
        Command::Container(cmd) => container_cmd::run(&sdk, cmd, f, &dirs, account).await,
        Command::Object(cmd) => object_cmd::run(&sdk, cmd, f, &dirs, account).await,
    }
}

/// Parses `ID@HOST:PORT`.
fn parse_node(text: &str) -> Result<oxio_proto::v1::GroupMember> {
    let (id, addr) = text
        .split_once('@')
        .with_context(|| format!("{text:?} is not ID@HOST:PORT"))?;
    let node_id = id
        .parse()
        .with_context(|| format!("{id:?} in {text:?} is not a node id"))?;
    if !addr.contains(':') {
        bail!("{addr:?} in {text:?} is not HOST:PORT");
    }
    Ok(oxio_proto::v1::GroupMember {
        node_id,
        addr: addr.to_string(),
    })
}

fn member_names(g: &oxio_proto::v1::GroupInfo) -> Vec<String> {
    g.members
        .iter()
        .map(|m| format!("{}@{}", m.node_id, m.addr))
        .collect()
}

fn kind_name(kind: i32) -> &'static str {
    match oxio_proto::v1::GroupKind::try_from(kind) {
        Ok(oxio_proto::v1::GroupKind::Meta0) => "meta0",
        Ok(oxio_proto::v1::GroupKind::Meta1) => "meta1",
        Ok(oxio_proto::v1::GroupKind::Meta2) => "meta2",
        _ => "unknown",
    }
}

/// Runs a `directory` subcommand.
async fn directory(
    sdk: &oxio_sdk::Client,
    cmd: DirectoryCmd,
    f: Format,
    seeds: &[String],
) -> Result<String> {
    match cmd {
        DirectoryCmd::Bootstrap {
            replicas,
            meta1_groups,
            meta2_groups,
            nodes,
        } => {
            let nodes = directory_nodes(sdk, &nodes).await?;
            let via = nodes
                .first()
                .map(|n| n.addr.clone())
                .context("no directory node to bootstrap")?;
            let reply = sdk
                .directory_bootstrap(
                    &via,
                    oxio_proto::v1::BootstrapRequest {
                        replicas,
                        meta1_groups,
                        meta2_groups,
                        nodes,
                        forwarded: false,
                        node_locations: Default::default(),
                    },
                )
                .await?;
            let mut rows = Rows::new(&["group", "kind", "members", "leader", "existed"]);
            for g in reply.table.map(|t| t.groups).unwrap_or_default() {
                rows.push(vec![
                    json!(g.id),
                    json!(kind_name(g.kind)),
                    json!(member_names(&g)),
                    json!(g.leader_addr),
                    json!(reply.already_bootstrapped),
                ]);
            }
            Ok(rows.render(f))
        }
        DirectoryCmd::Grow {
            meta2_groups,
            replicas,
            nodes,
        } => {
            let nodes = directory_nodes(sdk, &nodes).await?;
            let via = nodes
                .first()
                .map(|n| n.addr.clone())
                .context("no directory node to grow the directory through")?;
            let reply = sdk
                .directory_add_meta2_groups(
                    &via,
                    oxio_proto::v1::AddMeta2GroupsRequest {
                        meta2_groups,
                        replicas: replicas.unwrap_or(0),
                        nodes,
                        forwarded: false,
                        plan: Vec::new(),
                    },
                )
                .await?;
            let added: std::collections::HashSet<u64> = reply.added.iter().map(|g| g.id).collect();
            let mut rows = Rows::new(&["group", "kind", "members", "leader", "added"]);
            for g in reply.table.map(|t| t.groups).unwrap_or_default() {
                rows.push(vec![
                    json!(g.id),
                    json!(kind_name(g.kind)),
                    json!(member_names(&g)),
                    json!(g.leader_addr),
                    json!(added.contains(&g.id)),
                ]);
            }
            Ok(rows.render(f))
        }
        DirectoryCmd::Status => {
            let mut addrs = sdk.directory_addrs().await.unwrap_or_default();
            for s in seeds {
                if !addrs.contains(s) {
                    addrs.push(s.clone());
                }
            }
            let nodes = sdk.directory_status(&addrs).await;
            // The leader's last log index of each group, for the lag column.
            let mut leader_log = std::collections::HashMap::new();
            for n in &nodes {
                for g in n.status.iter().flat_map(|s| s.groups.iter()) {
                    if let (true, Some(info)) = (g.is_leader, &g.group) {
                        leader_log.insert(info.id, g.last_log_index);
                    }
                }
            }
            let mut rows = Rows::new(&[
                "node",
                "node_id",
                "group",
                "kind",
                "members",
                "leader",
                "is_leader",
                "term",
                "applied",
                "last_log",
                "lag",
                "size_bytes",
                "error",
            ]);
            for n in &nodes {
                match &n.status {
                    Err(e) => rows.push(vec![
                        json!(n.addr),
                        json!(null),
                        json!(null),
                        json!(null),
                        json!([]),
                        json!(null),
                        json!(false),
                        json!(null),
                        json!(null),
                        json!(null),
                        json!(null),
                        json!(null),
                        json!(e.to_string()),
                    ]),
                    Ok(s) => {
                        for g in &s.groups {
                            let info = g.group.clone().unwrap_or_default();
                            let lag = leader_log
                                .get(&info.id)
                                .map(|l| json!(l.saturating_sub(g.applied_index)))
                                .unwrap_or(json!(null));
                            rows.push(vec![
                                json!(n.addr),
                                json!(s.node_id),
                                json!(info.id),
                                json!(kind_name(info.kind)),
                                json!(member_names(&info)),
                                json!(info.leader_addr),
                                json!(g.is_leader),
                                json!(g.term),
                                json!(g.applied_index),
                                json!(g.last_log_index),
                                lag,
                                json!(g.size_bytes),
                                json!(null),
                            ]);
                        }
                    }
                }
            }
            Ok(rows.render(f))
        }
    }
}

/// The directory nodes a bootstrap or growth spreads groups over: `--nodes` as given,
/// else the directory services the conscience lists up with a score above 0 that
/// answer.
async fn directory_nodes(
    sdk: &oxio_sdk::Client,
    listed: &[String],
) -> Result<Vec<oxio_proto::v1::GroupMember>> {
    if !listed.is_empty() {
        return listed.iter().map(|n| parse_node(n)).collect();
    }
    let addrs = sdk
        .directory_addrs_usable()
        .await
        .context("listing the directory services registered with the conscience")?;
    if addrs.is_empty() {
        bail!("the conscience lists no directory service up with a score above 0: start the directory nodes (or unlock them) or pass --nodes ID@ADDR,...");
    }
    let up = sdk.directory_members_up(&addrs).await;
    if up.is_empty() {
        bail!(
            "no directory node answers at {}: start them or pass --nodes ID@ADDR,...",
            addrs.join(",")
        );
    }
    Ok(up)
}

/// Runs a `cluster` subcommand.
async fn cluster(
    sdk: &oxio_sdk::Client,
    cmd: ClusterCmd,
    f: Format,
    conscience: &[String],
) -> Result<String> {
    let c_hint = || hint(conscience, "conscience");
    match cmd {
        ClusterCmd::List { service_type } => {
            let services = sdk
                .list_services(service_type.as_deref().unwrap_or(""))
                .await
                .with_context(c_hint)?;
            Ok(service_rows(&services).render(f))
        }
        ClusterCmd::Show { id, service_type } => {
            let services = sdk
                .list_services(service_type.as_deref().unwrap_or(""))
                .await
                .with_context(c_hint)?;
            let found: Vec<&ServiceState> = services
                .iter()
                .filter(|s| s.info.as_ref().is_some_and(|i| i.id == id))
                .collect();
            match found.as_slice() {
                [] => bail!("no registered service has the id {id:?}; see `oxio cluster list`"),
                [one] => Ok(service_fields(one).render(f)),
                many => {
                    let types: Vec<String> = many
                        .iter()
                        .filter_map(|s| s.info.as_ref().map(|i| i.service_type.clone()))
                        .collect();
                    bail!(
                        "the id {id:?} is used by several service types ({}); add --type",
                        types.join(", ")
                    )
                }
            }
        }
        ClusterCmd::Lock {
            service_type,
            id,
            score,
        } => {
            sdk.lock_service(&service_type, &id, score)
                .await
                .with_context(c_hint)?;
            after_lock(sdk, &service_type, &id, Some(score), f).await
        }
        ClusterCmd::Unlock { service_type, id } => {
            sdk.unlock_service(&service_type, &id)
                .await
                .with_context(c_hint)?;
            after_lock(sdk, &service_type, &id, None, f).await
        }
        ClusterCmd::Deregister { service_type, id } => {
            oxio_cli::admin_cmd::cluster_deregister(sdk, &service_type, &id, f, conscience).await
        }
        ClusterCmd::Unlockall { service_type } => {
            let t = service_type.unwrap_or_default();
            let unlocked = sdk.unlock_all(&t).await.with_context(c_hint)?;
            let mut rows = Rows::new(&["type", "id", "locked"]);
            for s in &unlocked {
                let info = s.info.clone().unwrap_or_default();
                rows.push(vec![json!(info.service_type), json!(info.id), json!(false)]);
            }
            Ok(rows.render(f))
        }
        ClusterCmd::Wait {
            score,
            timeout,
            service_types,
        } => wait(sdk, &service_types, score, timeout, f).await,
    }
}

/// The row of a service just locked or unlocked, as the conscience now lists it (or
/// what the lock says, for a service not registered yet).
async fn after_lock(
    sdk: &oxio_sdk::Client,
    service_type: &str,
    id: &str,
    lock: Option<u32>,
    f: Format,
) -> Result<String> {
    let services = sdk.list_services(service_type).await.unwrap_or_default();
    let mut rows = Rows::new(&SERVICE_COLUMNS);
    match services
        .iter()
        .find(|s| s.info.as_ref().is_some_and(|i| i.id == id))
    {
        Some(s) => rows.push(service_row(s)),
        None => rows.push(vec![
            json!(service_type),
            json!(id),
            json!(null),
            json!(null),
            json!(lock),
            json!(false),
            json!(lock.is_some()),
            json!({}),
        ]),
    }
    Ok(rows.render(f))
}

/// Polls the conscience until every service of `service_types` is ready, or fails
/// with [`WaitTimeout`] naming those that are not.
async fn wait(
    sdk: &oxio_sdk::Client,
    service_types: &[String],
    min_score: u32,
    timeout: Duration,
    f: Format,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let mut last_error: Option<String>;
    let mut services = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let poll = tokio::time::timeout(remaining.max(Duration::from_millis(100)), async {
            sdk.list_services("").await
        });
        match poll.await {
            Ok(Ok(s)) => {
                services = s;
                last_error = None;
                if laggards(&services, service_types, min_score).is_empty() {
                    let ready = services.iter().filter(|s| {
                        s.info
                            .as_ref()
                            .is_some_and(|i| service_types.contains(&i.service_type))
                    });
                    return Ok(service_rows(ready).render(f));
                }
            }
            Ok(Err(e)) => last_error = Some(e.to_string()),
            Err(_) => last_error = Some("the conscience did not answer in time".into()),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(WAIT_POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
    let lag = laggards(&services, service_types, min_score);
    let mut message = format!(
        "timed out after {:?} waiting for {} with score >= {min_score}: ",
        timeout,
        service_types.join(", ")
    );
    match &last_error {
        Some(e) if services.is_empty() => {
            message.push_str(&format!("conscience unreachable ({e})"))
        }
        _ => {
            message.push_str(
                &lag.iter()
                    .take(MAX_LAGGARDS_SHOWN)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            if lag.len() > MAX_LAGGARDS_SHOWN {
                message.push_str(&format!(" and {} more", lag.len() - MAX_LAGGARDS_SHOWN));
            }
        }
    }
    Err(WaitTimeout {
        table: service_rows(not_ready(&services, service_types, min_score)).render(f),
        message,
    }
    .into())
}

/// `volume rebuild` finished with failures: the rendered summary, and why.
#[derive(Debug)]
struct RebuildIncomplete {
    summary: String,
    message: String,
}

impl std::fmt::Display for RebuildIncomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RebuildIncomplete {}

async fn key(sdk: &oxio_sdk::Client, cmd: KeyCmd, f: Format, dirs: &[String]) -> Result<String> {
    use oxio_cli::grid_error::{explain, Target};
    match cmd {
        KeyCmd::Create { account } => {
            let why = |e| {
                explain(
                    e,
                    Target {
                        account: &account,
                        ..Default::default()
                    },
                    dirs,
                )
            };
            let accounts = sdk.list_accounts().await.map_err(why)?;
            if !accounts.iter().any(|a| a.account == account) {
                bail!(
                    "no account {account:?}: create it first with `oxio account create {account}`"
                );
            }
            let k = sdk
                .put_access_key(oxio_cli::keys::new_access_key(&account))
                .await
                .map_err(why)?;
            let mut rows = Rows::new(&["access_key", "secret_key", "account", "created_ms"]);
            rows.push(vec![
                json!(k.access_key),
                json!(k.secret_key),
                json!(k.account),
                json!(k.ctime_ms),
            ]);
            Ok(rows.render(f))
        }
        KeyCmd::Delete { access_key } => {
            oxio_cli::admin_cmd::key_delete(sdk, &access_key, f, dirs).await
        }
        KeyCmd::List { account } => {
            let keys = sdk.list_access_keys(&account).await.map_err(|e| {
                explain(
                    e,
                    Target {
                        account: &account,
                        ..Default::default()
                    },
                    dirs,
                )
            })?;
            let mut rows = Rows::new(&["access_key", "account", "created_ms"]);
            for k in keys {
                rows.push(vec![
                    json!(k.access_key),
                    json!(k.account),
                    json!(k.ctime_ms),
                ]);
            }
            Ok(rows.render(f))
        }
    }
}

async fn volume(sdk: &oxio_sdk::Client, cmd: VolumeCmd, f: Format) -> Result<String> {
    match cmd {
        VolumeCmd::Repair(cmd) => oxio_cli::volume_cmd::run(sdk, cmd, f).await,
        VolumeCmd::Gc {
            rawx_id,
            grace,
            dry_run,
        } => {
            let r = sdk
                .collect_garbage(&rawx_id, oxio_sdk::gc::GcOptions { grace, dry_run })
                .await?;
            let out = Fields::new(vec![
                ("rawx_id", json!(r.rawx_id)),
                ("dry_run", json!(dry_run)),
                ("listed", json!(r.listed)),
                ("recorded", json!(r.recorded)),
                ("young", json!(r.young)),
                ("orphans", json!(r.orphans)),
                ("orphan_bytes", json!(r.orphan_bytes)),
                ("deleted", json!(r.deleted)),
                ("failed", json!(r.failures.len())),
            ])
            .render(f);
            if !r.failures.is_empty() {
                bail!(
                    "{out}\n{} orphan(s) could not be deleted: {}",
                    r.failures.len(),
                    r.failures.join("; ")
                );
            }
            Ok(out)
        }
        VolumeCmd::Rebuild {
            rawx_id,
            concurrency,
            no_progress,
        } => {
            use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if no_progress
                || f != Format::Table
                || !std::io::IsTerminal::is_terminal(&std::io::stderr())
            {
                bar.set_draw_target(ProgressDrawTarget::hidden());
            }
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} chunks  {per_sec}  ETA {eta}  {msg}",
                )
                .context("progress bar template")?,
            );
            let options = oxio_sdk::rebuild::RebuildOptions {
                concurrency: usize::from(concurrency),
            };
            let report = sdk
                .rebuild_rawx_with(&rawx_id, options, |p| {
                    bar.set_length(p.total);
                    bar.set_position(p.done + p.skipped + p.failed);
                    bar.set_message(format!("skipped {} failed {}", p.skipped, p.failed));
                })
                .await;
            bar.finish_and_clear();
            let report = report?;
            let summary = rebuild_summary(&rawx_id, &report, f);
            if report.is_complete() {
                return Ok(summary);
            }
            let mut message = format!(
                "{} of {} chunks of {rawx_id} could not be rebuilt; run the command again",
                report.progress.failed, report.progress.total
            );
            if report.more_remaining {
                message.push_str(" (this run stopped at its chunk limit)");
            }
            Err(RebuildIncomplete { summary, message }.into())
        }
    }
}

fn rebuild_summary(rawx_id: &str, r: &oxio_sdk::rebuild::RebuildReport, f: Format) -> String {
    let p = &r.progress;
    let fields = vec![
        ("rawx_id", json!(rawx_id)),
        ("total", json!(p.total)),
        ("rebuilt", json!(p.done)),
        ("skipped", json!(p.skipped)),
        ("failed", json!(p.failed)),
        ("bytes", json!(p.bytes)),
        ("more_remaining", json!(r.more_remaining)),
    ];
    oxio_cli::volume_cmd::summary(fields, r, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxio_proto::v1::ServiceInfo;

    fn svc(t: &str, id: &str, score: i32, up: bool, locked: bool) -> ServiceState {
        ServiceState {
            info: Some(ServiceInfo {
                service_type: t.into(),
                id: id.into(),
                ..Default::default()
            }),
            score,
            up,
            locked,
            last_seen_ms_ago: 0,
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("48h").is_err());
    }

    #[test]
    fn laggards_name_down_low_and_missing() {
        let services = vec![
            svc("rawx", "rawx-0", 80, true, false),
            svc("rawx", "rawx-1", 0, true, true),
            svc("rawx", "rawx-2", 90, false, false),
            svc("directory", "d-1", 50, true, false),
        ];
        let types = vec!["rawx".to_string(), "meta2".to_string()];
        assert_eq!(
            laggards(&services, &types, 1),
            vec![
                "rawx/rawx-1 (score 0, locked)",
                "rawx/rawx-2 (down)",
                "meta2 (no service registered)"
            ]
        );
        assert!(laggards(&services, &["directory".to_string()], 50).is_empty());
        assert_eq!(
            laggards(&services, &["directory".to_string()], 51),
            vec!["directory/d-1 (score 50)"]
        );
        let ids: Vec<String> = not_ready(&services, &types, 1)
            .map(|s| s.info.clone().unwrap().id)
            .collect();
        assert_eq!(ids, vec!["rawx-1", "rawx-2"]);
    }

    #[test]
    fn help_documents_exit_codes() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes") && help.contains("3  `cluster wait` timed out"));
        assert!(
            Cli::try_parse_from(["oxio", "cluster", "lock", "rawx", "r", "--score", "101"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["oxio", "cluster", "wait"]).is_err());
        let cli =
            Cli::try_parse_from(["oxio", "cluster", "wait", "--timeout", "2s", "rawx"]).unwrap();
        match cli.command {
            Command::Cluster(ClusterCmd::Wait {
                score,
                timeout,
                service_types,
            }) => {
                assert_eq!((score, timeout), (1, Duration::from_secs(2)));
                assert_eq!(service_types, vec!["rawx"]);
            }
            _ => panic!("parsed as another command"),
        }
    }

    #[test]
    fn object_commands_and_completion_parse() {
        let cli = Cli::try_parse_from([
            "oxio",
            "object",
            "locate",
            "b",
            "k",
            "--check",
            "--account",
            "a",
        ])
        .unwrap();
        match cli.command {
            Command::Object(ObjectCmd::Locate {
                container,
                key,
                check,
                account,
            }) => assert_eq!(
                (container.as_str(), key.as_str(), check, account.as_deref()),
                ("b", "k", true, Some("a"))
            ),
            _ => panic!("parsed as another command"),
        }
        let cli =
            Cli::try_parse_from(["oxio", "--config", "/x.toml", "completion", "zsh"]).unwrap();
        assert_eq!(cli.config.as_deref(), Some(std::path::Path::new("/x.toml")));
        assert!(completion(clap_complete::Shell::Bash)
            .unwrap()
            .contains("locate"));
        assert!(Cli::try_parse_from(["oxio", "completion", "tcsh"]).is_err());
        assert!(Cli::try_parse_from(["oxio", "object", "create", "b"]).is_err());
    }

    #[test]
    fn volume_rebuild_parses_and_reports() {
        let cli = Cli::try_parse_from([
            "oxio",
            "volume",
            "rebuild",
            "rawx-3",
            "--concurrency",
            "8",
            "--no-progress",
        ])
        .unwrap();
        match cli.command {
            Command::Volume(VolumeCmd::Rebuild {
                rawx_id,
                concurrency,
                no_progress,
            }) => assert_eq!(
                (rawx_id.as_str(), concurrency, no_progress),
                ("rawx-3", 8, true)
            ),
            _ => panic!("parsed as another command"),
        }
        assert!(
            Cli::try_parse_from(["oxio", "volume", "rebuild", "r", "--concurrency", "0"]).is_err()
        );
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("4  `volume rebuild`"));

        let mut report = oxio_sdk::rebuild::RebuildReport::default();
        report.progress.total = 3;
        report.progress.done = 2;
        report.progress.failed = 1;
        report.failures.push(oxio_sdk::rebuild::RebuildFailure {
            cid: "C".into(),
            key: "k".into(),
            chunk_id: "X".into(),
            reason: "no rawx".into(),
        });
        let v: serde_json::Value =
            serde_json::from_str(&rebuild_summary("rawx-3", &report, Format::Json)).unwrap();
        assert_eq!(v["rebuilt"], 2);
        assert_eq!(v["failed"], 1);
        assert_eq!(v["failures"][0]["reason"], "no rawx");
        let table = rebuild_summary("rawx-3", &report, Format::Table);
        assert!(table.contains("rawx-3") && table.contains("no rawx"));
    }
}
