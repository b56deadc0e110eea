//! Chunk files on one volume, with compio file I/O and owned buffers.
//!
//! Layout: `<volume>/<first 3 hex of id>/<ID>`; a chunk being written is
//! `<ID>.pending` until it is complete and durable (see [`crate::format`]).
//! Publication is `link(pending, final)` (fails if the id exists, so a chunk is never
//! overwritten) then `unlink(pending)` and an fsync of the folder.

use crate::direct::{self, AlignedBuf};
use crate::error::{Error, Result};
use crate::format::{self, ChunkAttrs, ChunkMeta, SegmentHasher, HEADER_BYTES};
use crate::stats::Stats;
use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::fs::{File, OpenOptions};
use compio::io::{AsyncReadAtExt, AsyncWriteAtExt};
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;

/// One volume folder holding chunk files.
#[derive(Debug, Clone)]
pub struct Volume {
    root: PathBuf,
    segment_bytes: u32,
    stats: Arc<Stats>,
    capacity: Option<u64>,
    /// Chunk files are written with `O_DIRECT`.
    direct_writes: bool,
    /// Chunk files are read with `O_DIRECT`.
    direct_reads: bool,
}

/// Data staged per chunk writer before an aligned direct write: at most 1 MiB (less
/// for a chunk announced smaller).
const DIRECT_STAGE_BYTES: usize = 1 << 20;

impl Volume {
    /// A volume rooted at `root`, writing segments of `segment_bytes`.
    pub fn new(root: PathBuf, segment_bytes: u32, stats: Arc<Stats>) -> Self {
        Volume {
            root,
            segment_bytes,
            stats,
            capacity: None,
            direct_writes: false,
            direct_reads: false,
        }
    }

    /// Reads and writes chunk files with `O_DIRECT` (bypassing the page cache).
    pub fn with_direct_io(mut self, direct_io: bool) -> Self {
        self.direct_writes = direct_io;
        self.direct_reads = direct_io;
        self
    }

    /// Writes chunk files with `O_DIRECT` and reads them through the page cache
    /// (unless [`Volume::with_direct_io`] made reads direct too).
    pub fn with_direct_writes(mut self, direct_writes: bool) -> Self {
        self.direct_writes = direct_writes || self.direct_reads;
        self
    }

    /// True when chunk files are read and written with `O_DIRECT`.
    pub fn direct_io(&self) -> bool {
        self.direct_reads
    }

    /// True when chunk files are written with `O_DIRECT`.
    pub fn direct_writes(&self) -> bool {
        self.direct_writes
    }

    /// Limits the bytes of chunk files this volume holds (None: the file system's
    /// free space is the only limit).
    pub fn with_capacity(mut self, capacity: Option<u64>) -> Self {
        self.capacity = capacity;
        self
    }

    /// The configured capacity in bytes, if any.
    pub fn capacity(&self) -> Option<u64> {
        self.capacity
    }

    /// Fails with [`Error::VolumeFull`] when `more` data bytes (plus a chunk header)
    /// would not fit in the capacity beside the stored chunks and the writes in flight.
    pub fn check_room(&self, more: u64) -> Result<()> {
        let Some(capacity) = self.capacity else {
            return Ok(());
        };
        let used = self.stats.bytes() + self.stats.reserved();
        if used.saturating_add(more).saturating_add(HEADER_BYTES) > capacity {
            return Err(Error::VolumeFull {
                capacity_bytes: capacity,
            });
        }
        Ok(())
    }

    /// Data bytes per checksum segment of the chunks this volume writes.
    pub fn segment_bytes(&self) -> u32 {
        self.segment_bytes
    }

