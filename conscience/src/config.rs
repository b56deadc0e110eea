//! Configuration of the conscience and its validation.

use crate::error::{Error, Result};
use crate::registry::MAX_FIELD_BYTES;
use crate::score::{Expression, BASE_STATS, DEFAULT_EXPRESSION, MAX_SCORE};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Key of the expression used for service types without their own.
pub const DEFAULT_TYPE: &str = "default";

/// Most distinct service-type expressions accepted.
pub const MAX_EXPRESSIONS: usize = 256;

/// Most extra stats declared for one service type.
pub const MAX_EXTRA_STATS: usize = crate::registry::MAX_STATS;

/// How the conscience runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ConscienceConfig {
    /// gRPC listen address; port 0 picks a free port (see [`crate::Started::addr`]).
    pub listen: SocketAddr,
    /// Folder where locks persist (`locks.json`); `None` keeps them in memory only.
    pub data_dir: Option<PathBuf>,
    /// A service silent for longer scores 0 and is shown down.
    pub service_timeout: Duration,
    /// Largest increase of a score per heartbeat (drops are immediate).
    pub score_rise_step: i32,
    /// Score expression per service type; [`DEFAULT_TYPE`] for the others. Types
    /// without an entry (and "default" when absent) use
    /// [`crate::score::DEFAULT_EXPRESSION`]. Expressions may read the base stats
    /// (`cpu`, `io`, `space`), which every service sends, and the stats that
    /// [`ConscienceConfig::extra_stats`] declares for their type.
    pub expressions: HashMap<String, String>,
    /// Type-specific stats the expression of a type may read besides the base ones,
    /// by service type (e.g. `"meta2" => ["db_count"]`). An entry for
    /// [`DEFAULT_TYPE`] extends what the fallback expression may read: every service
    /// of a type without its own expression must then send those stats. A service
    /// whose heartbeat lacks a stat its expression reads is refused, naming it.
    pub extra_stats: HashMap<String, Vec<String>>,
    /// When set, a service registering for the first time (never seen by this
    /// conscience, as recorded next to the locks) is locked at this score, so that
    /// new hardware takes no data until an admin unlocks it (OpenIO's
    /// `lock_at_first_register`). `Some(0)` is the usual value. Services already
    /// known, locked or not, are left alone; with no `data_dir`, "known" lasts
    /// until the conscience restarts.
    pub lock_new_services: Option<u32>,
    /// Where to serve `GET /metrics` (Prometheus text format) over plain HTTP;
    /// `None` (the default) serves no metrics.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for ConscienceConfig {
    fn default() -> Self {
        ConscienceConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], oxio_common::ports::CONSCIENCE)),
            data_dir: None,
            service_timeout: Duration::from_secs(5),
            score_rise_step: 10,
            expressions: HashMap::new(),
            extra_stats: HashMap::new(),
            lock_new_services: None,
            metrics_listen: None,
        }
    }
}

/// Parsed expressions, by service type, with the fallback.
#[derive(Debug, Clone)]
pub struct Expressions {
    by_type: HashMap<String, Expression>,
    fallback: Expression,
}

impl Expressions {
    /// The expression scoring `service_type`.
    pub fn for_type(&self, service_type: &str) -> &Expression {
        self.by_type.get(service_type).unwrap_or(&self.fallback)
    }
}

