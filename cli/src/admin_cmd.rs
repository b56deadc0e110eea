//! Bodies of the `oxio` commands that delete grid-wide records: `key delete`,
//! `account delete` and `cluster deregister`.

use crate::output::{Format, Rows};
use anyhow::{bail, Result};
use oxio_sdk::account_admin::AccountDeletion;
use serde_json::json;

/// An sdk error for the user: a grid that cannot be reached gets the hint naming the
/// addresses tried (`what` at `addrs`, none when `addrs` is empty).
fn grid_error(e: oxio_sdk::Error, addrs: &[String], what: &str) -> anyhow::Error {
    if matches!(e, oxio_sdk::Error::Unavailable(_)) && !addrs.is_empty() {
        anyhow::Error::new(e).context(crate::grid_error::unreachable_hint(addrs, what))
    } else {
        e.into()
    }
}

/// What `oxio cluster deregister --help` says about services still running.
pub const DEREGISTER_HELP: &str =
    "Forget a service that is gone: removes it from the registry of every \
configured conscience, with its score lock and its \"known\" mark (with lock_new_services, it is \
locked again as new if it ever comes back). A service that is still running re-registers at its \
next heartbeat (every second): stop it first.";

/// `oxio key delete ACCESS_KEY`: deletes the key; the S3 gateway stops accepting it
/// once its secret cache entry expires (see `docs/ARCHITECTURE.md`).
pub async fn key_delete(
    sdk: &oxio_sdk::Client,
    access_key: &str,
    f: Format,
    dirs: &[String],
) -> Result<String> {
    let rec = match sdk.delete_access_key(access_key).await {
        Ok(rec) => rec,
        Err(oxio_sdk::Error::NoSuchAccessKey) => {
            bail!("no access key {access_key:?}; see `oxio key list ACCOUNT`")
        }
        Err(e) => return Err(grid_error(e, dirs, "directory")),
    };
    let mut rows = Rows::new(&["access_key", "account", "deleted"]);
    rows.push(vec![json!(rec.access_key), json!(rec.account), json!(true)]);
    Ok(rows.render(f))
}

/// The message of an account that cannot be deleted yet.
pub fn not_empty_message(
    account: &str,
    containers: &[String],
    container_count: usize,
    access_keys: &[String],
    access_key_count: usize,
) -> String {
    fn names(shown: &[String], count: usize) -> String {
        let mut s = shown.join(", ");
        if count > shown.len() {
            s.push_str(&format!(" and {} more", count - shown.len()));
        }
        s
    }
    let mut parts = Vec::new();
    if container_count > 0 {
        parts.push(format!(
            "{container_count} container(s) ({}): delete them first with `oxio container delete`",
            names(containers, container_count)
        ));
    }
    if access_key_count > 0 {
        parts.push(format!(
            "{access_key_count} access key(s) ({}): delete them with `oxio key delete` or pass --force",
            names(access_keys, access_key_count)
        ));
    }
    format!(
        "account {account:?} is not empty, nothing deleted: it still has {}",
        parts.join("; ")
    )
}

/// `oxio account delete NAME [--force]`.
pub async fn account_delete(
    sdk: &oxio_sdk::Client,
    account: &str,
    force: bool,
    f: Format,
    dirs: &[String],
) -> Result<String> {
    let deletion = sdk
        .delete_account(account, force)
        .await
        .map_err(|e| grid_error(e, dirs, "directory"))?;
    match deletion {
        AccountDeletion::Deleted {
            record,
            keys_deleted,
        } => {
            let mut rows = Rows::new(&["account", "created_ms", "keys_deleted"]);
            rows.push(vec![
                json!(record.account),
                json!(record.ctime_ms),
                json!(keys_deleted),
            ]);
            Ok(rows.render(f))
        }
        AccountDeletion::NoSuchAccount => {
            bail!("no account {account:?}; see `oxio account list`")
        }
        AccountDeletion::NotEmpty {
            containers,
            container_count,
            access_keys,
            access_key_count,
        } => bail!(
            "{}",
            not_empty_message(
                account,
                &containers,
                container_count,
                &access_keys,
                access_key_count
            )
        ),
    }
}

/// `oxio cluster deregister TYPE ID`: one row per conscience; an error when none of
/// them knew the service.
pub async fn cluster_deregister(
    sdk: &oxio_sdk::Client,
    service_type: &str,
    id: &str,
    f: Format,
    conscience: &[String],
) -> Result<String> {
    let replies = sdk
        .deregister_service(service_type, id)
        .await
        .map_err(|e| grid_error(e, conscience, "conscience"))?;
    if !replies.iter().any(|r| r.found()) {
        bail!("no service {service_type}/{id} is known to the conscience; see `oxio cluster list`");
    }
    let mut rows = Rows::new(&[
        "conscience",
        "type",
        "id",
        "registered",
        "lock_state_changed",
    ]);
    for r in &replies {
        rows.push(vec![
            json!(r.conscience),
            json!(service_type),
            json!(id),
            json!(r.registered),
            json!(r.lock_state_changed),
        ]);
    }
    Ok(rows.render(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_empty_names_what_is_left() {
        let m = not_empty_message("acme", &["b1".into(), "b2".into()], 3, &[], 0);
        assert!(m.contains("\"acme\""), "{m}");
        assert!(m.contains("3 container(s) (b1, b2 and 1 more)"), "{m}");
        assert!(!m.contains("access key"), "{m}");
        let m = not_empty_message("acme", &[], 0, &["AK1".into()], 1);
        assert!(
            m.contains("1 access key(s) (AK1)") && m.contains("--force"),
            "{m}"
        );
        assert!(!m.contains("container("), "{m}");
    }
}