    /// The volume folder.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Counters of this volume.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    fn dir_of(&self, id: &str) -> PathBuf {
        self.root.join(&id[..3])
    }

    /// Path of the complete chunk file `id` (an upper-case 64-hex id).
    pub fn chunk_path(&self, id: &str) -> PathBuf {
        self.dir_of(id).join(id)
    }

    /// Path of the in-progress file of chunk `id`.
    pub fn pending_path(&self, id: &str) -> PathBuf {
        self.dir_of(id).join(format!("{id}.pending"))
    }

    /// Starts writing chunk `id` of `size` data bytes when known (a direct-write stage
    /// no larger than the chunk); fails with [`Error::ChunkExists`] if the id is taken.
    pub async fn create(
        &self,
        id: &str,
        attrs: ChunkAttrs,
        size: Option<u64>,
    ) -> Result<ChunkWriter> {
        let final_path = self.chunk_path(id);
        match compio::fs::metadata(&final_path).await {
            Ok(_) => return Err(Error::ChunkExists(id.to_string())),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("stat chunk", e)),
        }
        let dir = self.dir_of(id);
        match compio::fs::create_dir(&dir).await {
            Ok(()) => {
                // A new fan-out folder: its entry in the volume folder is made durable
                // before any chunk in it can be acknowledged (each chunk's publish
                // fsyncs only the fan-out folder). Once per folder.
                sync_dir(&self.root).await?;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create chunk folder", e)),
        }
        let pending = self.pending_path(id);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        if self.direct_writes {
            options.custom_flags(libc::O_DIRECT);
        }
        let file = match options.open(&pending).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::ChunkExists(id.to_string()))
            }
            Err(e) => return Err(Error::io("create pending chunk", e)),
        };
        Ok(ChunkWriter {
            id: id.to_string(),
            attrs,
            file: Some(file),
            pending,
            final_path,
            dir,
            hasher: Some(SegmentHasher::new(self.segment_bytes)),
            segment_bytes: self.segment_bytes,
            committed: false,
            stats: self.stats.clone(),
            capacity: self.capacity,
            reserved: 0,
            stage: if self.direct_writes {
                let stage_bytes = size.map_or(DIRECT_STAGE_BYTES, |n| {
                    usize::try_from(n).map_or(DIRECT_STAGE_BYTES, |n| n.min(DIRECT_STAGE_BYTES))
                });
                Some(
                    AlignedBuf::with_capacity(stage_bytes)
                        .map_err(|e| Error::io("allocate direct I/O buffer", e))?,
                )
            } else {
                None
            },
            flushed: 0,
        })
    }

    /// Opens chunk `id` and validates its header.
    pub async fn open(&self, id: &str) -> Result<ChunkReader> {
        let path = self.chunk_path(id);
        let opened = if self.direct_reads {
            direct::open_read(&path).await
        } else {
            File::open(&path).await
        };
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::ChunkNotFound(id.to_string()))
            }
            Err(e) => return Err(Error::io("open chunk", e)),
        };
        let file_len = file
            .metadata()
            .await
            .map_err(|e| Error::io("stat chunk", e))?
            .len();
        if file_len < HEADER_BYTES {
            return Err(Error::CorruptHeader {
                chunk: id.to_string(),
                reason: format!("file too short ({file_len} bytes)"),
            });
        }
        let header = if self.direct_reads {
            let mut header = Vec::new();
            direct::read_range(&file, 0, HEADER_BYTES as usize, &mut header)
                .await
                .map_err(|e| Error::io("read chunk header", e))?;
            header
        } else {
            let BufResult(res, header) = file
                .read_exact_at(Vec::with_capacity(HEADER_BYTES as usize), 0)
                .await;
            res.map_err(|e| Error::io("read chunk header", e))?;
            header
        };
        let meta = ChunkMeta::decode_header(&header, file_len, id)?;
        Ok(ChunkReader {
            file,
            meta,
            direct_io: self.direct_reads,
        })
    }

    /// Removes chunk `id`.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let path = self.chunk_path(id);
        let len = match compio::fs::metadata(&path).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::ChunkNotFound(id.to_string()))
            }
            Err(e) => return Err(Error::io("stat chunk", e)),
        };
        match compio::fs::remove_file(&path).await {
            Ok(()) => {
                self.stats.chunk_removed(len);
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::ChunkNotFound(id.to_string())),
            Err(e) => Err(Error::io("remove chunk", e)),
        }
    }
}

