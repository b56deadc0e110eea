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
    /// Applied to the config of every start (restarts included).
    tune: fn(&mut DirectoryConfig),
}

async fn start_node(id: u64, dir: PathBuf, listen: SocketAddr) -> TestNode {
    start_tuned(id, dir, listen, |_| {}).await
}

async fn start_tuned(
    id: u64,
    dir: PathBuf,
    listen: SocketAddr,
    tune: fn(&mut DirectoryConfig),
) -> TestNode {
    let mut cfg = DirectoryConfig::new(id, dir.clone());
    cfg.listen = listen;
    tune(&mut cfg);
    let stop = CancellationToken::new();
    let started = crate::start(cfg, stop.clone()).await.unwrap();
    TestNode {
        id,
        addr: started.addr,
        dir,
        stop,
        started: Some(started),
        tune,
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
        let again = start_tuned(self.id, self.dir.clone(), self.addr, self.tune).await;
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
    // A listed node that is down: its port is bound but nothing listens (so no other
    // socket takes it during the test), and every connection is refused.
    let gone = tokio::net::TcpSocket::new_v4().unwrap();
    gone.bind(any).unwrap();
    let gone_addr = gone.local_addr().unwrap().to_string();

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

/// `GET /metrics` of a node, as text.
async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Snapshots every 50 entries, 5 entries of log kept: a voter stopped while 200
/// writes go by finds the leaders' logs purged past it, so it restarts into a
/// snapshot install, then serves every object once the others stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voter_left_behind_catches_up_from_a_snapshot() {
    fn tune(cfg: &mut DirectoryConfig) {
        cfg.snapshot_every_entries = 50;
        cfg.log_kept_after_snapshot = 5;
        cfg.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    let tmp = tempfile::tempdir().unwrap();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut n1 = start_tuned(1, tmp.path().join("n1"), any, tune).await;
    let mut n2 = start_tuned(2, tmp.path().join("n2"), any, tune).await;
    let mut n3 = start_tuned(3, tmp.path().join("n3"), any, tune).await;
    let mut req = request(vec![n1.member(), n2.member(), n3.member()]);
    req.meta2_groups = 1;
    n1.client().bootstrap(req).await.unwrap();
    leaders(&[&n1, &n2, &n3], 1 + 2 + 1).await;
    let seeds = vec![
        n1.addr.to_string(),
        n2.addr.to_string(),
        n3.addr.to_string(),
    ];
    let mut cfg = oxio_sdk::ClientConfig::new(vec!["127.0.0.1:1".into()], seeds);
    cfg.retry_deadline = DEADLINE;
    let sdk = oxio_sdk::Client::new(cfg).unwrap();
    sdk.create_account("acct").await.unwrap();
    sdk.create_container("acct", "bucket").await.unwrap();
    put(&sdk, "first", b"before").await;

    n3.stop().await;
    for i in 0..200 {
        put(&sdk, &format!("k{i:03}"), b"while node 3 was down").await;
    }
    // Each node decides on its own snapshots, checking twice a second.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut built = 0.0;
        for n in [&n1, &n2] {
            let m = n.started.as_ref().unwrap().metrics_addr.unwrap();
            built += counter(
                &scrape(m).await,
                "oxio_directory_raft_snapshots_built_total",
            );
        }
        if built >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leaders built {built} snapshots"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    n3.restart().await;
    let m3 = n3.started.as_ref().unwrap().metrics_addr.unwrap();
    let deadline = Instant::now() + DEADLINE;
    while counter(
        &scrape(m3).await,
        "oxio_directory_raft_snapshots_installed_total",
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "node 3 installed no snapshot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Node 3 holds everything: with node 1 stopped, nodes 2 and 3 serve it all.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let lagging = n3
            .status()
            .await
            .groups
            .iter()
            .any(|g| g.group.as_ref().unwrap().id == 1000 && g.applied_index < 200);
        if !lagging {
            break;
        }
        assert!(Instant::now() < deadline, "node 3 did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    n1.stop().await;
    for key in ["first", "k000", "k123", "k199"] {
        let h = sdk.head_object("acct", "bucket", key).await.unwrap();
        assert!(h.size > 0, "{key}");
    }
    let listed = sdk
        .list_objects("acct", "bucket", "", "", "", 1000)
        .await
        .unwrap();
    assert_eq!(listed.entries.len(), 201);
    for n in [&mut n2, &mut n3] {
        n.stop().await;
    }
}
