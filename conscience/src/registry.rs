//! The soft state: every service heard of, its last stats and its score, plus the
//! locks. Time is passed in (`now`) so that rise, drop and timeout are tested without
//! sleeping. Scores are stored as computed at the last heartbeat; "down" (silent past
//! the timeout) is decided at read time from the last-seen instant.

use crate::config::Expressions;
use crate::locks::{Known, LockState, Locks, ServiceKey, MAX_KNOWN, MAX_LOCKS};
use crate::placement::Candidate;
use crate::score::ScoreError;
use oxio_common::Location;
use oxio_proto::v1::ServiceInfo;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Most services registered at once.
pub const MAX_SERVICES: usize = 100_000;
/// Most stats one heartbeat may carry.
pub const MAX_STATS: usize = 64;
/// Longest service type, id, address or stat name, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;

/// Why a heartbeat was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeartbeatError {
    /// A field is missing or malformed.
    #[error("invalid heartbeat: {0}")]
    Invalid(String),
    /// The stats lack what the type's score expression reads.
    #[error("cannot score service type `{service_type}` with expression `{expression}`: {source}")]
    Score {
        /// The service type.
        service_type: String,
        /// The expression used.
        expression: String,
        /// The evaluation failure (names the missing stat).
        source: ScoreError,
    },
    /// The registry is at its bound ([`MAX_SERVICES`] unless lowered) and no service
    /// is down to make room.
    #[error("registry full: {0} services, none down to evict")]
    Full(usize),
}

/// A validated heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Service type.
    pub service_type: String,
    /// Service id.
    pub id: String,
    /// `host:port`.
    pub addr: String,
    /// Parsed location.
    pub location: Location,
    /// Finite stats.
    pub stats: HashMap<String, f64>,
}

