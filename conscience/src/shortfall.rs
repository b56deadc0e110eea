//! Why a placement found too few services: the services of the type counted by what
//! keeps each one out ("6 needed, 0 eligible" alone does not say whether the volumes
//! are full, the services silent, or locked out by an operator), for the error the
//! placing client sees and passes on (an S3 PUT's 503 carries it).

use crate::registry::ServiceView;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

/// The services of one type, each counted once, under the first reason that keeps it
/// out of a placement.
#[derive(Debug, Clone, PartialEq)]
pub struct Shortfall {
    /// The service type.
    service_type: String,
    /// Services registered.
    registered: usize,
    /// Silent past the service timeout.
    down: usize,
    /// Locked by an operator at score 0.
    locked_out: usize,
    /// Asked to be avoided by the caller (a retry after a failed write).
    avoided: usize,
    /// Up and unlocked, but scored 0 by the type's expression.
    zero_score: usize,
    /// Eligible, but on a volume another eligible service already counts for.
    shared_volume: usize,
    /// The type's score expression.
    expression: String,
    /// Lowest and highest value, over the services scored 0, of each stat the
    /// expression reads.
    zero_stats: BTreeMap<String, (f64, f64)>,
}

impl Shortfall {
    /// Counts `services` (all of `service_type`) given the ids the caller avoids, the
    /// number of them placeable on distinct volumes, and the type's `expression` and
    /// the stats it reads.
    pub fn new(
        service_type: &str,
        services: &[ServiceView],
        avoid: &HashSet<String>,
        placeable: usize,
        expression: &str,
        stats_read: &BTreeSet<&str>,
    ) -> Self {
        let mut s = Shortfall {
            service_type: service_type.to_string(),
            registered: services.len(),
            down: 0,
            locked_out: 0,
            avoided: 0,
            zero_score: 0,
            shared_volume: 0,
            expression: expression.to_string(),
            zero_stats: BTreeMap::new(),
        };
        let mut eligible: usize = 0;
        for v in services {
            if !v.up {
                s.down += 1;
            } else if v.locked && v.score == 0 {
                s.locked_out += 1;
            } else if avoid.contains(&v.id) {
                s.avoided += 1;
            } else if v.score == 0 {
                s.zero_score += 1;
                for name in stats_read {
                    if let Some(&x) = v.stats.get(*name) {
                        let range = s.zero_stats.entry(name.to_string()).or_insert((x, x));
                        range.0 = range.0.min(x);
                        range.1 = range.1.max(x);
                    }
                }
            } else {
                eligible += 1;
            }
        }
        s.shared_volume = eligible.saturating_sub(placeable);
        s
    }
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.registered == 0 {
            return write!(
                f,
                "no service of type `{}` is registered",
                self.service_type
            );
        }
        write!(f, "{} registered", self.registered)?;
        let mut parts = Vec::new();
        if self.down > 0 {
            parts.push(format!("{} down (silent past the timeout)", self.down));
        }
        if self.locked_out > 0 {
            parts.push(format!(
                "{} locked at score 0 (`oxio cluster unlock`)",
                self.locked_out
            ));
        }
        if self.avoided > 0 {
            parts.push(format!("{} avoided by this request", self.avoided));
        }
        if self.zero_score > 0 {
            let mut part = format!("{} scored 0 by `{}`", self.zero_score, self.expression);
            if !self.zero_stats.is_empty() {
                let stats: Vec<String> = self
                    .zero_stats
                    .iter()
                    .map(|(name, (lo, hi))| {
                        if lo == hi {
                            format!("{name} {lo:.1}")
                        } else {
                            format!("{name} {lo:.1} to {hi:.1}")
                        }
                    })
                    .collect();
                part.push_str(&format!(" (their {})", stats.join(", ")));
            }
            parts.push(part);
        }
        if self.shared_volume > 0 {
            parts.push(format!(
                "{} on a volume another eligible service already stands for",
                self.shared_volume
            ));
        }
        if !parts.is_empty() {
            write!(f, ": {}", parts.join("; "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn view(id: &str, vol: &str, score: u32, up: bool, locked: bool, space: f64) -> ServiceView {
        ServiceView {
            service_type: "rawx".into(),
            id: id.into(),
            addr: "127.0.0.1:1".into(),
            location: format!("dc.rack.host.{vol}").parse().unwrap(),
            stats: HashMap::from([("cpu".to_string(), 90.0), ("space".to_string(), space)]),
            score,
            up,
            locked,
            last_seen_ago: Duration::ZERO,
        }
    }

    const EXPR: &str = "if(space < 5, 0, root(3, max(cpu, 1) * max(io, 1) * space))";

    fn read() -> BTreeSet<&'static str> {
        BTreeSet::from(["cpu", "io", "space"])
    }

    #[test]
    fn full_volumes_are_named_with_the_expression_and_their_stats() {
        let services: Vec<ServiceView> = (0..6)
            .map(|i| {
                view(
                    &format!("r{i}"),
                    &format!("v{i}"),
                    0,
                    true,
                    false,
                    3.0 + i as f64 / 10.0,
                )
            })
            .collect();
        let s = Shortfall::new("rawx", &services, &HashSet::new(), 0, EXPR, &read());
        assert_eq!(
            s.to_string(),
            format!("6 registered: 6 scored 0 by `{EXPR}` (their cpu 90.0, space 3.0 to 3.5)")
        );
    }

    #[test]
    fn each_service_counts_once_under_its_first_reason() {
        let services = vec![
            // Down and locked: down.
            view("a", "v1", 0, false, true, 50.0),
            view("b", "v2", 0, true, true, 50.0),
            // Avoided and scored 0: avoided.
            view("c", "v3", 0, true, false, 1.0),
            view("d", "v4", 0, true, false, 2.0),
            // Two eligible on one volume, one elsewhere: one of them does not count.
            view("e", "v5", 40, true, false, 50.0),
            view("f", "v5", 40, true, false, 50.0),
            view("g", "v6", 40, true, false, 50.0),
            // Locked above 0: eligible.
            view("h", "v7", 30, true, true, 50.0),
        ];
        let avoid = HashSet::from(["c".to_string()]);
        let s = Shortfall::new("rawx", &services, &avoid, 3, EXPR, &read());
        assert_eq!(
            s.to_string(),
            format!(
                "8 registered: 1 down (silent past the timeout); 1 locked at score 0 \
                 (`oxio cluster unlock`); 1 avoided by this request; 1 scored 0 by `{EXPR}` \
                 (their cpu 90.0, space 2.0); 1 on a volume another eligible service \
                 already stands for"
            )
        );
    }

    #[test]
    fn an_unknown_type_says_nothing_is_registered() {
        let s = Shortfall::new("rawx", &[], &HashSet::new(), 0, EXPR, &read());
        assert_eq!(s.to_string(), "no service of type `rawx` is registered");
    }
}
