//! Tests of the directory metrics: request figures, the committed index, and a real
//! node serving `/metrics`.

use super::DirectoryMetrics;
use crate::config::{BootstrapSpec, DirectoryConfig};
use oxio_proto::v1::directory_client::DirectoryClient;
use oxio_proto::v1::{GetContentRequest, GetContentVersionRequest, StatusRequest};
use prost::Message;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

fn text(m: &DirectoryMetrics) -> String {
    String::from_utf8(m.render(None).unwrap()).unwrap()
}

#[test]
fn rpcs_are_counted_with_their_bytes() {
    let m = DirectoryMetrics::new().unwrap();
    let rec: &dyn oxio_proto::rpc::RpcRecorder = &m;
    rec.record_rpc(
        "PutContent",
        tonic::Code::Ok,
        std::time::Duration::from_micros(50),
        300,
        20,
    );
    rec.record_rpc(
        "PutContent",
        tonic::Code::NotFound,
        std::time::Duration::from_millis(2),
        100,
        0,
    );
    let t = text(&m);
    for want in [
        "oxio_directory_grpc_requests_total{code=\"OK\",method=\"PutContent\"} 1",
        "oxio_directory_grpc_requests_total{code=\"NotFound\",method=\"PutContent\"} 1",
        "oxio_directory_grpc_request_duration_seconds_count{method=\"PutContent\"} 2",
        "oxio_directory_grpc_received_bytes_total{method=\"PutContent\"} 400",
        "oxio_directory_grpc_sent_bytes_total{method=\"PutContent\"} 20",
    ] {
        assert!(t.contains(want), "{want} in {t}");
    }
}

#[test]
fn the_committed_index_is_what_a_majority_holds() {
    let held = |m: &[(u64, u64)]| {
        let m = m.to_vec();
        move |v: u64| m.iter().find(|(n, _)| *n == v).map(|(_, i)| *i)
    };
    assert_eq!(super::quorum_index(&[1], held(&[(1, 9)])), 9);
    assert_eq!(
        super::quorum_index(&[1, 2, 3], held(&[(1, 9), (2, 7), (3, 3)])),
        7
    );
    assert_eq!(super::quorum_index(&[1, 2, 3], held(&[(1, 9)])), 0);
    assert_eq!(
        super::quorum_index(&[1, 2, 3, 4, 5], held(&[(1, 9), (2, 8), (3, 8), (4, 1)])),
        8
    );
    assert_eq!(super::quorum_index(&[], held(&[])), 0);
}

