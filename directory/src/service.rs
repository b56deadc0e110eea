//! The `Directory` gRPC service of one node: routes each call to the named group,
//! puts a read barrier (read-index) before every read, proposes every write through Raft,
//! and serves the Raft transport between nodes.

use crate::listing::{self, ListParams};
use crate::network::kind;
use crate::node::{Group, Node};
use crate::status::{self, from_check_leader, from_write, not_hosted, refusal, wrong_kind};
use crate::types::{Command, GroupKind, Reply, WriteCondition, META0_GROUP};
use crate::{meta0, meta1, meta2};
use oxio_proto::v1::directory_server::Directory;
use oxio_proto::v1::*;
use prost::Message;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use tracing::Instrument;

#[path = "service_accounts.rs"]
mod accounts_rpc;
#[path = "service_acl.rs"]
mod acl_rpc;
#[path = "service_incomplete.rs"]
mod incomplete_rpc;
#[path = "service_mpu.rs"]
mod mpu;
#[path = "service_rebuild.rs"]
mod rebuild_rpc;
#[path = "service_tags.rs"]
mod tags_rpc;
#[path = "service_versions.rs"]
mod versions_rpc;

/// Deadline of a GetMeta0 call this node makes to another node.
const REMOTE_META0_TIMEOUT: Duration = Duration::from_secs(5);

/// gRPC front of a directory node.
#[derive(Clone)]
pub struct DirectoryService {
    node: Arc<Node>,
    /// Serializes the bootstraps this node drives.
    bootstrap_lock: Arc<tokio::sync::Mutex<()>>,
}

type Res<T> = Result<Response<T>, Status>;

/// Checks a container id (64 hex) and returns it upper-cased.
pub fn parse_cid(cid: &str) -> Result<String, Status> {
    if cid.len() != 64 || !cid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Status::invalid_argument("cid must be 64 hex characters"));
    }
    Ok(cid.to_ascii_uppercase())
}

fn check_name(what: &str, v: &str) -> Result<(), Status> {
    if v.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{what} must not be empty"
        )));
    }
    if v.len() > meta1::MAX_NAME_BYTES {
        return Err(Status::invalid_argument(format!(
            "{what} longer than {} bytes",
            meta1::MAX_NAME_BYTES
        )));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), Status> {
    if key.is_empty() {
        return Err(Status::invalid_argument("key must not be empty"));
    }
    if key.len() > meta2::MAX_KEY_BYTES {
        return Err(Status::invalid_argument(format!(
            "key longer than {} bytes",
            meta2::MAX_KEY_BYTES
        )));
    }
    Ok(())
}

/// Checks a container's default policy name: `None` for "" (clear), the canonical
/// name otherwise, INVALID_ARGUMENT naming the valid forms for anything else.
pub fn check_policy(policy: &str) -> Result<Option<String>, Status> {
    if policy.is_empty() {
        return Ok(None);
    }
    if policy.len() > MAX_POLICY_BYTES {
        return Err(Status::invalid_argument("policy name too long"));
    }
    match policy.parse::<oxio_common::StoragePolicy>() {
        Ok(p) => Ok(Some(p.to_string())),
        Err(_) => Err(Status::invalid_argument(format!(
            "invalid storage policy {policy:?}: expected SINGLE, TWOCOPIES, THREECOPIES or EC<k><m> (e.g. EC42, EC84)"
        ))),
    }
}

/// Longest accepted policy name.
const MAX_POLICY_BYTES: usize = 16;

fn internal(e: crate::Error) -> Status {
    tracing::error!(error = %e, "directory internal error");
    Status::internal(e.to_string())
}

fn decode<M: Message + Default>(b: &[u8]) -> Result<M, Status> {
    M::decode(b).map_err(|e| internal(e.into()))
}

fn unexpected(r: Reply) -> Status {
    match r {
        Reply::Refused(r) => refusal(r),
        other => internal(crate::Error::Raft(format!("unexpected reply {other:?}"))),
    }
}

