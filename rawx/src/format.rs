//! On-disk format of a chunk file, version 1.
//!
//! ```text
//! offset 0      header, exactly 4096 bytes:
//!                 [0..8)    magic "OXIOCHNK"
//!                 [8..10)   format version, u16 LE (= 1)
//!                 [10..14)  length L of the metadata JSON, u32 LE
//!                 [14..18)  crc32c of the metadata JSON, u32 LE
//!                 [18..18+L) metadata JSON ([`ChunkMeta`]), then zero padding
//! offset 4096   data, `size` bytes
//! offset 4096+size   checksum table: one crc32c (u32 LE) per segment of
//!                    `segment_bytes` data bytes (the last one may be short)
//! ```
//!
//! The header is written last (a positioned write at offset 0 once data and table are
//! on disk), then the file is fsynced and renamed from `<ID>.pending` to `<ID>`. The
//! header is validated on every open: magic, version, JSON checksum, the chunk id against
//! the file name, and the sizes against the file length. A file failing any of these
//! checks is corrupt. Data starts on a 4096 boundary so O_DIRECT reads stay possible.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Size of the fixed header; data starts at this offset.
pub const HEADER_BYTES: u64 = 4096;
/// First bytes of every chunk file.
pub const MAGIC: &[u8; 8] = b"OXIOCHNK";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Name of the only checksum algorithm of version 1.
pub const CHECKSUM_ALGO: &str = "crc32c";
/// Bytes before the metadata JSON in the header.
const PREAMBLE_BYTES: usize = 18;
/// Largest metadata JSON that fits in the header.
pub const MAX_META_JSON_BYTES: usize = HEADER_BYTES as usize - PREAMBLE_BYTES;

/// Metadata stored in a chunk file header and returned as `x-oxio-chunk-*` headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkMeta {
    /// Chunk id, 64 upper-case hex.
    pub chunk_id: String,
    /// Container id (CID) the chunk belongs to.
    pub container: String,
    /// Content id, hex.
    pub content: String,
    /// Position, "N" or "N.M".
    pub position: String,
    /// Storage policy name, e.g. "EC42".
    pub policy: String,
    /// Data bytes.
    pub size: u64,
    /// Data bytes per checksum segment.
    pub segment_bytes: u32,
    /// Checksum algorithm of the table and of `crc`.
    pub checksum: String,
    /// crc32c of all data bytes.
    pub crc: u32,
    /// Offset of the checksum table in the file.
    pub table_offset: u64,
    /// Number of entries in the checksum table.
    pub table_count: u64,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
}

/// Attributes a client gives with a PUT (the `x-oxio-chunk-*` request headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkAttrs {
    /// Container id.
    pub container: String,
    /// Content id.
    pub content: String,
    /// Position ("N" or "N.M").
    pub position: String,
    /// Policy name.
    pub policy: String,
}

/// Longest accepted attribute value.
pub const MAX_ATTR_BYTES: usize = 256;

impl ChunkAttrs {
    /// Checks each value: bounded length, visible ASCII, and the position syntax.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("container", &self.container),
            ("content", &self.content),
            ("position", &self.position),
            ("policy", &self.policy),
        ] {
            if v.len() > MAX_ATTR_BYTES {
                return Err(Error::BadRequest(format!("chunk {name} too long")));
            }
            if !v.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::BadRequest(format!(
                    "chunk {name} has invalid characters"
                )));
            }
        }
        if !self.position.is_empty() && !valid_position(&self.position) {
            return Err(Error::BadRequest(format!(
                "chunk position {:?} is not N or N.M",
                self.position
            )));
        }
        Ok(())
    }
}

fn valid_position(p: &str) -> bool {
    let mut parts = p.split('.');
    let digits = |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), None, None) => digits(a),
        (Some(a), Some(b), None) => digits(a) && digits(b),
        _ => false,
    }
}

