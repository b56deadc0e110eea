//! Storage policy choice on a real grid of 6 rawx: the size rule, a bucket default set
//! through meta2 (seen at once by the client that set it), the request's policy over
//! both, and a bucket default that cannot be placed failing cleanly without storing
//! anything.

use bytes::Bytes;
use oxio_common::StoragePolicy;
use oxio_sdk::{Client, Error, PutOptions};
use oxio_tests::TestGrid;

const EC42: StoragePolicy = StoragePolicy::ErasureCoded { k: 4, m: 2 };
const EC84: StoragePolicy = StoragePolicy::ErasureCoded { k: 8, m: 4 };
const TWO: StoragePolicy = StoragePolicy::Replicated { copies: 2 };
const THREE: StoragePolicy = StoragePolicy::Replicated { copies: 3 };

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

async fn put(
    sdk: &Client,
    key: &str,
    data: &[u8],
    known_len: bool,
    policy: Option<StoragePolicy>,
) -> oxio_sdk::Result<String> {
    let body = futures::stream::iter(
        data.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let opts = PutOptions {
        expected_len: known_len.then_some(data.len() as u64),
        policy,
        ..Default::default()
    };
    Ok(sdk.put_object("acct", "bkt", key, body, opts).await?.policy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_then_bucket_then_size_then_default() {
    let grid = TestGrid::start(6).await.unwrap();
    grid.sdk.create_account("acct").await.unwrap();
    grid.sdk.create_container("acct", "bkt").await.unwrap();
    // The grid's own client has no size rule; this one has the default one.
    let mut cfg = grid.sdk.config().clone();
    cfg.small_policy = oxio_sdk::ClientConfig::new(vec![], vec![]).small_policy;
    let sdk = Client::new(cfg).unwrap();
    let small = data(100 * 1024);
    let large = data(1024 * 1024);

    // Size rule: only for a known length under 256 KiB.
    assert_eq!(
        put(&sdk, "s", &small, true, None).await.unwrap(),
        "THREECOPIES"
    );
    assert_eq!(put(&sdk, "s2", &small, false, None).await.unwrap(), "EC42");
    assert_eq!(put(&sdk, "l", &large, true, None).await.unwrap(), "EC42");

    // A bucket default beats the size rule and is seen at once by the client that set it.
    let stats = sdk
        .set_container_policy("acct", "bkt", Some(TWO))
        .await
        .unwrap();
    assert_eq!(stats.policy, "TWOCOPIES");
    assert_eq!(stats.objects, 3);
    assert_eq!(
        put(&sdk, "s", &small, true, None).await.unwrap(),
        "TWOCOPIES"
    );
    assert_eq!(
        put(&sdk, "l", &large, true, None).await.unwrap(),
        "TWOCOPIES"
    );
    // The request's policy beats the bucket default.
    assert_eq!(
        put(&sdk, "r", &large, true, Some(THREE)).await.unwrap(),
        "THREECOPIES"
    );

    // A default the grid cannot place (12 rawx needed, 6 up): a placement error, and
    // nothing stored.
    sdk.set_container_policy("acct", "bkt", Some(EC84))
        .await
        .unwrap();
    match put(&sdk, "x", &large, true, None).await {
        Err(Error::Placement(msg)) => assert!(!msg.is_empty()),
        other => panic!("expected a placement error, got {other:?}"),
    }
    let stats = sdk.container_stats("acct", "bkt").await.unwrap();
    assert_eq!((stats.objects, stats.policy.as_str()), (4, "EC84"));
    assert!(matches!(
        sdk.head_object("acct", "bkt", "x").await,
        Err(Error::NoSuchKey)
    ));

    // Cleared: back to the size rule and the client's default.
    let stats = sdk.set_container_policy("acct", "bkt", None).await.unwrap();
    assert_eq!(stats.policy, "");
    assert_eq!(
        put(&sdk, "l", &large, true, None).await.unwrap(),
        EC42.to_string()
    );
    assert_eq!(
        put(&sdk, "s", &small, true, None).await.unwrap(),
        "THREECOPIES"
    );

    // Every object reads back.
    for (key, want) in [("s", &small), ("s2", &small), ("l", &large), ("r", &large)] {
        let got = grid.get("acct", "bkt", key, 0, None).await.unwrap();
        assert_eq!(&got, want, "{key}");
    }

    // Unknown containers are refused.
    assert!(matches!(
        sdk.set_container_policy("acct", "nope", Some(TWO)).await,
        Err(Error::NoSuchContainer)
    ));
}