impl DirectoryService {
    /// The service of `node`.
    pub fn new(node: Arc<Node>) -> Self {
        DirectoryService {
            node,
            bootstrap_lock: Arc::default(),
        }
    }

    fn group(&self, gid: u64, want: GroupKind) -> Result<Arc<Group>, Status> {
        let g = self.node.group(gid).ok_or_else(|| not_hosted(gid))?;
        if g.kind != want {
            return Err(wrong_kind(gid, g.kind, want));
        }
        Ok(g)
    }

    /// Read-index barrier: after it, local reads see every write acknowledged before
    /// (one leadership check shared by the reads that wait together).
    async fn barrier(&self, g: &Group) -> Result<(), Status> {
        g.reads.wait().await.map_err(|e| from_check_leader(g.id, e))
    }

    async fn write(&self, g: &Group, cmd: Command) -> Result<Reply, Status> {
        let name = cmd.name();
        let (reply, index) = g
            .proposer
            .propose(cmd)
            .await
            .map_err(|e| from_write(g.id, e))?;
        tracing::debug!(group = g.id, command = name, index, "applied");
        Ok(reply)
    }

    /// The meta2 group ids known to meta0: locally when this node leads meta0, else from
    /// the meta0 leader or from the peers of `asking`.
    async fn meta2_groups(&self, asking: &Group) -> Result<Vec<u64>, Status> {
        let mut candidates: Vec<String> = Vec::new();
        if let Some(m0) = self.node.group(META0_GROUP) {
            match self.barrier(&m0).await {
                Ok(()) => {
                    let groups = meta0::read_groups(&m0.sm.view()).map_err(internal)?;
                    return Ok(groups
                        .into_iter()
                        .filter(|g| g.kind == GroupKind::Meta2)
                        .map(|g| g.id)
                        .collect());
                }
                Err(_) => {
                    if let Some(l) = self.node.view(&m0).leader_addr {
                        candidates.push(l);
                    }
                }
            }
        }
        for m in self.node.view(asking).members {
            if m.node_id != self.node.id && !candidates.contains(&m.addr) {
                candidates.push(m.addr);
            }
        }
        for p in self.node.peers() {
            if !candidates.contains(&p) {
                candidates.push(p);
            }
        }
        for addr in candidates.iter().take(16) {
            let Ok(mut client) = self.node.channels().client(addr) else {
                continue;
            };
            let mut req = Request::new(GetMeta0Request {});
            req.set_timeout(REMOTE_META0_TIMEOUT);
            match client.get_meta0(req).await {
                Ok(t) => {
                    return Ok(t
                        .into_inner()
                        .groups
                        .into_iter()
                        .filter(|g| g.kind == oxio_proto::v1::GroupKind::Meta2 as i32)
                        .map(|g| g.id)
                        .collect())
                }
                Err(e) => tracing::debug!(peer = %addr, error = %e.message(), "GetMeta0 failed"),
            }
        }
        Err(Status::unavailable("no meta0 replica reachable"))
    }

    async fn raft_call(&self, msg: RaftMessage) -> Result<RaftMessage, Status> {
        let Some(g) = self.node.group(msg.group) else {
            return Err(not_hosted(msg.group));
        };
        fn err(group: u64, m: String) -> RaftMessage {
            RaftMessage {
                group,
                kind: kind::ERR.into(),
                payload: m.into_bytes(),
            }
        }
        let payload = match msg.kind.as_str() {
            kind::APPEND => match crate::codec::decode(&msg.payload) {
                Ok(req) => crate::codec::encode(&g.raft.append_entries(req).await),
                Err(e) => return Ok(err(msg.group, format!("bad append request: {e}"))),
            },
            kind::VOTE => match crate::codec::decode(&msg.payload) {
                Ok(req) => crate::codec::encode(&g.raft.vote(req).await),
                Err(e) => return Ok(err(msg.group, format!("bad vote request: {e}"))),
            },
            kind::SNAPSHOT => match crate::codec::decode(&msg.payload) {
                Ok(req) => crate::codec::encode(&g.raft.install_snapshot(req).await),
                Err(e) => return Ok(err(msg.group, format!("bad snapshot request: {e}"))),
            },
            other => {
                return Ok(err(
                    msg.group,
                    format!("unknown raft message kind {other:?}"),
                ))
            }
        };
        let payload = payload.map_err(internal)?;
        Ok(RaftMessage {
            group: msg.group,
            kind: kind::OK.into(),
            payload,
        })
    }
}

