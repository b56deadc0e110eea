//! Resolution through the directory: the meta0 table cached whole, container → meta2
//! group answers cached, calls sent to each group's leader with redirects followed and
//! transient failures retried until a deadline.

use crate::{Error, Result};
use dashmap::DashMap;
use futures::future::Either;
use oxio_proto::v1::{
    ContentRecord, GetContentVersionRequest, GetMeta0Request, GroupInfo, GroupKind, Meta0Table,
};
use oxio_proto::DirectoryClient;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tonic::{Code, Status};

/// Metadata key of a "not leader" answer naming the leader.
pub const LEADER_HINT: &str = "oxio-leader";

/// Most leader addresses named by followers tried in one round of a meta0 fetch.
const MAX_META0_HINTS: usize = 8;

/// The cached meta0 table.
#[derive(Debug)]
pub struct Meta0 {
    /// prefix → meta1 group.
    pub prefix_to_meta1: Vec<u64>,
    /// Every group by id.
    pub groups: HashMap<u64, GroupInfo>,
}

impl Meta0 {
    /// The meta1 group that owns a 16-bit prefix.
    pub fn meta1_for(&self, prefix: u16) -> Result<u64> {
        self.prefix_to_meta1
            .get(prefix as usize)
            .copied()
            .ok_or_else(|| {
                Error::Internal(format!("meta0 table has no entry for prefix {prefix:04X}"))
            })
    }

    /// Ids of the groups of one kind, sorted.
    pub fn groups_of(&self, kind: GroupKind) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .groups
            .values()
            .filter(|g| g.kind == kind as i32)
            .map(|g| g.id)
            .collect();
        v.sort_unstable();
        v
    }
}

/// A directory client whose calls carry the current request id; in-process when the
/// directory node runs in this process ([`oxio_proto::local`]).
pub type DirClient = DirectoryClient<oxio_proto::rpc::Traced<oxio_proto::local::Transport>>;

/// Client side of the directory.
pub struct DirectoryResolver {
    seeds: Vec<String>,
    channels: DashMap<String, DirClient>,
    meta0: RwLock<Option<(Arc<Meta0>, Instant)>>,
    leaders: DashMap<u64, String>,
    rpc_timeout: Duration,
    retry_deadline: Duration,
}

impl DirectoryResolver {
    /// A resolver that starts from the given directory node addresses.
    pub fn new(seeds: Vec<String>, rpc_timeout: Duration, retry_deadline: Duration) -> Self {
        DirectoryResolver {
            seeds,
            channels: DashMap::new(),
            meta0: RwLock::new(None),
            leaders: DashMap::new(),
            rpc_timeout,
            retry_deadline,
        }
    }

