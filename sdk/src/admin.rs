//! Conscience administration: locking and unlocking service scores. A lock pins a
//! service's score (0 drains it: no new chunk is placed there) until it is unlocked.
//! Each conscience keeps its own locks, so changes go to every configured conscience.

use crate::{Client, Error, Result};
use oxio_proto::v1::{LockRequest, ServiceState};
use oxio_proto::ConscienceClient;
use tracing::Instrument;

/// The highest score a lock may set.
pub const MAX_LOCK_SCORE: u32 = 100;

/// Longest service type or id accepted, in bytes (the conscience's bound).
pub const MAX_NAME_BYTES: usize = 256;

/// Most services one [`Client::unlock_all`] call unlocks.
pub const MAX_UNLOCK_ALL: usize = 100_000;

fn check_name(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "service {what} must be 1 to {MAX_NAME_BYTES} printable bytes"
        )));
    }
    Ok(())
}

impl Client {
    /// Locks the score of service `service_type`/`id` at `score` (0 to 100) on every
    /// conscience. The service need not be registered yet.
    pub async fn lock_service(&self, service_type: &str, id: &str, score: u32) -> Result<()> {
        if score > MAX_LOCK_SCORE {
            return Err(Error::InvalidArgument(format!(
                "lock score {score} is above {MAX_LOCK_SCORE}"
            )));
        }
        self.send_lock(service_type, id, Some(score)).await
    }

    /// Unlocks the score of service `service_type`/`id` on every conscience (no-op
    /// when it is not locked).
    pub async fn unlock_service(&self, service_type: &str, id: &str) -> Result<()> {
        self.send_lock(service_type, id, None).await
    }

    /// Unlocks every locked registered service (of `service_type`, or of every type
    /// when empty) and returns the services that were unlocked, as listed before.
    /// Locks naming services that never registered are not listed by the conscience
    /// and stay; unlock those by name.
    pub async fn unlock_all(&self, service_type: &str) -> Result<Vec<ServiceState>> {
        let locked: Vec<ServiceState> = self
            .list_services(service_type)
            .await?
            .into_iter()
            .filter(|s| s.locked)
            .take(MAX_UNLOCK_ALL)
            .collect();
        for s in &locked {
            let info = s.info.clone().unwrap_or_default();
            self.unlock_service(&info.service_type, &info.id).await?;
        }
        Ok(locked)
    }

    /// Sends one `Lock` request to every configured conscience; fails naming those
    /// that refused or could not be reached.
    async fn send_lock(&self, service_type: &str, id: &str, score: Option<u32>) -> Result<()> {
        check_name("type", service_type)?;
        check_name("id", id)?;
        let config = self.config();
        if config.conscience.is_empty() {
            return Err(Error::InvalidArgument(
                "no conscience address configured".into(),
            ));
        }
        let span = tracing::info_span!("lock_service", %service_type, %id, ?score);
        self.send_lock_to_all(service_type, id, score)
            .instrument(span)
            .await
    }

    async fn send_lock_to_all(
        &self,
        service_type: &str,
        id: &str,
        score: Option<u32>,
    ) -> Result<()> {
        let config = self.config();
        let mut failures = Vec::new();
        let mut invalid = None;
        for addr in &config.conscience {
            let ch = oxio_proto::channel(addr).map_err(|e| {
                Error::InvalidArgument(format!("bad conscience address {addr:?}: {e}"))
            })?;
            let mut c = ConscienceClient::new(ch);
            let mut r = tonic::Request::new(LockRequest {
                service_type: service_type.to_string(),
                id: id.to_string(),
                score: score.map(|s| s as i32),
            });
            r.set_timeout(config.rpc_timeout);
            match c.lock(r).await {
                Ok(_) => tracing::debug!(%addr, "lock applied"),
                Err(s) if s.code() == tonic::Code::InvalidArgument => {
                    invalid = Some(s.message().to_string());
                }
                Err(s) => {
                    tracing::warn!(%addr, error = %s.message(), "lock not applied");
                    failures.push(format!("{addr}: {}", s.message()));
                }
            }
        }
        if let Some(msg) = invalid {
            return Err(Error::InvalidArgument(msg));
        }
        if !failures.is_empty() {
            return Err(Error::Unavailable(format!(
                "lock not applied on {} of {} conscience(s): {}",
                failures.len(),
                config.conscience.len(),
                failures.join("; ")
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientConfig;

    fn client() -> Client {
        Client::new(ClientConfig::new(
            vec!["127.0.0.1:1".into()],
            vec!["127.0.0.1:1".into()],
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn arguments_are_checked_before_any_rpc() {
        let c = client();
        let err = c.lock_service("rawx", "rawx-0", 101).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        let err = c.lock_service("", "rawx-0", 0).await.unwrap_err();
        assert!(err.to_string().contains("service type"), "{err}");
        let err = c
            .unlock_service("rawx", &"x".repeat(300))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("service id"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_conscience_is_unavailable() {
        let mut cfg = ClientConfig::new(vec!["127.0.0.1:1".into()], vec![]);
        cfg.rpc_timeout = std::time::Duration::from_secs(2);
        let c = Client::new(cfg).unwrap();
        let err = c.lock_service("rawx", "rawx-0", 0).await.unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}
