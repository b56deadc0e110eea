//! Tests of the incomplete-content index and `AddMissingChunk` through the real apply
//! path.

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

fn chunk_id(n: u32) -> String {
    format!("{n:064X}")
}

fn record(metachunk: u32, fragment: u32, n: u32) -> ChunkRecord {
    ChunkRecord {
        metachunk,
        fragment,
        rawx_id: format!("rawx-{n}"),
        addr: "127.0.0.1:1".into(),
        chunk_id: chunk_id(n),
        size: 10,
        hash: "crc32c:0".into(),
    }
}

impl Sm {
    async fn new() -> Sm {
        Sm(TestSm::with_container(META2, CID).await)
    }

    /// Stores an EC42 content of two metachunks holding the given slots.
    async fn put(&mut self, key: &str, slots: &[(u32, u32)], proposed: u64) -> u64 {
        let header = ContentHeader {
            size: 20,
            policy: "EC42".into(),
            metachunk_sizes: vec![10, 10],
            chunks: slots
                .iter()
                .enumerate()
                .map(|(n, &(mc, f))| record(mc, f, n as u32))
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

    async fn add(&mut self, key: &str, version: u64, chunk: ChunkRecord) -> Reply {
        self.apply(Command::AddMissingChunk {
            cid: CID.into(),
            key: key.into(),
            version,
            chunk: chunk.encode_to_vec(),
        })
        .await
    }

    fn listed(&self) -> Vec<IncompleteEntry> {
        list_incomplete(&self.sm.view(), b"", 0).unwrap().entries
    }
}

fn every_slot_but(skip: &[(u32, u32)]) -> Vec<(u32, u32)> {
    (0..2)
        .flat_map(|mc| (0..6).map(move |f| (mc, f)))
        .filter(|s| !skip.contains(s))
        .collect()
}

fn added(r: &Reply) -> (bool, bool) {
    match r {
        Reply::Encoded(b) => {
            let r = AddMissingChunkReply::decode(b.as_slice()).unwrap();
            (r.added, r.complete)
        }
        other => panic!("add answered {other:?}"),
    }
}

#[test]
fn missing_slots_follow_policy_and_metachunks() {
    let h = ContentHeader {
        policy: "THREECOPIES".into(),
        metachunk_sizes: vec![5, 5],
        chunks: vec![record(0, 0, 1), record(0, 2, 2), record(1, 1, 3)],
        ..Default::default()
    };
    assert_eq!(missing_slots(&h), [(0, 1), (1, 0), (1, 2)]);
    let inline = ContentHeader {
        policy: "EC42".into(),
        ..Default::default()
    };
    assert!(missing_slots(&inline).is_empty());
}

#[tokio::test]
async fn a_put_missing_fragments_is_listed_and_completed() {
    let mut s = Sm::new().await;
    s.put("whole", &every_slot_but(&[]), 1).await;
    assert!(s.listed().is_empty());
    let v = s.put("holes", &every_slot_but(&[(0, 5), (1, 2)]), 2).await;
    assert_eq!(
        s.listed(),
        [IncompleteEntry {
            cid: CID.into(),
            key: "holes".into(),
            version: v,
            missing: 2,
        }]
    );

    // A filled slot, a slot outside the width and a wrong version are refused.
    let filled = s.add("holes", v, record(0, 1, 90)).await;
    assert!(matches!(filled, Reply::Refused(Refusal::ContentChanged)));
    let outside = s.add("holes", v, record(0, 6, 91)).await;
    assert!(matches!(outside, Reply::Refused(Refusal::ContentChanged)));
    let stale = s.add("holes", v + 1, record(0, 5, 92)).await;
    assert!(matches!(stale, Reply::Refused(Refusal::ContentChanged)));

    assert_eq!(
        added(&s.add("holes", v, record(1, 2, 50)).await),
        (true, false)
    );
    assert_eq!(s.listed()[0].missing, 1);
    // Repeated: nothing changes.
    assert_eq!(
        added(&s.add("holes", v, record(1, 2, 50)).await),
        (false, false)
    );
    assert_eq!(
        added(&s.add("holes", v, record(0, 5, 51)).await),
        (true, true)
    );
    assert!(s.listed().is_empty());

    let h = meta2::get_content(&s.sm.view(), CID, "holes")
        .unwrap()
        .unwrap();
    let slots: Vec<(u32, u32)> = h.chunks.iter().map(|c| (c.metachunk, c.fragment)).collect();
    assert_eq!(slots, every_slot_but(&[]), "records kept in slot order");
    let on = meta2::chunks_on_rawx(&s.sm.view(), "rawx-51", 10).unwrap();
    assert_eq!(on.len(), 1);
    assert_eq!((on[0].version, on[0].metachunk, on[0].fragment), (v, 0, 5));
}

#[tokio::test]
async fn overwrite_and_delete_drop_the_entry() {
    let mut s = Sm::new().await;
    s.put("k", &every_slot_but(&[(0, 0)]), 1).await;
    assert_eq!(s.listed().len(), 1);
    s.put("k", &every_slot_but(&[]), 2).await;
    assert!(s.listed().is_empty(), "replaced by a complete version");
    s.put("k", &every_slot_but(&[(1, 3)]), 3).await;
    assert_eq!(s.listed().len(), 1);
    s.apply(Command::DeleteContent {
        cid: CID.into(),
        key: "k".into(),
    })
    .await;
    assert!(s.listed().is_empty(), "deleted");
}

#[tokio::test]
async fn listing_pages_with_a_cursor() {
    let mut s = Sm::new().await;
    for i in 0..5 {
        s.put(&format!("k{i}"), &every_slot_but(&[(0, 0)]), i + 1)
            .await;
    }
    let mut keys = Vec::new();
    let mut cursor = Vec::new();
    loop {
        let page = list_incomplete(&s.sm.view(), &cursor, 2).unwrap();
        keys.extend(page.entries.into_iter().map(|e| e.key));
        match page.next {
            Some(c) => cursor = c,
            None => break,
        }
    }
    assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4"]);
}
