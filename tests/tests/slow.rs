//! A rawx that hangs (accepts connections, moves no byte) costs one fragment
//! deadline, not the request: a GET decodes around its fragment, a PUT completes
//! with the other five fragments and records the missing one.

use oxio_tests::{GridSpec, TestGrid};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_rawx_costs_one_fragment_deadline() {
    let mut grid = TestGrid::start_with(GridSpec {
        rawx: 6,
        fragment_deadline: Some(DEADLINE),
        ..Default::default()
    })
    .await
    .unwrap();
    let proxy = grid.add_stallable_rawx().await.unwrap();
    grid.wait_rawx_up(7).await.unwrap();
    // Six usable rawx for EC 4+2: the one behind the proxy always takes a fragment.
    grid.sdk.lock_service("rawx", "rawx-0", 0).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();
    let data: Vec<u8> = (0..1_500_000).map(|i| (i % 241) as u8).collect();
    // An object whose data fragment (not parity, which a read does not touch) is on
    // the rawx behind the proxy: each put gives it one of the six fragments.
    let mut found = false;
    for _ in 0..30 {
        let h = grid.put("acct", "bkt", "before", &data).await.unwrap();
        assert!(
            h.chunks.iter().any(|c| c.rawx_id == "rawx-6"),
            "{:?}",
            h.chunks
        );
        if h.chunks
            .iter()
            .any(|c| c.rawx_id == "rawx-6" && c.fragment < 4)
        {
            found = true;
            break;
        }
    }
    assert!(found, "rawx-6 never got a data fragment");

    proxy.stall(true);
    let degraded = grid.sdk.config().counters.degraded_reads();
    let t = Instant::now();
    let back = tokio::time::timeout(
        Duration::from_secs(60),
        grid.get("acct", "bkt", "before", 0, None),
    )
    .await
    .expect("GET hung on the stalled rawx")
    .unwrap();
    assert_eq!(back, data);
    assert!(grid.sdk.config().counters.degraded_reads() > degraded);
    eprintln!(
        "GET with one rawx hung: {:?} (fragment deadline {DEADLINE:?})",
        t.elapsed()
    );

    let t = Instant::now();
    let h = tokio::time::timeout(
        Duration::from_secs(60),
        grid.put("acct", "bkt", "during", &data),
    )
    .await
    .expect("PUT hung on the stalled rawx")
    .unwrap();
    eprintln!("PUT with one rawx hung: {:?}", t.elapsed());
    assert_eq!(
        h.chunks.len(),
        5,
        "five of six fragments, the hung one missing"
    );
    assert!(h.chunks.iter().all(|c| c.rawx_id != "rawx-6"));
    proxy.stall(false);
    assert_eq!(
        grid.get("acct", "bkt", "during", 0, None).await.unwrap(),
        data
    );
    // The missing slot is recorded for repair.
    let report = grid
        .sdk
        .complete_missing(oxio_sdk::rebuild::RebuildOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.progress.done, 1, "{report:?}");
}
