//! Chunk files that local reads ([`crate::local`]) keep open for a few seconds after a
//! rawx handed them over, so that the next reads of the same chunk skip the exchange
//! on the rawx's local-read socket: a connection, an open, a header read and a
//! `sendmsg` on the rawx's side, as many receives on this side, for every fragment
//! of every GET.
//!
//! Chunk files are immutable once committed: a file kept open holds the bytes the
//! rawx would hand out again, and every read of it still verifies each segment's
//! crc32c. A read that fails drops its file from here ([`KeptFiles::forget`]) before
//! it falls back to HTTP. An open file keeps a deleted chunk's blocks allocated, so a
//! file is kept [`KEEP_FOR`] at most (a sweeper closes expired ones even when no
//! read comes), and at most [`MAX_KEPT`] files are kept at once, fewer when the
//! process may open few files ([`capacity`]).

use oxio_common::local_read::Layout;
use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Longest a file stays open after the rawx handed it over.
pub const KEEP_FOR: Duration = Duration::from_secs(5);
/// Most files kept open at once.
pub const MAX_KEPT: usize = 1024;
/// Share of the process's open-file limit that kept files may take (one in eight).
const LIMIT_SHARE: u64 = 8;
/// How often the sweeper closes expired files.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// One kept file.
#[derive(Debug)]
struct Kept {
    /// The rawx that handed it over.
    addr: Box<str>,
    file: Arc<File>,
    layout: Layout,
    /// When the rawx handed it over.
    since: Instant,
}

/// Kept files by chunk id (a lookup builds no key). Chunk ids are drawn at random for
/// every chunk, every copy and every rebuilt or moved chunk, so one id names one file;
/// the rawx is checked as well, so that a file only ever stands for the rawx that
/// handed it over.
type Files = Mutex<HashMap<String, Kept>>;

/// How many files to keep: [`MAX_KEPT`], or an eighth of the process's soft limit on
/// open files when that is less (128 under the common soft limit of 1,024, which
/// `oxiod` raises to the hard limit when it starts).
pub fn capacity() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match limit {
        Some(n) => usize::try_from(n / LIMIT_SHARE).map_or(MAX_KEPT, |n| n.min(MAX_KEPT)),
        None => MAX_KEPT,
    }
}

/// The files kept by one local reader (cloned with it: the set is shared).
#[derive(Clone, Debug)]
pub struct KeptFiles {
    files: Arc<Files>,
    /// Most files kept at once.
    capacity: usize,
    /// Set once the sweeper runs.
    sweeper: Arc<OnceLock<()>>,
}

impl Default for KeptFiles {
    fn default() -> Self {
        Self::with_capacity(capacity())
    }
}

impl KeptFiles {
    /// Keeps at most `capacity` files (0: none).
    pub fn with_capacity(capacity: usize) -> Self {
        KeptFiles {
            files: Arc::default(),
            capacity,
            sweeper: Arc::default(),
        }
    }

    /// The file of chunk `chunk_id` of the rawx at `addr` and its layout, if kept and
    /// not expired.
    pub fn get(&self, addr: &str, chunk_id: &str) -> Option<(Arc<File>, Layout)> {
        let mut files = lock(&self.files);
        let kept = files.get(chunk_id).filter(|k| *k.addr == *addr)?;
        if kept.since.elapsed() < KEEP_FOR {
            return Some((kept.file.clone(), kept.layout));
        }
        files.remove(chunk_id);
        None
    }

    /// Keeps `file` open as chunk `chunk_id` of the rawx at `addr` (in place of a file
    /// of that chunk from another rawx). When the set is full, expired files are
    /// closed first, then the oldest.
    pub fn keep(&self, addr: &str, chunk_id: &str, file: Arc<File>, layout: Layout) {
        if self.capacity == 0 {
            return;
        }
        self.start_sweeper();
        let mut files = lock(&self.files);
        if files.len() >= self.capacity {
            files.retain(|_, k| k.since.elapsed() < KEEP_FOR);
        }
        if files.len() >= self.capacity {
            let oldest = files
                .iter()
                .min_by_key(|(_, k)| k.since)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                files.remove(&oldest);
            }
        }
        let since = Instant::now();
        files.insert(
            chunk_id.to_string(),
            Kept {
                addr: addr.into(),
                file,
                layout,
                since,
            },
        );
    }

    /// Stops keeping the file of chunk `chunk_id` of the rawx at `addr`.
    pub fn forget(&self, addr: &str, chunk_id: &str) {
        let mut files = lock(&self.files);
        if files.get(chunk_id).is_some_and(|k| *k.addr == *addr) {
            files.remove(chunk_id);
        }
    }

    /// Files kept now (expired ones included until they are swept).
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.files).len()
    }

    /// Starts, once, a task that closes expired files every [`SWEEP_EVERY`], until
    /// the set is dropped. Without a tokio runtime nothing is started, and expired
    /// files are closed by the next [`KeptFiles::get`] or [`KeptFiles::keep`].
    fn start_sweeper(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.sweeper.get_or_init(|| {
            let files: Weak<Files> = Arc::downgrade(&self.files);
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // Bounded: ends once the set is dropped.
                loop {
                    tick.tick().await;
                    let Some(files) = files.upgrade() else { return };
                    lock(&files).retain(|_, k| k.since.elapsed() < KEEP_FOR);
                }
            });
        });
    }
}

