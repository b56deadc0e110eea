//! Container access control: the canned ACL of a container lives in its meta2 record
//! (`private` unless set); [`Client::container_stats`] returns it as `acl` ("" for
//! private).

use crate::client::Client;
use crate::directory::unexpected;
use crate::{Error, Result};
use oxio_proto::v1::{ContainerStatsReply, SetContainerAclRequest};
use tonic::Code;

impl Client {
    /// Sets a container's canned ACL (`private` or `public-read`) and returns the
    /// container's stats with it. `Error::InvalidArgument` for any other name.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn set_container_acl(
        &self,
        account: &str,
        container: &str,
        acl: &str,
    ) -> Result<ContainerStatsReply> {
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        let reply = self
            .shared()
            .directory
            .request(
                m2,
                SetContainerAclRequest {
                    group: m2,
                    cid: cid.clone(),
                    acl: acl.to_string(),
                },
                |mut c, r| async move { c.set_container_acl(r).await },
            )
            .await?;
        match reply {
            Ok(r) => Ok(r),
            Err(s) if s.code() == Code::NotFound => {
                self.forget_container(&cid);
                Err(Error::NoSuchContainer)
            }
            Err(s) if s.code() == Code::InvalidArgument => {
                Err(Error::InvalidArgument(s.message().to_string()))
            }
            Err(s) => Err(unexpected(s)),
        }
    }
}
