//! The checksums of a chunk's data as it streams in: one crc32c per segment of
//! `segment_bytes` (the chunk file's checksum table, u32 little-endian each, the last
//! segment possibly short) and the crc32c of the whole data. A rawx computes them as
//! a PUT's body arrives; a writer on the rawx's host that writes the chunk file itself
//! (a local write, [`crate::local_read`]) computes them the same way and hands them to
//! the rawx with the commit.

/// Computes per-segment and whole-data crc32c while data streams in (two passes over
/// each piece, while it is in the cache: combining the segments' crcs instead costs
/// more than that, about 30 µs a segment with `crc32c_combine`).
#[derive(Debug)]
pub struct SegmentHasher {
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
        SegmentHasher {
            segment_bytes: u64::from(segment_bytes.max(1)),
            in_segment: 0,
            current: 0,
            whole: 0,
            size: 0,
            table: Vec::new(),
        }
    }

    /// Feeds the next data bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.whole = crc32c::crc32c_append(self.whole, data);
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

    /// Closes the current segment: its crc goes into the table.
    fn end_segment(&mut self) {
        self.table.extend_from_slice(&self.current.to_le_bytes());
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
    fn empty_data_has_empty_table() {
        let (table, whole) = SegmentHasher::new(4096).finish();
        assert!(table.is_empty());
        assert_eq!(whole, 0);
    }
}