/// Number of checksum segments for `size` data bytes.
pub fn segment_count(size: u64, segment_bytes: u32) -> u64 {
    size.div_ceil(u64::from(segment_bytes))
}

/// Length of a chunk file holding `size` data bytes.
pub fn file_len(size: u64, segment_bytes: u32) -> u64 {
    HEADER_BYTES + size + 4 * segment_count(size, segment_bytes)
}

/// Parses a chunk id (64 hex digits, any case) and returns it upper-case.
pub fn parse_chunk_id(s: &str) -> Result<String> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadRequest("chunk id must be 64 hex digits".into()));
    }
    Ok(s.to_ascii_uppercase())
}

impl ChunkMeta {
    /// `crc32c:<8 lower hex>` of the whole data.
    pub fn hash_string(&self) -> String {
        format!("crc32c:{:08x}", self.crc)
    }

    /// Length of the whole file this header describes.
    pub fn file_len(&self) -> u64 {
        self.table_offset + 4 * self.table_count
    }

    /// Index of the segment holding data byte `offset`.
    pub fn segment_of(&self, offset: u64) -> u64 {
        offset / u64::from(self.segment_bytes)
    }

    /// Data byte range `[start, end)` of segment `index`.
    pub fn segment_range(&self, index: u64) -> (u64, u64) {
        let seg = u64::from(self.segment_bytes);
        let start = index * seg;
        (start, (start + seg).min(self.size))
    }

    /// Encodes the 4096-byte header.
    pub fn encode_header(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::BadRequest(format!("chunk metadata: {e}")))?;
        if json.len() > MAX_META_JSON_BYTES {
            return Err(Error::BadRequest(
                "chunk metadata does not fit the header".into(),
            ));
        }
        let mut out = vec![0u8; HEADER_BYTES as usize];
        out[0..8].copy_from_slice(MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[10..14].copy_from_slice(&(json.len() as u32).to_le_bytes());
        out[14..18].copy_from_slice(&crc32c::crc32c(&json).to_le_bytes());
        out[PREAMBLE_BYTES..PREAMBLE_BYTES + json.len()].copy_from_slice(&json);
        Ok(out)
    }

    /// Decodes and validates a header read from the file of chunk `expected_id`
    /// whose length is `file_len`.
    pub fn decode_header(buf: &[u8], file_len: u64, expected_id: &str) -> Result<ChunkMeta> {
        let corrupt = |reason: String| Error::CorruptHeader {
            chunk: expected_id.to_string(),
            reason,
        };
        if buf.len() < HEADER_BYTES as usize || file_len < HEADER_BYTES {
            return Err(corrupt(format!("file too short ({file_len} bytes)")));
        }
        if &buf[0..8] != MAGIC {
            return Err(corrupt("bad magic".into()));
        }
        let version = u16::from_le_bytes([buf[8], buf[9]]);
        if version != FORMAT_VERSION {
            return Err(corrupt(format!("unknown format version {version}")));
        }
        let len = u32::from_le_bytes([buf[10], buf[11], buf[12], buf[13]]) as usize;
        if len == 0 || len > MAX_META_JSON_BYTES {
            return Err(corrupt(format!("metadata length {len} out of range")));
        }
        let stored_crc = u32::from_le_bytes([buf[14], buf[15], buf[16], buf[17]]);
        let json = &buf[PREAMBLE_BYTES..PREAMBLE_BYTES + len];
        if crc32c::crc32c(json) != stored_crc {
            return Err(corrupt("metadata checksum mismatch".into()));
        }
        let meta: ChunkMeta =
            serde_json::from_slice(json).map_err(|e| corrupt(format!("metadata: {e}")))?;
        meta.check_consistent(file_len, expected_id)
            .map_err(corrupt)?;
        Ok(meta)
    }

