//! Configuration of one rawx service (one volume) and the choice of I/O driver.

use crate::error::{Error, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default checksum segment size: 64 KiB.
pub const DEFAULT_SEGMENT_BYTES: u32 = 64 * 1024;
/// Smallest allowed checksum segment (keeps the checksum table bounded).
pub const MIN_SEGMENT_BYTES: u32 = 4 * 1024;
/// Largest allowed checksum segment (a segment is read whole to verify it).
pub const MAX_SEGMENT_BYTES: u32 = 16 * 1024 * 1024;
/// Default largest chunk: 4 GiB.
pub const DEFAULT_MAX_CHUNK_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Default time between two heartbeats.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Default scrub rate: 20 MiB/s.
pub const DEFAULT_SCRUB_RATE_BYTES_PER_S: u64 = 20 * 1024 * 1024;
/// Default time between the end of one scrub pass and the start of the next: 24 h.
pub const DEFAULT_SCRUB_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Most worker threads one service runs.
pub const MAX_WORKERS: usize = 256;

/// Which compio driver the worker runtimes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Driver {
    /// io_uring when the kernel allows it, polling otherwise.
    #[default]
    Auto,
    /// io_uring only: starting fails when the kernel refuses it.
    IoUring,
    /// epoll-based polling driver.
    Polling,
}

/// Whether chunk files are written with `O_DIRECT` unless told otherwise.
pub const DEFAULT_DIRECT_WRITES: bool = true;

/// Settings of one rawx service.
#[derive(Debug, Clone)]
pub struct RawxConfig {
    /// Stable service id, e.g. "rawx-0".
    pub id: String,
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// `host:port` announced to the conscience; defaults to the bound address.
    pub advertise: Option<String>,
    /// Folder holding the chunk files (created if missing).
    pub volume: PathBuf,
    /// Dotted location, e.g. "local.rack1.host1.vol0".
    pub location: String,
    /// Number of worker threads (each with its own compio runtime); 0 = one per core.
    pub workers: usize,
    /// I/O driver of the worker runtimes.
    pub driver: Driver,
    /// Size of a checksum segment in bytes.
    pub segment_bytes: u32,
    /// Largest chunk accepted by a PUT; larger bodies get 413.
    pub max_chunk_bytes: u64,
    /// Conscience addresses the heartbeat goes to (empty: no heartbeat).
    pub conscience: Vec<String>,
    /// Time between two heartbeats.
    pub heartbeat_interval: Duration,
    /// Most bytes of chunk files this volume holds; `None`: up to the file system's
    /// free space. With a capacity, the `space` figure sent to the conscience is the
    /// free share of the capacity (capped by the file system's free bytes), and a PUT
    /// that would not fit is answered 507.
    pub capacity_bytes: Option<u64>,
    /// Read and write chunk files with `O_DIRECT`, bypassing the page cache (the
    /// volume's file system must support it: start fails when it does not).
    pub direct_io: bool,
    /// Write chunk files with `O_DIRECT` and read them through the page cache (on by
    /// default: a PUT then costs no page-cache copy nor writeback, and a fresh chunk
    /// is read from the device once). On a file system that refuses `O_DIRECT` the
    /// rawx logs a warning and writes through the page cache.
    pub direct_writes: bool,
    /// Bytes per second the background scrubber reads at most; 0 disables it.
    pub scrub_rate_bytes_per_s: u64,
    /// Folder of this host's local-read sockets ([`crate::local`]): the rawx binds
    /// `rawx-<advertised addr>.sock` there, and readers on the host that look in the
    /// same folder open its chunks without the TCP hop. `None`: no socket. Ignored
    /// with `direct_io`.
    pub local_read_dir: Option<PathBuf>,
    /// Time from the end of one scrub pass to the start of the next.
    pub scrub_interval: Duration,
}

impl RawxConfig {
    /// A config with defaults for everything but the id, the listen address and the volume.
    pub fn new(id: impl Into<String>, listen: SocketAddr, volume: impl Into<PathBuf>) -> Self {
        RawxConfig {
            id: id.into(),
            listen,
            advertise: None,
            volume: volume.into(),
            location: "local.local.local.vol0".to_string(),
            workers: 0,
            driver: Driver::Auto,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_chunk_bytes: DEFAULT_MAX_CHUNK_BYTES,
            conscience: Vec::new(),
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            capacity_bytes: None,
            direct_io: false,
            direct_writes: DEFAULT_DIRECT_WRITES,
            scrub_rate_bytes_per_s: DEFAULT_SCRUB_RATE_BYTES_PER_S,
            scrub_interval: DEFAULT_SCRUB_INTERVAL,
            local_read_dir: None,
        }
    }

    /// Checks the fields against each other and says what to fix.
    pub fn validate(&self) -> Result<()> {
        if self.id.is_empty() || self.id.len() > 128 {
            return Err(Error::Config("id must be 1..=128 characters".into()));
        }
        if self.volume.as_os_str().is_empty() {
            return Err(Error::Config("volume must name a folder".into()));
        }
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(Error::Config(format!(
                "segment_bytes {} out of range {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES}",
                self.segment_bytes
            )));
        }
        if self.max_chunk_bytes == 0 {
            return Err(Error::Config("max_chunk_bytes must be > 0".into()));
        }
        if self.capacity_bytes == Some(0) {
            return Err(Error::Config(
                "capacity must be above 0 (leave it unset to use the whole file system)".into(),
            ));
        }
        if self.workers > MAX_WORKERS {
            return Err(Error::Config(format!(
                "workers {} above the maximum {MAX_WORKERS}",
                self.workers
            )));
        }
        if !self.conscience.is_empty() && self.heartbeat_interval.is_zero() {
            return Err(Error::Config(
                "heartbeat_interval must be > 0 when conscience is set".into(),
            ));
        }
        if self.scrub_rate_bytes_per_s > 0 && self.scrub_interval.is_zero() {
            return Err(Error::Config(
                "scrub_interval must be > 0 when the scrubber is enabled \
                 (set scrub_rate_bytes_per_s = 0 to disable it)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Worker count after resolving 0 to the number of cores.
    pub fn effective_workers(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(MAX_WORKERS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let c = RawxConfig::new("rawx-0", "127.0.0.1:0".parse().unwrap(), "/tmp/x");
        c.validate().unwrap();
        assert!(c.effective_workers() >= 1);
        assert_eq!(c.segment_bytes, 64 * 1024);
    }

    #[test]
    fn bad_segment_rejected() {
        let mut c = RawxConfig::new("rawx-0", "127.0.0.1:0".parse().unwrap(), "/tmp/x");
        c.segment_bytes = 100;
        assert!(matches!(c.validate(), Err(Error::Config(_))));
    }

    #[test]
    fn scrub_interval_checked_only_when_enabled() {
        let mut c = RawxConfig::new("rawx-0", "127.0.0.1:0".parse().unwrap(), "/tmp/x");
        assert_eq!(c.scrub_rate_bytes_per_s, 20 * 1024 * 1024);
        c.scrub_interval = Duration::ZERO;
        assert!(matches!(c.validate(), Err(Error::Config(_))));
        c.scrub_rate_bytes_per_s = 0;
        c.validate().unwrap();
    }
}
