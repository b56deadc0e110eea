//! Prometheus metrics of the conscience and the tiny HTTP server that serves them on
//! `GET /metrics` when [`crate::ConscienceConfig::metrics_listen`] is set.
//!
//! The conscience owns its own [`prometheus::Registry`] (never the process-global
//! one). Heartbeat and placement counters are updated by the gRPC handlers; the
//! service gauges (count by type and state, score per service) are rebuilt from the
//! registry's view at each scrape, so services that left disappear from them.

use crate::registry::{Registry as ServiceRegistry, ServiceView};
use crate::{Error, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Latency buckets of gRPC requests, seconds: 100 µs to 10 s.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Most metrics connections served at once; more wait in the accept backlog.
const MAX_CONNECTIONS: usize = 64;
/// Longest time one metrics connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The metrics of one conscience.
#[derive(Debug)]
pub struct ConscienceMetrics {
    registry: Registry,
    heartbeats: IntCounterVec,
    placements: IntCounterVec,
    placement_failures: IntCounterVec,
    placements_degraded: IntCounterVec,
    services: IntGaugeVec,
    score: IntGaugeVec,
    requests: IntCounterVec,
    latency: HistogramVec,
    received_bytes: IntCounterVec,
    sent_bytes: IntCounterVec,
    /// Serialises scrapes: the gauges are rebuilt from scratch by each one.
    scrape: Mutex<()>,
}

fn metric_err(e: prometheus::Error) -> Error {
    Error::Metrics(e.to_string())
}

impl ConscienceMetrics {
    /// A fresh registry with every conscience metric.
    pub fn new() -> Result<Self> {
        let registry = Registry::new();
        let heartbeats = IntCounterVec::new(
            Opts::new(
                "oxio_conscience_heartbeats_received_total",
                "Heartbeats accepted, by service type",
            ),
            &["type"],
        )
        .map_err(metric_err)?;
        let placements = IntCounterVec::new(
            Opts::new(
                "oxio_conscience_placement_requests_total",
                "Placement requests answered, by service type",
            ),
            &["type"],
        )
        .map_err(metric_err)?;
        let placement_failures = IntCounterVec::new(
            Opts::new(
                "oxio_conscience_placement_failures_total",
                "Placement requests that could not be satisfied, by service type",
            ),
            &["type"],
        )
        .map_err(metric_err)?;
        let placements_degraded = IntCounterVec::new(
            Opts::new(
                "oxio_conscience_placement_distance_degraded_total",
                "Placements that had to put two services closer than the topology would \
                 allow with every service usable (same host or rack), by service type",
            ),
            &["type"],
        )
        .map_err(metric_err)?;
        let services = IntGaugeVec::new(
            Opts::new(
                "oxio_conscience_registry_services",
                "Registered services, by type and state (up or down)",
            ),
            &["type", "state"],
        )
        .map_err(metric_err)?;
        let score = IntGaugeVec::new(
            Opts::new(
                "oxio_conscience_registry_score",
                "Current score of each registered service (0 when down or locked at 0)",
            ),
            &["type", "id"],
        )
        .map_err(metric_err)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "oxio_conscience_grpc_requests_total",
                "Conscience gRPC requests answered, by method and gRPC status code",
            ),
            &["method", "code"],
        )
        .map_err(metric_err)?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "oxio_conscience_grpc_request_duration_seconds",
                "Time from a conscience gRPC request to its status, by method",
            )
            .buckets(LATENCY_BUCKETS_S.to_vec()),
            &["method"],
        )
        .map_err(metric_err)?;
        let received_bytes = IntCounterVec::new(
            Opts::new(
                "oxio_conscience_grpc_received_bytes_total",
                "Bytes of conscience gRPC request bodies read, by method",
            ),
            &["method"],
        )
        .map_err(metric_err)?;
        let sent_bytes = IntCounterVec::new(
            Opts::new(
                "oxio_conscience_grpc_sent_bytes_total",
                "Bytes of conscience gRPC response bodies sent, by method",
            ),
            &["method"],
        )
        .map_err(metric_err)?;
        registry
            .register(Box::new(requests.clone()))
            .and_then(|_| registry.register(Box::new(latency.clone())))
            .and_then(|_| registry.register(Box::new(received_bytes.clone())))
            .and_then(|_| registry.register(Box::new(sent_bytes.clone())))
            .map_err(metric_err)?;
        registry
            .register(Box::new(heartbeats.clone()))
            .and_then(|_| registry.register(Box::new(placements.clone())))
            .and_then(|_| registry.register(Box::new(placement_failures.clone())))
            .and_then(|_| registry.register(Box::new(placements_degraded.clone())))
            .and_then(|_| registry.register(Box::new(services.clone())))
            .and_then(|_| registry.register(Box::new(score.clone())))
            .map_err(metric_err)?;
        Ok(ConscienceMetrics {
            registry,
            heartbeats,
            placements,
            placement_failures,
            placements_degraded,
            services,
            score,
            requests,
            latency,
            received_bytes,
            sent_bytes,
            scrape: Mutex::new(()),
        })
    }

    /// Counts one accepted heartbeat.
    pub fn heartbeat(&self, service_type: &str) {
        self.heartbeats.with_label_values(&[service_type]).inc();
    }

    /// Counts one placement request, answered (`ok`) or not.
    pub fn placement(&self, service_type: &str, ok: bool) {
        if ok {
            self.placements.with_label_values(&[service_type]).inc();
        } else {
            self.placement_failures
                .with_label_values(&[service_type])
                .inc();
        }
    }

    /// Counts one placement answered with a smaller spread than wished.
    pub fn placement_degraded(&self, service_type: &str) {
        self.placements_degraded
            .with_label_values(&[service_type])
            .inc();
    }

    /// Rebuilds the service gauges from `views` and encodes every metric in the
    /// Prometheus text format.
    pub fn render(&self, views: &[ServiceView]) -> Result<Vec<u8>> {
        let families = {
            let _guard = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
            self.services.reset();
            self.score.reset();
            let mut counts: BTreeMap<(&str, &str), i64> = BTreeMap::new();
            for v in views {
                let state = if v.up { "up" } else { "down" };
                *counts.entry((v.service_type.as_str(), state)).or_default() += 1;
                // Types show both states, 0 included.
                let other = if v.up { "down" } else { "up" };
                counts.entry((v.service_type.as_str(), other)).or_default();
                self.score
                    .with_label_values(&[v.service_type.as_str(), v.id.as_str()])
                    .set(i64::from(v.score));
            }
            for ((t, state), n) in counts {
                self.services.with_label_values(&[t, state]).set(n);
            }
            self.registry.gather()
        };
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&families, &mut out)
            .map_err(metric_err)?;
        Ok(out)
    }
}

