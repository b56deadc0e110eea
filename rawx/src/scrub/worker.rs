//! The scrub worker: a thread with its own compio runtime that waits for the next pass
//! (interval elapsed or `POST /scrub`), then walks the volume fan-out folders in order
//! and verifies each chunk with the same code the GET path uses, sleeping between
//! pieces so that the pass never reads faster than the configured rate.

use super::state::{CorruptChunk, Scrubber};
use crate::config::{Driver, RawxConfig};
use crate::error::{Error, Result};
use crate::format::HEADER_BYTES;
use crate::store::Volume;
use compio::driver::{DriverType, ProactorBuilder};
use compio::runtime::RuntimeBuilder;
use futures::future::{select, Either};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Largest piece read and verified at once.
const MAX_PIECE_BYTES: u64 = 1024 * 1024;
/// Most chunk names listed from one fan-out folder per pass (bounds memory).
const MAX_CHUNKS_PER_FOLDER: usize = 1 << 22;
/// Fan-out folders: 3 hex digits.
const MAX_FOLDERS: usize = 4096;
/// Longest sleep between two checks of the schedule (wall-clock drift is re-read).
const MAX_IDLE_SLEEP: Duration = Duration::from_secs(3600);

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassEnd {
    /// Every chunk listed was checked.
    Complete,
    /// The service is stopping.
    Stopped,
}

/// Reads and verifies a volume at a bounded rate, reporting to a [`Scrubber`].
#[derive(Debug)]
pub struct ScrubWorker {
    scrubber: Arc<Scrubber>,
    volume: Volume,
    root: PathBuf,
    rate_bytes_per_s: u64,
    stop: CancellationToken,
}

/// Starts the scrub thread for `config` (none when the rate is 0). The thread ends when
/// `stop` fires, also in the middle of a pass.
pub fn spawn(
    config: &RawxConfig,
    scrubber: Arc<Scrubber>,
    volume: Volume,
    stop: CancellationToken,
) -> Result<Option<JoinHandle<()>>> {
    if config.scrub_rate_bytes_per_s == 0 {
        return Ok(None);
    }
    let worker = ScrubWorker::new(scrubber, volume, config.volume.clone(), stop);
    let driver = config.driver;
    let interval = config.scrub_interval;
    let handle = std::thread::Builder::new()
        .name("rawx-scrub".into())
        .spawn(move || {
            let runtime = match build_runtime(driver) {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "scrubber not started: cannot build its runtime");
                    return;
                }
            };
            let span = tracing::info_span!("rawx_scrub", volume = %worker.root.display());
            runtime.block_on(worker.run(interval).instrument(span));
        })
        .map_err(|e| Error::io("spawn scrub thread", e))?;
    Ok(Some(handle))
}

fn build_runtime(driver: Driver) -> std::io::Result<compio::runtime::Runtime> {
    let mut proactor = ProactorBuilder::new();
    match driver {
        Driver::Auto => {}
        Driver::IoUring => {
            proactor.driver_type(DriverType::IoUring);
        }
        Driver::Polling => {
            proactor.driver_type(DriverType::Poll);
        }
    }
    RuntimeBuilder::new().with_proactor(proactor).build()
}

impl ScrubWorker {
    /// A worker over `volume` (rooted at `root`) reading at the scrubber's rate.
    pub fn new(
        scrubber: Arc<Scrubber>,
        volume: Volume,
        root: PathBuf,
        stop: CancellationToken,
    ) -> Self {
        let rate_bytes_per_s = scrubber.rate_bytes_per_s().max(1);
        ScrubWorker {
            scrubber,
            volume,
            root,
            rate_bytes_per_s,
            stop,
        }
    }

