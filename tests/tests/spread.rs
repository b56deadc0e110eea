//! When locked, down or full services force two copies onto one host although the
//! topology has enough hosts, the content records it (`placement_degraded`) so it can
//! be improved later; with every host usable it does not.

use bytes::Bytes;
use oxio_common::StoragePolicy;
use oxio_tests::TestGrid;
use std::collections::HashSet;

async fn put_three_copies(grid: &TestGrid, key: &str) -> oxio_sdk::ContentHeader {
    let data = vec![7u8; 100_000];
    let opts = oxio_sdk::PutOptions {
        expected_len: Some(data.len() as u64),
        policy: Some(StoragePolicy::Replicated { copies: 3 }),
        ..Default::default()
    };
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data))]);
    grid.sdk
        .put_object("acct", "bkt", key, body, opts)
        .await
        .unwrap()
}

fn hosts(h: &oxio_sdk::ContentHeader) -> HashSet<String> {
    // rawx-0,1 on host1, rawx-2,3 on host2, rawx-4,5 on host3.
    h.chunks
        .iter()
        .map(|c| {
            let i: usize = c.rawx_id.trim_start_matches("rawx-").parse().unwrap();
            format!("host{}", i / 2 + 1)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contents_placed_with_less_spread_are_flagged() {
    let mut grid = TestGrid::start(0).await.unwrap();
    for host in ["host1", "host2", "host3"] {
        grid.add_rawx_on(host, 2, None).unwrap();
    }
    grid.wait_rawx_up(6).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();

    for i in 0..10 {
        let h = put_three_copies(&grid, &format!("spread-{i}")).await;
        assert_eq!(h.chunks.len(), 3);
        assert_eq!(hosts(&h).len(), 3, "three hosts: one copy on each");
        assert!(!h.placement_degraded);
        let again = grid
            .sdk
            .head_object("acct", "bkt", &format!("spread-{i}"))
            .await
            .unwrap();
        assert!(!again.placement_degraded);
    }

    // Host 3 out of placement: two copies must share a host, and the content says so.
    grid.sdk.lock_service("rawx", "rawx-4", 0).await.unwrap();
    grid.sdk.lock_service("rawx", "rawx-5", 0).await.unwrap();
    for i in 0..5 {
        let key = format!("narrow-{i}");
        let h = put_three_copies(&grid, &key).await;
        assert_eq!(hosts(&h).len(), 2);
        assert!(
            h.placement_degraded,
            "{key} sits on two hosts: must be flagged"
        );
        let stored = grid.sdk.head_object("acct", "bkt", &key).await.unwrap();
        assert!(
            stored.placement_degraded,
            "{key}: the flag is stored in meta2"
        );
    }
}
