//! `oxio account show` and the `oxio container` subcommands (list, set, unset,
//! create, show, delete, locate): accounts and containers with their figures, and
//! the directory groups that hold them.

use crate::grid_error::{explain, Target};
use crate::groups::{GroupView, META0_GROUP};
use crate::output::{Fields, Format, Rows};
use anyhow::{Context, Result};
use serde_json::json;

/// Container stats asked at once by `account show`.
const STATS_CONCURRENCY: usize = 16;

/// Which container: account, name, and the directory seeds.
#[derive(Clone, Copy)]
pub struct ContainerRef<'a> {
    /// Account.
    pub account: &'a str,
    /// Container (bucket) name.
    pub name: &'a str,
    /// Directory addresses (resolution starts there; named when unreachable).
    pub dirs: &'a [String],
}

impl ContainerRef<'_> {
    fn explain(&self, e: oxio_sdk::Error) -> anyhow::Error {
        explain(
            e,
            Target {
                account: self.account,
                container: Some(self.name),
                key: None,
            },
            self.dirs,
        )
    }
}

/// Fails with a clear message unless `account` exists.
async fn require_account(
    sdk: &oxio_sdk::Client,
    account: &str,
    dirs: &[String],
) -> Result<oxio_proto::v1::AccountRecord> {
    let accounts = sdk.list_accounts().await.map_err(|e| {
        explain(
            e,
            Target {
                account,
                ..Target::default()
            },
            dirs,
        )
    })?;
    accounts
        .into_iter()
        .find(|a| a.account == account)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "account {account:?} does not exist: see `oxio account list`, or create it with `oxio account create {account}`"
            )
        })
}

