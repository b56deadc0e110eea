//! Tests of multipart uploads through the real apply path: part replacement,
//! completion validation (order, missing part, etag, size), metachunk renumbering,
//! unused parts, stats, reverse index, abort, listings.

use crate::meta2;
use crate::multipart::{self, MIN_PART_BYTES};
use crate::test_sm::TestSm;
use crate::types::{Command, Refusal, Reply};
use md5::{Digest, Md5};
use oxio_proto::v1::{
    AbortUploadReply, ChunkRecord, CompleteUploadReply, ContentHeader, PartRecord, PutPartReply,
};
use prost::Message;
use std::collections::HashMap;

const CID: &str = "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789";
const MIB: u64 = 1024 * 1024;

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
        Sm(TestSm::with_container(1000, CID).await)
    }

    async fn create(&mut self, key: &str, id: &str, at: u64) -> Reply {
        let template = ContentHeader {
            placement_degraded: false,
            content_id: vec![7; 16],
            policy: "EC42".into(),
            content_type: "text/plain".into(),
            user_meta: HashMap::from([("color".to_string(), "blue".to_string())]),
            ..Default::default()
        };
        self.apply(Command::CreateUpload {
            cid: CID.into(),
            key: key.into(),
            upload_id: id.into(),
            template: template.encode_to_vec(),
            initiated_us: at,
        })
        .await
    }

    async fn put_part(&mut self, key: &str, id: &str, part: PartRecord) -> Reply {
        self.apply(Command::PutPart {
            cid: CID.into(),
            key: key.into(),
            upload_id: id.into(),
            part: part.encode_to_vec(),
        })
        .await
    }

    async fn complete(&mut self, key: &str, id: &str, parts: &[(u32, &str)]) -> Reply {
        self.apply(Command::CompleteUpload {
            cid: CID.into(),
            key: key.into(),
            upload_id: id.into(),
            parts: parts.iter().map(|(n, e)| (*n, e.to_string())).collect(),
            proposed_version: 5_000,
            mtime_ms: 42,
            condition: None,
        })
        .await
    }
}

fn md5_hex(tag: &str) -> String {
    hex::encode(Md5::digest(tag.as_bytes()))
}

/// A part of `metachunks.len()` metachunks, each with two fragments on `rawx-<n>`.
fn part(n: u32, metachunks: &[u64], tag: &str) -> PartRecord {
    let mut chunks = Vec::new();
    for (m, size) in metachunks.iter().enumerate() {
        for f in 0..2u32 {
            chunks.push(ChunkRecord {
                metachunk: m as u32,
                fragment: f,
                rawx_id: format!("rawx-{f}"),
                chunk_id: format!("{tag}-{m}-{f}"),
                size: *size,
                ..Default::default()
            });
        }
    }
    PartRecord {
        placement_degraded: false,
        part_number: n,
        size: metachunks.iter().sum(),
        etag: md5_hex(tag),
        mtime_ms: 1,
        metachunk_sizes: metachunks.to_vec(),
        chunks,
    }
}

fn decode<M: Message + Default>(r: Reply) -> M {
    match r {
        Reply::Encoded(b) => M::decode(b.as_slice()).unwrap(),
        other => panic!("unexpected reply {other:?}"),
    }
}

