//! The checksums of a chunk's data as it streams in: one crc32c per segment of
//! `segment_bytes` (the chunk file's checksum table, u32 little-endian each, the last
//! segment possibly short) and the crc32c of the whole data. A rawx computes them as
//! a PUT's body arrives; a writer on the rawx's host that writes the chunk file itself
//! (a local write, [`crate::local_read`]) computes them the same way and hands them to
//! the rawx with the commit.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Computes per-segment and whole-data crc32c while data streams in. Each byte is read
/// once: the whole-data crc is extended by every finished segment's crc with the
/// "append a segment" operator of the segment length, precomputed once per length
/// ([`Shift`]), since `crc32c_combine` itself takes about 30 µs a call.
#[derive(Debug)]
pub struct SegmentHasher {
    /// Appends a whole segment's crc to the whole-data crc.
    shift: Shift,
    segment_bytes: u64,
    in_segment: u64,
    current: u32,
    whole: u32,
    size: u64,
    table: Vec<u8>,
}

impl SegmentHasher {
    /// A hasher for segments of `segment_bytes`.
    pub fn new(segment_bytes: u32) -> Self {
        let segment_bytes = u64::from(segment_bytes.max(1));
        SegmentHasher {
            shift: Shift::of(segment_bytes),
            segment_bytes,
            in_segment: 0,
            current: 0,
            whole: 0,
            size: 0,
            table: Vec::new(),
        }
    }

    /// Feeds the next data bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        while !data.is_empty() {
            let room = (self.segment_bytes - self.in_segment) as usize;
            let take = room.min(data.len());
            self.current = crc32c::crc32c_append(self.current, &data[..take]);
            self.in_segment += take as u64;
            data = &data[take..];
            if self.in_segment == self.segment_bytes {
                self.end_segment();
            }
        }
    }

    /// Closes the current segment: its crc goes into the table and is appended to the
    /// whole-data crc.
    fn end_segment(&mut self) {
        self.table.extend_from_slice(&self.current.to_le_bytes());
        self.whole = if self.in_segment == self.segment_bytes {
            self.shift.apply(self.whole) ^ self.current
        } else {
            // The last, short segment: once per chunk.
            crc32c::crc32c_combine(self.whole, self.current, self.in_segment as usize)
        };
        self.current = 0;
        self.in_segment = 0;
    }

    /// Data bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Ends the stream: the checksum table (u32 LE per segment) and the whole crc.
    pub fn finish(mut self) -> (Vec<u8>, u32) {
        if self.in_segment > 0 {
            self.end_segment();
        }
        (self.table, self.whole)
    }
}

/// The linear map `crc ↦ crc32c_combine(crc, 0, len)` for one length `len`, as the
/// images of the 32 bits: then `crc32c(A ‖ B) = shift(crc32c(A)) ^ crc32c(B)` for
/// any `B` of `len` bytes, in 32 conditional xors.
#[derive(Debug, Clone, Copy)]
struct Shift([u32; 32]);

impl Shift {
    /// The map for `len` (computed once per length in the process).
    fn of(len: u64) -> Shift {
        static KNOWN: OnceLock<Mutex<HashMap<u64, Shift>>> = OnceLock::new();
        let known = KNOWN.get_or_init(|| Mutex::new(HashMap::new()));
        let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
        *known.entry(len).or_insert_with(|| {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            Shift(std::array::from_fn(|i| {
                crc32c::crc32c_combine(1 << i, 0, len)
            }))
        })
    }

    fn apply(&self, crc: u32) -> u32 {
        let mut out = 0;
        let mut rest = crc;
        for image in &self.0 {
            if rest == 0 {
                break;
            }
            if rest & 1 == 1 {
                out ^= image;
            }
            rest >>= 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hasher_matches_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for piece_len in [1, 777, 4096, 10_000] {
            let mut h = SegmentHasher::new(4096);
            for piece in data.chunks(piece_len) {
                h.update(piece);
            }
            assert_eq!(h.size(), 10_000);
            let (table, whole) = h.finish();
            assert_eq!(whole, crc32c::crc32c(&data), "pieces of {piece_len}");
            assert_eq!(table.len(), 3 * 4);
            for (i, seg) in data.chunks(4096).enumerate() {
                let got = u32::from_le_bytes(table[i * 4..i * 4 + 4].try_into().unwrap());
                assert_eq!(got, crc32c::crc32c(seg));
            }
        }
    }

    #[test]
    fn whole_crc_matches_for_every_shape() {
        // Segment sizes, data lengths around them (empty, short, exact, one past,
        // many), pieces cut across segments.
        let data: Vec<u8> = (0..300_001u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        for seg in [1u32, 4096, 65_536, 100_000] {
            for len in [0usize, 1, 4095, 4096, 4097, 65_536, 65_537, 300_001] {
                let mut h = SegmentHasher::new(seg);
                for piece in data[..len].chunks(12_345) {
                    h.update(piece);
                }
                let (table, whole) = h.finish();
                assert_eq!(
                    whole,
                    crc32c::crc32c(&data[..len]),
                    "segments of {seg}, {len} bytes"
                );
                assert_eq!(table.len(), 4 * len.div_ceil(seg as usize));
            }
        }
    }

    #[test]
    fn empty_data_has_empty_table() {
        let (table, whole) = SegmentHasher::new(4096).finish();
        assert!(table.is_empty());
        assert_eq!(whole, 0);
    }
}
