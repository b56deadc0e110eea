//! Storage policies: how the bytes of a metachunk are made redundant.

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A named storage policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoragePolicy {
    /// `n` full copies on `n` distinct rawx (`SINGLE`, `TWOCOPIES`, `THREECOPIES`).
    Replicated {
        /// Number of copies.
        copies: u8,
    },
    /// Reed-Solomon erasure coding: `k` data and `m` parity chunks (`EC42`, `EC84`).
    ErasureCoded {
        /// Data chunks.
        k: u8,
        /// Parity chunks.
        m: u8,
    },
}

impl StoragePolicy {
    /// The default policy for chunked objects.
    pub const DEFAULT: StoragePolicy = StoragePolicy::ErasureCoded { k: 4, m: 2 };

    /// How many chunks (and distinct rawx) one metachunk takes.
    pub fn width(&self) -> usize {
        match *self {
            StoragePolicy::Replicated { copies } => copies as usize,
            StoragePolicy::ErasureCoded { k, m } => (k + m) as usize,
        }
    }

    /// How many chunks must be durable for a write to succeed: k+1 for EC (k when
    /// m = 0), a majority of the copies otherwise.
    pub fn write_quorum(&self) -> usize {
        match *self {
            StoragePolicy::Replicated { copies } => copies as usize / 2 + 1,
            StoragePolicy::ErasureCoded { k, m } => (k as usize + 1).min((k + m) as usize),
        }
    }

    /// How many chunks a read needs.
    pub fn read_quorum(&self) -> usize {
        match *self {
            StoragePolicy::Replicated { .. } => 1,
            StoragePolicy::ErasureCoded { k, .. } => k as usize,
        }
    }
}

impl FromStr for StoragePolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidPolicy(s.to_string());
        match s {
            "SINGLE" => return Ok(StoragePolicy::Replicated { copies: 1 }),
            "TWOCOPIES" => return Ok(StoragePolicy::Replicated { copies: 2 }),
            "THREECOPIES" => return Ok(StoragePolicy::Replicated { copies: 3 }),
            _ => {}
        }
        let digits = s.strip_prefix("EC").ok_or_else(bad)?;
        // EC<k><m>: single digits each, or k of two digits when the name is longer
        // (EC123 = 12+3, EC84 = 8+4).
        if digits.len() < 2 || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let (k, m) = match digits.len() {
            2 => (&digits[..1], &digits[1..]),
            3 => (&digits[..2], &digits[2..]),
            _ => (&digits[..2], &digits[2..]),
        };
        let k: u8 = k.parse().map_err(|_| bad())?;
        let m: u8 = m.parse().map_err(|_| bad())?;
        if k == 0 || (k as usize + m as usize) > 32 {
            return Err(bad());
        }
        Ok(StoragePolicy::ErasureCoded { k, m })
    }
}

impl fmt::Display for StoragePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StoragePolicy::Replicated { copies: 1 } => f.write_str("SINGLE"),
            StoragePolicy::Replicated { copies: 2 } => f.write_str("TWOCOPIES"),
            StoragePolicy::Replicated { copies: 3 } => f.write_str("THREECOPIES"),
            StoragePolicy::Replicated { copies } => write!(f, "COPIES{copies}"),
            StoragePolicy::ErasureCoded { k, m } => write!(f, "EC{k}{m}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(
            "EC42".parse(),
            Ok(StoragePolicy::ErasureCoded { k: 4, m: 2 })
        );
        assert_eq!(
            "EC84".parse(),
            Ok(StoragePolicy::ErasureCoded { k: 8, m: 4 })
        );
        assert_eq!(
            "EC123".parse(),
            Ok(StoragePolicy::ErasureCoded { k: 12, m: 3 })
        );
        assert_eq!(
            "THREECOPIES".parse(),
            Ok(StoragePolicy::Replicated { copies: 3 })
        );
        assert!("EC".parse::<StoragePolicy>().is_err());
        assert!("EC0x".parse::<StoragePolicy>().is_err());
        assert!("FOO".parse::<StoragePolicy>().is_err());
        for name in [
            "SINGLE",
            "TWOCOPIES",
            "THREECOPIES",
            "EC42",
            "EC84",
            "EC123",
        ] {
            assert_eq!(name.parse::<StoragePolicy>().unwrap().to_string(), name);
        }
    }

    #[test]
    fn quorums() {
        let ec = StoragePolicy::DEFAULT;
        assert_eq!((ec.width(), ec.write_quorum(), ec.read_quorum()), (6, 5, 4));
        let r3 = StoragePolicy::Replicated { copies: 3 };
        assert_eq!((r3.width(), r3.write_quorum(), r3.read_quorum()), (3, 2, 1));
    }
}