#[tokio::test]
async fn completion_concatenates_parts_and_renumbers_metachunks() {
    let mut s = Sm::new().await;
    assert!(matches!(s.create("obj", "u1", 10).await, Reply::Encoded(_)));
    assert_eq!(
        s.create("obj", "u1", 11).await,
        Reply::Refused(Refusal::UploadExists)
    );
    // Part 1: two metachunks; part 2 uploaded twice (the first is replaced); part 3
    // small (last); part 4 never listed.
    let r: PutPartReply = decode(
        s.put_part("obj", "u1", part(1, &[4 * MIB, 2 * MIB], "p1"))
            .await,
    );
    assert!(r.replaced.is_none());
    s.put_part("obj", "u1", part(2, &[5 * MIB], "p2-old")).await;
    let r: PutPartReply = decode(s.put_part("obj", "u1", part(2, &[5 * MIB], "p2")).await);
    assert_eq!(r.replaced.unwrap().etag, md5_hex("p2-old"));
    // Part 3 was placed with less spread than wished: the object inherits the flag.
    let mut p3 = part(3, &[MIB], "p3");
    p3.placement_degraded = true;
    s.put_part("obj", "u1", p3).await;
    s.put_part("obj", "u1", part(4, &[MIB], "p4")).await;
    // The replaced part's chunks left the reverse index; parts are indexed.
    let on0 = meta2::chunks_on_rawx(&s.sm.view(), "rawx-0", 100).unwrap();
    assert!(on0.iter().all(|e| !e.chunk_id.starts_with("p2-old")));
    assert_eq!(on0.len(), 5);
    assert_eq!(
        meta2::container_meta(&s.sm.view(), CID)
            .unwrap()
            .unwrap()
            .uploads,
        1
    );

    let (e1, e2, e3) = (md5_hex("p1"), md5_hex("p2"), md5_hex("p3"));
    let quoted = format!("\"{e2}\"");
    let r: CompleteUploadReply = decode(
        s.complete("obj", "u1", &[(1, &e1), (2, &quoted), (3, &e3)])
            .await,
    );
    let h = r.header.unwrap();
    assert_eq!(h.version, 5_000);
    assert_eq!(h.size, 12 * MIB);
    assert_eq!(h.metachunk_sizes, vec![4 * MIB, 2 * MIB, 5 * MIB, MIB]);
    assert_eq!(
        h.part_sizes,
        vec![6 * MIB, 5 * MIB, MIB],
        "one size per listed part"
    );
    assert_eq!(h.policy, "EC42");
    assert_eq!(h.content_id, vec![7; 16]);
    assert_eq!(h.user_meta.get("color").map(String::as_str), Some("blue"));
    assert_eq!(h.mtime_ms, 42);
    assert!(h.placement_degraded, "a flagged part flags the object");
    let by_meta: Vec<(u32, &str)> = h
        .chunks
        .iter()
        .filter(|c| c.fragment == 0)
        .map(|c| (c.metachunk, c.chunk_id.as_str()))
        .collect();
    assert_eq!(
        by_meta,
        vec![(0, "p1-0-0"), (1, "p1-1-0"), (2, "p2-0-0"), (3, "p3-0-0")]
    );
    // ETag: md5 of the concatenated binary md5s, dash, count.
    let mut cat = Vec::new();
    for e in [&e1, &e2, &e3] {
        cat.extend(hex::decode(e).unwrap());
    }
    assert_eq!(h.etag, format!("{}-3", hex::encode(Md5::digest(&cat))));
    assert!(r.replaced.is_none());
    let unused: Vec<u32> = r.unused.iter().map(|p| p.part_number).collect();
    assert_eq!(unused, vec![4]);

    // Stored like a put: stats, content, reverse index at the new version; upload gone.
    let view = s.sm.view();
    let meta = meta2::container_meta(&view, CID).unwrap().unwrap();
    assert_eq!((meta.objects, meta.bytes, meta.uploads), (1, 12 * MIB, 0));
    let stored = meta2::get_content(&view, CID, "obj").unwrap().unwrap();
    assert_eq!(stored.etag, h.etag);
    assert!(stored.placement_degraded);
    let on0 = meta2::chunks_on_rawx(&view, "rawx-0", 100).unwrap();
    assert_eq!(on0.len(), 4);
    assert!(on0.iter().all(|e| e.version == 5_000 && e.key == "obj"));
    assert_eq!(
        multipart::get_upload(&view, CID, "obj", "u1").unwrap(),
        Err(Refusal::NoSuchUpload)
    );
    let (parts, _) = multipart::list_parts(&view, CID, "u1", 0, 0).unwrap();
    assert!(parts.is_empty());
    // Completing again: the upload is gone.
    assert_eq!(
        s.complete("obj", "u1", &[(1, &e1)]).await,
        Reply::Refused(Refusal::NoSuchUpload)
    );

    // A second upload of the same key replaces the object: the replaced header comes
    // back, the version increases, the stats follow.
    s.create("obj", "u2", 20).await;
    s.put_part("obj", "u2", part(1, &[3 * MIB], "q1")).await;
    let r: CompleteUploadReply = decode(s.complete("obj", "u2", &[(1, &md5_hex("q1"))]).await);
    assert_eq!(r.replaced.unwrap().size, 12 * MIB);
    assert_eq!(r.header.unwrap().version, 5_001);
    let meta = meta2::container_meta(&s.sm.view(), CID).unwrap().unwrap();
    assert_eq!((meta.objects, meta.bytes), (1, 3 * MIB));
}

