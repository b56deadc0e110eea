//! Short-circuit local reads ([`oxio_common::local_read`]): when the rawx holding a
//! chunk has its local-read socket in this client's local-read folder, the chunk file
//! is received from it over the socket and read here, with every segment verified
//! against the file's crc32c table, instead of streamed over TCP. Any failure (no
//! socket, refused, I/O error, checksum mismatch) sends the read back to the rawx's
//! HTTP GET, which answers, or finds and reports the corruption, as before.

use crate::kept_files::KeptFiles;
use bytes::Bytes;
use oxio_common::local_read::{socket_path, Layout, Reply, MAX_REPLY_BYTES};
use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

/// Longest wait for a rawx's answer on its local-read socket.
const OPEN_TIMEOUT: Duration = Duration::from_secs(1);
/// Data mapped, faulted in and verified at once: a window that spares mappings,
/// unmappings and blocking-pool hand-offs when the caller takes smaller pieces (an EC
/// stripe's shard is 256 KiB). 4 MiB holds a whole fragment of a 16 MiB object in
/// EC 4+2: against 1 MiB windows it cut the gateway's CPU time per GiB served by about
/// a quarter with one core and about an eighth with two (docs/performance.md).
const READ_BYTES: u64 = 4 * 1024 * 1024;

/// Opens chunks through the local-read sockets of one folder (cloned with every
/// reader that may fall back to HTTP: the folder and the files kept open are shared,
/// not copied).
#[derive(Clone, Debug)]
pub struct LocalOpener {
    dir: Arc<Path>,
    kept: KeptFiles,
}

impl LocalOpener {
    /// Looks for local-read sockets in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        LocalOpener {
            dir: dir.into(),
            kept: KeptFiles::default(),
        }
    }

    /// Stops keeping open the file of chunk `chunk_id` of the rawx at `addr` (a read
    /// of it failed).
    pub fn forget(&self, addr: &str, chunk_id: &str) {
        self.kept.forget(addr, chunk_id);
    }

    /// The folder of the sockets.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes `start..end` of chunk `chunk_id` of the rawx at `addr`, read from its
    /// file here (kept open from an earlier read, or handed over by the rawx); `None`
    /// when that rawx offers no local read of it (the caller then uses HTTP).
    pub async fn open(
        &self,
        addr: &str,
        chunk_id: &str,
        start: u64,
        end: u64,
    ) -> Option<LocalChunk> {
        if UNSUPPORTED.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        if let Some((file, layout)) = self.kept.get(addr, chunk_id) {
            if end <= layout.size {
                return Some(LocalChunk::new(file, layout, start, end));
            }
            // The file is the chunk's for good: the rawx would give the same answer.
            past_the_chunk(addr, chunk_id, layout.size, end);
            return None;
        }
        let path = socket_path(&self.dir, addr);
        if !path.exists() {
            return None;
        }
        let opened = tokio::time::timeout(OPEN_TIMEOUT, exchange(&path, chunk_id)).await;
        let (reply, fd) = match opened {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(rawx = addr, socket = %path.display(), error = %e, "local read unavailable");
                return None;
            }
            Err(_) => {
                tracing::debug!(rawx = addr, "local-read socket gave no answer in time");
                return None;
            }
        };
        match (reply, fd) {
            (Reply::Open(layout), Some(fd)) if end <= layout.size => {
                let file = Arc::new(std::fs::File::from(fd));
                self.kept.keep(addr, chunk_id, file.clone(), layout);
                Some(LocalChunk::new(file, layout, start, end))
            }
            (Reply::Open(layout), Some(_)) => {
                past_the_chunk(addr, chunk_id, layout.size, end);
                None
            }
            (Reply::Open(_), None) => {
                tracing::debug!(rawx = addr, "local-read reply came without the file");
                None
            }
            (Reply::NotFound, _) => None,
            (Reply::Failed(m), _) => {
                tracing::debug!(rawx = addr, chunk = chunk_id, error = %m, "local read refused");
                None
            }
        }
    }
}

/// Notes a range that ends past the chunk's data (left to HTTP, which reports it).
fn past_the_chunk(addr: &str, chunk_id: &str, size: u64, end: u64) {
    tracing::debug!(
        rawx = addr,
        chunk = chunk_id,
        size,
        end,
        "range past the chunk; left to HTTP"
    );
}

