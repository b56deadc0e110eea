//! Raft transport between directory nodes: openraft requests encoded by
//! [`crate::codec`] (MessagePack; JSON from older nodes still decodes) inside `RaftMessage { group, kind, payload }` over the `Directory.Raft` gRPC. One lazily
//! connected tonic channel is cached per peer address and shared by every group; every
//! RPC carries a deadline.

use crate::types::TypeConfig;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode, RPCTypes, RaftNetwork, RaftNetworkFactory};
use oxio_proto::v1::RaftMessage;
use oxio_proto::DirectoryClient;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Channel;

/// Largest gRPC message a directory node sends or accepts (Raft payloads included).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Above this size an append-entries payload is split by openraft.
pub const MAX_APPEND_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
/// Most peer channels kept; past this the cache is emptied and refilled on demand.
const MAX_CACHED_CHANNELS: usize = 4096;

/// Request kinds of `RaftMessage`.
pub mod kind {
    /// AppendEntries request.
    pub const APPEND: &str = "append";
    /// Vote request.
    pub const VOTE: &str = "vote";
    /// InstallSnapshot chunk.
    pub const SNAPSHOT: &str = "snapshot";
    /// Reply: payload is the JSON `Result` of the Raft call.
    pub const OK: &str = "ok";
    /// Reply: payload is an error text (group not hosted, undecodable request).
    pub const ERR: &str = "err";
}

/// Cache of one channel per peer address, shared by all groups of a node.
#[derive(Clone, Default)]
pub struct Channels {
    inner: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Channels {
    /// The channel to `addr`, created lazily on first use.
    pub fn get(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        if map.len() >= MAX_CACHED_CHANNELS {
            map.clear();
        }
        let c = oxio_proto::channel(addr)?;
        map.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// A directory client to `addr` with the node's message limits.
    pub fn client(&self, addr: &str) -> Result<DirectoryClient<Channel>, tonic::transport::Error> {
        Ok(DirectoryClient::new(self.get(addr)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// Builds the per-peer clients of one group.
#[derive(Clone)]
pub struct NetworkFactory {
    group: u64,
    node_id: u64,
    channels: Channels,
}

impl NetworkFactory {
    /// The transport of `group` on node `node_id`.
    pub fn new(group: u64, node_id: u64, channels: Channels) -> Self {
        NetworkFactory {
            group,
            node_id,
            channels,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            group: self.group,
            node_id: self.node_id,
            target,
            node: node.clone(),
            channels: self.channels.clone(),
        }
    }
}

/// Sends one group's Raft RPCs to one peer.
pub struct PeerClient {
    group: u64,
    node_id: u64,
    target: u64,
    node: BasicNode,
    channels: Channels,
}

type RpcErr<E> = RPCError<u64, BasicNode, RaftError<u64, E>>;

impl PeerClient {
    async fn send<Resp, E>(
        &self,
        kind: &str,
        action: RPCTypes,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Resp, RpcErr<E>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let timeout = Timeout {
            action,
            id: self.node_id,
            target: self.target,
            timeout: ttl,
        };
        let mut client = self
            .channels
            .client(&self.node.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut req = tonic::Request::new(RaftMessage {
            group: self.group,
            kind: kind.to_string(),
            payload,
        });
        req.set_timeout(ttl);
        let reply = match tokio::time::timeout(ttl, client.raft(req)).await {
            Err(_) => return Err(RPCError::Timeout(timeout)),
            Ok(Err(status)) => {
                return Err(match status.code() {
                    tonic::Code::DeadlineExceeded => RPCError::Timeout(timeout),
                    tonic::Code::Unavailable | tonic::Code::Unknown => {
                        RPCError::Unreachable(Unreachable::new(&status))
                    }
                    _ => RPCError::Network(NetworkError::new(&status)),
                })
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        if reply.kind != kind::OK {
            let msg = String::from_utf8_lossy(&reply.payload).into_owned();
            return Err(RPCError::Network(NetworkError::new(&AnyError::error(msg))));
        }
        let res: Result<Resp, RaftError<u64, E>> = crate::codec::decode(&reply.payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        res.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }

    fn encode<Req: Serialize>(req: &Req) -> Result<Vec<u8>, NetworkError> {
        crate::codec::encode(req).map_err(|e| NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr<openraft::error::Infallible>> {
        let payload = Self::encode(&rpc).map_err(RPCError::Network)?;
        if payload.len() > MAX_APPEND_PAYLOAD_BYTES && rpc.entries.len() > 1 {
            let hint = (rpc.entries.len() / 2).max(1) as u64;
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(hint),
            ));
        }
        self.send(
            kind::APPEND,
            RPCTypes::AppendEntries,
            payload,
            option.hard_ttl(),
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<InstallSnapshotError>> {
        let payload = Self::encode(&rpc).map_err(RPCError::Network)?;
        self.send(
            kind::SNAPSHOT,
            RPCTypes::InstallSnapshot,
            payload,
            option.hard_ttl(),
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr<openraft::error::Infallible>> {
        let payload = Self::encode(&rpc).map_err(RPCError::Network)?;
        self.send(kind::VOTE, RPCTypes::Vote, payload, option.hard_ttl())
            .await
    }
}
