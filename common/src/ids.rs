//! Identifiers: container id (CID), its 16-bit prefix, content ids and chunk ids.

use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::fmt;

/// Number of CID prefixes (first 16 bits of the CID).
pub const PREFIX_COUNT: usize = 65_536;

/// CID = SHA-256(account ‖ 0x00 ‖ container) in 64 upper-case hex digits.
pub fn container_id(account: &str, container: &str) -> String {
    let mut h = Sha256::new();
    h.update(account.as_bytes());
    h.update([0u8]);
    h.update(container.as_bytes());
    hex::encode_upper(h.finalize())
}

/// The 16-bit prefix of a CID (its first 4 hex digits).
pub fn cid_prefix(cid: &str) -> Result<u16> {
    let invalid = || Error::InvalidId {
        kind: "container",
        value: cid.to_string(),
        expected: "64 hex digits",
    };
    if cid.len() != 64 || !cid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    u16::from_str_radix(&cid[..4], 16).map_err(|_| invalid())
}

/// The 16-bit prefix under which a name that is not a container (an account, an
/// access key) is filed: the first 16 bits of SHA-256(name).
pub fn name_prefix(name: &str) -> u16 {
    let d = Sha256::digest(name.as_bytes());
    u16::from_be_bytes([d[0], d[1]])
}

/// 128 random bits identifying one content (one version of an object).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId(pub [u8; 16]);

impl ContentId {
    /// A fresh random content id.
    pub fn random() -> Self {
        ContentId(rand::random())
    }

    /// From raw bytes (as stored in meta2).
    pub fn from_slice(b: &[u8]) -> Result<Self> {
        let arr: [u8; 16] = b.try_into().map_err(|_| Error::InvalidId {
            kind: "content",
            value: hex::encode(b),
            expected: "16 bytes",
        })?;
        Ok(ContentId(arr))
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.0))
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

/// 256 random bits naming one chunk file; 64 upper-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// A fresh random chunk id.
    pub fn random() -> Self {
        ChunkId(rand::random())
    }

    /// Parses 64 hex digits (either case).
    pub fn parse(s: &str) -> Result<Self> {
        let invalid = || Error::InvalidId {
            kind: "chunk",
            value: s.chars().take(80).collect(),
            expected: "64 hex digits",
        };
        if s.len() != 64 {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| invalid())?;
        Ok(ChunkId(out))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.0))
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_is_sha256_of_account_zero_container() {
        // sha256("acct\0bucket") computed independently.
        let cid = container_id("acct", "bucket");
        assert_eq!(cid.len(), 64);
        assert_eq!(cid, cid.to_uppercase());
        assert_ne!(cid, container_id("acc", "tbucket"));
        let prefix = cid_prefix(&cid).unwrap();
        assert_eq!(format!("{prefix:04X}"), cid[..4]);
    }

    #[test]
    fn cid_known_vector() {
        // printf 'a\0b' | sha256sum
        assert_eq!(
            container_id("a", "b"),
            "59B271AE1BBCB1D31D41929817F4B16FB439EB4F31520B5AD1D5CE98920A7138"
        );
        assert_eq!(cid_prefix(&container_id("a", "b")).unwrap(), 0x59B2);
    }

    #[test]
    fn prefix_rejects_bad_cid() {
        assert!(cid_prefix("XYZ").is_err());
        assert!(cid_prefix(&"G".repeat(64)).is_err());
        assert_eq!(
            cid_prefix(&format!("FFFF{}", "0".repeat(60))).unwrap(),
            0xFFFF
        );
        assert_eq!(cid_prefix(&format!("0001{}", "0".repeat(60))).unwrap(), 1);
    }

    #[test]
    fn chunk_id_round_trip() {
        let id = ChunkId::random();
        let s = id.to_string();
        assert_eq!(ChunkId::parse(&s).unwrap(), id);
        assert_eq!(ChunkId::parse(&s.to_lowercase()).unwrap(), id);
        assert!(ChunkId::parse("abc").is_err());
        assert!(ChunkId::parse(&"Z".repeat(64)).is_err());
    }
}
