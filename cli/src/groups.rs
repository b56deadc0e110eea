//! Where a container lives in the directory: the meta0 table (prefix → meta1 group,
//! every group's members) and, from the members' Status, each group's leader.

use oxio_proto::v1::{GroupInfo, StatusReply};
use oxio_sdk::directory::{DirectoryResolver, Meta0};
use std::collections::HashMap;
use std::sync::Arc;

/// The meta0 group id.
pub const META0_GROUP: u64 = 0;

/// The directory's groups as meta0 describes them, with leaders asked of the
/// members on demand.
pub struct GroupView {
    meta0: Arc<Meta0>,
    /// Status of each node asked so far (`None`: it did not answer).
    statuses: HashMap<String, Option<StatusReply>>,
}

impl GroupView {
    /// Reads the meta0 table through the directory nodes `seeds`.
    pub async fn load(sdk: &oxio_sdk::Client, seeds: &[String]) -> oxio_sdk::Result<Self> {
        let cfg = sdk.config();
        let resolver = DirectoryResolver::new(seeds.to_vec(), cfg.rpc_timeout, cfg.retry_deadline);
        Ok(GroupView {
            meta0: resolver.meta0().await?,
            statuses: HashMap::new(),
        })
    }

    /// The meta1 group of a 16-bit prefix.
    pub fn meta1_for(&self, prefix: u16) -> oxio_sdk::Result<u64> {
        self.meta0.meta1_for(prefix)
    }

    /// A group as meta0 records it.
    pub fn group(&self, id: u64) -> Option<&GroupInfo> {
        self.meta0.groups.get(&id)
    }

    /// Members of a group as `NODE_ID@ADDR` (empty when meta0 does not know it).
    pub fn members(&self, id: u64) -> Vec<String> {
        self.group(id)
            .map(|g| {
                g.members
                    .iter()
                    .map(|m| format!("{}@{}", m.node_id, m.addr))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The address of the group's leader: the member whose Status says it leads
    /// the group, else the leader a member names, else none.
    pub async fn leader(&mut self, sdk: &oxio_sdk::Client, id: u64) -> Option<String> {
        let addrs: Vec<String> = self
            .group(id)
            .map(|g| g.members.iter().map(|m| m.addr.clone()).collect())
            .unwrap_or_default();
        let mut named = None;
        for addr in addrs {
            if !self.statuses.contains_key(&addr) {
                let status = sdk.directory_node_status(&addr).await.ok();
                self.statuses.insert(addr.clone(), status);
            }
            let Some(Some(status)) = self.statuses.get(&addr) else {
                continue;
            };
            for g in &status.groups {
                let Some(info) = g.group.as_ref().filter(|i| i.id == id) else {
                    continue;
                };
                if g.is_leader {
                    return Some(addr);
                }
                if named.is_none() && !info.leader_addr.is_empty() {
                    named = Some(info.leader_addr.clone());
                }
            }
        }
        named
    }
}
