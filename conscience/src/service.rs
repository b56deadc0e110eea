//! The `Conscience` gRPC service: request validation, mapping to the registry and the
//! placement function, and errors to gRPC statuses.

use crate::locks::{LockStore, MAX_LOCKS};
use crate::metrics::ConscienceMetrics;
use crate::placement::{self, PlacementError};
use crate::registry::{HeartbeatError, Registry, Report, ServiceView, MAX_FIELD_BYTES};
use crate::score::MAX_SCORE;
use crate::shortfall::Shortfall;
use oxio_proto::v1::conscience_server::Conscience;
use oxio_proto::v1::{
    HeartbeatReply, ListServicesReply, ListServicesRequest, LockReply, LockRequest, PlaceReply,
    PlaceRequest, ServiceInfo, ServiceState,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tonic::{Request, Response, Status};
use tracing::Instrument;

#[path = "deregister.rs"]
mod deregister;

/// Most services one `Place` call may ask for.
pub const MAX_PLACE_COUNT: u32 = 1024;
/// Most ids one `Place` call may ask to avoid.
pub const MAX_AVOID_IDS: usize = 10_000;

/// Shared state behind the gRPC handlers.
#[derive(Debug)]
pub(crate) struct ConscienceService {
    registry: Arc<Mutex<Registry>>,
    store: LockStore,
    /// Serialises lock changes so that the file and memory agree.
    lock_writer: tokio::sync::Mutex<()>,
    metrics: Arc<ConscienceMetrics>,
}

impl ConscienceService {
    pub(crate) fn new(
        registry: Registry,
        store: LockStore,
        metrics: Arc<ConscienceMetrics>,
    ) -> Self {
        ConscienceService {
            registry: Arc::new(Mutex::new(registry)),
            store,
            lock_writer: tokio::sync::Mutex::new(()),
            metrics,
        }
    }

    /// The registry, shared with the metrics server.
    pub(crate) fn registry_handle(&self) -> Arc<Mutex<Registry>> {
        self.registry.clone()
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves consistent data (every update is a
        // single insert), so a poisoned lock is still usable.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the heartbeat; the flag says the lock state must be persisted.
    fn heartbeat_inner(&self, info: ServiceInfo) -> Result<(HeartbeatReply, bool), Status> {
        let report = Report::try_from(info).map_err(heartbeat_status)?;
        let (service_type, id) = (report.service_type.clone(), report.id.clone());
        let r = self
            .registry()
            .heartbeat(report, Instant::now())
            .map_err(heartbeat_status)?;
        self.metrics.heartbeat(&service_type);
        let score = r.score;
        if r.is_new {
            tracing::info!(%service_type, %id, score, "service registered");
        } else {
            tracing::trace!(%service_type, %id, score, "heartbeat");
        }
        Ok((
            HeartbeatReply {
                score: score as i32,
            },
            r.lock_state_changed,
        ))
    }

    /// Writes the registry's current lock state to the lock file. The caller holds
    /// `lock_writer`, so that the file is written in the order of the changes.
    async fn persist_lock_state(&self) -> Result<(), Status> {
        let store = self.store.clone();
        let state = self.registry().lock_state();
        tokio::task::spawn_blocking(move || store.save(&state))
            .await
            .map_err(|e| Status::internal(format!("lock file writer failed: {e}")))?
            .map_err(|e| {
                tracing::error!(error = %e, "cannot persist locks");
                Status::unavailable(format!("cannot persist locks: {e}"))
            })
    }

    fn place_inner(&self, req: PlaceRequest) -> Result<PlaceReply, Status> {
        check_name("service_type", &req.service_type)?;
        if req.count == 0 || req.count > MAX_PLACE_COUNT {
            return Err(Status::invalid_argument(format!(
                "count is {}, it must be between 1 and {MAX_PLACE_COUNT}",
                req.count
            )));
        }
        if req.avoid_ids.len() > MAX_AVOID_IDS {
            return Err(Status::invalid_argument(format!(
                "{} avoid_ids, at most {MAX_AVOID_IDS}",
                req.avoid_ids.len()
            )));
        }
        let avoid: HashSet<String> = req.avoid_ids.into_iter().collect();
        let now = Instant::now();
        // Down services come with score 0: they describe the layout (see
        // `Placement::distance_degraded`) but are never chosen.
        let candidates = self.registry().candidates(&req.service_type, now);
        let placed = placement::place(&candidates, req.count as usize, &avoid, &mut rand::rng());
        self.metrics.placement(&req.service_type, placed.is_ok());
        let placed = placed.map_err(|e| match e {
            PlacementError::NotEnough { eligible, .. } => {
                let registry = self.registry();
                let expression = registry.expression(&req.service_type);
                let why = Shortfall::new(
                    &req.service_type,
                    &registry.list(Some(&req.service_type), now),
                    &avoid,
                    eligible,
                    expression.source(),
                    &expression.stat_names(),
                );
                Status::resource_exhausted(format!(
                    "placing {} service(s) of type `{}`: {e}; {why}",
                    req.count, req.service_type
                ))
            }
        })?;
        let services: Vec<ServiceState> = {
            let registry = self.registry();
            placed
                .ids
                .iter()
                .filter_map(|id| registry.get(&req.service_type, id, now))
                .map(|v| state_of(&v))
                .collect()
        };
        if services.len() != placed.ids.len() {
            // Only possible if the registry evicted a chosen service in between.
            return Err(Status::unavailable(
                "registry changed during placement, retry",
            ));
        }
        if placed.distance_degraded {
            self.metrics.placement_degraded(&req.service_type);
            tracing::warn!(
                service_type = %req.service_type,
                ids = ?placed.ids,
                "placement spread less than the topology allows (services down, locked or full); the content is flagged for improvement"
            );
        } else {
            tracing::debug!(service_type = %req.service_type, ids = ?placed.ids, "placed");
        }
        Ok(PlaceReply {
            services,
            distance_degraded: placed.distance_degraded,
        })
    }

    async fn lock_inner(&self, req: LockRequest) -> Result<LockReply, Status> {
        check_name("service_type", &req.service_type)?;
        check_name("id", &req.id)?;
        let score = match req.score {
            None => None,
            Some(s) if (0..=MAX_SCORE as i32).contains(&s) => Some(s as u32),
            Some(s) => {
                return Err(Status::invalid_argument(format!(
                    "lock score {s} is outside 0..={MAX_SCORE}"
                )))
            }
        };
        let key = (req.service_type, req.id);
        let _writer = self.lock_writer.lock().await;
        // The new state is written first and applied to memory after, as one change
        // (heartbeats may add first-registration locks in between).
        let mut state = self.registry().lock_state();
        let changed = match score {
            Some(s) => state.locks.insert(key.clone(), s) != Some(s),
            None => state.locks.remove(&key).is_some(),
        };
        if !changed {
            return Ok(LockReply {});
        }
        if state.locks.len() > MAX_LOCKS {
            return Err(Status::resource_exhausted(format!(
                "at most {MAX_LOCKS} locks; unlock some first"
            )));
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.save(&state))
            .await
            .map_err(|e| Status::internal(format!("lock file writer failed: {e}")))?
            .map_err(|e| {
                tracing::error!(error = %e, "cannot persist locks");
                Status::unavailable(format!("cannot persist locks: {e}"))
            })?;
        self.registry().apply_lock(key.clone(), score);
        match score {
            Some(s) => {
                tracing::info!(service_type = %key.0, id = %key.1, score = s, "score locked")
            }
            None => tracing::info!(service_type = %key.0, id = %key.1, "score unlocked"),
        }
        Ok(LockReply {})
    }
}

fn check_name(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is empty")));
    }
    if value.len() > MAX_FIELD_BYTES {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes, at most {MAX_FIELD_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

fn heartbeat_status(e: HeartbeatError) -> Status {
    match e {
        HeartbeatError::Invalid(_) | HeartbeatError::Score { .. } => {
            tracing::warn!(error = %e, "heartbeat refused");
            Status::invalid_argument(e.to_string())
        }
        HeartbeatError::Full(_) => {
            tracing::warn!(error = %e, "heartbeat refused");
            Status::resource_exhausted(e.to_string())
        }
    }
}

fn state_of(v: &ServiceView) -> ServiceState {
    ServiceState {
        info: Some(ServiceInfo {
            service_type: v.service_type.clone(),
            id: v.id.clone(),
            addr: v.addr.clone(),
            location: v.location.to_string(),
            stats: v.stats.clone(),
        }),
        score: v.score as i32,
        up: v.up,
        locked: v.locked,
        last_seen_ms_ago: u64::try_from(v.last_seen_ago.as_millis()).unwrap_or(u64::MAX),
    }
}

#[tonic::async_trait]
impl Conscience for ConscienceService {
    async fn heartbeat(
        &self,
        request: Request<ServiceInfo>,
    ) -> Result<Response<HeartbeatReply>, Status> {
        let info = request.into_inner();
        let span =
            tracing::debug_span!("heartbeat", service_type = %info.service_type, id = %info.id);
        async move {
            let (reply, lock_state_changed) = self.heartbeat_inner(info)?;
            if lock_state_changed {
                // A first registration with `lock_new_services`: make the lock and
                // the "known" mark durable. A failure is logged; the lock still holds
                // in memory and is written with the next lock change.
                let _writer = self.lock_writer.lock().await;
                let _ = self.persist_lock_state().await;
            }
            Ok(Response::new(reply))
        }
        .instrument(span)
        .await
    }

    async fn list_services(
        &self,
        request: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesReply>, Status> {
        let req = request.into_inner();
        let span = tracing::debug_span!("list_services", service_type = %req.service_type);
        let _entered = span.enter();
        let filter = (!req.service_type.is_empty()).then_some(req.service_type.as_str());
        let views = self.registry().list(filter, Instant::now());
        tracing::debug!(count = views.len(), "listed");
        Ok(Response::new(ListServicesReply {
            services: views.iter().map(state_of).collect(),
        }))
    }

    async fn place(&self, request: Request<PlaceRequest>) -> Result<Response<PlaceReply>, Status> {
        let req = request.into_inner();
        let span =
            tracing::info_span!("place", service_type = %req.service_type, count = req.count);
        let _entered = span.enter();
        self.place_inner(req).map(Response::new)
    }

    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockReply>, Status> {
        let req = request.into_inner();
        let span = tracing::info_span!(
            "lock",
            service_type = %req.service_type,
            id = %req.id,
            score = ?req.score
        );
        self.lock_inner(req)
            .instrument(span)
            .await
            .map(Response::new)
    }
}
