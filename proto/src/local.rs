//! In-process calls. A gRPC server of this process registers its service stack (the
//! same layers the network server runs: request ids, spans, metrics) under the
//! address it advertises; a [`Transport`] to that address then calls the stack
//! directly, without a socket, HTTP/2 framing or a wake-up of another task. Requests
//! and answers are still encoded as protobuf, so both sides see exactly what the
//! network would carry, and the call keeps its deadline (`grpc-timeout`).
//!
//! The read every GET and HEAD makes (`GetContentVersion`) can skip even the
//! encoding: a directory node adds to its registration a [`DirectoryReads`]
//! that hands the typed request to the same handler and records the call in the same
//! metrics; [`directory_reads`] finds it. Encoding, decoding and the layers were a
//! fifth of the gateway's CPU per 4 KiB GET.
//!
//! The server drops its [`Registration`] when it is told to stop, and the next call
//! to that address goes to the network, so a node that was stopped looks the same to
//! its clients whether it ran here or elsewhere. Each call looks the address up
//! again, so a node restarted on the same address is found.

use crate::v1::{ContentRecord, GetContentVersionRequest};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::body::Body;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

/// A registered service stack.
type LocalService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// What a typed in-process call returns.
pub type TypedFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, tonic::Status>> + Send + 'a>>;

/// Directory reads answered in-process without protobuf encoding: the same handler
/// and the same answers (status codes, leader hints) as the gRPC method of that
/// name, counted in the same metrics.
pub trait DirectoryReads: Send + Sync + 'static {
    /// `Directory/GetContentVersion`.
    fn get_content_version(&self, req: GetContentVersionRequest) -> TypedFuture<'_, ContentRecord>;
}

/// One registered server.
struct Entry {
    id: u64,
    stack: LocalService,
    directory_reads: Option<Arc<dyn DirectoryReads>>,
}

/// Servers of this process by advertised address.
static SERVERS: LazyLock<RwLock<HashMap<String, Entry>>> = LazyLock::new(Default::default);

/// Source of registration ids.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Longest gRPC timeout accepted from a `grpc-timeout` header (as the network path,
/// whose channels stop a call after [`crate::RPC_TIMEOUT`] at the latest).
const MAX_TIMEOUT: Duration = crate::RPC_TIMEOUT;

/// `addr` without a `http://` scheme, as servers register themselves.
fn key(addr: &str) -> &str {
    addr.strip_prefix("http://").unwrap_or(addr)
}

/// Keeps a server reachable in-process; dropping it removes the registration.
#[derive(Debug)]
pub struct Registration {
    addr: String,
    id: u64,
}

impl Registration {
    /// Makes a directory node's registration also answer [`DirectoryReads`] typed.
    pub fn with_directory_reads(self, reads: Arc<dyn DirectoryReads>) -> Self {
        if let Ok(mut servers) = SERVERS.write() {
            if let Some(e) = servers.get_mut(&self.addr).filter(|e| e.id == self.id) {
                e.directory_reads = Some(reads);
            }
        }
        self
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut servers) = SERVERS.write() {
            // A later server on the same address has its own registration.
            if servers.get(&self.addr).is_some_and(|e| e.id == self.id) {
                servers.remove(&self.addr);
            }
        }
    }
}

/// Makes `svc` answer the calls of this process to `addr` until the returned
/// registration is dropped. A later registration of the same address replaces it.
pub fn register<S>(addr: &str, svc: S) -> Registration
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let addr = key(addr).to_string();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut servers) = SERVERS.write() {
        let entry = Entry {
            id,
            stack: BoxCloneSyncService::new(svc),
            directory_reads: None,
        };
        servers.insert(addr.clone(), entry);
    }
    Registration { addr, id }
}

/// The server registered for `addr`, if it runs in this process.
fn lookup(addr: &str) -> Option<LocalService> {
    SERVERS
        .read()
        .ok()
        .and_then(|s| s.get(addr).map(|e| e.stack.clone()))
}

/// The typed directory reads of the node registered for `addr` (`host:port` or
/// `http://host:port`), if one runs in this process.
pub fn directory_reads(addr: &str) -> Option<Arc<dyn DirectoryReads>> {
    SERVERS
        .read()
        .ok()
        .and_then(|s| s.get(key(addr)).and_then(|e| e.directory_reads.clone()))
}

/// The deadline a `grpc-timeout` header asks for (`<digits><unit>`, unit one of
/// `H M S m u n`), at most [`MAX_TIMEOUT`].
pub fn grpc_timeout(headers: &http::HeaderMap) -> Duration {
    let parsed = headers
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
            if digits.is_empty() || digits.len() > 8 {
                return None;
            }
            let n: u64 = digits.parse().ok()?;
            Some(match unit {
                "H" => Duration::from_secs(n.saturating_mul(3600)),
                "M" => Duration::from_secs(n.saturating_mul(60)),
                "S" => Duration::from_secs(n),
                "m" => Duration::from_millis(n),
                "u" => Duration::from_micros(n),
                "n" => Duration::from_nanos(n),
                _ => return None,
            })
        });
    parsed.map_or(MAX_TIMEOUT, |d| d.min(MAX_TIMEOUT))
}

/// `call`'s answer, or `DEADLINE_EXCEEDED` once `deadline` has passed: the deadline
/// of an in-process call, stack or typed.
pub async fn within<T>(
    deadline: Duration,
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(deadline, call).await {
        Ok(answer) => answer,
        Err(_) => Err(tonic::Status::deadline_exceeded(format!(
            "in-process call past its {deadline:?} deadline"
        ))),
    }
}

