//! Tags of a named version: the tag set of any stored version (the latest live object
//! under its content key, an older one in the version key space) is replaced in place,
//! like the latest one's: same version, same chunks, same reverse-index entries.

use crate::error::Result;
use crate::keys::sm;
use crate::meta2::load_meta;
use crate::meta2::versions::{current, find, version_key, VersionRef};
use crate::sm_data::Overlay;
use crate::tags::to_proto;
use crate::types::{Refusal, Reply};
use oxio_proto::v1::SetContentTagsReply;
use prost::Message;

/// Applies `SetVersionTags`: rewrites the header of the version `version` names with
/// the new tag set. A delete marker has no tags: it answers `NoSuchKey`, as does a
/// version that is not stored.
pub fn apply_set_version_tags(
    ov: &mut Overlay<'_>,
    cid: &str,
    key: &str,
    version: VersionRef,
    tags: &[(String, String)],
) -> Result<Reply> {
    if load_meta(ov, cid)?.is_none() {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    }
    let latest = current(ov, cid, key)?.is_some_and(|c| version.names(&c));
    let mut h = match find(ov, cid, key, Some(version))? {
        Ok(h) if !h.delete_marker => h,
        _ => return Ok(Reply::Refused(Refusal::NoSuchKey)),
    };
    h.tags = to_proto(tags);
    let stored_at = if latest {
        sm::content(cid, key)
    } else {
        version_key(cid, key, h.version)
    };
    let version = h.version;
    ov.put(stored_at, h.encode_to_vec());
    Ok(Reply::Encoded(
        SetContentTagsReply { version }.encode_to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta2::versions::{get_version, Versioning};
    use crate::test_sm::TestSm;
    use crate::types::Command;
    use oxio_proto::v1::{ContentHeader, PutContentReply};

    const CID: &str = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";

    fn put(key: &str, body: &str, proposed: u64) -> Command {
        let h = ContentHeader {
            size: body.len() as u64,
            etag: format!("etag-{body}"),
            inline_data: body.as_bytes().to_vec(),
            ..Default::default()
        };
        Command::PutContent {
            cid: CID.into(),
            key: key.into(),
            header: h.encode_to_vec(),
            proposed_version: proposed,
            condition: None,
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn older_versions_are_retagged_in_place() {
        let mut s = TestSm::with_container(1002, CID).await;
        let enable = Command::SetVersioning {
            cid: CID.into(),
            state: Versioning::Enabled,
        };
        s.apply(enable).await;
        let mut ids = Vec::new();
        for (n, body) in ["old", "new"].iter().enumerate() {
            match s.apply(put("k", body, 100 + n as u64)).await {
                Reply::Encoded(b) => {
                    ids.push(PutContentReply::decode(b.as_slice()).unwrap().version_id)
                }
                r => panic!("{r:?}"),
            }
        }
        let old = VersionRef::parse(&ids[0]).unwrap();
        let new = VersionRef::parse(&ids[1]).unwrap();
        let cmd = |version, t: &[(&str, &str)]| Command::SetVersionTags {
            cid: CID.into(),
            key: "k".into(),
            version,
            tags: tags(t),
        };
        assert!(matches!(
            s.apply(cmd(old, &[("gen", "old")])).await,
            Reply::Encoded(_)
        ));
        s.apply(cmd(new, &[("gen", "new")])).await;
        let get = |v| get_version(&s.sm.view(), CID, "k", v).unwrap().unwrap();
        let o = get(Some(old));
        assert_eq!((o.tags.len(), o.tags[0].value.as_str()), (1, "old"));
        assert_eq!(o.inline_data, b"old");
        assert_eq!(get(None).tags[0].value, "new");
        assert_eq!(get(Some(new)).version_id, ids[1]);
        // An unknown version, or a delete marker, is refused.
        let missing = cmd(VersionRef::Id(1), &[("a", "b")]);
        assert_eq!(s.apply(missing).await, Reply::Refused(Refusal::NoSuchKey));
    }
}