    fn check_consistent(
        &self,
        file_len: u64,
        expected_id: &str,
    ) -> std::result::Result<(), String> {
        if self.chunk_id != expected_id {
            return Err(format!("header names chunk {}", self.chunk_id));
        }
        if self.checksum != CHECKSUM_ALGO {
            return Err(format!("unknown checksum {:?}", self.checksum));
        }
        if self.segment_bytes == 0 {
            return Err("segment size 0".into());
        }
        if self.table_count != segment_count(self.size, self.segment_bytes) {
            return Err("checksum table count does not match size".into());
        }
        if self.table_offset != HEADER_BYTES + self.size {
            return Err("checksum table offset does not match size".into());
        }
        if self.file_len() != file_len {
            return Err(format!(
                "file length {file_len} differs from expected {}",
                self.file_len()
            ));
        }
        Ok(())
    }
}

pub use oxio_common::segments::SegmentHasher;

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(size: u64, seg: u32) -> ChunkMeta {
        ChunkMeta {
            chunk_id: "A".repeat(64),
            container: "C".repeat(64),
            content: "0123".into(),
            position: "1.2".into(),
            policy: "EC42".into(),
            size,
            segment_bytes: seg,
            checksum: CHECKSUM_ALGO.into(),
            crc: 7,
            table_offset: HEADER_BYTES + size,
            table_count: segment_count(size, seg),
            created_ms: 1,
        }
    }

    #[test]
    fn header_round_trip() {
        let m = meta(100_000, 4096);
        let h = m.encode_header().unwrap();
        assert_eq!(h.len(), 4096);
        let back = ChunkMeta::decode_header(&h, m.file_len(), &m.chunk_id).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn header_rejects_garbage_and_mismatch() {
        let m = meta(10, 4096);
        let h = m.encode_header().unwrap();
        // wrong file length (truncated file)
        assert!(matches!(
            ChunkMeta::decode_header(&h, m.file_len() - 1, &m.chunk_id),
            Err(Error::CorruptHeader { .. })
        ));
        // wrong chunk id
        assert!(ChunkMeta::decode_header(&h, m.file_len(), &"B".repeat(64)).is_err());
        // flipped byte inside the JSON
        let mut bad = h.clone();
        bad[30] ^= 0x01;
        assert!(ChunkMeta::decode_header(&bad, m.file_len(), &m.chunk_id).is_err());
        // bad magic, bad version
        let mut bad = h.clone();
        bad[0] = b'X';
        assert!(ChunkMeta::decode_header(&bad, m.file_len(), &m.chunk_id).is_err());
        let mut bad = h;
        bad[8] = 9;
        assert!(ChunkMeta::decode_header(&bad, m.file_len(), &m.chunk_id).is_err());
        // all zeros
        assert!(ChunkMeta::decode_header(&[0u8; 4096], 5000, &m.chunk_id).is_err());
        // short buffer
        assert!(ChunkMeta::decode_header(&[0u8; 10], 5000, &m.chunk_id).is_err());
    }

    #[test]
    fn empty_data_has_empty_table() {
        let (table, whole) = SegmentHasher::new(4096).finish();
        assert!(table.is_empty());
        assert_eq!(whole, 0);
        assert_eq!(file_len(0, 4096), HEADER_BYTES);
    }

    #[test]
    fn attrs_and_ids() {
        assert!(parse_chunk_id(&"ab".repeat(32))
            .unwrap()
            .chars()
            .all(|c| !c.is_ascii_lowercase()));
        assert!(parse_chunk_id("xyz").is_err());
        assert!(parse_chunk_id(&"g".repeat(64)).is_err());
        let mut a = ChunkAttrs {
            position: "3.1".into(),
            ..Default::default()
        };
        a.validate().unwrap();
        a.position = "3".into();
        a.validate().unwrap();
        a.position = "3.".into();
        assert!(a.validate().is_err());
        a.position = "1".into();
        a.policy = "EC 42".into();
        assert!(a.validate().is_err());
    }
}