/// A client transport to one address: in-process when a server of this process is
/// registered there, over the gRPC channel otherwise.
#[derive(Clone)]
pub struct Transport {
    addr: Arc<str>,
    channel: tonic::transport::Channel,
    /// The in-process server found by the last `poll_ready`, for the next call.
    ready_local: Option<LocalService>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("addr", &self.addr)
            .field("ready_local", &self.ready_local.is_some())
            .finish()
    }
}

impl Transport {
    /// A transport to `addr` (`host:port` or `http://host:port`); the channel
    /// connects lazily, on its first use.
    pub fn new(addr: &str) -> Result<Self, tonic::transport::Error> {
        Ok(Transport {
            addr: key(addr).into(),
            channel: crate::channel(addr)?,
            ready_local: None,
        })
    }

    /// Whether calls now go to a server of this process.
    pub fn is_local(&self) -> bool {
        lookup(&self.addr).is_some()
    }
}

/// What a call through [`Transport`] returns.
pub type TransportFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, tonic::transport::Error>> + Send>>;

impl Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = TransportFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.ready_local.is_none() {
            self.ready_local = lookup(&self.addr);
        }
        if self.ready_local.is_some() {
            // The registered stack is always ready (its inner services are).
            return Poll::Ready(Ok(()));
        }
        self.channel.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self.ready_local.take() {
            Some(mut svc) => {
                let deadline = grpc_timeout(req.headers());
                Box::pin(async move {
                    let call = async {
                        let never = |e: Infallible| -> tonic::Status { match e {} };
                        std::future::poll_fn(|cx| svc.poll_ready(cx))
                            .await
                            .map_err(never)?;
                        svc.call(req).await.map_err(never)
                    };
                    Ok(within(deadline, call)
                        .await
                        .unwrap_or_else(tonic::Status::into_http))
                })
            }
            None => Box::pin(self.channel.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-timeout", v.parse().unwrap());
        h
    }

    #[test]
    fn grpc_timeout_reads_every_unit_and_caps_it() {
        assert_eq!(grpc_timeout(&headers("250m")), Duration::from_millis(250));
        assert_eq!(grpc_timeout(&headers("3S")), Duration::from_secs(3));
        assert_eq!(grpc_timeout(&headers("1500u")), Duration::from_micros(1500));
        assert_eq!(grpc_timeout(&headers("7n")), Duration::from_nanos(7));
        assert_eq!(grpc_timeout(&headers("2H")), MAX_TIMEOUT);
        assert_eq!(
            grpc_timeout(&headers("1M")),
            MAX_TIMEOUT,
            "60 s capped at 30 s"
        );
        for bad in ["", "m", "12", "12x", "123456789S", "-1S"] {
            let h = if bad.is_empty() {
                http::HeaderMap::new()
            } else {
                headers(bad)
            };
            assert_eq!(grpc_timeout(&h), MAX_TIMEOUT, "{bad:?}");
        }
    }

    #[derive(Clone)]
    struct Echo;

    impl Service<http::Request<Body>> for Echo {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<http::Response<Body>, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<Body>) -> Self::Future {
            std::future::ready(Ok(tonic::Status::not_found("echo").into_http()))
        }
    }

    #[tokio::test]
    async fn a_registration_lasts_until_dropped_and_only_its_own_drop_removes_it() {
        let addr = "127.0.0.1:1";
        let t = Transport::new(&format!("http://{addr}")).unwrap();
        assert!(!t.is_local());
        let first = register(addr, Echo);
        assert!(t.is_local());
        let second = register(addr, Echo);
        drop(first);
        assert!(t.is_local(), "the older registration removed the newer one");
        drop(second);
        assert!(!t.is_local());
    }

    struct Reads;

    impl DirectoryReads for Reads {
        fn get_content_version(
            &self,
            req: GetContentVersionRequest,
        ) -> TypedFuture<'_, ContentRecord> {
            Box::pin(async move {
                Ok(ContentRecord {
                    key: req.key,
                    header: None,
                })
            })
        }
    }

    #[tokio::test]
    async fn typed_reads_are_found_only_for_a_directory_registration() {
        let addr = "127.0.0.1:3";
        assert!(directory_reads(addr).is_none());
        let plain = register(addr, Echo);
        assert!(
            directory_reads(addr).is_none(),
            "a plain stack has no typed reads"
        );
        let reg = register(addr, Echo).with_directory_reads(Arc::new(Reads));
        let reads = directory_reads(&format!("http://{addr}")).expect("registered");
        let req = GetContentVersionRequest {
            key: "k1".into(),
            ..Default::default()
        };
        assert_eq!(reads.get_content_version(req).await.unwrap().key, "k1");
        drop(reg);
        assert!(
            directory_reads(addr).is_none(),
            "gone with its registration"
        );
        assert!(!Transport::new(addr).unwrap().is_local());
        // A replaced registration does not give its reads to the one that replaced it.
        let newer = register(addr, Echo);
        let stale = plain.with_directory_reads(Arc::new(Reads));
        assert!(directory_reads(addr).is_none());
        drop(stale);
        assert!(
            Transport::new(addr).unwrap().is_local(),
            "the newer one stays"
        );
        drop(newer);
    }

    #[tokio::test]
    async fn a_call_to_a_registered_address_is_answered_in_process() {
        let addr = "127.0.0.1:2";
        let _reg = register(addr, Echo);
        let mut t = Transport::new(addr).unwrap();
        std::future::poll_fn(|cx| t.poll_ready(cx)).await.unwrap();
        let resp = t.call(http::Request::new(Body::empty())).await.unwrap();
        let status = tonic::Status::from_header_map(resp.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "echo");
    }
}
