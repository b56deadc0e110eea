//! Asking the conscience where new chunks go.

use crate::{Error, Result};
use oxio_proto::rpc::{RequestIdInterceptor, Traced};
use oxio_proto::v1::{ListServicesRequest, PlaceRequest, ServiceState};
use oxio_proto::ConscienceClient;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::transport::Channel;

/// Client of the conscience replicas; uses any live one.
pub struct ConscienceHandle {
    clients: Vec<(String, ConscienceClient<Traced<Channel>>)>,
    next: AtomicUsize,
    rpc_timeout: Duration,
}

impl ConscienceHandle {
    /// A client of the given conscience addresses.
    pub fn new(addrs: &[String], rpc_timeout: Duration) -> Result<Self> {
        let clients = addrs
            .iter()
            .map(|a| {
                oxio_proto::channel(a)
                    .map(|ch| {
                        let c = ConscienceClient::with_interceptor(ch, RequestIdInterceptor);
                        (a.clone(), c)
                    })
                    .map_err(|e| {
                        Error::InvalidArgument(format!("bad conscience address {a:?}: {e}"))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ConscienceHandle {
            clients,
            next: AtomicUsize::new(0),
            rpc_timeout,
        })
    }

    /// `count` distinct services of `service_type` for one metachunk, and whether
    /// they sit closer together than the topology would allow
    /// (`PlaceReply::distance_degraded`).
    pub async fn place(
        &self,
        service_type: &str,
        count: usize,
        avoid: &[String],
    ) -> Result<(Vec<ServiceState>, bool)> {
        if self.clients.is_empty() {
            return Err(Error::Placement("no conscience address configured".into()));
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.clients.len() {
            let (addr, c) = &self.clients[(start + i) % self.clients.len()];
            let mut req = tonic::Request::new(PlaceRequest {
                service_type: service_type.to_string(),
                count: count as u32,
                avoid_ids: avoid.to_vec(),
            });
            req.set_timeout(self.rpc_timeout);
            match c.clone().place(req).await {
                Ok(r) => {
                    let reply = r.into_inner();
                    let services = reply.services;
                    if services.len() != count {
                        return Err(Error::Placement(format!(
                            "conscience {addr} gave {} services, {count} needed",
                            services.len()
                        )));
                    }
                    return Ok((services, reply.distance_degraded));
                }
                Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                    return Err(Error::Placement(s.message().to_string()))
                }
                Err(s) => last = format!("{addr}: {}", s.message()),
            }
        }
        Err(Error::Unavailable(format!(
            "no conscience answered: {last}"
        )))
    }

    /// Every service of `service_type` the first live replica lists (rotating
    /// through them like placements).
    pub async fn list(&self, service_type: &str) -> Result<Vec<ServiceState>> {
        if self.clients.is_empty() {
            return Err(Error::Unavailable(
                "no conscience address configured".into(),
            ));
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.clients.len() {
            let (addr, c) = &self.clients[(start + i) % self.clients.len()];
            let mut req = tonic::Request::new(ListServicesRequest {
                service_type: service_type.to_string(),
            });
            req.set_timeout(self.rpc_timeout);
            match c.clone().list_services(req).await {
                Ok(r) => return Ok(r.into_inner().services),
                Err(s) => last = format!("{addr}: {}", s.message()),
            }
        }
        Err(Error::Unavailable(format!(
            "no conscience answered: {last}"
        )))
    }
}
