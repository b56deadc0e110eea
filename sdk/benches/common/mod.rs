//! What the sdk's benches share.

/// Bytes of one stripe.
pub const STRIPE_BYTES: usize = 1 << 20;

/// One stripe of deterministic bytes (xorshift from `seed`), not compressible in any
/// way that matters to a codec or a hash.
pub fn stripe(seed: u64) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed;
    (0..STRIPE_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
