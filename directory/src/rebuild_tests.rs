//! Tests of `ReplaceChunk` and the reverse-index paging through the real apply path.

use super::*;
use crate::test_sm::TestSm;
use crate::types::Command;

const CID: &str = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF";
const META2: u64 = 1000;

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

    /// Stores an EC-like content whose fragment j of metachunk 0 is `chunks[j]`.
    async fn put(&mut self, key: &str, chunks: &[(&str, &str)], proposed: u64) -> u64 {
        let header = ContentHeader {
            placement_degraded: false,
            size: 10,
            policy: "EC42".into(),
            chunks: chunks
                .iter()
                .enumerate()
                .map(|(j, (rawx, chunk))| ChunkRecord {
                    metachunk: 0,
                    fragment: j as u32,
                    rawx_id: rawx.to_string(),
                    chunk_id: chunk.to_string(),
                    size: 10,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        match self
            .apply(Command::PutContent {
                cid: CID.into(),
                key: key.into(),
                header: header.encode_to_vec(),
                proposed_version: proposed,
                condition: None,
            })
            .await
        {
            Reply::Put { version, .. } => version,
            other => panic!("put answered {other:?}"),
        }
    }

    async fn replace(&mut self, key: &str, version: u64, old: &str, new: (&str, &str)) -> Reply {
        let chunk = ChunkRecord {
            // Deliberately wrong position: the stored one must be kept.
            metachunk: 9,
            fragment: 9,
            rawx_id: new.0.into(),
            addr: "127.0.0.1:1".into(),
            chunk_id: new.1.into(),
            size: 10,
            hash: "crc32c:0".into(),
        };
        self.apply(Command::ReplaceChunk {
            cid: CID.into(),
            key: key.into(),
            version,
            old_chunk_id: old.into(),
            chunk: chunk.encode_to_vec(),
        })
        .await
    }

    fn on(&self, rawx: &str) -> Vec<ReverseEntry> {
        meta2::chunks_on_rawx(&self.sm.view(), rawx, 1000).unwrap()
    }

    fn header(&self, key: &str) -> ContentHeader {
        meta2::get_content(&self.sm.view(), CID, key)
            .unwrap()
            .unwrap()
    }
}

fn replaced(r: &Reply) -> bool {
    match r {
        Reply::Encoded(b) => ReplaceChunkReply::decode(b.as_slice()).unwrap().replaced,
        other => panic!("replace answered {other:?}"),
    }
}

#[tokio::test]
async fn replace_moves_the_record_and_the_reverse_index() {
    let mut s = Sm::new().await;
    let v = s
        .put(
            "k",
            &[("rawx-a", "A1"), ("rawx-b", "B1"), ("rawx-c", "C1")],
            100,
        )
        .await;
    let r = s.replace("k", v, "B1", ("rawx-n", "N1")).await;
    assert!(replaced(&r));

    let h = s.header("k");
    assert_eq!(h.version, v);
    let ids: Vec<&str> = h.chunks.iter().map(|c| c.chunk_id.as_str()).collect();
    assert_eq!(ids, ["A1", "N1", "C1"]);
    let n = &h.chunks[1];
    assert_eq!((n.metachunk, n.fragment), (0, 1), "position kept");
    assert_eq!(n.rawx_id, "rawx-n");

    assert!(s.on("rawx-b").is_empty(), "old rawx entry removed");
    let on_n = s.on("rawx-n");
    assert_eq!(on_n.len(), 1);
    assert_eq!(
        (
            on_n[0].chunk_id.as_str(),
            on_n[0].key.as_str(),
            on_n[0].version
        ),
        ("N1", "k", v)
    );
    assert_eq!((on_n[0].metachunk, on_n[0].fragment), (0, 1));
    assert_eq!(s.on("rawx-a").len(), 1);
    assert_eq!(s.on("rawx-c").len(), 1);
}

#[tokio::test]
async fn replace_is_idempotent() {
    let mut s = Sm::new().await;
    let v = s.put("k", &[("rawx-a", "A1"), ("rawx-b", "B1")], 100).await;
    assert!(replaced(&s.replace("k", v, "A1", ("rawx-n", "N1")).await));
    let before = s.header("k");
    // The same call again (a retried or restarted rebuild) succeeds without change.
    assert!(!replaced(&s.replace("k", v, "A1", ("rawx-n", "N1")).await));
    assert_eq!(s.header("k"), before);
    assert_eq!(s.on("rawx-n").len(), 1);
    assert!(s.on("rawx-a").is_empty());
}

#[tokio::test]
async fn replace_refuses_a_changed_content() {
    let mut s = Sm::new().await;
    let v = s.put("k", &[("rawx-a", "A1"), ("rawx-b", "B1")], 100).await;
    let changed = Reply::Refused(Refusal::ContentChanged);

    // Wrong version.
    assert_eq!(s.replace("k", v + 1, "A1", ("rawx-n", "N1")).await, changed);
    // The chunk is not listed.
    assert_eq!(s.replace("k", v, "Z9", ("rawx-n", "N1")).await, changed);
    // Overwritten: the old version is gone.
    let v2 = s.put("k", &[("rawx-c", "C2")], 100).await;
    assert!(v2 > v);
    assert_eq!(s.replace("k", v, "A1", ("rawx-n", "N1")).await, changed);
    // Unknown key (deleted).
    assert_eq!(s.replace("gone", v2, "C2", ("rawx-n", "N1")).await, changed);
    // Nothing moved on any refusal.
    assert!(s.on("rawx-n").is_empty());
    assert_eq!(s.on("rawx-c").len(), 1);
    let r = s
        .apply(Command::DeleteContent {
            cid: CID.into(),
            key: "k".into(),
        })
        .await;
    assert!(matches!(r, Reply::Deleted(_)));
    assert_eq!(s.replace("k", v2, "C2", ("rawx-n", "N1")).await, changed);
    assert!(s.on("rawx-n").is_empty());
}

#[tokio::test]
async fn reverse_index_pages_cover_every_chunk_once() {
    let mut s = Sm::new().await;
    let mut want = Vec::new();
    for i in 0..25 {
        let key = format!("obj-{i:02}");
        let chunk = format!("{:064X}", i * 7919);
        s.put(&key, &[("rawx-p", &chunk), ("rawx-q", "Q")], 100)
            .await;
        want.push(chunk);
    }
    let view = s.sm.view();
    let mut cursor = Vec::new();
    let mut got = Vec::new();
    let mut pages = 0;
    loop {
        let page = list_rawx_chunks(&view, "rawx-p", &cursor, 10).unwrap();
        assert!(page.entries.len() <= 10);
        pages += 1;
        got.extend(page.entries.into_iter().map(|e| e.chunk_id));
        match page.next {
            Some(n) => cursor = n,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // 0 asks for the largest page; another rawx's entries never show.
    let all = list_rawx_chunks(&view, "rawx-p", b"", 0).unwrap();
    assert_eq!(all.entries.len(), 25);
    assert!(all.next.is_none());
    assert!(all.entries.iter().all(|e| e.rawx_id == "rawx-p"));
    assert!(list_rawx_chunks(&view, "rawx-", b"", 0)
        .unwrap()
        .entries
        .is_empty());
}

/// Older versions of a versioned container keep their chunks in the reverse index:
/// a rebuild must be able to switch them too, without touching the latest version.
#[tokio::test]
async fn replace_reaches_older_versions() {
    use crate::meta2::versions::{self, VersionRef, Versioning};
    let mut s = Sm::new().await;
    s.apply(Command::SetVersioning {
        cid: CID.into(),
        state: Versioning::Enabled,
    })
    .await;
    let put = |chunk: &'static str, proposed: u64| {
        let header = ContentHeader {
            size: 10,
            policy: "TWOCOPIES".into(),
            chunks: vec![ChunkRecord {
                rawx_id: "rawx-a".into(),
                chunk_id: chunk.into(),
                size: 10,
                ..Default::default()
            }],
            ..Default::default()
        };
        Command::PutContent {
            cid: CID.into(),
            key: "k".into(),
            header: header.encode_to_vec(),
            proposed_version: proposed,
            condition: None,
        }
    };
    let version_of = |r: Reply| match r {
        Reply::Encoded(b) => {
            oxio_proto::v1::PutContentReply::decode(b.as_slice())
                .unwrap()
                .version
        }
        other => panic!("put answered {other:?}"),
    };
    let c1 = put("A1", 100);
    let v1 = version_of(s.apply(c1).await);
    let c2 = put("A2", 200);
    let v2 = version_of(s.apply(c2).await);
    assert!(v2 > v1);

    assert!(replaced(&s.replace("k", v1, "A1", ("rawx-n", "N1")).await));
    let old = versions::find(&s.sm.view(), CID, "k", Some(VersionRef::Id(v1)))
        .unwrap()
        .unwrap();
    assert_eq!(old.chunks[0].chunk_id, "N1");
    assert_eq!(old.version, v1);
    assert_eq!(
        s.header("k").chunks[0].chunk_id,
        "A2",
        "the latest is untouched"
    );
    let on_n = s.on("rawx-n");
    assert_eq!((on_n.len(), on_n[0].version), (1, v1));
    assert_eq!(s.on("rawx-a").len(), 1, "only A2 left on rawx-a");
    // Idempotent on an older version too.
    assert!(!replaced(&s.replace("k", v1, "A1", ("rawx-n", "N1")).await));
}
