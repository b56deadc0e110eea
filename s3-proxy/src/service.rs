//! S3 operations mapped onto the sdk.

use crate::auth::KeyStore;
use crate::error::s3_error;
use crate::multipart;
use base64::Engine;
use bytes::Bytes;
use oxio_sdk::{Client, ContentHeader, PutOptions};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

/// Most keys one listing page returns.
const MAX_KEYS: i32 = 1000;
/// Most objects one DeleteObjects request may name (as AWS).
const MAX_DELETE_OBJECTS: usize = 1000;
/// Stored system headers.
const SYS_CACHE_CONTROL: &str = "cache-control";
const SYS_CONTENT_DISPOSITION: &str = "content-disposition";
const SYS_CONTENT_ENCODING: &str = "content-encoding";
const SYS_CONTENT_LANGUAGE: &str = "content-language";

/// The S3 implementation.
pub struct OxioS3 {
    sdk: Client,
    keys: KeyStore,
    region: String,
}

impl OxioS3 {
    /// An S3 front end over `sdk`.
    pub fn new(sdk: Client, keys: KeyStore, region: String) -> Self {
        OxioS3 { sdk, keys, region }
    }

    async fn account<T>(&self, req: &S3Request<T>) -> S3Result<String> {
        let Some(cred) = &req.credentials else {
            return Err(s3_error!(AccessDenied, "anonymous access is not allowed"));
        };
        Ok(self.keys.lookup(&cred.access_key).await?.1)
    }
}

pub(crate) fn timestamp_ms(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

fn etag(h: &ContentHeader) -> ETag {
    ETag::Strong(h.etag.clone())
}

fn sys(h: &ContentHeader, k: &str) -> Option<String> {
    h.system_meta.get(k).cloned()
}

/// Percent-encodes for `encoding-type=url` listings (everything but unreserved
/// characters and '/').
pub(crate) fn url_encode(s: &str) -> String {
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

fn decode_token(t: &str) -> S3Result<String> {
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

pub(crate) fn parse_md5(v: &str) -> S3Result<[u8; 16]> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .map_err(|_| {
            s3_error!(
                InvalidDigest,
                "The Content-MD5 you specified is not valid base64"
            )
        })?;
    raw.try_into().map_err(|_| {
        s3_error!(
            InvalidDigest,
            "The Content-MD5 you specified is not 16 bytes"
        )
    })
}

/// The stored headers of a put or of a multipart upload's final object.
pub(crate) struct HeaderInputs {
    pub content_type: Option<ContentType>,
    pub cache_control: Option<CacheControl>,
    pub content_disposition: Option<ContentDisposition>,
    pub content_encoding: Option<ContentEncoding>,
    pub content_language: Option<ContentLanguage>,
    pub metadata: Option<Metadata>,
}

/// Put options from the request headers: content type (S3's default when absent),
/// the stored system headers and user metadata (at most 2 KiB, as S3).
pub(crate) fn put_options(h: HeaderInputs) -> S3Result<PutOptions> {
    let mut system_meta = HashMap::new();
    for (k, v) in [
        (SYS_CACHE_CONTROL, h.cache_control),
        (SYS_CONTENT_DISPOSITION, h.content_disposition),
        (SYS_CONTENT_ENCODING, h.content_encoding),
        (SYS_CONTENT_LANGUAGE, h.content_language),
    ] {
        if let Some(v) = v {
            system_meta.insert(k.to_string(), v);
        }
    }
    let user_meta = h.metadata.unwrap_or_default();
    let meta_bytes: usize = user_meta.iter().map(|(k, v)| k.len() + v.len()).sum();
    if meta_bytes > 2048 {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size"
        ));
    }
    Ok(PutOptions {
        expected_len: None,
        expected_md5: None,
        content_type: h
            .content_type
            .unwrap_or_else(|| "binary/octet-stream".to_string()),
        user_meta,
        system_meta,
        policy: None,
    })
}

