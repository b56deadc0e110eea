//! S3 operations mapped onto the sdk.

use crate::anonymous::PublicBuckets;
use crate::auth::KeyStore;
use crate::conditional::{get_error, write_condition, Conditions};
use crate::error::s3_error;
use crate::headers::{put_options, HeaderInputs, Overrides, Served};
use crate::metrics::{Layout, S3Metrics};
use crate::storage_class::{served_class, StorageClasses};
use crate::{acl, checksum, copy, listing, multipart, part_copy, parts, tagging, versioning};
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use oxio_sdk::{Client, ContentHeader};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most objects one DeleteObjects request may name (as AWS).
const MAX_DELETE_OBJECTS: usize = 1000;
/// Keys of one DeleteObjects request deleted at once.
const DELETE_OBJECTS_CONCURRENCY: usize = 16;
/// Largest single PUT (as AWS: 5 GiB; larger objects need a multipart upload).
pub const MAX_PUT_BYTES: i64 = 5 * 1024 * 1024 * 1024;

/// The S3 implementation.
pub struct OxioS3 {
    sdk: Client,
    keys: KeyStore,
    region: String,
    metrics: Option<Arc<S3Metrics>>,
    classes: Arc<StorageClasses>,
    public: PublicBuckets,
}

/// Most buckets one ListBuckets page may ask for (`max-buckets`), as S3.
const MAX_LIST_BUCKETS: i32 = 10_000;

impl OxioS3 {
    /// An S3 front end over `sdk`.
    pub fn new(sdk: Client, keys: KeyStore, region: String) -> Self {
        OxioS3 {
            public: PublicBuckets::new(sdk.clone()),
            sdk,
            keys,
            region,
            metrics: None,
            classes: Arc::new(StorageClasses::default()),
        }
    }

    /// Maps `x-amz-storage-class` through `classes` (the default table otherwise).
    pub fn with_storage_classes(mut self, classes: StorageClasses) -> Self {
        self.classes = Arc::new(classes);
        self
    }

    /// Counts stored objects (inline or chunked) into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<S3Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// A CreateBucket's configuration: every bucket lives in this endpoint's region,
    /// so another location constraint is refused (as S3 refuses one that does not
    /// match the endpoint), and so are directory-bucket settings.
    fn check_location(&self, cfg: Option<&CreateBucketConfiguration>) -> S3Result<()> {
        let Some(cfg) = cfg else {
            return Ok(());
        };
        if cfg.bucket.is_some() || cfg.location.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "directory buckets (Bucket and Location in CreateBucketConfiguration) are not offered"
            ));
        }
        match cfg.location_constraint.as_ref().map(|c| c.as_str()) {
            Some(lc) if !lc.is_empty() && lc != self.region => Err(s3_error!(
                IllegalLocationConstraintException,
                "The {lc} location constraint is incompatible for the region specific endpoint \
                 this request was sent to ({})",
                self.region
            )),
            _ => Ok(()),
        }
    }

    fn object_stored(&self, layout: Layout) {
        if let Some(m) = &self.metrics {
            m.object_stored(layout);
        }
    }

    /// The signer's account, which owns every bucket the request names.
    async fn account<T>(&self, req: &S3Request<T>) -> S3Result<String> {
        let Some(cred) = &req.credentials else {
            return Err(s3_error!(AccessDenied, "anonymous access is not allowed"));
        };
        let account = self.keys.lookup(&cred.access_key).await?.1;
        expect_owner(&req.headers, &account)?;
        Ok(account)
    }

    /// The account a read of `bucket` is served from: the signer's, or for an
    /// unsigned request the owner of a public-read bucket of that name (see
    /// [`crate::anonymous`]).
    async fn reader<T>(&self, req: &S3Request<T>, bucket: &str) -> S3Result<String> {
        if req.credentials.is_some() {
            return self.account(req).await;
        }
        let owner = self.public.owner_of(bucket).await?;
        expect_owner(&req.headers, &owner)?;
        Ok(owner)
    }
}