    /// Waits for each pass (due `interval` after the end of the last one, or asked for)
    /// and runs it, until `stop` fires.
    pub async fn run(self, interval: Duration) {
        let started_ms = oxio_common::now_ms();
        loop {
            let last_end = self.scrubber.last_pass_end_ms().unwrap_or(started_ms);
            let due_ms =
                last_end.saturating_add(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX));
            let wait = Duration::from_millis(due_ms.saturating_sub(oxio_common::now_ms()));
            let asked = self.scrubber.take_request();
            if !asked && !wait.is_zero() {
                let wake = pin!(self.scrubber.requested());
                let timer = pin!(compio::time::sleep(wait.min(MAX_IDLE_SLEEP)));
                let stop = pin!(self.stop.cancelled());
                match select(stop, select(wake, timer)).await {
                    Either::Left(_) => break,
                    Either::Right(_) => continue,
                }
            }
            if self.stop.is_cancelled() {
                break;
            }
            if self.run_pass().await == PassEnd::Stopped {
                break;
            }
        }
        tracing::debug!("scrubber stopped");
    }

    /// One pass over every chunk of the volume.
    pub async fn run_pass(&self) -> PassEnd {
        let start = Instant::now();
        self.scrubber.begin_pass(oxio_common::now_ms());
        tracing::info!(
            rate_bytes_per_s = self.rate_bytes_per_s,
            "scrub pass started"
        );
        let mut pass = Pass {
            start,
            bytes: 0,
            buf: Vec::new(),
        };
        let end = self.walk(&mut pass).await;
        let complete = end == PassEnd::Complete;
        self.scrubber.end_pass(oxio_common::now_ms(), complete);
        let st = self.scrubber.status();
        tracing::info!(
            complete,
            chunks = st.checked_chunks,
            bytes = st.checked_bytes,
            corrupt = st.corrupt_found,
            millis = start.elapsed().as_millis() as u64,
            "scrub pass ended"
        );
        end
    }

    async fn walk(&self, pass: &mut Pass) -> PassEnd {
        let folders = match list_names(&self.root, MAX_FOLDERS, is_fanout_dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "scrub cannot list the volume");
                return PassEnd::Complete;
            }
        };
        for folder in folders {
            let dir = self.root.join(&folder);
            if !dir.is_dir() {
                continue;
            }
            let chunks = match list_names(&dir, MAX_CHUNKS_PER_FOLDER, is_chunk_name) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(folder = %folder, error = %e, "scrub cannot list a chunk folder");
                    continue;
                }
            };
            for id in chunks {
                if self.stop.is_cancelled() {
                    return PassEnd::Stopped;
                }
                if self.check_chunk(&id, pass).await == PassEnd::Stopped {
                    return PassEnd::Stopped;
                }
            }
        }
        PassEnd::Complete
    }

    /// Verifies one chunk piece by piece, recording it if corrupt.
    async fn check_chunk(&self, id: &str, pass: &mut Pass) -> PassEnd {
        let reader = match self.volume.open(id).await {
            Ok(r) => r,
            // Deleted since the folder was listed.
            Err(Error::ChunkNotFound(_)) => return PassEnd::Complete,
            Err(e) if e.is_corruption() => {
                let (container, content, position) =
                    salvage_header(&self.volume.chunk_path(id)).unwrap_or_default();
                self.report(id, container, content, position, &e);
                self.scrubber.progress(1, HEADER_BYTES);
                return self.throttle(pass, HEADER_BYTES).await;
            }
            Err(e) => {
                tracing::warn!(chunk = %id, error = %e, "scrub cannot open chunk");
                return PassEnd::Complete;
            }
        };
        let meta = reader.meta().clone();
        let seg = u64::from(meta.segment_bytes.max(1));
        let piece_bytes = MAX_PIECE_BYTES.min(self.rate_bytes_per_s / 4).max(seg);
        let per_piece = (piece_bytes / seg).max(1);
        // The header and the table are read too.
        let mut pending = HEADER_BYTES + 4 * meta.table_count;
        let mut segment = 0;
        // Bounded by the segment count of the chunk.
        while segment < meta.table_count {
            let count = per_piece.min(meta.table_count - segment);
            let buf = std::mem::take(&mut pass.buf);
            let (res, buf) = reader.read_segments(segment, count, buf).await;
            let read = buf.len() as u64;
            pass.buf = buf;
            match res {
                Ok(()) => {}
                Err(e) if e.is_corruption() => {
                    self.report(
                        id,
                        meta.container.clone(),
                        meta.content.clone(),
                        meta.position.clone(),
                        &e,
                    );
                    self.scrubber.progress(1, pending + read);
                    return self.throttle(pass, pending + read).await;
                }
                Err(e) => {
                    tracing::warn!(chunk = %id, error = %e, "scrub cannot read chunk");
                    return PassEnd::Complete;
                }
            }
            segment += count;
            let done_chunk = u64::from(segment >= meta.table_count);
            self.scrubber.progress(done_chunk, pending + read);
            if self.throttle(pass, pending + read).await == PassEnd::Stopped {
                return PassEnd::Stopped;
            }
            pending = 0;
        }
        if meta.table_count == 0 {
            self.scrubber.progress(1, pending);
            return self.throttle(pass, pending).await;
        }
        PassEnd::Complete
    }

    fn report(&self, id: &str, container: String, content: String, position: String, e: &Error) {
        tracing::error!(
            chunk = %id,
            container = %container,
            content = %content,
            position = %position,
            error = %e,
            "scrub found a corrupt chunk"
        );
        self.scrubber.record_corrupt(CorruptChunk {
            chunk_id: id.to_string(),
            container,
            content,
            position,
            error: e.to_string(),
            found_ms: oxio_common::now_ms(),
        });
    }

    /// Counts `bytes` read and sleeps until the pass is back under the rate.
    async fn throttle(&self, pass: &mut Pass, bytes: u64) -> PassEnd {
        pass.bytes += bytes;
        let due =
            pass.start + Duration::from_secs_f64(pass.bytes as f64 / self.rate_bytes_per_s as f64);
        let now = Instant::now();
        if due > now {
            self.scrubber.set_throttled(true);
            let stop = pin!(self.stop.cancelled());
            let timer = pin!(compio::time::sleep(due - now));
            let stopped = matches!(select(stop, timer).await, Either::Left(_));
            self.scrubber.set_throttled(false);
            if stopped {
                return PassEnd::Stopped;
            }
        }
        if self.stop.is_cancelled() {
            PassEnd::Stopped
        } else {
            PassEnd::Complete
        }
    }
}