#[tokio::test]
async fn completion_refuses_bad_part_lists_without_changing_state() {
    let mut s = Sm::new().await;
    s.create("k", "u", 1).await;
    s.put_part("k", "u", part(1, &[MIN_PART_BYTES], "a")).await;
    s.put_part("k", "u", part(2, &[MIN_PART_BYTES - 1], "b"))
        .await;
    s.put_part("k", "u", part(3, &[10], "c")).await;
    let (a, b, c) = (md5_hex("a"), md5_hex("b"), md5_hex("c"));
    let cases: Vec<(Vec<(u32, &str)>, Refusal)> = vec![
        (vec![(2, &b), (1, &a)], Refusal::InvalidPartOrder),
        (vec![(1, &a), (1, &a)], Refusal::InvalidPartOrder),
        (vec![(1, &a), (5, &a)], Refusal::InvalidPart),
        (vec![(1, &b)], Refusal::InvalidPart),
        (vec![(1, "not-hex")], Refusal::InvalidPart),
        (vec![(1, &a), (2, &b), (3, &c)], Refusal::EntityTooSmall),
        (vec![], Refusal::Invalid),
    ];
    for (list, want) in cases {
        assert_eq!(
            s.complete("k", "u", &list).await,
            Reply::Refused(want),
            "{list:?}"
        );
    }
    assert_eq!(
        s.complete("k", "nope", &[(1, &a)]).await,
        Reply::Refused(Refusal::NoSuchUpload)
    );
    assert_eq!(
        s.complete("other", "u", &[(1, &a)]).await,
        Reply::Refused(Refusal::NoSuchUpload)
    );
    // Nothing changed: the upload and its three parts are still there.
    let view = s.sm.view();
    let (parts, truncated) = multipart::list_parts(&view, CID, "u", 0, 0).unwrap();
    assert_eq!(parts.len(), 3);
    assert!(!truncated);
    assert_eq!(
        meta2::container_meta(&view, CID).unwrap().unwrap().objects,
        0
    );
    // The last part may be small; a small part alone is fine too.
    let r: CompleteUploadReply = decode(s.complete("k", "u", &[(1, &a), (3, &c)]).await);
    assert_eq!(r.header.unwrap().size, MIN_PART_BYTES + 10);
    assert_eq!(r.unused.len(), 1);
}

#[tokio::test]
async fn abort_returns_parts_and_unblocks_drop() {
    let mut s = Sm::new().await;
    s.create("k", "u", 1).await;
    assert_eq!(
        s.put_part("other-key", "u", part(1, &[1], "x")).await,
        Reply::Refused(Refusal::NoSuchUpload)
    );
    s.put_part("k", "u", part(1, &[1], "x")).await;
    s.put_part("k", "u", part(2, &[], "empty")).await;
    // An upload in progress keeps the container.
    assert_eq!(
        s.apply(Command::DropContainer { cid: CID.into() }).await,
        Reply::Refused(Refusal::NotEmpty)
    );
    let r: AbortUploadReply = decode(
        s.apply(Command::AbortUpload {
            cid: CID.into(),
            key: "k".into(),
            upload_id: "u".into(),
        })
        .await,
    );
    assert_eq!(r.parts.len(), 2);
    let view = s.sm.view();
    assert!(meta2::chunks_on_rawx(&view, "rawx-0", 10)
        .unwrap()
        .is_empty());
    assert!(multipart::list_uploads(&view, CID, "", "", "", "", 0)
        .unwrap()
        .uploads
        .is_empty());
    assert_eq!(
        s.apply(Command::DropContainer { cid: CID.into() }).await,
        Reply::Done
    );
}

#[tokio::test]
async fn listings_page_by_part_number_and_by_key_then_initiation() {
    let mut s = Sm::new().await;
    s.create("b", "late", 30).await;
    s.create("b", "early", 10).await;
    s.create("a", "z", 50).await;
    s.create("c/x", "m", 5).await;
    for n in [1u32, 2, 3, 7, 300] {
        s.put_part("b", "late", part(n, &[n as u64], &format!("p{n}")))
            .await;
    }
    let view = s.sm.view();
    let (p, t) = multipart::list_parts(&view, CID, "late", 0, 2).unwrap();
    assert_eq!(p.iter().map(|p| p.part_number).collect::<Vec<_>>(), [1, 2]);
    assert!(t);
    assert!(p.iter().all(|p| p.chunks.is_empty()));
    let (p, t) = multipart::list_parts(&view, CID, "late", 2, 2).unwrap();
    assert_eq!(p.iter().map(|p| p.part_number).collect::<Vec<_>>(), [3, 7]);
    assert!(t);
    let (p, t) = multipart::list_parts(&view, CID, "late", 7, 2).unwrap();
    assert_eq!(p.iter().map(|p| p.part_number).collect::<Vec<_>>(), [300]);
    assert!(!t);

    let ids = |v: Vec<oxio_proto::v1::UploadRecord>| -> Vec<String> {
        v.into_iter()
            .map(|u| format!("{}:{}", u.key, u.upload_id))
            .collect()
    };
    let list = |prefix: &str, delimiter: &str, key: &str, id: &str, max: u32| {
        multipart::list_uploads(&view, CID, prefix, delimiter, key, id, max).unwrap()
    };
    let p = list("", "", "", "", 0);
    assert_eq!(ids(p.uploads), ["a:z", "b:early", "b:late", "c/x:m"]);
    assert!(!p.truncated);
    assert_eq!(p.next_key_marker, "");
    let p = list("", "", "", "", 2);
    assert_eq!(ids(p.uploads), ["a:z", "b:early"]);
    assert!(p.truncated);
    assert_eq!(
        (p.next_key_marker.as_str(), p.next_upload_id_marker.as_str()),
        ("b", "early")
    );
    let p = list("", "", "b", "early", 2);
    assert_eq!(ids(p.uploads), ["b:late", "c/x:m"]);
    let p = list("", "", "b", "", 0);
    assert_eq!(ids(p.uploads), ["c/x:m"]);
    let p = list("b", "", "", "", 0);
    assert_eq!(ids(p.uploads), ["b:early", "b:late"]);
}

