//! The data the benchmark writes: random bytes generated once and shared, so the
//! client spends no CPU making data. Object `i` is a window of a shared pool chosen
//! from `i`, so its content can be checked on read without storing anything.

use bytes::Bytes;
use rand::{RngCore, SeedableRng};

/// Extra random bytes past one object, so objects do not all hold the same bytes.
const WINDOW_BYTES: usize = 64 * 1024;
/// Offsets are multiples of this.
const OFFSET_STEP: usize = 64;

/// Shared random bytes and the object size.
#[derive(Clone, Debug)]
pub struct Payload {
    pool: Bytes,
    size: usize,
}

/// A cheap 64-bit mix of `x` (splitmix64's finaliser), used to derive per-object
/// choices from an index without shared random state.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Payload {
    /// Random bytes for objects of `size` bytes, from `seed`.
    pub fn new(size: usize, seed: u64) -> Self {
        let mut pool = vec![0u8; size + WINDOW_BYTES];
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut pool);
        Payload {
            pool: Bytes::from(pool),
            size,
        }
    }

    /// Object size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    fn offset(&self, index: u64) -> usize {
        let steps = (WINDOW_BYTES / OFFSET_STEP) as u64 + 1;
        (mix64(index) % steps) as usize * OFFSET_STEP
    }

    /// The bytes of object `index` (a shared slice: no copy).
    pub fn body(&self, index: u64) -> Bytes {
        let off = self.offset(index);
        self.pool.slice(off..off + self.size)
    }

    /// The bytes object `index` must hold, to check a read against.
    pub fn expected(&self, index: u64) -> &[u8] {
        let off = self.offset(index);
        &self.pool[off..off + self.size]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_stable_shared_and_varied() {
        let p = Payload::new(4096, 7);
        assert_eq!(p.body(3).len(), 4096);
        assert_eq!(&p.body(3)[..], p.expected(3));
        let distinct = (0..64u64)
            .map(|i| p.body(i))
            .collect::<std::collections::HashSet<_>>()
            .len();
        assert!(distinct > 32, "objects share too few windows: {distinct}");
        // Same seed, same bytes: a later run can check objects written by an earlier one.
        assert_eq!(Payload::new(4096, 7).body(9), p.body(9));
        assert_eq!(Payload::new(0, 1).body(5).len(), 0);
    }
}
