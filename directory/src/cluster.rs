//! Bootstrap of a replicated directory, driven by any node over the `Directory` gRPC:
//! probe the nodes, spread the groups ([`crate::placement`]), make every member host
//! its groups, initialize each group once on its preferred leader, wait for leaders and
//! write the meta0 table on the meta0 leader. Every step is idempotent, so a second run
//! (or a run resuming an interrupted one) only answers what exists.

use crate::config::BootstrapSpec;
use crate::error::{Error, Result};
use crate::meta0;
use crate::node::Node;
use crate::placement;
use crate::types::{Command, GroupRecord, MemberRecord, Reply, META0_GROUP};
use openraft::error::{InitializeError, RaftError};
use openraft::BasicNode;
use oxio_proto::v1::{
    BootstrapReply, BootstrapRequest, GetMeta0Request, GroupInfo, GroupMember, HostGroupReply,
    HostGroupRequest, Meta0Table, StatusReply, StatusRequest,
};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tonic::Request;

/// Deadline of the Status call that checks a node is up.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Deadline of one HostGroup / GetMeta0 / Bootstrap call to a peer.
pub(crate) const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a bootstrap waits for every group to elect a leader and for meta0 to
/// accept the table.
pub const LEADER_WAIT: Duration = Duration::from_secs(30);
/// Pause between two polls of the nodes' status while waiting for leaders.
const POLL: Duration = Duration::from_millis(50);

/// A member as it travels in the protocol.
pub fn member_to_proto(m: &MemberRecord) -> GroupMember {
    GroupMember {
        node_id: m.node_id,
        addr: m.addr.clone(),
    }
}

/// A member from the protocol.
pub fn member_from_proto(m: &GroupMember) -> MemberRecord {
    MemberRecord {
        node_id: m.node_id,
        addr: m.addr.clone(),
    }
}

/// A meta0 group record as it travels in the protocol.
pub fn group_to_proto(r: &GroupRecord, leader_addr: String) -> GroupInfo {
    GroupInfo {
        id: r.id,
        kind: r.kind.to_proto() as i32,
        members: r.members.iter().map(member_to_proto).collect(),
        leader_addr,
    }
}

/// The meta0 table as this node's replica holds it (no read barrier: callers that need
/// linearizable answers put one first), leaders filled in from local Raft metrics.
/// `None` while the table is not written or meta0 is not hosted here.
pub fn local_meta0(node: &Node) -> Result<Option<Meta0Table>> {
    let Some(g) = node.group(META0_GROUP) else {
        return Ok(None);
    };
    let view = g.sm.view();
    let Some(table) = meta0::read_table(&view)? else {
        return Ok(None);
    };
    let groups = meta0::read_groups(&view)?
        .iter()
        .map(|r| {
            let leader = node
                .group(r.id)
                .and_then(|local| node.view(&local).leader_addr)
                .unwrap_or_default();
            group_to_proto(r, leader)
        })
        .collect();
    Ok(Some(Meta0Table {
        prefix_to_meta1: table,
        groups,
    }))
}

/// Handles `HostGroup`: hosts the group (durably listed for restarts) and, when asked,
/// initializes it with `members` as voters unless it was initialized before.
pub async fn host_group(node: &Node, req: HostGroupRequest) -> Result<HostGroupReply> {
    let members: Vec<MemberRecord> = req.members.iter().map(member_from_proto).collect();
    placement::check_nodes(&members)?;
    if members.len() > placement::MAX_REPLICAS as usize {
        return Err(Error::Config(format!(
            "a group has at most {} members, got {}",
            placement::MAX_REPLICAS,
            members.len()
        )));
    }
    if !members.iter().any(|m| m.node_id == node.id) {
        return Err(Error::Config(format!(
            "node {} is not a member of group {}",
            node.id, req.group
        )));
    }
    let g = node.host_group(req.group).await?;
    let was_initialized = g.raft.is_initialized().await.map_err(Error::raft)?;
    if req.initialize && !was_initialized {
        let voters: BTreeMap<u64, BasicNode> = members
            .iter()
            .map(|m| (m.node_id, BasicNode::new(m.addr.clone())))
            .collect();
        match g.raft.initialize(voters).await {
            Ok(()) => tracing::info!(
                group = req.group,
                members = members.len(),
                "group initialized"
            ),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(Error::raft(e)),
        }
    }
    Ok(HostGroupReply { was_initialized })
}

pub(crate) fn peer(addr: &str, message: impl std::fmt::Display) -> Error {
    Error::Peer {
        addr: addr.to_string(),
        message: message.to_string(),
    }
}

pub(crate) async fn status_of(node: &Node, addr: &str, timeout: Duration) -> Result<StatusReply> {
    let mut c = node.channels().client(addr).map_err(|e| peer(addr, e))?;
    let mut r = Request::new(StatusRequest {});
    r.set_timeout(timeout);
    match tokio::time::timeout(timeout, c.status(r)).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(s)) => Err(peer(addr, s.message())),
        Err(_) => Err(peer(addr, "no answer in time")),
    }
}

