//! Configuration of the conscience and its validation.

use crate::error::{Error, Result};
use crate::score::{Expression, BASE_STATS, DEFAULT_EXPRESSION};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Key of the expression used for service types without their own.
pub const DEFAULT_TYPE: &str = "default";

/// Most distinct service-type expressions accepted.
pub const MAX_EXPRESSIONS: usize = 256;

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
    /// [`crate::score::DEFAULT_EXPRESSION`]. Expressions may only read the base
    /// stats (`cpu`, `io`, `space`), which every service sends.
    pub expressions: HashMap<String, String>,
}

impl Default for ConscienceConfig {
    fn default() -> Self {
        ConscienceConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], oxio_common::ports::CONSCIENCE)),
            data_dir: None,
            service_timeout: Duration::from_secs(5),
            score_rise_step: 10,
            expressions: HashMap::new(),
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
        let compile = |service_type: &str, source: &str| -> Result<Expression> {
            let expr = Expression::parse(source).map_err(|source| Error::Expression {
                service_type: service_type.to_string(),
                source,
            })?;
            expr.check_stats(&BASE_STATS)
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
        assert!(msg.contains("`spcae`") && msg.contains("rawx"), "{msg}");
        let syntax = ConscienceConfig {
            expressions: HashMap::from([("rawx".to_string(), "cpu *".to_string())]),
            ..Default::default()
        };
        let msg = syntax.validate().unwrap_err().to_string();
        assert!(msg.contains("at byte 5"), "{msg}");
    }
}
