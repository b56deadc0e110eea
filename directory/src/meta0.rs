//! meta0: the 65,536-entry prefix -> meta1 group table and the record of every group.

use crate::error::{Error, Result};
use crate::keys::sm;
use crate::sm_data::{Overlay, SmView};
use crate::types::{GroupRecord, Refusal, Reply};
use oxio_common::PREFIX_COUNT;

/// Most groups a meta0 table may describe.
pub const MAX_GROUPS: usize = 100_000;

/// The table for `meta1_groups` meta1 groups numbered `1..=meta1_groups`: prefix `p`
/// goes to `1 + p * N / 65536`, so each group owns one contiguous slice.
pub fn even_table(meta1_groups: u32) -> Vec<u64> {
    (0..PREFIX_COUNT as u64)
        .map(|p| 1 + p * u64::from(meta1_groups) / PREFIX_COUNT as u64)
        .collect()
}

/// Applies `Meta0Init`: replaces the table and upserts the group records.
pub fn apply_init(ov: &mut Overlay<'_>, table: &[u64], groups: &[GroupRecord]) -> Result<Reply> {
    if table.len() != PREFIX_COUNT || groups.len() > MAX_GROUPS {
        return Ok(Reply::Refused(Refusal::Invalid));
    }
    let mut packed = Vec::with_capacity(PREFIX_COUNT * 8);
    for g in table {
        packed.extend_from_slice(&g.to_be_bytes());
    }
    ov.put(sm::META0_TABLE.to_vec(), packed);
    for g in groups {
        ov.put(sm::meta0_group(g.id), serde_json::to_vec(g)?);
    }
    Ok(Reply::Done)
}

/// The prefix table, if it was written.
pub fn read_table(view: &SmView<'_>) -> Result<Option<Vec<u64>>> {
    let Some(packed) = view.get(sm::META0_TABLE)? else {
        return Ok(None);
    };
    if packed.len() != PREFIX_COUNT * 8 {
        return Err(Error::Corrupt(format!(
            "meta0 table holds {} bytes",
            packed.len()
        )));
    }
    Ok(Some(
        packed
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_be_bytes(b)
            })
            .collect(),
    ))
}

/// Every group record, ordered by id.
pub fn read_groups(view: &SmView<'_>) -> Result<Vec<GroupRecord>> {
    let (rows, _) = view.scan(sm::META0_GROUP, MAX_GROUPS)?;
    rows.into_iter()
        .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_table_covers_every_group_in_order() {
        let t = even_table(3);
        assert_eq!(t.len(), PREFIX_COUNT);
        assert_eq!(t[0], 1);
        assert_eq!(t[PREFIX_COUNT - 1], 3);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        for g in 1..=3 {
            assert!(t.contains(&g));
        }
        assert!(even_table(1).iter().all(|g| *g == 1));
    }
}
