//! A replicated directory over three in-process nodes: bootstrap refusal and success,
//! idempotence, follower redirects, the sdk over the cluster, leader failover and a
//! restarted node catching up.

use crate::config::DirectoryConfig;
use crate::status::LEADER_METADATA;
use crate::Started;
use oxio_proto::v1::{
    BootstrapReply, BootstrapRequest, GroupKind, GroupMember, InitContainerRequest, StatusReply,
    StatusRequest,
};
use oxio_proto::DirectoryClient;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const DEADLINE: Duration = Duration::from_secs(30);

struct TestNode {
    id: u64,
    addr: SocketAddr,
    dir: PathBuf,
    stop: CancellationToken,
    started: Option<Started>,
}

async fn start_node(id: u64, dir: PathBuf, listen: SocketAddr) -> TestNode {
    let mut cfg = DirectoryConfig::new(id, dir.clone());
    cfg.listen = listen;
    let stop = CancellationToken::new();
    let started = crate::start(cfg, stop.clone()).await.unwrap();
    TestNode {
        id,
        addr: started.addr,
        dir,
        stop,
        started: Some(started),
    }
}

impl TestNode {
    fn member(&self) -> GroupMember {
        GroupMember {
            node_id: self.id,
            addr: self.addr.to_string(),
        }
    }

    fn client(&self) -> DirectoryClient<Channel> {
        DirectoryClient::new(oxio_proto::channel(&self.addr.to_string()).unwrap())
    }

    async fn status(&self) -> StatusReply {
        self.client()
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(s) = self.started.take() {
            s.task.await.unwrap().unwrap();
        }
    }

    async fn restart(&mut self) {
        let again = start_node(self.id, self.dir.clone(), self.addr).await;
        self.stop = again.stop;
        self.started = again.started;
    }
}

fn request(nodes: Vec<GroupMember>) -> BootstrapRequest {
    BootstrapRequest {
        replicas: 3,
        meta1_groups: 2,
        meta2_groups: 3,
        nodes,
        forwarded: false,
        node_locations: Default::default(),
    }
}