/// A chunk being written. Dropping it before [`ChunkWriter::commit`] removes the
/// `.pending` file.
#[derive(Debug)]
pub struct ChunkWriter {
    id: String,
    attrs: ChunkAttrs,
    file: Option<File>,
    pending: PathBuf,
    final_path: PathBuf,
    dir: PathBuf,
    hasher: Option<SegmentHasher>,
    segment_bytes: u32,
    committed: bool,
    stats: Arc<Stats>,
    capacity: Option<u64>,
    /// Bytes this writer counts in [`Stats::reserved`] until it commits or drops.
    reserved: u64,
    /// Direct I/O: data not yet written (less than the stage's capacity, written
    /// when full and at commit).
    stage: Option<AlignedBuf>,
    /// Direct I/O: data bytes already in the file.
    flushed: u64,
}

impl ChunkWriter {
    /// Data bytes written so far.
    pub fn written(&self) -> u64 {
        self.hasher.as_ref().map_or(0, SegmentHasher::size)
    }

    /// Appends `buf` to the chunk data; gives the buffer back.
    pub async fn append(&mut self, buf: Vec<u8>) -> (Result<()>, Vec<u8>) {
        let pos = HEADER_BYTES + self.written();
        let (Some(file), Some(hasher)) = (self.file.as_mut(), self.hasher.as_mut()) else {
            return (
                Err(Error::Runtime("chunk writer already finished".into())),
                buf,
            );
        };
        if let Some(capacity) = self.capacity {
            let more = buf.len() as u64;
            let used = self.stats.bytes() + self.stats.reserved();
            if used.saturating_add(more).saturating_add(HEADER_BYTES) > capacity {
                return (
                    Err(Error::VolumeFull {
                        capacity_bytes: capacity,
                    }),
                    buf,
                );
            }
        }
        self.stats.reserve(buf.len() as u64);
        self.reserved += buf.len() as u64;
        if self.stage.is_some() {
            let res = self.append_direct(&buf).await;
            if res.is_ok() {
                if let Some(h) = self.hasher.as_mut() {
                    h.update(&buf);
                }
            }
            return (res, buf);
        }
        let BufResult(res, buf) = file.write_all_at(buf, pos).await;
        match res {
            Ok(()) => {
                hasher.update(buf.as_init());
                (Ok(()), buf)
            }
            Err(e) => (Err(write_error("write chunk data", e)), buf),
        }
    }

    /// Direct I/O: copies `data` into the stage, writing each full stage out.
    async fn append_direct(&mut self, mut data: &[u8]) -> Result<()> {
        // Bounded: each round takes at least one byte or writes a full stage.
        while !data.is_empty() {
            let (Some(stage), Some(file)) = (self.stage.as_mut(), self.file.as_mut()) else {
                return Err(Error::Runtime("chunk writer already finished".into()));
            };
            let n = stage.push(data);
            data = &data[n..];
            if stage.len() == stage.capacity() {
                let full = self
                    .stage
                    .take()
                    .ok_or_else(|| Error::Runtime("direct stage missing".into()))?;
                let len = full.len() as u64;
                let BufResult(res, mut full) =
                    file.write_all_at(full, HEADER_BYTES + self.flushed).await;
                full.clear();
                self.stage = Some(full);
                res.map_err(|e| write_error("write chunk data", e))?;
                self.flushed += len;
            }
        }
        Ok(())
    }

    /// Writes the checksum table and the header, fsyncs, publishes the chunk under its
    /// final name and fsyncs the folder. Returns the stored metadata.
    pub async fn commit(mut self) -> Result<ChunkMeta> {
        let hasher = self
            .hasher
            .take()
            .ok_or_else(|| Error::Runtime("chunk writer already finished".into()))?;
        let size = hasher.size();
        let (table, crc) = hasher.finish();
        self.publish(size, table, crc).await
    }

    /// Sets aside `bytes` of the volume for data a local writer writes into the
    /// pending file (released at commit or drop, like appended data).
    pub fn reserve(&mut self, bytes: u64) {
        self.stats.reserve(bytes);
        self.reserved += bytes;
    }