#[tokio::test]
async fn upload_listings_roll_up_common_prefixes() {
    let mut s = Sm::new().await;
    for (key, id, at) in [
        ("a", "u1", 1),
        ("d/1", "u2", 2),
        ("d/2", "u3", 3),
        ("d/2", "u4", 4),
        ("e", "u5", 5),
        ("f/x/1", "u6", 6),
        ("f/y", "u7", 7),
    ] {
        s.create(key, id, at).await;
    }
    let view = s.sm.view();
    let list = |prefix: &str, key: &str, id: &str, max: u32| {
        multipart::list_uploads(&view, CID, prefix, "/", key, id, max).unwrap()
    };
    let keys = |p: &multipart::UploadsPage| -> Vec<String> {
        p.uploads.iter().map(|u| u.key.clone()).collect()
    };
    // One page: each common prefix once, uploads beside them.
    let p = list("", "", "", 0);
    assert_eq!(keys(&p), ["a", "e"]);
    assert_eq!(p.common_prefixes, ["d/", "f/"]);
    assert!(!p.truncated);
    // Pages of two entries (a prefix counts as one): a + d/, then e + f/.
    let p = list("", "", "", 2);
    assert_eq!(keys(&p), ["a"]);
    assert_eq!(p.common_prefixes, ["d/"]);
    assert!(p.truncated);
    assert_eq!(
        (p.next_key_marker.as_str(), p.next_upload_id_marker.as_str()),
        ("d/", "")
    );
    let p = list("", &p.next_key_marker, &p.next_upload_id_marker, 2);
    assert_eq!(keys(&p), ["e"]);
    assert_eq!(p.common_prefixes, ["f/"]);
    assert!(!p.truncated);
    // Under a prefix, the roll-up starts after it.
    let p = list("f/", "", "", 0);
    assert_eq!(keys(&p), ["f/y"]);
    assert_eq!(p.common_prefixes, ["f/x/"]);
    // A marker inside a common prefix skips that prefix.
    let p = list("", "d/1", "u2", 0);
    assert_eq!(keys(&p), ["e"]);
    assert_eq!(p.common_prefixes, ["f/"]);
}

#[tokio::test]
async fn garbage_parts_are_queued_for_deletion() {
    let queued = |s: &Sm| -> Vec<String> {
        crate::purge::list(&s.sm.view(), "", 1000)
            .unwrap()
            .0
            .into_iter()
            .map(|e| e.chunk_id)
            .collect()
    };
    let mut s = Sm::new().await;
    s.create("k", "u", 1).await;
    // A part uploaded again: the first one's chunks are garbage.
    s.put_part("k", "u", part(1, &[MIN_PART_BYTES], "p1")).await;
    s.put_part("k", "u", part(1, &[MIN_PART_BYTES], "p1b"))
        .await;
    assert_eq!(queued(&s), ["p1-0-0", "p1-0-1"]);
    s.put_part("k", "u", part(2, &[10], "p2")).await;
    s.put_part("k", "u", part(3, &[10], "p3")).await;
    // Completing with parts 1 and 3: part 2 is garbage, the used ones are not.
    let r = s
        .complete("k", "u", &[(1, &md5_hex("p1b")), (3, &md5_hex("p3"))])
        .await;
    assert!(matches!(r, Reply::Encoded(_)), "{r:?}");
    assert_eq!(queued(&s), ["p1-0-0", "p1-0-1", "p2-0-0", "p2-0-1"]);
    // An abort: every part.
    s.create("j", "v", 2).await;
    s.put_part("j", "v", part(1, &[10], "q1")).await;
    s.apply(Command::AbortUpload {
        cid: CID.into(),
        key: "j".into(),
        upload_id: "v".into(),
    })
    .await;
    assert_eq!(queued(&s).len(), 6);
    assert!(queued(&s).contains(&"q1-0-1".to_string()));
}
