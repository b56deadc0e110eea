//! Which meta2 group a new container goes to: drawn at random, weighted by the
//! conscience score of the group's weakest member (a group is only as available and
//! as fast as its slowest voter), never a group with a member down or at score 0.
//! When the conscience cannot tell (unreachable, no directory registered, every
//! group scored 0) the directory draws uniformly itself.

use crate::client::Client;
use oxio_proto::v1::{GroupInfo, GroupKind, ServiceState};
use std::collections::HashMap;

/// How old a cached meta0 table may be for this choice (new meta2 groups appear
/// in it as the directory grows).
pub const META0_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30);

/// The score of each meta2 group: the lowest score among its members, 0 when one is
/// unknown to the conscience or down. `scores` maps a directory service address to
/// its score (0 when down).
pub fn group_scores<'a>(
    groups: impl IntoIterator<Item = &'a GroupInfo>,
    scores: &HashMap<String, u32>,
) -> Vec<(u64, u32)> {
    groups
        .into_iter()
        .filter(|g| g.kind == GroupKind::Meta2 as i32)
        .map(|g| {
            let s = g
                .members
                .iter()
                .map(|m| scores.get(&m.addr).copied().unwrap_or(0))
                .min()
                .unwrap_or(0);
            (g.id, s)
        })
        .collect()
}

/// Draws one group weighted by score (`draw` in `0..1`), or `None` when every score
/// is 0.
pub fn draw(scored: &[(u64, u32)], draw: f64) -> Option<u64> {
    let total: u64 = scored.iter().map(|(_, s)| u64::from(*s)).sum();
    if total == 0 {
        return None;
    }
    let mut at = (draw.clamp(0.0, 1.0) * total as f64) as u64;
    for (id, s) in scored {
        let s = u64::from(*s);
        if s == 0 {
            continue;
        }
        if at < s {
            return Some(*id);
        }
        at -= s;
    }
    scored.iter().rev().find(|(_, s)| *s > 0).map(|(id, _)| *id)
}

/// Address → score of the directory services the conscience lists (0 when down).
fn service_scores(services: &[ServiceState]) -> HashMap<String, u32> {
    services
        .iter()
        .filter_map(|s| {
            let info = s.info.as_ref()?;
            let score = if s.up {
                u32::try_from(s.score).unwrap_or(0)
            } else {
                0
            };
            Some((info.addr.clone(), score))
        })
        .collect()
}

impl Client {
    /// The meta2 group a new container should go to, when the conscience can say.
    pub(crate) async fn choose_meta2_group(&self) -> Option<u64> {
        let meta0 = self
            .inner
            .directory
            .meta0_within(META0_MAX_AGE)
            .await
            .ok()?;
        let services = match self.inner.conscience.list("directory").await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "no directory scores, the directory picks the meta2 group");
                return None;
            }
        };
        let scored = group_scores(meta0.groups.values(), &service_scores(&services));
        let chosen = draw(&scored, rand::random::<f64>());
        tracing::debug!(?scored, ?chosen, "meta2 group for a new container");
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxio_proto::v1::GroupMember;

    fn group(id: u64, kind: GroupKind, members: &[&str]) -> GroupInfo {
        GroupInfo {
            id,
            kind: kind as i32,
            members: members
                .iter()
                .enumerate()
                .map(|(n, a)| GroupMember {
                    node_id: n as u64 + 1,
                    addr: a.to_string(),
                })
                .collect(),
            leader_addr: String::new(),
        }
    }

    #[test]
    fn a_group_scores_as_its_weakest_member() {
        let groups = [
            group(0, GroupKind::Meta0, &["a", "b"]),
            group(1000, GroupKind::Meta2, &["a", "b"]),
            group(1001, GroupKind::Meta2, &["b", "c"]),
            group(1002, GroupKind::Meta2, &["a", "gone"]),
        ];
        let scores = HashMap::from([
            ("a".to_string(), 80),
            ("b".to_string(), 30),
            ("c".to_string(), 90),
        ]);
        assert_eq!(
            group_scores(groups.iter(), &scores),
            [(1000, 30), (1001, 30), (1002, 0)]
        );
    }

    #[test]
    fn draws_follow_the_scores_and_skip_zero() {
        let scored = [(1, 10), (2, 0), (3, 30)];
        let mut counts = HashMap::new();
        for i in 0..4000 {
            let d = draw(&scored, i as f64 / 4000.0).unwrap();
            *counts.entry(d).or_insert(0) += 1;
        }
        assert_eq!(counts.get(&2), None);
        assert_eq!(counts[&1], 1000);
        assert_eq!(counts[&3], 3000);
        assert_eq!(draw(&scored, 1.0), Some(3));
        assert_eq!(draw(&[(1, 0), (2, 0)], 0.5), None);
        assert_eq!(draw(&[], 0.5), None);
    }
}
