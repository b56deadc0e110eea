//! Several conscience replicas: every service reports to all of them, a lock is applied
//! on all of them, and the sdk keeps placing and listing while one is down.

use oxio_proto::v1::ListServicesRequest;
use oxio_tests::{GridSpec, TestGrid};
use std::time::{Duration, Instant};

/// (id, up, locked, score) of every rawx one conscience replica lists.
async fn listed(addr: &str) -> Vec<(String, bool, bool, i32)> {
    let mut c = oxio_proto::ConscienceClient::new(oxio_proto::channel(addr).unwrap());
    let mut v: Vec<_> = c
        .list_services(ListServicesRequest {
            service_type: "rawx".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .services
        .into_iter()
        .map(|s| {
            let id = s.info.map(|i| i.id).unwrap_or_default();
            (id, s.up, s.locked, s.score)
        })
        .collect();
    v.sort();
    v
}

/// Polls until `cond` holds for the listing of `addr`.
async fn wait_listing(addr: &str, what: &str, cond: impl Fn(&[(String, bool, bool, i32)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = listed(addr).await;
        if cond(&l) {
            return;
        }
        assert!(Instant::now() < deadline, "{addr}: {what}: {l:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_report_to_every_replica_and_clients_use_any_live_one() {
    let grid = TestGrid::start_with(GridSpec {
        rawx: 7,
        consciences: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let addrs = grid.conscience_addrs();
    assert_eq!(addrs.len(), 2);
    for a in &addrs {
        wait_listing(a, "every rawx up on this replica", |l| {
            l.len() == 7 && l.iter().all(|s| s.1 && s.3 > 0)
        })
        .await;
    }

    // A lock goes to every replica.
    grid.sdk.lock_service("rawx", "rawx-0", 0).await.unwrap();
    for a in &addrs {
        wait_listing(a, "rawx-0 locked at 0", |l| {
            l.iter().any(|s| s.0 == "rawx-0" && s.2 && s.3 == 0)
        })
        .await;
    }

    // One replica down: writes still get placed (never on the locked rawx), listings
    // still answer.
    grid.stop_conscience(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while oxio_proto::ConscienceClient::new(oxio_proto::channel(&addrs[0]).unwrap())
        .list_services(ListServicesRequest::default())
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "conscience 0 still answers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();
    for i in 0..10 {
        let data = vec![i as u8; 100_000];
        let key = format!("k{i}");
        let h = grid.put("acct", "bkt", &key, &data).await.unwrap();
        assert_eq!(h.chunks.len(), 6);
        assert!(
            h.chunks.iter().all(|c| c.rawx_id != "rawx-0"),
            "a chunk of {key} landed on the locked rawx"
        );
        assert_eq!(grid.get("acct", "bkt", &key, 0, None).await.unwrap(), data);
    }
    let services = grid.sdk.list_services("rawx").await.unwrap();
    assert_eq!(services.len(), 7, "the live replica answers the listing");

    // A lock change while a replica is down is applied where it can be and reported
    // as partial, naming the replica that missed it.
    let err = grid
        .sdk
        .unlock_service("rawx", "rawx-0")
        .await
        .expect_err("one replica is down");
    let msg = err.to_string();
    assert!(
        msg.contains("1 of 2") && msg.contains(&addrs[0]),
        "the error names the replica that missed the unlock: {msg}"
    );
    wait_listing(&addrs[1], "rawx-0 unlocked on the live replica", |l| {
        l.iter().any(|s| s.0 == "rawx-0" && !s.2)
    })
    .await;
}