impl ConscienceConfig {
    /// Checks every field and parses the expressions.
    pub fn validate(&self) -> Result<Expressions> {
        if self.service_timeout.is_zero() {
            return Err(Error::Config(
                "service_timeout must be above 0 (services heartbeat every second; 5 s is usual)"
                    .into(),
            ));
        }
        if !(1..=100).contains(&self.score_rise_step) {
            return Err(Error::Config(format!(
                "score_rise_step is {}, it must be between 1 and 100 (10 is usual)",
                self.score_rise_step
            )));
        }
        if self.expressions.len() > MAX_EXPRESSIONS {
            return Err(Error::Config(format!(
                "{} score expressions, at most {MAX_EXPRESSIONS} are accepted",
                self.expressions.len()
            )));
        }
        if let Some(score) = self.lock_new_services {
            if score > MAX_SCORE {
                return Err(Error::Config(format!(
                    "lock_new_services is {score}, it must be between 0 and {MAX_SCORE} (0 is usual)"
                )));
            }
        }
        self.validate_extra_stats()?;
        let compile = |service_type: &str, source: &str| -> Result<Expression> {
            let expr = Expression::parse(source).map_err(|source| Error::Expression {
                service_type: service_type.to_string(),
                source,
            })?;
            let mut known: Vec<&str> = BASE_STATS.to_vec();
            if let Some(extra) = self.extra_stats.get(service_type) {
                known.extend(extra.iter().map(String::as_str));
            }
            expr.check_stats(&known)
                .map_err(|source| Error::Expression {
                    service_type: service_type.to_string(),
                    source,
                })?;
            Ok(expr)
        };
        let mut by_type = HashMap::with_capacity(self.expressions.len());
        for (service_type, source) in &self.expressions {
            if service_type.is_empty() {
                return Err(Error::Config(
                    "a score expression has an empty service type; use \"default\" for the fallback"
                        .into(),
                ));
            }
            by_type.insert(service_type.clone(), compile(service_type, source)?);
        }
        let fallback = match by_type.remove(DEFAULT_TYPE) {
            Some(e) => e,
            None => compile(DEFAULT_TYPE, DEFAULT_EXPRESSION)?,
        };
        Ok(Expressions { by_type, fallback })
    }