#[tonic::async_trait]
impl Directory for DirectoryService {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn get_meta0(&self, _request: Request<GetMeta0Request>) -> Res<Meta0Table> {
        let g = self.group(META0_GROUP, GroupKind::Meta0)?;
        self.barrier(&g).await?;
        let view = g.sm.view();
        let table = meta0::read_table(&view)
            .map_err(internal)?
            .ok_or_else(|| Status::unavailable("meta0 table not written yet"))?;
        let groups = meta0::read_groups(&view).map_err(internal)?;
        let groups = groups
            .into_iter()
            .map(|r| {
                let leader_addr = self
                    .node
                    .group(r.id)
                    .and_then(|local| self.node.view(&local).leader_addr)
                    .unwrap_or_default();
                GroupInfo {
                    id: r.id,
                    kind: r.kind.to_proto() as i32,
                    members: r
                        .members
                        .into_iter()
                        .map(|m| GroupMember {
                            node_id: m.node_id,
                            addr: m.addr,
                        })
                        .collect(),
                    leader_addr,
                }
            })
            .collect();
        Ok(Response::new(Meta0Table {
            prefix_to_meta1: table,
            groups,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn create_account(&self, request: Request<CreateAccountRequest>) -> Res<AccountRecord> {
        let req = request.into_inner();
        check_name("account", &req.account)?;
        let g = self.group(req.group, GroupKind::Meta1)?;
        let cmd = Command::CreateAccount {
            account: req.account,
            ctime_ms: oxio_common::now_ms(),
        };
        match self.write(&g, cmd).await? {
            Reply::Account(b) => Ok(Response::new(decode(&b)?)),
            other => Err(unexpected(other)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn list_accounts(&self, request: Request<ListAccountsRequest>) -> Res<ListAccountsReply> {
        let req = request.into_inner();
        let g = self.group(req.group, GroupKind::Meta1)?;
        self.barrier(&g).await?;
        let accounts = meta1::list_accounts(&g.sm.view()).map_err(internal)?;
        Ok(Response::new(ListAccountsReply { accounts }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn put_access_key(&self, request: Request<PutAccessKeyRequest>) -> Res<AccessKeyRecord> {
        let req = request.into_inner();
        let mut key = req
            .key
            .ok_or_else(|| Status::invalid_argument("key is required"))?;
        check_name("access_key", &key.access_key)?;
        check_name("account", &key.account)?;
        if key.secret_key.len() > meta1::MAX_NAME_BYTES {
            return Err(Status::invalid_argument("secret_key too long"));
        }
        if key.ctime_ms == 0 {
            key.ctime_ms = oxio_common::now_ms();
        }
        let g = self.group(req.group, GroupKind::Meta1)?;
        let cmd = Command::PutAccessKey {
            record: key.encode_to_vec(),
        };
        match self.write(&g, cmd).await? {
            Reply::AccessKey(b) => Ok(Response::new(decode(&b)?)),
            other => Err(unexpected(other)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn get_access_key(&self, request: Request<GetAccessKeyRequest>) -> Res<AccessKeyRecord> {
        let req = request.into_inner();
        check_name("access_key", &req.access_key)?;
        let g = self.group(req.group, GroupKind::Meta1)?;
        self.barrier(&g).await?;
        meta1::get_access_key(&g.sm.view(), &req.access_key)
            .map_err(internal)?
            .map(Response::new)
            .ok_or_else(|| Status::not_found("no such access key"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn list_access_keys(
        &self,
        request: Request<ListAccessKeysRequest>,
    ) -> Res<ListAccessKeysReply> {
        let req = request.into_inner();
        check_name("account", &req.account)?;
        let g = self.group(req.group, GroupKind::Meta1)?;
        self.barrier(&g).await?;
        let keys = meta1::list_access_keys(&g.sm.view(), &req.account).map_err(internal)?;
        Ok(Response::new(ListAccessKeysReply { keys }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn delete_access_key(
        &self,
        request: Request<DeleteAccessKeyRequest>,
    ) -> Res<AccessKeyRecord> {
        self.accounts_delete_key(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn delete_account(&self, request: Request<DeleteAccountRequest>) -> Res<AccountRecord> {
        self.accounts_delete_account(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn create_container(
        &self,
        request: Request<CreateContainerRequest>,
    ) -> Res<ContainerRecord> {
        let req = request.into_inner();
        check_name("account", &req.account)?;
        check_name("name", &req.name)?;
        let g = self.group(req.group, GroupKind::Meta1)?;
        let cid = oxio_common::container_id(&req.account, &req.name);
        // Leader-side decisions happen before proposing; the barrier also fails fast
        // with the leader's address on a follower.
        self.barrier(&g).await?;
        if meta1::get_container(&g.sm.view(), &cid)
            .map_err(internal)?
            .is_some()
        {
            return Err(Status::already_exists("container exists"));
        }
        let meta2 = self.meta2_groups(&g).await?;
        if meta2.is_empty() {
            return Err(Status::failed_precondition("meta0 lists no meta2 group"));
        }
        let meta2_group = match req.meta2_group {
            0 => meta2[rand::rng().random_range(0..meta2.len())],
            chosen if meta2.contains(&chosen) => chosen,
            other => {
                return Err(Status::invalid_argument(format!(
                    "group {other} is not a meta2 group (meta0 lists {meta2:?})"
                )))
            }
        };
        let cmd = Command::CreateContainer {
            account: req.account,
            name: req.name,
            cid,
            meta2_group,
            ctime_ms: oxio_common::now_ms(),
        };
        match self.write(&g, cmd).await? {
            Reply::Container(b) => Ok(Response::new(decode(&b)?)),
            other => Err(unexpected(other)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn get_container(&self, request: Request<GetContainerRequest>) -> Res<ContainerRecord> {
        let req = request.into_inner();
        let cid = parse_cid(&req.cid)?;
        let g = self.group(req.group, GroupKind::Meta1)?;
        self.barrier(&g).await?;
        meta1::get_container(&g.sm.view(), &cid)
            .map_err(internal)?
            .map(Response::new)
            .ok_or_else(|| Status::not_found("no such container"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn delete_container(
        &self,
        request: Request<DeleteContainerRequest>,
    ) -> Res<DeleteContainerReply> {
        let req = request.into_inner();
        let cid = parse_cid(&req.cid)?;
        let g = self.group(req.group, GroupKind::Meta1)?;
        match self.write(&g, Command::DeleteContainer { cid }).await? {
            Reply::Done => Ok(Response::new(DeleteContainerReply {})),
            other => Err(unexpected(other)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn list_containers(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Res<ListContainersReply> {
        let req = request.into_inner();
        check_name("account", &req.account)?;
        let g = self.group(req.group, GroupKind::Meta1)?;
        self.barrier(&g).await?;
        let containers = meta1::list_containers(&g.sm.view(), &req.account).map_err(internal)?;
        Ok(Response::new(ListContainersReply { containers }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn init_container(
        &self,
        request: Request<InitContainerRequest>,
    ) -> Res<InitContainerReply> {
        let req = request.into_inner();
        let cid = parse_cid(&req.cid)?;
        if req.account.len() > meta1::MAX_NAME_BYTES || req.name.len() > meta1::MAX_NAME_BYTES {
            return Err(Status::invalid_argument("account or name too long"));
        }
        let g = self.group(req.group, GroupKind::Meta2)?;
        let cmd = Command::InitContainer {
            cid,
            account: req.account,
            name: req.name,
        };
        match self.write(&g, cmd).await? {
            Reply::Done => Ok(Response::new(InitContainerReply {})),
            other => Err(unexpected(other)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn drop_container(
        &self,
        request: Request<DropContainerRequest>,
    ) -> Res<DropContainerReply> {
        let req = request.into_inner();
        let cid = parse_cid(&req.cid)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        match self.write(&g, Command::DropContainer { cid }).await? {
            Reply::Done => Ok(Response::new(DropContainerReply {})),
            other => Err(unexpected(other)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn container_stats(
        &self,
        request: Request<ContainerStatsRequest>,
    ) -> Res<ContainerStatsReply> {
        let req = request.into_inner();
        let cid = parse_cid(&req.cid)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        self.barrier(&g).await?;
        let meta = meta2::container_meta(&g.sm.view(), &cid)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found("no such container"))?;
        Ok(Response::new(meta2::stats_of(&meta)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, policy = %request.get_ref().policy))]
    async fn set_container_properties(
        &self,
        request: Request<SetContainerPropertiesRequest>,
    ) -> Res<ContainerStatsReply> {
        let req = request.into_inner();
        let cid = parse_cid(&req.cid)?;
        let policy = check_policy(&req.policy)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        match self
            .write(&g, Command::SetContainerPolicy { cid, policy })
            .await?
        {
            Reply::Encoded(b) => Ok(Response::new(decode(&b)?)),
            other => Err(unexpected(other)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, quota = ?request.get_ref().quota_bytes))]
    async fn set_container_quota(
        &self,
        request: Request<SetContainerQuotaRequest>,
    ) -> Res<ContainerStatsReply> {
        let req = request.into_inner();
        let cid = parse_cid(&req.cid)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        match self
            .write(
                &g,
                Command::SetContainerQuota {
                    cid,
                    quota_bytes: req.quota_bytes,
                },
            )
            .await?
        {
            Reply::Encoded(b) => Ok(Response::new(decode(&b)?)),
            other => Err(unexpected(other)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn put_content(&self, request: Request<PutContentRequest>) -> Res<PutContentReply> {
        let req = request.into_inner();
        let cid = parse_cid(&req.cid)?;
        check_key(&req.key)?;
        let mut header = req
            .header
            .ok_or_else(|| Status::invalid_argument("header is required"))?;
        if header.chunks.len() > meta2::MAX_CHUNKS {
            return Err(Status::invalid_argument(format!(
                "more than {} chunks",
                meta2::MAX_CHUNKS
            )));
        }
        crate::tags::check_tags(&header.tags, crate::tags::MAX_OBJECT_TAGS)
            .map_err(Status::invalid_argument)?;
        if header.mtime_ms == 0 {
            header.mtime_ms = oxio_common::now_ms();
        }
        let header = header.encode_to_vec();
        if header.len() > meta2::MAX_HEADER_BYTES {
            return Err(Status::invalid_argument(format!(
                "content header of {} bytes exceeds {} bytes",
                header.len(),
                meta2::MAX_HEADER_BYTES
            )));
        }
        let condition = WriteCondition::from_proto(req.condition)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        let cmd = Command::PutContent {
            cid,
            key: req.key,
            header,
            proposed_version: oxio_common::now_us(),
            condition,
        };
        match self.write(&g, cmd).await? {
            Reply::Put { version, replaced } => Ok(Response::new(PutContentReply {
                version,
                replaced: replaced.map(|b| decode(&b)).transpose()?,
                version_id: String::new(),
            })),
            // A versioned container answers the reply with its version id.
            Reply::Encoded(b) => Ok(Response::new(decode(&b)?)),
            other => Err(unexpected(other)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn get_content(&self, request: Request<GetContentRequest>) -> Res<ContentRecord> {
        let req = request.into_inner();
        let cid = parse_cid(&req.cid)?;
        check_key(&req.key)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        self.barrier(&g).await?;
        match meta2::get_content(&g.sm.view(), &cid, &req.key).map_err(internal)? {
            Ok(header) => Ok(Response::new(ContentRecord {
                key: req.key,
                header: Some(header),
            })),
            Err(r) => Err(refusal(r)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn delete_content(&self, request: Request<DeleteContentRequest>) -> Res<ContentRecord> {
        let req = request.into_inner();
        let cid = parse_cid(&req.cid)?;
        check_key(&req.key)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        let cmd = Command::DeleteContent {
            cid,
            key: req.key.clone(),
        };
        match self.write(&g, cmd).await? {
            Reply::Deleted(b) => Ok(Response::new(ContentRecord {
                key: req.key,
                header: Some(decode(&b)?),
            })),
            other => Err(unexpected(other)),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn list_contents(&self, request: Request<ListContentsRequest>) -> Res<ListContentsReply> {
        let req = request.into_inner();
        let cid = parse_cid(&req.cid)?;
        for (what, v) in [
            ("prefix", &req.prefix),
            ("delimiter", &req.delimiter),
            ("start_after", &req.start_after),
        ] {
            if v.len() > meta2::MAX_KEY_BYTES {
                return Err(Status::invalid_argument(format!("{what} too long")));
            }
        }
        let g = self.group(req.group, GroupKind::Meta2)?;
        self.barrier(&g).await?;
        let view = g.sm.view();
        if meta2::container_meta(&view, &cid)
            .map_err(internal)?
            .is_none()
        {
            return Err(Status::not_found("no such container"));
        }
        let mut cursor =
            view.cursor_within(&crate::keys::sm::contents_of(&cid), req.prefix.as_bytes());
        let params = ListParams {
            prefix: &req.prefix,
            delimiter: &req.delimiter,
            start_after: &req.start_after,
            max_keys: req.max_keys,
        };
        let reply = listing::list(&mut cursor, &params, |k, v| {
            let mut h = ContentHeader::decode(v)?;
            Ok(ListEntry {
                storage_class: h.system_meta.remove("storage-class").unwrap_or_default(),
                key: String::from_utf8_lossy(k).into_owned(),
                size: h.size,
                etag: h.etag,
                mtime_ms: h.mtime_ms,
                policy: h.policy,
            })
        })
        .map_err(internal)?;
        cursor.status().map_err(internal)?;
        Ok(Response::new(reply))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn set_content_tags(
        &self,
        request: Request<SetContentTagsRequest>,
    ) -> Res<SetContentTagsReply> {
        self.tags_set_content(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn set_container_tags(
        &self,
        request: Request<SetContainerTagsRequest>,
    ) -> Res<ContainerStatsReply> {
        self.tags_set_container(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn set_container_acl(
        &self,
        request: Request<SetContainerAclRequest>,
    ) -> Res<ContainerStatsReply> {
        self.acl_set_container(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn set_container_versioning(
        &self,
        request: Request<SetContainerVersioningRequest>,
    ) -> Res<ContainerStatsReply> {
        self.versions_set(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn get_content_version(
        &self,
        request: Request<GetContentVersionRequest>,
    ) -> Res<ContentRecord> {
        self.versions_get(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn delete_content_version(
        &self,
        request: Request<DeleteContentVersionRequest>,
    ) -> Res<DeleteContentVersionReply> {
        self.versions_delete(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn list_content_versions(
        &self,
        request: Request<ListContentVersionsRequest>,
    ) -> Res<ListContentVersionsReply> {
        self.versions_list(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn create_upload(&self, request: Request<CreateUploadRequest>) -> Res<CreateUploadReply> {
        self.mpu_create(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn put_part(&self, request: Request<PutPartRequest>) -> Res<PutPartReply> {
        self.mpu_put_part(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn list_parts(&self, request: Request<ListPartsRequest>) -> Res<ListPartsReply> {
        self.mpu_list_parts(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn list_uploads(&self, request: Request<ListUploadsRequest>) -> Res<ListUploadsReply> {
        self.mpu_list_uploads(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn complete_upload(
        &self,
        request: Request<CompleteUploadRequest>,
    ) -> Res<CompleteUploadReply> {
        self.mpu_complete(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn abort_upload(&self, request: Request<AbortUploadRequest>) -> Res<AbortUploadReply> {
        self.mpu_abort(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, rawx = %request.get_ref().rawx_id))]
    async fn list_rawx_chunks(
        &self,
        request: Request<ListRawxChunksRequest>,
    ) -> Res<ListRawxChunksReply> {
        self.rebuild_list(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn replace_chunk(&self, request: Request<ReplaceChunkRequest>) -> Res<ReplaceChunkReply> {
        self.rebuild_replace(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group))]
    async fn list_incomplete_contents(
        &self,
        request: Request<ListIncompleteContentsRequest>,
    ) -> Res<ListIncompleteContentsReply> {
        self.incomplete_list(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = request.get_ref().group, key = %request.get_ref().key))]
    async fn add_missing_chunk(
        &self,
        request: Request<AddMissingChunkRequest>,
    ) -> Res<AddMissingChunkReply> {
        self.incomplete_add(request.into_inner()).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn status(&self, _request: Request<StatusRequest>) -> Res<StatusReply> {
        let groups = self
            .node
            .groups_snapshot()
            .iter()
            .map(|g| {
                let v = self.node.view(g);
                GroupStatus {
                    group: Some(GroupInfo {
                        id: g.id,
                        kind: g.kind.to_proto() as i32,
                        members: v
                            .members
                            .iter()
                            .map(|m| GroupMember {
                                node_id: m.node_id,
                                addr: m.addr.clone(),
                            })
                            .collect(),
                        leader_addr: v.leader_addr.clone().unwrap_or_default(),
                    }),
                    term: v.term,
                    applied_index: v.applied_index,
                    last_log_index: v.last_log_index,
                    is_leader: v.is_leader,
                    size_bytes: self.node.group_size_bytes(g.id),
                }
            })
            .collect();
        Ok(Response::new(StatusReply {
            node_id: self.node.id,
            addr: self.node.addr.clone(),
            groups,
            location: self.node.location(),
        }))
    }

    #[tracing::instrument(level = "info", skip_all, fields(group = request.get_ref().group, init = request.get_ref().initialize))]
    async fn host_group(&self, request: Request<HostGroupRequest>) -> Res<HostGroupReply> {
        crate::cluster::host_group(&self.node, request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    #[tracing::instrument(level = "info", skip_all, fields(replicas = request.get_ref().replicas, nodes = request.get_ref().nodes.len()))]
    async fn bootstrap(&self, request: Request<BootstrapRequest>) -> Res<BootstrapReply> {
        let req = request.into_inner();
        // A forwarded request comes from a node that holds its own lock for the whole
        // run: waiting for ours could deadlock two nodes bootstrapping at once.
        let _guard = if req.forwarded {
            None
        } else {
            Some(self.bootstrap_lock.lock().await)
        };
        match crate::cluster::bootstrap(&self.node, req).await {
            Ok(r) => Ok(Response::new(r)),
            Err(e) => {
                tracing::warn!(error = %e, "bootstrap failed");
                Err(e.into())
            }
        }
    }

    #[tracing::instrument(level = "info", skip_all, fields(meta2_groups = request.get_ref().meta2_groups, forwarded = request.get_ref().forwarded))]
    async fn add_meta2_groups(
        &self,
        request: Request<AddMeta2GroupsRequest>,
    ) -> Res<AddMeta2GroupsReply> {
        let req = request.into_inner();
        // One growth (or bootstrap) at a time per node; a forwarded request comes from
        // a node holding its own lock.
        let _guard = if req.forwarded {
            None
        } else {
            Some(self.bootstrap_lock.lock().await)
        };
        match crate::grow::add_meta2_groups(&self.node, req).await {
            Ok(r) => Ok(Response::new(r)),
            Err(e) => {
                tracing::warn!(error = %e, "adding meta2 groups failed");
                Err(e.into())
            }
        }
    }

    async fn raft(&self, request: Request<RaftMessage>) -> Res<RaftMessage> {
        let msg = request.into_inner();
        let span = tracing::trace_span!("raft_rpc", group = msg.group, kind = %msg.kind);
        self.raft_call(msg)
            .instrument(span)
            .await
            .map(Response::new)
    }
}

/// Re-exported for tests and callers that map statuses themselves.
pub use status::LEADER_METADATA;
