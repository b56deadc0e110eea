//! The high-level client: accounts, access keys, containers and objects.

use crate::conscience::ConscienceHandle;
use crate::directory::{unexpected, DirectoryResolver};
use crate::policy::CachedPolicy;
use crate::rawx::RawxClient;
use crate::{get, put, Error, Result};
use bytes::Bytes;
use dashmap::DashMap;
use futures::Stream;
use oxio_common::{cid_prefix, container_id, name_prefix, StoragePolicy};
use oxio_proto::v1::*;
use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;

#[path = "versions.rs"]
pub mod versions;

pub use versions::{DeleteOutcome, VersionQuery};

/// Where the grid is and how objects are stored.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Conscience addresses.
    pub conscience: Vec<String>,
    /// Directory node addresses to start resolution from.
    pub directory: Vec<String>,
    /// Objects strictly smaller are stored inline in meta2.
    pub inline_max_bytes: u64,
    /// Data bytes per erasure-coded stripe.
    pub stripe_bytes: usize,
    /// Data bytes per metachunk.
    pub metachunk_bytes: u64,
    /// Policy for chunked objects when neither the request, the bucket nor the size
    /// rule chooses one.
    pub policy: StoragePolicy,
    /// Size rule: objects whose length is known and below the threshold (but not
    /// inline) get this policy unless the request or the bucket names one.
    pub small_policy: Option<(u64, StoragePolicy)>,
    /// Deadline of one RPC.
    pub rpc_timeout: Duration,
    /// How long transient directory failures (elections, restarts) are retried.
    pub retry_deadline: Duration,
    /// Longest wait for one step of a chunk transfer: a rawx answering a read, one
    /// shard arriving or being taken, a write's final answer. A read past it decodes
    /// around that fragment (EC) or moves to another copy; a write past it goes on
    /// without that fragment while the write quorum holds (the slot is recorded as
    /// missing, for `oxio volume repair-missing`).
    pub fragment_deadline: Duration,
    /// Folder of this host's local-read sockets: chunks of a rawx whose socket is
    /// there are read from their files, not over TCP ([`crate::local`]). `None`:
    /// every chunk read goes over HTTP.
    pub local_read_dir: Option<std::path::PathBuf>,
    /// With a `local_read_dir`, new chunks of a rawx whose local-write socket is there
    /// are written into their files here, not sent over TCP ([`crate::local_write`]).
    pub local_writes: bool,
    /// Counters of notable events (degraded reads), shared by every clone of this
    /// config and of the client built from it; front ends export them as metrics.
    pub counters: Arc<SdkCounters>,
}

/// Counters of notable sdk events, for the metrics of the front end that owns the
/// client.
#[derive(Debug, Default)]
pub struct SdkCounters {
    degraded_reads: std::sync::atomic::AtomicU64,
    local_reads: std::sync::atomic::AtomicU64,
    local_fallbacks: std::sync::atomic::AtomicU64,
    local_writes: std::sync::atomic::AtomicU64,
}