/// `x-amz-expected-bucket-owner` and `x-amz-source-expected-bucket-owner`: a request
/// that names an owner other than `owner` (the account that owns the buckets it
/// reaches, as ListBuckets gives its id) is refused with `AccessDenied`, as S3 does.
fn expect_owner(headers: &http::HeaderMap, owner: &str) -> S3Result<()> {
    for name in [
        "x-amz-expected-bucket-owner",
        "x-amz-source-expected-bucket-owner",
    ] {
        if headers
            .get(name)
            .is_some_and(|v| v.as_bytes() != owner.as_bytes())
        {
            return Err(s3_error!(
                AccessDenied,
                "Access Denied: the bucket's owner is not the one {name} names"
            ));
        }
    }
    Ok(())
}

pub(crate) fn timestamp_ms(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

fn etag(h: &ContentHeader) -> ETag {
    ETag::Strong(h.etag.clone())
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

/// Refuses a single PUT announced larger than 5 GiB with `EntityTooLarge`, before
/// any of its body is read.
pub(crate) fn check_put_size(content_length: Option<i64>) -> S3Result<()> {
    match content_length {
        Some(n) if n > MAX_PUT_BYTES => Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size"
        )),
        _ => Ok(()),
    }
}

/// The conditions of a GET or HEAD, checked against the stored object.
fn check_conditions(c: Conditions, h: &ContentHeader) -> S3Result<()> {
    if c.is_empty() {
        return Ok(());
    }
    let outcome = c.evaluate(&h.etag, h.mtime_ms, SystemTime::now());
    match get_error(outcome, &h.etag, &timestamp_ms(h.mtime_ms)) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Checks the ACL a write of an object asks for (`x-amz-acl`, `x-amz-grant-*` of
/// PutObject, CopyObject and CreateMultipartUpload, whose inputs name them alike):
/// see [`acl::check_object`].
macro_rules! object_acl_checked {
    ($self:ident, $account:expr, $input:expr) => {
        acl::check_object(
            &$self.sdk,
            &$account,
            &$input.bucket,
            $input.acl.as_ref(),
            acl::GrantHeaders {
                full_control: $input.grant_full_control.as_deref(),
                read: $input.grant_read.as_deref(),
                read_acp: $input.grant_read_acp.as_deref(),
                write: None,
                write_acp: $input.grant_write_acp.as_deref(),
            },
        )
        .await?
    };
}

/// GET and HEAD take the same conditional headers and `response-*` overrides in two
/// input types with the same field names: check the conditions against the stored
/// header, then give the headers to serve.
macro_rules! conditions_then_served {
    ($input:ident, $header:expr) => {{
        check_conditions(
            Conditions {
                if_match: $input.if_match,
                if_none_match: $input.if_none_match,
                if_modified_since: $input.if_modified_since,
                if_unmodified_since: $input.if_unmodified_since,
            },
            $header,
        )?;
        Served::of($header).with_overrides(Overrides {
            content_type: $input.response_content_type,
            cache_control: $input.response_cache_control,
            content_disposition: $input.response_content_disposition,
            content_encoding: $input.response_content_encoding,
            content_language: $input.response_content_language,
            expires: $input.response_expires,
        })
    }};
}

#[async_trait::async_trait]
impl S3 for OxioS3 {
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let account = self.account(&req).await?;
        let bucket = &req.input.bucket;
        self.check_location(req.input.create_bucket_configuration.as_ref())?;
        let canned = acl::for_create(&req.input)?;
        self.sdk
            .create_container(&account, bucket)
            .await
            .map_err(s3_error)?;
        self.public.forget(bucket);
        if let Some(canned) = canned.filter(|a| *a != acl::CannedAcl::Private) {
            acl::set(&self.sdk, &account, bucket, canned).await?;
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
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

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let account = self.account(&req).await?;
        let input = req.input;
        let max = match input.max_buckets {
            None => None,
            Some(n @ 1..=MAX_LIST_BUCKETS) => Some(n as usize),
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-buckets must be an integer between 1 and {MAX_LIST_BUCKETS}"
                ))
            }
        };
        let after = match input.continuation_token.as_deref() {
            Some(t) => listing::decode_token(t)?,
            None => String::new(),
        };
        let prefix = input.prefix.as_deref().unwrap_or_default();
        // Every bucket is in this endpoint's region: another region has none.
        let here = input
            .bucket_region
            .as_deref()
            .is_none_or(|r| r == self.region);
        let mut containers = if here {
            self.sdk.list_containers(&account).await.map_err(s3_error)?
        } else {
            Vec::new()
        };
        containers.retain(|c| c.name.starts_with(prefix) && c.name > after);
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        // A page that leaves buckets out ends at the last one it holds.
        let mut next = None;
        if let Some(m) = max.filter(|&m| containers.len() > m) {
            containers.truncate(m);
            next = containers.last().map(|c| listing::encode_token(&c.name));
        }
        let buckets: Vec<Bucket> = containers
            .into_iter()
            .map(|c| Bucket {
                name: Some(c.name),
                creation_date: Some(timestamp_ms(c.ctime_ms)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            continuation_token: next,
            prefix: input.prefix,
            owner: Some(Owner {
                display_name: Some(account.clone()),
                id: Some(account),
            }),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let account = self.account(&req).await?;
        self.sdk
            .delete_container(&account, &req.input.bucket)
            .await
            .map_err(s3_error)?;
        self.public.forget(&req.input.bucket);
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let account = self.account(&req).await?;
        let announced = checksum::expected(&req.headers, req.trailing_headers.clone())?;
        let input = req.input;
        check_put_size(input.content_length)?;
        object_acl_checked!(self, account, input);
        let expected_md5 = input.content_md5.as_deref().map(parse_md5).transpose()?;
        let mut opts = put_options(HeaderInputs {
            content_type: input.content_type,
            cache_control: input.cache_control,
            content_disposition: input.content_disposition,
            content_encoding: input.content_encoding,
            content_language: input.content_language,
            expires: input.expires,
            metadata: input.metadata,
        })?;
        opts.expected_len = input.content_length.map(|l| l.max(0) as u64);
        opts.expected_md5 = expected_md5;
        opts.tags = tagging::from_header(input.tagging.as_deref())?;
        opts.condition = write_condition(input.if_match, input.if_none_match)?;
        opts.body_meta = Some(oxio_sdk::BodyMeta::default());
        self.classes
            .apply(input.storage_class.as_ref().map(|c| c.as_str()), &mut opts)?;
        let body = input.body.unwrap_or_else(|| {
            StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>())
        });
        let (body, verdict) = checksum::verify(body, announced.clone(), opts.body_meta.clone());
        let header = self
            .sdk
            .put_object(&account, &input.bucket, &input.key, body, opts)
            .await
            .map_err(|e| checksum::upload_error(&verdict, s3_error(e)))?;
        let sums = checksum::fields(checksum::verified(&verdict, announced.as_ref()));
        self.object_stored(if header.policy == "INLINE" {
            Layout::Inline
        } else {
            Layout::Chunked
        });
        Ok(S3Response::new(PutObjectOutput {
            version_id: versioning::version_header(&header),
            e_tag: Some(etag(&header)),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            ..Default::default()
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let account = self.reader(&req, &req.input.bucket).await?;
        let input = req.input;
        let header = versioning::lookup(
            &self.sdk,
            &account,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
        )
        .await?;
        let served = conditions_then_served!(input, &header);
        let size = header.size;
        let part = parts::served(&header, input.part_number, input.range.as_ref())?;
        let (start, end) = part.map_or((0, size), |p| (p.start, p.end));
        let e_tag = etag(&header);
        let last_modified = timestamp_ms(header.mtime_ms);
        let storage_class = served_class(&header).map(StorageClass::from);
        let tag_count = tagging::count(&header.tags);
        let version_id = versioning::version_header(&header);
        // The whole object's checksum, when asked for and the whole object is served.
        let sums = match (&input.checksum_mode, part) {
            (Some(m), None) if m.as_str() == ChecksumMode::ENABLED => checksum::stored(&header),
            _ => checksum::fields(None),
        };
        // Inline objects are answered from the header at hand: no reader task, and
        // one body buffer that goes out with the response head.
        let mut header = header;
        let body = match oxio_sdk::get::take_inline_range(&mut header, start, end) {
            Some(bytes) => StreamingBlob::from(s3s::Body::from(bytes)),
            None => {
                let mut rx = self.sdk.read_object(header, start, end);
                StreamingBlob::wrap(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
            }
        };
        let output = GetObjectOutput {
            body: Some(body),
            content_length: Some((end - start) as i64),
            content_range: part.and_then(|p| p.content_range(size)),
            parts_count: part.and_then(|p| p.parts_count),
            accept_ranges: Some("bytes".to_string()),
            e_tag: Some(e_tag),
            last_modified: Some(last_modified),
            content_type: served.content_type,
            cache_control: served.cache_control,
            content_disposition: served.content_disposition,
            content_encoding: served.content_encoding,
            content_language: served.content_language,
            expires: served.expires,
            metadata: served.metadata,
            storage_class,
            tag_count,
            version_id,
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let account = self.reader(&req, &req.input.bucket).await?;
        let input = req.input;
        let header = versioning::lookup(
            &self.sdk,
            &account,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
        )
        .await?;
        let served = conditions_then_served!(input, &header);
        let tag_count = tagging::count(&header.tags);
        // The bytes a GET with the same `partNumber` or `Range` would send: their
        // length and Content-Range (the front answers such a HEAD with 206).
        let part = parts::served(&header, input.part_number, input.range.as_ref())?;
        let sums = match (&input.checksum_mode, part) {
            (Some(m), None) if m.as_str() == ChecksumMode::ENABLED => checksum::stored(&header),
            _ => checksum::fields(None),
        };
        let mut resp = S3Response::new(HeadObjectOutput {
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            content_length: Some(part.map_or(header.size, |p| p.end - p.start) as i64),
            content_range: part.and_then(|p| p.content_range(header.size)),
            parts_count: part.and_then(|p| p.parts_count),
            accept_ranges: Some("bytes".to_string()),
            e_tag: Some(etag(&header)),
            last_modified: Some(timestamp_ms(header.mtime_ms)),
            content_type: served.content_type,
            cache_control: served.cache_control,
            content_disposition: served.content_disposition,
            content_encoding: served.content_encoding,
            content_language: served.content_language,
            expires: served.expires,
            metadata: served.metadata,
            storage_class: served_class(&header).map(StorageClass::from),
            version_id: versioning::version_header(&header),
            ..Default::default()
        });
        // HeadObjectOutput has no field for it; GET and HEAD answer the same headers.
        if let Some(n) = tag_count {
            resp.headers
                .insert("x-amz-tagging-count", http::HeaderValue::from(n));
        }
        Ok(resp)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let account = self.account(&req).await?;
        let input = req.input;
        let done = versioning::delete(
            &self.sdk,
            &account,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
        )
        .await?;
        Ok(S3Response::new(versioning::delete_output(&done)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
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
        // Conditions per object (ETag, modification time, size) are not offered:
        // refused before anything is deleted, rather than deleting unconditionally.
        if let Some(o) = input
            .delete
            .objects
            .iter()
            .find(|o| o.e_tag.is_some() || o.last_modified_time.is_some() || o.size.is_some())
        {
            return Err(s3_error!(
                NotImplemented,
                "conditional deletes (ETag, LastModifiedTime or Size of {:?}) are not offered \
                 by this store; nothing was deleted",
                o.key
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
        // Keys are deleted a few at a time (each is one Raft command); the answer
        // keeps the request's order.
        let (sdk, bucket) = (&self.sdk, &input.bucket);
        let outcomes: Vec<_> = futures::stream::iter(input.delete.objects)
            .map(|obj| {
                let account = &account;
                async move {
                    let r = versioning::delete(
                        sdk,
                        account,
                        bucket,
                        &obj.key,
                        obj.version_id.as_deref(),
                    )
                    .await;
                    (obj, r)
                }
            })
            .buffered(DELETE_OBJECTS_CONCURRENCY)
            .collect()
            .await;
        for (obj, outcome) in outcomes {
            match outcome {
                Ok(done) => {
                    if !quiet {
                        let id = (!done.version_id.is_empty()).then_some(done.version_id);
                        let named = obj.version_id.is_some();
                        deleted.push(DeletedObject {
                            key: Some(obj.key),
                            delete_marker: done.delete_marker.then_some(true),
                            delete_marker_version_id: (done.delete_marker && !named)
                                .then(|| id.clone())
                                .flatten(),
                            version_id: if named { id } else { None },
                        });
                    }
                }
                Err(err) => {
                    errors.push(s3s::dto::Error {
                        code: Some(err.code().as_str().to_string()),
                        key: Some(obj.key),
                        message: err.message().map(str::to_string),
                        version_id: obj.version_id,
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

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let account = self.account(&req).await?;
        versioning::put_bucket(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let account = self.account(&req).await?;
        let out = versioning::get_bucket(&self.sdk, &account, &req.input.bucket).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let account = self.account(&req).await?;
        let out = versioning::list(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let account = self.reader(&req, &req.input.bucket).await?;
        let out = listing::list_v1(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let account = self.reader(&req, &req.input.bucket).await?;
        let out = listing::list_v2(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let account = self.account(&req).await?;
        let condition = copy::destination_condition(&req.headers)?;
        let input = &req.input;
        object_acl_checked!(self, account, input);
        let copied =
            copy::copy_object(&self.sdk, &self.classes, &account, req.input, condition).await?;
        self.object_stored(if copied.inline {
            Layout::Inline
        } else {
            Layout::Chunked
        });
        Ok(S3Response::new(copied.output))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let account = self.account(&req).await?;
        let input = &req.input;
        object_acl_checked!(self, account, input);
        let out = multipart::create(&self.sdk, &self.classes, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key, part = req.input.part_number))]
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let account = self.account(&req).await?;
        let announced = checksum::expected(&req.headers, req.trailing_headers.clone())?;
        let out = multipart::upload_part(&self.sdk, &account, req.input, announced).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key, part = req.input.part_number))]
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let account = self.account(&req).await?;
        let out = part_copy::upload_part_copy(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let account = self.account(&req).await?;
        let out = multipart::complete(&self.sdk, &account, req.input).await?;
        self.object_stored(Layout::Chunked);
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let account = self.account(&req).await?;
        let out = multipart::abort(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let account = self.account(&req).await?;
        let out = multipart::list_parts(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let account = self.account(&req).await?;
        let out = tagging::put_object(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let account = self.account(&req).await?;
        let out = tagging::get_object(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let account = self.account(&req).await?;
        let out = tagging::delete_object(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let account = self.account(&req).await?;
        tagging::put_bucket(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(PutBucketTaggingOutput {}))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let account = self.account(&req).await?;
        let out = tagging::get_bucket(&self.sdk, &account, req.input).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        let account = self.account(&req).await?;
        tagging::delete_bucket(&self.sdk, &account, &req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketTaggingOutput {}))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let account = self.account(&req).await?;
        let canned = acl::for_put(&req.input, &account)?;
        acl::set(&self.sdk, &account, &req.input.bucket, canned).await?;
        Ok(S3Response::new(PutBucketAclOutput {}))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let account = self.account(&req).await?;
        let out = acl::get_bucket(&self.sdk, &account, &req.input.bucket).await?;
        Ok(S3Response::new(out))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]
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
    fn content_md5_must_be_16_bytes_of_base64() {
        assert!(parse_md5("1B2M2Y8AsgTpgAmY7PhCfg==").is_ok());
        assert!(parse_md5("not base64!").is_err());
        assert!(parse_md5("AAAA").is_err());
    }

    #[test]
    fn single_put_is_limited_to_5_gib() {
        assert!(check_put_size(None).is_ok());
        assert!(check_put_size(Some(MAX_PUT_BYTES)).is_ok());
        let e = check_put_size(Some(MAX_PUT_BYTES + 1)).unwrap_err();
        assert_eq!(*e.code(), s3s::S3ErrorCode::EntityTooLarge);
    }
}
