//! meta2 tag sets: an object's tags live in its content header and are replaced in
//! place (same version, same chunks, same reverse-index entries: nothing becomes
//! garbage); a container's tags live in its meta2 record.

use crate::error::Result;
use crate::keys::sm;
use crate::meta2::{load_meta, stats_of, store_meta};
use crate::sm_data::Overlay;
use crate::types::{Refusal, Reply};
use oxio_proto::v1::{ContentHeader, SetContentTagsReply, Tag};
use prost::Message;

/// Most tags on one object (as S3).
pub const MAX_OBJECT_TAGS: usize = 10;
/// Most tags on one container (as S3 buckets).
pub const MAX_CONTAINER_TAGS: usize = 50;
/// Longest tag key, in Unicode characters (as S3).
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// Longest tag value, in Unicode characters (as S3).
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// Checks a tag set against the S3 limits (`max` tags, key and value lengths, no
/// empty or repeated key) and returns it as pairs; the reason otherwise.
pub fn check_tags(tags: &[Tag], max: usize) -> std::result::Result<Vec<(String, String)>, String> {
    if tags.len() > max {
        return Err(format!("more than {max} tags"));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(tags.len());
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > MAX_TAG_KEY_CHARS {
            return Err(format!(
                "tag keys must be 1 to {MAX_TAG_KEY_CHARS} characters"
            ));
        }
        if t.value.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(format!(
                "tag values must be at most {MAX_TAG_VALUE_CHARS} characters"
            ));
        }
        if out.iter().any(|(k, _)| *k == t.key) {
            return Err(format!("tag key {:?} repeated", t.key));
        }
        out.push((t.key.clone(), t.value.clone()));
    }
    Ok(out)
}

/// The pairs as protobuf tags.
pub fn to_proto(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(key, value)| Tag {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

/// Applies `SetContentTags`: rewrites the stored header with the new tag set. The
/// version, the chunks and the reverse index are left as they are.
pub fn apply_set_content_tags(
    ov: &mut Overlay<'_>,
    cid: &str,
    key: &str,
    tags: &[(String, String)],
) -> Result<Reply> {
    if load_meta(ov, cid)?.is_none() {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    }
    let ck = sm::content(cid, key);
    let Some(v) = ov.get(&ck)? else {
        return Ok(Reply::Refused(Refusal::NoSuchKey));
    };
    let mut h = ContentHeader::decode(v.as_slice())?;
    h.tags = to_proto(tags);
    let version = h.version;
    ov.put(ck, h.encode_to_vec());
    Ok(Reply::Encoded(
        SetContentTagsReply { version }.encode_to_vec(),
    ))
}

/// Applies `SetContainerTags`: stores (or removes, with `None`) the container's tag
/// set and answers the updated container stats.
pub fn apply_set_container_tags(
    ov: &mut Overlay<'_>,
    cid: &str,
    tags: Option<&[(String, String)]>,
) -> Result<Reply> {
    let Some(mut meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    meta.tags = tags.map(<[_]>::to_vec);
    store_meta(ov, cid, &meta)?;
    Ok(Reply::Encoded(stats_of(&meta).encode_to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn tag_sets_follow_the_s3_limits() {
        assert!(check_tags(&[tag("a", "1"), tag("b", "")], 10).is_ok());
        let eleven: Vec<Tag> = (0..11).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert!(check_tags(&eleven, MAX_OBJECT_TAGS).is_err());
        assert!(check_tags(&eleven, MAX_CONTAINER_TAGS).is_ok());
        assert!(check_tags(&[tag("a", "1"), tag("a", "2")], 10).is_err());
        assert!(check_tags(&[tag("", "1")], 10).is_err());
        // Limits count Unicode characters, not bytes.
        assert!(check_tags(&[tag(&"é".repeat(128), &"é".repeat(256))], 10).is_ok());
        assert!(check_tags(&[tag(&"k".repeat(129), "v")], 10).is_err());
        assert!(check_tags(&[tag("k", &"v".repeat(257))], 10).is_err());
    }
}
