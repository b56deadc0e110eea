//! Conditional requests: `If-Match`, `If-None-Match`, `If-Modified-Since` and
//! `If-Unmodified-Since` on GET / HEAD, and their `x-amz-copy-source-if-*` twins on
//! CopyObject, evaluated with the precedence of RFC 9110 §13.2.2 that S3 follows:
//!
//! 1. `If-Match` present: false → precondition failed (and `If-Unmodified-Since`
//!    is ignored, so a matching ETag wins over a stale date);
//! 2. otherwise `If-Unmodified-Since` false → precondition failed;
//! 3. `If-None-Match` present: false → not modified (and `If-Modified-Since` is
//!    ignored);
//! 4. otherwise `If-Modified-Since` false → not modified.
//!
//! HTTP dates have second precision, so the object's modification time is compared
//! truncated to whole seconds, as it is sent in `Last-Modified`.
//!
//! Conditional writes (`If-None-Match: *` and `If-Match` on PutObject and
//! CompleteMultipartUpload) are not evaluated here: [`write_condition`] turns them
//! into a condition the directory checks in the same Raft command that stores the
//! object, so two concurrent writers can never both pass.

use oxio_sdk::PutCondition;
use s3s::dto::{ETag, ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode};
use std::time::SystemTime;

/// The conditions of one request (all optional).
#[derive(Clone, Debug, Default)]
pub struct Conditions {
    /// `If-Match` (or `x-amz-copy-source-if-match`).
    pub if_match: Option<ETagCondition>,
    /// `If-None-Match` (or `x-amz-copy-source-if-none-match`).
    pub if_none_match: Option<ETagCondition>,
    /// `If-Modified-Since` (or `x-amz-copy-source-if-modified-since`).
    pub if_modified_since: Option<Timestamp>,
    /// `If-Unmodified-Since` (or `x-amz-copy-source-if-unmodified-since`).
    pub if_unmodified_since: Option<Timestamp>,
}

/// What the conditions say about an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Serve the request.
    Proceed,
    /// 304 Not Modified (GET / HEAD).
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// Seconds since the epoch of a timestamp (negative before 1970).
fn unix_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// Whether an ETag condition names the object's ETag (`*` names any object). ETags
/// compare by value, ignoring weakness, as S3 does.
fn etag_matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => {
            let v = match e {
                ETag::Strong(v) | ETag::Weak(v) => v,
            };
            v == etag
        }
    }
}

impl Conditions {
    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }

    /// Evaluates the conditions against an object with ETag `etag` (without quotes)
    /// last modified at `mtime_ms` (milliseconds since the epoch); `now` rejects
    /// `If-Modified-Since` dates in the future, which RFC 9110 says to ignore.
    pub fn evaluate(&self, etag: &str, mtime_ms: u64, now: SystemTime) -> Outcome {
        let mtime_s = (mtime_ms / 1000) as i64;
        match &self.if_match {
            Some(c) => {
                if !etag_matches(c, etag) {
                    return Outcome::PreconditionFailed;
                }
            }
            None => {
                if let Some(t) = &self.if_unmodified_since {
                    if mtime_s > unix_secs(t) {
                        return Outcome::PreconditionFailed;
                    }
                }
            }
        }
        match &self.if_none_match {
            Some(c) => {
                if etag_matches(c, etag) {
                    return Outcome::NotModified;
                }
            }
            None => {
                if let Some(t) = &self.if_modified_since {
                    let now_s = now
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0);
                    let since = unix_secs(t);
                    if since <= now_s && mtime_s <= since {
                        return Outcome::NotModified;
                    }
                }
            }
        }
        Outcome::Proceed
    }
}