    /// Checks the bounds and names of [`ConscienceConfig::extra_stats`].
    fn validate_extra_stats(&self) -> Result<()> {
        if self.extra_stats.len() > MAX_EXPRESSIONS {
            return Err(Error::Config(format!(
                "extra_stats lists {} service types, at most {MAX_EXPRESSIONS} are accepted",
                self.extra_stats.len()
            )));
        }
        for (service_type, stats) in &self.extra_stats {
            if service_type.is_empty() {
                return Err(Error::Config(
                    "extra_stats has an empty service type; use \"default\" for the fallback"
                        .into(),
                ));
            }
            if stats.len() > MAX_EXTRA_STATS {
                return Err(Error::Config(format!(
                    "extra_stats for `{service_type}` lists {} stats, at most {MAX_EXTRA_STATS} \
                     (a heartbeat carries at most {} stats)",
                    stats.len(),
                    crate::registry::MAX_STATS
                )));
            }
            for stat in stats {
                let valid = !stat.is_empty()
                    && stat.len() <= MAX_FIELD_BYTES
                    && stat
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && stat
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                if !valid {
                    return Err(Error::Config(format!(
                        "extra_stats for `{service_type}`: {stat:?} is not a stat name \
                         (a letter or `_`, then letters, digits, `_` or `.`, at most \
                         {MAX_FIELD_BYTES} bytes)"
                    )));
                }
                if BASE_STATS.contains(&stat.as_str()) {
                    return Err(Error::Config(format!(
                        "extra_stats for `{service_type}`: `{stat}` is a base stat, every \
                         expression may read it already; remove it"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_uses_default_expression() {
        let cfg = ConscienceConfig::default();
        let exprs = cfg.validate().unwrap();
        assert_eq!(exprs.for_type("rawx").source(), DEFAULT_EXPRESSION);
        assert_eq!(cfg.service_timeout, Duration::from_secs(5));
        assert_eq!(cfg.score_rise_step, 10);
    }

    #[test]
    fn per_type_and_fallback_expressions() {
        let cfg = ConscienceConfig {
            expressions: HashMap::from([
                ("default".to_string(), "cpu".to_string()),
                ("directory".to_string(), "min(cpu, io)".to_string()),
            ]),
            ..Default::default()
        };
        let exprs = cfg.validate().unwrap();
        assert_eq!(exprs.for_type("directory").source(), "min(cpu, io)");
        assert_eq!(exprs.for_type("rawx").source(), "cpu");
    }

    #[test]
    fn rejects_bad_fields() {
        let bad_step = ConscienceConfig {
            score_rise_step: 0,
            ..Default::default()
        };
        assert!(bad_step
            .validate()
            .unwrap_err()
            .to_string()
            .contains("score_rise_step"));
        let bad_timeout = ConscienceConfig {
            service_timeout: Duration::ZERO,
            ..Default::default()
        };
        assert!(bad_timeout.validate().is_err());
        let unknown_stat = ConscienceConfig {
            expressions: HashMap::from([("rawx".to_string(), "cpu * spcae".to_string())]),
            ..Default::default()
        };
        let msg = unknown_stat.validate().unwrap_err().to_string();
        assert!(
            msg.contains("`spcae`") && msg.contains("rawx") && msg.contains("at byte 6"),
            "{msg}"
        );
        let syntax = ConscienceConfig {
            expressions: HashMap::from([("rawx".to_string(), "cpu *".to_string())]),
            ..Default::default()
        };
        let msg = syntax.validate().unwrap_err().to_string();
        assert!(msg.contains("at byte 5"), "{msg}");
    }

    #[test]
    fn extra_stats_widen_what_one_type_may_read() {
        let exprs = HashMap::from([("meta2".to_string(), "min(cpu, db_free)".to_string())]);
        let without = ConscienceConfig {
            expressions: exprs.clone(),
            ..Default::default()
        };
        let msg = without.validate().unwrap_err().to_string();
        assert!(msg.contains("`db_free`") && msg.contains("meta2"), "{msg}");
        let with = ConscienceConfig {
            expressions: exprs,
            extra_stats: HashMap::from([("meta2".to_string(), vec!["db_free".to_string()])]),
            ..Default::default()
        };
        let parsed = with.validate().unwrap();
        assert_eq!(parsed.for_type("meta2").source(), "min(cpu, db_free)");
        // Declared for another type only: still refused.
        let other_type = ConscienceConfig {
            expressions: HashMap::from([("rawx".to_string(), "db_free".to_string())]),
            extra_stats: HashMap::from([("meta2".to_string(), vec!["db_free".to_string()])]),
            ..Default::default()
        };
        assert!(other_type.validate().is_err());
        // The fallback reads the extras declared for "default".
        let fallback = ConscienceConfig {
            expressions: HashMap::from([("default".to_string(), "cpu * gpu_idle".to_string())]),
            extra_stats: HashMap::from([("default".to_string(), vec!["gpu_idle".to_string()])]),
            ..Default::default()
        };
        assert_eq!(
            fallback.validate().unwrap().for_type("x").source(),
            "cpu * gpu_idle"
        );
    }

    #[test]
    fn extra_stats_names_are_checked() {
        for bad in ["", "9lives", "a b", "cpu"] {
            let cfg = ConscienceConfig {
                extra_stats: HashMap::from([("rawx".to_string(), vec![bad.to_string()])]),
                ..Default::default()
            };
            let msg = cfg.validate().unwrap_err().to_string();
            assert!(msg.contains("extra_stats for `rawx`"), "{bad:?}: {msg}");
        }
        let too_many = ConscienceConfig {
            extra_stats: HashMap::from([(
                "rawx".to_string(),
                (0..=MAX_EXTRA_STATS).map(|i| format!("s{i}")).collect(),
            )]),
            ..Default::default()
        };
        assert!(too_many.validate().is_err());
        let empty_type = ConscienceConfig {
            extra_stats: HashMap::from([(String::new(), vec!["x".to_string()])]),
            ..Default::default()
        };
        assert!(empty_type.validate().is_err());
    }

    #[test]
    fn lock_new_services_must_be_a_score() {
        let ok = ConscienceConfig {
            lock_new_services: Some(0),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        let bad = ConscienceConfig {
            lock_new_services: Some(101),
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("lock_new_services"));
    }
}
