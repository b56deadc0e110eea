//! The `ConscienceAdmin` gRPC service: forgetting services that are gone. It shares
//! the registry, the lock file and its writer lock with the `Conscience` service.

use super::{check_name, ConscienceService};
use oxio_proto::v1::conscience_admin_server::ConscienceAdmin;
use oxio_proto::v1::{DeregisterServiceReply, DeregisterServiceRequest};
use tonic::{Request, Response, Status};
use tracing::Instrument;

impl ConscienceService {
    /// Forgets `service_type`/`id`: the lock file first (its lock and "known" mark),
    /// then memory, so that a crash in between leaves at most a registry entry that
    /// expires by itself.
    async fn deregister_inner(
        &self,
        req: DeregisterServiceRequest,
    ) -> Result<DeregisterServiceReply, Status> {
        check_name("service_type", &req.service_type)?;
        check_name("id", &req.id)?;
        let key = (req.service_type, req.id);
        let _writer = self.lock_writer.lock().await;
        let mut state = self.registry().lock_state();
        let unlocked = state.locks.remove(&key).is_some();
        let unknown = state.known.remove(&key);
        let lock_state_changed = unlocked || unknown;
        if lock_state_changed {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.save(&state))
                .await
                .map_err(|e| Status::internal(format!("lock file writer failed: {e}")))?
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot persist locks");
                    Status::unavailable(format!("cannot persist locks: {e}"))
                })?;
        }
        let registered = self.registry().deregister(&key);
        if registered || lock_state_changed {
            tracing::info!(
                service_type = %key.0,
                id = %key.1,
                registered,
                lock_state_changed,
                "service deregistered"
            );
        } else {
            tracing::debug!(service_type = %key.0, id = %key.1, "deregister: unknown service");
        }
        Ok(DeregisterServiceReply {
            registered,
            lock_state_changed,
        })
    }
}

#[tonic::async_trait]
impl ConscienceAdmin for ConscienceService {
    async fn deregister_service(
        &self,
        request: Request<DeregisterServiceRequest>,
    ) -> Result<Response<DeregisterServiceReply>, Status> {
        let req = request.into_inner();
        let span =
            tracing::info_span!("deregister", service_type = %req.service_type, id = %req.id);
        self.deregister_inner(req)
            .instrument(span)
            .await
            .map(Response::new)
    }
}