    /// A descriptor of the pending file for a local writer (the same open file: with
    /// `O_DIRECT` when this volume writes directly).
    pub fn pending_fd(&self) -> Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| Error::Runtime("chunk writer already finished".into()))?;
        file.as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("duplicate pending chunk descriptor", e))
    }

    /// Commits `size` data bytes a local writer wrote into the pending file: all but
    /// the last `size % ALIGN` bytes, which it hands over as `tail`, with the checksum
    /// table and the whole crc it computed. Then as [`ChunkWriter::commit`].
    pub async fn commit_written(
        mut self,
        size: u64,
        tail: &[u8],
        table: Vec<u8>,
        crc: u32,
    ) -> Result<ChunkMeta> {
        let segments = format::segment_count(size, self.segment_bytes);
        if tail.len() as u64 != size % direct::ALIGN as u64 || table.len() as u64 != 4 * segments {
            return Err(Error::BadRequest(format!(
                "a commit of {size} bytes needs a {} byte tail and a {} byte table",
                size % direct::ALIGN as u64,
                4 * segments
            )));
        }
        let written = size - tail.len() as u64;
        // The local writer's bytes must all be there: a commit never publishes a
        // chunk shorter than it says (its reads would then fail, after a STORED).
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| Error::Runtime("chunk writer already finished".into()))?;
        let held = file
            .metadata()
            .await
            .map_err(|e| Error::io("stat pending chunk", e))?
            .len();
        if written > 0 && held < HEADER_BYTES + written {
            return Err(Error::BadRequest(format!(
                "a commit of {size} bytes needs {written} data bytes written, the pending \
                 file holds {}",
                held.saturating_sub(HEADER_BYTES)
            )));
        }
        match self.stage.as_mut() {
            Some(stage) => {
                stage.clear();
                if stage.push(tail) != tail.len() {
                    return Err(Error::Runtime("direct stage smaller than the tail".into()));
                }
                self.flushed = written;
            }
            None => {
                let file = self
                    .file
                    .as_mut()
                    .ok_or_else(|| Error::Runtime("chunk writer already finished".into()))?;
                // Whatever the local writer left past the data is cut off, so that
                // the file ends where its header will say (the direct path's publish
                // sets the length itself).
                file.set_len(HEADER_BYTES + written)
                    .await
                    .map_err(|e| write_error("set chunk length", e))?;
                if !tail.is_empty() {
                    let BufResult(res, _) = file
                        .write_all_at(tail.to_vec(), HEADER_BYTES + written)
                        .await;
                    res.map_err(|e| write_error("write chunk tail", e))?;
                }
            }
        }
        self.publish(size, table, crc).await
    }

    /// Writes the tail (direct I/O), the checksum table and the header of `size` data
    /// bytes, fsyncs, publishes the chunk under its final name and fsyncs the folder.
    async fn publish(mut self, size: u64, table: Vec<u8>, crc: u32) -> Result<ChunkMeta> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Error::Runtime("chunk writer already finished".into()))?;
        let meta = ChunkMeta {
            chunk_id: self.id.clone(),
            container: std::mem::take(&mut self.attrs.container),
            content: std::mem::take(&mut self.attrs.content),
            position: std::mem::take(&mut self.attrs.position),
            policy: std::mem::take(&mut self.attrs.policy),
            size,
            segment_bytes: self.segment_bytes,
            checksum: format::CHECKSUM_ALGO.to_string(),
            crc,
            table_offset: HEADER_BYTES + size,
            table_count: format::segment_count(size, self.segment_bytes),
            created_ms: oxio_common::now_ms(),
        };
        debug_assert_eq!(table.len() as u64, meta.table_count * 4);
        let header = meta.encode_header()?;
        if let Some(stage) = self.stage.take() {
            // The unaligned tail and the table as one padded aligned write, then the
            // file is cut back to its exact length.
            let mut last = AlignedBuf::with_capacity(stage.len() + table.len())
                .map_err(|e| Error::io("allocate direct I/O buffer", e))?;
            last.push(stage.as_init());
            last.push(&table);
            last.pad_to_align();
            if !last.is_empty() {
                let BufResult(res, _) = file.write_all_at(last, HEADER_BYTES + self.flushed).await;
                res.map_err(|e| write_error("write chunk tail and checksum table", e))?;
            }
            let mut head = AlignedBuf::with_capacity(header.len())
                .map_err(|e| Error::io("allocate direct I/O buffer", e))?;
            head.push(&header);
            head.pad_to_align();
            let BufResult(res, _) = file.write_all_at(head, 0).await;
            res.map_err(|e| write_error("write chunk header", e))?;
            file.set_len(meta.file_len())
                .await
                .map_err(|e| write_error("set chunk length", e))?;
        } else {
            if !table.is_empty() {
                let BufResult(res, _) = file.write_all_at(table, meta.table_offset).await;
                res.map_err(|e| write_error("write checksum table", e))?;
            }
            let BufResult(res, _) = file.write_all_at(header, 0).await;
            res.map_err(|e| write_error("write chunk header", e))?;
        }
        file.sync_data()
            .await
            .map_err(|e| write_error("fsync chunk", e))?;
        file.close()
            .await
            .map_err(|e| Error::io("close chunk", e))?;
        match compio::fs::hard_link(&self.pending, &self.final_path).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::ChunkExists(self.id.clone()))
            }
            Err(e) => return Err(Error::io("publish chunk", e)),
        }
        self.committed = true;
        if let Err(e) = compio::fs::remove_file(&self.pending).await {
            tracing::warn!(chunk = %self.id, error = %e, "could not remove pending file after publish");
        }
        if let Err(e) = sync_dir(&self.dir).await {
            // The chunk might not survive a crash: unpublish it and fail the PUT.
            let _ = compio::fs::remove_file(&self.final_path).await;
            return Err(e);
        }
        self.stats.release(std::mem::take(&mut self.reserved));
        self.stats.chunk_added(meta.file_len());
        Ok(meta)
    }
}