/// Per-pass bookkeeping of the worker.
struct Pass {
    start: Instant,
    bytes: u64,
    buf: Vec<u8>,
}

fn is_fanout_dir(name: &str) -> bool {
    name.len() == 3 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_chunk_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

/// Sorted names in `dir` that pass `keep`, at most `limit` of them.
fn list_names(dir: &Path, limit: usize, keep: fn(&str) -> bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list folder", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list folder", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !keep(name) {
            continue;
        }
        if out.len() >= limit {
            tracing::warn!(folder = %dir.display(), limit, "scrub lists only the first entries of a large folder");
            break;
        }
        out.push(name.to_string());
    }
    out.sort_unstable();
    Ok(out)
}

/// Container, content and position from a header that failed validation, when its
/// metadata JSON still parses.
fn salvage_header(path: &Path) -> Option<(String, String, String)> {
    use std::io::Read;
    let mut head = Vec::with_capacity(HEADER_BYTES as usize);
    std::fs::File::open(path)
        .ok()?
        .take(HEADER_BYTES)
        .read_to_end(&mut head)
        .ok()?;
    // The magic and checksums may be the damaged part: only the JSON is tried.
    if head.len() < 18 {
        return None;
    }
    let len = u32::from_le_bytes([head[10], head[11], head[12], head[13]]) as usize;
    let json = head.get(18..18usize.checked_add(len)?)?;
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    Some((field("container"), field("content"), field("position")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ChunkAttrs;
    use crate::metrics::RawxMetrics;
    use crate::stats::Stats;

    fn id(n: u8) -> String {
        format!("{n:02X}").repeat(32)
    }

    async fn write(v: &Volume, id: &str, len: usize) {
        let attrs = ChunkAttrs {
            container: "CID".into(),
            content: "0a0b".into(),
            position: "2.5".into(),
            policy: "EC42".into(),
        };
        let mut w = v.create(id, attrs, None).await.unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let (res, _) = w.append(data).await;
        res.unwrap();
        w.commit().await.unwrap();
    }

    fn flip(path: &Path, offset: u64) {
        let mut raw = std::fs::read(path).unwrap();
        raw[offset as usize] ^= 0x40;
        std::fs::write(path, raw).unwrap();
    }

    #[test]
    fn pass_finds_exactly_the_damaged_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let v = Volume::new(root.clone(), 4096, Arc::new(Stats::default()));
            for n in 1..=5u8 {
                write(&v, &id(n), 20_000 + usize::from(n)).await;
            }
            write(&v, &id(6), 0).await;
            // data byte in segment 3 of chunk 2, the header JSON of chunk 4
            flip(&v.chunk_path(&id(2)), HEADER_BYTES + 3 * 4096 + 9);
            flip(&v.chunk_path(&id(4)), 40);
            // a leftover that is not a chunk is ignored
            std::fs::write(root.join("010").join("notes.txt"), b"x").unwrap();

            let m = RawxMetrics::new().unwrap();
            let s = Arc::new(Scrubber::new(&root, 1 << 40, m.scrub().clone()));
            let w = ScrubWorker::new(s.clone(), v.clone(), root.clone(), CancellationToken::new());
            assert_eq!(w.run_pass().await, PassEnd::Complete);
            let st = s.status();
            assert_eq!(st.pass, 1);
            assert_eq!(st.checked_chunks, 6);
            let expect_bytes: u64 = (1..=5u64)
                .map(|n| crate::format::file_len(20_000 + n, 4096))
                .sum::<u64>()
                // chunk 4 is counted by its header only
                - crate::format::file_len(20_004, 4096)
                + HEADER_BYTES
                + HEADER_BYTES;
            assert_eq!(st.checked_bytes, expect_bytes);
            let mut bad: Vec<_> = st.corrupt.iter().map(|c| c.chunk_id.clone()).collect();
            bad.sort();
            assert_eq!(bad, vec![id(2), id(4)]);
            let c2 = st.corrupt.iter().find(|c| c.chunk_id == id(2)).unwrap();
            assert_eq!(
                (c2.container.as_str(), c2.position.as_str()),
                ("CID", "2.5")
            );
            assert!(c2.error.contains("segment 3"), "{}", c2.error);
            let c4 = st.corrupt.iter().find(|c| c.chunk_id == id(4)).unwrap();
            assert!(c4.error.contains("header"), "{}", c4.error);
            assert_eq!(m.scrub().corrupt_chunks.get(), 2);
            // nothing was modified or deleted
            assert!(v.chunk_path(&id(2)).exists() && v.chunk_path(&id(4)).exists());

            // a second pass reports each chunk once still
            assert_eq!(w.run_pass().await, PassEnd::Complete);
            let st = s.status();
            assert_eq!((st.pass, st.corrupt.len()), (2, 2));
        });
    }

    #[test]
    fn pass_respects_the_rate_and_stops_on_cancel() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let v = Volume::new(root.clone(), 4096, Arc::new(Stats::default()));
            write(&v, &id(1), 400_000).await;
            let m = RawxMetrics::new().unwrap();
            // 400 KB at 1 MB/s: at least 0.4 s
            let s = Arc::new(Scrubber::new(&root, 1_000_000, m.scrub().clone()));
            let w = ScrubWorker::new(s.clone(), v.clone(), root.clone(), CancellationToken::new());
            let t = Instant::now();
            assert_eq!(w.run_pass().await, PassEnd::Complete);
            assert!(
                t.elapsed() >= Duration::from_millis(400),
                "{:?}",
                t.elapsed()
            );

            let stop = CancellationToken::new();
            stop.cancel();
            let w = ScrubWorker::new(s.clone(), v, root, stop);
            assert_eq!(w.run_pass().await, PassEnd::Stopped);
            assert_eq!(s.status().pass, 1, "an interrupted pass does not count");
        });
    }
}
