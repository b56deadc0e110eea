//! Multipart uploads. An upload is created in meta2 with the template of the final
//! object (content id, policy, content type, metadata). Each part streams to rawx like
//! a chunked object (never inline, even when empty or tiny) and its record (size, MD5,
//! metachunks, chunks) is committed to meta2. Completion is one meta2 command that
//! turns the listed parts' metachunks into the object's, without copying a byte; the
//! chunks of replaced, unused or aborted parts are deleted in the background.

use crate::client::{Client, PutOptions};
use crate::directory::unexpected;
use crate::put::{self, UploadSpec};
use crate::Error;
use bytes::Bytes;
use futures::Stream;
use oxio_common::{ContentId, StoragePolicy};
use oxio_proto::v1::*;
use std::fmt::Display;
use tonic::{Code, Status};

/// Highest part number (as S3).
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Most parts one completion may list (as S3).
pub const MAX_COMPLETE_PARTS: usize = 10_000;
/// Attempts at drawing an unused upload id.
const CREATE_ATTEMPTS: usize = 3;

/// What can go wrong in a multipart call: the multipart-specific refusals, or any
/// other sdk error.
#[derive(Debug, thiserror::Error)]
pub enum MultipartError {
    /// The upload does not exist (never created, completed or aborted).
    #[error("no such upload")]
    NoSuchUpload,
    /// A listed part was not uploaded or its etag does not match.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// The listed part numbers are not strictly ascending.
    #[error("invalid part order: {0}")]
    InvalidPartOrder(String),
    /// A part other than the last is smaller than 5 MiB.
    #[error("entity too small: {0}")]
    EntityTooSmall(String),
    /// The completed object would be larger than a header may describe.
    #[error("entity too large: {0}")]
    EntityTooLarge(String),
    /// Any other failure.
    #[error(transparent)]
    Sdk(#[from] Error),
}

/// Result of a multipart call.
pub type MpuResult<T> = std::result::Result<T, MultipartError>;

/// One page of the parts of an upload.
#[derive(Clone, Debug, Default)]
pub struct PartsPage {
    /// The upload (key, id, initiation time, template).
    pub upload: UploadRecord,
    /// Parts by number, without chunk records.
    pub parts: Vec<PartRecord>,
    /// More follow.
    pub truncated: bool,
    /// When truncated: pass as `part_number_marker` for the next page.
    pub next_part_number_marker: u32,
}

/// One page of the uploads in progress in a container.
#[derive(Clone, Debug, Default)]
pub struct UploadsPage {
    /// Uploads by key then initiation time.
    pub uploads: Vec<UploadRecord>,
    /// Common prefixes (with a delimiter), in order.
    pub common_prefixes: Vec<String>,
    /// More follow.
    pub truncated: bool,
    /// When truncated: the markers of the next page.
    pub next_key_marker: String,
    /// When truncated: the markers of the next page.
    pub next_upload_id_marker: String,
}

/// What [`Client::list_uploads`] lists (S3 ListMultipartUploads parameters).
#[derive(Clone, Copy, Debug, Default)]
pub struct UploadsQuery<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Non-empty: keys holding it after the prefix roll up into common prefixes.
    pub delimiter: &'a str,
    /// Uploads of keys after this one (or, with `upload_id_marker`, of this key
    /// initiated after that upload).
    pub key_marker: &'a str,
    /// See `key_marker`.
    pub upload_id_marker: &'a str,
    /// Page size (0: 1000).
    pub max: u32,
}

/// A fresh upload id: 128 random bits, 32 lower-case hex.
pub fn new_upload_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Turns a directory answer into the multipart error it stands for.
fn from_status(s: Status) -> MultipartError {
    let msg = s.message();
    match s.code() {
        Code::NotFound if msg.contains("upload") => MultipartError::NoSuchUpload,
        Code::NotFound if msg.contains("container") => Error::NoSuchContainer.into(),
        // A completion conditioned on an ETag of a key that holds nothing.
        Code::NotFound if msg.contains("key") => Error::NoSuchKey.into(),
        Code::FailedPrecondition => {
            let (code, detail) = msg.split_once(':').unwrap_or((msg, ""));
            let detail = detail.trim().to_string();
            match code {
                "InvalidPart" => MultipartError::InvalidPart(detail),
                "InvalidPartOrder" => MultipartError::InvalidPartOrder(detail),
                "EntityTooSmall" => MultipartError::EntityTooSmall(detail),
                "EntityTooLarge" => MultipartError::EntityTooLarge(detail),
                "PreconditionFailed" => Error::PreconditionFailed.into(),
                "QuotaExceeded" => Error::QuotaExceeded.into(),
                _ => unexpected(s).into(),
            }
        }
        _ => unexpected(s).into(),
    }
}

