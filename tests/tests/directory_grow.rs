//! A directory that grows: three nodes bootstrapped with two meta2 groups, two more
//! nodes join, `AddMeta2Groups` brings the directory to six meta2 groups spread so
//! that the new nodes lead them, a second call changes nothing, new containers land
//! in new groups too and every object stays readable. With automatic growth on, a
//! node that joins gets one meta2 group, led by it, with no admin call.
use bytes::Bytes;
use oxio_proto::v1::{AddMeta2GroupsRequest, BootstrapRequest, GroupKind};
use oxio_tests::DirectoryNodes;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

async fn put(sdk: &oxio_sdk::Client, bucket: &str, key: &str, data: &[u8]) {
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]);
    sdk.put_object("acct", bucket, key, body, Default::default())
        .await
        .unwrap();
}

async fn get(sdk: &oxio_sdk::Client, bucket: &str, key: &str) -> Vec<u8> {
    let h = sdk.head_object("acct", bucket, key).await.unwrap();
    let size = h.size;
    let mut rx = sdk.read_object(h, 0, size);
    let mut out = Vec::new();
    while let Some(piece) = rx.recv().await {
        out.extend_from_slice(&piece.unwrap());
    }
    out
}

/// Bootstraps nodes 1 to 3 (3 replicas, 1 meta1 group, 2 meta2 groups); an sdk
/// client on them.
async fn bootstrap(grid: &DirectoryNodes) -> oxio_sdk::Client {
    let sdk = oxio_sdk::Client::new(oxio_sdk::ClientConfig::new(
        vec![grid.conscience.clone()],
        grid.peers[..3].to_vec(),
    ))
    .unwrap();
    let first3 = sdk.directory_members_up(&grid.peers[..3]).await;
    assert_eq!(first3.len(), 3);
    sdk.directory_bootstrap(
        &grid.peers[0],
        BootstrapRequest {
            replicas: 3,
            meta1_groups: 1,
            meta2_groups: 2,
            nodes: first3,
            forwarded: false,
            node_locations: Default::default(),
        },
    )
    .await
    .unwrap();
    sdk
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_meta2_groups_go_to_the_nodes_that_joined() {
    let grid = DirectoryNodes::new(5).await;
    let peers = &grid.peers;
    for id in 1..=3 {
        grid.start(id, Duration::ZERO).await;
    }
    let sdk = bootstrap(&grid).await;
    sdk.create_account("acct").await.unwrap();
    sdk.create_container("acct", "old").await.unwrap();
    put(&sdk, "old", "k", b"before growing").await;

    // Two nodes join.
    for id in 4..=5 {
        grid.start(id, Duration::ZERO).await;
    }
    grid.wait_registered(&sdk, 5).await;
    let all = sdk.directory_members_up(peers).await;
    assert_eq!(all.len(), 5);
    let grow = |n| AddMeta2GroupsRequest {
        meta2_groups: n,
        replicas: 0,
        nodes: all.clone(),
        forwarded: false,
        plan: Vec::new(),
    };
    let reply = sdk
        .directory_add_meta2_groups(&peers[3], grow(6))
        .await
        .unwrap();
    assert_eq!(reply.added.len(), 4, "{reply:?}");
    let table = reply.table.unwrap();
    let meta2: Vec<_> = table
        .groups
        .iter()
        .filter(|g| g.kind == GroupKind::Meta2 as i32)
        .collect();
    assert_eq!(meta2.len(), 6);
    let mut preferred_leaders = HashMap::<u64, usize>::new();
    for g in &reply.added {
        let members: HashSet<u64> = g.members.iter().map(|m| m.node_id).collect();
        assert_eq!(members.len(), 3, "{g:?}");
        *preferred_leaders.entry(g.members[0].node_id).or_default() += 1;
    }
    assert_eq!(
        preferred_leaders,
        HashMap::from([(4, 2), (5, 2)]),
        "the nodes that joined lead the new groups"
    );
    // Idempotent: six are there.
    let again = sdk
        .directory_add_meta2_groups(&peers[0], grow(6))
        .await
        .unwrap();
    assert!(again.added.is_empty());
    // Every new group has a leader and serves: new containers go there too.
    let new_ids: HashSet<u64> = reply.added.iter().map(|g| g.id).collect();
    let fresh = oxio_sdk::Client::new(oxio_sdk::ClientConfig::new(
        vec![grid.conscience.clone()],
        peers.clone(),
    ))
    .unwrap();
    let mut in_new = 0;
    for i in 0..30 {
        let name = format!("new-{i}");
        let rec = fresh.create_container("acct", &name).await.unwrap();
        if new_ids.contains(&rec.meta2_group) {
            in_new += 1;
            put(&fresh, &name, "k", name.as_bytes()).await;
            assert_eq!(get(&fresh, &name, "k").await, name.as_bytes());
        }
    }
    assert!(in_new > 0, "no new container went to a new group");
    assert_eq!(get(&sdk, "old", "k").await, b"before growing");
    grid.shutdown().await;
}

/// With automatic growth on, a node that joins gets a meta2 group of its own,
/// without any admin call, and only one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_gets_a_meta2_group_by_itself() {
    let grid = DirectoryNodes::new(5).await;
    let every = Duration::from_millis(200);
    for id in 1..=3 {
        grid.start(id, every).await;
    }
    let sdk = bootstrap(&grid).await;
    sdk.create_account("acct").await.unwrap();
    sdk.create_container("acct", "old").await.unwrap();
    put(&sdk, "old", "k", b"before joining").await;
    grid.start(4, every).await;
    grid.wait_registered(&sdk, 4).await;
    // The newcomer hosts a meta2 group and leads it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let group = loop {
        let st = sdk.directory_node_status(&grid.peers[3]).await.unwrap();
        let led = st.groups.iter().find(|g| {
            g.is_leader
                && g.group
                    .as_ref()
                    .is_some_and(|i| i.kind == GroupKind::Meta2 as i32)
        });
        if let Some(g) = led {
            break g.group.clone().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "node 4 got no meta2 group: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(group.members.len(), 3, "{group:?}");
    // meta0 has it, and one group only was added: ten more rounds change nothing.
    tokio::time::sleep(every * 10).await;
    let table = sdk
        .directory_add_meta2_groups(
            &grid.peers[0],
            AddMeta2GroupsRequest {
                meta2_groups: 1,
                replicas: 0,
                nodes: sdk.directory_members_up(&grid.peers[..4]).await,
                forwarded: false,
                plan: Vec::new(),
            },
        )
        .await
        .unwrap()
        .table
        .unwrap();
    let meta2: Vec<u64> = table
        .groups
        .iter()
        .filter(|g| g.kind == GroupKind::Meta2 as i32)
        .map(|g| g.id)
        .collect();
    assert_eq!(meta2.len(), 3, "{meta2:?}");
    assert!(meta2.contains(&group.id));
    assert_eq!(get(&sdk, "old", "k").await, b"before joining");
    grid.shutdown().await;
}
