//! A real node in-process: bootstrap, meta1 and meta2 calls through the gRPC client,
//! restart on the same data directory.

use oxio_directory::{start, BootstrapSpec, DirectoryConfig};
use oxio_proto::v1::*;
use oxio_proto::DirectoryClient;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const META1: u32 = 2;
const META2: u32 = 3;

fn config(dir: &std::path::Path) -> DirectoryConfig {
    let mut c = DirectoryConfig::new(1, dir);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.bootstrap = Some(BootstrapSpec {
        meta1_groups: META1,
        meta2_groups: META2,
    });
    c
}

fn client(addr: std::net::SocketAddr) -> DirectoryClient<Channel> {
    DirectoryClient::new(oxio_proto::channel(&addr.to_string()).unwrap())
}

/// Polls until every group reports a leader and meta0 answers.
async fn wait_ready(c: &mut DirectoryClient<Channel>) -> Meta0Table {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = c.status(StatusRequest {}).await.unwrap().into_inner();
        let all_led = !status.groups.is_empty() && status.groups.iter().all(|g| g.is_leader);
        if all_led {
            if let Ok(t) = c.get_meta0(GetMeta0Request {}).await {
                return t.into_inner();
            }
        }
        assert!(
            Instant::now() < deadline,
            "groups never got leaders: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn header(size: u64, data: &[u8]) -> ContentHeader {
    // Every upload has its own content id (the directory recognises a retried put by it).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut content_id = vec![7; 16];
    content_id[..8].copy_from_slice(&n.to_be_bytes());
    ContentHeader {
        placement_degraded: false,
        content_id,
        size,
        policy: "INLINE".into(),
        etag: format!("etag-{size}"),
        inline_data: data.to_vec(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_serves_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let token = CancellationToken::new();
    let started = start(config(dir.path()), token.clone()).await.unwrap();
    let mut c = client(started.addr);
    let table = wait_ready(&mut c).await;
    assert_eq!(table.prefix_to_meta1.len(), 65_536);
    assert_eq!(table.prefix_to_meta1[0], 1);
    assert_eq!(table.prefix_to_meta1[65_535], u64::from(META1));
    assert_eq!(table.groups.len(), 1 + META1 as usize + META2 as usize);
    assert!(table
        .groups
        .iter()
        .all(|g| g.leader_addr == started.addr.to_string()));

    // meta1
    let account = "acme";
    let g1 = table.prefix_to_meta1[oxio_common::name_prefix(account) as usize];
    let a = c
        .create_account(CreateAccountRequest {
            group: g1,
            account: account.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let again = c
        .create_account(CreateAccountRequest {
            group: g1,
            account: account.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, again, "create account is idempotent");
    c.put_access_key(PutAccessKeyRequest {
        group: g1,
        key: Some(AccessKeyRecord {
            access_key: "AK1".into(),
            secret_key: "secret".into(),
            account: account.into(),
            ctime_ms: 0,
        }),
    })
    .await
    .unwrap();
    let k = c
        .get_access_key(GetAccessKeyRequest {
            group: g1,
            access_key: "AK1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(k.secret_key, "secret");
    let missing = c
        .get_access_key(GetAccessKeyRequest {
            group: g1,
            access_key: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let cid = oxio_common::container_id(account, "bucket");
    let gc = table.prefix_to_meta1[oxio_common::cid_prefix(&cid).unwrap() as usize];
    let rec = c
        .create_container(CreateContainerRequest {
            group: gc,
            account: account.into(),
            name: "bucket".into(),
            meta2_group: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rec.cid, cid);
    assert!((1000..1000 + u64::from(META2)).contains(&rec.meta2_group));
    let exists = c
        .create_container(CreateContainerRequest {
            group: gc,
            account: account.into(),
            name: "bucket".into(),
            meta2_group: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(exists.code(), tonic::Code::AlreadyExists);
    assert_eq!(exists.message(), "container exists");
    // A client's choice of meta2 group is taken when meta0 lists it as meta2.
    for (name, chosen) in [
        ("chosen-a", 1000u64),
        ("chosen-b", 1000 + u64::from(META2) - 1),
    ] {
        let cid = oxio_common::container_id(account, name);
        let g = table.prefix_to_meta1[oxio_common::cid_prefix(&cid).unwrap() as usize];
        let rec = c
            .create_container(CreateContainerRequest {
                group: g,
                account: account.into(),
                name: name.into(),
                meta2_group: chosen,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rec.meta2_group, chosen);
    }
    let bad_cid = oxio_common::container_id(account, "not-meta2");
    let g = table.prefix_to_meta1[oxio_common::cid_prefix(&bad_cid).unwrap() as usize];
    let bad = c
        .create_container(CreateContainerRequest {
            group: g,
            account: account.into(),
            name: "not-meta2".into(),
            meta2_group: g,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    let listed = c
        .list_containers(ListContainersRequest {
            group: gc,
            account: account.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.containers.contains(&rec), "{:?}", listed.containers);
    assert!(listed.containers.iter().all(|c| c.account == account));

    // wrong kind and unknown group
    let wrong = c
        .get_content(GetContentRequest {
            group: g1,
            cid: cid.clone(),
            key: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::InvalidArgument);
    let unknown = c
        .get_content(GetContentRequest {
            group: 999_999,
            cid: cid.clone(),
            key: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert_eq!(unknown.message(), "group 999999 not hosted here");

    // meta2
    let m2 = rec.meta2_group;
    let no_container = c
        .put_content(PutContentRequest {
            group: m2,
            cid: cid.clone(),
            key: "a".into(),
            header: Some(header(1, b"x")),
            condition: None,
        })
        .await
        .unwrap_err();
    assert_eq!(no_container.code(), tonic::Code::NotFound);
    assert_eq!(no_container.message(), "no such container");
    for _ in 0..2 {
        c.init_container(InitContainerRequest {
            group: m2,
            cid: cid.clone(),
            account: account.into(),
            name: "bucket".into(),
        })
        .await
        .unwrap();
    }
    let p1 = c
        .put_content(PutContentRequest {
            group: m2,
            cid: cid.clone(),
            key: "dir/a".into(),
            header: Some(header(3, b"abc")),
            condition: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(p1.replaced.is_none());
    let p2 = c
        .put_content(PutContentRequest {
            group: m2,
            cid: cid.clone(),
            key: "dir/a".into(),
            header: Some(header(4, b"abcd")),
            condition: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(p2.version > p1.version);
    assert_eq!(p2.replaced.unwrap().version, p1.version);
    for key in ["dir/b", "top"] {
        c.put_content(PutContentRequest {
            group: m2,
            cid: cid.clone(),
            key: key.into(),
            header: Some(header(1, b"z")),
            condition: None,
        })
        .await
        .unwrap();
    }
    let too_long = c
        .put_content(PutContentRequest {
            group: m2,
            cid: cid.clone(),
            key: "k".repeat(1025),
            header: Some(header(1, b"z")),
            condition: None,
        })
        .await
        .unwrap_err();
    assert_eq!(too_long.code(), tonic::Code::InvalidArgument);

    let got = c
        .get_content(GetContentRequest {
            group: m2,
            cid: cid.clone(),
            key: "dir/a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.header.unwrap().inline_data, b"abcd");
    let l = c
        .list_contents(ListContentsRequest {
            group: m2,
            cid: cid.clone(),
            delimiter: "/".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.common_prefixes, vec!["dir/"]);
    assert_eq!(
        l.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        vec!["top"]
    );
    let stats = c
        .container_stats(ContainerStatsRequest {
            group: m2,
            cid: cid.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((stats.objects, stats.bytes), (3, 6));

    let not_empty = c
        .drop_container(DropContainerRequest {
            group: m2,
            cid: cid.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(not_empty.code(), tonic::Code::FailedPrecondition);
    assert_eq!(not_empty.message(), "container not empty");

    let deleted = c
        .delete_content(DeleteContentRequest {
            group: m2,
            cid: cid.clone(),
            key: "dir/b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.key, "dir/b");
    let gone = c
        .get_content(GetContentRequest {
            group: m2,
            cid: cid.clone(),
            key: "dir/b".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    assert_eq!(gone.message(), "no such key");

    // Restart on the same data directory.
    token.cancel();
    started.task.await.unwrap().unwrap();
    let token = CancellationToken::new();
    let started = start(config(dir.path()), token.clone()).await.unwrap();
    let mut c = client(started.addr);
    let table2 = wait_ready(&mut c).await;
    assert_eq!(table2.prefix_to_meta1, table.prefix_to_meta1);
    assert_eq!(table2.groups.len(), table.groups.len());

    let k = c
        .get_access_key(GetAccessKeyRequest {
            group: g1,
            access_key: "AK1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(k.account, account);
    let got = c
        .get_container(GetContainerRequest {
            group: gc,
            cid: cid.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, rec);
    let accounts = c
        .list_accounts(ListAccountsRequest { group: g1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accounts.accounts, vec![a]);
    let l = c
        .list_contents(ListContentsRequest {
            group: m2,
            cid: cid.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        l.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        vec!["dir/a", "top"]
    );
    let p3 = c
        .put_content(PutContentRequest {
            group: m2,
            cid: cid.clone(),
            key: "dir/a".into(),
            header: Some(header(5, b"abcde")),
            condition: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(p3.version > p2.version);

    for key in ["dir/a", "top"] {
        c.delete_content(DeleteContentRequest {
            group: m2,
            cid: cid.clone(),
            key: key.into(),
        })
        .await
        .unwrap();
    }
    c.drop_container(DropContainerRequest {
        group: m2,
        cid: cid.clone(),
    })
    .await
    .unwrap();
    c.delete_container(DeleteContainerRequest {
        group: gc,
        cid: cid.clone(),
    })
    .await
    .unwrap();
    let listed = c
        .list_containers(ListContainersRequest {
            group: gc,
            account: account.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.containers.iter().all(|c| c.cid != cid));

    token.cancel();
    started.task.await.unwrap().unwrap();
}
