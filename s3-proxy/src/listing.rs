//! ListObjects (v1, `marker`) and ListObjectsV2 (`continuation-token`,
//! `start-after`) over one shared page query. Both accept `encoding-type=url`,
//! which percent-encodes keys, prefixes, the delimiter and markers in the answer.
//! v1 returns `NextMarker` only when a delimiter was given, as AWS does (without
//! one, clients continue from the last key); v2 tokens are the hex of the key to
//! continue after.

use crate::error::s3_error;
use crate::service::timestamp_ms;
use oxio_sdk::{Client, ListPage};
use s3s::dto::*;
use s3s::{s3_error, S3Result};

/// Most keys one listing page returns.
pub const MAX_KEYS: i32 = 1000;

/// Percent-encodes for `encoding-type=url` listings (everything but unreserved
/// characters and '/').
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The continuation token that stands for `name` (the last key or bucket a page
/// holds): its bytes in hex, so that any name travels in a query string.
pub fn encode_token(name: &str) -> String {
    hex::encode(name.as_bytes())
}

/// The key (or bucket name) a continuation token stands for.
pub fn decode_token(t: &str) -> S3Result<String> {
    let bytes = hex::decode(t).map_err(|_| {
        s3_error!(
            InvalidArgument,
            "The continuation token provided is incorrect"
        )
    })?;
    String::from_utf8(bytes).map_err(|_| {
        s3_error!(
            InvalidArgument,
            "The continuation token provided is incorrect"
        )
    })
}

/// Whether `encoding-type=url` was asked; any other value is refused as AWS does.
pub fn url_encoding(e: Option<&EncodingType>) -> S3Result<bool> {
    match e.map(|e| e.as_str()) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
}

/// A `max-keys` value: negative is refused, above 1,000 is served as 1,000.
pub fn max_keys(m: Option<i32>) -> S3Result<i32> {
    let m = m.unwrap_or(MAX_KEYS);
    if m < 0 {
        return Err(s3_error!(
            InvalidArgument,
            "max-keys must be a non-negative integer"
        ));
    }
    Ok(m)
}

/// One page query, common to both versions.
pub struct Query<'a> {
    /// Bucket.
    pub bucket: &'a str,
    /// Prefix ("" for all).
    pub prefix: &'a str,
    /// Delimiter ("" for none).
    pub delimiter: &'a str,
    /// List keys after this one.
    pub start_after: &'a str,
    /// Most keys and common prefixes (0: none, only checks the bucket).
    pub max_keys: i32,
}

/// A page rendered for the answer.
pub struct Page {
    /// Objects.
    pub contents: Vec<Object>,
    /// Common prefixes (None when there are none).
    pub common_prefixes: Option<Vec<CommonPrefix>>,
    /// Keys plus common prefixes.
    pub key_count: i32,
    /// Whether more follow.
    pub truncated: bool,
    /// The key or common prefix to continue after (not encoded), when truncated.
    pub next: Option<String>,
}

/// Lists one page and renders it, percent-encoding keys and prefixes when `url`.
pub async fn list(sdk: &Client, account: &str, q: Query<'_>, url: bool) -> S3Result<Page> {
    let page = if q.max_keys == 0 {
        // Still answer NoSuchBucket for a missing bucket.
        sdk.get_container(account, q.bucket)
            .await
            .map_err(s3_error)?;
        ListPage::default()
    } else {
        sdk.list_objects(
            account,
            q.bucket,
            q.prefix,
            q.delimiter,
            q.start_after,
            q.max_keys.min(MAX_KEYS) as u32,
        )
        .await
        .map_err(s3_error)?
    };
    Ok(render(page, url))
}

/// Turns an sdk page into S3 objects and common prefixes.
pub fn render(page: ListPage, url: bool) -> Page {
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let key_count = (page.entries.len() + page.common_prefixes.len()) as i32;
    let contents = page
        .entries
        .into_iter()
        .map(|e| Object {
            key: Some(enc(e.key)),
            size: Some(e.size as i64),
            e_tag: Some(ETag::Strong(e.etag)),
            last_modified: Some(timestamp_ms(e.mtime_ms)),
            storage_class: Some(if e.storage_class.is_empty() {
                ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)
            } else {
                ObjectStorageClass::from(e.storage_class)
            }),
            ..Default::default()
        })
        .collect();
    let common: Vec<CommonPrefix> = page
        .common_prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    Page {
        contents,
        common_prefixes: (!common.is_empty()).then_some(common),
        key_count,
        truncated: page.truncated,
        next: page.truncated.then_some(page.next_start_after),
    }
}

