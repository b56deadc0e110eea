//! Where the groups of a replicated directory live: a deterministic spread of every
//! group's voters over the directory nodes, balanced both in replicas and in preferred
//! leaders (the first member of each group, which starts the first election).

use crate::config::BootstrapSpec;
use crate::error::{Error, Result};
use crate::types::{GroupKind, GroupRecord, MemberRecord, META0_GROUP, META2_BASE};
use oxio_common::Location;
use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};

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

/// Spreads `replicas` voters of every group of `spec` over `nodes` without location
/// information: see [`spread_located`].
pub fn spread(
    spec: &BootstrapSpec,
    replicas: u32,
    nodes: &[MemberRecord],
) -> Result<Vec<GroupRecord>> {
    spread_located(spec, replicas, nodes, &HashMap::new())
}

/// Spreads `replicas` voters of every group of `spec` over `nodes`, whose dotted
/// locations (`site.rack.host.volume`) `locations` gives by node id. For each group
/// (in [`group_ids`] order, nodes ordered by id, ties broken by a rotation that starts
/// one node further for each group): the first member, the preferred leader, is the
/// node leading fewest groups so far (then holding fewest replicas); each further
/// member is the node farthest from those already chosen (never two on one host when
/// there are enough hosts, racks before hosts), then the least loaded. Leaders and
/// replicas end up balanced. A node without a known location counts as far
/// from every other. The same inputs always give the same plan, whatever their order.
pub fn spread_located(
    spec: &BootstrapSpec,
    replicas: u32,
    nodes: &[MemberRecord],
    locations: &HashMap<u64, String>,
) -> Result<Vec<GroupRecord>> {
    spec.validate()?;
    spread_groups(&group_ids(spec), replicas, nodes, locations, &[])
}

/// Spreads the groups `ids` as [`spread_located`] does, counting the replicas and
/// preferred leaders of the `existing` groups as load first: a directory that grows
/// gives its new groups to its least loaded (new) nodes.
pub fn spread_groups(
    ids: &[u64],
    replicas: u32,
    nodes: &[MemberRecord],
    locations: &HashMap<u64, String>,
    existing: &[GroupRecord],
) -> Result<Vec<GroupRecord>> {
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
    let locs: Vec<Option<Location>> = sorted
        .iter()
        .map(|m| locations.get(&m.node_id).and_then(|l| l.parse().ok()))
        .collect();
    let far = Location::MAX_LEVELS as u32;
    let dist = |a: usize, b: usize| match (&locs[a], &locs[b]) {
        (Some(x), Some(y)) => x.distance(y),
        _ => far,
    };
    let mut load = vec![0usize; n];
    let mut leads = vec![0usize; n];
    let index: HashMap<u64, usize> = sorted
        .iter()
        .enumerate()
        .map(|(i, m)| (m.node_id, i))
        .collect();
    for g in existing {
        for (pos, m) in g.members.iter().enumerate() {
            if let Some(&i) = index.get(&m.node_id) {
                load[i] += 1;
                leads[i] += usize::from(pos == 0);
            }
        }
    }
    let mut plan = Vec::new();
    for (k, &id) in ids.iter().enumerate() {
        let start = k % n;
        let rot = |i: usize| (i + n - start) % n;
        let first = (0..n)
            .min_by_key(|&i| (leads[i], load[i], rot(i)))
            .ok_or_else(|| Error::Precondition("no directory node".into()))?;
        let mut chosen = vec![first];
        load[first] += 1;
        // Bounded: one pick per member, each over at most MAX_NODES candidates.
        while chosen.len() < r {
            let best = (0..n)
                .filter(|i| !chosen.contains(i))
                .max_by_key(|&i| {
                    let d = chosen.iter().map(|&c| dist(i, c)).min().unwrap_or(far);
                    (d, Reverse(load[i]), Reverse(rot(i)))
                })
                .ok_or_else(|| Error::Precondition("not enough directory nodes".into()))?;
            chosen.push(best);
            load[best] += 1;
        }
        leads[first] += 1;
        plan.push(GroupRecord {
            id,
            kind: GroupKind::of(id),
            members: chosen.iter().map(|&i| sorted[i].clone()).collect(),
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn growth_goes_to_the_least_loaded_nodes() {
        let spec = BootstrapSpec {
            meta1_groups: 2,
            meta2_groups: 4,
        };
        let existing = spread(&spec, 3, &nodes(3)).unwrap();
        let ids: Vec<u64> = (META2_BASE + 4..META2_BASE + 8).collect();
        let plan = spread_groups(&ids, 3, &nodes(5), &HashMap::new(), &existing).unwrap();
        assert_eq!(plan.iter().map(|g| g.id).collect::<Vec<_>>(), ids);
        // The two new nodes (40, 50) lead the new groups and hold a replica of each.
        let leaders: Vec<u64> = plan.iter().map(|g| g.members[0].node_id).collect();
        assert!(leaders.iter().all(|l| *l == 40 || *l == 50), "{leaders:?}");
        for g in &plan {
            let ids: HashSet<u64> = g.members.iter().map(|m| m.node_id).collect();
            assert_eq!(ids.len(), 3);
            assert!(ids.contains(&40) && ids.contains(&50), "{ids:?}");
            assert_eq!(g.kind, GroupKind::Meta2);
        }
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

    #[test]
    fn spread_uses_locations() {
        let spec = BootstrapSpec {
            meta1_groups: 4,
            meta2_groups: 8,
        };
        // Six nodes, two per rack: every group of three spans the three racks.
        let locations: HashMap<u64, String> = (1..=6u64)
            .map(|i| (i * 10, format!("dc1.rack{}.host{i}.meta", (i - 1) / 2)))
            .collect();
        let plan = spread_located(&spec, 3, &nodes(6), &locations).unwrap();
        let mut replicas: HashMap<u64, usize> = HashMap::new();
        for g in &plan {
            let racks: HashSet<&str> = g
                .members
                .iter()
                .map(|m| locations[&m.node_id].split('.').nth(1).unwrap())
                .collect();
            assert_eq!(racks.len(), 3, "group {} on racks {racks:?}", g.id);
            for m in &g.members {
                *replicas.entry(m.node_id).or_default() += 1;
            }
        }
        let (min, max) = (
            replicas.values().min().unwrap(),
            replicas.values().max().unwrap(),
        );
        assert!(max - min <= 1, "replicas balanced: {replicas:?}");
        // Four nodes on two hosts: three voters must use both hosts.
        let two_hosts: HashMap<u64, String> = (1..=4u64)
            .map(|i| (i * 10, format!("dc1.rack1.host{}.m{i}", i % 2)))
            .collect();
        for g in spread_located(&spec, 3, &nodes(4), &two_hosts).unwrap() {
            let hosts: HashSet<&str> = g
                .members
                .iter()
                .map(|m| two_hosts[&m.node_id].split('.').nth(2).unwrap())
                .collect();
            assert_eq!(hosts.len(), 2);
        }
        // Same plan whatever the node order.
        let mut rev = nodes(6);
        rev.reverse();
        assert_eq!(plan, spread_located(&spec, 3, &rev, &locations).unwrap());
    }
}
