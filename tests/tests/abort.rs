//! An upload abandoned half way (the client's body fails) leaves nothing behind:
//! no committed chunk and no `.pending` file on any rawx, and no object.

use bytes::Bytes;
use oxio_tests::TestGrid;
use std::path::Path;
use std::time::{Duration, Instant};

/// Chunk files (64 hex names) and `.pending` files under a volume.
fn chunk_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                chunk_files(&p)
            } else {
                let name = e.file_name().to_string_lossy().into_owned();
                usize::from(
                    name.ends_with(".pending")
                        || (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())),
                )
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_upload_leaves_no_chunk() {
    let grid = TestGrid::start(6).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();
    // 3 MiB of good bytes, then the client's connection fails.
    let mut pieces: Vec<Result<Bytes, std::io::Error>> = (0..48)
        .map(|_| Ok(Bytes::from(vec![7u8; 64 * 1024])))
        .collect();
    pieces.push(Err(std::io::Error::other("client went away")));
    let r = grid
        .sdk
        .put_object(
            "acct",
            "bkt",
            "half",
            futures::stream::iter(pieces),
            Default::default(),
        )
        .await;
    assert!(matches!(r, Err(oxio_sdk::Error::Body(_))), "{r:?}");
    assert!(matches!(
        grid.sdk.head_object("acct", "bkt", "half").await,
        Err(oxio_sdk::Error::NoSuchKey)
    ));
    let volumes: Vec<_> = (0..6)
        .map(|i| grid.dir.path().join(format!("vol{i}")))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: usize = volumes.iter().map(|v| chunk_files(v)).sum();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} chunk files left after an abandoned upload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The grid still takes a complete object afterwards.
    let data = vec![9u8; 2 << 20];
    grid.put("acct", "bkt", "whole", &data).await.unwrap();
    assert!(grid.get("acct", "bkt", "whole", 0, None).await.unwrap() == data);
}