/// A write failure; "no space left on device" becomes [`Error::VolumeFull`] so the
/// client is told the volume is full rather than broken.
fn write_error(context: &'static str, e: std::io::Error) -> Error {
    if e.kind() == ErrorKind::StorageFull {
        return Error::VolumeFull { capacity_bytes: 0 };
    }
    Error::io(context, e)
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        self.stats.release(std::mem::take(&mut self.reserved));
        if !self.committed {
            // Close first, then remove: an aborted write leaves nothing behind.
            drop(self.file.take());
            match std::fs::remove_file(&self.pending) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(chunk = %self.id, error = %e, "could not remove aborted pending file")
                }
            }
        }
    }
}

async fn sync_dir(dir: &std::path::Path) -> Result<()> {
    let d = File::open(dir)
        .await
        .map_err(|e| Error::io("open chunk folder", e))?;
    d.sync_all()
        .await
        .map_err(|e| Error::io("fsync chunk folder", e))?;
    d.close()
        .await
        .map_err(|e| Error::io("close chunk folder", e))
}

/// An open, header-validated chunk.
#[derive(Debug)]
pub struct ChunkReader {
    file: File,
    meta: ChunkMeta,
    direct_io: bool,
}

impl ChunkReader {
    /// The chunk's metadata.
    pub fn meta(&self) -> &ChunkMeta {
        &self.meta
    }

