//! Forgetting services that are gone: `ConscienceAdmin.DeregisterService` sent to
//! every configured conscience (each keeps its own registry and lock file). A
//! service that still heartbeats registers again at its next heartbeat.

use crate::admin::MAX_NAME_BYTES;
use crate::{Client, Error, Result};
use oxio_proto::v1::conscience_admin_client::ConscienceAdminClient;
use oxio_proto::v1::DeregisterServiceRequest;
use tracing::Instrument;

/// What one conscience answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeregisterReply {
    /// Conscience address.
    pub conscience: String,
    /// The service was registered there.
    pub registered: bool,
    /// Its lock or "known" mark was removed from that conscience's lock file.
    pub lock_state_changed: bool,
}

impl DeregisterReply {
    /// The conscience knew the service in some way.
    pub fn found(&self) -> bool {
        self.registered || self.lock_state_changed
    }
}

fn check_name(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "service {what} must be 1 to {MAX_NAME_BYTES} printable bytes"
        )));
    }
    Ok(())
}

impl Client {
    /// Deregisters service `service_type`/`id` on every conscience and answers each
    /// one's reply; fails naming the consciences that refused or could not be reached
    /// (the others did forget it: run it again).
    pub async fn deregister_service(
        &self,
        service_type: &str,
        id: &str,
    ) -> Result<Vec<DeregisterReply>> {
        check_name("type", service_type)?;
        check_name("id", id)?;
        let config = self.config();
        if config.conscience.is_empty() {
            return Err(Error::InvalidArgument(
                "no conscience address configured".into(),
            ));
        }
        let span = tracing::info_span!("deregister_service", %service_type, %id);
        async {
            let mut replies = Vec::with_capacity(config.conscience.len());
            let mut failures = Vec::new();
            for addr in &config.conscience {
                let ch = oxio_proto::channel(addr).map_err(|e| {
                    Error::InvalidArgument(format!("bad conscience address {addr:?}: {e}"))
                })?;
                let mut c = ConscienceAdminClient::new(ch);
                let mut r = tonic::Request::new(DeregisterServiceRequest {
                    service_type: service_type.to_string(),
                    id: id.to_string(),
                });
                r.set_timeout(config.rpc_timeout);
                match c.deregister_service(r).await {
                    Ok(reply) => {
                        let reply = reply.into_inner();
                        tracing::debug!(%addr, registered = reply.registered, "deregistered");
                        replies.push(DeregisterReply {
                            conscience: addr.clone(),
                            registered: reply.registered,
                            lock_state_changed: reply.lock_state_changed,
                        });
                    }
                    Err(s) if s.code() == tonic::Code::InvalidArgument => {
                        return Err(Error::InvalidArgument(s.message().to_string()));
                    }
                    Err(s) => {
                        tracing::warn!(%addr, error = %s.message(), "deregister not applied");
                        failures.push(format!("{addr}: {}", s.message()));
                    }
                }
            }
            if !failures.is_empty() {
                return Err(Error::Unavailable(format!(
                    "deregister not applied on {} of {} conscience(s): {}",
                    failures.len(),
                    config.conscience.len(),
                    failures.join("; ")
                )));
            }
            Ok(replies)
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientConfig;

    #[tokio::test]
    async fn arguments_checked_and_unreachable_consciences_named() {
        let mut cfg = ClientConfig::new(vec!["127.0.0.1:1".into()], vec![]);
        cfg.rpc_timeout = std::time::Duration::from_secs(2);
        let c = Client::new(cfg).unwrap();
        let err = c.deregister_service("", "rawx-0").await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        let err = c
            .deregister_service("rawx", &"x".repeat(300))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("service id"), "{err}");
        let err = c.deregister_service("rawx", "rawx-0").await.unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}
