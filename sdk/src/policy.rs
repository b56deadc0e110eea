//! Which storage policy a new object gets. Precedence: the request's explicit policy,
//! then the bucket's default (kept in its meta2 record), then the size rule (objects
//! of known length under a threshold, but not inline), then the client's default.
//! Bucket defaults are cached per container for [`BUCKET_POLICY_TTL`].

use crate::client::{Client, PutOptions};
use crate::directory::unexpected;
use crate::{Error, Result};
use oxio_common::StoragePolicy;
use oxio_proto::v1::{
    ContainerStatsReply, ContainerStatsRequest, SetContainerPropertiesRequest,
    SetContainerQuotaRequest,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Code;

/// How long a bucket's default policy is trusted before meta2 is asked again. A
/// change made through this client is seen at once (its cache entry is dropped);
/// a change made elsewhere is seen within this delay.
pub const BUCKET_POLICY_TTL: Duration = Duration::from_secs(5);

/// Most bucket defaults one client caches; past it stale entries are dropped (all of
/// them if none is stale).
pub const MAX_CACHED_POLICIES: usize = 10_000;

/// Default threshold of the size rule: objects smaller than this get
/// [`DEFAULT_SMALL_POLICY`].
pub const DEFAULT_SMALL_THRESHOLD: u64 = 256 * 1024;

/// Default policy of the size rule.
pub const DEFAULT_SMALL_POLICY: StoragePolicy = StoragePolicy::Replicated { copies: 3 };

/// Where a resolved policy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicySource {
    /// The request named it.
    Request,
    /// The bucket's default.
    Bucket,
    /// The size rule.
    Size,
    /// The client's default.
    Client,
}

/// The inputs of a policy choice.
#[derive(Clone, Copy, Debug)]
pub struct PolicyInputs {
    /// The policy the request named (`PutOptions.policy`).
    pub request: Option<StoragePolicy>,
    /// The bucket's default, when it has one.
    pub bucket: Option<StoragePolicy>,
    /// The object's length, when known in advance.
    pub expected_len: Option<u64>,
    /// Objects strictly shorter are stored inline (no policy applies to their bytes).
    pub inline_max_bytes: u64,
    /// The size rule: objects of known length below the threshold get the policy.
    pub small_policy: Option<(u64, StoragePolicy)>,
    /// The client's default policy.
    pub default: StoragePolicy,
}

/// Chooses the policy of a new object and says which rule chose it.
pub fn resolve(inputs: &PolicyInputs) -> (StoragePolicy, PolicySource) {
    if let Some(p) = inputs.request {
        return (p, PolicySource::Request);
    }
    if let Some(p) = inputs.bucket {
        return (p, PolicySource::Bucket);
    }
    if let (Some((threshold, p)), Some(len)) = (inputs.small_policy, inputs.expected_len) {
        if len >= inputs.inline_max_bytes && len < threshold {
            return (p, PolicySource::Size);
        }
    }
    (inputs.default, PolicySource::Client)
}