    /// Reads segments `first .. first + count` into `buf` (cleared first) and verifies
    /// each against the checksum table. On success `buf` holds exactly their data.
    pub async fn read_segments(
        &self,
        first: u64,
        count: u64,
        mut buf: Vec<u8>,
    ) -> (Result<()>, Vec<u8>) {
        let meta = &self.meta;
        if count == 0 || first + count > meta.table_count {
            return (
                Err(Error::Runtime("segment range out of chunk".into())),
                buf,
            );
        }
        let (start, _) = meta.segment_range(first);
        let (_, end) = meta.segment_range(first + count - 1);
        let len = (end - start) as usize;
        let table_pos = meta.table_offset + 4 * first;
        let table_len = 4 * count as usize;
        let (buf, table) = if self.direct_io {
            if let Err(e) =
                direct::read_range(&self.file, HEADER_BYTES + start, len, &mut buf).await
            {
                return (Err(Error::io("read chunk data", e)), buf);
            }
            let mut table = Vec::with_capacity(table_len);
            if let Err(e) = direct::read_range(&self.file, table_pos, table_len, &mut table).await {
                return (Err(Error::io("read checksum table", e)), buf);
            }
            (buf, table)
        } else {
            buf.clear();
            buf.reserve(len);
            let BufResult(res, slice) = self
                .file
                .read_exact_at(buf.slice(0..len), HEADER_BYTES + start)
                .await;
            let buf = slice.into_inner();
            if let Err(e) = res {
                return (Err(Error::io("read chunk data", e)), buf);
            }
            let BufResult(res, table) = self
                .file
                .read_exact_at(Vec::with_capacity(table_len), table_pos)
                .await;
            if let Err(e) = res {
                return (Err(Error::io("read checksum table", e)), buf);
            }
            (buf, table)
        };
        let seg = meta.segment_bytes as usize;
        for (i, (data, want)) in buf.chunks(seg).zip(table.chunks_exact(4)).enumerate() {
            let want = u32::from_le_bytes([want[0], want[1], want[2], want[3]]);
            if crc32c::crc32c(data) != want {
                let err = Error::ChecksumMismatch {
                    chunk: meta.chunk_id.clone(),
                    segment: first + i as u64,
                };
                return (Err(err), buf);
            }
        }
        (Ok(()), buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(dir: &std::path::Path) -> Volume {
        Volume::new(dir.to_path_buf(), 4096, Arc::new(Stats::default()))
    }

    fn id(n: u8) -> String {
        format!("{n:02X}").repeat(32)
    }

    async fn write_chunk(v: &Volume, id: &str, data: &[u8]) -> ChunkMeta {
        let attrs = ChunkAttrs {
            container: "CID".into(),
            content: "0a0b".into(),
            position: "0.3".into(),
            policy: "EC42".into(),
        };
        let mut w = v.create(id, attrs, None).await.unwrap();
        for piece in data.chunks(10_000) {
            let (res, _) = w.append(piece.to_vec()).await;
            res.unwrap();
        }
        w.commit().await.unwrap()
    }

    #[test]
    fn chunk_round_trip_and_corruption() {
        let tmp = tempfile::tempdir().unwrap();
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let v = volume(tmp.path());
            let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
            let cid = id(0xAB);
            let meta = write_chunk(&v, &cid, &data).await;
            assert_eq!(meta.size, 50_000);
            assert_eq!(meta.crc, crc32c::crc32c(&data));
            assert_eq!(meta.table_count, 13);
            assert_eq!(v.stats().chunks(), 1);
            assert!(!v.pending_path(&cid).exists());
            let file_len = std::fs::metadata(v.chunk_path(&cid)).unwrap().len();
            assert_eq!(file_len, format::file_len(50_000, 4096));

            let r = v.open(&cid).await.unwrap();
            assert_eq!(r.meta(), &meta);
            assert_eq!(r.meta().position, "0.3");
            let (res, buf) = r.read_segments(0, 13, Vec::new()).await;
            res.unwrap();
            assert_eq!(buf, data);
            let (res, buf) = r.read_segments(12, 1, buf).await;
            res.unwrap();
            assert_eq!(buf, &data[49_152..]);
            drop(r);

            // a duplicate id is refused, even while the first is pending
            assert!(matches!(
                v.create(&cid, ChunkAttrs::default(), None).await,
                Err(Error::ChunkExists(_))
            ));
            let other = id(0xCD);
            let pending = v.create(&other, ChunkAttrs::default(), None).await.unwrap();
            assert!(matches!(
                v.create(&other, ChunkAttrs::default(), None).await,
                Err(Error::ChunkExists(_))
            ));
            // dropping an uncommitted writer removes its pending file
            drop(pending);
            assert!(!v.pending_path(&other).exists());
            assert!(matches!(v.open(&other).await, Err(Error::ChunkNotFound(_))));

            // flip one byte in segment 5
            let path = v.chunk_path(&cid);
            let mut raw = std::fs::read(&path).unwrap();
            raw[HEADER_BYTES as usize + 5 * 4096 + 17] ^= 0x80;
            std::fs::write(&path, &raw).unwrap();
            let r = v.open(&cid).await.unwrap();
            let (res, buf) = r.read_segments(0, 13, Vec::new()).await;
            assert!(
                matches!(res, Err(Error::ChecksumMismatch { segment: 5, .. })),
                "{res:?}"
            );
            let (res, buf) = r.read_segments(0, 5, buf).await;
            res.unwrap();
            assert_eq!(buf, &data[..5 * 4096]);
            let (res, _) = r.read_segments(6, 7, buf).await;
            res.unwrap();
            drop(r);

            // truncated file and garbage header
            std::fs::write(&path, &raw[..raw.len() - 1]).unwrap();
            assert!(matches!(
                v.open(&cid).await,
                Err(Error::CorruptHeader { .. })
            ));
            std::fs::write(&path, &raw[..100]).unwrap();
            assert!(matches!(
                v.open(&cid).await,
                Err(Error::CorruptHeader { .. })
            ));
            let mut garbage = raw.clone();
            garbage[20..40].fill(b'z');
            std::fs::write(&path, &garbage).unwrap();
            assert!(matches!(
                v.open(&cid).await,
                Err(Error::CorruptHeader { .. })
            ));

            v.delete(&cid).await.unwrap();
            assert!(matches!(v.delete(&cid).await, Err(Error::ChunkNotFound(_))));
            assert_eq!(v.stats().chunks(), 0);
        });
    }

