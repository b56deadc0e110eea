//! Bootstrap spreads every group's voters over the nodes' locations: nodes 1 to 3 on
//! one host, node 4 on another, two voters per group: every group has a voter on each
//! host (round robin over the ids would put groups on nodes 1 and 2, one host);
//! `Status` reports the node's location.

use crate::config::DirectoryConfig;
use oxio_proto::v1::{BootstrapRequest, GroupMember, StatusRequest};
use oxio_proto::DirectoryClient;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_spreads_groups_over_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let mut members = Vec::new();
    let mut host_of = HashMap::new();
    let mut started = Vec::new();
    for id in 1..=4u64 {
        let mut cfg = DirectoryConfig::new(id, tmp.path().join(format!("n{id}")));
        cfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let host = if id <= 3 { "a" } else { "b" };
        cfg.location = format!("dc1.rack1.{host}.meta{id}");
        let s = crate::start(cfg, stop.child_token()).await.unwrap();
        members.push(GroupMember {
            node_id: id,
            addr: s.addr.to_string(),
        });
        host_of.insert(id, host);
        started.push(s);
    }
    let mut c = DirectoryClient::new(oxio_proto::channel(&members[0].addr).unwrap());
    let status = c.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.location, "dc1.rack1.a.meta1");
    let reply = c
        .bootstrap(BootstrapRequest {
            replicas: 2,
            meta1_groups: 2,
            meta2_groups: 3,
            nodes: members.clone(),
            forwarded: false,
            node_locations: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    let table = reply.table.unwrap();
    assert_eq!(table.groups.len(), 6);
    for g in &table.groups {
        assert_eq!(g.members.len(), 2);
        let hosts: HashSet<&str> = g.members.iter().map(|m| host_of[&m.node_id]).collect();
        assert_eq!(hosts.len(), 2, "group {} has voters on one host only", g.id);
    }
    stop.cancel();
    for s in started {
        let _ = s.task.await;
    }
}
