//! State-machine tests of the chunk delete queue: what a replaced or deleted object
//! leaves queued (and what a delete marker does not), acknowledgement, paging.

use super::*;
use crate::test_sm::TestSm;
use crate::types::{Command, Reply};
use oxio_proto::v1::{ChunkRecord, ContentHeader};
use prost::Message;

const CID: &str = "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789";

fn put(key: &str, chunks: &[&str], version: u64) -> Command {
    Command::PutContent {
        cid: CID.into(),
        key: key.into(),
        header: ContentHeader {
            size: 10,
            etag: "e".into(),
            policy: "TWOCOPIES".into(),
            content_id: chunks.concat().into_bytes(),
            chunks: chunks
                .iter()
                .enumerate()
                .map(|(i, c)| ChunkRecord {
                    fragment: i as u32,
                    rawx_id: format!("rawx-{i}"),
                    addr: format!("127.0.0.1:{}", 6200 + i),
                    chunk_id: c.to_string(),
                    size: 10,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
        .encode_to_vec(),
        proposed_version: version,
        condition: None,
    }
}

fn queued(sm: &TestSm) -> Vec<String> {
    list(&sm.sm.view(), "", MAX_PAGE)
        .unwrap()
        .0
        .into_iter()
        .map(|e| e.chunk_id)
        .collect()
}

#[tokio::test]
async fn replaced_and_deleted_chunks_are_queued_in_the_same_apply() {
    let mut sm = TestSm::with_container(1001, CID).await;
    assert!(matches!(
        sm.apply(put("k", &["A1", "A2"], 1_000)).await,
        Reply::Put { .. }
    ));
    assert!(queued(&sm).is_empty());
    // An overwrite queues the old chunks, not the new ones.
    assert!(matches!(
        sm.apply(put("k", &["B1", "B2"], 2_000)).await,
        Reply::Put { .. }
    ));
    assert_eq!(queued(&sm), ["A1", "A2"]);
    let (page, _) = list(&sm.sm.view(), "", MAX_PAGE).unwrap();
    assert_eq!(
        page[0],
        PendingDelete {
            rawx_id: "rawx-0".into(),
            addr: "127.0.0.1:6200".into(),
            chunk_id: "A1".into(),
            cid: CID.into(),
        }
    );
    // They left the reverse index in the same entry.
    let idx = crate::meta2::chunks_on_rawx(&sm.sm.view(), "rawx-0", 10).unwrap();
    assert_eq!(
        idx.iter().map(|e| e.chunk_id.as_str()).collect::<Vec<_>>(),
        ["B1"]
    );
    // A delete queues the rest.
    let r = sm
        .apply(Command::DeleteContent {
            cid: CID.into(),
            key: "k".into(),
        })
        .await;
    assert!(matches!(r, Reply::Deleted(_)), "{r:?}");
    assert_eq!(queued(&sm), ["A1", "A2", "B1", "B2"]);
    // Acknowledged entries go; unknown ones are ignored.
    let r = sm
        .apply(Command::AckChunkDeletes {
            chunk_ids: vec!["A1".into(), "B2".into(), "ZZ".into()],
        })
        .await;
    assert_eq!(r, Reply::Done);
    assert_eq!(queued(&sm), ["A2", "B1"]);
}

#[tokio::test]
async fn a_delete_marker_queues_nothing_and_removing_a_version_does() {
    use crate::meta2::versions::{DeleteClock, VersionRef, Versioning};
    let mut sm = TestSm::with_container(1001, CID).await;
    sm.apply(Command::SetVersioning {
        cid: CID.into(),
        state: Versioning::Enabled,
    })
    .await;
    sm.apply(put("k", &["V1"], 1_000)).await;
    sm.apply(put("k", &["V2"], 2_000)).await;
    assert!(queued(&sm).is_empty(), "versions keep their chunks");
    sm.apply(Command::DeleteVersion {
        cid: CID.into(),
        key: "k".into(),
        version: None,
        clock: DeleteClock {
            proposed_version: 3_000,
            mtime_ms: 3,
        },
    })
    .await;
    assert!(queued(&sm).is_empty(), "a delete marker removes nothing");
    let r = sm
        .apply(Command::DeleteVersion {
            cid: CID.into(),
            key: "k".into(),
            version: Some(VersionRef::Id(1_000)),
            clock: DeleteClock {
                proposed_version: 4_000,
                mtime_ms: 4,
            },
        })
        .await;
    assert!(matches!(r, Reply::Encoded(_)), "{r:?}");
    assert_eq!(queued(&sm), ["V1"]);
}

#[tokio::test]
async fn pages_follow_chunk_id_order() {
    let mut sm = TestSm::with_container(1001, CID).await;
    let ids: Vec<String> = (0..7).map(|i| format!("C{i}")).collect();
    for (n, id) in ids.iter().enumerate() {
        sm.apply(put(&format!("k{n}"), &[id], 1_000 + n as u64))
            .await;
        sm.apply(Command::DeleteContent {
            cid: CID.into(),
            key: format!("k{n}"),
        })
        .await;
    }
    let view = sm.sm.view();
    let (a, more) = list(&view, "", 3).unwrap();
    assert!(more);
    let (b, more) = list(&view, &a[2].chunk_id, 3).unwrap();
    assert!(more);
    let (c, more) = list(&view, &b[2].chunk_id, 3).unwrap();
    assert!(!more);
    let all: Vec<String> = a
        .iter()
        .chain(&b)
        .chain(&c)
        .map(|e| e.chunk_id.clone())
        .collect();
    assert_eq!(all, ids);
}
