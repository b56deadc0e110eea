//! The rawx heartbeat reaches a (fake) conscience with its type, address and stats,
//! and stops with the service.

mod common;

use common::*;
use oxio_proto::v1::conscience_server::{Conscience, ConscienceServer};
use oxio_proto::v1::*;
use oxio_rawx::Driver;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status};

#[derive(Default)]
struct FakeConscience {
    seen: Arc<Mutex<Vec<ServiceInfo>>>,
}

#[tonic::async_trait]
impl Conscience for FakeConscience {
    async fn heartbeat(
        &self,
        request: Request<ServiceInfo>,
    ) -> Result<Response<HeartbeatReply>, Status> {
        self.seen.lock().unwrap().push(request.into_inner());
        Ok(Response::new(HeartbeatReply { score: 50 }))
    }
    async fn list_services(
        &self,
        _: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesReply>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn place(&self, _: Request<PlaceRequest>) -> Result<Response<PlaceReply>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn lock(&self, _: Request<LockRequest>) -> Result<Response<LockReply>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

#[test]
fn heartbeat_reports_rawx_stats() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let incoming = rt
        .block_on(async {
            tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
        })
        .unwrap();
    let conscience_addr = incoming.local_addr().unwrap();
    let fake = FakeConscience { seen: seen.clone() };
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(ConscienceServer::new(fake))
            .serve_with_incoming(incoming),
    );

    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path().join("vol"), Driver::Polling);
    cfg.conscience = vec![conscience_addr.to_string()];
    cfg.heartbeat_interval = Duration::from_millis(50);
    cfg.location = "site.rack.host.vol7".into();
    // started from inside a tokio runtime, as oxiod does
    let srv = rt.block_on(async { start(cfg, Some(tmp)) }).unwrap();
    let mut c = Client::connect(srv.addr);
    assert_eq!(
        c.request("PUT", &format!("/{}", chunk_id(9)), &[], Some(b"abc"))
            .status,
        201
    );

    let ok = wait_until(Duration::from_secs(20), || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|s| s.stats.get("chunks") == Some(&1.0))
    });
    assert!(ok, "no heartbeat with chunks=1");
    let info = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(info.service_type, "rawx");
    assert_eq!(info.id, "rawx-test");
    assert_eq!(info.addr, srv.addr.to_string());
    assert_eq!(info.location, "site.rack.host.vol7");
    for key in ["cpu", "io", "space", "chunks", "reqs_per_s"] {
        assert!(info.stats.contains_key(key), "missing {key}");
    }
    // reqs_per_s is a rate: a burst of requests shows, and idleness brings it back
    // to 0 (it is not a running count).
    for _ in 0..20 {
        assert_eq!(
            c.request("GET", &format!("/{}", chunk_id(9)), &[], None)
                .status,
            200
        );
    }
    let busy = wait_until(Duration::from_secs(20), || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|s| s.stats.get("reqs_per_s").is_some_and(|r| *r >= 1.0))
    });
    assert!(busy, "no heartbeat showed the burst of requests");
    let idle = wait_until(Duration::from_secs(20), || {
        seen.lock()
            .unwrap()
            .last()
            .is_some_and(|s| s.stats.get("reqs_per_s") == Some(&0.0))
    });
    assert!(idle, "reqs_per_s did not fall back to 0 once idle");
    srv.stop();
    let count = seen.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(seen.lock().unwrap().len(), count, "heartbeats after stop");
}
