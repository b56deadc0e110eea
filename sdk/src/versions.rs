//! Object versioning (S3 semantics kept by meta2): a container's versioning state,
//! reading one version, deleting (a delete marker, or one version for good) and
//! listing versions. Chunks of versions removed for good are queued for deletion by
//! meta2 in the same Raft entry, like those of replaced contents.

use crate::client::Client;
use crate::directory::unexpected;
use crate::{Error, Result};
use oxio_proto::v1::*;
use tonic::{Code, Status};

/// What a delete did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The version created (a delete marker) or removed; "" in an unversioned
    /// container.
    pub version_id: String,
    /// Whether that version is (or was) a delete marker.
    pub delete_marker: bool,
    /// False when a named version did not exist (nothing changed).
    pub found: bool,
}

/// What to list with [`Client::list_object_versions`].
#[derive(Clone, Debug, Default)]
pub struct VersionQuery {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up to this delimiter ("" for none).
    pub delimiter: String,
    /// Continue after this key (or its versions after `version_id_marker`).
    pub key_marker: String,
    /// The version of `key_marker` the previous page ended with.
    pub version_id_marker: String,
    /// Page size (0: the directory's maximum, 1000).
    pub max_keys: u32,
}

impl Client {
    fn version_status(&self, cid: &str, s: Status) -> Error {
        match s.code() {
            Code::NotFound if s.message().contains("container") => {
                self.forget_container(cid);
                Error::NoSuchContainer
            }
            Code::NotFound => Error::NoSuchKey,
            Code::InvalidArgument => Error::InvalidArgument(s.message().to_string()),
            _ => unexpected(s),
        }
    }

    /// Sets a container's versioning (`Enabled` or `Suspended`); answers its stats.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn set_versioning(
        &self,
        account: &str,
        container: &str,
        state: &str,
    ) -> Result<ContainerStatsReply> {
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        let req = SetContainerVersioningRequest {
            group: m2,
            cid: cid.clone(),
            versioning: state.to_string(),
        };
        match self
            .shared()
            .directory
            .request(m2, req, |mut c, r| async move {
                c.set_container_versioning(r).await
            })
            .await?
        {
            Ok(s) => Ok(s),
            Err(s) => Err(self.version_status(&cid, s)),
        }
    }

    /// The header of one version of an object (`None`: the latest), delete markers
    /// included (`delete_marker` set, no data). `Ok(None)` when a named version does
    /// not exist; [`Error::NoSuchKey`] when the key has no version at all.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn head_object_version(
        &self,
        account: &str,
        container: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ContentHeader>> {
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        let req = GetContentVersionRequest {
            group: m2,
            cid: cid.clone(),
            key: key.to_string(),
            version_id: version_id.unwrap_or_default().to_string(),
        };
        match self.shared().directory.get_content_version(m2, req).await? {
            Ok(rec) => rec
                .header
                .map(Some)
                .ok_or_else(|| Error::Internal("content without header".into())),
            Err(s) if s.code() == Code::NotFound && s.message().contains("version") => Ok(None),
            Err(s) => Err(self.version_status(&cid, s)),
        }
    }

    /// S3 DeleteObject: without `version_id` the key is deleted (a delete marker in a
    /// versioned container); with one, that version is removed for good. Chunks of
    /// removed versions are deleted by meta2's delete queue. Deleting a missing key of an
    /// unversioned container answers [`Error::NoSuchKey`]; a missing named version
    /// answers `found = false`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn delete_object_version(
        &self,
        account: &str,
        container: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<DeleteOutcome> {
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        let req = DeleteContentVersionRequest {
            group: m2,
            cid: cid.clone(),
            key: key.to_string(),
            version_id: version_id.unwrap_or_default().to_string(),
        };
        match self
            .shared()
            .directory
            .request(m2, req, |mut c, r| async move {
                c.delete_content_version(r).await
            })
            .await?
        {
            // The removed versions' chunks were queued for deletion by meta2.
            Ok(r) => Ok(DeleteOutcome {
                version_id: r.version_id,
                delete_marker: r.delete_marker,
                found: true,
            }),
            Err(s) if s.code() == Code::NotFound && s.message().contains("version") => {
                Ok(DeleteOutcome {
                    version_id: version_id.unwrap_or_default().to_string(),
                    delete_marker: false,
                    found: false,
                })
            }
            Err(s) => Err(self.version_status(&cid, s)),
        }
    }

    /// One page of the versions and delete markers of a container, by key then
    /// newest first.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_object_versions(
        &self,
        account: &str,
        container: &str,
        q: &VersionQuery,
    ) -> Result<ListContentVersionsReply> {
        let (cid, m2) = self.resolve_meta2(account, container).await?;
        let req = ListContentVersionsRequest {
            group: m2,
            cid: cid.clone(),
            prefix: q.prefix.clone(),
            delimiter: q.delimiter.clone(),
            key_marker: q.key_marker.clone(),
            version_id_marker: q.version_id_marker.clone(),
            max_keys: q.max_keys,
        };
        match self
            .shared()
            .directory
            .request(m2, req, |mut c, r| async move {
                c.list_content_versions(r).await
            })
            .await?
        {
            Ok(r) => Ok(r),
            Err(s) => Err(self.version_status(&cid, s)),
        }
    }
}
