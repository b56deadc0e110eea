//! The six S3 multipart operations (CreateMultipartUpload, UploadPart,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads)
//! mapped onto the sdk, with the S3 error codes clients expect.

use crate::checksum;
use crate::error::s3_error;
use crate::headers::{put_options, HeaderInputs};
use crate::listing::url_encode;
use crate::service::{parse_md5, timestamp_ms};
use crate::storage_class::StorageClasses;
use bytes::Bytes;
use oxio_sdk::multipart::{MultipartError, MAX_PART_NUMBER};
use oxio_sdk::Client;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

/// Default and largest page of ListParts / ListMultipartUploads (as S3).
const MAX_PAGE: i32 = 1000;

/// Maps a multipart sdk error to the S3 error a client expects.
pub fn mpu_error(e: MultipartError) -> S3Error {
    let (code, msg) = match e {
        MultipartError::NoSuchUpload => (
            S3ErrorCode::NoSuchUpload,
            "The specified upload does not exist. The upload ID may be invalid, or the upload \
             may have been aborted or completed.",
        ),
        MultipartError::InvalidPart(_) => (
            S3ErrorCode::InvalidPart,
            "One or more of the specified parts could not be found. The part may not have been \
             uploaded, or the specified entity tag may not match the part's entity tag.",
        ),
        MultipartError::InvalidPartOrder(_) => (
            S3ErrorCode::InvalidPartOrder,
            "The list of parts was not in ascending order. Parts must be ordered by part number.",
        ),
        MultipartError::EntityTooSmall(_) => (
            S3ErrorCode::EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed object size.",
        ),
        MultipartError::EntityTooLarge(_) => (
            S3ErrorCode::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size.",
        ),
        MultipartError::Sdk(e) => return s3_error(e),
    };
    S3Error::with_message(code, msg)
}

/// Checks an S3 part number (1 to 10,000).
pub(crate) fn part_number(n: i32) -> S3Result<u32> {
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_PART_NUMBER).contains(&n) => Ok(n),
        _ => Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        )),
    }
}

fn page(max: Option<i32>, what: &str) -> S3Result<u32> {
    match max {
        None => Ok(MAX_PAGE as u32),
        Some(n) if n < 0 => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!("{what} must be a non-negative integer"),
        )),
        Some(n) => Ok(n.min(MAX_PAGE) as u32),
    }
}

fn us_to_timestamp(us: u64) -> Timestamp {
    timestamp_ms(us / 1000)
}

/// CreateMultipartUpload.
pub async fn create(
    sdk: &Client,
    classes: &StorageClasses,
    account: &str,
    input: CreateMultipartUploadInput,
) -> S3Result<CreateMultipartUploadOutput> {
    let mut opts = put_options(HeaderInputs {
        content_type: input.content_type,
        cache_control: input.cache_control,
        content_disposition: input.content_disposition,
        content_encoding: input.content_encoding,
        content_language: input.content_language,
        expires: input.expires,
        metadata: input.metadata,
    })?;
    classes.apply(input.storage_class.as_ref().map(|c| c.as_str()), &mut opts)?;
    opts.tags = crate::tagging::from_header(input.tagging.as_deref())?;
    let up = sdk
        .create_upload(account, &input.bucket, &input.key, opts)
        .await
        .map_err(mpu_error)?;
    Ok(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(up.upload_id),
        ..Default::default()
    })
}

/// UploadPart.
pub async fn upload_part(
    sdk: &Client,
    account: &str,
    input: UploadPartInput,
    announced: Option<checksum::Expected>,
) -> S3Result<UploadPartOutput> {
    let n = part_number(input.part_number)?;
    let expected_md5 = input.content_md5.as_deref().map(parse_md5).transpose()?;
    let expected_len = input.content_length.map(|l| l.max(0) as u64);
    let body = input.body.unwrap_or_else(|| {
        StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>())
    });
    let (body, verdict) = checksum::verify(body, announced.clone(), None);
    let part = sdk
        .upload_part(
            account,
            &input.bucket,
            &input.key,
            &input.upload_id,
            n,
            body,
            expected_len,
            expected_md5,
        )
        .await
        .map_err(|e| checksum::upload_error(&verdict, mpu_error(e)))?;
    let sums = checksum::fields(checksum::verified(&verdict, announced.as_ref()));
    Ok(UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag)),
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        ..Default::default()
    })
}

/// CompleteMultipartUpload.
pub async fn complete(
    sdk: &Client,
    account: &str,
    input: CompleteMultipartUploadInput,
) -> S3Result<CompleteMultipartUploadOutput> {
    let condition =
        crate::conditional::write_condition(input.if_match.clone(), input.if_none_match.clone())?;
    let listed = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    if listed.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our \
             published schema"
        ));
    }
    if listed.len() > MAX_PART_NUMBER as usize {
        return Err(s3_error!(
            MalformedXML,
            "A completion may list at most 10000 parts"
        ));
    }
    let mut parts = Vec::with_capacity(listed.len());
    for p in listed {
        let n = part_number(p.part_number.unwrap_or(0))?;
        let Some(etag) = p.e_tag else {
            return Err(mpu_error(MultipartError::InvalidPart("no etag".into())));
        };
        parts.push((n, etag.value().trim_matches('"').to_string()));
    }
    let header = sdk
        .complete_upload(
            account,
            &input.bucket,
            &input.key,
            &input.upload_id,
            &parts,
            condition,
        )
        .await
        .map_err(mpu_error)?;
    Ok(CompleteMultipartUploadOutput {
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        bucket: Some(input.bucket),
        key: Some(input.key),
        version_id: crate::versioning::version_header(&header),
        e_tag: Some(ETag::Strong(header.etag)),
        ..Default::default()
    })
}

