//! `ConscienceAdmin.DeregisterService` against a real conscience on 127.0.0.1:0: the
//! service leaves the listing, the lock file forgets it (so that it is new again
//! after a restart), and bad requests are refused.

use oxio_conscience::{start, ConscienceConfig, Started};
use oxio_proto::v1::conscience_admin_client::ConscienceAdminClient;
use oxio_proto::v1::{DeregisterServiceRequest, ListServicesRequest, ServiceInfo};
use oxio_proto::ConscienceClient;
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::Code;

type Clients = (ConscienceClient<Channel>, ConscienceAdminClient<Channel>);

async fn serve(config: ConscienceConfig) -> (Started, CancellationToken, Clients) {
    let shutdown = CancellationToken::new();
    let config = ConscienceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    let started = start(config, shutdown.clone()).await.unwrap();
    let ch = oxio_proto::channel(&started.addr.to_string()).unwrap();
    let clients = (
        ConscienceClient::new(ch.clone()),
        ConscienceAdminClient::new(ch),
    );
    (started, shutdown, clients)
}

async fn stop(started: Started, shutdown: CancellationToken) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), started.task)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
}

fn rawx(i: usize) -> ServiceInfo {
    ServiceInfo {
        service_type: "rawx".into(),
        id: format!("rawx-{i}"),
        addr: format!("127.0.0.1:{}", 6200 + i),
        location: format!("local.rack1.host1.vol{i}"),
        stats: HashMap::from([
            ("cpu".to_string(), 100.0),
            ("io".to_string(), 100.0),
            ("space".to_string(), 100.0),
        ]),
    }
}

fn dereg(id: &str) -> DeregisterServiceRequest {
    DeregisterServiceRequest {
        service_type: "rawx".into(),
        id: id.into(),
    }
}

async fn ids(client: &mut ConscienceClient<Channel>) -> Vec<String> {
    client
        .list_services(ListServicesRequest {
            service_type: "rawx".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .services
        .into_iter()
        .map(|s| s.info.unwrap().id)
        .collect()
}

#[tokio::test]
async fn deregistered_service_is_forgotten_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConscienceConfig {
        data_dir: Some(dir.path().to_path_buf()),
        lock_new_services: Some(0),
        score_rise_step: 100,
        ..Default::default()
    };
    let (started, shutdown, (mut client, mut admin)) = serve(config.clone()).await;
    for i in 0..2 {
        client.heartbeat(rawx(i)).await.unwrap();
    }
    let r = admin.deregister_service(dereg("rawx-1")).await.unwrap();
    let r = r.into_inner();
    assert!(r.registered && r.lock_state_changed, "{r:?}");
    assert_eq!(ids(&mut client).await, vec!["rawx-0"]);
    // Unknown now: nothing to do, not an error.
    let r = admin
        .deregister_service(dereg("rawx-1"))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.registered && !r.lock_state_changed, "{r:?}");
    let file = std::fs::read_to_string(dir.path().join("locks.json")).unwrap();
    assert!(
        !file.contains("rawx-1") && file.contains("rawx-0"),
        "{file}"
    );
    stop(started, shutdown).await;

    // After a restart rawx-1 is new again: locked at its first registration, while
    // rawx-0, unlocked by an admin, stays known and unlocked.
    let (started, shutdown, (mut client, mut admin)) = serve(config).await;
    let mut unlock = oxio_proto::v1::LockRequest {
        service_type: "rawx".into(),
        id: "rawx-0".into(),
        score: None,
    };
    client.lock(unlock.clone()).await.unwrap();
    assert_eq!(
        client.heartbeat(rawx(0)).await.unwrap().into_inner().score,
        100
    );
    let again = client.heartbeat(rawx(1)).await.unwrap().into_inner();
    assert_eq!(again.score, 0, "a deregistered service is locked as new");
    unlock.id = "rawx-1".into();
    client.lock(unlock).await.unwrap();
    assert_eq!(ids(&mut client).await, vec!["rawx-0", "rawx-1"]);

    let err = admin
        .deregister_service(DeregisterServiceRequest {
            service_type: String::new(),
            id: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = admin
        .deregister_service(dereg(&"x".repeat(300)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    stop(started, shutdown).await;
}
