//! The multipart RPCs of the `Directory` service: input checks, then one Raft command
//! per write and a read barrier before every read.

use super::{check_key, decode, internal, parse_cid, unexpected, DirectoryService, Res};
use crate::meta2;
use crate::multipart::{self, MAX_PART_NUMBER, MAX_UPLOAD_ID_BYTES};
use crate::status::refusal;
use crate::types::{Command, GroupKind, Reply, WriteCondition};
use oxio_proto::v1::*;
use prost::Message;
use tonic::{Response, Status};

/// Most parts one completion may list (as S3).
const MAX_COMPLETE_PARTS: usize = MAX_PART_NUMBER as usize;

fn check_upload_key(key: &str) -> Result<(), Status> {
    check_key(key)?;
    if key.as_bytes().contains(&0) {
        return Err(Status::invalid_argument(
            "multipart keys must not contain NUL",
        ));
    }
    Ok(())
}

fn check_upload_id(id: &str) -> Result<(), Status> {
    if id.is_empty()
        || id.len() > MAX_UPLOAD_ID_BYTES
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Status::not_found("no such upload"));
    }
    Ok(())
}

fn encoded<M: Message + Default>(r: Reply) -> Result<M, Status> {
    match r {
        Reply::Encoded(b) => decode(&b),
        other => Err(unexpected(other)),
    }
}

impl DirectoryService {
    pub(super) async fn mpu_create(&self, req: CreateUploadRequest) -> Res<CreateUploadReply> {
        let cid = parse_cid(&req.cid)?;
        check_upload_key(&req.key)?;
        check_upload_id(&req.upload_id)
            .map_err(|_| Status::invalid_argument("upload id must be 1 to 128 [A-Za-z0-9_-]"))?;
        let mut template = req.template.unwrap_or_default();
        template.inline_data.clear();
        template.chunks.clear();
        template.metachunk_sizes.clear();
        let template = template.encode_to_vec();
        if template.len() > meta2::MAX_HEADER_BYTES {
            return Err(Status::invalid_argument("template too large"));
        }
        let g = self.group(req.group, GroupKind::Meta2)?;
        let cmd = Command::CreateUpload {
            cid,
            key: req.key,
            upload_id: req.upload_id,
            template,
            initiated_us: oxio_common::now_us(),
        };
        Ok(Response::new(encoded(self.write(&g, cmd).await?)?))
    }

    pub(super) async fn mpu_put_part(&self, req: PutPartRequest) -> Res<PutPartReply> {
        let cid = parse_cid(&req.cid)?;
        check_upload_key(&req.key)?;
        check_upload_id(&req.upload_id)?;
        let mut part = req
            .part
            .ok_or_else(|| Status::invalid_argument("part is required"))?;
        if !(1..=MAX_PART_NUMBER).contains(&part.part_number) {
            return Err(Status::invalid_argument(format!(
                "part number must be 1 to {MAX_PART_NUMBER}"
            )));
        }
        if part.chunks.len() > meta2::MAX_CHUNKS {
            return Err(Status::invalid_argument(format!(
                "more than {} chunks",
                meta2::MAX_CHUNKS
            )));
        }
        if part.mtime_ms == 0 {
            part.mtime_ms = oxio_common::now_ms();
        }
        let part = part.encode_to_vec();
        if part.len() > meta2::MAX_HEADER_BYTES {
            return Err(Status::invalid_argument("part record too large"));
        }
        let g = self.group(req.group, GroupKind::Meta2)?;
        let cmd = Command::PutPart {
            cid,
            key: req.key,
            upload_id: req.upload_id,
            part,
        };
        Ok(Response::new(encoded(self.write(&g, cmd).await?)?))
    }

    pub(super) async fn mpu_list_parts(&self, req: ListPartsRequest) -> Res<ListPartsReply> {
        let cid = parse_cid(&req.cid)?;
        check_upload_key(&req.key)?;
        check_upload_id(&req.upload_id)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        self.barrier(&g).await?;
        let view = g.sm.view();
        let upload = multipart::get_upload(&view, &cid, &req.key, &req.upload_id)
            .map_err(internal)?
            .map_err(refusal)?;
        let (parts, truncated) = multipart::list_parts(
            &view,
            &cid,
            &req.upload_id,
            req.part_number_marker,
            req.max_parts,
        )
        .map_err(internal)?;
        let next_part_number_marker = if truncated {
            parts.last().map(|p| p.part_number).unwrap_or_default()
        } else {
            0
        };
        Ok(Response::new(ListPartsReply {
            upload: Some(upload),
            parts,
            truncated,
            next_part_number_marker,
        }))
    }

    pub(super) async fn mpu_list_uploads(&self, req: ListUploadsRequest) -> Res<ListUploadsReply> {
        let cid = parse_cid(&req.cid)?;
        for (what, v) in [
            ("prefix", &req.prefix),
            ("key_marker", &req.key_marker),
            ("delimiter", &req.delimiter),
        ] {
            if v.len() > meta2::MAX_KEY_BYTES {
                return Err(Status::invalid_argument(format!("{what} too long")));
            }
        }
        if req.upload_id_marker.len() > MAX_UPLOAD_ID_BYTES {
            return Err(Status::invalid_argument("upload_id_marker too long"));
        }
        let g = self.group(req.group, GroupKind::Meta2)?;
        self.barrier(&g).await?;
        let view = g.sm.view();
        if meta2::container_meta(&view, &cid)
            .map_err(internal)?
            .is_none()
        {
            return Err(Status::not_found("no such container"));
        }
        let page = multipart::list_uploads(
            &view,
            &cid,
            &req.prefix,
            &req.delimiter,
            &req.key_marker,
            &req.upload_id_marker,
            req.max_uploads,
        )
        .map_err(internal)?;
        Ok(Response::new(ListUploadsReply {
            uploads: page.uploads,
            truncated: page.truncated,
            next_key_marker: page.next_key_marker,
            next_upload_id_marker: page.next_upload_id_marker,
            common_prefixes: page.common_prefixes,
        }))
    }

    pub(super) async fn mpu_complete(
        &self,
        req: CompleteUploadRequest,
    ) -> Res<CompleteUploadReply> {
        let cid = parse_cid(&req.cid)?;
        check_upload_key(&req.key)?;
        check_upload_id(&req.upload_id)?;
        if req.parts.is_empty() {
            return Err(Status::invalid_argument("at least one part must be listed"));
        }
        if req.parts.len() > MAX_COMPLETE_PARTS {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_COMPLETE_PARTS} parts"
            )));
        }
        let mut parts = Vec::with_capacity(req.parts.len());
        for p in req.parts {
            if p.etag.len() > 128 {
                return Err(Status::failed_precondition(
                    "InvalidPart: entity tag too long",
                ));
            }
            parts.push((p.part_number, p.etag));
        }
        let condition = WriteCondition::from_proto(req.condition)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        let cmd = Command::CompleteUpload {
            cid,
            key: req.key,
            upload_id: req.upload_id,
            parts,
            proposed_version: oxio_common::now_us(),
            mtime_ms: oxio_common::now_ms(),
            condition,
        };
        Ok(Response::new(encoded(self.write(&g, cmd).await?)?))
    }

    pub(super) async fn mpu_abort(&self, req: AbortUploadRequest) -> Res<AbortUploadReply> {
        let cid = parse_cid(&req.cid)?;
        check_upload_key(&req.key)?;
        check_upload_id(&req.upload_id)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        let cmd = Command::AbortUpload {
            cid,
            key: req.key,
            upload_id: req.upload_id,
        };
        Ok(Response::new(encoded(self.write(&g, cmd).await?)?))
    }
}
