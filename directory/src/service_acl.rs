//! The access control RPC of the `Directory` service: setting a container's canned
//! ACL, one Raft command.

use super::{decode, parse_cid, unexpected, DirectoryService, Res};
use crate::acl::check_acl;
use crate::types::{Command, GroupKind, Reply};
use oxio_proto::v1::*;
use tonic::{Response, Status};

impl DirectoryService {
    pub(super) async fn acl_set_container(
        &self,
        req: SetContainerAclRequest,
    ) -> Res<ContainerStatsReply> {
        let cid = parse_cid(&req.cid)?;
        check_acl(&req.acl).map_err(Status::invalid_argument)?;
        let g = self.group(req.group, GroupKind::Meta2)?;
        match self
            .write(&g, Command::SetContainerAcl { cid, acl: req.acl })
            .await?
        {
            Reply::Encoded(b) => Ok(Response::new(decode(&b)?)),
            other => Err(unexpected(other)),
        }
    }
}