fn check_key(key: &str) -> MpuResult<()> {
    if key.is_empty() || key.len() > 1024 || key.contains('\0') {
        return Err(Error::InvalidArgument(
            "object key must be 1 to 1024 bytes without NUL".into(),
        )
        .into());
    }
    Ok(())
}

fn check_part_number(n: u32) -> MpuResult<()> {
    if !(1..=MAX_PART_NUMBER).contains(&n) {
        return Err(Error::InvalidArgument(format!(
            "part number must be an integer between 1 and {MAX_PART_NUMBER}"
        ))
        .into());
    }
    Ok(())
}

impl Client {
    /// Maps a failed call, forgetting the cached group of a container meta2 does not
    /// know.
    fn mpu_failed(&self, cid: &str, s: Status) -> MultipartError {
        let e = from_status(s);
        if matches!(e, MultipartError::Sdk(Error::NoSuchContainer)) {
            self.forget_container(cid);
        }
        e
    }

    /// Starts a multipart upload of `key`; the final object will carry the content
    /// type, metadata and policy of `opts` (its length and MD5 are ignored).
    #[tracing::instrument(level = "debug", skip(self, opts))]
    pub async fn create_upload(
        &self,
        account: &str,
        container: &str,
        key: &str,
        opts: PutOptions,
    ) -> MpuResult<UploadRecord> {
        check_key(key)?;
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        // The size of the final object is unknown: the request, then the bucket, then
        // the client's default decide (the size rule does not apply).
        let probe = PutOptions {
            policy: opts.policy,
            ..PutOptions::default()
        };
        let policy = self.choose_policy(&cid, m2, &probe).await?;
        let template = ContentHeader {
            placement_degraded: false,
            content_id: ContentId::random().0.to_vec(),
            policy: policy.to_string(),
            content_type: opts.content_type,
            user_meta: opts.user_meta,
            system_meta: opts.system_meta,
            tags: opts.tags,
            ..Default::default()
        };
        let mut last = None;
        for _ in 0..CREATE_ATTEMPTS {
            let upload_id = new_upload_id();
            let reply = self
                .shared()
                .directory
                .call(m2, |mut c, t| {
                    let mut r = tonic::Request::new(CreateUploadRequest {
                        group: m2,
                        cid: cid.clone(),
                        key: key.to_string(),
                        upload_id: upload_id.clone(),
                        template: Some(template.clone()),
                    });
                    r.set_timeout(t);
                    async move { c.create_upload(r).await }
                })
                .await?;
            match reply {
                Ok(r) => {
                    return r
                        .upload
                        .ok_or_else(|| Error::Internal("upload without record".into()).into())
                }
                Err(s) if s.code() == Code::AlreadyExists => last = Some(s),
                Err(s) => return Err(self.mpu_failed(&cid, s)),
            }
        }
        Err(Error::Internal(format!(
            "no free upload id after {CREATE_ATTEMPTS} attempts: {}",
            last.map(|s| s.message().to_string()).unwrap_or_default()
        ))
        .into())
    }

