//! The scrubber's visible state and its bounded list of corrupt chunks, shared between
//! the scrub worker (writer) and the request handlers (readers, pass trigger).

use crate::error::{Error, Result};
use crate::metrics::ScrubMetrics;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// Most corrupt chunks kept in the list; the oldest findings are dropped first.
pub const MAX_CORRUPT_ENTRIES: usize = 10_000;
/// Largest state file read back at start (the list at its cap is far below this).
const MAX_STATE_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Name of the state file in the volume folder.
pub const STATE_FILE: &str = "scrub-state.json";

/// What the scrubber is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScrubState {
    /// `scrub_rate_bytes_per_s` is 0: no scrubber runs.
    Disabled,
    /// Waiting for the next pass.
    Idle,
    /// Reading and verifying chunks.
    Running,
    /// Inside a pass, sleeping to stay under the configured rate.
    Throttled,
}

impl ScrubState {
    fn gauge(self) -> i64 {
        match self {
            ScrubState::Disabled => -1,
            ScrubState::Idle => 0,
            ScrubState::Running => 1,
            ScrubState::Throttled => 2,
        }
    }
}

/// One corrupt chunk found by the scrubber.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptChunk {
    /// Chunk id (64 upper-case hex).
    pub chunk_id: String,
    /// Container id from the header, empty when the header is unreadable.
    pub container: String,
    /// Content id from the header, empty when the header is unreadable.
    pub content: String,
    /// Position ("N" or "N.M") from the header, empty when unreadable.
    pub position: String,
    /// What is wrong (checksum mismatch in segment N, corrupt header: why).
    pub error: String,
    /// When it was last found corrupt, ms since the Unix epoch.
    pub found_ms: u64,
}

/// A snapshot of the scrubber, answered by `GET /scrub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubStatus {
    /// Current state.
    pub state: ScrubState,
    /// Completed passes.
    pub pass: u64,
    /// Chunks verified in the current (or last) pass.
    pub checked_chunks: u64,
    /// Bytes read and verified in the current (or last) pass.
    pub checked_bytes: u64,
    /// Corrupt chunks found in the current (or last) pass.
    pub corrupt_found: u64,
    /// Configured rate limit.
    pub rate_bytes_per_s: u64,
    /// Start of the current or last pass, ms since the Unix epoch.
    pub last_pass_start_ms: Option<u64>,
    /// End of the last completed pass, ms since the Unix epoch.
    pub last_pass_end_ms: Option<u64>,
    /// Corrupt chunks known, oldest finding first (at most [`MAX_CORRUPT_ENTRIES`]).
    pub corrupt: Vec<CorruptChunk>,
}

impl ScrubStatus {
    /// Parses a `GET /scrub` answer (for the repair path and the tests).
    pub fn from_json(body: &[u8]) -> Result<ScrubStatus> {
        serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("scrub status: {e}")))
    }
}

/// What survives a restart.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    pass: u64,
    last_pass_start_ms: Option<u64>,
    last_pass_end_ms: Option<u64>,
    corrupt: Vec<CorruptChunk>,
}

#[derive(Debug)]
struct Inner {
    state: ScrubState,
    pass: u64,
    checked_chunks: u64,
    checked_bytes: u64,
    corrupt_found: u64,
    last_pass_start_ms: Option<u64>,
    last_pass_end_ms: Option<u64>,
    corrupt: VecDeque<CorruptChunk>,
    requested: bool,
}

/// The scrubber handle shared by the worker and the request handlers.
#[derive(Debug)]
pub struct Scrubber {
    inner: Mutex<Inner>,
    wake: Notify,
    rate_bytes_per_s: u64,
    capacity: usize,
    metrics: ScrubMetrics,
    state_file: Option<PathBuf>,
}

