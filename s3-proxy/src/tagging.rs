//! Object and bucket tagging: the six tagging operations, the `x-amz-tagging` header
//! of PutObject, CopyObject (`x-amz-tagging-directive`) and CreateMultipartUpload, and
//! the validation AWS applies to tag sets (answered as `InvalidTag`). Object tags are
//! changed in place in the directory (same version, same chunks).

use crate::error::s3_error;
use oxio_sdk::{Client, Tag};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

/// Most tags on an object (as AWS).
pub const MAX_OBJECT_TAGS: usize = 10;
/// Most tags on a bucket (as AWS).
pub const MAX_BUCKET_TAGS: usize = 50;
/// Longest tag key, in Unicode characters (as AWS).
pub const MAX_KEY_CHARS: usize = 128;
/// Longest tag value, in Unicode characters (as AWS).
pub const MAX_VALUE_CHARS: usize = 256;
/// Longest `x-amz-tagging` header accepted, in bytes (10 tags of the longest key and
/// value, every byte percent-encoded as up to 4 bytes of UTF-8).
pub const MAX_TAGGING_HEADER_BYTES: usize = 10 * (MAX_KEY_CHARS + MAX_VALUE_CHARS + 2) * 12;

fn invalid_tag(msg: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidTag, msg.to_string())
}

