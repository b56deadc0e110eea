//! Tag sets: an object's tags are replaced in place in its content header (same
//! version, same chunks: nothing is deleted), a container's tags are kept in its meta2
//! record. Reading them needs no call of its own: [`Client::head_object`] returns the
//! object's tags in its header and [`Client::container_stats`] the container's.

use crate::client::Client;
use crate::directory::unexpected;
use crate::{Error, Result};
use oxio_proto::v1::*;
use tonic::Code;

impl Client {
    /// Replaces the tag set of an object (an empty set removes every tag). Returns
    /// the version of the object, which does not change.
    #[tracing::instrument(level = "debug", skip(self, tags), fields(tags = tags.len()))]
    pub async fn set_object_tags(
        &self,
        account: &str,
        container: &str,
        key: &str,
        tags: Vec<Tag>,
    ) -> Result<u64> {
        self.set_object_version_tags(account, container, key, None, tags)
            .await
    }

    /// Replaces the tag set of one version of an object in place (`None`: the
    /// latest live one), older versions included. Returns the version, which does
    /// not change; `Error::NoSuchKey` when the version is not stored or is a delete
    /// marker.
    #[tracing::instrument(level = "debug", skip(self, tags), fields(tags = tags.len()))]
    pub async fn set_object_version_tags(
        &self,
        account: &str,
        container: &str,
        key: &str,
        version_id: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<u64> {
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        let reply = self
            .shared()
            .directory
            .request(
                m2,
                SetContentTagsRequest {
                    group: m2,
                    cid: cid.clone(),
                    key: key.to_string(),
                    tags,
                    version_id: version_id.unwrap_or_default().to_string(),
                },
                |mut c, r| async move { c.set_content_tags(r).await },
            )
            .await?;
        match reply {
            Ok(r) => Ok(r.version),
            Err(s) if s.code() == Code::NotFound => {
                if s.message().contains("container") {
                    self.forget_container(&cid);
                    Err(Error::NoSuchContainer)
                } else {
                    Err(Error::NoSuchKey)
                }
            }
            Err(s) => Err(unexpected(s)),
        }
    }

    /// Sets (`Some`) or removes (`None`) the tag set of a container. Returns the
    /// container's stats with the stored tags.
    #[tracing::instrument(level = "debug", skip(self, tags))]
    pub async fn set_container_tags(
        &self,
        account: &str,
        container: &str,
        tags: Option<Vec<Tag>>,
    ) -> Result<ContainerStatsReply> {
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        let remove = tags.is_none();
        let reply = self
            .shared()
            .directory
            .request(
                m2,
                SetContainerTagsRequest {
                    group: m2,
                    cid: cid.clone(),
                    tags: tags.unwrap_or_default(),
                    remove,
                },
                |mut c, r| async move { c.set_container_tags(r).await },
            )
            .await?;
        match reply {
            Ok(r) => Ok(r),
            Err(s) if s.code() == Code::NotFound => {
                self.forget_container(&cid);
                Err(Error::NoSuchContainer)
            }
            Err(s) => Err(unexpected(s)),
        }
    }
}
