//! Bucket versioning: Put/GetBucketVersioning, reading one version (delete markers
//! answer 404 `NoSuchKey` with `x-amz-delete-marker: true` as the latest, 405
//! `MethodNotAllowed` when named), DeleteObject with or without `versionId`, and
//! ListObjectVersions with prefix, delimiter, `key-marker` / `version-id-marker`
//! paging and `encoding-type=url`.

use crate::error::s3_error;
use crate::listing::{max_keys, url_encode, url_encoding};
use crate::service::timestamp_ms;
use oxio_sdk::client::{DeleteOutcome, VersionQuery};
use oxio_sdk::{Client, ContentHeader};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

/// A `versionId` argument: `None` when absent, 400 `InvalidArgument` when it is
/// not an id this gateway hands out (`null` or 16 hex digits), as AWS answers.
pub fn version_arg(v: Option<&str>) -> S3Result<Option<&str>> {
    let Some(v) = v else {
        return Ok(None);
    };
    let ok = v == "null" || (v.len() == 16 && v.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(Some(v))
    } else {
        Err(s3_error!(InvalidArgument, "Invalid version id specified"))
    }
}

/// The `x-amz-version-id` to answer for a stored header (none when unversioned).
pub fn version_header(h: &ContentHeader) -> Option<String> {
    (!h.version_id.is_empty()).then(|| h.version_id.clone())
}

fn marker_error(code: S3ErrorCode, msg: &'static str, h: &ContentHeader) -> S3Error {
    let mut e = S3Error::with_message(code, msg);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&h.version_id) {
        headers.insert("x-amz-version-id", v);
    }
    e.set_headers(headers);
    e
}

