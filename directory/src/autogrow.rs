//! Growth without an operator: the node leading meta0 adds one meta2 group for each
//! directory node that joined the grid (up in the conscience with a score above 0)
//! and is a member of no meta2 group yet. A round where every usable address is
//! already a member costs one `ListServices` call and nothing else. The new groups go
//! through [`grow::add_meta2_groups`], exactly what `oxio directory grow` does by
//! hand, so each is hosted and led before meta0 records it, and
//! [`crate::placement::spread_groups`] makes the newcomer its preferred leader. Checked
//! every [`crate::DirectoryConfig::auto_grow_interval`]; a round that cannot place
//! a group (fewer nodes up than the groups' replicas) only logs and waits.

use crate::cluster;
use crate::error::{Error, Result};
use crate::grow::{self, MAX_META2_GROUPS};
use crate::node::Node;
use crate::types::{GroupKind, META0_GROUP};
use oxio_proto::v1::{AddMeta2GroupsRequest, GroupMember, ListServicesRequest};
use oxio_proto::{ConscienceClient, DIRECTORY_SERVICE_TYPE};
use std::collections::HashSet;
use std::sync::Weak;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most directory nodes looked at in one round.
const MAX_NODES: usize = 256;
/// Longest wait for the conscience's answer.
const CONSCIENCE_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts the worker; it stops with `stop` or when the node is dropped.
pub fn spawn(
    node: Weak<Node>,
    conscience: Vec<String>,
    interval: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let Some(node) = node.upgrade() else { return };
            match round(&node, &conscience).await {
                Ok(0) => {}
                Ok(added) => tracing::info!(added, "meta2 groups added for joined directory nodes"),
                Err(e) => tracing::debug!(error = %e, "automatic directory growth skipped"),
            }
        }
    })
}

/// One check; the number of meta2 groups added.
pub async fn round(node: &Node, conscience: &[String]) -> Result<usize> {
    let leads_meta0 = node
        .group(META0_GROUP)
        .is_some_and(|g| node.view(&g).is_leader);
    if !leads_meta0 {
        return Ok(0);
    }
    let Some(table) = cluster::local_meta0(node)? else {
        return Ok(0);
    };
    let meta2 = table
        .groups
        .iter()
        .filter(|g| GroupKind::of(g.id) == GroupKind::Meta2)
        .collect::<Vec<_>>();
    if meta2.is_empty() {
        return Ok(0);
    }
    let members: HashSet<&str> = meta2
        .iter()
        .flat_map(|g| g.members.iter().map(|m| m.addr.as_str()))
        .collect();
    let usable = usable_directory_addrs(conscience).await?;
    if usable.iter().all(|a| members.contains(a.as_str())) {
        return Ok(0);
    }
    // Some address is new: learn every usable node's id (`AddMeta2Groups` takes
    // them), and count by id the nodes in no meta2 group (an address may have changed).
    let hosting: HashSet<u64> = meta2
        .iter()
        .flat_map(|g| g.members.iter().map(|m| m.node_id))
        .collect();
    let mut nodes = Vec::new();
    for addr in usable {
        match cluster::status_of(node, &addr, cluster::PROBE_TIMEOUT).await {
            Ok(st) => nodes.push(GroupMember {
                node_id: st.node_id,
                addr,
            }),
            Err(e) => tracing::debug!(%addr, error = %e, "directory node left out of growth"),
        }
    }
    let newcomers = nodes
        .iter()
        .filter(|n| !hosting.contains(&n.node_id))
        .count() as u32;
    if newcomers == 0 {
        return Ok(0);
    }
    let want = (meta2.len() as u32 + newcomers).min(MAX_META2_GROUPS);
    let reply = grow::add_meta2_groups(
        node,
        AddMeta2GroupsRequest {
            meta2_groups: want,
            replicas: 0,
            nodes,
            forwarded: false,
            plan: Vec::new(),
        },
    )
    .await?;
    Ok(reply.added.len())
}

/// The addresses of the directory nodes the first answering conscience lists as up
/// with a score above 0.
async fn usable_directory_addrs(conscience: &[String]) -> Result<Vec<String>> {
    let mut last = String::from("no conscience configured");
    for addr in conscience {
        let ch = match oxio_proto::channel(addr) {
            Ok(ch) => ch,
            Err(e) => {
                last = format!("conscience {addr}: {e}");
                continue;
            }
        };
        let mut req = tonic::Request::new(ListServicesRequest {
            service_type: DIRECTORY_SERVICE_TYPE.into(),
        });
        req.set_timeout(CONSCIENCE_TIMEOUT);
        match ConscienceClient::new(ch).list_services(req).await {
            Ok(reply) => {
                return Ok(oxio_proto::service_addrs(
                    reply.into_inner().services,
                    true,
                    MAX_NODES,
                ))
            }
            Err(s) => last = format!("conscience {addr}: {}", s.message()),
        }
    }
    Err(Error::Precondition(last))
}