impl Client {
    /// Sets (`Some`) or clears (`None`) a container's default storage policy and
    /// returns its updated stats. The cached default of this client is dropped.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn set_container_policy(
        &self,
        account: &str,
        name: &str,
        policy: Option<StoragePolicy>,
    ) -> Result<ContainerStatsReply> {
        let (cid, m2) = self.meta2_of(account, name).await?;
        self.inner.bucket_policies.remove(&cid);
        let reply = self
            .inner
            .directory
            .request(
                m2,
                SetContainerPropertiesRequest {
                    group: m2,
                    cid: cid.clone(),
                    policy: policy.map(|p| p.to_string()).unwrap_or_default(),
                },
                |mut c, r| async move { c.set_container_properties(r).await },
            )
            .await?;
        self.inner.bucket_policies.remove(&cid);
        match reply {
            Ok(s) => Ok(s),
            Err(s) if s.code() == Code::NotFound => {
                self.inner.containers.remove(&cid);
                Err(Error::NoSuchContainer)
            }
            Err(s) => Err(unexpected(s)),
        }
    }

    /// Sets (`Some`) or clears (`None`) a container's quota of stored bytes and
    /// returns its updated stats.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn set_container_quota(
        &self,
        account: &str,
        name: &str,
        quota_bytes: Option<u64>,
    ) -> Result<ContainerStatsReply> {
        let (cid, m2) = self.meta2_of(account, name).await?;
        let reply = self
            .inner
            .directory
            .request(
                m2,
                SetContainerQuotaRequest {
                    group: m2,
                    cid: cid.clone(),
                    quota_bytes,
                },
                |mut c, r| async move { c.set_container_quota(r).await },
            )
            .await?;
        self.inner.bucket_policies.remove(&cid);
        match reply {
            Ok(s) => Ok(s),
            Err(s) if s.code() == Code::NotFound => {
                self.inner.containers.remove(&cid);
                Err(Error::NoSuchContainer)
            }
            Err(s) => Err(unexpected(s)),
        }
    }

    /// Refuses early a write of `len` bytes that the container's quota cannot take
    /// (a stale cached figure is read again before refusing).
    pub(crate) async fn check_quota(&self, cid: &str, m2: u64, len: Option<u64>) -> Result<()> {
        let Some(len) = len else {
            return Ok(());
        };
        if !self.bucket_settings(cid, m2).await?.surely_over_quota(len) {
            return Ok(());
        }
        self.inner.bucket_policies.remove(cid);
        if self.bucket_settings(cid, m2).await?.surely_over_quota(len) {
            return Err(Error::QuotaExceeded);
        }
        Ok(())
    }

    /// The policy a new object of `cid` gets under `opts` (see [`crate::policy`]).
    pub(crate) async fn choose_policy(
        &self,
        cid: &str,
        m2: u64,
        opts: &PutOptions,
    ) -> Result<StoragePolicy> {
        let bucket = match opts.policy {
            Some(_) => None,
            None => self.bucket_policy(cid, m2).await?,
        };
        let cfg = &self.inner.config;
        let (p, source) = resolve(&PolicyInputs {
            request: opts.policy,
            bucket,
            expected_len: opts.expected_len,
            inline_max_bytes: cfg.inline_max_bytes,
            small_policy: cfg.small_policy,
            default: cfg.policy,
        });
        tracing::debug!(cid, policy = %p, ?source, "policy chosen");
        Ok(p)
    }

    /// The default policy of container `cid` (served from the cache when fresh).
    async fn bucket_policy(&self, cid: &str, m2: u64) -> Result<Option<StoragePolicy>> {
        Ok(self.bucket_settings(cid, m2).await?.policy)
    }

    /// What meta2 says of container `cid` that puts need (served from the cache when
    /// fresh): its default policy, quota and stored bytes.
    pub(crate) async fn bucket_settings(&self, cid: &str, m2: u64) -> Result<CachedPolicy> {
        if let Some(c) = self.inner.bucket_policies.get(cid) {
            if c.fresh() {
                return Ok(*c);
            }
        }
        // One reader per container refreshes; the others wait for its answer instead
        // of asking meta2 too (a burst of puts would otherwise all ask at once).
        let gate = self
            .inner
            .bucket_refresh
            .entry(cid.to_string())
            .or_default()
            .clone();
        let _turn = gate.lock().await;
        if let Some(c) = self.inner.bucket_policies.get(cid) {
            if c.fresh() {
                return Ok(*c);
            }
        }
        let reply = self
            .inner
            .directory
            .request(
                m2,
                ContainerStatsRequest {
                    group: m2,
                    cid: cid.to_string(),
                },
                |mut c, r| async move { c.container_stats(r).await },
            )
            .await?;
        let stats = match reply {
            Ok(s) => s,
            Err(s) if s.code() == Code::NotFound => {
                self.inner.containers.remove(cid);
                return Err(Error::NoSuchContainer);
            }
            Err(s) => return Err(unexpected(s)),
        };
        let entry = CachedPolicy {
            policy: parse_bucket_policy(cid, &stats.policy),
            quota_bytes: stats.quota_bytes,
            bytes: stats.bytes,
            at: Instant::now(),
        };
        let cache = &self.inner.bucket_policies;
        if cache.len() >= MAX_CACHED_POLICIES {
            cache.retain(|_, c| c.fresh());
            if cache.len() >= MAX_CACHED_POLICIES {
                cache.clear();
            }
        }
        cache.insert(cid.to_string(), entry);
        if self.inner.bucket_refresh.len() >= MAX_CACHED_POLICIES {
            // Gates of containers no longer cached (none is held but ours).
            self.inner
                .bucket_refresh
                .retain(|k, g| k == cid || Arc::strong_count(g) > 1);
        }
        Ok(entry)
    }
}

