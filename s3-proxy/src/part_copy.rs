//! UploadPartCopy: a part of a multipart upload made from (a byte range of) an
//! existing object, read through the sdk and streamed into the part inside the
//! gateway: the bytes never go back to the client. Covers `x-amz-copy-source`,
//! `x-amz-copy-source-range: bytes=first-last` and the `x-amz-copy-source-if-*`
//! conditions, with AWS's error codes (`InvalidArgument` for a malformed range,
//! `InvalidRange` for one past the end of the source).

use crate::conditional::{copy_error, Conditions};
use crate::copy::{self, source_stream, MAX_COPY_BYTES};
use crate::multipart::{mpu_error, part_number};
use crate::service::timestamp_ms;
use oxio_sdk::multipart::MultipartError;
use oxio_sdk::Client;
use s3s::dto::*;
use s3s::{s3_error, S3Result};
use std::time::SystemTime;

/// Longest `x-amz-copy-source-range` header accepted, in bytes.
const MAX_RANGE_HEADER_BYTES: usize = 64;

/// A range parsed from `x-amz-copy-source-range`: inclusive offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyRange {
    /// First byte.
    pub first: u64,
    /// Last byte (inclusive).
    pub last: u64,
}

fn malformed() -> s3s::S3Error {
    s3_error!(
        InvalidArgument,
        "The x-amz-copy-source-range value must be of the form bytes=first-last where first \
         and last are the zero-based offsets of the first and last bytes to copy"
    )
}

/// Parses `bytes=first-last` (both offsets required, `first <= last`).
pub fn parse_range(v: &str) -> S3Result<CopyRange> {
    if v.len() > MAX_RANGE_HEADER_BYTES {
        return Err(malformed());
    }
    let spec = v.trim().strip_prefix("bytes=").ok_or_else(malformed)?;
    let (a, b) = spec.split_once('-').ok_or_else(malformed)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return Err(malformed());
    }
    let first: u64 = a.parse().map_err(|_| malformed())?;
    let last: u64 = b.parse().map_err(|_| malformed())?;
    if first > last {
        return Err(malformed());
    }
    Ok(CopyRange { first, last })
}

/// The byte span `start..end` a part copy reads from a source of `size` bytes.
pub fn span(range: Option<&str>, size: u64) -> S3Result<(u64, u64)> {
    let (start, end) = match range {
        None => (0, size),
        Some(r) => {
            let r = parse_range(r)?;
            if r.last >= size {
                return Err(s3_error!(
                    InvalidRange,
                    "The specified copy range is invalid for the source object size"
                ));
            }
            (r.first, r.last + 1)
        }
    };
    if end - start > MAX_COPY_BYTES {
        return Err(s3_error!(
            InvalidRequest,
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
        ));
    }
    Ok((start, end))
}

/// UploadPartCopy within the account `account`.
pub async fn upload_part_copy(
    sdk: &Client,
    account: &str,
    input: UploadPartCopyInput,
) -> S3Result<UploadPartCopyOutput> {
    let n = part_number(input.part_number)?;
    let src = copy::source(&input.copy_source)?;
    // The range's form is checked before anything is read.
    if let Some(r) = input.copy_source_range.as_deref() {
        parse_range(r)?;
    }
    let header = crate::versioning::lookup(
        sdk,
        account,
        &src.bucket,
        &src.key,
        src.version_id.as_deref(),
    )
    .await?;
    let conditions = Conditions {
        if_match: input.copy_source_if_match,
        if_none_match: input.copy_source_if_none_match,
        if_modified_since: input.copy_source_if_modified_since,
        if_unmodified_since: input.copy_source_if_unmodified_since,
    };
    if let Some(e) =
        copy_error(conditions.evaluate(&header.etag, header.mtime_ms, SystemTime::now()))
    {
        return Err(e);
    }
    let (start, end) = span(input.copy_source_range.as_deref(), header.size)?;
    tracing::debug!(src_bucket = %src.bucket, src_key = %src.key, start, end, "copying part");
    let (stream, source_error) = source_stream(sdk, header, start, end);
    let part = sdk
        .upload_part(
            account,
            &input.bucket,
            &input.key,
            &input.upload_id,
            n,
            stream,
            Some(end - start),
            None,
        )
        .await;
    let part = match part {
        Ok(p) => p,
        Err(e) => {
            // A failed read of the source explains the failure better than the
            // truncated body the part upload saw.
            if let Some(src_err) = source_error.lock().ok().and_then(|mut s| s.take()) {
                return Err(mpu_error(MultipartError::Sdk(src_err)));
            }
            return Err(mpu_error(e));
        }
    };
    Ok(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag)),
            last_modified: Some(timestamp_ms(part.mtime_ms)),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3ErrorCode;

    #[test]
    fn ranges_need_both_offsets_in_order() {
        assert_eq!(
            parse_range("bytes=0-9").unwrap(),
            CopyRange { first: 0, last: 9 }
        );
        assert_eq!(parse_range("bytes=5-5").unwrap().last, 5);
        for bad in [
            "bytes=5-3",
            "bytes=-5",
            "bytes=5-",
            "0-5",
            "bytes=a-b",
            "bytes=1-2,4-5",
        ] {
            let e = parse_range(bad).unwrap_err();
            assert_eq!(*e.code(), S3ErrorCode::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn spans_stay_inside_the_source() {
        assert_eq!(span(None, 100).unwrap(), (0, 100));
        assert_eq!(span(Some("bytes=10-19"), 100).unwrap(), (10, 20));
        assert_eq!(span(Some("bytes=0-99"), 100).unwrap(), (0, 100));
        let e = span(Some("bytes=0-100"), 100).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::InvalidRange);
        let e = span(None, MAX_COPY_BYTES + 1).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::InvalidRequest);
    }
}
