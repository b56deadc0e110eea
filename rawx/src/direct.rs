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
use std::io;
use std::mem::MaybeUninit;

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

/// A heap buffer aligned to [`ALIGN`] ([`oxio_common::aligned::AlignedBuf`]), usable
/// as a compio I/O buffer.
#[derive(Debug)]
pub struct AlignedBuf(oxio_common::aligned::AlignedBuf);

impl AlignedBuf {
    /// An empty buffer with room for `capacity` bytes, rounded up to [`ALIGN`]
    /// (at least one block).
    pub fn with_capacity(capacity: usize) -> io::Result<Self> {
        oxio_common::aligned::AlignedBuf::with_capacity(capacity, ALIGN).map(AlignedBuf)
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = oxio_common::aligned::AlignedBuf;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl IoBuf for AlignedBuf {
    fn as_init(&self) -> &[u8] {
        self.0.as_ref()
    }
}

impl SetLen for AlignedBuf {
    unsafe fn set_len(&mut self, len: usize) {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.0.set_len(len) }
    }
}

impl IoBufMut for AlignedBuf {
    fn as_uninit(&mut self) -> &mut [MaybeUninit<u8>] {
        self.0.as_uninit()
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
