//! Unsigned requests. An anonymous request (no `Authorization` header, no presigned
//! `X-Amz-*` query) may only read: GetObject, HeadObject, ListObjects and
//! ListObjectsV2, and only in a bucket whose ACL is `public-read` ([`crate::acl`]).
//! Every other anonymous request, and any read of a bucket that is not public (or
//! does not exist), answers 403 `AccessDenied`.
//!
//! An unsigned request names no account, and bucket names are per account: the
//! owner is found by asking every account for a bucket of that name (at most
//! [`MAX_SCANNED_ACCOUNTS`], [`SCAN_CONCURRENCY`] lookups at once); the accounts
//! holding one are cached for [`OWNERS_TTL`] (dropped at once when this gateway
//! creates or deletes a bucket of that name). The ACL itself is read from the
//! container record on every request, so making a bucket private again takes
//! effect at once. When several accounts hold a bucket of that name, the first (by
//! account name) that made it public serves it.

use crate::acl::{stored, CannedAcl};
use dashmap::DashMap;
use futures::StreamExt;
use oxio_sdk::Client;
use s3s::{s3_error, S3Error, S3Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The operations an unsigned request may ask for (the bucket's ACL decides).
pub const ANONYMOUS_OPERATIONS: &[&str] =
    &["GetObject", "HeadObject", "ListObjects", "ListObjectsV2"];

/// How long the owners of a bucket name are trusted without asking again.
pub const OWNERS_TTL: Duration = Duration::from_secs(5);

/// Most accounts one owner search asks.
pub const MAX_SCANNED_ACCOUNTS: usize = 10_000;

/// Owner lookups in flight at once during a search.
pub const SCAN_CONCURRENCY: usize = 16;

/// Most bucket names whose owners are cached.
const CACHE_MAX: usize = 100_000;

/// Whether an unsigned request may ask for operation `op` at all.
pub fn allowed_operation(op: &str) -> bool {
    ANONYMOUS_OPERATIONS.contains(&op)
}

fn denied() -> S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

/// Finds the account that serves a public bucket to unsigned requests.
#[derive(Clone)]
pub struct PublicBuckets {
    sdk: Client,
    owners: Arc<DashMap<String, (Vec<String>, Instant)>>,
}

impl PublicBuckets {
    /// Owner search over the grid's directory.
    pub fn new(sdk: Client) -> Self {
        PublicBuckets {
            sdk,
            owners: Arc::new(DashMap::new()),
        }
    }

    /// Forgets what is known of the owners of `bucket` (a bucket of that name was
    /// created or deleted).
    pub fn forget(&self, bucket: &str) {
        self.owners.remove(bucket);
    }

    /// The account whose public-read bucket `bucket` an unsigned request reads;
    /// `AccessDenied` when there is none.
    pub async fn owner_of(&self, bucket: &str) -> S3Result<String> {
        for account in self.owners(bucket).await? {
            match stored(&self.sdk, &account, bucket).await {
                Ok(CannedAcl::PublicRead) => return Ok(account),
                Ok(CannedAcl::Private) => {}
                // Deleted since the search: the cached list is stale.
                Err(e) if *e.code() == s3s::S3ErrorCode::NoSuchBucket => self.forget(bucket),
                Err(e) => return Err(e),
            }
        }
        tracing::debug!(bucket, "anonymous request refused: no public bucket");
        Err(denied())
    }

    /// The accounts holding a bucket named `bucket`, sorted by name.
    async fn owners(&self, bucket: &str) -> S3Result<Vec<String>> {
        if let Some(e) = self.owners.get(bucket) {
            if e.1.elapsed() < OWNERS_TTL {
                return Ok(e.0.clone());
            }
        }
        let accounts = self
            .sdk
            .list_accounts()
            .await
            .map_err(crate::error::s3_error)?;
        if accounts.len() > MAX_SCANNED_ACCOUNTS {
            tracing::warn!(
                accounts = accounts.len(),
                max = MAX_SCANNED_ACCOUNTS,
                "too many accounts to find the owner of a public bucket"
            );
        }
        let found: Vec<Option<String>> = futures::stream::iter(
            accounts
                .into_iter()
                .take(MAX_SCANNED_ACCOUNTS)
                .map(|a| a.account),
        )
        .map(|account| async move {
            match self.sdk.get_container(&account, bucket).await {
                Ok(_) => Ok(Some(account)),
                Err(oxio_sdk::Error::NoSuchContainer) => Ok(None),
                Err(e) => Err(crate::error::s3_error(e)),
            }
        })
        .buffered(SCAN_CONCURRENCY)
        .collect::<Vec<S3Result<Option<String>>>>()
        .await
        .into_iter()
        .collect::<S3Result<_>>()?;
        let owners: Vec<String> = found.into_iter().flatten().collect();
        if self.owners.len() >= CACHE_MAX {
            self.owners.retain(|_, e| e.1.elapsed() < OWNERS_TTL);
            if self.owners.len() >= CACHE_MAX {
                self.owners.clear();
            }
        }
        self.owners
            .insert(bucket.to_string(), (owners.clone(), Instant::now()));
        Ok(owners)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_may_be_anonymous() {
        for op in ["GetObject", "HeadObject", "ListObjects", "ListObjectsV2"] {
            assert!(allowed_operation(op), "{op}");
        }
        for op in [
            "PutObject",
            "DeleteObject",
            "DeleteObjects",
            "ListBuckets",
            "GetBucketAcl",
            "PutBucketAcl",
            "CreateMultipartUpload",
            "CopyObject",
        ] {
            assert!(!allowed_operation(op), "{op}");
        }
    }
}
