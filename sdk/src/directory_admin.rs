//! Directory administration: finding the directory nodes, reading each node's view of
//! its Raft groups, and bootstrapping a replicated directory over several nodes.

use crate::directory::unexpected;
use crate::{Client, Error, Result};
use oxio_proto::v1::{
    AddMeta2GroupsReply, AddMeta2GroupsRequest, BootstrapReply, BootstrapRequest, GroupMember,
    StatusReply, StatusRequest,
};
use oxio_proto::DirectoryClient;
use std::time::Duration;
use tonic::Code;
use tracing::Instrument;

pub use oxio_proto::DIRECTORY_SERVICE_TYPE;
/// Most directory nodes one status or discovery call visits.
pub const MAX_DIRECTORY_NODES: usize = 256;
/// Largest Status reply accepted (a node may host many groups).
const MAX_STATUS_BYTES: usize = 64 << 20;
/// Deadline of a Bootstrap call: the directory waits up to 30 s for leaders.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(90);

/// What one directory node answered to Status, or why it did not.
#[derive(Debug)]
pub struct NodeStatus {
    /// Address asked.
    pub addr: String,
    /// The node's answer.
    pub status: Result<StatusReply>,
}

fn client(addr: &str) -> Result<DirectoryClient<tonic::transport::Channel>> {
    let ch = oxio_proto::channel(addr)
        .map_err(|e| Error::InvalidArgument(format!("bad directory address {addr:?}: {e}")))?;
    Ok(DirectoryClient::new(ch)
        .max_decoding_message_size(MAX_STATUS_BYTES)
        .max_encoding_message_size(MAX_STATUS_BYTES))
}

impl Client {
    /// Addresses of the directory nodes registered with the conscience.
    pub async fn directory_addrs(&self) -> Result<Vec<String>> {
        let services = self.list_services(DIRECTORY_SERVICE_TYPE).await?;
        Ok(oxio_proto::service_addrs(
            services,
            false,
            MAX_DIRECTORY_NODES,
        ))
    }

    /// Addresses of the directory nodes the conscience lists up with a score above 0
    /// (a node locked at 0, or full, takes no group in a bootstrap or growth).
    pub async fn directory_addrs_usable(&self) -> Result<Vec<String>> {
        let services = self.list_services(DIRECTORY_SERVICE_TYPE).await?;
        Ok(oxio_proto::service_addrs(
            services,
            true,
            MAX_DIRECTORY_NODES,
        ))
    }

    /// The Status of one directory node.
    pub async fn directory_node_status(&self, addr: &str) -> Result<StatusReply> {
        let mut c = client(addr)?;
        let mut r = tonic::Request::new(StatusRequest {});
        r.set_timeout(self.config().rpc_timeout);
        c.status(r)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| match s.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::Unknown => {
                    Error::Unavailable(format!("directory node {addr}: {}", s.message()))
                }
                _ => unexpected(s),
            })
    }

    /// The Status of every directory node reachable from `seeds`: each seed, then
    /// every group member the answers name (at most [`MAX_DIRECTORY_NODES`] nodes),
    /// ordered by address. Nodes that do not answer are listed with their error.
    pub async fn directory_status(&self, seeds: &[String]) -> Vec<NodeStatus> {
        let span = tracing::info_span!("directory_status", seeds = seeds.len());
        async {
            let mut todo: Vec<String> = seeds.to_vec();
            let mut out: Vec<NodeStatus> = Vec::new();
            while let Some(addr) = todo.pop() {
                if out.len() >= MAX_DIRECTORY_NODES || out.iter().any(|n| n.addr == addr) {
                    continue;
                }
                let status = self.directory_node_status(&addr).await;
                if let Ok(s) = &status {
                    for g in &s.groups {
                        for m in g.group.iter().flat_map(|i| i.members.iter()) {
                            if !m.addr.is_empty()
                                && !todo.contains(&m.addr)
                                && !out.iter().any(|n| n.addr == m.addr)
                            {
                                todo.push(m.addr.clone());
                            }
                        }
                    }
                }
                out.push(NodeStatus { addr, status });
            }
            out.sort_by(|a, b| a.addr.cmp(&b.addr));
            out
        }
        .instrument(span)
        .await
    }

    /// Node id and address of each directory node at `addrs`, from their Status.
    /// Fails naming the first node that does not answer.
    pub async fn directory_members(&self, addrs: &[String]) -> Result<Vec<GroupMember>> {
        let mut out = Vec::new();
        for addr in addrs.iter().take(MAX_DIRECTORY_NODES) {
            let s = self.directory_node_status(addr).await?;
            out.push(GroupMember {
                node_id: s.node_id,
                addr: addr.clone(),
            });
        }
        Ok(out)
    }

    /// Node id and address of each directory node at `addrs` that answers its Status
    /// (the others are left out, so a node that is down does not stop a bootstrap
    /// or a growth that enough others can carry; the directory says how many it
    /// needs).
    pub async fn directory_members_up(&self, addrs: &[String]) -> Vec<GroupMember> {
        let mut out = Vec::new();
        for addr in addrs.iter().take(MAX_DIRECTORY_NODES) {
            match self.directory_node_status(addr).await {
                Ok(s) => out.push(GroupMember {
                    node_id: s.node_id,
                    addr: addr.clone(),
                }),
                Err(e) => tracing::warn!(%addr, error = %e, "directory node left out: no answer"),
            }
        }
        out
    }

    /// Grows a bootstrapped directory to `req.meta2_groups` meta2 groups through the
    /// node at `via` (see the `AddMeta2Groups` RPC).
    pub async fn directory_add_meta2_groups(
        &self,
        via: &str,
        req: AddMeta2GroupsRequest,
    ) -> Result<AddMeta2GroupsReply> {
        let span = tracing::info_span!("directory_grow", via, meta2_groups = req.meta2_groups);
        async {
            let mut c = client(via)?;
            let mut r = tonic::Request::new(req);
            r.set_timeout(BOOTSTRAP_TIMEOUT);
            c.add_meta2_groups(r)
                .await
                .map(|r| r.into_inner())
                .map_err(|s| match s.code() {
                    Code::FailedPrecondition | Code::Unavailable | Code::DeadlineExceeded => {
                        Error::Unavailable(s.message().to_string())
                    }
                    Code::InvalidArgument => Error::InvalidArgument(s.message().to_string()),
                    _ => unexpected(s),
                })
        }
        .instrument(span)
        .await
    }

    /// Bootstraps a replicated directory through the node at `via` (see the
    /// `Bootstrap` RPC). Idempotent: an existing directory is answered as it is, with
    /// `already_bootstrapped` set.
    pub async fn directory_bootstrap(
        &self,
        via: &str,
        req: BootstrapRequest,
    ) -> Result<BootstrapReply> {
        let span = tracing::info_span!("directory_bootstrap", via, replicas = req.replicas);
        async {
            let mut c = client(via)?;
            let mut r = tonic::Request::new(req);
            r.set_timeout(BOOTSTRAP_TIMEOUT);
            c.bootstrap(r)
                .await
                .map(|r| r.into_inner())
                .map_err(|s| match s.code() {
                    Code::FailedPrecondition | Code::Unavailable | Code::DeadlineExceeded => {
                        Error::Unavailable(s.message().to_string())
                    }
                    _ => unexpected(s),
                })
        }
        .instrument(span)
        .await
    }
}
