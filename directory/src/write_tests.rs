//! State-machine tests of tag sets (changed in place: same version, same chunks, same
//! reverse index), of conditional writes and of quotas (both checked inside the
//! apply).

use crate::meta2;
use crate::test_sm::TestSm;
use crate::types::{Command, Refusal, Reply, WriteCondition};
use oxio_proto::v1::{ChunkRecord, ContainerStatsReply, ContentHeader, SetContentTagsReply};
use prost::Message;

const CID: &str = "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789";
const META2: u64 = 1001;

struct Sm(TestSm);

impl std::ops::Deref for Sm {
    type Target = TestSm;
    fn deref(&self) -> &TestSm {
        &self.0
    }
}

impl std::ops::DerefMut for Sm {
    fn deref_mut(&mut self) -> &mut TestSm {
        &mut self.0
    }
}

impl Sm {
    async fn new() -> Sm {
        Sm(TestSm::with_container(META2, CID).await)
    }

    fn content(&self, key: &str) -> Option<ContentHeader> {
        meta2::get_content(&self.sm.view(), CID, key).unwrap().ok()
    }
}

fn put(key: &str, etag: &str, chunk: &str, condition: Option<WriteCondition>) -> Command {
    Command::PutContent {
        cid: CID.into(),
        key: key.into(),
        header: ContentHeader {
            placement_degraded: false,
            size: 10,
            etag: etag.into(),
            policy: "TWOCOPIES".into(),
            chunks: vec![ChunkRecord {
                rawx_id: "rawx-a".into(),
                chunk_id: chunk.into(),
                size: 10,
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec(),
        proposed_version: 1_000,
        condition,
    }
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn object_tags_change_in_place() {
    let mut sm = Sm::new().await;
    assert!(matches!(
        sm.apply(put("k", "e1", "C1", None)).await,
        Reply::Put { .. }
    ));
    let before = sm.content("k").unwrap();
    let r = sm
        .apply(Command::SetContentTags {
            cid: CID.into(),
            key: "k".into(),
            tags: tags(&[("a", "1"), ("b", "2")]),
        })
        .await;
    let Reply::Encoded(b) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        SetContentTagsReply::decode(b.as_slice()).unwrap().version,
        before.version
    );
    let after = sm.content("k").unwrap();
    assert_eq!(after.version, before.version);
    assert_eq!(after.chunks, before.chunks);
    assert_eq!(after.tags.len(), 2);
    assert_eq!(
        (after.tags[1].key.as_str(), after.tags[1].value.as_str()),
        ("b", "2")
    );
    // The chunk is still indexed under the same version: nothing became garbage.
    let idx = meta2::chunks_on_rawx(&sm.sm.view(), "rawx-a", 10).unwrap();
    assert_eq!(idx.len(), 1);
    assert_eq!(idx[0].version, before.version);
    let meta = meta2::container_meta(&sm.sm.view(), CID).unwrap().unwrap();
    assert_eq!((meta.objects, meta.bytes), (1, 10));
    // A missing key is refused.
    let r = sm
        .apply(Command::SetContentTags {
            cid: CID.into(),
            key: "nope".into(),
            tags: vec![],
        })
        .await;
    assert_eq!(r, Reply::Refused(Refusal::NoSuchKey));
}

#[tokio::test]
async fn container_tags_are_set_and_removed() {
    let mut sm = Sm::new().await;
    let r = sm
        .apply(Command::SetContainerTags {
            cid: CID.into(),
            tags: Some(tags(&[("team", "x")])),
        })
        .await;
    let Reply::Encoded(b) = r else {
        panic!("{r:?}")
    };
    let stats = ContainerStatsReply::decode(b.as_slice()).unwrap();
    assert!(stats.has_tags);
    assert_eq!(stats.tags[0].key, "team");
    sm.apply(Command::SetContainerTags {
        cid: CID.into(),
        tags: None,
    })
    .await;
    let meta = meta2::container_meta(&sm.sm.view(), CID).unwrap().unwrap();
    assert!(!meta2::stats_of(&meta).has_tags);
}

#[tokio::test]
async fn conditions_are_checked_in_the_apply() {
    let mut sm = Sm::new().await;
    let none_match = || {
        Some(WriteCondition {
            if_none_match: true,
            if_match: None,
        })
    };
    // Two If-None-Match puts of one key in one apply call: the second sees the first.
    let r = sm
        .apply_all(vec![
            put("k", "e1", "C1", none_match()),
            put("k", "e2", "C2", none_match()),
        ])
        .await;
    assert!(matches!(r[0], Reply::Put { replaced: None, .. }), "{r:?}");
    assert_eq!(r[1], Reply::Refused(Refusal::PreconditionFailed));
    assert_eq!(sm.content("k").unwrap().etag, "e1");
    // The refused put left no index entry for its chunk.
    let idx = meta2::chunks_on_rawx(&sm.sm.view(), "rawx-a", 10).unwrap();
    assert_eq!(idx.len(), 1);
    assert_eq!(idx[0].chunk_id, "C1");

    let if_match = |e: &str| {
        Some(WriteCondition {
            if_none_match: false,
            if_match: Some(e.into()),
        })
    };
    let r = sm.apply(put("k", "e3", "C3", if_match("other"))).await;
    assert_eq!(r, Reply::Refused(Refusal::PreconditionFailed));
    let r = sm.apply(put("missing", "e3", "C3", if_match("e1"))).await;
    assert_eq!(r, Reply::Refused(Refusal::NoSuchKey));
    let r = sm.apply(put("k", "e3", "C3", if_match("e1"))).await;
    assert!(
        matches!(
            r,
            Reply::Put {
                replaced: Some(_),
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(sm.content("k").unwrap().etag, "e3");
}

#[test]
fn condition_etags_ignore_quotes_and_case() {
    let c = WriteCondition {
        if_none_match: false,
        if_match: Some(crate::types::bare_etag("\"ABC\"")),
    };
    assert!(c.check(Some("abc")).is_ok());
    assert_eq!(c.check(Some("abd")), Err(Refusal::PreconditionFailed));
    assert_eq!(c.check(None), Err(Refusal::NoSuchKey));
    let n = WriteCondition {
        if_none_match: true,
        if_match: None,
    };
    assert!(n.check(None).is_ok());
    assert_eq!(n.check(Some("x")), Err(Refusal::PreconditionFailed));
    let any = WriteCondition {
        if_none_match: false,
        if_match: Some("*".into()),
    };
    assert!(any.check(Some("x")).is_ok());
    assert_eq!(any.check(None), Err(Refusal::NoSuchKey));
}

#[tokio::test]
async fn quota_is_checked_in_the_apply() {
    let mut sm = Sm::new().await;
    let stats = |r: Reply| match r {
        Reply::Encoded(b) => ContainerStatsReply::decode(b.as_slice()).unwrap(),
        other => panic!("{other:?}"),
    };
    let s = stats(
        sm.apply(Command::SetContainerQuota {
            cid: CID.into(),
            quota_bytes: Some(25),
        })
        .await,
    );
    assert_eq!(s.quota_bytes, Some(25));
    // Two puts of 10 bytes fit, a third would make 30.
    let r = sm
        .apply_all(vec![
            put("a", "e1", "C1", None),
            put("b", "e2", "C2", None),
            put("c", "e3", "C3", None),
        ])
        .await;
    assert!(
        matches!(r[0], Reply::Put { .. }) && matches!(r[1], Reply::Put { .. }),
        "{r:?}"
    );
    assert_eq!(r[2], Reply::Refused(Refusal::QuotaExceeded));
    assert!(sm.content("c").is_none());
    // The refused put indexed nothing.
    let idx = meta2::chunks_on_rawx(&sm.sm.view(), "rawx-a", 10).unwrap();
    assert_eq!(idx.len(), 2);
    // An overwrite counts the bytes it brings until the old version is gone.
    let r = sm.apply(put("a", "e4", "C4", None)).await;
    assert_eq!(r, Reply::Refused(Refusal::QuotaExceeded));
    // Without a quota it goes through.
    let s = stats(
        sm.apply(Command::SetContainerQuota {
            cid: CID.into(),
            quota_bytes: None,
        })
        .await,
    );
    assert_eq!((s.quota_bytes, s.bytes), (None, 20));
    assert!(matches!(
        sm.apply(put("c", "e3", "C3", None)).await,
        Reply::Put { .. }
    ));
}