    /// Streams one part (never inline) and records it. A part with the same number is
    /// replaced (its chunks are deleted). `expected_md5` is checked like a put's
    /// Content-MD5. Returns the stored part record.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(level = "debug", skip(self, body))]
    pub async fn upload_part<S, E>(
        &self,
        account: &str,
        container: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: S,
        expected_len: Option<u64>,
        expected_md5: Option<[u8; 16]>,
    ) -> MpuResult<PartRecord>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: Display,
    {
        check_key(key)?;
        check_part_number(part_number)?;
        // The upload must exist before any byte moves; its template fixes the policy
        // and content id of every part.
        let page = self
            .list_parts(account, container, key, upload_id, MAX_PART_NUMBER, 1)
            .await?;
        let template = page.upload.template.unwrap_or_default();
        let policy: StoragePolicy = template
            .policy
            .parse()
            .map_err(|e| Error::Internal(format!("upload template has {e}")))?;
        let content_id = match <[u8; 16]>::try_from(template.content_id.as_slice()) {
            Ok(id) => ContentId(id),
            Err(_) => ContentId::random(),
        };
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        self.check_quota(&cid, m2, expected_len).await?;
        let inner = self.shared();
        let spec = UploadSpec {
            content_id,
            policy,
            inline_max: 0,
            expected_len,
        };
        let up = put::upload_with(inner, &cid, body, spec).await?;
        if let Some(md5) = expected_md5 {
            if md5 != up.md5 {
                inner.delete_chunks_later(up.chunks);
                return Err(Error::BadDigest.into());
            }
        }
        let part = PartRecord {
            placement_degraded: up.placement_degraded,
            part_number,
            size: up.size,
            etag: hex::encode(up.md5),
            mtime_ms: oxio_common::now_ms(),
            metachunk_sizes: up.metachunk_sizes,
            chunks: up.chunks,
        };
        let reply = inner
            .directory
            .call(m2, |mut c, t| {
                let mut r = tonic::Request::new(PutPartRequest {
                    group: m2,
                    cid: cid.clone(),
                    key: key.to_string(),
                    upload_id: upload_id.to_string(),
                    part: Some(part.clone()),
                });
                r.set_timeout(t);
                async move { c.put_part(r).await }
            })
            .await;
        match reply {
            // A replaced part's chunks were queued for deletion by meta2.
            Ok(Ok(_)) => Ok(part),
            Ok(Err(s)) => {
                inner.delete_chunks_later(part.chunks);
                Err(self.mpu_failed(&cid, s))
            }
            // The commit's outcome is unknown: keep the chunks for garbage collection.
            Err(e) => Err(e.into()),
        }
    }

    /// Completes an upload from `(part number, etag)` pairs in ascending order, if
    /// `condition` holds on the key (checked in the same directory command; a failed
    /// condition leaves the upload in place). Returns the stored header; the replaced
    /// object's chunks and those of parts not listed are deleted in the background.
    #[tracing::instrument(level = "debug", skip(self, parts), fields(parts = parts.len()))]
    pub async fn complete_upload(
        &self,
        account: &str,
        container: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        condition: Option<PutCondition>,
    ) -> MpuResult<ContentHeader> {
        check_key(key)?;
        if parts.is_empty() {
            return Err(Error::InvalidArgument("at least one part must be listed".into()).into());
        }
        if parts.len() > MAX_COMPLETE_PARTS {
            return Err(Error::InvalidArgument(format!(
                "at most {MAX_COMPLETE_PARTS} parts may be listed"
            ))
            .into());
        }
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        let listed: Vec<CompletedPart> = parts
            .iter()
            .map(|(n, e)| CompletedPart {
                part_number: *n,
                etag: e.clone(),
            })
            .collect();
        let reply = self
            .shared()
            .directory
            .call(m2, |mut c, t| {
                let mut r = tonic::Request::new(CompleteUploadRequest {
                    group: m2,
                    cid: cid.clone(),
                    key: key.to_string(),
                    upload_id: upload_id.to_string(),
                    parts: listed.clone(),
                    condition: condition.clone(),
                });
                r.set_timeout(t);
                async move { c.complete_upload(r).await }
            })
            .await?
            .map_err(|s| self.mpu_failed(&cid, s))?;
        // The replaced object's and the unused parts' chunks were queued for deletion
        // by meta2 in the completion's Raft entry.
        reply
            .header
            .ok_or_else(|| Error::Internal("completion without header".into()).into())
    }

