//! `complete_missing`: with 5 real rawx and a sixth registered at an address that
//! refuses connections, every EC 4+2 put succeeds with 5 of 6 fragments (the k+1
//! quorum). meta2 lists those contents as incomplete; once two more rawx join and the
//! dead one is locked out, the repair regenerates every missing fragment: each
//! metachunk has 6 fragments again, each reads back from its rawx, the index is empty
//! and the objects read back even with two of the original rawx stopped.

use bytes::Bytes;
use oxio_common::StoragePolicy;
use oxio_proto::v1::ServiceInfo;
use oxio_proto::ConscienceClient;
use oxio_sdk::rawx::RawxClient;
use oxio_sdk::rebuild::RebuildOptions;
use oxio_sdk::PutOptions;
use oxio_tests::{random_bytes as random, TestGrid};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const DEAD: &str = "rawx-dead";

/// Heartbeats a rawx `DEAD` at `addr` (nothing listens there) until aborted.
fn fake_rawx(conscience: Vec<String>, addr: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let info = ServiceInfo {
            service_type: "rawx".into(),
            id: DEAD.into(),
            addr,
            location: "local.rack1.host1.vol99".into(),
            stats: [("cpu", 90.0), ("io", 90.0), ("space", 90.0)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        };
        let mut clients = Vec::new();
        for c in conscience {
            clients.push(
                ConscienceClient::connect(format!("http://{c}"))
                    .await
                    .unwrap(),
            );
        }
        loop {
            for c in &mut clients {
                let _ = c.heartbeat(info.clone()).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_fragments_are_completed() {
    let mut grid = TestGrid::start(5).await.unwrap();
    let (_held, refused) = oxio_tests::refused_addr();
    let fake = fake_rawx(grid.conscience_addrs(), refused.to_string());
    grid.wait_rawx_up(6).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();

    let ec = StoragePolicy::ErasureCoded { k: 4, m: 2 };
    let mut objects = Vec::new();
    for (i, n) in [40_000usize, (1 << 20) + 3, 3 * (1 << 20) + 777]
        .into_iter()
        .enumerate()
    {
        let key = format!("ec-{i}");
        let data = random(n);
        let body = futures::stream::iter(
            data.chunks(64 * 1024)
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let opts = PutOptions {
            expected_len: Some(n as u64),
            policy: Some(ec),
            ..Default::default()
        };
        let h = grid
            .sdk
            .put_object("acct", "bkt", &key, body, opts)
            .await
            .unwrap();
        assert_eq!(
            h.chunks.len(),
            5,
            "{key}: the dead rawx's fragment is missing"
        );
        assert!(h.chunks.iter().all(|c| c.rawx_id != DEAD));
        objects.push((key, data));
    }

    // The dead rawx goes away for good; two live ones join.
    fake.abort();
    grid.sdk.lock_service("rawx", DEAD, 0).await.unwrap();
    grid.add_rawx(2, None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while grid
        .sdk
        .list_services("rawx")
        .await
        .unwrap()
        .iter()
        .filter(|s| s.up && s.score > 0 && s.info.as_ref().is_some_and(|i| i.id != DEAD))
        .count()
        < 7
    {
        assert!(Instant::now() < deadline, "new rawx not up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let report = grid
        .sdk
        .complete_missing(RebuildOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.progress.total, objects.len() as u64, "{report:?}");
    assert_eq!(report.progress.done, objects.len() as u64, "{report:?}");

    let rawx = RawxClient::new(Duration::from_secs(5)).unwrap();
    for (key, _) in &objects {
        let h = grid.sdk.head_object("acct", "bkt", key).await.unwrap();
        let slots: BTreeSet<(u32, u32)> =
            h.chunks.iter().map(|c| (c.metachunk, c.fragment)).collect();
        assert_eq!(slots.len(), 6, "{key}: {slots:?}");
        assert_eq!(h.chunks.len(), 6);
        let places: BTreeSet<&str> = h.chunks.iter().map(|c| c.rawx_id.as_str()).collect();
        assert_eq!(places.len(), 6, "{key}: fragments share a rawx");
        for c in &h.chunks {
            assert_ne!(c.rawx_id, DEAD);
            let mut r = rawx.get(&c.addr, &c.chunk_id, 0, c.size).await.unwrap();
            let got = r.read_exact(c.size as usize).await.unwrap();
            assert_eq!(got.len() as u64, c.size);
        }
    }

    // Nothing left: a second run finds nothing.
    let again = grid
        .sdk
        .complete_missing(RebuildOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(again.progress.total, 0, "{again:?}");

    // Two original rawx stopped: every object still reads (it needs the new fragments).
    grid.stop_rawx(0).await.unwrap();
    grid.stop_rawx(1).await.unwrap();
    for (key, data) in &objects {
        let got = grid.get("acct", "bkt", key, 0, None).await.unwrap();
        assert!(got == *data, "{key} differs after the repair");
    }
}
