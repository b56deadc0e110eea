//! The bytes a GetObject or HeadObject serves: the whole object, a `Range`, or one
//! part (`partNumber`) of an object completed from a multipart upload, counted by
//! position from 1 to the parts count that `x-amz-mp-parts-count` gives (so a client
//! that asks for parts 1 to N gets the whole object, whatever numbers the parts were
//! uploaded under), or the whole object as the one part of an object stored in one
//! piece. GET and HEAD both ask [`served`], so they answer the same length and
//! `Content-Range`.

use oxio_sdk::ContentHeader;
use s3s::dto::{PartNumber, Range};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

/// Largest part number S3 accepts.
const MAX_PART_NUMBER: PartNumber = 10_000;

/// The bytes a `partNumber` or a `Range` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRange {
    /// First byte.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
    /// How many parts the object has, for `x-amz-mp-parts-count` (none for a
    /// `Range`, and for an object stored in one piece, as S3).
    pub parts_count: Option<i32>,
}

impl PartRange {
    /// The `Content-Range` value, or none for an empty part (no range can say it).
    pub fn content_range(&self, size: u64) -> Option<String> {
        (self.end > self.start).then(|| format!("bytes {}-{}/{size}", self.start, self.end - 1))
    }
}

/// What a GET or HEAD of the object `header` describes serves: `None` for the whole
/// object, else the part or range asked for (an error for a bad or unsatisfiable
/// one, before any byte is read).
pub fn served(
    header: &ContentHeader,
    part_number: Option<PartNumber>,
    range: Option<&Range>,
) -> S3Result<Option<PartRange>> {
    match (part_number, range) {
        (Some(n), range) => resolve(header, n, range.is_some()).map(Some),
        (None, Some(r)) => {
            let r = r.check(header.size)?;
            Ok(Some(PartRange {
                start: r.start,
                end: r.end,
                parts_count: None,
            }))
        }
        (None, None) => Ok(None),
    }
}

/// The range of part `n` of the object `header` describes; `with_range` is whether
/// the request also has a `Range` header, which S3 refuses alongside `partNumber`.
fn resolve(header: &ContentHeader, n: PartNumber, with_range: bool) -> S3Result<PartRange> {
    if with_range {
        return Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        ));
    }
    if !(1..=MAX_PART_NUMBER).contains(&n) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    let index = (n - 1) as usize;
    if header.part_sizes.is_empty() {
        if is_multipart_etag(&header.etag) {
            // Completed before part sizes were recorded: the boundaries are unknown,
            // and guessing would serve the wrong bytes.
            return Err(s3_error!(
                NotImplemented,
                "this object's part boundaries were not recorded; read it with a Range"
            ));
        }
        if index > 0 {
            return Err(not_satisfiable());
        }
        return Ok(PartRange {
            start: 0,
            end: header.size,
            parts_count: None,
        });
    }
    let Some(&len) = header.part_sizes.get(index) else {
        return Err(not_satisfiable());
    };
    let start: u64 = header.part_sizes[..index].iter().sum();
    let end = start.saturating_add(len);
    if end > header.size {
        return Err(s3_error!(
            InternalError,
            "the object's part sizes add up to more than its size"
        ));
    }
    Ok(PartRange {
        start,
        end,
        parts_count: i32::try_from(header.part_sizes.len()).ok(),
    })
}

/// `416 InvalidPartNumber`, S3's answer for a part the object does not have.
fn not_satisfiable() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("InvalidPartNumber".into()),
        "The requested partnumber is not satisfiable",
    );
    e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
    e
}

/// An S3 multipart ETag: 32 hex digits, a dash, the parts count.
fn is_multipart_etag(etag: &str) -> bool {
    let bare = etag.trim_matches('"');
    match bare.split_once('-') {
        Some((md5, count)) => {
            md5.len() == 32
                && md5.bytes().all(|b| b.is_ascii_hexdigit())
                && !count.is_empty()
                && count.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: u64, parts: &[u64], etag: &str) -> ContentHeader {
        ContentHeader {
            size,
            part_sizes: parts.to_vec(),
            etag: etag.into(),
            ..Default::default()
        }
    }

    fn code(e: S3Error) -> (String, Option<http::StatusCode>) {
        (e.code().as_str().to_string(), e.status_code())
    }

    const MD5: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn parts_are_counted_by_position() {
        let h = header(12, &[5, 5, 2], &format!("{MD5}-3"));
        let got: Vec<_> = (1..=3).map(|n| resolve(&h, n, false).unwrap()).collect();
        assert_eq!(
            got.iter().map(|r| (r.start, r.end)).collect::<Vec<_>>(),
            [(0, 5), (5, 10), (10, 12)]
        );
        assert!(got.iter().all(|r| r.parts_count == Some(3)));
        assert_eq!(got[2].content_range(12).as_deref(), Some("bytes 10-11/12"));
        let e = resolve(&h, 4, false).unwrap_err();
        assert_eq!(
            code(e),
            (
                "InvalidPartNumber".into(),
                Some(http::StatusCode::RANGE_NOT_SATISFIABLE)
            )
        );
    }

    #[test]
    fn an_object_stored_in_one_piece_is_its_own_part_one() {
        let h = header(7, &[], MD5);
        let r = resolve(&h, 1, false).unwrap();
        assert_eq!((r.start, r.end, r.parts_count), (0, 7, None));
        assert_eq!(
            code(resolve(&h, 2, false).unwrap_err()).0,
            "InvalidPartNumber"
        );
        let empty = header(0, &[], MD5);
        assert_eq!(resolve(&empty, 1, false).unwrap().content_range(0), None);
    }

    #[test]
    fn bad_requests_are_refused_before_any_byte() {
        let h = header(10, &[5, 5], &format!("{MD5}-2"));
        assert_eq!(code(resolve(&h, 1, true).unwrap_err()).0, "InvalidRequest");
        for n in [0, -1, 10_001] {
            assert_eq!(
                code(resolve(&h, n, false).unwrap_err()).0,
                "InvalidArgument"
            );
        }
        // A multipart object whose part sizes were not recorded.
        let old = header(10, &[], &format!("\"{MD5}-2\""));
        assert_eq!(
            code(resolve(&old, 1, false).unwrap_err()).0,
            "NotImplemented"
        );
        // Sizes that overrun the object: damaged metadata, not bytes from elsewhere.
        let bad = header(9, &[5, 5], &format!("{MD5}-2"));
        assert_eq!(
            code(resolve(&bad, 2, false).unwrap_err()).0,
            "InternalError"
        );
    }
}
