//! The tagging RPCs of the `Directory` service: replacing an object's tag set in place
//! and setting or removing a container's tag set, each one Raft command.

use super::{check_key, decode, parse_cid, unexpected, DirectoryService, Res};
use crate::tags::{check_tags, MAX_CONTAINER_TAGS, MAX_OBJECT_TAGS};
use crate::types::{Command, GroupKind, Reply};
use oxio_proto::v1::*;
use tonic::{Response, Status};

impl DirectoryService {
    pub(super) async fn tags_set_content(
        &self,
        req: SetContentTagsRequest,
    ) -> Res<SetContentTagsReply> {
        let cid = parse_cid(&req.cid)?;
        check_key(&req.key)?;
        let tags = check_tags(&req.tags, MAX_OBJECT_TAGS).map_err(Status::invalid_argument)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        let cmd = match super::versions_rpc::parse_version(&req.version_id)? {
            None => Command::SetContentTags {
                cid,
                key: req.key,
                tags,
            },
            Some(version) => Command::SetVersionTags {
                cid,
                key: req.key,
                version,
                tags,
            },
        };
        match self.write(&g, cmd).await? {
            Reply::Encoded(b) => Ok(Response::new(decode(&b)?)),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn tags_set_container(
        &self,
        req: SetContainerTagsRequest,
    ) -> Res<ContainerStatsReply> {
        let cid = parse_cid(&req.cid)?;
        let tags = if req.remove {
            None
        } else {
            Some(check_tags(&req.tags, MAX_CONTAINER_TAGS).map_err(Status::invalid_argument)?)
        };
        let g = self.group(req.group, GroupKind::Meta2)?;
        match self
            .write(&g, Command::SetContainerTags { cid, tags })
            .await?
        {
            Reply::Encoded(b) => Ok(Response::new(decode(&b)?)),
            other => Err(unexpected(other)),
        }
    }
}