/// Leader node id of every group, polled until each group has one.
async fn leaders(nodes: &[&TestNode], groups: usize) -> HashMap<u64, u64> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut out = HashMap::new();
        for n in nodes {
            for g in n.status().await.groups {
                if g.is_leader {
                    out.insert(g.group.unwrap().id, n.id);
                }
            }
        }
        if out.len() == groups || Instant::now() > deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn check_table(reply: &BootstrapReply, ids: &[u64]) {
    let table = reply.table.as_ref().unwrap();
    assert_eq!(table.prefix_to_meta1.len(), oxio_common::PREFIX_COUNT);
    assert_eq!(table.groups.len(), 1 + 2 + 3);
    for g in &table.groups {
        let mut members: Vec<u64> = g.members.iter().map(|m| m.node_id).collect();
        members.sort_unstable();
        assert_eq!(members, ids, "group {}", g.id);
    }
    let meta2 = table
        .groups
        .iter()
        .filter(|g| g.kind == GroupKind::Meta2 as i32)
        .count();
    assert_eq!(meta2, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_bootstrap_serve_fail_over_and_catch_up() {
    let tmp = tempfile::tempdir().unwrap();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut n1 = start_node(1, tmp.path().join("n1"), any).await;
    let mut n2 = start_node(2, tmp.path().join("n2"), any).await;
    // A listed node that is down: its port was bound once and released.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_addr = gone.local_addr().unwrap().to_string();
    drop(gone);

    // Two nodes up for three replicas: refused, naming what is missing.
    let down = GroupMember {
        node_id: 3,
        addr: gone_addr,
    };
    let err = n1
        .client()
        .bootstrap(request(vec![n1.member(), n2.member(), down]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message()
            .starts_with("need 3 directory nodes up, found 2:"),
        "{}",
        err.message()
    );
    assert!(
        n1.status().await.groups.is_empty(),
        "refusal created groups"
    );

    // Duplicate ids are refused before anything happens.
    let err = n1
        .client()
        .bootstrap(request(vec![n1.member(), n1.member()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let mut n3 = start_node(3, tmp.path().join("n3"), any).await;
    let all = vec![n1.member(), n2.member(), n3.member()];
    let first = n1
        .client()
        .bootstrap(request(all.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.already_bootstrapped);
    check_table(&first, &[1, 2, 3]);

    // Every node hosts every group, and every group has one leader.
    for n in [&n1, &n2, &n3] {
        assert_eq!(n.status().await.groups.len(), 6, "node {}", n.id);
    }
    let led = leaders(&[&n1, &n2, &n3], 6).await;
    assert_eq!(led.len(), 6, "{led:?}");

    // A second bootstrap, through another node, answers what exists.
    let again = n2
        .client()
        .bootstrap(request(all.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(again.already_bootstrapped);
    check_table(&again, &[1, 2, 3]);
    assert_eq!(
        again.table.as_ref().unwrap().prefix_to_meta1,
        first.table.as_ref().unwrap().prefix_to_meta1
    );

    // A write sent to a follower is redirected to the leader.
    let nodes = [&n1, &n2, &n3];
    let m2 = 1000;
    let leader_id = led[&m2];
    let leader = nodes.iter().find(|n| n.id == leader_id).unwrap();
    let follower = nodes.iter().find(|n| n.id != leader_id).unwrap();
    let err = follower
        .client()
        .init_container(InitContainerRequest {
            group: m2,
            cid: "AB".repeat(32),
            account: "a".into(),
            name: "c".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(
        err.metadata()
            .get(LEADER_METADATA)
            .unwrap()
            .to_str()
            .unwrap(),
        leader.addr.to_string()
    );

    // The sdk, seeded with a follower only, follows redirects transparently.
    let mut cfg =
        oxio_sdk::ClientConfig::new(vec!["127.0.0.1:1".into()], vec![follower.addr.to_string()]);
    cfg.retry_deadline = DEADLINE;
    let sdk = oxio_sdk::Client::new(cfg).unwrap();
    sdk.create_account("acct").await.unwrap();
    let rec = sdk.create_container("acct", "bucket").await.unwrap();
    put(&sdk, "k0", b"zero").await;

    // Stop the leader of the container's meta2 group; the next write succeeds once a
    // new leader is elected.
    let group = rec.meta2_group;
    let leader_id = led[&group];
    let survivors: Vec<&TestNode> = nodes.into_iter().filter(|n| n.id != leader_id).collect();
    let ids: Vec<u64> = survivors.iter().map(|n| n.id).collect();
    let stopped = match leader_id {
        1 => &mut n1,
        2 => &mut n2,
        _ => &mut n3,
    };
    let t0 = Instant::now();
    stopped.stop().await;
    put(&sdk, "k1", b"one").await;
    eprintln!(
        "meta2 group {group}: first acknowledged write {:?} after its leader (node {leader_id}) stopped",
        t0.elapsed()
    );
    let h = sdk.head_object("acct", "bucket", "k1").await.unwrap();
    assert_eq!(h.size, 3);

    // The stopped node restarts from its RocksDB and catches up.
    stopped.restart().await;
    let n1r = &n1;
    let n2r = &n2;
    let n3r = &n3;
    let all_nodes = [n1r, n2r, n3r];
    let restarted = all_nodes.iter().find(|n| n.id == leader_id).unwrap();
    let others: Vec<&&TestNode> = all_nodes.iter().filter(|n| ids.contains(&n.id)).collect();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut target = 0;
        for o in &others {
            for g in o.status().await.groups {
                if g.is_leader && g.group.as_ref().unwrap().id == group {
                    target = g.last_log_index;
                }
            }
        }
        let applied = restarted
            .status()
            .await
            .groups
            .into_iter()
            .find(|g| g.group.as_ref().unwrap().id == group)
            .map(|g| g.applied_index)
            .unwrap_or(0);
        if target > 0 && applied >= target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted node applied {applied} of {target}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(restarted.status().await.groups.len(), 6);

    for n in [&mut n1, &mut n2, &mut n3] {
        n.stop().await;
    }
}

async fn put(sdk: &oxio_sdk::Client, key: &str, data: &'static [u8]) {
    let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(data))]);
    sdk.put_object("acct", "bucket", key, body, Default::default())
        .await
        .unwrap();
}
