//! Score locks and their file: `data_dir/locks.json`, rewritten whole on each change
//! (temporary file, fsync, rename, fsync of the folder) and read back at start. The
//! file also lists the services seen registering while `lock_new_services` is on, so
//! that a restart does not lock them again. Format 2 added that list; format 1 files
//! (locks only) are still read.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the lock file inside the data folder.
pub const LOCK_FILE: &str = "locks.json";

/// Most locks held at once (locks may name services not registered yet).
pub const MAX_LOCKS: usize = 100_000;

/// Largest lock file read back.
pub const MAX_LOCK_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Most services remembered as seen (see [`LockState::known`]).
pub const MAX_KNOWN: usize = 100_000;

/// Current format version of the lock file.
const FORMAT_VERSION: u32 = 2;

/// Oldest format version still read (1: locks only, no known services).
const OLDEST_FORMAT_VERSION: u32 = 1;

/// A service, by type and id.
pub type ServiceKey = (String, String);

/// Locked scores, by service.
pub type Locks = BTreeMap<ServiceKey, u32>;

/// Services seen registering, by type and id.
pub type Known = BTreeSet<ServiceKey>;

/// Everything the lock file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockState {
    /// Locked scores.
    pub locks: Locks,
    /// Services already seen registering while `lock_new_services` was on; they are
    /// not locked again when they come back.
    pub known: Known,
}

#[derive(Serialize, Deserialize)]
struct LockFile {
    version: u32,
    locks: Vec<LockEntry>,
    /// Absent in format 1.
    #[serde(default)]
    known: Vec<KnownEntry>,
}

#[derive(Serialize, Deserialize)]
struct KnownEntry {
    service_type: String,
    id: String,
}

#[derive(Serialize, Deserialize)]
struct LockEntry {
    service_type: String,
    id: String,
    score: u32,
}

/// Where locks persist; `None` keeps them in memory only.
#[derive(Debug, Clone)]
pub struct LockStore {
    path: Option<PathBuf>,
}

