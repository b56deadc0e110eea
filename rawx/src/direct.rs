//! Direct I/O (`O_DIRECT`): buffers aligned to the device block, and reads and writes
//! of arbitrary byte ranges built from aligned ones.
//!
//! With `O_DIRECT` the kernel moves data between the device and the buffer without
//! the page cache, which keeps a volume that is written once and read rarely from
//! evicting what the host caches for other work. The price: the buffer address, the
//! length and the file offset of every transfer must be multiples of the block size.
//! [`ALIGN`] (4 KiB) satisfies every common device; the chunk file layout (4 KiB
//! header, data from offset 4096) keeps data writes aligned, and the unaligned tail
//! plus the checksum table are written as one padded block range then cut back to
//! the exact length with `set_len`.

use compio::buf::{IntoInner, IoBuf, IoBufMut, SetLen};
use compio::fs::File;
use std::alloc::Layout;
use std::io;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

/// Alignment of direct transfers: address, length and offset.
pub const ALIGN: usize = 4096;

/// Rounds `n` up to a multiple of [`ALIGN`].
pub fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN as u64) * ALIGN as u64
}

/// Rounds `n` down to a multiple of [`ALIGN`].
pub fn align_down(n: u64) -> u64 {
    n / ALIGN as u64 * ALIGN as u64
}

/// A fixed-capacity heap buffer whose start is aligned to [`ALIGN`], usable as a
/// compio I/O buffer.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    layout: Layout,
}

// SAFETY: the buffer owns its allocation exclusively (like a `Vec<u8>`); nothing
// else holds the pointer.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only read initialised bytes.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// An empty buffer with room for `capacity` bytes, rounded up to [`ALIGN`]
    /// (at least one block).
    pub fn with_capacity(capacity: usize) -> io::Result<Self> {
        let cap = (align_up(capacity.max(1) as u64)) as usize;
        let layout = Layout::from_size_align(cap, ALIGN)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let ptr = NonNull::new(raw).ok_or_else(|| {
            io::Error::new(io::ErrorKind::OutOfMemory, "aligned buffer allocation")
        })?;
        Ok(AlignedBuf {
            ptr,
            len: 0,
            layout,
        })
    }

    /// Bytes the buffer can hold.
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// Initialised bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no byte is initialised.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the content.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends as much of `src` as fits; returns how many bytes were taken.
    pub fn push(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.capacity() - self.len);
        // SAFETY: `len + n <= capacity`, the regions cannot overlap (`src` is not
        // inside our unique allocation's uninitialised tail).
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(self.len), n);
        }
        self.len += n;
        n
    }

    /// Appends zeros up to the next multiple of [`ALIGN`] (the capacity is one).
    pub fn pad_to_align(&mut self) {
        let target = (align_up(self.len as u64) as usize).min(self.capacity());
        // SAFETY: `target <= capacity`.
        unsafe {
            std::ptr::write_bytes(self.ptr.as_ptr().add(self.len), 0, target - self.len);
        }
        self.len = target;
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `with_capacity` with this very layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl IoBuf for AlignedBuf {
    fn as_init(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialised.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl SetLen for AlignedBuf {
    unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.capacity());
        self.len = len;
    }
}

impl IoBufMut for AlignedBuf {
    fn as_uninit(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: the allocation is `capacity` bytes and ours alone.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast(), self.layout.size()) }
    }
}

/// Reads bytes `pos .. pos + len` of a file opened with `O_DIRECT`, through one
/// aligned read that covers them; fails with `UnexpectedEof` when the file is shorter.
pub async fn read_range(file: &File, pos: u64, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
    use compio::io::AsyncReadAt;
    let start = align_down(pos);
    let end = align_up(pos + len as u64);
    let want = (pos + len as u64 - start) as usize;
    let mut buf = AlignedBuf::with_capacity((end - start) as usize)?;
    // Bounded: each round reads at least one byte or stops.
    while buf.len() < want {
        let filled = buf.len();
        let compio::BufResult(res, slice) = file
            .read_at(buf.slice(filled..), start + filled as u64)
            .await;
        buf = slice.into_inner();
        let n = res?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file ends before byte {}", pos + len as u64),
            ));
        }
        if n % ALIGN != 0 && buf.len() < want {
            // A short, unaligned read only happens at the end of the file.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file ends before byte {}", pos + len as u64),
            ));
        }
    }
    let skip = (pos - start) as usize;
    out.clear();
    out.extend_from_slice(&buf.as_init()[skip..skip + len]);
    Ok(())
}

/// Opens `path` for reading with `O_DIRECT`.
pub async fn open_read(path: &std::path::Path) -> io::Result<File> {
    compio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .await
}

/// Checks that the file system holding `volume` accepts an aligned `O_DIRECT` write,
/// with a probe file that is removed afterwards.
pub fn probe(volume: &std::path::Path) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = volume.join(".direct-io-probe");
    let _ = std::fs::remove_file(&path);
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .and_then(|mut f| {
            let mut block = AlignedBuf::with_capacity(ALIGN)?;
            block.pad_to_align();
            f.write_all(block.as_init())?;
            f.sync_data()
        });
    let _ = std::fs::remove_file(&path);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffer_basics() {
        let mut b = AlignedBuf::with_capacity(5000).unwrap();
        assert_eq!(b.capacity(), 8192);
        assert_eq!(b.as_init().as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.push(&[1; 100]), 100);
        b.pad_to_align();
        assert_eq!(b.len(), 4096);
        assert!(b.as_init()[100..].iter().all(|&x| x == 0));
        assert_eq!(b.push(&[2; 10_000]), 4096);
        assert_eq!(b.len(), 8192);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(
            (align_up(1), align_up(4096), align_down(4097)),
            (4096, 4096, 4096)
        );
    }
}
