//! Two nodes replicating one meta2 group over the real gRPC transport.

use crate::meta2;
use crate::node::{open_db, Node};
use crate::service::DirectoryService;
use crate::status::LEADER_METADATA;
use crate::types::{Command, Reply};
use openraft::BasicNode;
use oxio_proto::v1::directory_server::DirectoryServer;
use oxio_proto::v1::{ContentHeader, GetContentRequest};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct TestNode {
    node: Arc<Node>,
    /// The node's database, to see it closed before its folder is removed.
    db: Arc<rocksdb::DB>,
    addr: String,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn spawn_node(id: u64) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open_db(dir.path()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let node = Node::open(id, addr.clone(), db.clone(), dir.path().join("snapshots"))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let svc = DirectoryServer::new(DirectoryService::new(node.clone()));
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let s = stop.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, s.cancelled_owned())
            .await
    });
    TestNode {
        node,
        db,
        addr,
        stop,
        _dir: dir,
    }
}

const CID: &str = "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789";

/// Stops `node`'s groups and waits until nothing holds it or its database any more
/// (the caller dropped its group handles), so that the database is closed before
/// the test removes its folder: a node or database still held 30 s after the
/// shutdown fails the test (a task that outlives its node's shutdown is a leak, and
/// RocksDB closing after the folder went leaves half of it behind).
async fn close(node: Arc<Node>, db: Arc<rocksdb::DB>) {
    node.shutdown().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    released(&node, "node", deadline).await;
    drop(node);
    released(&db, "database", deadline).await;
}

