//! Stripe geometry and Reed-Solomon coding of one stripe.
//!
//! A metachunk of `D` data bytes is cut in stripes of `stripe_bytes` (the last one may
//! be shorter). Stripe `i` of length `L` is split into `k` data shards of
//! `shard_len(L)` bytes (zero padded) and `m` parity shards of the same length. Chunk
//! `j` of the metachunk is the concatenation of shard `j` of every stripe, so stripe
//! `i` starts in every chunk at `i * shard_len(stripe_bytes)`.

use crate::{Error, Result};
use bytes::Bytes;
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

/// Shards are padded to a multiple of this (the codec needs an even size; 64 keeps
/// SIMD loads aligned).
pub const SHARD_ALIGN: usize = 64;

/// Stripes gathered from the body and parity shards start at a multiple of this (a
/// disk block), so that a local `O_DIRECT` write takes a full shard from its own
/// buffer instead of copying it into an aligned one (`crate::local_write`).
pub(crate) const BUFFER_ALIGN: usize = 4096;

/// `data` copied into a fresh buffer aligned to [`BUFFER_ALIGN`].
pub(crate) fn aligned_copy(data: &[u8]) -> Result<Bytes> {
    let mut buf = oxio_common::aligned::AlignedBuf::with_capacity(data.len(), BUFFER_ALIGN)
        .map_err(|e| Error::Internal(format!("aligned buffer: {e}")))?;
    buf.push(data);
    Ok(Bytes::from_owner(buf))
}

/// Geometry of an erasure-coded metachunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Data shards.
    pub k: usize,
    /// Parity shards.
    pub m: usize,
    /// Data bytes per full stripe.
    pub stripe_bytes: usize,
}

impl Geometry {
    /// Shard length for a stripe of `len` data bytes.
    pub fn shard_len(&self, len: usize) -> usize {
        let per = len.div_ceil(self.k);
        per.div_ceil(SHARD_ALIGN).max(1) * SHARD_ALIGN
    }

    /// Number of stripes in a metachunk of `size` bytes.
    pub fn stripes(&self, size: u64) -> u64 {
        size.div_ceil(self.stripe_bytes as u64)
    }

    /// Data length of stripe `i` of a metachunk of `size` bytes.
    pub fn stripe_len(&self, size: u64, i: u64) -> usize {
        let start = i * self.stripe_bytes as u64;
        (size.saturating_sub(start)).min(self.stripe_bytes as u64) as usize
    }

    /// Offset of stripe `i` inside every chunk.
    pub fn chunk_offset(&self, i: u64) -> u64 {
        i * self.shard_len(self.stripe_bytes) as u64
    }

    /// Bytes of each chunk of a metachunk of `size` bytes.
    pub fn chunk_len(&self, size: u64) -> u64 {
        let n = self.stripes(size);
        if n == 0 {
            return 0;
        }
        self.chunk_offset(n - 1) + self.shard_len(self.stripe_len(size, n - 1)) as u64
    }
}

/// Encodes stripes; reuses its codec between calls.
pub struct StripeEncoder {
    geo: Geometry,
    enc: Option<(ReedSolomonEncoder, usize)>,
}

impl StripeEncoder {
    /// An encoder for one geometry.
    pub fn new(geo: Geometry) -> Self {
        StripeEncoder { geo, enc: None }
    }

    /// The geometry it encodes for.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Splits `data` (one stripe, at most `stripe_bytes`) into `k + m` shards. Data
    /// shards that need no padding are slices of `data`, not copies.
    pub fn encode(&mut self, data: &Bytes) -> Result<Vec<Bytes>> {
        let Geometry { k, m, .. } = self.geo;
        let sl = self.geo.shard_len(data.len());
        let mut shards: Vec<Bytes> = (0..k)
            .map(|j| {
                let start = (j * sl).min(data.len());
                let end = ((j + 1) * sl).min(data.len());
                if end - start == sl {
                    return data.slice(start..end);
                }
                let mut s = Vec::with_capacity(sl);
                s.extend_from_slice(&data[start..end]);
                s.resize(sl, 0);
                Bytes::from(s)
            })
            .collect();
        if m == 0 {
            return Ok(shards);
        }
        let codec_err =
            |e: reed_solomon_simd::Error| Error::Internal(format!("erasure coding: {e}"));
        let enc = match &mut self.enc {
            Some((enc, len)) if *len == sl => enc,
            slot => {
                match slot {
                    Some((enc, len)) => {
                        enc.reset(k, m, sl).map_err(codec_err)?;
                        *len = sl;
                    }
                    None => {
                        *slot = Some((ReedSolomonEncoder::new(k, m, sl).map_err(codec_err)?, sl))
                    }
                }
                &mut slot
                    .as_mut()
                    .ok_or_else(|| Error::Internal("encoder missing".into()))?
                    .0
            }
        };
        for s in &shards {
            enc.add_original_shard(s).map_err(codec_err)?;
        }
        let result = enc.encode().map_err(codec_err)?;
        let parity = result
            .recovery_iter()
            .map(aligned_copy)
            .collect::<Result<Vec<Bytes>>>()?;
        drop(result);
        shards.extend(parity);
        Ok(shards)
    }
}