impl oxio_proto::rpc::RpcRecorder for ConscienceMetrics {
    fn record_rpc(
        &self,
        method: &str,
        code: tonic::Code,
        elapsed: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        self.requests
            .with_label_values(&[method, oxio_proto::rpc::code_name(code)])
            .inc();
        self.latency
            .with_label_values(&[method])
            .observe(elapsed.as_secs_f64());
        self.received_bytes
            .with_label_values(&[method])
            .inc_by(bytes_in);
        self.sent_bytes
            .with_label_values(&[method])
            .inc_by(bytes_out);
    }
}

/// A running metrics server.
#[derive(Debug)]
pub struct MetricsServer {
    /// Bound address.
    pub addr: SocketAddr,
    /// The accept loop; ends after shutdown.
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `listen` and serves `GET /metrics` until `shutdown` fires.
pub(crate) async fn serve(
    listen: SocketAddr,
    metrics: Arc<ConscienceMetrics>,
    registry: Arc<Mutex<ServiceRegistry>>,
    shutdown: CancellationToken,
) -> Result<MetricsServer> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: listen,
        source,
    })?;
    tracing::info!(%addr, "conscience metrics listening");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let metrics = metrics.clone();
            let registry = registry.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let answer = answer(&req, &metrics, &registry);
                    async move { Ok::<_, std::convert::Infallible>(answer) }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(MAX_HEAD_BYTES);
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "metrics connection failed"),
                    Err(_) => tracing::debug!(%peer, "metrics connection timed out"),
                    Ok(Ok(())) => {}
                }
                drop(permit);
            });
        }
        tracing::info!(%addr, "conscience metrics stopped");
    });
    Ok(MetricsServer { addr, task })
}

fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// The answer to one metrics request.
fn answer<B>(
    req: &Request<B>,
    metrics: &ConscienceMetrics,
    registry: &Mutex<ServiceRegistry>,
) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return text_response(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec());
    }
    if req.method() != Method::GET {
        return text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"only GET\n".to_vec(),
        );
    }
    let views = registry
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .list(None, Instant::now());
    match metrics.render(&views) {
        Ok(body) => text_response(StatusCode::OK, CONTENT_TYPE, body),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("{e}\n").into_bytes(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxio_common::Location;
    use std::collections::HashMap;

    fn view(t: &str, id: &str, score: u32, up: bool) -> ServiceView {
        ServiceView {
            service_type: t.to_string(),
            id: id.to_string(),
            addr: "127.0.0.1:1".to_string(),
            location: "a.b.c.d".parse::<Location>().unwrap(),
            stats: HashMap::new(),
            score,
            up,
            locked: false,
            last_seen_ago: Duration::ZERO,
        }
    }

    #[test]
    fn services_and_scores_follow_the_registry_view() {
        let m = ConscienceMetrics::new().unwrap();
        m.heartbeat("rawx");
        m.heartbeat("rawx");
        m.placement("rawx", true);
        m.placement("rawx", false);
        let views = vec![
            view("rawx", "rawx-0", 87, true),
            view("rawx", "rawx-1", 0, false),
            view("rawx", "rawx-2", 40, true),
        ];
        let t = String::from_utf8(m.render(&views).unwrap()).unwrap();
        assert!(t.contains("oxio_conscience_heartbeats_received_total{type=\"rawx\"} 2"));
        assert!(t.contains("oxio_conscience_placement_requests_total{type=\"rawx\"} 1"));
        assert!(t.contains("oxio_conscience_placement_failures_total{type=\"rawx\"} 1"));
        assert!(
            t.contains("oxio_conscience_registry_services{state=\"up\",type=\"rawx\"} 2"),
            "{t}"
        );
        assert!(t.contains("oxio_conscience_registry_services{state=\"down\",type=\"rawx\"} 1"));
        assert!(t.contains("oxio_conscience_registry_score{id=\"rawx-0\",type=\"rawx\"} 87"));
        assert!(t.contains("oxio_conscience_registry_score{id=\"rawx-1\",type=\"rawx\"} 0"));
        // A service gone from the view is gone from the gauges.
        let t = String::from_utf8(m.render(&views[..1]).unwrap()).unwrap();
        assert!(!t.contains("rawx-2"));
        assert!(t.contains("oxio_conscience_registry_services{state=\"down\",type=\"rawx\"} 0"));
    }
}