/// Checks `(key, value)` pairs against AWS's rules (at most `max` tags, key 1 to 128
/// and value up to 256 Unicode characters, no repeated key, no `aws:` key) and
/// returns them as stored tags.
pub fn check(pairs: Vec<(String, String)>, max: usize, what: &str) -> S3Result<Vec<Tag>> {
    if pairs.len() > max {
        return Err(invalid_tag(&format!(
            "{what} tags cannot be greater than {max}"
        )));
    }
    let mut out: Vec<Tag> = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        if key.is_empty() {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if key.chars().count() > MAX_KEY_CHARS {
            return Err(invalid_tag(
                "The TagKey you have provided is too long, max 128",
            ));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(invalid_tag(
                "The TagValue you have provided is too long, max 256",
            ));
        }
        if key.starts_with("aws:") {
            return Err(invalid_tag(
                "System tags cannot be added/updated by requester",
            ));
        }
        if out.iter().any(|t| t.key == key) {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
        out.push(Tag { key, value });
    }
    Ok(out)
}

/// The pairs of an XML tag set (a tag without a key is invalid; no value is "").
fn pairs_of(set: TagSet) -> S3Result<Vec<(String, String)>> {
    set.into_iter()
        .map(|t| match t.key {
            Some(k) => Ok((k, t.value.unwrap_or_default())),
            None => Err(invalid_tag("The TagKey you have provided is invalid")),
        })
        .collect()
}

/// The stored tags as an XML tag set.
pub fn tag_set(tags: &[Tag]) -> TagSet {
    tags.iter()
        .map(|t| s3s::dto::Tag {
            key: Some(t.key.clone()),
            value: Some(t.value.clone()),
        })
        .collect()
}

fn percent_decode(s: &str) -> S3Result<String> {
    let bad = || {
        s3_error!(InvalidArgument, "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.")
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// The tags of an `x-amz-tagging` header (URL-encoded query parameters), checked as
/// an object's tag set.
pub fn from_header(h: Option<&str>) -> S3Result<Vec<Tag>> {
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return Ok(Vec::new());
    };
    if h.len() > MAX_TAGGING_HEADER_BYTES {
        return Err(invalid_tag("The x-amz-tagging header is too long"));
    }
    let mut pairs = Vec::new();
    for part in h.split('&').filter(|p| !p.is_empty()) {
        if pairs.len() > MAX_OBJECT_TAGS {
            break;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((percent_decode(k)?, percent_decode(v)?));
    }
    check(pairs, MAX_OBJECT_TAGS, "Object")
}

/// The tags a copy stores: the source's (`COPY`, the default) or the request's
/// `x-amz-tagging` (`REPLACE`).
pub fn for_copy(
    directive: Option<&TaggingDirective>,
    header: Option<&str>,
    source: &[Tag],
) -> S3Result<Vec<Tag>> {
    match directive.map(|d| d.as_str()) {
        None | Some(TaggingDirective::COPY) => Ok(source.to_vec()),
        Some(TaggingDirective::REPLACE) => from_header(header),
        Some(_) => Err(s3_error!(InvalidArgument, "Unknown tagging directive.")),
    }
}

/// Tag writes apply to the latest version, or to the version a `versionId` names
/// (an older one included, rewritten in place). The named version is looked up
/// first so that a delete marker answers 405 `MethodNotAllowed` and an unknown id
/// 404 `NoSuchVersion`, as for GET. Returns the version id to answer.
async fn check_version(
    sdk: &Client,
    account: &str,
    bucket: &str,
    key: &str,
    v: Option<&str>,
) -> S3Result<Option<String>> {
    let h = crate::versioning::lookup(sdk, account, bucket, key, v).await?;
    Ok(crate::versioning::version_header(&h))
}

/// The `x-amz-tagging-count` value of an object (`None` without tags, as AWS).
pub fn count(tags: &[Tag]) -> Option<i32> {
    (!tags.is_empty()).then(|| i32::try_from(tags.len()).unwrap_or(i32::MAX))
}

/// PutObjectTagging.
pub async fn put_object(
    sdk: &Client,
    account: &str,
    input: PutObjectTaggingInput,
) -> S3Result<PutObjectTaggingOutput> {
    let version_id = check_version(
        sdk,
        account,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
    )
    .await?;
    let tags = check(pairs_of(input.tagging.tag_set)?, MAX_OBJECT_TAGS, "Object")?;
    sdk.set_object_version_tags(
        account,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        tags,
    )
    .await
    .map_err(s3_error)?;
    Ok(PutObjectTaggingOutput { version_id })
}

/// GetObjectTagging.
pub async fn get_object(
    sdk: &Client,
    account: &str,
    input: GetObjectTaggingInput,
) -> S3Result<GetObjectTaggingOutput> {
    let h = crate::versioning::lookup(
        sdk,
        account,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
    )
    .await?;
    Ok(GetObjectTaggingOutput {
        tag_set: tag_set(&h.tags),
        version_id: crate::versioning::version_header(&h),
    })
}

/// DeleteObjectTagging.
pub async fn delete_object(
    sdk: &Client,
    account: &str,
    input: DeleteObjectTaggingInput,
) -> S3Result<DeleteObjectTaggingOutput> {
    let version_id = check_version(
        sdk,
        account,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
    )
    .await?;
    sdk.set_object_version_tags(
        account,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Vec::new(),
    )
    .await
    .map_err(s3_error)?;
    Ok(DeleteObjectTaggingOutput { version_id })
}

/// PutBucketTagging.
pub async fn put_bucket(sdk: &Client, account: &str, input: PutBucketTaggingInput) -> S3Result<()> {
    let tags = check(pairs_of(input.tagging.tag_set)?, MAX_BUCKET_TAGS, "Bucket")?;
    sdk.set_container_tags(account, &input.bucket, Some(tags))
        .await
        .map_err(s3_error)?;
    Ok(())
}

/// GetBucketTagging: `NoSuchTagSet` when the bucket has none.
pub async fn get_bucket(
    sdk: &Client,
    account: &str,
    input: GetBucketTaggingInput,
) -> S3Result<GetBucketTaggingOutput> {
    let stats = sdk
        .container_stats(account, &input.bucket)
        .await
        .map_err(s3_error)?;
    if !stats.has_tags {
        return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
    }
    Ok(GetBucketTaggingOutput {
        tag_set: tag_set(&stats.tags),
    })
}

/// DeleteBucketTagging.
pub async fn delete_bucket(sdk: &Client, account: &str, bucket: &str) -> S3Result<()> {
    sdk.set_container_tags(account, bucket, None)
        .await
        .map_err(s3_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect()
    }

    fn code(r: S3Result<Vec<Tag>>) -> S3ErrorCode {
        r.unwrap_err().code().clone()
    }

    #[test]
    fn tag_sets_are_checked_as_aws() {
        assert_eq!(
            check(pairs(10), MAX_OBJECT_TAGS, "Object").unwrap().len(),
            10
        );
        assert_eq!(
            code(check(pairs(11), MAX_OBJECT_TAGS, "Object")),
            S3ErrorCode::InvalidTag
        );
        assert!(check(pairs(50), MAX_BUCKET_TAGS, "Bucket").is_ok());
        let dup = vec![("a".into(), "1".into()), ("a".into(), "2".into())];
        assert_eq!(code(check(dup, 10, "Object")), S3ErrorCode::InvalidTag);
        let long_key = vec![("k".repeat(129), String::new())];
        assert_eq!(code(check(long_key, 10, "Object")), S3ErrorCode::InvalidTag);
        let long_value = vec![("k".into(), "v".repeat(257))];
        assert_eq!(
            code(check(long_value, 10, "Object")),
            S3ErrorCode::InvalidTag
        );
        // Characters, not bytes.
        let wide = vec![("é".repeat(128), "ü".repeat(256))];
        assert!(check(wide, 10, "Object").is_ok());
        let system = vec![("aws:x".into(), "v".into())];
        assert_eq!(code(check(system, 10, "Object")), S3ErrorCode::InvalidTag);
    }

    #[test]
    fn tagging_header_is_url_decoded() {
        let t = from_header(Some("a=1&b%20c=x%2By+z&empty=&d")).unwrap();
        let got: Vec<(&str, &str)> = t
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [("a", "1"), ("b c", "x+y z"), ("empty", ""), ("d", "")]
        );
        assert!(from_header(None).unwrap().is_empty());
        assert_eq!(code(from_header(Some("a=1&a=2"))), S3ErrorCode::InvalidTag);
        assert_eq!(
            code(from_header(Some("a=%zz"))),
            S3ErrorCode::InvalidArgument
        );
        let many: Vec<String> = (0..12).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            code(from_header(Some(&many.join("&")))),
            S3ErrorCode::InvalidTag
        );
    }

    #[test]
    fn copy_keeps_or_replaces_tags() {
        let src = vec![Tag {
            key: "s".into(),
            value: "1".into(),
        }];
        assert_eq!(for_copy(None, Some("n=2"), &src).unwrap(), src);
        let replace = TaggingDirective::from_static(TaggingDirective::REPLACE);
        let t = for_copy(Some(&replace), Some("n=2"), &src).unwrap();
        assert_eq!(t[0].key, "n");
        assert!(for_copy(Some(&replace), None, &src).unwrap().is_empty());
        let bad = TaggingDirective::from("MERGE".to_string());
        assert!(for_copy(Some(&bad), None, &src).is_err());
    }
}
