//! The object headers S3 stores and returns: Content-Type, the other "system"
//! headers kept in the content header's `system_meta` (Cache-Control,
//! Content-Disposition, Content-Encoding, Content-Language, Expires), user metadata
//! and its 2 KiB limit, and the `response-*` query overrides of GetObject.

use oxio_sdk::{ContentHeader, PutOptions};
use s3s::dto::*;
use s3s::{s3_error, S3Result};
use std::collections::HashMap;

/// Stored system header: Cache-Control.
pub const SYS_CACHE_CONTROL: &str = "cache-control";
/// Stored system header: Content-Disposition.
pub const SYS_CONTENT_DISPOSITION: &str = "content-disposition";
/// Stored system header: Content-Encoding.
pub const SYS_CONTENT_ENCODING: &str = "content-encoding";
/// Stored system header: Content-Language.
pub const SYS_CONTENT_LANGUAGE: &str = "content-language";
/// Stored system header: Expires, as an HTTP date.
pub const SYS_EXPIRES: &str = "expires";
/// Content-Type of an object put without one (as S3).
pub const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";
/// Most bytes of user metadata (names and values, UTF-8), as S3.
pub const MAX_USER_METADATA_BYTES: usize = 2048;

/// The stored headers of a put, a copy with `REPLACE`, or a multipart upload's
/// final object.
#[derive(Clone, Debug, Default)]
pub struct HeaderInputs {
    /// Content-Type.
    pub content_type: Option<ContentType>,
    /// Cache-Control.
    pub cache_control: Option<CacheControl>,
    /// Content-Disposition.
    pub content_disposition: Option<ContentDisposition>,
    /// Content-Encoding.
    pub content_encoding: Option<ContentEncoding>,
    /// Content-Language.
    pub content_language: Option<ContentLanguage>,
    /// Expires.
    pub expires: Option<Expires>,
    /// User metadata (`x-amz-meta-*`, names without the prefix).
    pub metadata: Option<Metadata>,
}

/// Formats a timestamp as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// Size of user metadata as S3 counts it: the UTF-8 bytes of every name and value.
pub fn user_metadata_bytes(meta: &Metadata) -> usize {
    meta.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Refuses user metadata over 2 KiB with `MetadataTooLarge`.
pub fn check_user_metadata(meta: &Metadata) -> S3Result<()> {
    if user_metadata_bytes(meta) > MAX_USER_METADATA_BYTES {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size"
        ));
    }
    Ok(())
}

/// Put options from the request headers: content type (S3's default when absent),
/// the stored system headers and user metadata (at most 2 KiB, as S3).
pub fn put_options(h: HeaderInputs) -> S3Result<PutOptions> {
    let mut system_meta = HashMap::new();
    for (k, v) in [
        (SYS_CACHE_CONTROL, h.cache_control),
        (SYS_CONTENT_DISPOSITION, h.content_disposition),
        (SYS_CONTENT_ENCODING, h.content_encoding),
        (SYS_CONTENT_LANGUAGE, h.content_language),
        (SYS_EXPIRES, h.expires.as_ref().and_then(http_date)),
    ] {
        if let Some(v) = v {
            system_meta.insert(k.to_string(), v);
        }
    }
    let user_meta = h.metadata.unwrap_or_default();
    check_user_metadata(&user_meta)?;
    Ok(PutOptions {
        expected_len: None,
        expected_md5: None,
        content_type: h
            .content_type
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
        user_meta,
        system_meta,
        ..PutOptions::default()
    })
}

/// Put options carrying over everything a source object stores (CopyObject with
/// the `COPY` metadata directive).
pub fn copied_options(src: &ContentHeader) -> PutOptions {
    PutOptions {
        expected_len: Some(src.size),
        expected_md5: None,
        content_type: src.content_type.clone(),
        user_meta: src.user_meta.clone(),
        system_meta: src.system_meta.clone(),
        ..PutOptions::default()
    }
}

/// The headers an object is served with (GET and HEAD).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Served {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
    /// Content-Disposition.
    pub content_disposition: Option<String>,
    /// Content-Encoding.
    pub content_encoding: Option<String>,
    /// Content-Language.
    pub content_language: Option<String>,
    /// Expires.
    pub expires: Option<Timestamp>,
    /// User metadata.
    pub metadata: Option<Metadata>,
}

/// The `response-*` query parameters of a GetObject.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `response-content-type`.
    pub content_type: Option<String>,
    /// `response-cache-control`.
    pub cache_control: Option<String>,
    /// `response-content-disposition`.
    pub content_disposition: Option<String>,
    /// `response-content-encoding`.
    pub content_encoding: Option<String>,
    /// `response-content-language`.
    pub content_language: Option<String>,
    /// `response-expires`.
    pub expires: Option<Timestamp>,
}