/// `account show`: the account with its containers, objects and bytes (the sum of
/// its containers' stats).
pub async fn account_show(
    sdk: &oxio_sdk::Client,
    account: &str,
    dirs: &[String],
    f: Format,
) -> Result<String> {
    let rec = require_account(sdk, account, dirs).await?;
    let target = Target {
        account,
        ..Target::default()
    };
    let containers = sdk
        .list_containers(account)
        .await
        .map_err(|e| explain(e, target, dirs))?;
    let (mut objects, mut bytes) = (0u64, 0u64);
    let mut tasks = tokio::task::JoinSet::new();
    let mut names = containers.iter().map(|c| c.name.clone());
    loop {
        while tasks.len() < STATS_CONCURRENCY {
            let Some(name) = names.next() else { break };
            let (sdk, account) = (sdk.clone(), account.to_string());
            tasks.spawn(async move {
                let stats = sdk.container_stats(&account, &name).await;
                (name, stats)
            });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        let (name, stats) = done.context("a container stats call failed to run")?;
        match stats {
            Ok(s) => {
                objects += s.objects;
                bytes += s.bytes;
            }
            // Deleted since it was listed.
            Err(oxio_sdk::Error::NoSuchContainer) => {}
            Err(e) => {
                let c = ContainerRef {
                    account,
                    name: &name,
                    dirs,
                };
                return Err(c.explain(e));
            }
        }
    }
    Ok(Fields::new(vec![
        ("account", json!(rec.account)),
        ("created_ms", json!(rec.ctime_ms)),
        ("containers", json!(containers.len())),
        ("objects", json!(objects)),
        ("bytes", json!(bytes)),
    ])
    .render(f))
}

/// `container create`: creates it in an existing account and shows it.
pub async fn create(sdk: &oxio_sdk::Client, c: ContainerRef<'_>, f: Format) -> Result<String> {
    require_account(sdk, c.account, c.dirs).await?;
    sdk.create_container(c.account, c.name)
        .await
        .map_err(|e| c.explain(e))?;
    show(sdk, c, f).await
}

/// `container delete`: deletes an empty container.
pub async fn delete(sdk: &oxio_sdk::Client, c: ContainerRef<'_>, f: Format) -> Result<String> {
    sdk.delete_container(c.account, c.name)
        .await
        .map_err(|e| c.explain(e))?;
    Ok(Fields::new(vec![
        ("account", json!(c.account)),
        ("name", json!(c.name)),
        ("deleted", json!(true)),
    ])
    .render(f))
}

/// Parses a `--quota` size ("500GiB", "1048576").
pub fn parse_quota(text: &str) -> Result<u64> {
    match text.parse::<oxio_common::ByteSize>() {
        Ok(size) => Ok(size.0),
        Err(e) => Err(crate::grid_error::UsageError(format!(
            "--quota {text:?}: {e} (write a size like 500GiB, 10MB or 1048576; \
             oxio container unset BUCKET --quota removes it)"
        ))
        .into()),
    }
}

/// `container show`: the meta1 record, its meta2 group with members and leader,
/// and the meta2 stats and default policy.
pub async fn show(sdk: &oxio_sdk::Client, c: ContainerRef<'_>, f: Format) -> Result<String> {
    let rec = sdk
        .get_container(c.account, c.name)
        .await
        .map_err(|e| c.explain(e))?;
    let stats = sdk
        .container_stats(c.account, c.name)
        .await
        .map_err(|e| c.explain(e))?;
    let mut view = GroupView::load(sdk, c.dirs)
        .await
        .map_err(|e| c.explain(e))?;
    let leader = view.leader(sdk, rec.meta2_group).await;
    let or_null = |s: &str| {
        if s.is_empty() {
            serde_json::Value::Null
        } else {
            json!(s)
        }
    };
    let policy = or_null(&stats.policy);
    // "" in meta2: never configured, i.e. unversioned (S3 answers no status).
    let versioning = if stats.versioning.is_empty() {
        json!("Unversioned")
    } else {
        json!(stats.versioning)
    };
    Ok(Fields::new(vec![
        ("account", json!(rec.account)),
        ("name", json!(rec.name)),
        ("cid", json!(rec.cid)),
        ("meta2_group", json!(rec.meta2_group)),
        ("meta2_members", json!(view.members(rec.meta2_group))),
        ("meta2_leader", json!(leader)),
        ("policy", policy),
        ("versioning", versioning),
        ("objects", json!(stats.objects)),
        ("noncurrent_versions", json!(stats.noncurrent_versions)),
        ("bytes", json!(stats.bytes)),
        ("quota_bytes", json!(stats.quota_bytes)),
        ("created_ms", json!(rec.ctime_ms)),
    ])
    .render(f))
}

/// `container locate`: the three hops of a resolution. meta0 maps the CID's 16-bit
/// prefix to a meta1 group, that meta1 group holds the container record naming its
/// meta2 group, which holds the objects.
pub async fn locate(sdk: &oxio_sdk::Client, c: ContainerRef<'_>, f: Format) -> Result<String> {
    let rec = sdk
        .get_container(c.account, c.name)
        .await
        .map_err(|e| c.explain(e))?;
    let prefix = oxio_common::cid_prefix(&rec.cid)
        .with_context(|| format!("the directory returned a bad CID {:?}", rec.cid))?;
    let mut view = GroupView::load(sdk, c.dirs)
        .await
        .map_err(|e| c.explain(e))?;
    let meta1 = view.meta1_for(prefix).map_err(|e| c.explain(e))?;
    let hops = [
        (
            "meta0",
            META0_GROUP,
            format!("prefix {prefix:04X} -> meta1 group {meta1}"),
        ),
        (
            "meta1",
            meta1,
            format!("container {} -> meta2 group {}", rec.cid, rec.meta2_group),
        ),
        (
            "meta2",
            rec.meta2_group,
            format!("objects of {}/{}", rec.account, rec.name),
        ),
    ];
    let mut rows = Rows::new(&["hop", "group", "maps", "members", "leader"]);
    for (hop, group, maps) in hops {
        let leader = view.leader(sdk, group).await;
        rows.push(vec![
            json!(hop),
            json!(group),
            json!(maps),
            json!(view.members(group)),
            json!(leader),
        ]);
    }
    Ok(rows.render(f))
}

/// `oxio container` subcommands.
#[derive(clap::Subcommand)]
pub enum ContainerCmd {
    /// List the containers of an account.
    List {
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
    },
    /// Set properties of a container: its default storage policy, its quota.
    #[command(group(clap::ArgGroup::new("property").required(true).multiple(true).args(["policy", "quota"])))]
    Set {
        /// Container (bucket) name.
        container: String,
        /// Default storage policy of new objects: SINGLE, TWOCOPIES, THREECOPIES or
        /// EC<k><m> (e.g. EC42, EC84).
        #[arg(long)]
        policy: Option<String>,
        /// Most bytes the container may store, e.g. 500GiB (every stored version
        /// counts; a write that would go over is refused with QuotaExceeded).
        #[arg(long)]
        quota: Option<String>,
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
    },
    /// Clear properties of a container.
    Unset {
        /// Container (bucket) name.
        container: String,
        /// Clear the default storage policy.
        #[arg(long, required_unless_present = "quota")]
        policy: bool,
        /// Remove the quota.
        #[arg(long)]
        quota: bool,
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
    },
    /// Show a container: cid, meta2 group with its members and leader, default
    /// policy, versioning, objects, bytes, quota.
    Show {
        /// Container (bucket) name.
        container: String,
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
    },
    /// Create a container in an existing account.
    Create {
        /// Container (bucket) name.
        container: String,
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
    },
    /// Delete an empty container.
    Delete {
        /// Container (bucket) name.
        container: String,
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
    },
    /// Show where the directory keeps a container: meta0 (its CID prefix and the meta1
    /// group that prefix maps to), the meta1 group (its record), the meta2 group (its
    /// objects), each with members and leader.
    Locate {
        /// Container (bucket) name.
        container: String,
        /// Account [default: the configuration file's `account`, else dev].
        #[arg(long, env = "OXIO_ACCOUNT")]
        account: Option<String>,
    },
}

/// Runs a `container` subcommand; `account` resolves an `--account` flag.
pub async fn run(
    sdk: &oxio_sdk::Client,
    cmd: ContainerCmd,
    f: Format,
    dirs: &[String],
    account: impl Fn(Option<String>) -> String,
) -> Result<String> {
    let dir_hint = || crate::grid_error::unreachable_hint(dirs, "directory");
    match cmd {
        ContainerCmd::List { account: a } => {
            let account = account(a);
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
        ContainerCmd::Set {
            container,
            policy,
            quota,
            account: a,
        } => {
            let account = account(a);
            let c = ContainerRef {
                account: &account,
                name: &container,
                dirs,
            };
            // Both are checked before either is set.
            let policy = policy
                .map(|p| crate::object_cmd::parse_policy(&p))
                .transpose()?;
            let quota = quota.map(|q| parse_quota(&q)).transpose()?;
            if let Some(p) = policy {
                sdk.set_container_policy(&account, &container, Some(p))
                    .await
                    .map_err(|e| crate::grid_error::explain(e, target(&c), dirs))?;
            }
            if let Some(q) = quota {
                sdk.set_container_quota(&account, &container, Some(q))
                    .await
                    .map_err(|e| crate::grid_error::explain(e, target(&c), dirs))?;
            }
            show(sdk, c, f).await
        }
        ContainerCmd::Unset {
            container,
            policy,
            quota,
            account: a,
        } => {
            let account = account(a);
            let c = ContainerRef {
                account: &account,
                name: &container,
                dirs,
            };
            if policy {
                sdk.set_container_policy(&account, &container, None)
                    .await
                    .map_err(|e| crate::grid_error::explain(e, target(&c), dirs))?;
            }
            if quota {
                sdk.set_container_quota(&account, &container, None)
                    .await
                    .map_err(|e| crate::grid_error::explain(e, target(&c), dirs))?;
            }
            show(sdk, c, f).await
        }
        ContainerCmd::Show {
            container,
            account: a,
        } => {
            let account = account(a);
            let c = ContainerRef {
                account: &account,
                name: &container,
                dirs,
            };
            show(sdk, c, f).await
        }
        ContainerCmd::Create {
            container,
            account: a,
        } => {
            let account = account(a);
            let c = ContainerRef {
                account: &account,
                name: &container,
                dirs,
            };
            create(sdk, c, f).await
        }
        ContainerCmd::Delete {
            container,
            account: a,
        } => {
            let account = account(a);
            let c = ContainerRef {
                account: &account,
                name: &container,
                dirs,
            };
            delete(sdk, c, f).await
        }
        ContainerCmd::Locate {
            container,
            account: a,
        } => {
            let account = account(a);
            let c = ContainerRef {
                account: &account,
                name: &container,
                dirs,
            };
            locate(sdk, c, f).await
        }
    }
}

/// What a container command was about, for [`crate::grid_error::explain`].
pub fn target<'a>(c: &ContainerRef<'a>) -> crate::grid_error::Target<'a> {
    crate::grid_error::Target {
        account: c.account,
        container: Some(c.name),
        key: None,
    }
}
