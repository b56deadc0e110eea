//! New containers go to meta2 groups chosen by the conscience scores of their
//! members: with three directory nodes each hosting its own meta2 groups (one
//! replica each), a node locked at score 0 gets no new container; unlocked, it takes
//! its share again.

use oxio_proto::v1::{BootstrapRequest, GroupKind};
use oxio_tests::DirectoryNodes;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_avoid_meta2_groups_of_a_locked_directory_node() {
    let grid = DirectoryNodes::new(3).await;
    for id in 1..=3u64 {
        grid.start(id, Duration::ZERO).await;
    }
    let addrs = grid.peers.clone();
    let sdk = oxio_sdk::Client::new(oxio_sdk::ClientConfig::new(
        vec![grid.conscience.clone()],
        addrs.clone(),
    ))
    .unwrap();
    grid.wait_registered(&sdk, 3).await;
    let nodes = sdk.directory_members(&addrs).await.unwrap();
    let reply = sdk
        .directory_bootstrap(
            &addrs[0],
            BootstrapRequest {
                replicas: 1,
                meta1_groups: 1,
                meta2_groups: 6,
                nodes,
                forwarded: false,
                node_locations: Default::default(),
            },
        )
        .await
        .unwrap();
    // Which node hosts each meta2 group.
    let table = reply.table.unwrap();
    let host: HashMap<u64, u64> = table
        .groups
        .iter()
        .filter(|g| g.kind == GroupKind::Meta2 as i32)
        .map(|g| (g.id, g.members[0].node_id))
        .collect();
    assert_eq!(host.len(), 6);
    assert_eq!(host.values().collect::<HashSet<_>>().len(), 3, "{host:?}");

    sdk.create_account("acct").await.unwrap();
    sdk.lock_service("directory", "directory-2", 0)
        .await
        .unwrap();
    let mut on = HashMap::<u64, usize>::new();
    for i in 0..30 {
        let rec = sdk
            .create_container("acct", &format!("locked-{i}"))
            .await
            .unwrap();
        *on.entry(host[&rec.meta2_group]).or_default() += 1;
    }
    assert_eq!(
        on.get(&2),
        None,
        "a container went to the locked node: {on:?}"
    );
    assert!(on.contains_key(&1) && on.contains_key(&3), "{on:?}");

    sdk.unlock_service("directory", "directory-2")
        .await
        .unwrap();
    // Scores rise by a bounded step per heartbeat: wait until node 2 scores again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = sdk.list_services("directory").await.unwrap();
        if s.iter().any(|s| {
            s.info.as_ref().is_some_and(|i| i.id == "directory-2") && s.score > 0 && !s.locked
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "directory-2 did not score again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut on = HashMap::<u64, usize>::new();
    for i in 0..60 {
        let rec = sdk
            .create_container("acct", &format!("open-{i}"))
            .await
            .unwrap();
        *on.entry(host[&rec.meta2_group]).or_default() += 1;
    }
    assert!(on.get(&2).is_some_and(|n| *n > 0), "{on:?}");
    grid.shutdown().await;
}