/// Rebuilds the data shards of a stripe from any `k` of its `k + m` shards.
/// `shards[j]` is shard `j` when it was read, None when lost. Returns the `k` data
/// shards in order.
pub fn reconstruct(
    geo: Geometry,
    shard_len: usize,
    shards: &[Option<Vec<u8>>],
) -> Result<Vec<Vec<u8>>> {
    let Geometry { k, m, .. } = geo;
    let present = shards.iter().filter(|s| s.is_some()).count();
    if present < k {
        return Err(Error::Quorum {
            ok: present,
            needed: k,
            detail: "too few fragments to decode a stripe".into(),
        });
    }
    if shards[..k].iter().all(Option::is_some) {
        return Ok(shards[..k].iter().flatten().cloned().collect());
    }
    let codec_err = |e: reed_solomon_simd::Error| Error::Internal(format!("erasure decoding: {e}"));
    let mut dec = ReedSolomonDecoder::new(k, m, shard_len).map_err(codec_err)?;
    for (j, s) in shards.iter().enumerate() {
        if let Some(s) = s {
            if j < k {
                dec.add_original_shard(j, s).map_err(codec_err)?;
            } else {
                dec.add_recovery_shard(j - k, s).map_err(codec_err)?;
            }
        }
    }
    let result = dec.decode().map_err(codec_err)?;
    let mut restored: Vec<Option<Vec<u8>>> = vec![None; k];
    for (idx, data) in result.restored_original_iter() {
        if idx < k {
            restored[idx] = Some(data.to_vec());
        }
    }
    drop(result);
    (0..k)
        .map(|j| match &shards[j] {
            Some(s) => Ok(s.clone()),
            None => restored[j]
                .take()
                .ok_or_else(|| Error::Internal(format!("shard {j} not restored"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo() -> Geometry {
        Geometry {
            k: 4,
            m: 2,
            stripe_bytes: 1 << 20,
        }
    }

    #[test]
    fn geometry_adds_up() {
        let g = geo();
        assert_eq!(g.shard_len(1 << 20), 256 * 1024);
        assert_eq!(g.shard_len(1), 64);
        assert_eq!(g.stripes(0), 0);
        assert_eq!(g.stripes((1 << 20) + 1), 2);
        assert_eq!(g.stripe_len((1 << 20) + 1, 1), 1);
        assert_eq!(g.chunk_len((1 << 20) + 1), 256 * 1024 + 64);
        assert_eq!(g.chunk_len(3 << 20), 3 * 256 * 1024);
    }

    #[test]
    fn round_trip_with_any_two_shards_lost() {
        let g = geo();
        let data: Bytes = (0..700_001u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut enc = StripeEncoder::new(g);
        let shards: Vec<Vec<u8>> = enc
            .encode(&data)
            .unwrap()
            .iter()
            .map(|s| s.to_vec())
            .collect();
        assert_eq!(shards.len(), 6);
        let sl = g.shard_len(data.len());
        for a in 0..6 {
            for b in (a + 1)..6 {
                let mut have: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
                have[a] = None;
                have[b] = None;
                let out = reconstruct(g, sl, &have).unwrap();
                let joined: Vec<u8> = out.concat();
                assert_eq!(&joined[..data.len()], &data[..], "lost {a} and {b}");
            }
        }
        let mut three_lost: Vec<Option<Vec<u8>>> = shards.into_iter().map(Some).collect();
        three_lost[0] = None;
        three_lost[1] = None;
        three_lost[5] = None;
        assert!(matches!(
            reconstruct(g, sl, &three_lost),
            Err(Error::Quorum { .. })
        ));
    }

    #[test]
    fn encoder_reuse_across_sizes() {
        let g = geo();
        let mut enc = StripeEncoder::new(g);
        for len in [1usize << 20, 1000, 1 << 20, 5] {
            let data = Bytes::from(vec![7u8; len]);
            let shards = enc.encode(&data).unwrap();
            let sl = g.shard_len(len);
            assert!(shards.iter().all(|s| s.len() == sl));
            let mut have: Vec<Option<Vec<u8>>> = shards.iter().map(|s| Some(s.to_vec())).collect();
            have[2] = None;
            let out = reconstruct(g, sl, &have).unwrap().concat();
            assert_eq!(&out[..len], &data[..]);
        }
    }

    #[test]
    fn full_data_shards_are_slices_of_the_stripe() {
        let g = geo();
        let mut enc = StripeEncoder::new(g);
        let data = Bytes::from(vec![3u8; 1 << 20]);
        let shards = enc.encode(&data).unwrap();
        for (j, s) in shards[..4].iter().enumerate() {
            assert_eq!(
                s.as_ptr(),
                data[j * (256 << 10)..].as_ptr(),
                "shard {j} copied"
            );
        }
        for (j, s) in shards[4..].iter().enumerate() {
            assert_eq!(
                s.as_ptr() as usize % BUFFER_ALIGN,
                0,
                "parity {j} unaligned"
            );
        }
        // A short stripe's last data shard is padded, so it is a copy.
        let short = Bytes::from(vec![3u8; 1000]);
        let shards = enc.encode(&short).unwrap();
        assert_eq!(shards[0].as_ptr(), short.as_ptr());
        assert_eq!(shards[3].len(), g.shard_len(1000));
        assert_eq!(&shards[3][..232], &short[768..]);
        assert!(shards[3][232..].iter().all(|&b| b == 0), "padding is zeros");
    }
}