#[async_trait::async_trait]
impl S3 for OxioS3 {
    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let account = self.account(&req).await?;
        let bucket = &req.input.bucket;
        self.sdk
            .create_container(&account, bucket)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let account = self.account(&req).await?;
        self.sdk
            .get_container(&account, &req.input.bucket)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let account = self.account(&req).await?;
        let containers = self.sdk.list_containers(&account).await.map_err(s3_error)?;
        let buckets = containers
            .into_iter()
            .map(|c| Bucket {
                name: Some(c.name),
                creation_date: Some(timestamp_ms(c.ctime_ms)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some(account.clone()),
                id: Some(account),
            }),
            ..Default::default()
        }))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let account = self.account(&req).await?;
        self.sdk
            .delete_container(&account, &req.input.bucket)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let account = self.account(&req).await?;
        self.sdk
            .get_container(&account, &req.input.bucket)
            .await
            .map_err(s3_error)?;
        // us-east-1 is reported as an empty constraint, as AWS does.
        let constraint = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: constraint,
        }))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let account = self.account(&req).await?;
        let input = req.input;
        let expected_md5 = input.content_md5.as_deref().map(parse_md5).transpose()?;
        let mut opts = put_options(HeaderInputs {
            content_type: input.content_type,
            cache_control: input.cache_control,
            content_disposition: input.content_disposition,
            content_encoding: input.content_encoding,
            content_language: input.content_language,
            metadata: input.metadata,
        })?;
        opts.expected_len = input.content_length.map(|l| l.max(0) as u64);
        opts.expected_md5 = expected_md5;
        let header = match input.body {
            Some(body) => {
                self.sdk
                    .put_object(&account, &input.bucket, &input.key, body, opts)
                    .await
            }
            None => {
                let empty = futures::stream::empty::<Result<Bytes, std::io::Error>>();
                self.sdk
                    .put_object(&account, &input.bucket, &input.key, empty, opts)
                    .await
            }
        }
        .map_err(s3_error)?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&header)),
            ..Default::default()
        }))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let account = self.account(&req).await?;
        let input = req.input;
        let header = self
            .sdk
            .head_object(&account, &input.bucket, &input.key)
            .await
            .map_err(s3_error)?;
        let size = header.size;
        let (start, end, content_range) = match &input.range {
            Some(r) => {
                let range = r.check(size)?;
                let cr = format!(
                    "bytes {}-{}/{}",
                    range.start,
                    range.end.saturating_sub(1),
                    size
                );
                (range.start, range.end, Some(cr))
            }
            None => (0, size, None),
        };
        let mut rx = self.sdk.read_object(header.clone(), start, end);
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let output = GetObjectOutput {
            body: Some(StreamingBlob::wrap(stream)),
            content_length: Some((end - start) as i64),
            content_range,
            accept_ranges: Some("bytes".to_string()),
            e_tag: Some(etag(&header)),
            last_modified: Some(timestamp_ms(header.mtime_ms)),
            content_type: Some(header.content_type.clone()),
            cache_control: sys(&header, SYS_CACHE_CONTROL),
            content_disposition: sys(&header, SYS_CONTENT_DISPOSITION),
            content_encoding: sys(&header, SYS_CONTENT_ENCODING),
            content_language: sys(&header, SYS_CONTENT_LANGUAGE),
            metadata: (!header.user_meta.is_empty()).then(|| header.user_meta.clone()),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let account = self.account(&req).await?;
        let input = req.input;
        let header = self
            .sdk
            .head_object(&account, &input.bucket, &input.key)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(header.size as i64),
            accept_ranges: Some("bytes".to_string()),
            e_tag: Some(etag(&header)),
            last_modified: Some(timestamp_ms(header.mtime_ms)),
            content_type: Some(header.content_type.clone()),
            cache_control: sys(&header, SYS_CACHE_CONTROL),
            content_disposition: sys(&header, SYS_CONTENT_DISPOSITION),
            content_encoding: sys(&header, SYS_CONTENT_ENCODING),
            content_language: sys(&header, SYS_CONTENT_LANGUAGE),
            metadata: (!header.user_meta.is_empty()).then(|| header.user_meta.clone()),
            ..Default::default()
        }))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let account = self.account(&req).await?;
        match self
            .sdk
            .delete_object(&account, &req.input.bucket, &req.input.key)
            .await
        {
            // Deleting a missing key succeeds, as in S3.
            Ok(()) | Err(oxio_sdk::Error::NoSuchKey) => {
                Ok(S3Response::new(DeleteObjectOutput::default()))
            }
            Err(e) => Err(s3_error(e)),
        }
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let account = self.account(&req).await?;
        let input = req.input;
        if input.delete.objects.len() > MAX_DELETE_OBJECTS {
            return Err(s3_error!(
                MalformedXML,
                "at most 1000 objects per DeleteObjects request"
            ));
        }
        // Fail the whole request when the bucket is missing, as S3 does.
        self.sdk
            .get_container(&account, &input.bucket)
            .await
            .map_err(s3_error)?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            match self
                .sdk
                .delete_object(&account, &input.bucket, &obj.key)
                .await
            {
                Ok(()) | Err(oxio_sdk::Error::NoSuchKey) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(obj.key),
                            ..Default::default()
                        });
                    }
                }
                Err(e) => {
                    let err = s3_error(e);
                    errors.push(s3s::dto::Error {
                        code: Some(err.code().as_str().to_string()),
                        key: Some(obj.key),
                        message: err.message().map(str::to_string),
                        version_id: None,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let account = self.account(&req).await?;
        let input = req.input;
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        if max_keys < 0 {
            return Err(s3_error!(
                InvalidArgument,
                "max-keys must be a non-negative integer"
            ));
        }
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().unwrap_or_default();
        let url = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == "url");
        let start = match &input.continuation_token {
            Some(t) => decode_token(t)?,
            None => input.start_after.clone().unwrap_or_default(),
        };
        let page = if max_keys == 0 {
            // Still answer NoSuchBucket for a missing bucket.
            self.sdk
                .get_container(&account, &input.bucket)
                .await
                .map_err(s3_error)?;
            oxio_sdk::ListPage::default()
        } else {
            self.sdk
                .list_objects(
                    &account,
                    &input.bucket,
                    &prefix,
                    &delimiter,
                    &start,
                    max_keys.min(MAX_KEYS) as u32,
                )
                .await
                .map_err(s3_error)?
        };
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let key_count = (page.entries.len() + page.common_prefixes.len()) as i32;
        let contents: Vec<Object> = page
            .entries
            .into_iter()
            .map(|e| Object {
                key: Some(enc(e.key)),
                size: Some(e.size as i64),
                e_tag: Some(ETag::Strong(e.etag)),
                last_modified: Some(timestamp_ms(e.mtime_ms)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
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
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            delimiter: input.delimiter.map(enc),
            max_keys: Some(max_keys),
            key_count: Some(key_count),
            is_truncated: Some(page.truncated),
            continuation_token: input.continuation_token,
            next_continuation_token: page
                .truncated
                .then(|| hex::encode(page.next_start_after.as_bytes())),
            start_after: input.start_after.map(enc),
            encoding_type: input.encoding_type,
            contents: Some(contents),
            common_prefixes: (!common.is_empty()).then_some(common),
            ..Default::default()
        }))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let account = self.account(&req).await?;
        let out = multipart::create(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key, part = req.input.part_number))]
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let account = self.account(&req).await?;
        let out = multipart::upload_part(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let account = self.account(&req).await?;
        let out = multipart::complete(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let account = self.account(&req).await?;
        let out = multipart::abort(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let account = self.account(&req).await?;
        let out = multipart::list_parts(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let account = self.account(&req).await?;
        let out = multipart::list_uploads(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn content_md5_must_be_16_bytes_of_base64() {
        assert!(parse_md5("1B2M2Y8AsgTpgAmY7PhCfg==").is_ok());
        assert!(parse_md5("not base64!").is_err());
        assert!(parse_md5("AAAA").is_err());
    }
}