fn check_field(name: &str, value: &str) -> Result<(), HeartbeatError> {
    if value.is_empty() {
        return Err(HeartbeatError::Invalid(format!("{name} is empty")));
    }
    if value.len() > MAX_FIELD_BYTES {
        return Err(HeartbeatError::Invalid(format!(
            "{name} is {} bytes, at most {MAX_FIELD_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

impl TryFrom<ServiceInfo> for Report {
    type Error = HeartbeatError;

    fn try_from(info: ServiceInfo) -> Result<Report, HeartbeatError> {
        check_field("service_type", &info.service_type)?;
        check_field("id", &info.id)?;
        check_field("addr", &info.addr)?;
        let location: Location = info
            .location
            .parse()
            .map_err(|e| HeartbeatError::Invalid(format!("location: {e}")))?;
        if info.stats.len() > MAX_STATS {
            return Err(HeartbeatError::Invalid(format!(
                "{} stats, at most {MAX_STATS}",
                info.stats.len()
            )));
        }
        for (key, value) in &info.stats {
            check_field("stat name", key)?;
            if !value.is_finite() {
                return Err(HeartbeatError::Invalid(format!(
                    "stat `{key}` is {value}, not a finite number"
                )));
            }
        }
        Ok(Report {
            service_type: info.service_type,
            id: info.id,
            addr: info.addr,
            location,
            stats: info.stats,
        })
    }
}

#[derive(Debug, Clone)]
struct Record {
    addr: String,
    location: Location,
    stats: HashMap<String, f64>,
    /// Rise-limited score from the stats (before any lock).
    score: u32,
    last_seen: Instant,
}

/// A service as shown to clients.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    /// Service type.
    pub service_type: String,
    /// Service id.
    pub id: String,
    /// `host:port`.
    pub addr: String,
    /// Location.
    pub location: Location,
    /// Last stats received.
    pub stats: HashMap<String, f64>,
    /// Effective score: 0 when down, else the locked score when locked, else the
    /// computed one.
    pub score: u32,
    /// Heard from within the service timeout.
    pub up: bool,
    /// The score is locked by an admin.
    pub locked: bool,
    /// Time since the last heartbeat.
    pub last_seen_ago: Duration,
}

/// What a heartbeat did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// The service's effective score.
    pub score: u32,
    /// The service was not registered before.
    pub is_new: bool,
    /// The locks or known services changed (the service was seen for the first time
    /// with `lock_new_services` on): they must be persisted.
    pub lock_state_changed: bool,
}

/// Registered services and locks.
#[derive(Debug)]
pub struct Registry {
    services: BTreeMap<ServiceKey, Record>,
    locks: Locks,
    /// Score at which services seen for the first time are locked.
    lock_new: Option<u32>,
    /// Services already seen registering while `lock_new` was set.
    known: Known,
    expressions: Expressions,
    timeout: Duration,
    rise_step: u32,
    max_services: usize,
}

/// Next stored score: rises by at most `step`, drops at once. `previous` is `None`
/// for a new service or one coming back from down, which rise from 0.
pub fn next_score(previous: Option<u32>, target: u32, step: u32) -> u32 {
    let prev = previous.unwrap_or(0);
    if target <= prev {
        target
    } else {
        target.min(prev.saturating_add(step))
    }
}

impl Registry {
    /// An empty registry scoring with `expressions`.
    pub fn new(expressions: Expressions, timeout: Duration, rise_step: u32, locks: Locks) -> Self {
        Registry {
            services: BTreeMap::new(),
            locks,
            lock_new: None,
            known: Known::new(),
            expressions,
            timeout,
            rise_step,
            max_services: MAX_SERVICES,
        }
    }

    /// Locks services seen for the first time at `score` (none when `None`);
    /// `known` lists those seen before (from the lock file), which are left alone.
    pub fn with_lock_new_services(mut self, score: Option<u32>, known: Known) -> Self {
        self.lock_new = score;
        self.known = known;
        self
    }

    /// Lowers the registry bound (default [`MAX_SERVICES`]).
    pub fn with_max_services(mut self, max_services: usize) -> Self {
        self.max_services = max_services.min(MAX_SERVICES);
        self
    }

    /// Number of registered services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// True when no service is registered.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    fn is_up(&self, record: &Record, now: Instant) -> bool {
        now.saturating_duration_since(record.last_seen) <= self.timeout
    }

    /// Records a heartbeat at `now`: the service's effective score, whether it is
    /// new, and whether the lock state changed (see [`Registered`]).
    pub fn heartbeat(
        &mut self,
        report: Report,
        now: Instant,
    ) -> Result<Registered, HeartbeatError> {
        let expr = self.expressions.for_type(&report.service_type);
        let target = expr
            .score(&report.stats)
            .map_err(|source| HeartbeatError::Score {
                service_type: report.service_type.clone(),
                expression: expr.source().to_string(),
                source,
            })?;
        let key = (report.service_type, report.id);
        let previous = self
            .services
            .get(&key)
            .filter(|r| self.is_up(r, now))
            .map(|r| r.score);
        let is_new = !self.services.contains_key(&key);
        if is_new && self.services.len() >= self.max_services {
            self.evict_one_down(now)?;
        }
        let score = next_score(previous, target, self.rise_step);
        let lock_state_changed = is_new && self.lock_if_first_seen(&key);
        let effective = self.locks.get(&key).copied().unwrap_or(score);
        self.services.insert(
            key,
            Record {
                addr: report.addr,
                location: report.location,
                stats: report.stats,
                score,
                last_seen: now,
            },
        );
        Ok(Registered {
            score: effective,
            is_new,
            lock_state_changed,
        })
    }

    /// With `lock_new_services` on, locks `key` unless it was seen before (or is
    /// locked already) and remembers it. True when the lock state changed.
    fn lock_if_first_seen(&mut self, key: &ServiceKey) -> bool {
        let Some(lock_score) = self.lock_new else {
            return false;
        };
        if self.known.contains(key) {
            return false;
        }
        if self.known.len() < MAX_KNOWN {
            self.known.insert(key.clone());
        } else {
            tracing::warn!(
                max = MAX_KNOWN,
                "too many known services, not remembering more"
            );
        }
        if self.locks.contains_key(key) {
            return true;
        }
        if self.locks.len() >= MAX_LOCKS {
            tracing::warn!(service_type = %key.0, id = %key.1, max = MAX_LOCKS, "too many locks, new service left unlocked");
            return true;
        }
        self.locks.insert(key.clone(), lock_score);
        tracing::info!(service_type = %key.0, id = %key.1, score = lock_score, "new service locked at first registration");
        true
    }

    /// Removes the longest-silent down service, or fails when all are up.
    fn evict_one_down(&mut self, now: Instant) -> Result<(), HeartbeatError> {
        let victim = self
            .services
            .iter()
            .filter(|(_, r)| !self.is_up(r, now))
            .min_by_key(|(_, r)| r.last_seen)
            .map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                tracing::info!(service_type = %k.0, id = %k.1, "registry full, forgetting down service");
                self.services.remove(&k);
                Ok(())
            }
            None => Err(HeartbeatError::Full(self.max_services)),
        }
    }

    fn effective_score(&self, key: &ServiceKey, record: &Record, now: Instant) -> u32 {
        if !self.is_up(record, now) {
            return 0;
        }
        self.locks.get(key).copied().unwrap_or(record.score)
    }

    fn view(&self, key: &ServiceKey, record: &Record, now: Instant) -> ServiceView {
        let up = self.is_up(record, now);
        let lock = self.locks.get(key).copied();
        let score = self.effective_score(key, record, now);
        ServiceView {
            service_type: key.0.clone(),
            id: key.1.clone(),
            addr: record.addr.clone(),
            location: record.location.clone(),
            stats: record.stats.clone(),
            score,
            up,
            locked: lock.is_some(),
            last_seen_ago: now.saturating_duration_since(record.last_seen),
        }
    }

    /// Services (of one type, or all), sorted by type then id.
    pub fn list(&self, service_type: Option<&str>, now: Instant) -> Vec<ServiceView> {
        match service_type {
            Some(t) => {
                let start = (t.to_string(), String::new());
                self.services
                    .range(start..)
                    .take_while(|(k, _)| k.0 == t)
                    .map(|(k, r)| self.view(k, r, now))
                    .collect()
            }
            None => self
                .services
                .iter()
                .map(|(k, r)| self.view(k, r, now))
                .collect(),
        }
    }

    /// Placement candidates of one type: every registered service with its effective
    /// score (0 when down), in id order. Cheaper than [`Registry::list`]: no stats.
    pub fn candidates(&self, service_type: &str, now: Instant) -> Vec<Candidate> {
        let start = (service_type.to_string(), String::new());
        self.services
            .range(start..)
            .take_while(|(k, _)| k.0 == service_type)
            .map(|(k, r)| Candidate {
                id: k.1.clone(),
                location: r.location.clone(),
                score: self.effective_score(k, r, now),
            })
            .collect()
    }

    /// The expression scoring `service_type`.
    pub fn expression(&self, service_type: &str) -> &crate::score::Expression {
        self.expressions.for_type(service_type)
    }

    /// One service.
    pub fn get(&self, service_type: &str, id: &str, now: Instant) -> Option<ServiceView> {
        let key = (service_type.to_string(), id.to_string());
        self.services.get(&key).map(|r| self.view(&key, r, now))
    }

    /// Current locks.
    pub fn locks(&self) -> &Locks {
        &self.locks
    }

    /// Replaces the locks (after they were persisted).
    pub fn set_locks(&mut self, locks: Locks) {
        self.locks = locks;
    }

    /// Locks `key` at `score`, or unlocks it for `None`; true when that changed
    /// something.
    pub fn apply_lock(&mut self, key: ServiceKey, score: Option<u32>) -> bool {
        match score {
            Some(s) => self.locks.insert(key, s) != Some(s),
            None => self.locks.remove(&key).is_some(),
        }
    }

    /// Forgets a service: its registry entry, its lock and its "known" mark, so that
    /// a service registering later under the same type and id is treated as new.
    /// True when it was registered. A service that still heartbeats registers again
    /// at its next heartbeat.
    pub fn deregister(&mut self, key: &ServiceKey) -> bool {
        self.locks.remove(key);
        self.known.remove(key);
        self.services.remove(key).is_some()
    }

    /// Copy of what the lock file holds: locks and known services.
    pub fn lock_state(&self) -> LockState {
        LockState {
            locks: self.locks.clone(),
            known: self.known.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConscienceConfig;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn registry(step: u32) -> Registry {
        let exprs = ConscienceConfig {
            expressions: HashMap::from([("test".to_string(), "cpu".to_string())]),
            ..Default::default()
        }
        .validate()
        .unwrap();
        Registry::new(exprs, TIMEOUT, step, Locks::new())
    }

    fn report(id: &str, cpu: f64) -> Report {
        Report {
            service_type: "test".into(),
            id: id.into(),
            addr: "127.0.0.1:1".into(),
            location: "a.b.c.d".parse().unwrap(),
            stats: HashMap::from([("cpu".to_string(), cpu)]),
        }
    }

    #[test]
    fn rise_is_limited_and_drop_is_immediate() {
        let mut reg = registry(10);
        let t0 = Instant::now();
        let s = |reg: &mut Registry, cpu, secs| {
            reg.heartbeat(report("a", cpu), t0 + Duration::from_secs(secs))
                .unwrap()
                .score
        };
        assert_eq!(
            s(&mut reg, 95.0, 0),
            10,
            "new service starts at min(target, step)"
        );
        assert_eq!(s(&mut reg, 95.0, 1), 20);
        assert_eq!(s(&mut reg, 95.0, 2), 30);
        assert_eq!(s(&mut reg, 35.0, 3), 35);
        assert_eq!(s(&mut reg, 5.0, 4), 5, "drops at once");
        assert_eq!(s(&mut reg, 100.0, 5), 15);
        let mut reg = registry(10);
        assert_eq!(s(&mut reg, 4.0, 0), 4);
    }

    #[test]
    fn silent_service_is_down_with_score_zero_then_rises_again() {
        let mut reg = registry(50);
        let t0 = Instant::now();
        reg.heartbeat(report("a", 80.0), t0).unwrap();
        reg.heartbeat(report("a", 80.0), t0 + Duration::from_secs(1))
            .unwrap();
        let v = reg.get("test", "a", t0 + Duration::from_secs(6)).unwrap();
        assert!(v.up);
        assert_eq!(v.score, 80);
        let later = t0 + Duration::from_secs(7);
        let v = reg.get("test", "a", later).unwrap();
        assert!(!v.up);
        assert_eq!(v.score, 0);
        assert_eq!(v.last_seen_ago, Duration::from_secs(6));
        // Back: rises from 0 again.
        let r = reg.heartbeat(report("a", 80.0), later).unwrap();
        assert_eq!(
            (r.score, r.is_new, r.lock_state_changed),
            (50, false, false)
        );
    }

    #[test]
    fn locks_override_score_but_not_down() {
        let mut reg = registry(100);
        let t0 = Instant::now();
        reg.set_locks(Locks::from([(("test".to_string(), "a".to_string()), 7)]));
        assert_eq!(reg.heartbeat(report("a", 90.0), t0).unwrap().score, 7);
        let v = reg.get("test", "a", t0).unwrap();
        assert!(v.locked && v.up);
        assert_eq!(v.score, 7);
        let v = reg.get("test", "a", t0 + TIMEOUT * 2).unwrap();
        assert!(v.locked && !v.up);
        assert_eq!(v.score, 0);
        assert_eq!(reg.candidates("test", t0)[0].score, 7);
        assert_eq!(reg.candidates("test", t0 + TIMEOUT * 2)[0].score, 0);
        reg.set_locks(Locks::new());
        let v = reg.get("test", "a", t0).unwrap();
        assert!(!v.locked);
        assert_eq!(v.score, 90, "the underlying score kept tracking the stats");
    }

    #[test]
    fn list_is_sorted_and_filtered() {
        let mut reg = registry(10);
        let t0 = Instant::now();
        for (t, id) in [("zeta", "b"), ("test", "b"), ("test", "a"), ("alpha", "z")] {
            let mut r = report(id, 50.0);
            r.service_type = t.into();
            r.stats.insert("io".into(), 50.0);
            r.stats.insert("space".into(), 50.0);
            reg.heartbeat(r, t0).unwrap();
        }
        let all: Vec<(String, String)> = reg
            .list(None, t0)
            .into_iter()
            .map(|v| (v.service_type, v.id))
            .collect();
        let expected: Vec<(String, String)> =
            [("alpha", "z"), ("test", "a"), ("test", "b"), ("zeta", "b")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        assert_eq!(all, expected);
        let only: Vec<String> = reg
            .list(Some("test"), t0)
            .into_iter()
            .map(|v| v.id)
            .collect();
        assert_eq!(only, vec!["a", "b"]);
        assert!(reg.list(Some("tes"), t0).is_empty());
    }

    #[test]
    fn missing_stat_is_refused_naming_it() {
        let mut reg = registry(10);
        let mut r = report("a", 1.0);
        r.stats.clear();
        let err = reg.heartbeat(r, Instant::now()).unwrap_err();
        assert!(err.to_string().contains("stat `cpu` is missing"), "{err}");
        assert!(reg.is_empty());
    }

    #[test]
    fn report_validation() {
        let good = ServiceInfo {
            service_type: "rawx".into(),
            id: "rawx-0".into(),
            addr: "127.0.0.1:6200".into(),
            location: "a.b.c.d".into(),
            stats: HashMap::from([("cpu".to_string(), 1.0)]),
        };
        assert!(Report::try_from(good.clone()).is_ok());
        let mut bad = good.clone();
        bad.id.clear();
        assert!(Report::try_from(bad)
            .unwrap_err()
            .to_string()
            .contains("id is empty"));
        let mut bad = good.clone();
        bad.location = "a..b".into();
        assert!(Report::try_from(bad)
            .unwrap_err()
            .to_string()
            .contains("location"));
        let mut bad = good.clone();
        bad.stats.insert("io".into(), f64::NAN);
        assert!(Report::try_from(bad)
            .unwrap_err()
            .to_string()
            .contains("`io`"));
        let mut bad = good.clone();
        bad.stats = (0..=MAX_STATS).map(|i| (format!("s{i}"), 1.0)).collect();
        assert!(Report::try_from(bad).is_err());
        let mut bad = good;
        bad.addr = "x".repeat(MAX_FIELD_BYTES + 1);
        assert!(Report::try_from(bad).is_err());
    }

    #[test]
    fn full_registry_evicts_down_services_only() {
        let mut reg = registry(10).with_max_services(2);
        let t0 = Instant::now();
        reg.heartbeat(report("a", 50.0), t0).unwrap();
        reg.heartbeat(report("b", 50.0), t0 + Duration::from_secs(3))
            .unwrap();
        // Both up: refused, and known services still update.
        let err = reg
            .heartbeat(report("c", 50.0), t0 + Duration::from_secs(4))
            .unwrap_err();
        assert_eq!(err, HeartbeatError::Full(2));
        reg.heartbeat(report("b", 50.0), t0 + Duration::from_secs(4))
            .unwrap();
        // "a" is down at t0 + 6 s: it makes room.
        let later = t0 + Duration::from_secs(6);
        reg.heartbeat(report("c", 50.0), later).unwrap();
        let ids: Vec<String> = reg.list(None, later).into_iter().map(|v| v.id).collect();
        assert_eq!(ids, vec!["b", "c"]);
    }

    #[test]
    fn next_score_rules() {
        assert_eq!(next_score(None, 80, 10), 10);
        assert_eq!(next_score(None, 3, 10), 3);
        assert_eq!(next_score(Some(50), 80, 10), 60);
        assert_eq!(next_score(Some(50), 20, 10), 20);
        assert_eq!(next_score(Some(95), 100, 10), 100);
    }

    #[test]
    fn new_services_are_locked_at_first_registration_only() {
        let t0 = Instant::now();
        let known = Known::from([("test".to_string(), "old".to_string())]);
        let mut reg = registry(100).with_lock_new_services(Some(0), known);
        // Seen for the first time: locked at 0, state to persist.
        let r = reg.heartbeat(report("a", 90.0), t0).unwrap();
        assert_eq!(
            r,
            Registered {
                score: 0,
                is_new: true,
                lock_state_changed: true
            }
        );
        let v = reg.get("test", "a", t0).unwrap();
        assert!(v.locked && v.up);
        assert_eq!(v.score, 0);
        assert_eq!(reg.candidates("test", t0)[0].score, 0);
        // Later heartbeats change nothing.
        let r = reg.heartbeat(report("a", 90.0), t0).unwrap();
        assert!(!r.is_new && !r.lock_state_changed);
        // Known from the lock file: left alone.
        let r = reg.heartbeat(report("old", 90.0), t0).unwrap();
        assert_eq!((r.score, r.lock_state_changed), (90, false));
        // Unlocked by an admin, then forgotten (evicted) and back: not locked again.
        assert!(reg.apply_lock(("test".into(), "a".into()), None));
        let mut reg2 = registry(100).with_lock_new_services(Some(0), reg.lock_state().known);
        reg2.set_locks(reg.lock_state().locks);
        let r = reg2.heartbeat(report("a", 90.0), t0).unwrap();
        assert!(r.is_new && !r.lock_state_changed);
        assert_eq!(r.score, 90);
        let state = reg2.lock_state();
        assert!(state.locks.is_empty());
        assert_eq!(state.known.len(), 2);
        // Option off: nothing locked, nothing remembered.
        let mut off = registry(100);
        let r = off.heartbeat(report("b", 90.0), t0).unwrap();
        assert_eq!((r.score, r.lock_state_changed), (90, false));
        assert_eq!(off.lock_state(), LockState::default());
    }

    #[test]
    fn deregistered_services_are_forgotten_and_new_again() {
        let t0 = Instant::now();
        let mut reg = registry(100).with_lock_new_services(Some(0), Known::new());
        let key = ("test".to_string(), "a".to_string());
        assert!(reg.heartbeat(report("a", 90.0), t0).unwrap().is_new);
        reg.heartbeat(report("b", 90.0), t0).unwrap();
        assert!(reg.lock_state().known.contains(&key));
        assert!(reg.deregister(&key));
        assert!(reg.get("test", "a", t0).is_none());
        assert_eq!(reg.list(Some("test"), t0).len(), 1);
        assert!(reg.candidates("test", t0).iter().all(|c| c.id != "a"));
        let state = reg.lock_state();
        assert!(!state.known.contains(&key) && !state.locks.contains_key(&key));
        assert!(state
            .locks
            .contains_key(&("test".to_string(), "b".to_string())));
        // Forgotten: a later heartbeat registers it as new, locked again at first
        // registration.
        let r = reg.heartbeat(report("a", 90.0), t0).unwrap();
        assert!(r.is_new && r.lock_state_changed);
        assert_eq!(r.score, 0);
        // Unknown service: nothing to remove.
        assert!(!reg.deregister(&("test".to_string(), "zz".to_string())));
        // A lock on a service that never registered is dropped too.
        let ghost = ("test".to_string(), "ghost".to_string());
        reg.apply_lock(ghost.clone(), Some(3));
        assert!(!reg.deregister(&ghost));
        assert!(!reg.locks().contains_key(&ghost));
    }

    #[test]
    fn apply_lock_reports_changes() {
        let mut reg = registry(100);
        let k = ("test".to_string(), "a".to_string());
        assert!(reg.apply_lock(k.clone(), Some(5)));
        assert!(!reg.apply_lock(k.clone(), Some(5)));
        assert!(reg.apply_lock(k.clone(), Some(6)));
        assert_eq!(reg.locks().get(&k), Some(&6));
        assert!(reg.apply_lock(k.clone(), None));
        assert!(!reg.apply_lock(k, None));
    }
}