/// The header of the object (or of the named version) a GET, HEAD or copy reads.
pub async fn lookup(
    sdk: &Client,
    account: &str,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<ContentHeader> {
    let version_id = version_arg(version_id)?;
    match sdk
        .head_object_version(account, bucket, key, version_id)
        .await
        .map_err(s3_error)?
    {
        Some(h) if h.delete_marker && version_id.is_some() => Err(marker_error(
            S3ErrorCode::MethodNotAllowed,
            "The specified method is not allowed against this resource.",
            &h,
        )),
        Some(h) if h.delete_marker => Err(marker_error(
            S3ErrorCode::NoSuchKey,
            "The specified key does not exist.",
            &h,
        )),
        Some(h) => Ok(h),
        None => Err(s3_error!(
            NoSuchVersion,
            "The specified version does not exist."
        )),
    }
}

/// PutBucketVersioning: `Enabled` or `Suspended` (anything else, including no
/// status, is `MalformedXML`; a bucket never goes back to unversioned).
pub async fn put_bucket(
    sdk: &Client,
    account: &str,
    input: PutBucketVersioningInput,
) -> S3Result<()> {
    if input.mfa.is_some() || input.versioning_configuration.mfa_delete.is_some() {
        return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
    }
    let status = input
        .versioning_configuration
        .status
        .as_ref()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    if status != BucketVersioningStatus::ENABLED && status != BucketVersioningStatus::SUSPENDED {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    sdk.set_versioning(account, &input.bucket, &status)
        .await
        .map_err(s3_error)?;
    Ok(())
}

/// GetBucketVersioning: no status at all for a bucket never configured.
pub async fn get_bucket(
    sdk: &Client,
    account: &str,
    bucket: &str,
) -> S3Result<GetBucketVersioningOutput> {
    let stats = sdk
        .container_stats(account, bucket)
        .await
        .map_err(s3_error)?;
    Ok(GetBucketVersioningOutput {
        status: (!stats.versioning.is_empty())
            .then(|| BucketVersioningStatus::from(stats.versioning)),
        mfa_delete: None,
    })
}

/// DeleteObject with an optional `versionId`. Deleting a missing key (or a missing
/// version) succeeds, as in S3.
pub async fn delete(
    sdk: &Client,
    account: &str,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<DeleteOutcome> {
    let version_id = version_arg(version_id)?;
    match sdk
        .delete_object_version(account, bucket, key, version_id)
        .await
    {
        Ok(o) => Ok(o),
        Err(oxio_sdk::Error::NoSuchKey) => Ok(DeleteOutcome {
            version_id: version_id.unwrap_or_default().to_string(),
            ..Default::default()
        }),
        Err(e) => Err(s3_error(e)),
    }
}

/// The DeleteObject answer for what a delete did.
pub fn delete_output(o: &DeleteOutcome) -> DeleteObjectOutput {
    DeleteObjectOutput {
        delete_marker: o.delete_marker.then_some(true),
        version_id: (!o.version_id.is_empty()).then(|| o.version_id.clone()),
        ..Default::default()
    }
}

fn owner(account: &str) -> Owner {
    Owner {
        display_name: Some(account.to_string()),
        id: Some(account.to_string()),
    }
}

/// ListObjectVersions.
pub async fn list(
    sdk: &Client,
    account: &str,
    input: ListObjectVersionsInput,
) -> S3Result<ListObjectVersionsOutput> {
    let url = url_encoding(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let version_id_marker = input.version_id_marker.clone().unwrap_or_default();
    if !version_id_marker.is_empty() {
        if key_marker.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        version_arg(Some(&version_id_marker))?;
    }
    let q = VersionQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().unwrap_or_default(),
        key_marker: key_marker.clone(),
        version_id_marker: version_id_marker.clone(),
        max_keys: max as u32,
    };
    let page = if max == 0 {
        Default::default()
    } else {
        sdk.list_object_versions(account, &input.bucket, &q)
            .await
            .map_err(s3_error)?
    };
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for v in page.versions {
        if v.delete_marker {
            markers.push(DeleteMarkerEntry {
                is_latest: Some(v.is_latest),
                key: Some(enc(v.key)),
                last_modified: Some(timestamp_ms(v.mtime_ms)),
                owner: Some(owner(account)),
                version_id: Some(v.version_id),
            });
        } else {
            versions.push(ObjectVersion {
                e_tag: Some(ETag::Strong(v.etag)),
                is_latest: Some(v.is_latest),
                key: Some(enc(v.key)),
                last_modified: Some(timestamp_ms(v.mtime_ms)),
                owner: Some(owner(account)),
                size: Some(v.size as i64),
                storage_class: Some(if v.storage_class.is_empty() {
                    ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)
                } else {
                    ObjectVersionStorageClass::from(v.storage_class)
                }),
                version_id: Some(v.version_id),
                ..Default::default()
            });
        }
    }
    let common: Vec<CommonPrefix> = page
        .common_prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    Ok(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(enc(q.prefix)),
        delimiter: input.delimiter.map(enc),
        key_marker: Some(enc(key_marker)),
        version_id_marker: Some(version_id_marker),
        max_keys: Some(max),
        encoding_type: input.encoding_type,
        is_truncated: Some(page.truncated),
        next_key_marker: page.truncated.then(|| enc(page.next_key_marker)),
        next_version_id_marker: (page.truncated && !page.next_version_id_marker.is_empty())
            .then_some(page.next_version_id_marker),
        versions: (!versions.is_empty()).then_some(versions),
        delete_markers: (!markers.is_empty()).then_some(markers),
        common_prefixes: (!common.is_empty()).then_some(common),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_are_null_or_16_hex_digits() {
        assert_eq!(version_arg(None).unwrap(), None);
        assert_eq!(version_arg(Some("null")).unwrap(), Some("null"));
        assert_eq!(
            version_arg(Some("00000000deadBEEF")).unwrap(),
            Some("00000000deadBEEF")
        );
        for bad in [
            "",
            "abc",
            "3HL4kqtJlcpXroDTDmJ",
            "00000000deadbeefa",
            "Null",
        ] {
            let e = version_arg(Some(bad)).unwrap_err();
            assert_eq!(*e.code(), S3ErrorCode::InvalidArgument, "{bad}");
        }
    }
}