/// The S3 error for an outcome of GET / HEAD, `None` to proceed. A 304 carries the
/// object's `ETag` and `Last-Modified`, as AWS sends them.
pub fn get_error(outcome: Outcome, etag: &str, last_modified: &Timestamp) -> Option<S3Error> {
    match outcome {
        Outcome::Proceed => None,
        Outcome::PreconditionFailed => Some(S3Error::with_message(
            S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        )),
        Outcome::NotModified => {
            let mut e = S3Error::with_message(S3ErrorCode::NotModified, "Not Modified");
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&format!("\"{etag}\"")) {
                headers.insert(http::header::ETAG, v);
            }
            let mut buf = Vec::new();
            if last_modified
                .format(s3s::dto::TimestampFormat::HttpDate, &mut buf)
                .is_ok()
            {
                if let Ok(v) = http::HeaderValue::from_bytes(&buf) {
                    headers.insert(http::header::LAST_MODIFIED, v);
                }
            }
            e.set_headers(headers);
            Some(e)
        }
    }
}

/// The S3 error for an outcome of the copy-source conditions, `None` to proceed:
/// CopyObject answers every failed condition with 412, never 304.
pub fn copy_error(outcome: Outcome) -> Option<S3Error> {
    match outcome {
        Outcome::Proceed => None,
        Outcome::NotModified | Outcome::PreconditionFailed => Some(S3Error::with_message(
            S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        )),
    }
}

