//! Erasure-coded objects stay readable with any 2 of 6 rawx stopped, and reads fail
//! loudly (never with wrong bytes) once too many are gone, or when the record says
//! more bytes than its metachunks hold.

use oxio_tests::{random_bytes as random, TestGrid};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_two_stopped_rawx() {
    let mut grid = TestGrid::start(6).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();
    let sizes = [100usize, 40_000, (1 << 20) + 3, 5 * (1 << 20) + 777];
    let mut objects = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let data = random(n);
        let h = grid
            .put("acct", "bkt", &format!("o{i}"), &data)
            .await
            .unwrap();
        assert_eq!(h.size, n as u64);
        if n >= 32 * 1024 {
            assert_eq!(h.policy, "EC42");
            assert_eq!(h.chunks.len() as u64, 6 * h.metachunk_sizes.len() as u64);
        } else {
            assert_eq!(h.policy, "INLINE");
        }
        objects.push((format!("o{i}"), data));
    }
    // One data fragment and one parity fragment holder, plus the first data one:
    // which fragment a rawx holds varies per object, so every object loses two.
    grid.stop_rawx(1).await.unwrap();
    grid.stop_rawx(4).await.unwrap();
    for (key, data) in &objects {
        let got = grid.get("acct", "bkt", key, 0, None).await.unwrap();
        assert!(got == *data, "{key} differs with 2 rawx stopped");
        if data.len() > 300_000 {
            let (a, b) = (262_000u64, 300_000u64);
            let got = grid.get("acct", "bkt", key, a, Some(b)).await.unwrap();
            assert!(
                got[..] == data[a as usize..b as usize],
                "{key} range differs"
            );
        }
    }
    // A third loss leaves fewer than k fragments: the read must fail, not lie.
    grid.stop_rawx(2).await.unwrap();
    let (key, _) = &objects[2];
    let r = grid.get("acct", "bkt", key, 0, None).await;
    assert!(r.is_err(), "read with 3 of 6 fragments lost must fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_whose_metachunks_fall_short_of_its_size_ends_the_read_with_an_error() {
    let grid = TestGrid::start(6).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();
    let data = random(100_000);
    grid.put("acct", "bkt", "o", &data).await.unwrap();
    let mut header = grid.sdk.head_object("acct", "bkt", "o").await.unwrap();
    // A record that says more than its metachunks hold (damaged metadata): the
    // stream hands out what there is, then an error, never a clean end.
    header.size += 10;
    let mut rx = grid.sdk.read_object(header.clone(), 0, header.size);
    let mut got = Vec::new();
    let mut failed = None;
    while let Some(piece) = rx.recv().await {
        match piece {
            Ok(b) => got.extend_from_slice(&b),
            Err(e) => failed = Some(e.to_string()),
        }
    }
    assert!(got == data, "the bytes there are");
    let err = failed.expect("the short read ended cleanly");
    assert!(err.contains("short of"), "{err}");
}
