//! In-process gRPC tests: a real conscience on 127.0.0.1:0 driven by the generated
//! client.

use oxio_conscience::{start, ConscienceConfig, Started};
use oxio_proto::v1::{ListServicesRequest, LockRequest, PlaceRequest, ServiceInfo};
use oxio_proto::ConscienceClient;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::Code;

async fn serve(
    config: ConscienceConfig,
) -> (Started, CancellationToken, ConscienceClient<Channel>) {
    let shutdown = CancellationToken::new();
    let config = ConscienceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    let started = start(config, shutdown.clone()).await.unwrap();
    let client = ConscienceClient::new(oxio_proto::channel(&started.addr.to_string()).unwrap());
    (started, shutdown, client)
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

async fn place(
    client: &mut ConscienceClient<Channel>,
    count: u32,
) -> Result<Vec<String>, tonic::Status> {
    let reply = client
        .place(PlaceRequest {
            service_type: "rawx".into(),
            count,
            avoid_ids: vec![],
        })
        .await?
        .into_inner();
    Ok(reply
        .services
        .into_iter()
        .map(|s| s.info.unwrap().id)
        .collect())
}

#[tokio::test]
async fn heartbeat_list_place_and_lock() {
    let (started, shutdown, mut client) = serve(ConscienceConfig::default()).await;
    for i in (0..6).rev() {
        let score = client.heartbeat(rawx(i)).await.unwrap().into_inner().score;
        assert_eq!(score, 10, "a new service starts at the rise step");
    }

    let listed = client
        .list_services(ListServicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .services;
    let ids: Vec<String> = listed
        .iter()
        .map(|s| s.info.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids, (0..6).map(|i| format!("rawx-{i}")).collect::<Vec<_>>());
    for s in &listed {
        assert!(s.up && !s.locked);
        assert_eq!(s.score, 10);
        assert!(s.last_seen_ms_ago < 5_000);
        assert_eq!(s.info.as_ref().unwrap().stats.len(), 3);
    }
    let other = client
        .list_services(ListServicesRequest {
            service_type: "directory".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(other.services.is_empty());

    let six = place(&mut client, 6).await.unwrap();
    assert_eq!(six.iter().collect::<HashSet<_>>().len(), 6);

    client
        .lock(LockRequest {
            service_type: "rawx".into(),
            id: "rawx-2".into(),
            score: Some(0),
        })
        .await
        .unwrap();
    let err = place(&mut client, 6).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("6 needed, 5 eligible"),
        "{}",
        err.message()
    );
    for _ in 0..50 {
        let five = place(&mut client, 5).await.unwrap();
        assert_eq!(five.iter().collect::<HashSet<_>>().len(), 5);
        assert!(!five.contains(&"rawx-2".to_string()));
    }
    let locked = client
        .list_services(ListServicesRequest {
            service_type: "rawx".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .services
        .into_iter()
        .find(|s| s.info.as_ref().unwrap().id == "rawx-2")
        .unwrap();
    assert!(locked.locked && locked.up);
    assert_eq!(locked.score, 0);
    assert_eq!(
        client.heartbeat(rawx(2)).await.unwrap().into_inner().score,
        0
    );

    // Avoid list and unlock.
    let reply = client
        .place(PlaceRequest {
            service_type: "rawx".into(),
            count: 4,
            avoid_ids: vec!["rawx-0".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.services.len(), 4);
    assert!(!reply.distance_degraded, "one host is all this grid has");
    assert!(reply
        .services
        .iter()
        .all(|s| s.info.as_ref().unwrap().id != "rawx-0"));
    client
        .lock(LockRequest {
            service_type: "rawx".into(),
            id: "rawx-2".into(),
            score: None,
        })
        .await
        .unwrap();
    assert_eq!(place(&mut client, 6).await.unwrap().len(), 6);
    stop(started, shutdown).await;
}

#[tokio::test]
async fn invalid_requests_are_refused() {
    let (started, shutdown, mut client) = serve(ConscienceConfig::default()).await;
    let mut bad = rawx(0);
    bad.location = "a..b".into();
    let err = client.heartbeat(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut bad = rawx(0);
    bad.addr.clear();
    assert_eq!(
        client.heartbeat(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let mut bad = rawx(0);
    bad.stats.insert("cpu".into(), f64::INFINITY);
    assert_eq!(
        client.heartbeat(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let mut bad = rawx(0);
    bad.stats.remove("space");
    let err = client.heartbeat(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("`space`"), "{}", err.message());

    let err = place(&mut client, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = place(&mut client, 1).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let err = client
        .lock(LockRequest {
            service_type: "rawx".into(),
            id: "rawx-0".into(),
            score: Some(101),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let listed = client
        .list_services(ListServicesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.services.is_empty(), "nothing invalid got registered");
    stop(started, shutdown).await;
}

#[tokio::test]
async fn score_rises_by_step_and_drops_at_once() {
    let config = ConscienceConfig {
        score_rise_step: 25,
        ..Default::default()
    };
    let (started, shutdown, mut client) = serve(config).await;
    let mut scores = Vec::new();
    for _ in 0..5 {
        scores.push(client.heartbeat(rawx(0)).await.unwrap().into_inner().score);
    }
    assert_eq!(scores, vec![25, 50, 75, 100, 100]);
    let mut low = rawx(0);
    low.stats.insert("space".into(), 3.0);
    assert_eq!(client.heartbeat(low).await.unwrap().into_inner().score, 0);
    // A full volume: the refusal says so, with the expression and the stat.
    let err = place(&mut client, 1).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message()
            .contains("1 needed, 0 eligible; 1 registered: 1 scored 0 by `if(space < 5")
            && err.message().contains("space 3.0"),
        "{}",
        err.message()
    );
    stop(started, shutdown).await;
}

#[tokio::test]
async fn silent_service_goes_down() {
    let config = ConscienceConfig {
        service_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let (started, shutdown, mut client) = serve(config).await;
    client.heartbeat(rawx(0)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = client
            .list_services(ListServicesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .services
            .remove(0);
        if !s.up {
            assert_eq!(s.score, 0);
            assert!(s.last_seen_ms_ago >= 200);
            break;
        }
        assert!(Instant::now() < deadline, "service never went down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = place(&mut client, 1).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message()
            .ends_with("1 registered: 1 down (silent past the timeout)"),
        "{}",
        err.message()
    );
    stop(started, shutdown).await;
}

#[tokio::test]
async fn locks_persist_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConscienceConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let (started, shutdown, mut client) = serve(config.clone()).await;
    // Locking services never seen is allowed.
    for (id, score) in [("rawx-3", 42), ("rawx-4", 0), ("rawx-5", 7)] {
        client
            .lock(LockRequest {
                service_type: "rawx".into(),
                id: id.into(),
                score: Some(score),
            })
            .await
            .unwrap();
    }
    client
        .lock(LockRequest {
            service_type: "rawx".into(),
            id: "rawx-5".into(),
            score: None,
        })
        .await
        .unwrap();
    stop(started, shutdown).await;
    assert!(dir.path().join("locks.json").exists());

    let (started, shutdown, mut client) = serve(config).await;
    assert_eq!(
        client.heartbeat(rawx(3)).await.unwrap().into_inner().score,
        42
    );
    assert_eq!(
        client.heartbeat(rawx(4)).await.unwrap().into_inner().score,
        0
    );
    assert_eq!(
        client.heartbeat(rawx(5)).await.unwrap().into_inner().score,
        10
    );
    let listed = client
        .list_services(ListServicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .services;
    let locked: Vec<(String, bool, i32)> = listed
        .iter()
        .map(|s| (s.info.as_ref().unwrap().id.clone(), s.locked, s.score))
        .collect();
    assert_eq!(
        locked,
        vec![
            ("rawx-3".to_string(), true, 42),
            ("rawx-4".to_string(), true, 0),
            ("rawx-5".to_string(), false, 10)
        ]
    );
    stop(started, shutdown).await;
}

fn lock_req(id: &str, score: Option<i32>) -> LockRequest {
    LockRequest {
        service_type: "rawx".into(),
        id: id.into(),
        score,
    }
}

#[tokio::test]
async fn new_services_locked_at_first_registration_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConscienceConfig {
        data_dir: Some(dir.path().to_path_buf()),
        lock_new_services: Some(0),
        score_rise_step: 100,
        ..Default::default()
    };
    let (started, shutdown, mut client) = serve(config.clone()).await;
    for i in 0..3 {
        assert_eq!(
            client.heartbeat(rawx(i)).await.unwrap().into_inner().score,
            0,
            "rawx-{i} is locked at its first registration"
        );
    }
    // Locked services are never placed, and the refusal says what to do.
    let err = place(&mut client, 1).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message()
            .ends_with("3 registered: 3 locked at score 0 (`oxio cluster unlock`)"),
        "{}",
        err.message()
    );
    client.lock(lock_req("rawx-0", None)).await.unwrap();
    client.lock(lock_req("rawx-1", Some(30))).await.unwrap();
    assert_eq!(
        client.heartbeat(rawx(0)).await.unwrap().into_inner().score,
        100
    );
    assert_eq!(place(&mut client, 2).await.unwrap().len(), 2);
    stop(started, shutdown).await;

    // After a restart, known services keep their state; only a new one is locked.
    let (started, shutdown, mut client) = serve(config).await;
    let scores: Vec<i32> = {
        let mut out = Vec::new();
        for i in 0..4 {
            out.push(client.heartbeat(rawx(i)).await.unwrap().into_inner().score);
        }
        out
    };
    assert_eq!(scores, vec![100, 30, 0, 0]);
    stop(started, shutdown).await;
    let file = std::fs::read_to_string(dir.path().join("locks.json")).unwrap();
    assert!(file.contains("rawx-3"), "{file}");
}

#[tokio::test]
async fn bad_config_is_refused_at_start() {
    let config = ConscienceConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        expressions: HashMap::from([("rawx".to_string(), "root(3, cpu * iops)".to_string())]),
        ..Default::default()
    };
    let err = start(config, CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("`iops`"), "{err}");
}

/// The real heartbeat loop of `oxio-proto` registers a service and keeps it up.
#[tokio::test]
async fn reporter_loop_registers_service() {
    let (started, shutdown, mut client) = serve(ConscienceConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let reporter = oxio_proto::reporter::ReporterConfig {
        conscience: vec![started.addr.to_string()],
        service_type: "rawx".into(),
        id: "rawx-live".into(),
        addr: "127.0.0.1:6299".into(),
        location: "local.rack1.host9.vol0".into(),
        volume: Some(dir.path().to_path_buf()),
        interval: Duration::from_millis(50),
    };
    let stop_reporter = CancellationToken::new();
    let handle = tokio::spawn(oxio_proto::reporter::run(
        reporter,
        None,
        stop_reporter.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let services = client
            .list_services(ListServicesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .services;
        if let Some(s) = services.first() {
            let info = s.info.as_ref().unwrap();
            assert_eq!(info.id, "rawx-live");
            assert!(s.up);
            for stat in ["cpu", "io", "space"] {
                assert!(info.stats.contains_key(stat), "{stat} missing");
            }
            break;
        }
        assert!(Instant::now() < deadline, "reporter never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_reporter.cancel();
    handle.await.unwrap();
    stop(started, shutdown).await;
}

/// GET /metrics over a plain TCP connection; the value of `name{type="rawx"}`.
async fn scrape_counter(addr: std::net::SocketAddr, name: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let prefix = format!("{name}{{type=\"rawx\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn narrower_spread_than_the_topology_allows_is_flagged_and_counted() {
    let (started, shutdown, mut client) = serve(ConscienceConfig {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    })
    .await;
    let metrics = started.metrics.as_ref().unwrap().addr;
    let name = "oxio_conscience_placement_distance_degraded_total";
    // Two hosts of three volumes each.
    for i in 0..6 {
        let mut info = rawx(i);
        info.location = format!("local.rack1.host{}.vol{i}", i / 3);
        for _ in 0..12 {
            client.heartbeat(info.clone()).await.unwrap();
        }
    }
    let place2 = |client: &mut ConscienceClient<Channel>| {
        let mut client = client.clone();
        async move {
            client
                .place(PlaceRequest {
                    service_type: "rawx".into(),
                    count: 2,
                    avoid_ids: vec![],
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    for _ in 0..20 {
        let r = place2(&mut client).await;
        assert!(!r.distance_degraded, "two hosts: one copy on each");
        let hosts: HashSet<String> = r
            .services
            .iter()
            .map(|s| s.info.as_ref().unwrap().location.clone())
            .map(|l| l.rsplit_once('.').unwrap().0.to_string())
            .collect();
        assert_eq!(hosts.len(), 2);
    }
    assert_eq!(scrape_counter(metrics, name).await, 0.0);
    // Host 1 locked out: both copies must share host 0, and the answer says so.
    for i in 3..6 {
        client
            .lock(LockRequest {
                service_type: "rawx".into(),
                id: format!("rawx-{i}"),
                score: Some(0),
            })
            .await
            .unwrap();
    }
    for _ in 0..5 {
        let r = place2(&mut client).await;
        assert!(
            r.distance_degraded,
            "both copies on one host must be flagged"
        );
    }
    assert_eq!(scrape_counter(metrics, name).await, 5.0);
    stop(started, shutdown).await;
}
