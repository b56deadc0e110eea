//! Tests of the directory metrics: the RPC layer on a fake service, and a real node
//! serving `/metrics`.

use super::layer::method_of;
use super::{DirectoryMetrics, RpcMetricsLayer};
use crate::config::{BootstrapSpec, DirectoryConfig};
use bytes::Bytes;
use futures::stream;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use oxio_proto::v1::directory_client::DirectoryClient;
use oxio_proto::v1::{GetContentRequest, StatusRequest};
use std::convert::Infallible;
use std::future::Ready;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tower_layer::Layer;
use tower_service::Service;

type TestBody = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// Answers every request with a clone of the response it was built with: a status in
/// the headers (trailers-only error) or in a trailer after one message.
#[derive(Clone)]
struct Fake {
    header_status: Option<&'static str>,
    trailer_status: Option<&'static str>,
}

impl Service<http::Request<()>> for Fake {
    type Response = http::Response<TestBody>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: http::Request<()>) -> Self::Future {
        let mut frames = vec![Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0")))];
        if let Some(s) = self.trailer_status {
            let mut t = http::HeaderMap::new();
            t.insert("grpc-status", http::HeaderValue::from_static(s));
            frames.push(Ok(Frame::trailers(t)));
        }
        let mut resp = http::Response::new(StreamBody::new(stream::iter(frames)));
        if let Some(s) = self.header_status {
            resp.headers_mut()
                .insert("grpc-status", http::HeaderValue::from_static(s));
        }
        std::future::ready(Ok(resp))
    }
}

fn request(path: &str) -> http::Request<()> {
    http::Request::builder().uri(path).body(()).unwrap()
}

fn text(m: &DirectoryMetrics) -> String {
    String::from_utf8(m.render(None).unwrap()).unwrap()
}

#[test]
fn method_names_come_from_the_request_path() {
    assert_eq!(
        method_of("/oxio.v1.Directory/PutContent"),
        Some("PutContent")
    );
    assert_eq!(method_of("/oxio.v1.Directory/Raft"), Some("Raft"));
    assert_eq!(method_of("/oxio.v1.Conscience/Register"), None);
    assert_eq!(method_of("/oxio.v1.Directory/"), None);
    assert_eq!(method_of("/oxio.v1.Directory/a/b"), None);
    assert_eq!(
        method_of(&format!("/oxio.v1.Directory/{}", "A".repeat(65))),
        None
    );
}

#[tokio::test]
async fn the_layer_counts_statuses_from_headers_and_trailers() {
    let m = Arc::new(DirectoryMetrics::new().unwrap());
    let layer = RpcMetricsLayer::new(m.clone());

    // An error answered trailers-only: counted as soon as the head is out.
    let mut svc = layer.layer(Fake {
        header_status: Some("5"),
        trailer_status: None,
    });
    let resp = svc
        .call(request("/oxio.v1.Directory/GetContent"))
        .await
        .unwrap();
    assert!(text(&m)
        .contains("oxio_directory_grpc_requests_total{code=\"NotFound\",method=\"GetContent\"} 1"));
    drop(resp);

    // An answer: counted when its grpc-status trailer passes, not before.
    let mut svc = layer.layer(Fake {
        header_status: None,
        trailer_status: Some("0"),
    });
    for _ in 0..2 {
        let resp = svc
            .call(request("/oxio.v1.Directory/PutContent"))
            .await
            .unwrap();
        assert!(!text(&m).contains("method=\"PutContent\"} 2"));
        resp.into_body().collect().await.unwrap();
    }
    let t = text(&m);
    assert!(
        t.contains("oxio_directory_grpc_requests_total{code=\"OK\",method=\"PutContent\"} 2"),
        "{t}"
    );
    assert!(
        t.contains("oxio_directory_grpc_request_duration_seconds_count{method=\"PutContent\"} 2")
    );
    assert!(t.contains(
        "oxio_directory_grpc_request_duration_seconds_bucket{method=\"PutContent\",le=\"0.0001\"}"
    ));

    // A body dropped before its status: the client went away.
    let resp = svc.call(request("/oxio.v1.Directory/Raft")).await.unwrap();
    drop(resp);
    assert!(text(&m)
        .contains("oxio_directory_grpc_requests_total{code=\"Canceled\",method=\"Raft\"} 1"));

    // Methods tonic does not route never become label values.
    let mut svc = layer.layer(Fake {
        header_status: Some("12"),
        trailer_status: None,
    });
    for path in [
        "/oxio.v1.Directory/Bogus1",
        "/oxio.v1.Directory/Bogus2",
        "/x/y",
    ] {
        drop(svc.call(request(path)).await.unwrap());
    }
    let t = text(&m);
    assert!(!t.contains("Bogus"), "{t}");
    assert!(t.contains(
        "oxio_directory_grpc_requests_total{code=\"Unimplemented\",method=\"unknown\"} 3"
    ));
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

    let (status, _) = http_get(maddr, "/other").await;
    assert!(status.contains(" 404 "), "{status}");

    shutdown.cancel();
    started.task.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(maddr).await.is_err(),
        "metrics stopped"
    );
}
