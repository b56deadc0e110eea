//! Heap buffers whose start is aligned to a power of two, as `O_DIRECT` transfers need
//! (the rawx's direct writes and reads, a local writer's blocks).

use std::alloc::Layout;
use std::io;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

/// A fixed-capacity heap buffer whose start, and capacity, are multiples of its
/// alignment; the first [`AlignedBuf::len`] bytes are initialised.
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
    /// An empty buffer aligned to `align` (a power of two) with room for `capacity`
    /// bytes, rounded up to a multiple of `align` (at least one).
    pub fn with_capacity(capacity: usize, align: usize) -> io::Result<Self> {
        let invalid = |e| io::Error::new(io::ErrorKind::InvalidInput, e);
        let cap = capacity
            .max(1)
            .checked_next_multiple_of(align.max(1))
            .ok_or_else(|| invalid("aligned buffer too large".to_string()))?;
        let layout = Layout::from_size_align(cap, align).map_err(|e| invalid(e.to_string()))?;
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
        // SAFETY: `len + n <= capacity`, and the regions cannot overlap (`src` is not
        // inside our unique allocation's uninitialised tail).
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(self.len), n);
        }
        self.len += n;
        n
    }

    /// Appends zeros up to the next multiple of the alignment (the capacity is one).
    pub fn pad_to_align(&mut self) {
        let target = self
            .len
            .next_multiple_of(self.layout.align())
            .min(self.capacity());
        // SAFETY: `target <= capacity`.
        unsafe {
            std::ptr::write_bytes(self.ptr.as_ptr().add(self.len), 0, target - self.len);
        }
        self.len = target;
    }

    /// The whole allocation, initialised or not (for reads into it).
    pub fn as_uninit(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: the allocation is `capacity` bytes and ours alone.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast(), self.capacity()) }
    }

    /// Declares the first `len` bytes initialised.
    ///
    /// # Safety
    /// `len <= capacity`, and those bytes were written.
    pub unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.capacity());
        self.len = len;
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialised.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .field("align", &self.layout.align())
            .finish()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `with_capacity` with this very layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_start_and_padding_follow_the_alignment() {
        for align in [512, 4096] {
            let mut b = AlignedBuf::with_capacity(align + 1, align).unwrap();
            assert_eq!(b.capacity(), 2 * align);
            assert_eq!(b.as_ref().as_ptr() as usize % align, 0);
            assert_eq!(b.push(b"abc"), 3);
            b.pad_to_align();
            assert_eq!(b.len(), align);
            assert_eq!(&b.as_ref()[..4], b"abc\0");
            assert_eq!(b.push(&vec![7u8; 3 * align]), align, "only what fits");
            assert_eq!(b.len(), b.capacity());
        }
        assert!(
            AlignedBuf::with_capacity(10, 3).is_err(),
            "not a power of two"
        );
    }
}