/// A cached bucket default, with the quota figures a put checks early.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CachedPolicy {
    /// The default (`None`: the bucket has none).
    pub policy: Option<StoragePolicy>,
    /// The container's quota (`None`: none).
    pub quota_bytes: Option<u64>,
    /// Bytes stored when it was read.
    pub bytes: u64,
    /// When it was read.
    pub at: Instant,
}

impl CachedPolicy {
    /// Whether the entry may still be used.
    pub fn fresh(&self) -> bool {
        self.at.elapsed() < BUCKET_POLICY_TTL
    }

    /// Whether a write of `len` bytes is sure to exceed the quota, judged from the
    /// cached figures (meta2 checks every write exactly; this only spares uploading
    /// the bytes of a write it would refuse).
    pub fn surely_over_quota(&self, len: u64) -> bool {
        match self.quota_bytes {
            Some(q) => len > 0 && self.bytes.saturating_add(len) > q,
            None => false,
        }
    }
}

/// Parses a bucket default as meta2 stores it ("" = none). An unreadable name (not
/// written by this version) is ignored with a warning rather than failing every put.
pub(crate) fn parse_bucket_policy(cid: &str, name: &str) -> Option<StoragePolicy> {
    if name.is_empty() {
        return None;
    }
    match name.parse() {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(cid, policy = name, error = %e, "ignoring unreadable bucket policy");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC42: StoragePolicy = StoragePolicy::ErasureCoded { k: 4, m: 2 };
    const EC84: StoragePolicy = StoragePolicy::ErasureCoded { k: 8, m: 4 };
    const TWO: StoragePolicy = StoragePolicy::Replicated { copies: 2 };
    const THREE: StoragePolicy = StoragePolicy::Replicated { copies: 3 };

    fn inputs(
        request: Option<StoragePolicy>,
        bucket: Option<StoragePolicy>,
        len: Option<u64>,
    ) -> PolicyInputs {
        PolicyInputs {
            request,
            bucket,
            expected_len: len,
            inline_max_bytes: 32 * 1024,
            small_policy: Some((DEFAULT_SMALL_THRESHOLD, DEFAULT_SMALL_POLICY)),
            default: EC42,
        }
    }

    #[test]
    fn precedence_table() {
        use PolicySource::*;
        let small = Some(100 * 1024);
        let large = Some(1024 * 1024);
        let rows: &[(PolicyInputs, StoragePolicy, PolicySource)] = &[
            // The request wins over everything.
            (inputs(Some(TWO), Some(EC84), small), TWO, Request),
            (inputs(Some(EC84), None, small), EC84, Request),
            // Then the bucket, whatever the size.
            (inputs(None, Some(EC84), small), EC84, Bucket),
            (inputs(None, Some(TWO), large), TWO, Bucket),
            (inputs(None, Some(EC42), None), EC42, Bucket),
            // Then the size rule, for known small lengths only.
            (inputs(None, None, small), THREE, Size),
            (inputs(None, None, Some(32 * 1024)), THREE, Size),
            (
                inputs(None, None, Some(DEFAULT_SMALL_THRESHOLD - 1)),
                THREE,
                Size,
            ),
            // At or above the threshold, unknown, or inline: the client's default.
            (
                inputs(None, None, Some(DEFAULT_SMALL_THRESHOLD)),
                EC42,
                Client,
            ),
            (inputs(None, None, large), EC42, Client),
            (inputs(None, None, None), EC42, Client),
            (inputs(None, None, Some(32 * 1024 - 1)), EC42, Client),
        ];
        for (i, (inp, policy, source)) in rows.iter().enumerate() {
            assert_eq!(resolve(inp), (*policy, *source), "row {i}: {inp:?}");
        }
    }

    #[test]
    fn size_rule_can_be_turned_off() {
        let mut inp = inputs(None, None, Some(100 * 1024));
        inp.small_policy = None;
        assert_eq!(resolve(&inp), (EC42, PolicySource::Client));
    }

    #[test]
    fn bucket_policy_parsing() {
        assert_eq!(parse_bucket_policy("C", ""), None);
        assert_eq!(parse_bucket_policy("C", "EC84"), Some(EC84));
        assert_eq!(parse_bucket_policy("C", "BOGUS"), None);
    }
}
