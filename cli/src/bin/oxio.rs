//! `oxio`: the administration CLI of an oxio grid, in the style of OpenIO's `openio`.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use oxio_cli::output::{Format, Rows};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "oxio",
    version,
    about = "Administer an oxio grid: services, accounts, containers, objects"
)]
struct Cli {
    /// Conscience address(es), comma separated.
    #[arg(
        long,
        env = "OXIO_CONSCIENCE",
        default_value = "127.0.0.1:6000",
        global = true,
        value_delimiter = ','
    )]
    conscience: Vec<String>,
    /// Directory node address(es), comma separated.
    #[arg(
        long,
        env = "OXIO_DIRECTORY",
        default_value = "127.0.0.1:6001",
        global = true,
        value_delimiter = ','
    )]
    directory: Vec<String>,
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
    /// Containers (S3 buckets) of an account.
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Objects of a container.
    #[command(subcommand)]
    Object(ObjectCmd),
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// List services with type, id, address, location, score, up and locked.
    List {
        /// Only this service type (rawx, directory, ...).
        service_type: Option<String>,
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
}

#[derive(Subcommand)]
enum ContainerCmd {
    /// List the containers of an account.
    List {
        /// Account.
        #[arg(long, env = "OXIO_ACCOUNT", default_value = "dev")]
        account: String,
    },
}

#[derive(Subcommand)]
enum ObjectCmd {
    /// List the objects of a container.
    List {
        /// Container (bucket) name.
        container: String,
        /// Account.
        #[arg(long, env = "OXIO_ACCOUNT", default_value = "dev")]
        account: String,
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many objects (0 = all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(out) => println!("{out}"),
        Err(e) => {
            eprintln!("oxio: {e:#}");
            std::process::exit(1);
        }
    }
}

fn hint(addrs: &[String], what: &str) -> String {
    format!(
        "cannot reach the {what} at {}: is the grid running (make up)? Set --{what} or OXIO_{} otherwise",
        addrs.join(","),
        what.to_uppercase()
    )
}

async fn run(cli: Cli) -> Result<String> {
    let mut cfg = oxio_sdk::ClientConfig::new(cli.conscience.clone(), cli.directory.clone());
    cfg.retry_deadline = std::time::Duration::from_secs(5);
    cfg.rpc_timeout = std::time::Duration::from_secs(5);
    let sdk = oxio_sdk::Client::new(cfg)?;
    let f = cli.format;
    let dir_hint = || hint(&cli.directory, "directory");
    match cli.command {
        Command::Cluster(ClusterCmd::List { service_type }) => {
            let services = sdk
                .list_services(service_type.as_deref().unwrap_or(""))
                .await
                .with_context(|| hint(&cli.conscience, "conscience"))?;
            let mut rows = Rows::new(&["type", "id", "addr", "location", "score", "up", "locked"]);
            for s in services {
                let info = s.info.unwrap_or_default();
                rows.push(vec![
                    json!(info.service_type),
                    json!(info.id),
                    json!(info.addr),
                    json!(info.location),
                    json!(s.score),
                    json!(s.up),
                    json!(s.locked),
                ]);
            }
            Ok(rows.render(f))
        }
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
        Command::Container(ContainerCmd::List { account }) => {
            let containers = sdk.list_containers(&account).await.with_context(dir_hint)?;
            let mut rows = Rows::new(&["name", "cid", "meta2_group", "created_ms"]);
            for c in containers {
                rows.push(vec![
                    json!(c.name),
                    json!(c.cid),
                    json!(c.meta2_group),
                    json!(c.ctime_ms),
                ]);
            }
            Ok(rows.render(f))
        }
        Command::Object(ObjectCmd::List {
            container,
            account,
            prefix,
            limit,
        }) => {
            let mut rows = Rows::new(&["key", "size", "etag", "policy", "mtime_ms"]);
            let mut start = String::new();
            let mut count = 0usize;
            loop {
                let page = sdk
                    .list_objects(&account, &container, &prefix, "", &start, 1000)
                    .await
                    .map_err(|e| match e {
                        oxio_sdk::Error::NoSuchContainer => {
                            anyhow::anyhow!(
                                "container {container:?} does not exist in account {account:?}"
                            )
                        }
                        other => anyhow::Error::new(other).context(dir_hint()),
                    })?;
                for e in page.entries {
                    if limit > 0 && count >= limit {
                        break;
                    }
                    rows.push(vec![
                        json!(e.key),
                        json!(e.size),
                        json!(e.etag),
                        json!(e.policy),
                        json!(e.mtime_ms),
                    ]);
                    count += 1;
                }
                if !page.truncated || (limit > 0 && count >= limit) {
                    break;
                }
                start = page.next_start_after;
            }
            Ok(rows.render(f))
        }
    }
}