/// Sends the request and receives the reply line with the file attached.
async fn exchange(
    path: &std::path::Path,
    chunk_id: &str,
) -> std::io::Result<(Reply, Option<OwnedFd>)> {
    let mut stream = UnixStream::connect(path).await?;
    let (line, fd) = request(&mut stream, &format!("{chunk_id}\n"), MAX_REPLY_BYTES).await?;
    let reply = Reply::decode(&line).map_err(std::io::Error::other)?;
    Ok((reply, fd))
}

/// Sends `request` on `stream` and receives one reply line (at most `max` bytes) with
/// the file descriptor that may ride on it. A rawx sends nothing after a reply line
/// until it is spoken to again, so bytes past the newline are an error.
pub(crate) async fn request(
    stream: &mut UnixStream,
    request: &str,
    max: usize,
) -> std::io::Result<(String, Option<OwnedFd>)> {
    stream.write_all(request.as_bytes()).await?;
    let mut line = Vec::with_capacity(128);
    let mut fd = None;
    let mut buf = vec![0u8; max];
    // Bounded: every pass adds a byte or ends, and the line is at most `max` bytes.
    while !line.contains(&b'\n') {
        if line.len() >= max {
            return Err(std::io::Error::other("local socket reply too long"));
        }
        stream.readable().await?;
        let want = max - line.len();
        let got = stream.try_io(Interest::READABLE, || {
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [IoSliceMut::new(&mut buf[..want])];
            let msg = recvmsg(&*stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
            for m in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = m {
                    for f in fds {
                        // One file is expected; any other is closed on drop.
                        if fd.is_none() {
                            fd = Some(f);
                        }
                    }
                }
            }
            Ok(msg.bytes)
        });
        match got {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    if !line.ends_with(b"\n") {
        return Err(std::io::Error::other("bytes after a local socket reply"));
    }
    let text = String::from_utf8(line)
        .map_err(|_| std::io::Error::other("local socket reply is not text"))?;
    Ok((text, fd))
}

/// A range of a chunk file received from its rawx, mapped into memory window by window
/// and verified segment by segment before any of its bytes is handed out.
///
/// The bytes handed out are slices of a window's mapping: they reach the client's
/// socket straight from the page cache, with no copy into a buffer of this process
/// (the copy a `pread` would make). Each window (about [`READ_BYTES`]) is its own
/// mapping, unmapped when the last slice of it is dropped, so a long read keeps only
/// the windows still on their way to the client mapped (and counted in the process's
/// resident memory).
///
/// Chunk files are immutable once committed (a rawx renames a finished file into
/// place, and a delete unlinks it, which leaves an open mapping valid), so a mapping
/// does not see its file shrink under it. Before a window is verified it is faulted
/// in with `MADV_POPULATE_READ`, which reports a disk read error, or a file shorter
/// than its layout says, as an error (the read then falls back to HTTP, where the
/// rawx reports it) instead of the `SIGBUS` a first touch would raise.
#[derive(Debug)]
pub struct LocalChunk {
    file: Arc<std::fs::File>,
    layout: Layout,
    /// The verified data bytes `window_start..window_end`, mapped.
    window: Bytes,
    /// Data offset of `window[0]`.
    window_start: u64,
    /// End of the verified data (a segment boundary, or the end of the range's last
    /// segment): the next window starts here.
    window_end: u64,
    /// Next data byte to hand out.
    pos: u64,
    /// End of the range (exclusive).
    end: u64,
}

impl LocalChunk {
    /// A read of data bytes `start..end` of `file`; nothing is mapped yet.
    fn new(file: Arc<std::fs::File>, layout: Layout, start: u64, end: u64) -> Self {
        let first = start / u64::from(layout.segment_bytes) * u64::from(layout.segment_bytes);
        LocalChunk {
            file,
            layout,
            window: Bytes::new(),
            window_start: first,
            window_end: first,
            pos: start,
            end,
        }
    }

    /// Next data byte to hand out (where an HTTP read would resume).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// End of the range (exclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The next `n` bytes, each segment verified, as slices of the windows' mappings;
    /// an error names what failed. The position moves only when the call succeeds:
    /// after an error, or when the call is dropped unfinished (a deadline), it is
    /// where it was, since none of the call's bytes were handed out (the HTTP
    /// fallback resumes from there).
    pub async fn read_pieces(&mut self, n: usize) -> Result<Vec<Bytes>, String> {
        let to = self.pos + n as u64;
        if to > self.end {
            return Err("read past the requested range".into());
        }
        let mut out = Vec::with_capacity(1);
        let mut pos = self.pos;
        // Bounded: each pass hands out at least one byte (a window ends past `pos`).
        while pos < to {
            if pos >= self.window_end {
                // What is still needed, or READ_BYTES, up to the range's end.
                self.next_window((to - self.window_end).max(READ_BYTES))
                    .await?;
            }
            let upto = to.min(self.window_end);
            let lo = (pos - self.window_start) as usize;
            let hi = (upto - self.window_start) as usize;
            out.push(self.window.slice(lo..hi));
            pos = upto;
        }
        self.pos = pos;
        Ok(out)
    }

    /// Maps, faults in and verifies the segments from the end of the current window
    /// covering `len` bytes, clipped to the segment holding the range's last byte; it
    /// becomes the current window.
    async fn next_window(&mut self, len: u64) -> Result<(), String> {
        let layout = self.layout;
        let seg = u64::from(layout.segment_bytes);
        let from = self.window_end;
        let first = from / seg;
        let last = ((from + len).min(self.end) - 1) / seg;
        let seg_end = ((last + 1) * seg).min(layout.size);
        let file = self.file.clone();
        let window = tokio::task::spawn_blocking(move || {
            let offset = layout.data_offset + from;
            let page = rustix::param::page_size() as u64;
            let map_offset = offset / page * page;
            let skip = (offset - map_offset) as usize;
            let len = usize::try_from(seg_end - from).map_err(|_| "window too large")?;
            let map = Bytes::from_owner(Mapping::new(&file, map_offset, skip + len)?);
            let data = map.slice(skip..);
            populate(&data)?;
            let table = read_exact_at(
                &file,
                layout.table_offset + 4 * first,
                4 * (last - first + 1),
            )?;
            for (i, (d, want)) in data
                .chunks(seg as usize)
                .zip(table.chunks_exact(4))
                .enumerate()
            {
                let want = u32::from_le_bytes([want[0], want[1], want[2], want[3]]);
                if crc32c::crc32c(d) != want {
                    return Err(format!("checksum mismatch in segment {}", first + i as u64));
                }
            }
            Ok(data)
        })
        .await
        .map_err(|e| format!("local read task: {e}"))??;
        self.window = window;
        self.window_start = from;
        self.window_end = seg_end;
        Ok(())
    }
}

/// A read-only shared mapping of part of a file, unmapped on drop.
struct Mapping {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned: it may be read from and unmapped by any
// thread.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `file` from `offset` (a multiple of the page size).
    fn new(file: &std::fs::File, offset: u64, len: usize) -> Result<Self, String> {
        if len == 0 {
            return Ok(Mapping {
                ptr: std::ptr::NonNull::dangling(),
                len: 0,
            });
        }
        // SAFETY: a fresh mapping (no address given), read-only and shared; it is only
        // read through `as_ref` within `len`, and unmapped once, on drop.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                file,
                offset,
            )
        }
        .map_err(|e| format!("map chunk file: {e}"))?;
        let ptr = std::ptr::NonNull::new(ptr.cast::<u8>()).ok_or("map chunk file: null")?;
        Ok(Mapping { ptr, len })
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is mapped readable for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping made in `new`, unmapped once; every slice of it
            // borrowed from `self`, so none outlives this.
            let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping").field("len", &self.len).finish()
    }
}