impl Scrubber {
    /// A scrubber for `volume` reading at most `rate_bytes_per_s` (0: disabled). Loads
    /// the state file of an earlier run when there is a readable one.
    pub fn new(volume: &Path, rate_bytes_per_s: u64, metrics: ScrubMetrics) -> Self {
        let path = volume.join(STATE_FILE);
        let persisted = load(&path);
        Self::build(
            rate_bytes_per_s,
            metrics,
            Some(path),
            persisted,
            MAX_CORRUPT_ENTRIES,
        )
    }

    /// A scrubber without a state file and with a list of at most `capacity` entries.
    #[cfg(test)]
    pub(crate) fn in_memory(rate_bytes_per_s: u64, metrics: ScrubMetrics, capacity: usize) -> Self {
        Self::build(
            rate_bytes_per_s,
            metrics,
            None,
            Persisted::default(),
            capacity,
        )
    }

    fn build(
        rate_bytes_per_s: u64,
        metrics: ScrubMetrics,
        state_file: Option<PathBuf>,
        p: Persisted,
        capacity: usize,
    ) -> Self {
        let state = if rate_bytes_per_s == 0 {
            ScrubState::Disabled
        } else {
            ScrubState::Idle
        };
        let mut corrupt: VecDeque<CorruptChunk> = p.corrupt.into();
        while corrupt.len() > capacity {
            corrupt.pop_front();
        }
        metrics.state.set(state.gauge());
        metrics.passes.set(to_i64(p.pass));
        metrics
            .last_pass_start
            .set(to_i64(p.last_pass_start_ms.unwrap_or(0) / 1000));
        metrics
            .last_pass_end
            .set(to_i64(p.last_pass_end_ms.unwrap_or(0) / 1000));
        Scrubber {
            inner: Mutex::new(Inner {
                state,
                pass: p.pass,
                checked_chunks: 0,
                checked_bytes: 0,
                corrupt_found: 0,
                last_pass_start_ms: p.last_pass_start_ms,
                last_pass_end_ms: p.last_pass_end_ms,
                corrupt,
                requested: false,
            }),
            wake: Notify::new(),
            rate_bytes_per_s,
            capacity,
            metrics,
            state_file,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configured rate limit (0: disabled).
    pub fn rate_bytes_per_s(&self) -> u64 {
        self.rate_bytes_per_s
    }

    /// A snapshot of the state and the corrupt list.
    pub fn status(&self) -> ScrubStatus {
        let g = self.lock();
        ScrubStatus {
            state: g.state,
            pass: g.pass,
            checked_chunks: g.checked_chunks,
            checked_bytes: g.checked_bytes,
            corrupt_found: g.corrupt_found,
            rate_bytes_per_s: self.rate_bytes_per_s,
            last_pass_start_ms: g.last_pass_start_ms,
            last_pass_end_ms: g.last_pass_end_ms,
            corrupt: g.corrupt.iter().cloned().collect(),
        }
    }

    /// Asks for a pass now. Fails with [`Error::ScrubConflict`] when the scrubber is
    /// disabled or a pass is already running or requested.
    pub fn request_pass(&self) -> Result<()> {
        let mut g = self.lock();
        match g.state {
            ScrubState::Disabled => {
                return Err(Error::ScrubConflict("the scrubber is disabled".into()))
            }
            ScrubState::Running | ScrubState::Throttled => {
                return Err(Error::ScrubConflict("a pass is already running".into()))
            }
            ScrubState::Idle if g.requested => {
                return Err(Error::ScrubConflict("a pass is already requested".into()))
            }
            ScrubState::Idle => {}
        }
        g.requested = true;
        drop(g);
        self.wake.notify_one();
        Ok(())
    }

    /// Waits until [`Scrubber::request_pass`] is called (a call made before this wait
    /// is not lost).
    pub(crate) async fn requested(&self) {
        self.wake.notified().await
    }

    /// Takes the pending request, if any.
    pub(crate) fn take_request(&self) -> bool {
        std::mem::take(&mut self.lock().requested)
    }

    /// Marks the start of a pass: progress back to zero.
    pub(crate) fn begin_pass(&self, now_ms: u64) {
        let mut g = self.lock();
        g.state = ScrubState::Running;
        g.requested = false;
        g.checked_chunks = 0;
        g.checked_bytes = 0;
        g.corrupt_found = 0;
        g.last_pass_start_ms = Some(now_ms);
        drop(g);
        self.metrics.state.set(ScrubState::Running.gauge());
        self.metrics.checked_chunks.set(0);
        self.metrics.checked_bytes.set(0);
        self.metrics.last_pass_start.set(to_i64(now_ms / 1000));
    }

    /// Switches between running and throttled inside a pass.
    pub(crate) fn set_throttled(&self, throttled: bool) {
        let state = if throttled {
            ScrubState::Throttled
        } else {
            ScrubState::Running
        };
        self.lock().state = state;
        self.metrics.state.set(state.gauge());
    }

    /// Adds verified chunks and bytes to the current pass.
    pub(crate) fn progress(&self, chunks: u64, bytes: u64) {
        let mut g = self.lock();
        g.checked_chunks += chunks;
        g.checked_bytes += bytes;
        let (c, b) = (g.checked_chunks, g.checked_bytes);
        drop(g);
        self.metrics.checked_chunks.set(to_i64(c));
        self.metrics.checked_bytes.set(to_i64(b));
    }

    /// Records a corrupt chunk: an earlier entry for the same chunk is replaced, the
    /// list keeps the newest [`MAX_CORRUPT_ENTRIES`].
    pub(crate) fn record_corrupt(&self, entry: CorruptChunk) {
        let mut g = self.lock();
        g.corrupt_found += 1;
        if let Some(i) = g.corrupt.iter().position(|c| c.chunk_id == entry.chunk_id) {
            g.corrupt.remove(i);
        }
        g.corrupt.push_back(entry);
        while g.corrupt.len() > self.capacity {
            g.corrupt.pop_front();
        }
        drop(g);
        self.metrics.corrupt_chunks.inc();
    }

    /// Ends a pass. A complete pass drops the entries it did not find again (chunks
    /// repaired or deleted since) and counts as a pass; an interrupted one only goes
    /// back to idle. Saves the state file.
    pub(crate) fn end_pass(&self, now_ms: u64, complete: bool) {
        let mut g = self.lock();
        g.state = ScrubState::Idle;
        if complete {
            g.pass += 1;
            g.last_pass_end_ms = Some(now_ms);
            let start = g.last_pass_start_ms.unwrap_or(0);
            g.corrupt.retain(|c| c.found_ms >= start);
        }
        let persisted = Persisted {
            pass: g.pass,
            last_pass_start_ms: g.last_pass_start_ms,
            last_pass_end_ms: g.last_pass_end_ms,
            corrupt: g.corrupt.iter().cloned().collect(),
        };
        drop(g);
        self.metrics.state.set(ScrubState::Idle.gauge());
        self.metrics.passes.set(to_i64(persisted.pass));
        if complete {
            self.metrics.last_pass_end.set(to_i64(now_ms / 1000));
        }
        if let Some(path) = &self.state_file {
            if let Err(e) = save(path, &persisted) {
                tracing::warn!(path = %path.display(), error = %e, "cannot save scrub state");
            }
        }
    }

    /// End of the last completed pass, ms since the Unix epoch.
    pub(crate) fn last_pass_end_ms(&self) -> Option<u64> {
        self.lock().last_pass_end_ms
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn load(path: &Path) -> Persisted {
    let read = || -> std::result::Result<Option<Persisted>, String> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        if meta.len() > MAX_STATE_FILE_BYTES {
            return Err(format!("larger than {MAX_STATE_FILE_BYTES} bytes"));
        }
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| e.to_string())
    };
    match read() {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable scrub state");
            Persisted::default()
        }
    }
}

fn save(path: &Path, p: &Persisted) -> Result<()> {
    let bytes = serde_json::to_vec(p).map_err(|e| Error::Runtime(format!("scrub state: {e}")))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("write scrub state", e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename scrub state", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RawxMetrics;

    fn entry(id: u32, found_ms: u64) -> CorruptChunk {
        CorruptChunk {
            chunk_id: format!("{id:064X}"),
            container: "C".into(),
            content: "c".into(),
            position: "0.1".into(),
            error: "bad".into(),
            found_ms,
        }
    }

    #[test]
    fn list_is_bounded_deduplicated_and_newest_kept() {
        let m = RawxMetrics::new().unwrap();
        let s = Scrubber::in_memory(1, m.scrub().clone(), 3);
        for i in 0..5 {
            s.record_corrupt(entry(i, 10));
        }
        let ids: Vec<_> = s
            .status()
            .corrupt
            .iter()
            .map(|c| c.chunk_id.clone())
            .collect();
        assert_eq!(
            ids,
            vec![
                format!("{:064X}", 2),
                format!("{:064X}", 3),
                format!("{:064X}", 4)
            ]
        );
        // the same chunk again replaces its entry and moves to the newest end
        s.record_corrupt(entry(2, 20));
        let st = s.status();
        assert_eq!(st.corrupt.len(), 3);
        assert_eq!(st.corrupt[2].chunk_id, format!("{:064X}", 2));
        assert_eq!(st.corrupt_found, 6);
        assert_eq!(m.scrub().corrupt_chunks.get(), 6);
    }

    #[test]
    fn requests_conflict_while_running_or_disabled() {
        let m = RawxMetrics::new().unwrap();
        let off = Scrubber::in_memory(0, m.scrub().clone(), 10);
        assert_eq!(off.status().state, ScrubState::Disabled);
        assert!(matches!(off.request_pass(), Err(Error::ScrubConflict(_))));

        let s = Scrubber::in_memory(1, m.scrub().clone(), 10);
        s.request_pass().unwrap();
        assert!(matches!(s.request_pass(), Err(Error::ScrubConflict(_))));
        s.begin_pass(1_000);
        assert!(!s.take_request());
        assert!(matches!(s.request_pass(), Err(Error::ScrubConflict(_))));
        s.set_throttled(true);
        assert_eq!(s.status().state, ScrubState::Throttled);
        assert!(matches!(s.request_pass(), Err(Error::ScrubConflict(_))));
        s.end_pass(2_000, true);
        let st = s.status();
        assert_eq!(
            (st.state, st.pass, st.last_pass_end_ms),
            (ScrubState::Idle, 1, Some(2_000))
        );
        s.request_pass().unwrap();
        assert!(s.take_request());
    }

    #[test]
    fn complete_pass_drops_stale_entries_and_state_persists() {
        let tmp = tempfile::tempdir().unwrap();
        let m = RawxMetrics::new().unwrap();
        let s = Scrubber::new(tmp.path(), 1, m.scrub().clone());
        s.record_corrupt(entry(1, 50));
        s.begin_pass(100);
        s.progress(2, 8192);
        s.record_corrupt(entry(2, 150));
        s.end_pass(200, true);
        let st = s.status();
        let json = serde_json::to_vec(&st).unwrap();
        assert_eq!(ScrubStatus::from_json(&json).unwrap(), st);
        assert_eq!(st.corrupt.len(), 1, "entry 1 was not found again");
        assert_eq!(st.corrupt[0].chunk_id, format!("{:064X}", 2));
        assert_eq!((st.checked_chunks, st.checked_bytes), (2, 8192));

        let again = Scrubber::new(tmp.path(), 1, RawxMetrics::new().unwrap().scrub().clone());
        let st2 = again.status();
        assert_eq!(st2.pass, 1);
        assert_eq!(st2.last_pass_start_ms, Some(100));
        assert_eq!(st2.last_pass_end_ms, Some(200));
        assert_eq!(st2.corrupt, st.corrupt);

        std::fs::write(tmp.path().join(STATE_FILE), b"{not json").unwrap();
        let fresh = Scrubber::new(tmp.path(), 1, RawxMetrics::new().unwrap().scrub().clone());
        assert_eq!(fresh.status().pass, 0);
    }
}