    /// Aborts an upload; the chunks of its parts are deleted in the background.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn abort_upload(
        &self,
        account: &str,
        container: &str,
        key: &str,
        upload_id: &str,
    ) -> MpuResult<()> {
        check_key(key)?;
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        // The parts' chunks are queued for deletion by meta2 in the abort's entry.
        self.shared()
            .directory
            .call(m2, |mut c, t| {
                let mut r = tonic::Request::new(AbortUploadRequest {
                    group: m2,
                    cid: cid.clone(),
                    key: key.to_string(),
                    upload_id: upload_id.to_string(),
                });
                r.set_timeout(t);
                async move { c.abort_upload(r).await }
            })
            .await?
            .map_err(|s| self.mpu_failed(&cid, s))?;
        Ok(())
    }

    /// One page of the parts of an upload: numbers after `marker`, at most `max`
    /// (0: 1000).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_parts(
        &self,
        account: &str,
        container: &str,
        key: &str,
        upload_id: &str,
        marker: u32,
        max: u32,
    ) -> MpuResult<PartsPage> {
        check_key(key)?;
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        let r = self
            .shared()
            .directory
            .call(m2, |mut c, t| {
                let mut r = tonic::Request::new(ListPartsRequest {
                    group: m2,
                    cid: cid.clone(),
                    key: key.to_string(),
                    upload_id: upload_id.to_string(),
                    part_number_marker: marker,
                    max_parts: max,
                });
                r.set_timeout(t);
                async move { c.list_parts(r).await }
            })
            .await?
            .map_err(|s| self.mpu_failed(&cid, s))?;
        Ok(PartsPage {
            upload: r
                .upload
                .ok_or_else(|| Error::Internal("parts without their upload".into()))?,
            parts: r.parts,
            truncated: r.truncated,
            next_part_number_marker: r.next_part_number_marker,
        })
    }

    /// One page of the uploads in progress: keys starting with the prefix, after the
    /// markers (S3 semantics), rolled up by the delimiter, at most `max` (0: 1000).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_uploads(
        &self,
        account: &str,
        container: &str,
        q: UploadsQuery<'_>,
    ) -> MpuResult<UploadsPage> {
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        let r = self
            .shared()
            .directory
            .call(m2, |mut c, t| {
                let mut r = tonic::Request::new(ListUploadsRequest {
                    group: m2,
                    cid: cid.clone(),
                    prefix: q.prefix.to_string(),
                    delimiter: q.delimiter.to_string(),
                    key_marker: q.key_marker.to_string(),
                    upload_id_marker: q.upload_id_marker.to_string(),
                    max_uploads: q.max,
                });
                r.set_timeout(t);
                async move { c.list_uploads(r).await }
            })
            .await?
            .map_err(|s| self.mpu_failed(&cid, s))?;
        Ok(UploadsPage {
            uploads: r.uploads,
            common_prefixes: r.common_prefixes,
            truncated: r.truncated,
            next_key_marker: r.next_key_marker,
            next_upload_id_marker: r.next_upload_id_marker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_refusals_become_multipart_errors() {
        let e = from_status(Status::not_found("no such upload"));
        assert!(matches!(e, MultipartError::NoSuchUpload));
        let e = from_status(Status::not_found("no such container"));
        assert!(matches!(e, MultipartError::Sdk(Error::NoSuchContainer)));
        let e = from_status(Status::failed_precondition("InvalidPart: part 3 missing"));
        assert!(matches!(e, MultipartError::InvalidPart(d) if d == "part 3 missing"));
        let e = from_status(Status::failed_precondition("InvalidPartOrder: x"));
        assert!(matches!(e, MultipartError::InvalidPartOrder(_)));
        let e = from_status(Status::failed_precondition("EntityTooSmall: x"));
        assert!(matches!(e, MultipartError::EntityTooSmall(_)));
        let e = from_status(Status::failed_precondition("container not empty"));
        assert!(matches!(e, MultipartError::Sdk(Error::Internal(_))));
        let e = from_status(Status::unavailable("not leader"));
        assert!(matches!(e, MultipartError::Sdk(Error::Unavailable(_))));
    }

    #[test]
    fn upload_ids_are_128_bit_hex_and_distinct() {
        let a = new_upload_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_upload_id());
    }

    #[test]
    fn part_numbers_and_keys_are_checked() {
        assert!(check_part_number(0).is_err());
        assert!(check_part_number(1).is_ok());
        assert!(check_part_number(10_000).is_ok());
        assert!(check_part_number(10_001).is_err());
        assert!(check_key("").is_err());
        assert!(check_key("a\0b").is_err());
        assert!(check_key("ok/key").is_ok());
    }
}
