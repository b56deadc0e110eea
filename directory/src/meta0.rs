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

/// Applies `Meta0AddGroups`: records groups created after the bootstrap (meta2
/// groups added as the directory grows). A group already recorded keeps its record,
/// so a repeated command changes nothing; without a table (not bootstrapped) it is
/// refused.
pub fn apply_add_groups(ov: &mut Overlay<'_>, groups: &[GroupRecord]) -> Result<Reply> {
    if ov.get(sm::META0_TABLE)?.is_none() || groups.len() > MAX_GROUPS {
        return Ok(Reply::Refused(Refusal::Invalid));
    }
    for g in groups {
        let k = sm::meta0_group(g.id);
        if ov.get(&k)?.is_none() {
            ov.put(k, serde_json::to_vec(g)?);
        }
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

#[cfg(test)]
mod add_tests {
    use crate::test_sm::TestSm;
    use crate::types::{Command, GroupKind, GroupRecord, MemberRecord, Refusal, Reply};

    fn group(id: u64, node: u64) -> GroupRecord {
        GroupRecord {
            id,
            kind: GroupKind::of(id),
            members: vec![MemberRecord {
                node_id: node,
                addr: format!("10.0.0.{node}:6001"),
            }],
        }
    }

    #[tokio::test]
    async fn groups_are_added_once_and_only_to_a_bootstrapped_table() {
        let mut sm = TestSm::new(0).await;
        let add = |groups| Command::Meta0AddGroups { groups };
        assert_eq!(
            sm.apply(add(vec![group(1005, 1)])).await,
            Reply::Refused(Refusal::Invalid),
            "no table yet"
        );
        sm.apply(Command::Meta0Init {
            prefix_to_meta1: super::even_table(1),
            groups: vec![group(0, 1), group(1, 1), group(1000, 1)],
        })
        .await;
        assert_eq!(sm.apply(add(vec![group(1001, 2)])).await, Reply::Done);
        // Again, with another record for the same id: the first one stays.
        assert_eq!(
            sm.apply(add(vec![group(1001, 3), group(1002, 3)])).await,
            Reply::Done
        );
        let groups = super::read_groups(&sm.sm.view()).unwrap();
        let ids: Vec<u64> = groups.iter().map(|g| g.id).collect();
        assert_eq!(ids, [0, 1, 1000, 1001, 1002]);
        assert_eq!(groups[3].members[0].node_id, 2);
        assert_eq!(
            super::read_table(&sm.sm.view()).unwrap().unwrap().len(),
            oxio_common::PREFIX_COUNT
        );
    }
}
