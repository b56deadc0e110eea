//! Driving a rawx's scrubber from a client: `GET /scrub` (its state and the corrupt
//! chunks it found) and `POST /scrub` (start a pass now), and waiting for a pass to
//! end. The repair of what it reports is in [`crate::repair`].

use crate::client::Client;
use crate::{Error, Result};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Largest `GET /scrub` body accepted (10,000 corrupt entries take about 4 MB).
const MAX_STATUS_BODY: usize = 16 << 20;
/// Pause between two polls while waiting for a pass.
const POLL: Duration = Duration::from_millis(200);
/// Timeout of one scrub request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One corrupt chunk a scrubber reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct ScrubCorrupt {
    /// Chunk id (64 upper-case hex).
    pub chunk_id: String,
    /// Container id from the chunk header, empty when unreadable.
    pub container: String,
    /// Content id from the chunk header, empty when unreadable.
    pub content: String,
    /// Position ("N" or "N.M"), empty when unreadable.
    pub position: String,
    /// What is wrong with it.
    pub error: String,
    /// When it was last found corrupt, ms since the Unix epoch.
    pub found_ms: u64,
}

/// A rawx scrubber's state as `GET /scrub` answers it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct ScrubReport {
    /// `disabled`, `idle`, `running` or `throttled`.
    pub state: String,
    /// Completed passes.
    pub pass: u64,
    /// Chunks verified in the current (or last) pass.
    pub checked_chunks: u64,
    /// Bytes verified in the current (or last) pass.
    pub checked_bytes: u64,
    /// Corrupt chunks found in the current (or last) pass.
    pub corrupt_found: u64,
    /// Configured rate limit, bytes per second.
    pub rate_bytes_per_s: u64,
    /// Start of the current or last pass, ms since the Unix epoch.
    pub last_pass_start_ms: Option<u64>,
    /// End of the last completed pass, ms since the Unix epoch.
    pub last_pass_end_ms: Option<u64>,
    /// The corrupt chunks known to the scrubber.
    pub corrupt: Vec<ScrubCorrupt>,
}

impl ScrubReport {
    /// Whether no pass is running (idle or disabled).
    pub fn is_idle(&self) -> bool {
        matches!(self.state.as_str(), "idle" | "disabled")
    }
}

/// The answer to a pass request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScrubStart {
    /// A pass starts now.
    Started,
    /// A pass is already running or requested.
    AlreadyRunning,
}

impl Client {
    /// The address of the rawx `rawx_id`, which must be registered and up.
    pub(crate) async fn rawx_addr_up(&self, rawx_id: &str) -> Result<String> {
        let services = self.list_services("rawx").await?;
        let svc = services
            .iter()
            .find(|s| s.info.as_ref().is_some_and(|i| i.id == rawx_id))
            .ok_or_else(|| Error::InvalidArgument(format!("no rawx {rawx_id:?} is registered")))?;
        if !svc.up {
            return Err(Error::Unavailable(format!("rawx {rawx_id} is down")));
        }
        Ok(svc
            .info
            .as_ref()
            .map(|i| i.addr.clone())
            .unwrap_or_default())
    }

    /// The scrubber state of the rawx `rawx_id` (`GET /scrub`).
    pub async fn scrub_status(&self, rawx_id: &str) -> Result<ScrubReport> {
        let addr = self.rawx_addr_up(rawx_id).await?;
        scrub_status_at(&addr).await
    }

    /// Asks the rawx `rawx_id` to start a scrub pass now (`POST /scrub`).
    pub async fn start_scrub(&self, rawx_id: &str) -> Result<ScrubStart> {
        let addr = self.rawx_addr_up(rawx_id).await?;
        let before = scrub_status_at(&addr).await?;
        if before.state == "disabled" {
            return Err(Error::InvalidArgument(format!(
                "the scrubber of {rawx_id} is disabled (scrub rate 0)"
            )));
        }
        let resp = http()?
            .post(format!("http://{addr}/scrub"))
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("rawx {addr}: {e}")))?;
        match resp.status() {
            reqwest::StatusCode::ACCEPTED => {
                tracing::info!(rawx = rawx_id, "scrub pass requested");
                Ok(ScrubStart::Started)
            }
            reqwest::StatusCode::CONFLICT => Ok(ScrubStart::AlreadyRunning),
            s => Err(Error::Unavailable(format!(
                "rawx {addr} scrub request: {s}"
            ))),
        }
    }

    /// Polls the scrubber of `rawx_id` until a pass later than `after_pass` has ended
    /// (or `timeout` passes); `progress` sees every poll.
    pub async fn wait_scrub_pass(
        &self,
        rawx_id: &str,
        after_pass: u64,
        timeout: Duration,
        progress: impl Fn(&ScrubReport),
    ) -> Result<ScrubReport> {
        let addr = self.rawx_addr_up(rawx_id).await?;
        let deadline = Instant::now() + timeout;
        loop {
            let st = scrub_status_at(&addr).await?;
            progress(&st);
            if st.pass > after_pass && st.is_idle() {
                return Ok(st);
            }
            if st.state == "disabled" {
                return Err(Error::InvalidArgument(format!(
                    "the scrubber of {rawx_id} is disabled"
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "scrub pass of {rawx_id} not finished after {} s",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn http() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| Error::Internal(format!("http client: {e}")))
}

/// `GET /scrub` of the rawx at `addr`.
pub(crate) async fn scrub_status_at(addr: &str) -> Result<ScrubReport> {
    let req = http()?.get(format!("http://{addr}/scrub"));
    crate::rawx::get_json(req, addr, "scrub status", MAX_STATUS_BODY).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rawx_answer_parses() {
        let body = br#"{"state":"idle","pass":2,"checked_chunks":5,"checked_bytes":100,
            "corrupt_found":1,"rate_bytes_per_s":10,"last_pass_start_ms":1,
            "last_pass_end_ms":2,"corrupt":[{"chunk_id":"AB","container":"C",
            "content":"D","position":"0.1","error":"checksum mismatch","found_ms":3}]}"#;
        let r: ScrubReport = serde_json::from_slice(body).unwrap();
        assert!(r.is_idle());
        assert_eq!(r.pass, 2);
        assert_eq!(r.corrupt.len(), 1);
        assert_eq!(r.corrupt[0].chunk_id, "AB");
        assert_eq!(r.last_pass_end_ms, Some(2));
        let running: ScrubReport = serde_json::from_slice(br#"{"state":"running"}"#).unwrap();
        assert!(!running.is_idle());
    }
}
