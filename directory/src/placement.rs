//! Where the groups of a replicated directory live: a deterministic spread of every
//! group's voters over the directory nodes, balanced both in replicas and in preferred
//! leaders (the first member of each group, which starts the first election).

use crate::config::BootstrapSpec;
use crate::error::{Error, Result};
use crate::types::{GroupKind, GroupRecord, MemberRecord, META0_GROUP, META2_BASE};
use std::collections::HashSet;

/// Most voters per group.
pub const MAX_REPLICAS: u32 = 7;
/// Most directory nodes one bootstrap spreads groups over.
pub const MAX_NODES: usize = 1024;

/// Every group id `spec` asks for: meta0, then meta1 `1..=N`, then meta2 `1000..`.
pub fn group_ids(spec: &BootstrapSpec) -> Vec<u64> {
    let mut ids = vec![META0_GROUP];
    ids.extend(1..=u64::from(spec.meta1_groups));
    ids.extend(META2_BASE..META2_BASE + u64::from(spec.meta2_groups));
    ids
}

/// Checks a node list: 1 to [`MAX_NODES`] entries, unique ids, unique `host:port`
/// addresses.
pub fn check_nodes(nodes: &[MemberRecord]) -> Result<()> {
    if nodes.is_empty() || nodes.len() > MAX_NODES {
        return Err(Error::Config(format!(
            "a bootstrap needs 1 to {MAX_NODES} nodes, got {}",
            nodes.len()
        )));
    }
    let mut ids = HashSet::new();
    let mut addrs = HashSet::new();
    for n in nodes {
        if n.addr.is_empty() || !n.addr.contains(':') {
            return Err(Error::Config(format!(
                "node {} has address {:?}, want host:port",
                n.node_id, n.addr
            )));
        }
        if !ids.insert(n.node_id) {
            return Err(Error::Config(format!("node id {} listed twice", n.node_id)));
        }
        if !addrs.insert(n.addr.as_str()) {
            return Err(Error::Config(format!("address {} listed twice", n.addr)));
        }
    }
    Ok(())
}

/// Spreads `replicas` voters of every group of `spec` over `nodes`, round robin over
/// the nodes ordered by id: group `k` (in [`group_ids`] order) gets nodes
/// `k, k+1, .., k+replicas-1` (mod n). Each node then holds the same number of
/// replicas (±1) and is the first member, the preferred leader, of as many groups
/// (±1). The same inputs always give the same plan, whatever their order.
pub fn spread(
    spec: &BootstrapSpec,
    replicas: u32,
    nodes: &[MemberRecord],
) -> Result<Vec<GroupRecord>> {
    spec.validate()?;
    check_nodes(nodes)?;
    if replicas == 0 || replicas > MAX_REPLICAS {
        return Err(Error::Config(format!(
            "replicas must be in 1..={MAX_REPLICAS}, got {replicas}"
        )));
    }
    let r = replicas as usize;
    if nodes.len() < r {
        return Err(Error::Precondition(format!(
            "need {r} directory nodes up, found {}",
            nodes.len()
        )));
    }
    let mut sorted = nodes.to_vec();
    sorted.sort_by_key(|n| n.node_id);
    let n = sorted.len();
    Ok(group_ids(spec)
        .into_iter()
        .enumerate()
        .map(|(k, id)| GroupRecord {
            id,
            kind: GroupKind::of(id),
            members: (0..r).map(|j| sorted[(k + j) % n].clone()).collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn nodes(n: u64) -> Vec<MemberRecord> {
        (1..=n)
            .map(|i| MemberRecord {
                node_id: i * 10,
                addr: format!("10.0.0.{i}:6001"),
            })
            .collect()
    }

    #[test]
    fn spread_balances_replicas_and_leaders() {
        let spec = BootstrapSpec {
            meta1_groups: 4,
            meta2_groups: 10,
        };
        let plan = spread(&spec, 3, &nodes(5)).unwrap();
        assert_eq!(plan.len(), 15);
        assert_eq!(plan[0].id, META0_GROUP);
        assert_eq!(plan[1].kind, GroupKind::Meta1);
        assert_eq!(plan[5].id, META2_BASE);
        let mut replicas: HashMap<u64, usize> = HashMap::new();
        let mut leaders: HashMap<u64, usize> = HashMap::new();
        for g in &plan {
            assert_eq!(g.members.len(), 3);
            let distinct: HashSet<u64> = g.members.iter().map(|m| m.node_id).collect();
            assert_eq!(distinct.len(), 3, "group {} repeats a node", g.id);
            *leaders.entry(g.members[0].node_id).or_default() += 1;
            for m in &g.members {
                *replicas.entry(m.node_id).or_default() += 1;
            }
        }
        assert_eq!(replicas.len(), 5);
        assert_eq!(leaders.len(), 5);
        assert!(replicas.values().all(|c| *c == 9), "{replicas:?}");
        assert!(leaders.values().all(|c| *c == 3), "{leaders:?}");
    }

    #[test]
    fn spread_is_independent_of_input_order() {
        let spec = BootstrapSpec::default();
        let mut rev = nodes(3);
        rev.reverse();
        assert_eq!(
            spread(&spec, 3, &nodes(3)).unwrap(),
            spread(&spec, 3, &rev).unwrap()
        );
    }

    #[test]
    fn spread_refuses_bad_inputs() {
        let spec = BootstrapSpec::default();
        let e = spread(&spec, 3, &nodes(2)).unwrap_err();
        assert!(e.to_string().contains("need 3 directory nodes up, found 2"));
        assert!(spread(&spec, 0, &nodes(2)).is_err());
        assert!(spread(&spec, 8, &nodes(9)).is_err());
        let mut dup = nodes(3);
        dup[2].node_id = dup[0].node_id;
        assert!(spread(&spec, 3, &dup)
            .unwrap_err()
            .to_string()
            .contains("listed twice"));
        let mut dup = nodes(3);
        dup[2].addr = dup[0].addr.clone();
        assert!(spread(&spec, 3, &dup).is_err());
    }
}
