//! Counters shared by the worker threads: what `/info` and the heartbeat report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Live figures of one volume and its traffic.
#[derive(Debug)]
pub struct Stats {
    chunks: AtomicU64,
    bytes: AtomicU64,
    reserved: AtomicU64,
    requests: AtomicU64,
    checksum_errors: AtomicU64,
    rate: Mutex<(Instant, u64)>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            chunks: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            checksum_errors: AtomicU64::new(0),
            rate: Mutex::new((Instant::now(), 0)),
        }
    }
}

impl Stats {
    /// Stats starting from a scan result.
    pub fn new(chunks: u64, bytes: u64) -> Self {
        let s = Stats::default();
        s.chunks.store(chunks, Ordering::Relaxed);
        s.bytes.store(bytes, Ordering::Relaxed);
        s
    }

    /// Number of complete chunks on the volume.
    pub fn chunks(&self) -> u64 {
        self.chunks.load(Ordering::Relaxed)
    }

    /// Bytes used by complete chunk files (headers and tables included).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Data bytes of chunks being written (not yet in [`Stats::bytes`]).
    pub fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::Relaxed)
    }

    pub(crate) fn reserve(&self, bytes: u64) {
        self.reserved.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn release(&self, bytes: u64) {
        let _ = self
            .reserved
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                Some(r.saturating_sub(bytes))
            });
    }

    /// Requests served since start.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Checksum or header failures detected since start.
    pub fn checksum_errors(&self) -> u64 {
        self.checksum_errors.load(Ordering::Relaxed)
    }

    pub(crate) fn chunk_added(&self, file_bytes: u64) {
        self.chunks.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(file_bytes, Ordering::Relaxed);
    }

    pub(crate) fn chunk_removed(&self, file_bytes: u64) {
        let _ = self
            .chunks
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(1))
            });
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(file_bytes))
            });
    }

    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn checksum_error(&self) {
        self.checksum_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests per second since the previous call (used once per heartbeat).
    pub fn take_rate(&self) -> f64 {
        let now = Instant::now();
        let total = self.requests();
        let mut guard = match self.rate.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (since, before) = *guard;
        *guard = (now, total);
        let secs = now.duration_since(since).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        total.saturating_sub(before) as f64 / secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_move() {
        let s = Stats::new(2, 100);
        s.chunk_added(50);
        s.chunk_removed(30);
        s.chunk_removed(1000);
        assert_eq!(s.chunks(), 1);
        assert_eq!(s.bytes(), 0);
        s.request();
        s.request();
        assert_eq!(s.requests(), 2);
        assert!(s.take_rate() > 0.0);
    }
}
