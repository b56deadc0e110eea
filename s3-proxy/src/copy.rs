//! CopyObject: the source is read through the sdk and streamed into a new put,
//! server side, never whole in memory. Covers the copy source (URL-decoded by
//! `s3s`; `?versionId=` reads that version of a versioned bucket), the `x-amz-metadata-directive` (`COPY` keeps the source's
//! headers and metadata, `REPLACE` takes the request's), the
//! `x-amz-copy-source-if-*` conditions, the destination's `If-None-Match: *` /
//! `If-Match` (checked in the Raft apply as for PutObject) and AWS's refusal of a
//! copy onto itself that changes nothing.

use crate::conditional::{copy_error, Conditions};
use crate::error::s3_error;
use crate::headers::{copied_options, put_options, HeaderInputs};
use crate::service::timestamp_ms;
use crate::storage_class::StorageClasses;
use bytes::Bytes;
use oxio_sdk::{Client, ContentHeader};
use s3s::dto::*;
use s3s::{s3_error, S3Result};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Largest object CopyObject copies (as S3: 5 GiB; larger needs UploadPartCopy).
pub const MAX_COPY_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// The policy name of objects stored inline.
const INLINE_POLICY: &str = "INLINE";

/// The object a copy reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Bucket (of the requester's account).
    pub bucket: String,
    /// Key, URL-decoded.
    pub key: String,
    /// The version to read (`None`: the latest).
    pub version_id: Option<String>,
}

/// What to do with the stored headers and metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directive {
    /// Keep the source's (the default).
    Copy,
    /// Take the request's.
    Replace,
}

/// The bucket, key and version of a copy source. Access point and outpost ARNs are
/// not served; a malformed version id is `InvalidArgument`.
pub fn source(cs: &CopySource) -> S3Result<Source> {
    match cs {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            let version_id = crate::versioning::version_arg(version_id.as_deref())?;
            Ok(Source {
                bucket: bucket.to_string(),
                key: key.to_string(),
                version_id: version_id.map(str::to_string),
            })
        }
        _ => Err(s3_error!(
            NotImplemented,
            "Copy sources naming an access point or outpost are not supported"
        )),
    }
}

/// The metadata directive (`COPY` when absent).
pub fn directive(d: Option<&MetadataDirective>) -> S3Result<Directive> {
    match d.map(|d| d.as_str()) {
        None | Some(MetadataDirective::COPY) => Ok(Directive::Copy),
        Some(MetadataDirective::REPLACE) => Ok(Directive::Replace),
        Some(_) => Err(s3_error!(InvalidArgument, "Unknown metadata directive.")),
    }
}

/// Refuses copying an object onto itself while changing nothing, as S3 does (copying
/// a named version onto its key restores it, and is allowed).
pub fn check_not_self_copy(
    src: &Source,
    dst_bucket: &str,
    dst_key: &str,
    d: Directive,
) -> S3Result<()> {
    if d == Directive::Copy
        && src.version_id.is_none()
        && src.bucket == dst_bucket
        && src.key == dst_key
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata, storage class, website redirect \
             location or encryption attributes."
        ));
    }
    Ok(())
}

/// A finished copy.
pub struct Copied {
    /// The answer.
    pub output: CopyObjectOutput,
    /// Whether the new object was stored inline (in its content header).
    pub inline: bool,
}

/// The write condition on the destination key a CopyObject carries in `If-Match` /
/// `If-None-Match` (the input type of `s3s` has no field for them); the same rules
/// as PutObject's.
pub fn destination_condition(
    headers: &http::HeaderMap,
) -> S3Result<Option<oxio_sdk::PutCondition>> {
    let parse = |name: http::header::HeaderName| {
        headers
            .get(name)
            .map(|v| {
                ETagCondition::parse_http_header(v.as_bytes())
                    .map_err(|_| s3_error!(InvalidArgument, "invalid ETag condition"))
            })
            .transpose()
    };
    crate::conditional::write_condition(
        parse(http::header::IF_MATCH)?,
        parse(http::header::IF_NONE_MATCH)?,
    )
}