/// The listed nodes that answer Status under their listed id, and a line per node
/// that does not.
pub(crate) async fn probe(node: &Node, nodes: &[MemberRecord]) -> Probed {
    let mut set = tokio::task::JoinSet::new();
    for (i, n) in nodes.iter().enumerate() {
        let addr = n.addr.clone();
        let client = node.channels().client(&addr);
        set.spawn(async move {
            let mut c = client.map_err(|e| e.to_string())?;
            let mut r = Request::new(StatusRequest {});
            r.set_timeout(PROBE_TIMEOUT);
            match tokio::time::timeout(PROBE_TIMEOUT, c.status(r)).await {
                Ok(Ok(reply)) => {
                    let reply = reply.into_inner();
                    Ok((i, reply.node_id, reply.location))
                }
                Ok(Err(s)) => Err(format!("{addr} unreachable ({})", s.message())),
                Err(_) => Err(format!("{addr} did not answer")),
            }
        });
    }
    let mut up = Vec::new();
    let mut problems = Vec::new();
    let mut locations = HashMap::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok((i, id, location))) if id == nodes[i].node_id => {
                up.push(nodes[i].clone());
                if !location.is_empty() {
                    locations.insert(id, location);
                }
            }
            Ok(Ok((i, id, _))) => problems.push(format!(
                "{} answers as node {id}, not {}",
                nodes[i].addr, nodes[i].node_id
            )),
            Ok(Err(m)) => problems.push(m),
            Err(e) => problems.push(format!("probe failed: {e}")),
        }
    }
    up.sort_by_key(|n| n.node_id);
    problems.sort();
    Probed {
        up,
        problems,
        locations,
    }
}

/// What probing the listed nodes found.
pub(crate) struct Probed {
    /// Nodes that answered as themselves, by id.
    pub up: Vec<MemberRecord>,
    /// Why the others did not.
    pub problems: Vec<String>,
    /// Locations the nodes that answered reported, by node id.
    pub locations: HashMap<u64, String>,
}

/// The meta0 table if any node in `nodes` serves one.
pub(crate) async fn existing_table(node: &Node, nodes: &[MemberRecord]) -> Option<Meta0Table> {
    for n in nodes {
        let Ok(mut c) = node.channels().client(&n.addr) else {
            continue;
        };
        let mut r = Request::new(GetMeta0Request {});
        r.set_timeout(RPC_TIMEOUT);
        if let Ok(t) = c.get_meta0(r).await {
            return Some(t.into_inner());
        }
    }
    None
}

async fn call_host(node: &Node, addr: &str, req: HostGroupRequest) -> Result<HostGroupReply> {
    let mut c = node.channels().client(addr).map_err(|e| peer(addr, e))?;
    let mut r = Request::new(req);
    r.set_timeout(RPC_TIMEOUT);
    c.host_group(r)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| peer(addr, s.message()))
}