impl LockStore {
    /// A store in `data_dir` (created when missing), or in memory for `None`.
    pub fn new(data_dir: Option<&Path>) -> Result<LockStore> {
        let Some(dir) = data_dir else {
            return Ok(LockStore { path: None });
        };
        std::fs::create_dir_all(dir).map_err(|source| Error::LockIo {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(LockStore {
            path: Some(dir.join(LOCK_FILE)),
        })
    }

    /// The lock file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads the locks and known services back; a missing file means none.
    pub fn load(&self) -> Result<LockState> {
        let Some(path) = &self.path else {
            return Ok(LockState::default());
        };
        let io_err = |source| Error::LockIo {
            path: path.clone(),
            source,
        };
        let corrupt = |detail: String| Error::LockCorrupt {
            path: path.clone(),
            detail,
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockState::default()),
            Err(e) => return Err(io_err(e)),
        };
        let len = file.metadata().map_err(io_err)?.len();
        if len > MAX_LOCK_FILE_BYTES {
            return Err(corrupt(format!(
                "{len} bytes, more than the {MAX_LOCK_FILE_BYTES} accepted"
            )));
        }
        let decoded: LockFile = serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| corrupt(e.to_string()))?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&decoded.version) {
            return Err(corrupt(format!(
                "format version {}, this build reads {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}",
                decoded.version
            )));
        }
        if decoded.locks.len() > MAX_LOCKS {
            return Err(corrupt(format!(
                "{} locks, at most {MAX_LOCKS}",
                decoded.locks.len()
            )));
        }
        if decoded.known.len() > MAX_KNOWN {
            return Err(corrupt(format!(
                "{} known services, at most {MAX_KNOWN}",
                decoded.known.len()
            )));
        }
        let mut known = Known::new();
        for entry in decoded.known {
            if entry.service_type.is_empty() || entry.id.is_empty() {
                return Err(corrupt(format!(
                    "bad known service {:?}/{:?}",
                    entry.service_type, entry.id
                )));
            }
            known.insert((entry.service_type, entry.id));
        }
        let mut locks = Locks::new();
        for entry in decoded.locks {
            if entry.score > crate::score::MAX_SCORE || entry.id.is_empty() {
                return Err(corrupt(format!(
                    "bad lock {}/{} at {}",
                    entry.service_type, entry.id, entry.score
                )));
            }
            locks.insert((entry.service_type, entry.id), entry.score);
        }
        Ok(LockState { locks, known })
    }

    /// Writes `state` durably (no-op in memory). Blocking: run it off the runtime.
    pub fn save(&self, state: &LockState) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = LockFile {
            version: FORMAT_VERSION,
            known: state
                .known
                .iter()
                .map(|(service_type, id)| KnownEntry {
                    service_type: service_type.clone(),
                    id: id.clone(),
                })
                .collect(),
            locks: state
                .locks
                .iter()
                .map(|((service_type, id), &score)| LockEntry {
                    service_type: service_type.clone(),
                    id: id.clone(),
                    score,
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| Error::LockCorrupt {
            path: path.clone(),
            detail: format!("cannot encode: {e}"),
        })?;
        let tmp = path.with_extension("json.tmp");
        let tmp_err = |source| Error::LockIo {
            path: tmp.clone(),
            source,
        };
        {
            let mut f = std::fs::File::create(&tmp).map_err(tmp_err)?;
            f.write_all(&bytes).map_err(tmp_err)?;
            f.sync_all().map_err(tmp_err)?;
        }
        std::fs::rename(&tmp, path).map_err(|source| Error::LockIo {
            path: path.clone(),
            source,
        })?;
        if let Some(dir) = path.parent() {
            // Make the rename itself durable.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| Error::LockIo {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &str, id: &str) -> ServiceKey {
        (t.to_string(), id.to_string())
    }

    #[test]
    fn round_trip_and_missing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sub");
        let store = LockStore::new(Some(&dir)).unwrap();
        assert_eq!(store.load().unwrap(), LockState::default());
        let mut state = LockState::default();
        state.locks.insert(key("rawx", "rawx-1"), 0);
        state.locks.insert(key("meta2", "m-7"), 55);
        state.known.insert(key("rawx", "rawx-1"));
        store.save(&state).unwrap();
        assert_eq!(store.load().unwrap(), state);
        assert!(!dir.join("locks.json.tmp").exists());
        state = LockState::default();
        store.save(&state).unwrap();
        assert_eq!(store.load().unwrap(), LockState::default());
    }

    #[test]
    fn format_1_files_are_still_read() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(
            dir.join(LOCK_FILE),
            br#"{"version":1,"locks":[{"service_type":"rawx","id":"a","score":3}]}"#,
        )
        .unwrap();
        let state = LockStore::new(Some(dir)).unwrap().load().unwrap();
        assert_eq!(state.locks, Locks::from([(key("rawx", "a"), 3)]));
        assert!(state.known.is_empty());
    }

    #[test]
    fn corrupt_file_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join(LOCK_FILE), b"{not json").unwrap();
        let err = LockStore::new(Some(dir)).unwrap().load().unwrap_err();
        assert!(matches!(err, Error::LockCorrupt { .. }), "{err}");
        std::fs::write(
            dir.join(LOCK_FILE),
            br#"{"version":1,"locks":[{"service_type":"rawx","id":"a","score":101}]}"#,
        )
        .unwrap();
        assert!(LockStore::new(Some(dir)).unwrap().load().is_err());
        std::fs::write(
            dir.join(LOCK_FILE),
            br#"{"version":2,"locks":[],"known":[{"service_type":"","id":"a"}]}"#,
        )
        .unwrap();
        assert!(LockStore::new(Some(dir)).unwrap().load().is_err());
        std::fs::write(dir.join(LOCK_FILE), br#"{"version":9,"locks":[]}"#).unwrap();
        let err = LockStore::new(Some(dir)).unwrap().load().unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
    }

    #[test]
    fn memory_store_keeps_nothing() {
        let store = LockStore::new(None).unwrap();
        let mut state = LockState::default();
        state.locks.insert(key("rawx", "a"), 3);
        store.save(&state).unwrap();
        assert_eq!(store.load().unwrap(), LockState::default());
        assert!(store.path().is_none());
    }
}