impl Served {
    /// The stored headers of an object. An Expires value that no longer parses as
    /// an HTTP date is left out rather than failing the read.
    pub fn of(h: &ContentHeader) -> Self {
        let sys = |k: &str| h.system_meta.get(k).cloned();
        Served {
            content_type: Some(h.content_type.clone()),
            cache_control: sys(SYS_CACHE_CONTROL),
            content_disposition: sys(SYS_CONTENT_DISPOSITION),
            content_encoding: sys(SYS_CONTENT_ENCODING),
            content_language: sys(SYS_CONTENT_LANGUAGE),
            expires: h
                .system_meta
                .get(SYS_EXPIRES)
                .and_then(|v| Timestamp::parse(TimestampFormat::HttpDate, v).ok()),
            metadata: (!h.user_meta.is_empty()).then(|| h.user_meta.clone()),
        }
    }

    /// Applies the `response-*` overrides: each one present replaces the stored
    /// header.
    pub fn with_overrides(mut self, o: Overrides) -> Self {
        fn set<T>(slot: &mut Option<T>, v: Option<T>) {
            if v.is_some() {
                *slot = v;
            }
        }
        set(&mut self.content_type, o.content_type);
        set(&mut self.cache_control, o.cache_control);
        set(&mut self.content_disposition, o.content_disposition);
        set(&mut self.content_encoding, o.content_encoding);
        set(&mut self.content_language, o.content_language);
        set(&mut self.expires, o.expires);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn meta(pairs: &[(&str, &str)]) -> Metadata {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn metadata_limit_counts_names_and_values() {
        // 2048 bytes exactly: 10 + 2038.
        let ok = meta(&[("abcdefghij", &"v".repeat(2038))]);
        assert_eq!(user_metadata_bytes(&ok), 2048);
        assert!(check_user_metadata(&ok).is_ok());
        let over = meta(&[("abcdefghij", &"v".repeat(2038)), ("k", "")]);
        let e = check_user_metadata(&over).unwrap_err();
        assert_eq!(*e.code(), s3s::S3ErrorCode::MetadataTooLarge);
        // Multi-byte values count in UTF-8 bytes.
        assert_eq!(user_metadata_bytes(&meta(&[("k", "é")])), 3);
    }

    #[test]
    fn system_headers_round_trip_through_the_content_header() {
        let expires = Timestamp::from(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let opts = put_options(HeaderInputs {
            content_type: Some("text/plain".into()),
            cache_control: Some("max-age=60".into()),
            content_disposition: Some("attachment; filename=\"a.txt\"".into()),
            content_encoding: Some("gzip".into()),
            content_language: Some("fr".into()),
            expires: Some(expires.clone()),
            metadata: Some(meta(&[("a", "1")])),
        })
        .unwrap();
        assert_eq!(
            opts.system_meta[SYS_EXPIRES],
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        let header = ContentHeader {
            placement_degraded: false,
            content_type: opts.content_type.clone(),
            user_meta: opts.user_meta.clone(),
            system_meta: opts.system_meta.clone(),
            ..Default::default()
        };
        let served = Served::of(&header);
        assert_eq!(served.content_type.as_deref(), Some("text/plain"));
        assert_eq!(served.cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(
            served.content_disposition.as_deref(),
            Some("attachment; filename=\"a.txt\"")
        );
        assert_eq!(served.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(served.content_language.as_deref(), Some("fr"));
        assert_eq!(served.expires, Some(expires));
        assert_eq!(served.metadata, Some(meta(&[("a", "1")])));
        // The copy directive keeps all of it.
        let copied = copied_options(&header);
        assert_eq!(copied.system_meta, opts.system_meta);
        assert_eq!(copied.content_type, "text/plain");
    }

    #[test]
    fn default_content_type_and_no_empty_metadata() {
        let opts = put_options(HeaderInputs::default()).unwrap();
        assert_eq!(opts.content_type, DEFAULT_CONTENT_TYPE);
        assert!(opts.system_meta.is_empty());
        let served = Served::of(&ContentHeader::default());
        assert!(served.metadata.is_none() && served.expires.is_none());
    }

    #[test]
    fn overrides_replace_only_what_they_name() {
        let header = ContentHeader {
            placement_degraded: false,
            content_type: "text/plain".into(),
            system_meta: [(SYS_CACHE_CONTROL.to_string(), "no-cache".to_string())].into(),
            ..Default::default()
        };
        let served = Served::of(&header).with_overrides(Overrides {
            content_type: Some("application/json".into()),
            content_language: Some("de".into()),
            ..Default::default()
        });
        assert_eq!(served.content_type.as_deref(), Some("application/json"));
        assert_eq!(served.cache_control.as_deref(), Some("no-cache"));
        assert_eq!(served.content_language.as_deref(), Some("de"));
        assert!(served.content_encoding.is_none());
    }
}