/// Names the bucket's owner, `account`, as every object's owner (objects have no
/// owner of their own): ListObjects always answers it, ListObjectsV2 when asked
/// (`fetch-owner=true`).
fn with_owner(contents: &mut [Object], account: &str) {
    for o in contents {
        o.owner = Some(Owner {
            display_name: Some(account.to_string()),
            id: Some(account.to_string()),
        });
    }
}

/// ListObjects (v1).
pub async fn list_v1(
    sdk: &Client,
    account: &str,
    input: ListObjectsInput,
) -> S3Result<ListObjectsOutput> {
    let url = url_encoding(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().unwrap_or_default();
    let marker = input.marker.clone().unwrap_or_default();
    let page = list(
        sdk,
        account,
        Query {
            bucket: &input.bucket,
            prefix: &prefix,
            delimiter: &delimiter,
            start_after: &marker,
            max_keys: max,
        },
        url,
    )
    .await?;
    let mut page = page;
    with_owner(&mut page.contents, account);
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let next_marker = if delimiter.is_empty() {
        None
    } else {
        page.next.map(enc)
    };
    Ok(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(enc(prefix)),
        marker: Some(enc(marker)),
        delimiter: input.delimiter.map(enc),
        max_keys: Some(max),
        is_truncated: Some(page.truncated),
        next_marker,
        encoding_type: input.encoding_type,
        contents: Some(page.contents),
        common_prefixes: page.common_prefixes,
        ..Default::default()
    })
}

/// ListObjectsV2.
pub async fn list_v2(
    sdk: &Client,
    account: &str,
    input: ListObjectsV2Input,
) -> S3Result<ListObjectsV2Output> {
    let url = url_encoding(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().unwrap_or_default();
    let start = match &input.continuation_token {
        Some(t) => decode_token(t)?,
        None => input.start_after.clone().unwrap_or_default(),
    };
    let page = list(
        sdk,
        account,
        Query {
            bucket: &input.bucket,
            prefix: &prefix,
            delimiter: &delimiter,
            start_after: &start,
            max_keys: max,
        },
        url,
    )
    .await?;
    let mut page = page;
    if input.fetch_owner == Some(true) {
        with_owner(&mut page.contents, account);
    }
    let enc = |s: String| if url { url_encode(&s) } else { s };
    Ok(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(enc(prefix)),
        delimiter: input.delimiter.map(enc),
        max_keys: Some(max),
        key_count: Some(page.key_count),
        is_truncated: Some(page.truncated),
        continuation_token: input.continuation_token,
        next_continuation_token: page.next.as_deref().map(encode_token),
        start_after: input.start_after.map(enc),
        encoding_type: input.encoding_type,
        contents: Some(page.contents),
        common_prefixes: page.common_prefixes,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxio_sdk::ListEntry;

    #[test]
    fn url_encoding_keeps_unreserved_and_slash() {
        assert_eq!(url_encode("a b+c/=%é"), "a%20b%2Bc/%3D%25%C3%A9");
        assert_eq!(url_encode("plain-key_1.txt~"), "plain-key_1.txt~");
    }

    #[test]
    fn continuation_tokens_round_trip() {
        let k = "dir/ké y";
        assert_eq!(decode_token(&hex::encode(k.as_bytes())).unwrap(), k);
        assert!(decode_token("zz").is_err());
    }

    #[test]
    fn encoding_type_and_max_keys_are_checked() {
        assert!(!url_encoding(None).unwrap());
        assert!(url_encoding(Some(&EncodingType::from_static(EncodingType::URL))).unwrap());
        assert!(url_encoding(Some(&EncodingType::from("base64".to_string()))).is_err());
        assert_eq!(max_keys(None).unwrap(), 1000);
        assert_eq!(max_keys(Some(5000)).unwrap(), 5000);
        assert!(max_keys(Some(-1)).is_err());
    }

    #[test]
    fn render_encodes_and_reports_where_to_continue() {
        let page = ListPage {
            entries: vec![ListEntry {
                key: "a b".into(),
                size: 3,
                etag: "e".into(),
                ..Default::default()
            }],
            common_prefixes: vec!["d+/".into()],
            truncated: true,
            next_start_after: "d+/".into(),
        };
        let p = render(page.clone(), true);
        assert_eq!(p.contents[0].key.as_deref(), Some("a%20b"));
        let cps = p.common_prefixes.unwrap();
        assert_eq!(cps[0].prefix.as_deref(), Some("d%2B/"));
        assert_eq!(p.key_count, 2);
        assert_eq!(p.next.as_deref(), Some("d+/"));
        let p = render(page, false);
        assert_eq!(p.contents[0].key.as_deref(), Some("a b"));
        let done = render(ListPage::default(), false);
        assert!(!done.truncated && done.next.is_none() && done.common_prefixes.is_none());
    }
}