/// The map, also after a panic elsewhere while it was held (each change is one
/// whole insert or remove).
fn lock(files: &Files) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
    files.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            size: 10,
            segment_bytes: 4,
            data_offset: 0,
            table_offset: 10,
        }
    }

    fn past(d: Duration) -> Instant {
        Instant::now()
            .checked_sub(d)
            .expect("the clock runs past its start")
    }

    fn file() -> Arc<File> {
        Arc::new(tempfile::tempfile().expect("temporary file"))
    }

    #[test]
    fn a_kept_file_is_found_by_rawx_and_chunk_and_forgotten_on_demand() {
        let kept = KeptFiles::default();
        let f = file();
        kept.keep("127.0.0.1:1", "AB", f.clone(), layout());
        let (got, l) = kept.get("127.0.0.1:1", "AB").expect("kept");
        assert!(Arc::ptr_eq(&got, &f));
        assert_eq!(l.size, 10);
        drop(got);
        assert!(kept.get("127.0.0.1:2", "AB").is_none(), "another rawx");
        assert!(kept.get("127.0.0.1:1", "CD").is_none(), "another chunk");
        kept.forget("127.0.0.1:2", "AB");
        assert!(
            kept.get("127.0.0.1:1", "AB").is_some(),
            "forgotten at another rawx"
        );
        kept.forget("127.0.0.1:1", "AB");
        assert!(kept.get("127.0.0.1:1", "AB").is_none());
        assert_eq!(Arc::strong_count(&f), 1, "the forgotten file is closed");
    }

    #[test]
    fn a_chunk_kept_from_another_rawx_replaces_the_first() {
        let kept = KeptFiles::default();
        let (f, g) = (file(), file());
        kept.keep("a", "AB", f.clone(), layout());
        kept.keep("b", "AB", g.clone(), layout());
        assert!(kept.get("a", "AB").is_none());
        let (got, _) = kept.get("b", "AB").expect("kept");
        assert!(Arc::ptr_eq(&got, &g));
        assert_eq!(Arc::strong_count(&f), 1, "the first file is closed");
    }

    #[test]
    fn an_expired_file_is_closed_not_handed_out() {
        let kept = KeptFiles::default();
        let f = file();
        kept.keep("a", "AB", f.clone(), layout());
        lock(&kept.files).get_mut("AB").expect("kept").since = past(KEEP_FOR);
        assert!(kept.get("a", "AB").is_none());
        assert_eq!(Arc::strong_count(&f), 1);
    }

    #[test]
    fn a_full_set_closes_its_oldest_file_first() {
        let kept = KeptFiles::with_capacity(8);
        let first = file();
        kept.keep("a", "0", first.clone(), layout());
        lock(&kept.files).get_mut("0").expect("kept").since = past(Duration::from_secs(1));
        for i in 1..=8 {
            kept.keep("a", &i.to_string(), file(), layout());
        }
        assert_eq!(kept.len(), 8);
        assert!(kept.get("a", "0").is_none(), "the oldest went");
        assert_eq!(Arc::strong_count(&first), 1);
        assert!(kept.get("a", "8").is_some());
        assert!(kept.get("a", "1").is_some());
    }

    #[test]
    fn no_capacity_keeps_nothing_and_the_default_fits_the_open_file_limit() {
        let none = KeptFiles::with_capacity(0);
        none.keep("a", "AB", file(), layout());
        assert_eq!(none.len(), 0);
        let cap = capacity();
        assert!(cap <= MAX_KEPT);
        if let Some(limit) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
            assert!(
                cap as u64 <= limit / LIMIT_SHARE,
                "{cap} files against a limit of {limit}"
            );
        }
    }

    #[tokio::test]
    async fn the_sweeper_closes_expired_files_without_reads() {
        let kept = KeptFiles::default();
        let f = file();
        kept.keep("a", "AB", f.clone(), layout());
        lock(&kept.files).get_mut("AB").expect("kept").since = past(KEEP_FOR);
        // Bounded: five sweeps' time at most.
        let deadline = Instant::now() + 5 * SWEEP_EVERY;
        while Arc::strong_count(&f) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(Arc::strong_count(&f), 1, "swept");
        assert_eq!(kept.len(), 0);
    }
}