    #[test]
    fn empty_chunk() {
        let tmp = tempfile::tempdir().unwrap();
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let v = volume(tmp.path());
            let w = v.create(&id(1), ChunkAttrs::default(), None).await.unwrap();
            let meta = w.commit().await.unwrap();
            assert_eq!((meta.size, meta.table_count), (0, 0));
            let r = v.open(&id(1)).await.unwrap();
            assert_eq!(r.meta().size, 0);
        });
    }

    /// A local writer's commit: the pending file written through its descriptor with
    /// `data[..len]` (and `extra` bytes past the data), then `data` committed.
    async fn commit_local(
        v: &Volume,
        id: &str,
        data: &[u8],
        len: usize,
        extra: usize,
    ) -> Result<ChunkMeta> {
        use std::os::unix::fs::FileExt;
        let attrs = ChunkAttrs::default();
        let w = v.create(id, attrs, Some(data.len() as u64)).await.unwrap();
        let file = std::fs::File::from(w.pending_fd().unwrap());
        let aligned = data.len() / direct::ALIGN * direct::ALIGN;
        let mut body = data[..len.min(aligned)].to_vec();
        body.extend(std::iter::repeat_n(0xEE, extra));
        file.write_all_at(&body, HEADER_BYTES).unwrap();
        let table: Vec<u8> = data
            .chunks(4096)
            .flat_map(|seg| crc32c::crc32c(seg).to_le_bytes())
            .collect();
        w.commit_written(
            data.len() as u64,
            &data[aligned..],
            table,
            crc32c::crc32c(data),
        )
        .await
    }

    #[test]
    fn a_local_commit_is_refused_short_and_cut_to_its_length() {
        let tmp = tempfile::tempdir().unwrap();
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let v = volume(tmp.path());
            let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
            // Fewer bytes written than the commit says: refused, nothing published.
            let err = commit_local(&v, &id(7), &data, 8192, 0).await.unwrap_err();
            assert!(matches!(err, Error::BadRequest(_)), "{err:?}");
            assert!(!v.chunk_path(&id(7)).exists());
            // Bytes left past the data: cut off, the chunk reads back whole.
            let meta = commit_local(&v, &id(8), &data, data.len(), 50_000)
                .await
                .unwrap();
            let len = std::fs::metadata(v.chunk_path(&id(8))).unwrap().len();
            assert_eq!(len, meta.file_len());
            let r = v.open(&id(8)).await.unwrap();
            let (res, buf) = r.read_segments(0, meta.table_count, Vec::new()).await;
            res.unwrap();
            assert_eq!(buf, data);
        });
    }
}
