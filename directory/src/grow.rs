//! Growing a bootstrapped directory: more meta2 groups, spread over the nodes that
//! are up (those that joined since take the new groups first, see
//! [`placement::spread_groups`]), hosted and led before meta0 records them, so a
//! client never sees a group that cannot serve. Driven by any node over the
//! `Directory` gRPC (`AddMeta2Groups`), like the bootstrap.

use crate::cluster::{self, group_to_proto, member_from_proto};
use crate::error::{Error, Result};
use crate::node::Node;
use crate::placement;
use crate::types::{Command, GroupKind, GroupRecord, MemberRecord, Reply, META0_GROUP, META2_BASE};
use oxio_proto::v1::{AddMeta2GroupsReply, AddMeta2GroupsRequest, GroupInfo, Meta0Table};
use std::time::Instant;
use tonic::Request;

/// Most meta2 groups a directory may have.
pub const MAX_META2_GROUPS: u32 = 10_000;

fn record_of(g: &GroupInfo) -> GroupRecord {
    GroupRecord {
        id: g.id,
        kind: GroupKind::of(g.id),
        members: g.members.iter().map(member_from_proto).collect(),
    }
}

/// Handles `AddMeta2Groups` (see the RPC's documentation in the proto file).
pub async fn add_meta2_groups(
    node: &Node,
    req: AddMeta2GroupsRequest,
) -> Result<AddMeta2GroupsReply> {
    if req.forwarded {
        let plan: Vec<GroupRecord> = req.plan.iter().map(record_of).collect();
        return record_here(node, plan).await;
    }
    if req.meta2_groups == 0 || req.meta2_groups > MAX_META2_GROUPS {
        return Err(Error::Config(format!(
            "meta2_groups must be in 1..={MAX_META2_GROUPS}, got {}",
            req.meta2_groups
        )));
    }
    let listed: Vec<MemberRecord> = req.nodes.iter().map(member_from_proto).collect();
    placement::check_nodes(&listed)?;
    let probed = cluster::probe(node, &listed).await;
    let table = cluster::existing_table(node, &probed.up)
        .await
        .ok_or_else(|| {
            Error::Precondition(
                "the directory is not bootstrapped: run oxio directory bootstrap first".into(),
            )
        })?;
    let existing: Vec<GroupRecord> = table.groups.iter().map(record_of).collect();
    let meta2: Vec<&GroupRecord> = existing
        .iter()
        .filter(|g| g.kind == GroupKind::Meta2)
        .collect();
    let have = meta2.len() as u32;
    if have >= req.meta2_groups {
        return Ok(AddMeta2GroupsReply {
            added: Vec::new(),
            table: Some(table),
        });
    }
    let replicas = match req.replicas {
        0 => meta2.first().map(|g| g.members.len() as u32).unwrap_or(1),
        r => r,
    };
    if probed.up.len() < replicas as usize {
        return Err(Error::Precondition(format!(
            "need {replicas} directory nodes up, found {}: {}",
            probed.up.len(),
            probed.problems.join("; ")
        )));
    }
    let next = meta2.iter().map(|g| g.id + 1).max().unwrap_or(META2_BASE);
    let ids: Vec<u64> = (next..next + u64::from(req.meta2_groups - have)).collect();
    let plan = placement::spread_groups(&ids, replicas, &probed.up, &probed.locations, &existing)?;
    tracing::info!(
        groups = plan.len(),
        replicas,
        nodes = probed.up.len(),
        "adding meta2 groups"
    );
    cluster::host_and_initialize(node, &plan).await?;
    let deadline = Instant::now() + cluster::LEADER_WAIT;
    cluster::wait_leaders(node, &probed.up, &plan, deadline).await?;
    // meta0's leader records them.
    loop {
        let attempt = match meta0_leader(node, &probed.up).await {
            Some(leader) if leader.node_id == node.id => record_here(node, plan.clone()).await,
            Some(leader) => forward(node, &leader.addr, &plan).await,
            None => Err(Error::Timeout("meta0 has no leader".into())),
        };
        match attempt {
            Ok(mut reply) => {
                reply.added = plan
                    .iter()
                    .map(|g| group_to_proto(g, String::new()))
                    .collect();
                return Ok(reply);
            }
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "meta0 record not done yet, retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The node leading meta0, as the nodes' status tells.
async fn meta0_leader(node: &Node, nodes: &[MemberRecord]) -> Option<MemberRecord> {
    for n in nodes {
        if let Ok(st) = cluster::status_of(node, &n.addr, cluster::PROBE_TIMEOUT).await {
            let leads = st
                .groups
                .iter()
                .any(|g| g.is_leader && g.group.as_ref().is_some_and(|i| i.id == META0_GROUP));
            if leads {
                return Some(n.clone());
            }
        }
    }
    None
}

/// Records `plan` in meta0 on this node, which must lead it.
async fn record_here(node: &Node, plan: Vec<GroupRecord>) -> Result<AddMeta2GroupsReply> {
    let g = node
        .group(META0_GROUP)
        .ok_or_else(|| Error::Precondition("meta0 is not hosted here".into()))?;
    if plan.iter().any(|g| g.kind != GroupKind::Meta2) {
        return Err(Error::Config("only meta2 groups can be added".into()));
    }
    let reply = g
        .raft
        .client_write(Command::Meta0AddGroups { groups: plan })
        .await
        .map_err(Error::raft)?;
    if reply.data != Reply::Done {
        return Err(Error::Raft(format!(
            "meta0 refused the groups: {:?}",
            reply.data
        )));
    }
    let table: Option<Meta0Table> = cluster::local_meta0(node)?;
    Ok(AddMeta2GroupsReply {
        added: Vec::new(),
        table,
    })
}

async fn forward(node: &Node, addr: &str, plan: &[GroupRecord]) -> Result<AddMeta2GroupsReply> {
    let mut c = node
        .channels()
        .client(addr)
        .map_err(|e| cluster::peer(addr, e))?;
    let mut r = Request::new(AddMeta2GroupsRequest {
        meta2_groups: 0,
        replicas: 0,
        nodes: Vec::new(),
        forwarded: true,
        plan: plan
            .iter()
            .map(|g| group_to_proto(g, String::new()))
            .collect(),
    });
    r.set_timeout(cluster::RPC_TIMEOUT);
    c.add_meta2_groups(r)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| cluster::peer(addr, s.message()))
}