    fn client(&self, addr: &str) -> Result<DirClient> {
        if let Some(c) = self.channels.get(addr) {
            return Ok(c.clone());
        }
        let ch = oxio_proto::local::Transport::new(addr)
            .map_err(|e| Error::InvalidArgument(format!("bad directory address {addr:?}: {e}")))?;
        let c = DirectoryClient::with_interceptor(ch, oxio_proto::rpc::RequestIdInterceptor)
            .max_decoding_message_size(64 << 20);
        self.channels.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// The meta0 table, fetched once and cached.
    pub async fn meta0(&self) -> Result<Arc<Meta0>> {
        if let Ok(guard) = self.meta0.read() {
            if let Some((m, _)) = guard.as_ref() {
                return Ok(m.clone());
            }
        }
        self.refresh_meta0().await
    }

    /// The meta0 table, fetched again when the cached one is older than `max_age`
    /// (groups are added as the directory grows).
    pub async fn meta0_within(&self, max_age: Duration) -> Result<Arc<Meta0>> {
        if let Ok(guard) = self.meta0.read() {
            if let Some((m, at)) = guard.as_ref() {
                if at.elapsed() <= max_age {
                    return Ok(m.clone());
                }
            }
        }
        self.refresh_meta0().await
    }

    /// Fetches the meta0 table again.
    pub async fn refresh_meta0(&self) -> Result<Arc<Meta0>> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(20);
        let mut last = String::from("no directory address configured");
        loop {
            // Seeds first, then the meta0 leaders that followers name (bounded).
            let mut addrs = self.seeds.clone();
            let max_addrs = self.seeds.len() + MAX_META0_HINTS;
            let mut i = 0;
            while i < addrs.len() {
                let addr = addrs[i].clone();
                i += 1;
                let addr = &addr;
                let mut c = self.client(addr)?;
                let mut req = tonic::Request::new(GetMeta0Request {});
                req.set_timeout(self.rpc_timeout);
                match c.get_meta0(req).await {
                    Ok(resp) => {
                        let table: Meta0Table = resp.into_inner();
                        if table.prefix_to_meta1.len() != oxio_common::PREFIX_COUNT {
                            last = format!(
                                "meta0 table from {addr} has {} prefixes",
                                table.prefix_to_meta1.len()
                            );
                            continue;
                        }
                        for g in &table.groups {
                            if !g.leader_addr.is_empty() {
                                self.leaders.insert(g.id, g.leader_addr.clone());
                            }
                        }
                        let m = Arc::new(Meta0 {
                            prefix_to_meta1: table.prefix_to_meta1,
                            groups: table.groups.into_iter().map(|g| (g.id, g)).collect(),
                        });
                        if let Ok(mut guard) = self.meta0.write() {
                            *guard = Some((m.clone(), Instant::now()));
                        }
                        return Ok(m);
                    }
                    Err(s) => {
                        last = format!("{addr}: {}", s.message());
                        let hint = s.metadata().get(LEADER_HINT).and_then(|v| v.to_str().ok());
                        if let Some(leader) = hint {
                            if !leader.is_empty()
                                && addrs.len() < max_addrs
                                && !addrs.iter().any(|a| a == leader)
                            {
                                addrs.push(leader.to_string());
                            }
                        }
                    }
                }
            }
            if started.elapsed() > self.retry_deadline {
                return Err(Error::Unavailable(format!("directory meta0: {last}")));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    /// Addresses to try for a group: the known leader first, then its members.
    async fn candidates(&self, group: u64) -> Result<Vec<String>> {
        let mut meta0 = self.meta0().await?;
        if group != 0 && !meta0.groups.contains_key(&group) {
            // A group added since the table was cached.
            meta0 = self.refresh_meta0().await?;
        }
        let mut out = Vec::new();
        if let Some(l) = self.leaders.get(&group) {
            out.push(l.clone());
        }
        match meta0.groups.get(&group) {
            Some(g) => {
                for m in &g.members {
                    if !out.contains(&m.addr) {
                        out.push(m.addr.clone());
                    }
                }
            }
            None if group == 0 => out.extend(self.seeds.iter().cloned()),
            None => {
                return Err(Error::Internal(format!(
                    "group {group} is not in the meta0 table"
                )))
            }
        }
        Ok(out)
    }

    /// Calls `f` on the leader of `group`, following "not leader" redirects and
    /// retrying transient failures until the retry deadline. Answers other than
    /// transient ones are returned as they are, for the caller to interpret.
    pub async fn call<T, F, Fut>(&self, group: u64, f: F) -> Result<std::result::Result<T, Status>>
    where
        F: Fn(DirClient, Duration) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        self.call_at(group, |addr, t| {
            let call = f(self.client(addr)?, t);
            Ok(async move { call.await.map(tonic::Response::into_inner) })
        })
        .await
    }

    /// [`DirectoryResolver::call`] with `f` given each address to try (it picks the
    /// client).
    async fn call_at<T, F, Fut>(&self, group: u64, f: F) -> Result<std::result::Result<T, Status>>
    where
        F: Fn(&str, Duration) -> Result<Fut>,
        Fut: Future<Output = std::result::Result<T, Status>>,
    {
        let started = Instant::now();
        let mut delay = Duration::from_millis(20);
        let mut last = String::new();
        loop {
            let addrs = self.candidates(group).await?;
            for addr in addrs {
                match f(&addr, self.rpc_timeout)?.await {
                    Ok(resp) => {
                        self.leaders.insert(group, addr);
                        return Ok(Ok(resp));
                    }
                    Err(s) if transient(&s) => {
                        last = format!("{addr}: {}", s.message());
                        let hint = s
                            .metadata()
                            .get(LEADER_HINT)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        match hint {
                            Some(leader) if !leader.is_empty() && leader != addr => {
                                self.leaders.insert(group, leader.clone());
                                match f(&leader, self.rpc_timeout)?.await {
                                    Ok(resp) => return Ok(Ok(resp)),
                                    Err(s2) if transient(&s2) => {
                                        last = format!("{leader}: {}", s2.message());
                                        self.leaders.remove(&group);
                                    }
                                    Err(s2) => return Ok(Err(s2)),
                                }
                            }
                            _ => {
                                self.leaders.remove(&group);
                            }
                        }
                    }
                    Err(s) if s.code() == Code::NotFound && s.message().starts_with("group ") => {
                        // Stale meta0: the group moved.
                        last = format!("{addr}: {}", s.message());
                        self.refresh_meta0().await?;
                    }
                    Err(s) => return Ok(Err(s)),
                }
            }
            if started.elapsed() > self.retry_deadline {
                return Err(Error::Unavailable(format!(
                    "directory group {group}: {last}"
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }
}

/// Whether an answer is worth trying again elsewhere or later: not the leader, no
/// quorum, past its deadline, or the connection failed.
fn transient(s: &Status) -> bool {
    s.code() == Code::Unavailable
        || s.code() == Code::DeadlineExceeded
        || s.code() == Code::Unknown && s.message().contains("transport")
}

impl DirectoryResolver {
    /// [`DirectoryResolver::call`] for the usual shape: send `req` (cloned for each
    /// try, with the RPC deadline set) through the client method `f`.
    pub async fn request<Req, T, F, Fut>(
        &self,
        group: u64,
        req: Req,
        f: F,
    ) -> Result<std::result::Result<T, Status>>
    where
        Req: Clone,
        F: Fn(DirClient, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        self.call(group, |c, t| f(c, timed(req.clone(), t))).await
    }

    /// `GetContentVersion` on the leader of `group`, as [`DirectoryResolver::request`]
    /// sends it, but answered typed (no protobuf encoding) by a node of this process
    /// ([`oxio_proto::local::directory_reads`]).
    pub async fn get_content_version(
        &self,
        group: u64,
        req: GetContentVersionRequest,
    ) -> Result<std::result::Result<ContentRecord, Status>> {
        self.call_at(group, |addr, t| {
            let req = req.clone();
            Ok(match oxio_proto::local::directory_reads(addr) {
                Some(reads) => Either::Left(async move {
                    oxio_proto::local::within(t, reads.get_content_version(req)).await
                }),
                None => {
                    let mut c = self.client(addr)?;
                    let r = timed(req, t);
                    Either::Right(async move {
                        c.get_content_version(r)
                            .await
                            .map(tonic::Response::into_inner)
                    })
                }
            })
        })
        .await
    }
}

/// `req` as a gRPC request with deadline `t`.
fn timed<Req>(req: Req, t: Duration) -> tonic::Request<Req> {
    let mut r = tonic::Request::new(req);
    r.set_timeout(t);
    r
}

/// Maps a directory answer that the caller did not expect to an sdk error.
pub fn unexpected(s: Status) -> Error {
    match s.code() {
        Code::InvalidArgument => Error::InvalidArgument(s.message().to_string()),
        Code::FailedPrecondition if s.message().starts_with("PreconditionFailed") => {
            Error::PreconditionFailed
        }
        Code::FailedPrecondition if s.message().starts_with("QuotaExceeded") => {
            Error::QuotaExceeded
        }
        Code::Unavailable | Code::DeadlineExceeded => Error::Unavailable(s.message().to_string()),
        _ => Error::Internal(format!("directory: {:?}: {}", s.code(), s.message())),
    }
}