/// The condition of a PutObject or CompleteMultipartUpload: `If-None-Match` accepts
/// only `*` (anything else answers `NotImplemented`, as AWS), `If-Match` an ETag (or
/// `*`: the key must hold an object).
pub fn write_condition(
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
) -> Result<Option<PutCondition>, S3Error> {
    let if_none_match = match if_none_match {
        None => false,
        Some(ETagCondition::Any) => true,
        Some(ETagCondition::ETag(_)) => {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "A header you provided implies functionality that is not implemented: \
                 If-None-Match on a write accepts only '*'",
            ))
        }
    };
    let if_match = match if_match {
        None => String::new(),
        Some(ETagCondition::Any) => "*".to_string(),
        Some(ETagCondition::ETag(e)) => e.value().to_string(),
    };
    if !if_none_match && if_match.is_empty() {
        return Ok(None);
    }
    Ok(Some(PutCondition {
        if_none_match,
        if_match,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const ETAG: &str = "0123456789abcdef0123456789abcdef";
    /// The object was modified at 1,000,000.5 s.
    const MTIME_MS: u64 = 1_000_000_500;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(2_000_000)
    }

    fn tag(v: &str) -> Option<ETagCondition> {
        Some(ETagCondition::ETag(ETag::Strong(v.to_string())))
    }

    fn eval(c: Conditions) -> Outcome {
        c.evaluate(ETAG, MTIME_MS, now())
    }

    #[test]
    fn no_condition_proceeds() {
        assert!(Conditions::default().is_empty());
        assert_eq!(eval(Conditions::default()), Outcome::Proceed);
    }

    #[test]
    fn if_match() {
        let ok = Conditions {
            if_match: tag(ETAG),
            ..Default::default()
        };
        assert_eq!(eval(ok), Outcome::Proceed);
        let any = Conditions {
            if_match: Some(ETagCondition::Any),
            ..Default::default()
        };
        assert_eq!(eval(any), Outcome::Proceed);
        let bad = Conditions {
            if_match: tag("other"),
            ..Default::default()
        };
        assert_eq!(eval(bad), Outcome::PreconditionFailed);
    }

    #[test]
    fn if_none_match() {
        let same = Conditions {
            if_none_match: tag(ETAG),
            ..Default::default()
        };
        assert_eq!(eval(same), Outcome::NotModified);
        let any = Conditions {
            if_none_match: Some(ETagCondition::Any),
            ..Default::default()
        };
        assert_eq!(eval(any), Outcome::NotModified);
        let other = Conditions {
            if_none_match: tag("other"),
            ..Default::default()
        };
        assert_eq!(eval(other), Outcome::Proceed);
    }

    #[test]
    fn dates_compare_at_second_precision() {
        // Last-Modified is 1,000,000 s: "since 1,000,000" means not modified.
        let ims = |s| Conditions {
            if_modified_since: Some(at(s)),
            ..Default::default()
        };
        assert_eq!(eval(ims(1_000_000)), Outcome::NotModified);
        assert_eq!(eval(ims(1_000_001)), Outcome::NotModified);
        assert_eq!(eval(ims(999_999)), Outcome::Proceed);
        let ius = |s| Conditions {
            if_unmodified_since: Some(at(s)),
            ..Default::default()
        };
        assert_eq!(eval(ius(1_000_000)), Outcome::Proceed);
        assert_eq!(eval(ius(999_999)), Outcome::PreconditionFailed);
    }

    #[test]
    fn if_modified_since_in_the_future_is_ignored() {
        let c = Conditions {
            if_modified_since: Some(at(3_000_000)),
            ..Default::default()
        };
        assert_eq!(eval(c), Outcome::Proceed);
    }

    #[test]
    fn if_match_wins_over_if_unmodified_since() {
        // AWS: If-Match true and If-Unmodified-Since false → 200.
        let c = Conditions {
            if_match: tag(ETAG),
            if_unmodified_since: Some(at(1)),
            ..Default::default()
        };
        assert_eq!(eval(c), Outcome::Proceed);
        let c = Conditions {
            if_match: tag("other"),
            if_unmodified_since: Some(at(1_500_000)),
            ..Default::default()
        };
        assert_eq!(eval(c), Outcome::PreconditionFailed);
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        // AWS: If-None-Match false and If-Modified-Since true → 304.
        let c = Conditions {
            if_none_match: tag(ETAG),
            if_modified_since: Some(at(1)),
            ..Default::default()
        };
        assert_eq!(eval(c), Outcome::NotModified);
        // If-None-Match true: the stale If-Modified-Since is ignored.
        let c = Conditions {
            if_none_match: tag("other"),
            if_modified_since: Some(at(1_500_000)),
            ..Default::default()
        };
        assert_eq!(eval(c), Outcome::Proceed);
    }

    #[test]
    fn precondition_failure_comes_before_not_modified() {
        let c = Conditions {
            if_match: tag("other"),
            if_none_match: tag(ETAG),
            ..Default::default()
        };
        assert_eq!(eval(c), Outcome::PreconditionFailed);
    }

    #[test]
    fn errors_carry_codes_and_validators() {
        let lm = at(1_000_000);
        assert!(get_error(Outcome::Proceed, ETAG, &lm).is_none());
        let e = get_error(Outcome::NotModified, ETAG, &lm).unwrap();
        assert_eq!(*e.code(), S3ErrorCode::NotModified);
        let h = e.headers().unwrap();
        assert_eq!(h[http::header::ETAG], format!("\"{ETAG}\"").as_str());
        assert_eq!(
            h[http::header::LAST_MODIFIED],
            "Mon, 12 Jan 1970 13:46:40 GMT"
        );
        let e = get_error(Outcome::PreconditionFailed, ETAG, &lm).unwrap();
        assert_eq!(*e.code(), S3ErrorCode::PreconditionFailed);
        let e = copy_error(Outcome::NotModified).unwrap();
        assert_eq!(*e.code(), S3ErrorCode::PreconditionFailed);
        assert!(copy_error(Outcome::Proceed).is_none());
    }

    #[test]
    fn write_conditions_take_star_or_an_etag() {
        assert!(write_condition(None, None).unwrap().is_none());
        let c = write_condition(None, Some(ETagCondition::Any))
            .unwrap()
            .unwrap();
        assert!(c.if_none_match && c.if_match.is_empty());
        let e = ETagCondition::ETag(ETag::Strong("abc".into()));
        let c = write_condition(Some(e.clone()), None).unwrap().unwrap();
        assert!(!c.if_none_match);
        assert_eq!(c.if_match, "abc");
        let c = write_condition(Some(ETagCondition::Any), None)
            .unwrap()
            .unwrap();
        assert_eq!(c.if_match, "*");
        let err = write_condition(None, Some(e)).unwrap_err();
        assert_eq!(*err.code(), S3ErrorCode::NotImplemented);
    }
}