/// Waits until `arc` is the only reference left, failing the test at `deadline`.
async fn released<T>(arc: &Arc<T>, what: &str, deadline: std::time::Instant) {
    while Arc::strong_count(arc) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} still held by {} other references 30 s after the node's shutdown",
            Arc::strong_count(arc) - 1
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_replicates_between_two_nodes() {
    let a = spawn_node(1).await;
    let b = spawn_node(2).await;
    let ga = a.node.host_group(1000).await.unwrap();
    let gb = b.node.host_group(1000).await.unwrap();
    let members = BTreeMap::from([
        (1, BasicNode::new(a.addr.clone())),
        (2, BasicNode::new(b.addr.clone())),
    ]);
    ga.raft.initialize(members).await.unwrap();
    let timeout = Some(Duration::from_secs(30));
    let m = ga
        .raft
        .wait(timeout)
        .metrics(|m| m.current_leader.is_some(), "leader elected")
        .await
        .unwrap();
    let leader_id = m.current_leader.unwrap();
    let (leader, follower, lg, fg) = if leader_id == 1 {
        (&a, &b, &ga, &gb)
    } else {
        (&b, &a, &gb, &ga)
    };

    let r = lg
        .raft
        .client_write(Command::InitContainer {
            cid: CID.into(),
            account: "acct".into(),
            name: "b".into(),
        })
        .await
        .unwrap();
    assert_eq!(r.data, Reply::Done);
    let header = ContentHeader {
        placement_degraded: false,
        size: 3,
        inline_data: b"abc".to_vec(),
        ..Default::default()
    };
    let r = lg
        .raft
        .client_write(Command::PutContent {
            cid: CID.into(),
            key: "k".into(),
            header: header.encode_to_vec(),
            proposed_version: 42,
            condition: None,
        })
        .await
        .unwrap();
    let written = r.log_id.index;

    // The follower applies the same entries.
    fg.raft
        .wait(timeout)
        .applied_index_at_least(Some(written), "follower caught up")
        .await
        .unwrap();
    let h = meta2::get_content(&fg.sm.view(), CID, "k")
        .unwrap()
        .unwrap();
    assert_eq!(h.version, 42);
    assert_eq!(h.inline_data, b"abc");

    // A read on the follower is redirected to the leader.
    let mut c = follower.node.channels().client(&follower.addr).unwrap();
    let err = c
        .get_content(GetContentRequest {
            group: 1000,
            cid: CID.into(),
            key: "k".into(),
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
        leader.addr
    );
    // The same read on the leader succeeds.
    let mut c = leader.node.channels().client(&leader.addr).unwrap();
    let rec = c
        .get_content(GetContentRequest {
            group: 1000,
            cid: CID.into(),
            key: "k".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rec.header.unwrap().version, 42);

    // A third node joins after the leader compacted its log: it can only catch up
    // through a snapshot streamed over the Raft transport.
    lg.raft.trigger().snapshot().await.unwrap();
    lg.raft
        .wait(timeout)
        .metrics(
            |m| m.snapshot.map(|s| s.index) >= Some(written),
            "snapshot built",
        )
        .await
        .unwrap();
    lg.raft.trigger().purge_log(written).await.unwrap();
    lg.raft
        .wait(timeout)
        .metrics(|m| m.purged.map(|p| p.index) >= Some(written), "log purged")
        .await
        .unwrap();
    let c = spawn_node(3).await;
    let gc = c.node.host_group(1000).await.unwrap();
    lg.raft
        .add_learner(3, BasicNode::new(c.addr.clone()), true)
        .await
        .unwrap();
    gc.raft
        .wait(timeout)
        .applied_index_at_least(Some(written), "learner caught up")
        .await
        .unwrap();
    assert!(gc.raft.metrics().borrow().snapshot.is_some());
    let h = meta2::get_content(&gc.sm.view(), CID, "k")
        .unwrap()
        .unwrap();
    assert_eq!(h.inline_data, b"abc");
    let stats = meta2::container_meta(&gc.sm.view(), CID).unwrap().unwrap();
    assert_eq!((stats.objects, stats.bytes), (1, 3));

    drop((ga, gb, gc));
    for n in [a, b, c] {
        n.stop.cancel();
        close(n.node, n.db).await;
    }
}

/// Concurrent reads of a replicated group wait for one leadership check together
/// (a heartbeat round to the follower) instead of one each; every one of them
/// then sees the write acknowledged before, and on the follower every one is told
/// where the leader is.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_reads_share_one_leadership_check() {
    const READS: usize = 64;
    let a = spawn_node(1).await;
    let b = spawn_node(2).await;
    let ga = a.node.host_group(1000).await.unwrap();
    let gb = b.node.host_group(1000).await.unwrap();
    let members = BTreeMap::from([
        (1, BasicNode::new(a.addr.clone())),
        (2, BasicNode::new(b.addr.clone())),
    ]);
    ga.raft.initialize(members).await.unwrap();
    let m = ga
        .raft
        .wait(Some(Duration::from_secs(30)))
        .metrics(|m| m.current_leader.is_some(), "leader elected")
        .await
        .unwrap();
    let (lg, fg) = if m.current_leader == Some(1) {
        (&ga, &gb)
    } else {
        (&gb, &ga)
    };
    let init = Command::InitContainer {
        cid: CID.into(),
        account: "acct".into(),
        name: "b".into(),
    };
    assert_eq!(lg.proposer.propose(init).await.unwrap().0, Reply::Done);
    let put = Command::PutContent {
        cid: CID.into(),
        key: "k".into(),
        header: ContentHeader {
            size: 1,
            inline_data: b"x".to_vec(),
            ..Default::default()
        }
        .encode_to_vec(),
        proposed_version: 7,
        condition: None,
    };
    lg.proposer.propose(put).await.unwrap();

    // All reads are queued before the barrier's task runs (one thread, FIFO).
    let before = lg.reads.checks();
    let reads: Vec<_> = (0..READS)
        .map(|_| {
            let (reads, sm) = (lg.reads.clone(), lg.sm.clone());
            tokio::spawn(async move {
                reads.wait().await.unwrap();
                meta2::get_content(&sm.view(), CID, "k").unwrap().unwrap()
            })
        })
        .collect();
    for r in reads {
        assert_eq!(r.await.unwrap().version, 7);
    }
    let used = lg.reads.checks() - before;
    assert!(
        (1..=2).contains(&used),
        "{used} leadership checks for {READS} reads"
    );

    let on_follower: Vec<_> = (0..READS)
        .map(|_| {
            let reads = fg.reads.clone();
            tokio::spawn(async move { reads.wait().await })
        })
        .collect();
    for r in on_follower {
        let e = r.await.unwrap().unwrap_err();
        assert!(
            matches!(
                e,
                openraft::error::RaftError::APIError(
                    openraft::error::CheckIsLeaderError::ForwardToLeader(_)
                )
            ),
            "{e:?}"
        );
    }

    drop((ga, gb));
    for n in [a, b] {
        n.stop.cancel();
        close(n.node, n.db).await;
    }
}

/// openraft's own snapshot policy is off: the node's snapshot task builds a group's
/// first snapshot once the minimum of entries is applied, and the log before it is
/// purged but for the entries kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_snapshots_after_the_minimum_of_entries() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open_db(dir.path()).unwrap());
    let node = Node::open_with(
        1,
        "127.0.0.1:1".into(),
        db.clone(),
        dir.path().join("snapshots"),
        crate::node::group_settings_with(20, 5).unwrap(),
    )
    .await
    .unwrap();
    let g = node.host_group(1000).await.unwrap();
    g.raft
        .initialize(BTreeMap::from([(1, BasicNode::new("127.0.0.1:1"))]))
        .await
        .unwrap();
    // A single voter still elects itself after `initialize` returns: a proposal
    // before that is refused with ForwardToLeader.
    g.raft
        .wait(Some(Duration::from_secs(30)))
        .metrics(|m| m.current_leader == Some(1), "leader elected")
        .await
        .unwrap();
    let init = Command::InitContainer {
        cid: CID.into(),
        account: "acct".into(),
        name: "b".into(),
    };
    g.proposer.propose(init).await.unwrap();
    let mut last = 0;
    for i in 0..30 {
        let put = Command::PutContent {
            cid: CID.into(),
            key: format!("k{i}"),
            header: ContentHeader {
                size: 1,
                inline_data: b"x".to_vec(),
                ..Default::default()
            }
            .encode_to_vec(),
            proposed_version: 1 + i,
            condition: None,
        };
        last = g.proposer.propose(put).await.unwrap().1;
    }
    let m = g
        .raft
        .wait(Some(Duration::from_secs(30)))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= 20) && m.purged.is_some(),
            "snapshot built and log purged",
        )
        .await
        .unwrap();
    let snap = m.snapshot.unwrap().index;
    assert!(snap <= last, "snapshot at {snap}, last write {last}");
    assert!(m.purged.unwrap().index + 5 >= snap);
    drop(g);
    close(node, db).await;
}