impl SdkCounters {
    /// Reads of an erasure-coded metachunk that had to decode around a missing,
    /// failed or corrupt data fragment (each metachunk read counted at most once).
    pub fn degraded_reads(&self) -> u64 {
        self.degraded_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Chunk reads served from the chunk file through a local-read socket.
    pub fn local_reads(&self) -> u64 {
        self.local_reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Local reads that failed part-way (I/O error, checksum mismatch) and went on
    /// over HTTP.
    pub fn local_fallbacks(&self) -> u64 {
        self.local_fallbacks
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Chunks written into their file through a local-write socket.
    pub fn local_writes(&self) -> u64 {
        self.local_writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn local_write(&self) {
        self.local_writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn local_read(&self) {
        self.local_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn local_fallback(&self) {
        self.local_fallbacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts one degraded read (called by the sdk's reader).
    pub fn degraded_read(&self) {
        self.degraded_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ClientConfig {
    /// Defaults for a grid whose conscience and directory are at these addresses.
    pub fn new(conscience: Vec<String>, directory: Vec<String>) -> Self {
        ClientConfig {
            conscience,
            directory,
            inline_max_bytes: oxio_common::DEFAULT_INLINE_MAX_BYTES,
            stripe_bytes: oxio_common::DEFAULT_STRIPE_BYTES,
            metachunk_bytes: oxio_common::DEFAULT_METACHUNK_BYTES,
            policy: StoragePolicy::DEFAULT,
            small_policy: Some((
                crate::policy::DEFAULT_SMALL_THRESHOLD,
                crate::policy::DEFAULT_SMALL_POLICY,
            )),
            rpc_timeout: Duration::from_secs(10),
            retry_deadline: Duration::from_secs(15),
            fragment_deadline: DEFAULT_FRAGMENT_DEADLINE,
            local_read_dir: None,
            local_writes: true,
            counters: Arc::default(),
        }
    }
}

/// Default [`ClientConfig::fragment_deadline`].
pub const DEFAULT_FRAGMENT_DEADLINE: Duration = Duration::from_secs(5);

/// Shared state of a [`Client`].
pub struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) directory: DirectoryResolver,
    pub(crate) conscience: ConscienceHandle,
    pub(crate) rawx: RawxClient,
    pub(crate) containers: DashMap<String, u64>,
    /// Bucket default policies by CID, read from meta2 (see [`crate::policy`]).
    pub(crate) bucket_policies: DashMap<String, CachedPolicy>,
    /// Per container: held while one reader refreshes its cached settings.
    pub(crate) bucket_refresh: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl Inner {
    /// Deletes chunks that no meta2 record ever named (an upload refused, failed or
    /// found corrupt before its commit), in the background. Failures leave orphans
    /// for garbage collection. Chunks a commit made garbage are meta2's to delete:
    /// it queues them durably in the same Raft entry.
    pub(crate) fn delete_chunks_later(&self, chunks: Vec<ChunkRecord>) {
        if chunks.is_empty() {
            return;
        }
        let rawx = self.rawx.clone();
        tokio::spawn(async move {
            for c in chunks {
                if let Err(e) = rawx.delete(&c.addr, &c.chunk_id).await {
                    tracing::warn!(chunk = %c.chunk_id, rawx = %c.rawx_id, error = %e, "chunk delete failed, left for garbage collection");
                }
            }
        });
    }
}

/// An object as listed or stat'ed.
#[derive(Clone, Debug)]
pub struct ObjectInfo {
    /// Key.
    pub key: String,
    /// Stored header (no inline bytes for listings).
    pub header: ContentHeader,
}

/// Options of a put.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Length the client announced, checked against what arrives.
    pub expected_len: Option<u64>,
    /// MD5 the client announced (Content-MD5), checked after upload.
    pub expected_md5: Option<[u8; 16]>,
    /// Content-Type.
    pub content_type: String,
    /// User metadata.
    pub user_meta: HashMap<String, String>,
    /// Other stored headers.
    pub system_meta: HashMap<String, String>,
    /// Policy override.
    pub policy: Option<StoragePolicy>,
    /// Tag set stored with the object.
    pub tags: Vec<Tag>,
    /// What the key must hold for the put to happen, checked by the directory in the
    /// same command that stores the object (`None`: unconditional).
    pub condition: Option<PutCondition>,
    /// Stored headers known only once the whole body has been read (a checksum sent
    /// in a trailer): filled by the body's producer, merged into `system_meta` right
    /// before the commit.
    pub body_meta: Option<BodyMeta>,
}

/// Shared slot for [`PutOptions::body_meta`].
pub type BodyMeta = Arc<std::sync::Mutex<HashMap<String, String>>>;

/// One page of a listing.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    /// Objects.
    pub entries: Vec<ListEntry>,
    /// Common prefixes (with a delimiter).
    pub common_prefixes: Vec<String>,
    /// More follow.
    pub truncated: bool,
    /// Where the next page starts (exclusive).
    pub next_start_after: String,
}

/// Client of one grid. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl Client {
    /// Connects lazily to the grid described by `config`.
    pub fn new(config: ClientConfig) -> Result<Self> {
        let directory = DirectoryResolver::new(
            config.directory.clone(),
            config.rpc_timeout,
            config.retry_deadline,
        );
        let conscience = ConscienceHandle::new(&config.conscience, config.rpc_timeout)?;
        let mut rawx = RawxClient::new(Duration::from_secs(2))?;
        if let Some(dir) = &config.local_read_dir {
            rawx = rawx.with_local_reads(dir.clone(), config.counters.clone());
            rawx = rawx.with_local_writes(config.local_writes);
        }
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                directory,
                conscience,
                rawx,
                containers: DashMap::new(),
                bucket_policies: DashMap::new(),
                bucket_refresh: DashMap::new(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    async fn meta1_of_name(&self, name: &str) -> Result<u64> {
        self.inner
            .directory
            .meta0()
            .await?
            .meta1_for(name_prefix(name))
    }

    async fn meta1_groups(&self) -> Result<Vec<u64>> {
        Ok(self
            .inner
            .directory
            .meta0()
            .await?
            .groups_of(GroupKind::Meta1))
    }

    // ------------------------------------------------------------------ accounts

    /// Creates an account (idempotent).
    pub async fn create_account(&self, account: &str) -> Result<AccountRecord> {
        validate_name("account", account)?;
        let group = self.meta1_of_name(account).await?;
        let account = account.to_string();
        self.inner
            .directory
            .request(
                group,
                CreateAccountRequest {
                    group,
                    account: account.clone(),
                },
                |mut c, r| async move { c.create_account(r).await },
            )
            .await?
            .map_err(unexpected)
    }

    /// Every account.
    pub async fn list_accounts(&self) -> Result<Vec<AccountRecord>> {
        let mut out = Vec::new();
        for group in self.meta1_groups().await? {
            let reply = self
                .inner
                .directory
                .request(
                    group,
                    ListAccountsRequest { group },
                    |mut c, r| async move { c.list_accounts(r).await },
                )
                .await?
                .map_err(unexpected)?;
            out.extend(reply.accounts);
        }
        out.sort_by(|a, b| a.account.cmp(&b.account));
        Ok(out)
    }

    /// Stores an access key of an account.
    pub async fn put_access_key(&self, key: AccessKeyRecord) -> Result<AccessKeyRecord> {
        validate_name("access key", &key.access_key)?;
        let group = self.meta1_of_name(&key.access_key).await?;
        self.inner
            .directory
            .request(
                group,
                PutAccessKeyRequest {
                    group,
                    key: Some(key.clone()),
                },
                |mut c, r| async move { c.put_access_key(r).await },
            )
            .await?
            .map_err(unexpected)
    }

    /// Looks up an access key.
    pub async fn get_access_key(&self, access_key: &str) -> Result<AccessKeyRecord> {
        let group = self.meta1_of_name(access_key).await?;
        let access_key = access_key.to_string();
        match self
            .inner
            .directory
            .request(
                group,
                GetAccessKeyRequest {
                    group,
                    access_key: access_key.clone(),
                },
                |mut c, r| async move { c.get_access_key(r).await },
            )
            .await?
        {
            Ok(k) => Ok(k),
            Err(s) if s.code() == Code::NotFound => Err(Error::NoSuchAccessKey),
            Err(s) => Err(unexpected(s)),
        }
    }

    /// Access keys of an account.
    pub async fn list_access_keys(&self, account: &str) -> Result<Vec<AccessKeyRecord>> {
        let mut out = Vec::new();
        for group in self.meta1_groups().await? {
            let account = account.to_string();
            let reply = self
                .inner
                .directory
                .request(
                    group,
                    ListAccessKeysRequest {
                        group,
                        account: account.clone(),
                    },
                    |mut c, r| async move { c.list_access_keys(r).await },
                )
                .await?
                .map_err(unexpected)?;
            out.extend(reply.keys);
        }
        out.sort_by(|a, b| a.access_key.cmp(&b.access_key));
        Ok(out)
    }

    // ---------------------------------------------------------------- containers

    async fn meta1_of_cid(&self, cid: &str) -> Result<u64> {
        let prefix = cid_prefix(cid).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.inner.directory.meta0().await?.meta1_for(prefix)
    }

    /// The container record (meta1).
    pub async fn get_container(&self, account: &str, name: &str) -> Result<ContainerRecord> {
        let cid = container_id(account, name);
        let group = self.meta1_of_cid(&cid).await?;
        let rec = match self
            .inner
            .directory
            .request(
                group,
                GetContainerRequest {
                    group,
                    cid: cid.clone(),
                },
                |mut c, r| async move { c.get_container(r).await },
            )
            .await?
        {
            Ok(rec) => rec,
            Err(s) if s.code() == Code::NotFound => {
                self.inner.containers.remove(&cid);
                return Err(Error::NoSuchContainer);
            }
            Err(s) => return Err(unexpected(s)),
        };
        self.inner.containers.insert(cid, rec.meta2_group);
        Ok(rec)
    }

    /// The meta2 group of a container, cached.
    pub(crate) async fn meta2_of(&self, account: &str, name: &str) -> Result<(String, u64)> {
        let cid = container_id(account, name);
        if let Some(g) = self.inner.containers.get(&cid) {
            return Ok((cid, *g));
        }
        let rec = self.get_container(account, name).await?;
        Ok((cid, rec.meta2_group))
    }

    /// Creates a container. `Error::ContainerExists` if it exists.
    pub async fn create_container(&self, account: &str, name: &str) -> Result<ContainerRecord> {
        validate_name("container", name)?;
        let cid = container_id(account, name);
        let group = self.meta1_of_cid(&cid).await?;
        let (acc, nm) = (account.to_string(), name.to_string());
        let meta2_group = self.choose_meta2_group().await.unwrap_or(0);
        let created = self
            .inner
            .directory
            .request(
                group,
                CreateContainerRequest {
                    group,
                    account: acc.clone(),
                    name: nm.clone(),
                    meta2_group,
                },
                |mut c, r| async move { c.create_container(r).await },
            )
            .await?;
        let (rec, existed) = match created {
            Ok(rec) => (rec, false),
            Err(s) if s.code() == Code::AlreadyExists => {
                (self.get_container(account, name).await?, true)
            }
            Err(s) => return Err(unexpected(s)),
        };
        // Make sure meta2 knows it (idempotent; also repairs a creation cut short).
        let m2 = rec.meta2_group;
        self.inner
            .directory
            .request(
                m2,
                InitContainerRequest {
                    group: m2,
                    cid: cid.clone(),
                    account: acc.clone(),
                    name: nm.clone(),
                },
                |mut c, r| async move { c.init_container(r).await },
            )
            .await?
            .map_err(unexpected)?;
        self.inner.containers.insert(cid, m2);
        if existed {
            return Err(Error::ContainerExists);
        }
        Ok(rec)
    }

    /// Deletes an empty container. `Error::ContainerNotEmpty` if it holds objects.
    pub async fn delete_container(&self, account: &str, name: &str) -> Result<()> {
        let (cid, m2) = self.meta2_of(account, name).await?;
        let dropped = self
            .inner
            .directory
            .request(
                m2,
                DropContainerRequest {
                    group: m2,
                    cid: cid.clone(),
                },
                |mut c, r| async move { c.drop_container(r).await },
            )
            .await?;
        match dropped {
            Ok(_) => {}
            Err(s) if s.code() == Code::FailedPrecondition => return Err(Error::ContainerNotEmpty),
            // Already gone from meta2 (a previous delete cut short): finish in meta1.
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(unexpected(s)),
        }
        let group = self.meta1_of_cid(&cid).await?;
        self.inner
            .directory
            .request(
                group,
                DeleteContainerRequest {
                    group,
                    cid: cid.clone(),
                },
                |mut c, r| async move { c.delete_container(r).await },
            )
            .await?
            .map_err(unexpected)?;
        self.inner.containers.remove(&cid);
        self.inner.bucket_policies.remove(&cid);
        Ok(())
    }

    /// Containers of an account, sorted by name.
    pub async fn list_containers(&self, account: &str) -> Result<Vec<ContainerRecord>> {
        let mut out = Vec::new();
        for group in self.meta1_groups().await? {
            let acc = account.to_string();
            let reply = self
                .inner
                .directory
                .request(
                    group,
                    ListContainersRequest {
                        group,
                        account: acc.clone(),
                    },
                    |mut c, r| async move { c.list_containers(r).await },
                )
                .await?
                .map_err(unexpected)?;
            out.extend(reply.containers);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Object count and bytes of a container.
    pub async fn container_stats(&self, account: &str, name: &str) -> Result<ContainerStatsReply> {
        let (cid, m2) = self.meta2_of(account, name).await?;
        match self
            .inner
            .directory
            .request(
                m2,
                ContainerStatsRequest {
                    group: m2,
                    cid: cid.clone(),
                },
                |mut c, r| async move { c.container_stats(r).await },
            )
            .await?
        {
            Ok(s) => Ok(s),
            Err(s) if s.code() == Code::NotFound => Err(Error::NoSuchContainer),
            Err(s) => Err(unexpected(s)),
        }
    }

    // ------------------------------------------------------------------- objects

    /// Streams an object into a container and commits it. Returns the stored header.
    pub async fn put_object<S, E>(
        &self,
        account: &str,
        container: &str,
        key: &str,
        body: S,
        opts: PutOptions,
    ) -> Result<ContentHeader>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: Display,
    {
        validate_key(key)?;
        let (cid, m2) = self.meta2_of(account, container).await?;
        let policy = self.choose_policy(&cid, m2, &opts).await?;
        self.check_quota(&cid, m2, opts.expected_len).await?;
        let up = put::upload(&self.inner, &cid, body, opts.expected_len, policy).await?;
        if let Some(md5) = opts.expected_md5 {
            if md5 != up.md5 {
                self.inner.delete_chunks_later(up.chunks);
                return Err(Error::BadDigest);
            }
        }
        let mut system_meta = opts.system_meta;
        if let Some(late) = &opts.body_meta {
            if let Ok(late) = late.lock() {
                system_meta.extend(late.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let header = ContentHeader {
            placement_degraded: up.placement_degraded,
            content_id: up.content_id.0.to_vec(),
            version: 0,
            size: up.size,
            policy: up.policy,
            etag: hex::encode(up.md5),
            mtime_ms: oxio_common::now_ms(),
            content_type: opts.content_type,
            user_meta: opts.user_meta,
            system_meta,
            tags: opts.tags,
            inline_data: up.inline.map(|b| b.to_vec()).unwrap_or_default(),
            metachunk_sizes: up.metachunk_sizes,
            chunks: up.chunks,
            delete_marker: false,
            version_id: String::new(),
            // Stored in one piece.
            part_sizes: Vec::new(),
        };
        let k = key.to_string();
        let h = header.clone();
        let reply = self
            .inner
            .directory
            .request(
                m2,
                PutContentRequest {
                    group: m2,
                    cid: cid.clone(),
                    key: k.clone(),
                    header: Some(h.clone()),
                    condition: opts.condition.clone(),
                },
                |mut c, r| async move { c.put_content(r).await },
            )
            .await;
        let reply = match reply {
            Ok(Ok(r)) => r,
            Ok(Err(s)) => {
                // Refused (missing container, failed condition): nothing refers to the
                // chunks just written.
                self.inner.delete_chunks_later(header.chunks);
                if s.code() == Code::NotFound {
                    if s.message().contains("container") {
                        self.inner.containers.remove(&cid);
                        return Err(Error::NoSuchContainer);
                    }
                    return Err(Error::NoSuchKey);
                }
                return Err(unexpected(s));
            }
            Err(e) => {
                // The commit's outcome is unknown: keep the chunks (garbage collection
                // removes them if the commit did not happen).
                return Err(e);
            }
        };
        // The replaced version's chunks were queued for deletion by meta2 in the same
        // Raft entry (the directory's delete queue removes them).
        Ok(ContentHeader {
            version: reply.version,
            version_id: reply.version_id,
            ..header
        })
    }

    /// The header of an object (with inline bytes).
    pub async fn head_object(
        &self,
        account: &str,
        container: &str,
        key: &str,
    ) -> Result<ContentHeader> {
        let (cid, m2) = self.meta2_of(account, container).await?;
        let k = key.to_string();
        match self
            .inner
            .directory
            .request(
                m2,
                GetContentRequest {
                    group: m2,
                    cid: cid.clone(),
                    key: k.clone(),
                },
                |mut c, r| async move { c.get_content(r).await },
            )
            .await?
        {
            Ok(rec) => rec
                .header
                .ok_or_else(|| Error::Internal("content without header".into())),
            Err(s) if s.code() == Code::NotFound => {
                if s.message().contains("container") {
                    self.inner.containers.remove(&cid);
                    Err(Error::NoSuchContainer)
                } else {
                    Err(Error::NoSuchKey)
                }
            }
            Err(s) => Err(unexpected(s)),
        }
    }

    /// Streams bytes `start..end` of an object whose header was read with
    /// [`Client::head_object`].
    pub fn read_object(
        &self,
        header: ContentHeader,
        start: u64,
        end: u64,
    ) -> tokio::sync::mpsc::Receiver<Result<Bytes>> {
        get::read_range(self.inner.clone(), header, start, end)
    }

    /// Deletes an object; its chunks are removed in the background. In a versioned
    /// container this adds a delete marker (see [`Client::delete_object_version`]).
    pub async fn delete_object(&self, account: &str, container: &str, key: &str) -> Result<()> {
        self.delete_object_version(account, container, key, None)
            .await
            .map(|_| ())
    }

    /// One page of the objects of a container.
    pub async fn list_objects(
        &self,
        account: &str,
        container: &str,
        prefix: &str,
        delimiter: &str,
        start_after: &str,
        max_keys: u32,
    ) -> Result<ListPage> {
        let (cid, m2) = self.meta2_of(account, container).await?;
        let (p, d, s) = (
            prefix.to_string(),
            delimiter.to_string(),
            start_after.to_string(),
        );
        match self
            .inner
            .directory
            .request(
                m2,
                ListContentsRequest {
                    group: m2,
                    cid: cid.clone(),
                    prefix: p.clone(),
                    delimiter: d.clone(),
                    start_after: s.clone(),
                    max_keys,
                },
                |mut c, r| async move { c.list_contents(r).await },
            )
            .await?
        {
            Ok(r) => Ok(ListPage {
                entries: r.entries,
                common_prefixes: r.common_prefixes,
                truncated: r.truncated,
                next_start_after: r.next_start_after,
            }),
            Err(s) if s.code() == Code::NotFound => {
                self.inner.containers.remove(&cid);
                Err(Error::NoSuchContainer)
            }
            Err(s) => Err(unexpected(s)),
        }
    }

    /// Every service the conscience knows.
    pub async fn list_services(&self, service_type: &str) -> Result<Vec<ServiceState>> {
        self.inner.conscience.list(service_type).await
    }
}

fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "{what} name must be 1 to 255 printable characters"
        )));
    }
    Ok(())
}

fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 1024 {
        return Err(Error::InvalidArgument(
            "object key must be 1 to 1024 bytes".into(),
        ));
    }
    Ok(())
}

/// Crate-internal access for the operations kept in other modules (multipart).
impl Client {
    /// The shared state.
    pub(crate) fn shared(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The container id and meta2 group of a container (cached).
    pub(crate) async fn resolve_meta2(&self, account: &str, name: &str) -> Result<(String, u64)> {
        self.meta2_of(account, name).await
    }

    /// Forgets the cached meta2 group of a container (it was not found there).
    pub(crate) fn forget_container(&self, cid: &str) {
        self.inner.containers.remove(cid);
        self.inner.bucket_policies.remove(cid);
    }
}