/// CopyObject within the account `account`.
pub async fn copy_object(
    sdk: &Client,
    classes: &StorageClasses,
    account: &str,
    input: CopyObjectInput,
    condition: Option<oxio_sdk::PutCondition>,
) -> S3Result<Copied> {
    let src = source(&input.copy_source)?;
    let d = directive(input.metadata_directive.as_ref())?;
    check_not_self_copy(&src, &input.bucket, &input.key, d)?;
    let header = crate::versioning::lookup(
        sdk,
        account,
        &src.bucket,
        &src.key,
        src.version_id.as_deref(),
    )
    .await?;
    let source_version = crate::versioning::version_header(&header);
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
    if header.size > MAX_COPY_BYTES {
        return Err(s3_error!(
            InvalidRequest,
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
        ));
    }
    let mut opts = match d {
        Directive::Copy => copied_options(&header),
        Directive::Replace => put_options(HeaderInputs {
            content_type: input.content_type,
            cache_control: input.cache_control,
            content_disposition: input.content_disposition,
            content_encoding: input.content_encoding,
            content_language: input.content_language,
            expires: input.expires,
            metadata: input.metadata,
        })?,
    };
    opts.expected_len = Some(header.size);
    opts.condition = condition;
    opts.tags = crate::tagging::for_copy(
        input.tagging_directive.as_ref(),
        input.tagging.as_deref(),
        &header.tags,
    )?;
    // The copy gets the class the request names (STANDARD when none), as AWS.
    classes.apply(input.storage_class.as_ref().map(|c| c.as_str()), &mut opts)?;
    tracing::debug!(src_bucket = %src.bucket, src_key = %src.key, size = header.size, "copying");
    let size = header.size;
    let (stream, source_error) = source_stream(sdk, header, 0, size);
    let stored = sdk
        .put_object(account, &input.bucket, &input.key, stream, opts)
        .await;
    let stored = match stored {
        Ok(h) => h,
        Err(e) => {
            // A failed read of the source explains the failure better than the
            // truncated body the put saw.
            let source_failure = source_error.lock().ok().and_then(|mut s| s.take());
            return Err(s3_error(source_failure.unwrap_or(e)));
        }
    };
    let output = CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(stored.etag.clone())),
            last_modified: Some(timestamp_ms(stored.mtime_ms)),
            ..Default::default()
        }),
        version_id: crate::versioning::version_header(&stored),
        copy_source_version_id: source_version,
        ..Default::default()
    };
    Ok(Copied {
        output,
        inline: stored.policy == INLINE_POLICY,
    })
}

/// Where a source read failure is kept for the caller.
pub(crate) type SourceError = Arc<Mutex<Option<oxio_sdk::Error>>>;

/// Bytes `start..end` of the source object as a byte stream; a read error ends the
/// stream and is kept in the returned slot.
pub(crate) fn source_stream(
    sdk: &Client,
    header: ContentHeader,
    start: u64,
    end: u64,
) -> (
    impl futures::Stream<Item = Result<Bytes, String>> + Unpin + Send,
    SourceError,
) {
    let mut rx = sdk.read_object(header, start, end);
    let slot: SourceError = Arc::new(Mutex::new(None));
    let keep = slot.clone();
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|item| {
            item.map(|r| {
                r.map_err(|e| {
                    let msg = format!("reading the copy source: {e}");
                    if let Ok(mut s) = keep.lock() {
                        s.get_or_insert(e);
                    }
                    msg
                })
            })
        })
    });
    (stream, slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3ErrorCode;

    fn parse(h: &str) -> S3Result<Source> {
        source(&CopySource::parse(h).unwrap())
    }

    #[test]
    fn copy_source_keys_are_url_decoded_literally() {
        let s = parse("/src-bucket/dir/a%20b%2Bc%3Dd%25e%C3%A9/..%2Fx").unwrap();
        assert_eq!(s.bucket, "src-bucket");
        assert_eq!(s.key, "dir/a b+c=d%eé/../x");
        // Without the leading slash too.
        assert_eq!(parse("b-1/k").unwrap().key, "k");
    }

    #[test]
    fn source_versions_are_kept_and_malformed_ones_refused() {
        let s = parse("/bkt/k?versionId=null").unwrap();
        assert_eq!(
            (s.key.as_str(), s.version_id.as_deref()),
            ("k", Some("null"))
        );
        let s = parse("/bkt/k?versionId=0000000000abcdef").unwrap();
        assert_eq!(s.version_id.as_deref(), Some("0000000000abcdef"));
        assert_eq!(parse("/bkt/k").unwrap().version_id, None);
        let e = parse("/bkt/k?versionId=3HL4kqtJlcpXroDTDmJ").unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::InvalidArgument);
    }

    #[test]
    fn arn_sources_are_refused() {
        let cs = CopySource::parse("arn:aws:s3:us-east-1:123456789012:accesspoint/my-ap/object/k")
            .unwrap();
        assert_eq!(
            *source(&cs).unwrap_err().code(),
            S3ErrorCode::NotImplemented
        );
    }

    #[test]
    fn metadata_directive() {
        assert_eq!(directive(None).unwrap(), Directive::Copy);
        let copy = MetadataDirective::from_static(MetadataDirective::COPY);
        assert_eq!(directive(Some(&copy)).unwrap(), Directive::Copy);
        let replace = MetadataDirective::from_static(MetadataDirective::REPLACE);
        assert_eq!(directive(Some(&replace)).unwrap(), Directive::Replace);
        let bad = MetadataDirective::from("MERGE".to_string());
        assert_eq!(
            *directive(Some(&bad)).unwrap_err().code(),
            S3ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn self_copy_needs_a_change() {
        let src = Source {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
        };
        let e = check_not_self_copy(&src, "b", "k", Directive::Copy).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::InvalidRequest);
        assert!(check_not_self_copy(&src, "b", "k", Directive::Replace).is_ok());
        assert!(check_not_self_copy(&src, "b", "k2", Directive::Copy).is_ok());
        assert!(check_not_self_copy(&src, "b2", "k", Directive::Copy).is_ok());
    }
}