/// `GET path` on `addr`; the status line and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8(out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of the sample `name{labels}` in a text exposition.
fn sample(t: &str, series: &str) -> Option<f64> {
    t.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_its_raft_rpc_and_rocksdb_figures() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DirectoryConfig::new(1, dir.path());
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.bootstrap = Some(BootstrapSpec {
        meta1_groups: 1,
        meta2_groups: 2,
    });
    let shutdown = CancellationToken::new();
    let started = crate::start(cfg, shutdown.clone()).await.unwrap();
    let maddr = started.metrics_addr.unwrap();

    let (status, t) = http_get(maddr, "/metrics").await;
    assert!(status.contains(" 200 "), "{status}");
    for family in [
        "oxio_directory_raft_term",
        "oxio_directory_raft_is_leader",
        "oxio_directory_raft_last_log_index",
        "oxio_directory_raft_applied_index",
        "oxio_directory_raft_apply_lag_entries",
        "oxio_directory_raft_snapshot_index",
        "oxio_directory_raft_voters",
        "oxio_directory_raft_groups_hosted",
        "oxio_directory_raft_groups_led",
        "oxio_directory_raft_snapshots_built_total",
        "oxio_directory_raft_snapshots_installed_total",
        "oxio_directory_rocksdb_live_sst_files_size_bytes",
        "oxio_directory_rocksdb_memtables_size_bytes",
    ] {
        assert!(
            t.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{t}"
        );
    }
    for (group, kind) in [
        ("0", "meta0"),
        ("1", "meta1"),
        ("1000", "meta2"),
        ("1001", "meta2"),
    ] {
        let labels = format!("{{group=\"{group}\",kind=\"{kind}\"}}");
        let leader = sample(&t, &format!("oxio_directory_raft_is_leader{labels}"));
        assert_eq!(leader, Some(1.0), "group {group}:\n{t}");
        let voters = sample(&t, &format!("oxio_directory_raft_voters{labels}"));
        assert_eq!(voters, Some(1.0));
        let applied = sample(&t, &format!("oxio_directory_raft_applied_index{labels}"));
        assert!(applied.unwrap() >= 1.0, "initial membership applied");
        assert!(sample(&t, &format!("oxio_directory_raft_term{labels}")).unwrap() >= 1.0);
    }
    let hosted = |kind: &str| {
        sample(
            &t,
            &format!("oxio_directory_raft_groups_hosted{{kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(
        (hosted("meta0"), hosted("meta1"), hosted("meta2")),
        (Some(1.0), Some(1.0), Some(2.0))
    );
    let led = sample(&t, "oxio_directory_raft_groups_led{kind=\"meta2\"}");
    assert_eq!(led, Some(2.0));

    // Requests move the counters, errors under their own code.
    let mut client = DirectoryClient::connect(format!("http://{}", started.addr))
        .await
        .unwrap();
    client.status(StatusRequest {}).await.unwrap();
    client.status(StatusRequest {}).await.unwrap();
    let missing = client
        .get_content(GetContentRequest {
            group: 999_999,
            cid: "0".repeat(64),
            key: "k".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let (_, t) = http_get(maddr, "/metrics").await;
    let ok = sample(
        &t,
        "oxio_directory_grpc_requests_total{code=\"OK\",method=\"Status\"}",
    );
    assert_eq!(ok, Some(2.0), "{t}");
    let nf = "oxio_directory_grpc_requests_total{code=\"NotFound\",method=\"GetContent\"}";
    assert_eq!(sample(&t, nf), Some(1.0));
    let count = "oxio_directory_grpc_request_duration_seconds_count{method=\"Status\"}";
    assert_eq!(sample(&t, count), Some(2.0));

    // A client of this process reaches the node in-process, through the same layers.
    let local = oxio_proto::local::Transport::new(&started.addr.to_string()).unwrap();
    assert!(local.is_local(), "the node registered its address");
    let mut in_process = DirectoryClient::new(local.clone());
    in_process.status(StatusRequest {}).await.unwrap();
    let (_, t) = http_get(maddr, "/metrics").await;
    assert_eq!(sample(&t, count), Some(3.0), "in-process call counted: {t}");

    // The typed reads skip the encoding, not the handler nor the metrics.
    let reads = oxio_proto::local::directory_reads(&started.addr.to_string())
        .expect("the node registered its typed reads");
    let read = |cid: String| GetContentVersionRequest {
        group: 1000,
        cid,
        key: "k".into(),
        version_id: String::new(),
    };
    let missing = reads.get_content_version(read("0".repeat(64))).await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);
    let bad = reads.get_content_version(read("zz".into())).await;
    assert_eq!(bad.unwrap_err().code(), tonic::Code::InvalidArgument);
    let (_, t) = http_get(maddr, "/metrics").await;
    let typed = "oxio_directory_typed_calls_total{method=\"GetContentVersion\"}";
    assert_eq!(sample(&t, typed), Some(2.0), "{t}");
    for code in ["NotFound", "InvalidArgument"] {
        let series = format!(
            "oxio_directory_grpc_requests_total{{code=\"{code}\",method=\"GetContentVersion\"}}"
        );
        assert_eq!(sample(&t, &series), Some(1.0), "{series}: {t}");
    }
    let received = "oxio_directory_grpc_received_bytes_total{method=\"GetContentVersion\"}";
    let framed = |r: GetContentVersionRequest| oxio_proto::rpc::framed_len(r.encoded_len());
    let expected = framed(read("0".repeat(64))) + framed(read("zz".into()));
    assert_eq!(
        sample(&t, received),
        Some(expected as f64),
        "as encoded: {t}"
    );
    // The node's stop waits for the last holder of the node.
    drop(reads);

    let (status, _) = http_get(maddr, "/other").await;
    assert!(status.contains(" 404 "), "{status}");

    shutdown.cancel();
    started.task.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(maddr).await.is_err(),
        "metrics stopped"
    );
    assert!(
        !local.is_local(),
        "a stopped node is no longer reached in-process"
    );
    assert!(oxio_proto::local::directory_reads(&started.addr.to_string()).is_none());
    let gone = in_process.status(StatusRequest {}).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::Unavailable, "{gone:?}");
}
