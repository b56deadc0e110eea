//! Start-up pass over a volume: removes `.pending` leftovers of interrupted writes and
//! counts the complete chunks and their bytes.

use crate::error::{Error, Result};
use std::path::Path;

/// What the start-up scan found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Complete chunk files.
    pub chunks: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// `.pending` files removed.
    pub pending_removed: u64,
}

fn is_fanout_dir(name: &str) -> bool {
    name.len() == 3 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_chunk_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

/// Creates the volume folder if needed, removes stale `.pending` files and counts chunks.
/// Runs before any worker serves, so no write is in progress.
pub fn scan_volume(volume: &Path) -> Result<ScanReport> {
    std::fs::create_dir_all(volume).map_err(|e| Error::io("create volume folder", e))?;
    let mut report = ScanReport::default();
    let top = std::fs::read_dir(volume).map_err(|e| Error::io("read volume folder", e))?;
    for entry in top {
        let entry = entry.map_err(|e| Error::io("read volume folder", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_fanout_dir(name) || !entry.path().is_dir() {
            continue;
        }
        let dir = std::fs::read_dir(entry.path()).map_err(|e| Error::io("read chunk folder", e))?;
        for file in dir {
            let file = file.map_err(|e| Error::io("read chunk folder", e))?;
            let fname = file.file_name();
            let Some(fname) = fname.to_str() else {
                continue;
            };
            if fname.ends_with(".pending") {
                match std::fs::remove_file(file.path()) {
                    Ok(()) => report.pending_removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove stale pending chunk", e)),
                }
                continue;
            }
            if !is_chunk_name(fname) {
                continue;
            }
            let meta = file
                .metadata()
                .map_err(|e| Error::io("stat chunk file", e))?;
            if meta.is_file() {
                report.chunks += 1;
                report.bytes += meta.len();
            }
        }
    }
    if report.pending_removed > 0 {
        tracing::info!(volume = %volume.display(), removed = report.pending_removed, "removed stale pending chunks");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_counts_and_cleans() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        std::fs::create_dir_all(vol.join("ABC")).unwrap();
        let id = format!("ABC{}", "0".repeat(61));
        std::fs::write(vol.join("ABC").join(&id), vec![0u8; 5000]).unwrap();
        std::fs::write(
            vol.join("ABC")
                .join(format!("{}.pending", "ABC1".repeat(16))),
            b"x",
        )
        .unwrap();
        std::fs::write(vol.join("ABC").join("notes.txt"), b"x").unwrap();
        let r = scan_volume(&vol).unwrap();
        assert_eq!(
            r,
            ScanReport {
                chunks: 1,
                bytes: 5000,
                pending_removed: 1
            }
        );
        assert_eq!(std::fs::read_dir(vol.join("ABC")).unwrap().count(), 2);
    }
}