/// AbortMultipartUpload.
pub async fn abort(
    sdk: &Client,
    account: &str,
    input: AbortMultipartUploadInput,
) -> S3Result<AbortMultipartUploadOutput> {
    sdk.abort_upload(account, &input.bucket, &input.key, &input.upload_id)
        .await
        .map_err(mpu_error)?;
    Ok(AbortMultipartUploadOutput::default())
}

fn owner(account: &str) -> Owner {
    Owner {
        display_name: Some(account.to_string()),
        id: Some(account.to_string()),
    }
}

fn initiator(account: &str) -> Initiator {
    Initiator {
        display_name: Some(account.to_string()),
        id: Some(account.to_string()),
    }
}

/// ListParts.
pub async fn list_parts(
    sdk: &Client,
    account: &str,
    input: ListPartsInput,
) -> S3Result<ListPartsOutput> {
    let max = page(input.max_parts, "max-parts")?;
    let marker = match input.part_number_marker {
        None => 0,
        Some(m) => u32::try_from(m).map_err(|_| {
            s3_error!(
                InvalidArgument,
                "part-number-marker must be a non-negative integer"
            )
        })?,
    };
    let page = if max == 0 {
        // Still answer NoSuchUpload for an unknown upload.
        let mut p = sdk
            .list_parts(
                account,
                &input.bucket,
                &input.key,
                &input.upload_id,
                MAX_PART_NUMBER,
                1,
            )
            .await
            .map_err(mpu_error)?;
        p.parts.clear();
        p.truncated = false;
        p
    } else {
        sdk.list_parts(
            account,
            &input.bucket,
            &input.key,
            &input.upload_id,
            marker,
            max,
        )
        .await
        .map_err(mpu_error)?
    };
    let parts: Vec<Part> = page
        .parts
        .into_iter()
        .map(|p| Part {
            e_tag: Some(ETag::Strong(p.etag)),
            last_modified: Some(timestamp_ms(p.mtime_ms)),
            part_number: Some(p.part_number as i32),
            size: Some(p.size as i64),
            ..Default::default()
        })
        .collect();
    Ok(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        initiator: Some(initiator(account)),
        owner: Some(owner(account)),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        is_truncated: Some(page.truncated),
        next_part_number_marker: page
            .truncated
            .then_some(page.next_part_number_marker as i32),
        parts: Some(parts),
        ..Default::default()
    })
}

/// ListMultipartUploads (prefix, delimiter roll-up, key / upload id markers).
pub async fn list_uploads(
    sdk: &Client,
    account: &str,
    input: ListMultipartUploadsInput,
) -> S3Result<ListMultipartUploadsOutput> {
    let max = page(input.max_uploads, "max-uploads")?;
    let url = input
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == "url");
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let prefix = input.prefix.clone().unwrap_or_default();
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().unwrap_or_default();
    let page = if max == 0 {
        sdk.get_container(account, &input.bucket)
            .await
            .map_err(s3_error)?;
        oxio_sdk::multipart::UploadsPage::default()
    } else {
        let q = oxio_sdk::multipart::UploadsQuery {
            prefix: &prefix,
            delimiter: &delimiter,
            key_marker: &key_marker,
            upload_id_marker: &id_marker,
            max,
        };
        sdk.list_uploads(account, &input.bucket, q)
            .await
            .map_err(mpu_error)?
    };
    let uploads: Vec<MultipartUpload> = page
        .uploads
        .into_iter()
        .map(|u| MultipartUpload {
            initiated: Some(us_to_timestamp(u.initiated_us)),
            initiator: Some(initiator(account)),
            owner: Some(owner(account)),
            key: Some(enc(u.key)),
            upload_id: Some(u.upload_id),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        })
        .collect();
    let common_prefixes: Vec<CommonPrefix> = page
        .common_prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    let truncated = page.truncated;
    Ok(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: Some(enc(prefix)),
        key_marker: Some(enc(key_marker)),
        upload_id_marker: Some(id_marker),
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: truncated.then(|| enc(page.next_key_marker)),
        next_upload_id_marker: truncated.then_some(page.next_upload_id_marker),
        encoding_type: input.encoding_type,
        delimiter: (!delimiter.is_empty()).then(|| enc(delimiter)),
        common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
        uploads: Some(uploads),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_numbers_outside_1_to_10000_are_invalid_arguments() {
        assert_eq!(part_number(1).unwrap(), 1);
        assert_eq!(part_number(10_000).unwrap(), 10_000);
        for bad in [0, -1, 10_001, i32::MAX] {
            let e = part_number(bad).unwrap_err();
            assert_eq!(e.code(), &S3ErrorCode::InvalidArgument);
        }
    }

    #[test]
    fn multipart_errors_map_to_s3_codes() {
        let cases = [
            (MultipartError::NoSuchUpload, S3ErrorCode::NoSuchUpload),
            (
                MultipartError::InvalidPart(String::new()),
                S3ErrorCode::InvalidPart,
            ),
            (
                MultipartError::InvalidPartOrder(String::new()),
                S3ErrorCode::InvalidPartOrder,
            ),
            (
                MultipartError::EntityTooSmall(String::new()),
                S3ErrorCode::EntityTooSmall,
            ),
            (
                MultipartError::Sdk(oxio_sdk::Error::NoSuchContainer),
                S3ErrorCode::NoSuchBucket,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(mpu_error(e).code(), &code);
        }
    }

    #[test]
    fn page_sizes_are_capped_and_checked() {
        assert_eq!(page(None, "max-parts").unwrap(), 1000);
        assert_eq!(page(Some(5000), "max-parts").unwrap(), 1000);
        assert_eq!(page(Some(2), "max-parts").unwrap(), 2);
        assert!(page(Some(-1), "max-parts").is_err());
    }
}
