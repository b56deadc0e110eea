//! Service locations (`site.rack.host.volume`) and the distance between two of them.

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A dotted location of 1 to 4 levels, most general first.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    levels: Vec<String>,
}

impl Location {
    /// The maximum number of levels.
    pub const MAX_LEVELS: usize = 4;

    /// The levels, most general first.
    pub fn levels(&self) -> &[String] {
        &self.levels
    }

    /// Distance = 4 − number of leading levels in common. Two services on the same
    /// volume are at distance 0; on different sites, 4.
    pub fn distance(&self, other: &Location) -> u32 {
        let common = self
            .levels
            .iter()
            .zip(other.levels.iter())
            .take_while(|(a, b)| a == b)
            .count();
        // Locations shorter than 4 levels: a missing level counts as different, so
        // that two services that only say "host1" are not taken for one volume.
        let same_full = common == Self::MAX_LEVELS;
        if same_full {
            0
        } else {
            (Self::MAX_LEVELS - common) as u32
        }
    }
}

impl FromStr for Location {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let levels: Vec<String> = s.split('.').map(str::to_string).collect();
        if s.is_empty() || levels.len() > Self::MAX_LEVELS || levels.iter().any(|l| l.is_empty()) {
            return Err(Error::InvalidLocation(s.to_string()));
        }
        Ok(Location { levels })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.levels.join("."))
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(s: &str) -> Location {
        s.parse().unwrap()
    }

    #[test]
    fn distance_counts_uncommon_levels() {
        let a = loc("local.rack1.host1.vol0");
        assert_eq!(a.distance(&loc("local.rack1.host1.vol0")), 0);
        assert_eq!(a.distance(&loc("local.rack1.host1.vol1")), 1);
        assert_eq!(a.distance(&loc("local.rack1.host2.vol0")), 2);
        assert_eq!(a.distance(&loc("local.rack2.host1.vol0")), 3);
        assert_eq!(a.distance(&loc("other.rack1.host1.vol0")), 4);
        assert_eq!(loc("a.b").distance(&loc("a.b")), 2);
    }

    #[test]
    fn rejects_bad_locations() {
        assert!("".parse::<Location>().is_err());
        assert!("a..b".parse::<Location>().is_err());
        assert!("a.b.c.d.e".parse::<Location>().is_err());
        assert_eq!(loc("a.b.c").to_string(), "a.b.c");
    }
}