/// Faults in the pages of `data` (part of a [`Mapping`]) so that reading them cannot
/// raise `SIGBUS`: a disk read error comes back as an error here.
fn populate(data: &[u8]) -> Result<(), String> {
    if data.is_empty() {
        return Ok(());
    }
    let page = rustix::param::page_size();
    let start = data.as_ptr() as usize / page * page;
    let end = data.as_ptr() as usize + data.len();
    // SAFETY: advice only, on pages of a live mapping (rounded down to its page, which
    // the mapping starts on or after).
    let r = unsafe {
        rustix::mm::madvise(
            start as *mut std::ffi::c_void,
            end - start,
            rustix::mm::Advice::LinuxPopulateRead,
        )
    };
    match r {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) => {
            UNSUPPORTED.store(true, std::sync::atomic::Ordering::Relaxed);
            Err("this kernel has no MADV_POPULATE_READ (Linux 5.14 or later needed); local reads turned off".into())
        }
        Err(e) => Err(format!("read chunk file: {e}")),
    }
}

/// Set once `MADV_POPULATE_READ` was refused: local reads are then not offered.
static UNSUPPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `len` bytes of `file` at `offset`, read into fresh memory (not zeroed first).
fn read_exact_at(file: &std::fs::File, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    let len = usize::try_from(len).map_err(|_| "read too large".to_string())?;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    // Bounded: each pass reads at least one byte or ends.
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err("chunk file ended early".into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("read chunk file: {e}")),
        }
    }
    // The spare capacity may have been larger than asked.
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u32 = 64 * 1024;
    const DATA_OFFSET: u64 = 4096;

    /// A chunk file laid out as a rawx writes it (header space, data, crc table),
    /// open for reading, with its layout and data.
    fn chunk_file(dir: &Path, size: usize) -> (Arc<std::fs::File>, Layout, Vec<u8>) {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
        let mut file = vec![0u8; DATA_OFFSET as usize];
        file.extend_from_slice(&data);
        for seg in data.chunks(SEG as usize) {
            file.extend_from_slice(&crc32c::crc32c(seg).to_le_bytes());
        }
        let path = dir.join("chunk");
        std::fs::write(&path, &file).unwrap();
        let layout = Layout {
            size: size as u64,
            segment_bytes: SEG,
            data_offset: DATA_OFFSET,
            table_offset: DATA_OFFSET + size as u64,
        };
        (Arc::new(std::fs::File::open(&path).unwrap()), layout, data)
    }

    #[tokio::test]
    async fn ranges_are_read_verified_from_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let size = 3 * SEG as usize + 12_345;
        let (file, layout, data) = chunk_file(dir.path(), size);
        for (start, end) in [
            (0, size),
            (1000, size - 5),
            (SEG as usize - 1, SEG as usize + 1),
        ] {
            let mut chunk = LocalChunk::new(file.clone(), layout, start as u64, end as u64);
            let mut got = Vec::new();
            let mut step = 1;
            while got.len() < end - start {
                let n = step.min(end - start - got.len());
                for piece in chunk.read_pieces(n).await.unwrap() {
                    got.extend_from_slice(&piece);
                }
                step = step * 3 + 7;
            }
            assert!(got == data[start..end], "range {start}..{end}");
            assert_eq!(chunk.position(), end as u64);
            assert!(chunk.read_pieces(1).await.is_err(), "read past the range");
        }
    }

    #[tokio::test]
    async fn a_kept_file_answers_without_the_rawx_also_for_a_range_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let size = 2 * SEG as usize;
        let (file, layout, data) = chunk_file(dir.path(), size);
        let addr = "127.0.0.1:9";
        // The rawx's socket: listening, never answering, so that any exchange shows.
        let rawx = std::os::unix::net::UnixListener::bind(socket_path(dir.path(), addr)).unwrap();
        rawx.set_nonblocking(true).unwrap();
        let opener = LocalOpener::new(dir.path().to_path_buf());
        opener.kept.keep(addr, "C1", file, layout);
        let mut chunk = opener.open(addr, "C1", 0, size as u64).await.expect("kept");
        let got: Vec<u8> = chunk.read_pieces(size).await.unwrap().concat();
        assert!(got == data, "bytes differ");
        assert!(opener.open(addr, "C1", 0, size as u64 + 1).await.is_none());
        assert_eq!(
            rawx.accept().map(|_| ()).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock),
            "the rawx was asked"
        );
    }

    #[tokio::test]
    async fn a_read_longer_than_a_window_goes_on_across_windows() {
        // Two and a half windows: pieces of a stripe shard's size (as an EC read takes
        // them) cross the window boundaries, which fall on segment boundaries.
        let dir = tempfile::tempdir().unwrap();
        let size = 2 * READ_BYTES as usize + 5 * SEG as usize / 2;
        let (file, layout, data) = chunk_file(dir.path(), size);
        let mut chunk = LocalChunk::new(file, layout, 100, size as u64);
        let mut got = Vec::with_capacity(size);
        let mut windows = std::collections::BTreeSet::new();
        while got.len() < size - 100 {
            let n = (size - 100 - got.len()).min(256 * 1024 + 3);
            for piece in chunk.read_pieces(n).await.unwrap() {
                got.extend_from_slice(&piece);
            }
            windows.insert(chunk.window_start);
        }
        assert!(got == data[100..], "bytes differ");
        assert_eq!(windows.len(), 3, "windows: {windows:?}");
        assert!(
            windows.iter().all(|w| w % u64::from(SEG) == 0),
            "{windows:?}"
        );
    }

    #[tokio::test]
    async fn a_damaged_segment_is_refused_before_any_of_it_is_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let size = 3 * SEG as usize;
        let (_, layout, _) = chunk_file(dir.path(), size);
        let path = dir.path().join("chunk");
        let mut raw = std::fs::read(&path).unwrap();
        raw[DATA_OFFSET as usize + 2 * SEG as usize + 10] ^= 1;
        std::fs::write(&path, raw).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        let mut chunk = LocalChunk::new(file, layout, 0, size as u64);
        // The first two segments are sound (one window covers all three, so the read
        // that needs the damaged one fails as a whole).
        let err = chunk.read_pieces(size).await.unwrap_err();
        assert!(err.contains("segment 2"), "{err}");
        assert_eq!(chunk.position(), 0, "nothing handed out");
    }

    #[tokio::test]
    async fn a_failed_read_across_windows_hands_out_nothing_and_keeps_its_position() {
        // The fallback to HTTP resumes at `position()`: a read whose first part came
        // from a sound window and whose rest fails, or is dropped unfinished, must not
        // have moved it.
        let dir = tempfile::tempdir().unwrap();
        let size = READ_BYTES as usize + 2 * SEG as usize;
        let (_, layout, data) = chunk_file(dir.path(), size);
        let path = dir.path().join("chunk");
        let mut raw = std::fs::read(&path).unwrap();
        raw[DATA_OFFSET as usize + READ_BYTES as usize + 10] ^= 1;
        std::fs::write(&path, raw).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        let mut chunk = LocalChunk::new(file, layout, 0, size as u64);
        let before = READ_BYTES as usize - 10;
        let got: Vec<u8> = chunk.read_pieces(before).await.unwrap().concat();
        assert!(got == data[..before], "bytes differ");
        // Polled once and dropped while the next window is being mapped (as the
        // reader's deadline drops it); should it have finished, it failed.
        let once = futures::FutureExt::now_or_never(chunk.read_pieces(20));
        assert!(matches!(once, None | Some(Err(_))), "{once:?}");
        assert_eq!(
            chunk.position(),
            before as u64,
            "position moved when dropped"
        );
        let err = chunk.read_pieces(20).await.unwrap_err();
        let damaged = READ_BYTES / u64::from(SEG);
        assert!(err.contains(&format!("segment {damaged}")), "{err}");
        assert_eq!(chunk.position(), before as u64, "position moved");
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_layout_is_an_error_not_a_crash() {
        // A file cut short after the rawx opened it: touching a mapped page past its
        // end would raise SIGBUS; the populate step reports it instead.
        let dir = tempfile::tempdir().unwrap();
        let size = 40 * SEG as usize;
        let (file, layout, _) = chunk_file(dir.path(), size);
        let mut chunk = LocalChunk::new(file, layout, 0, size as u64);
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("chunk"))
            .unwrap()
            .set_len(DATA_OFFSET + SEG as u64)
            .unwrap();
        let mut failed = false;
        for _ in 0..40 {
            if let Err(e) = chunk.read_pieces(SEG as usize).await {
                assert!(e.contains("read chunk file"), "{e}");
                failed = true;
                break;
            }
        }
        assert!(failed, "reads past the end of the file must fail");
    }
}
