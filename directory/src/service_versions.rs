//! The versioning RPCs of the `Directory` service: setting a container's versioning,
//! reading one version, S3 DeleteObject semantics and listing versions. Writes are one
//! Raft command each; reads follow a read barrier.

use super::{check_key, decode, internal, parse_cid, unexpected, DirectoryService, Res};
use crate::meta2::{self, version_listing, versions};
use crate::status::refusal;
use crate::types::{Command, GroupKind, Refusal, Reply};
use oxio_proto::v1::*;
use tonic::{Response, Status};
use versions::{VersionRef, Versioning};

/// Longest version id accepted (ids are 16 hex digits or `null`).
const MAX_VERSION_ID_BYTES: usize = 64;

/// `None` for "", the parsed id otherwise; INVALID_ARGUMENT when malformed.
pub(super) fn parse_version(v: &str) -> Result<Option<VersionRef>, Status> {
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > MAX_VERSION_ID_BYTES {
        return Err(Status::invalid_argument("invalid version id: too long"));
    }
    VersionRef::parse(v)
        .map(Some)
        .ok_or_else(|| Status::invalid_argument("invalid version id"))
}

/// A refusal of a command that named a version: an absent key means an absent
/// version.
fn version_refusal(r: Refusal, named: bool) -> Status {
    match r {
        Refusal::NoSuchKey if named => Status::not_found("no such version"),
        Refusal::Invalid => {
            Status::invalid_argument("keys of versioned containers must not contain NUL")
        }
        r => refusal(r),
    }
}

impl DirectoryService {
    pub(super) async fn versions_set(
        &self,
        req: SetContainerVersioningRequest,
    ) -> Res<ContainerStatsReply> {
        let cid = parse_cid(&req.cid)?;
        let state = Versioning::parse(&req.versioning).ok_or_else(|| {
            Status::invalid_argument(format!(
                "invalid versioning {:?}: expected Enabled or Suspended",
                req.versioning
            ))
        })?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        match self
            .write(&g, Command::SetVersioning { cid, state })
            .await?
        {
            Reply::Encoded(b) => Ok(Response::new(decode(&b)?)),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn versions_get(&self, req: GetContentVersionRequest) -> Res<ContentRecord> {
        let cid = parse_cid(&req.cid)?;
        check_key(&req.key)?;
        let version = parse_version(&req.version_id)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        self.barrier(&g).await?;
        match versions::get_version(&g.sm.view(), &cid, &req.key, version).map_err(internal)? {
            Ok(header) => Ok(Response::new(ContentRecord {
                key: req.key,
                header: Some(header),
            })),
            Err(r) => Err(version_refusal(r, version.is_some())),
        }
    }

    pub(super) async fn versions_delete(
        &self,
        req: DeleteContentVersionRequest,
    ) -> Res<DeleteContentVersionReply> {
        let cid = parse_cid(&req.cid)?;
        check_key(&req.key)?;
        let version = parse_version(&req.version_id)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        let cmd = Command::DeleteVersion {
            cid,
            key: req.key,
            version,
            clock: versions::DeleteClock {
                proposed_version: oxio_common::now_us(),
                mtime_ms: oxio_common::now_ms(),
            },
        };
        match self.write(&g, cmd).await? {
            Reply::Encoded(b) => Ok(Response::new(decode(&b)?)),
            Reply::Refused(r) => Err(version_refusal(r, version.is_some())),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn versions_list(
        &self,
        req: ListContentVersionsRequest,
    ) -> Res<ListContentVersionsReply> {
        let cid = parse_cid(&req.cid)?;
        for (what, v) in [
            ("prefix", &req.prefix),
            ("delimiter", &req.delimiter),
            ("key_marker", &req.key_marker),
        ] {
            if v.len() > meta2::MAX_KEY_BYTES {
                return Err(Status::invalid_argument(format!("{what} too long")));
            }
        }
        if req.version_id_marker.len() > MAX_VERSION_ID_BYTES {
            return Err(Status::invalid_argument("version_id_marker too long"));
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
        let params = version_listing::VersionParams {
            prefix: &req.prefix,
            delimiter: &req.delimiter,
            key_marker: &req.key_marker,
            version_id_marker: &req.version_id_marker,
            max_keys: req.max_keys,
        };
        let reply = version_listing::list_versions(&view, &cid, &params).map_err(internal)?;
        Ok(Response::new(reply))
    }
}