/// Polls the members' status until every planned group has a leader; returns each
/// group's leader node id.
pub(crate) async fn wait_leaders(
    node: &Node,
    nodes: &[MemberRecord],
    plan: &[GroupRecord],
    deadline: Instant,
) -> Result<HashMap<u64, u64>> {
    loop {
        let mut leaders = HashMap::new();
        for n in nodes {
            if let Ok(st) = status_of(node, &n.addr, PROBE_TIMEOUT).await {
                for g in st.groups.iter().filter(|g| g.is_leader) {
                    if let Some(info) = &g.group {
                        leaders.insert(info.id, st.node_id);
                    }
                }
            }
        }
        let missing: Vec<u64> = plan
            .iter()
            .map(|g| g.id)
            .filter(|id| !leaders.contains_key(id))
            .collect();
        if missing.is_empty() {
            return Ok(leaders);
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "groups without a leader after {LEADER_WAIT:?}: {missing:?}"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Writes the meta0 table on this node, which must lead meta0; answers the table
/// already there instead when one was written before.
async fn write_meta0_here(
    node: &Node,
    spec: &BootstrapSpec,
    plan: Vec<GroupRecord>,
) -> Result<BootstrapReply> {
    let g = node
        .group(META0_GROUP)
        .ok_or_else(|| Error::Precondition("meta0 is not hosted here".into()))?;
    g.raft.ensure_linearizable().await.map_err(Error::raft)?;
    if let Some(table) = local_meta0(node)? {
        return Ok(BootstrapReply {
            already_bootstrapped: true,
            table: Some(table),
        });
    }
    let reply = g
        .raft
        .client_write(Command::Meta0Init {
            prefix_to_meta1: meta0::even_table(spec.meta1_groups),
            groups: plan,
        })
        .await
        .map_err(Error::raft)?;
    if reply.data != Reply::Done {
        return Err(Error::Raft(format!("meta0 init refused: {:?}", reply.data)));
    }
    tracing::info!("meta0 table written");
    Ok(BootstrapReply {
        already_bootstrapped: false,
        table: local_meta0(node)?,
    })
}

/// Handles `Bootstrap` (see the RPC's documentation in the proto file).
pub async fn bootstrap(node: &Node, req: BootstrapRequest) -> Result<BootstrapReply> {
    let spec = BootstrapSpec {
        meta1_groups: if req.meta1_groups == 0 {
            BootstrapSpec::default().meta1_groups
        } else {
            req.meta1_groups
        },
        meta2_groups: if req.meta2_groups == 0 {
            BootstrapSpec::default().meta2_groups
        } else {
            req.meta2_groups
        },
    };
    spec.validate()?;
    let listed: Vec<MemberRecord> = if req.nodes.is_empty() {
        vec![MemberRecord {
            node_id: node.id,
            addr: node.addr.clone(),
        }]
    } else {
        req.nodes.iter().map(member_from_proto).collect()
    };
    placement::check_nodes(&listed)?;
    if req.replicas == 0 || req.replicas > placement::MAX_REPLICAS {
        return Err(Error::Config(format!(
            "replicas must be in 1..={}, got {}",
            placement::MAX_REPLICAS,
            req.replicas
        )));
    }
    let (up, locations) = if req.forwarded {
        (listed, req.node_locations.clone())
    } else {
        let probed = probe(node, &listed).await;
        let (up, problems) = (probed.up, probed.problems);
        if up.len() < req.replicas as usize {
            let ids: Vec<String> = up
                .iter()
                .map(|n| format!("{}@{}", n.node_id, n.addr))
                .collect();
            return Err(Error::Precondition(format!(
                "need {} directory nodes up, found {}: up [{}]; {}",
                req.replicas,
                up.len(),
                ids.join(", "),
                if problems.is_empty() {
                    "no other node listed".to_string()
                } else {
                    problems.join("; ")
                }
            )));
        }
        (up, probed.locations)
    };
    if let Some(table) = existing_table(node, &up).await {
        tracing::info!("directory already bootstrapped");
        return Ok(BootstrapReply {
            already_bootstrapped: true,
            table: Some(table),
        });
    }
    let plan = placement::spread_located(&spec, req.replicas, &up, &locations)?;
    tracing::info!(
        replicas = req.replicas,
        nodes = up.len(),
        groups = plan.len(),
        forwarded = req.forwarded,
        "bootstrapping a replicated directory"
    );
    host_and_initialize(node, &plan).await?;
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        let leaders = wait_leaders(node, &up, &plan, deadline).await?;
        let leader = *leaders
            .get(&META0_GROUP)
            .ok_or_else(|| Error::Timeout("meta0 has no leader".into()))?;
        let attempt = if leader == node.id {
            write_meta0_here(node, &spec, plan.clone()).await
        } else if req.forwarded {
            Err(Error::Precondition(format!(
                "node {} does not lead meta0 (node {leader} does)",
                node.id
            )))
        } else {
            forward(node, &req, &up, &locations, leader).await
        };
        match attempt {
            Ok(reply) => return Ok(reply),
            Err(e) if Instant::now() < deadline && !req.forwarded => {
                tracing::debug!(error = %e, "meta0 write not done yet, retrying");
                tokio::time::sleep(POLL).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Makes every member of every group of `plan` host it, then asks each group's
/// first member (its preferred leader) to initialize it with all members as voters.
/// Both steps are idempotent.
pub(crate) async fn host_and_initialize(node: &Node, plan: &[GroupRecord]) -> Result<()> {
    for g in plan {
        let members: Vec<GroupMember> = g.members.iter().map(member_to_proto).collect();
        for m in &g.members {
            let host = HostGroupRequest {
                group: g.id,
                members: members.clone(),
                initialize: false,
            };
            call_host(node, &m.addr, host).await?;
        }
    }
    for g in plan {
        let first = &g.members[0];
        let init = HostGroupRequest {
            group: g.id,
            members: g.members.iter().map(member_to_proto).collect(),
            initialize: true,
        };
        call_host(node, &first.addr, init).await?;
    }
    Ok(())
}

/// Hands the final meta0 write to the meta0 leader `leader`.
async fn forward(
    node: &Node,
    req: &BootstrapRequest,
    up: &[MemberRecord],
    locations: &HashMap<u64, String>,
    leader: u64,
) -> Result<BootstrapReply> {
    let addr = up
        .iter()
        .find(|n| n.node_id == leader)
        .map(|n| n.addr.clone())
        .ok_or_else(|| Error::Precondition(format!("meta0 leader {leader} is not listed")))?;
    let mut c = node.channels().client(&addr).map_err(|e| peer(&addr, e))?;
    let mut r = Request::new(BootstrapRequest {
        replicas: req.replicas,
        meta1_groups: req.meta1_groups,
        meta2_groups: req.meta2_groups,
        nodes: up.iter().map(member_to_proto).collect(),
        forwarded: true,
        node_locations: locations.clone(),
    });
    r.set_timeout(LEADER_WAIT + RPC_TIMEOUT);
    c.bootstrap(r)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| peer(&addr, s.message()))
}
