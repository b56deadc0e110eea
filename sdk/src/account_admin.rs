//! Deleting access keys and accounts (meta1).
//!
//! An access key is deleted by one Raft command in the meta1 group of its name,
//! which removes its record and its `account -> key` index entry together. Front ends
//! that cache secrets (the S3 gateway) keep accepting a deleted key until their cache
//! entry expires.
//!
//! An account is deleted only when it holds no container and (unless `force`) no
//! access key: containers must be emptied and deleted by their owner first, `force`
//! deletes the keys. The account record goes with one Raft command in the group of
//! the account name; its containers and keys live in other groups, so the emptiness
//! check is made just before and a container created concurrently by a key of the
//! account is not seen.

use crate::directory::unexpected;
use crate::{Client, Error, Result};
use oxio_common::name_prefix;
use oxio_proto::v1::{
    AccessKeyRecord, AccountRecord, DeleteAccessKeyRequest, DeleteAccountRequest,
};
use tonic::Code;
use tracing::Instrument;

/// Longest account name or access key accepted, in bytes (the directory's bound).
pub const MAX_NAME_BYTES: usize = 1024;

/// Most names listed in an [`AccountDeletion::NotEmpty`] answer (the counts are exact).
pub const MAX_NAMES_SHOWN: usize = 20;

/// What [`Client::delete_account`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum AccountDeletion {
    /// The account record is gone, with the access keys `force` deleted.
    Deleted {
        /// The removed record.
        record: AccountRecord,
        /// Access keys deleted with it (empty without `force`).
        keys_deleted: Vec<String>,
    },
    /// No such account.
    NoSuchAccount,
    /// The account still holds containers, or access keys without `force`; nothing
    /// was deleted.
    NotEmpty {
        /// Containers (at most [`MAX_NAMES_SHOWN`] names).
        containers: Vec<String>,
        /// Number of containers.
        container_count: usize,
        /// Access keys left (at most [`MAX_NAMES_SHOWN`]; empty with `force`).
        access_keys: Vec<String>,
        /// Number of access keys left.
        access_key_count: usize,
    },
}

fn check(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "{what} must be 1 to {MAX_NAME_BYTES} printable bytes"
        )));
    }
    Ok(())
}

impl Client {
    async fn meta1_group_of(&self, name: &str) -> Result<u64> {
        self.inner
            .directory
            .meta0()
            .await?
            .meta1_for(name_prefix(name))
    }

    /// Deletes an access key (its record and its account index entry, one Raft
    /// command) and answers the removed record; [`Error::NoSuchAccessKey`] when it
    /// is unknown.
    pub async fn delete_access_key(&self, access_key: &str) -> Result<AccessKeyRecord> {
        check("access key", access_key)?;
        let group = self.meta1_group_of(access_key).await?;
        let span = tracing::info_span!("delete_access_key", group);
        let reply = self
            .inner
            .directory
            .request(
                group,
                DeleteAccessKeyRequest {
                    group,
                    access_key: access_key.to_string(),
                },
                |mut c, r| async move { c.delete_access_key(r).await },
            )
            .instrument(span)
            .await?;
        match reply {
            Ok(rec) => Ok(rec),
            Err(s) if s.code() == Code::NotFound => Err(Error::NoSuchAccessKey),
            Err(s) => Err(unexpected(s)),
        }
    }

    /// Deletes the record of `account` (one Raft command); `None` when it is unknown.
    /// Checks nothing else: see [`Client::delete_account`].
    pub async fn delete_account_record(&self, account: &str) -> Result<Option<AccountRecord>> {
        check("account", account)?;
        let group = self.meta1_group_of(account).await?;
        let reply = self
            .inner
            .directory
            .request(
                group,
                DeleteAccountRequest {
                    group,
                    account: account.to_string(),
                },
                |mut c, r| async move { c.delete_account(r).await },
            )
            .await?;
        match reply {
            Ok(rec) => Ok(Some(rec)),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(unexpected(s)),
        }
    }

    /// Deletes `account` when it holds no container and no access key; with `force`
    /// its access keys are deleted first (containers never are).
    pub async fn delete_account(&self, account: &str, force: bool) -> Result<AccountDeletion> {
        check("account", account)?;
        let span = tracing::info_span!("delete_account", %account, force);
        self.delete_account_inner(account, force)
            .instrument(span)
            .await
    }

    async fn delete_account_inner(&self, account: &str, force: bool) -> Result<AccountDeletion> {
        if !self
            .list_accounts()
            .await?
            .iter()
            .any(|a| a.account == account)
        {
            return Ok(AccountDeletion::NoSuchAccount);
        }
        let containers = self.list_containers(account).await?;
        let keys = self.list_access_keys(account).await?;
        if !containers.is_empty() || (!keys.is_empty() && !force) {
            let keys_left: Vec<&AccessKeyRecord> =
                if force { vec![] } else { keys.iter().collect() };
            return Ok(AccountDeletion::NotEmpty {
                container_count: containers.len(),
                containers: containers
                    .iter()
                    .take(MAX_NAMES_SHOWN)
                    .map(|c| c.name.clone())
                    .collect(),
                access_key_count: keys_left.len(),
                access_keys: keys_left
                    .iter()
                    .take(MAX_NAMES_SHOWN)
                    .map(|k| k.access_key.clone())
                    .collect(),
            });
        }
        let mut keys_deleted = Vec::with_capacity(keys.len());
        for k in &keys {
            match self.delete_access_key(&k.access_key).await {
                // Gone already (deleted concurrently): nothing left to do.
                Ok(_) | Err(Error::NoSuchAccessKey) => keys_deleted.push(k.access_key.clone()),
                Err(e) => return Err(e),
            }
        }
        match self.delete_account_record(account).await? {
            Some(record) => Ok(AccountDeletion::Deleted {
                record,
                keys_deleted,
            }),
            None => Ok(AccountDeletion::NoSuchAccount),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientConfig;

    #[tokio::test]
    async fn names_are_checked_before_any_rpc() {
        let c = Client::new(ClientConfig::new(
            vec!["127.0.0.1:1".into()],
            vec!["127.0.0.1:1".into()],
        ))
        .unwrap();
        for r in [
            c.delete_access_key("").await.map(|_| ()),
            c.delete_access_key(&"k".repeat(2000)).await.map(|_| ()),
            c.delete_account("a\nb", true).await.map(|_| ()),
            c.delete_account_record("").await.map(|_| ()),
        ] {
            assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
        }
    }
}
