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

/// Creates the volume folder if needed (and makes its entry durable), removes stale
/// `.pending` files and counts chunks.
/// Runs before any worker serves, so no write is in progress.
pub fn scan_volume(volume: &Path) -> Result<ScanReport> {
    if !volume.is_dir() {
        std::fs::create_dir_all(volume).map_err(|e| Error::io("create volume folder", e))?;
        // The new folder's entry is made durable before chunks go into it.
        if let Some(parent) = volume.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io("fsync the volume folder's parent", e))?;
        }
    }
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

/// Most entries one listing page returns.
pub const MAX_LIST: usize = 1000;

/// One complete chunk file, as `GET /chunks` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListedChunk {
    /// Upper-case 64-hex chunk id.
    pub id: String,
    /// File size in bytes (header and checksum table included).
    pub bytes: u64,
    /// Last modification of the file, milliseconds since the epoch.
    pub mtime_ms: u64,
}

/// Up to `limit` (at most [`MAX_LIST`]) complete chunks with ids strictly after
/// `after` ("" = from the start), in id order. `.pending` files are never listed.
/// Work per call is bounded: the volume's top folder, then only fan-out folders at or
/// after the one of `after`, until the page is full.
pub fn list_chunks(volume: &Path, after: &str, limit: usize) -> Result<Vec<ListedChunk>> {
    let limit = limit.clamp(1, MAX_LIST);
    if after.len() > 64 || !after.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadRequest(
            "`after` must be a chunk id (up to 64 hex digits)".into(),
        ));
    }
    let after = after.to_ascii_uppercase();
    let mut fanouts: Vec<String> = std::fs::read_dir(volume)
        .map_err(|e| Error::io("read volume folder", e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| is_fanout_dir(n))
        .filter(|n| after.is_empty() || n.as_str() >= &after[..after.len().min(3)])
        .collect();
    fanouts.sort();
    let mut out = Vec::new();
    for fanout in fanouts {
        let dir = match std::fs::read_dir(volume.join(&fanout)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read chunk folder", e)),
        };
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| is_chunk_name(n) && n.as_str() > after.as_str())
            .collect();
        names.sort();
        for name in names {
            let meta = match std::fs::metadata(volume.join(&fanout).join(&name)) {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                // Deleted since the folder was read.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat chunk file", e)),
            };
            let mtime_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            out.push(ListedChunk {
                id: name,
                bytes: meta.len(),
                mtime_ms,
            });
            if out.len() == limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
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

    #[test]
    fn lists_complete_chunks_in_pages() {
        let tmp = tempfile::tempdir().unwrap();
        let v = tmp.path();
        let ids: Vec<String> = ["0AB", "0AB", "FFF", "123"]
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{p}{}", format!("{i:X}").repeat(61)))
            .collect();
        for id in &ids {
            std::fs::create_dir_all(v.join(&id[..3])).unwrap();
            std::fs::write(v.join(&id[..3]).join(id), b"x").unwrap();
        }
        std::fs::write(
            v.join("0AB")
                .join(format!("{}.pending", "0AB".repeat(21) + "0")),
            b"p",
        )
        .unwrap();
        let mut sorted = ids.clone();
        sorted.sort();
        let all = list_chunks(v, "", 1000).unwrap();
        assert_eq!(all.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), sorted);
        assert!(all.iter().all(|c| c.bytes == 1 && c.mtime_ms > 0));
        // Pages of two, resumed after the last id of the previous page.
        let p1 = list_chunks(v, "", 2).unwrap();
        let p2 = list_chunks(v, &p1[1].id, 2).unwrap();
        let p3 = list_chunks(v, &p2[1].id.to_lowercase(), 2).unwrap();
        let paged: Vec<String> = p1
            .iter()
            .chain(&p2)
            .chain(&p3)
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(paged, sorted);
        assert!(list_chunks(v, &sorted[3], 2).unwrap().is_empty());
        assert!(matches!(list_chunks(v, "zz", 2), Err(Error::BadRequest(_))));
        assert!(matches!(list_chunks(v, "é", 2), Err(Error::BadRequest(_))));
    }
}
