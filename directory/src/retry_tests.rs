//! A put applied twice (the client retried after losing the reply, e.g. across a leader
//! change) is recognised by its content id: the second apply answers the first
//! version and replaces nothing, so no chunk of the stored object is ever handed over
//! for deletion; the record expires after the retry window.

use crate::meta2::{self, PUT_RETRY_WINDOW_US};
use crate::state_machine::StateMachine;
use crate::test_sm::TestSm;
use crate::types::{Command, Reply};
use oxio_proto::v1::{ChunkRecord, ContentHeader};
use prost::Message;

const CID: &str = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";

fn put(upload: u8, at_us: u64) -> Command {
    Command::PutContent {
        cid: CID.into(),
        key: "k".into(),
        header: ContentHeader {
            content_id: vec![upload; 16],
            size: 10,
            etag: format!("e{upload}"),
            policy: "TWOCOPIES".into(),
            chunks: vec![ChunkRecord {
                rawx_id: "rawx-a".into(),
                chunk_id: format!("C{upload}"),
                size: 10,
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec(),
        proposed_version: at_us,
        condition: None,
    }
}

fn put_reply(r: Reply) -> (u64, Option<u8>) {
    match r {
        Reply::Put { version, replaced } => (
            version,
            replaced.map(|b| ContentHeader::decode(b.as_slice()).unwrap().content_id[0]),
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_retried_put_is_applied_once() {
    let mut s = TestSm::with_container(1001, CID).await;
    let t0 = 1_000_000;

    let (v1, replaced) = put_reply(s.apply(put(1, t0)).await);
    assert_eq!(replaced, None);
    // The same upload again: same version, nothing replaced, nothing counted twice.
    assert_eq!(put_reply(s.apply(put(1, t0 + 5)).await), (v1, None));
    let meta = meta2::container_meta(&s.sm.view(), CID).unwrap().unwrap();
    assert_eq!((meta.objects, meta.bytes), (1, 10));
    assert_eq!(
        meta2::chunks_on_rawx(&s.sm.view(), "rawx-a", 10)
            .unwrap()
            .len(),
        1
    );

    // Another upload replaces it; a late retry of the first must not come back.
    let (v2, replaced) = put_reply(s.apply(put(2, t0 + 10)).await);
    assert!(v2 > v1);
    assert_eq!(replaced, Some(1));
    assert_eq!(put_reply(s.apply(put(1, t0 + 20)).await), (v1, None));
    let cur = meta2::get_content(&s.sm.view(), CID, "k").unwrap().unwrap();
    assert_eq!(
        cur.content_id,
        vec![2; 16],
        "the retry did not bring back upload 1"
    );

    // Past the retry window the records are dropped as new puts arrive.
    let late = t0 + PUT_RETRY_WINDOW_US + 100;
    put_reply(s.apply(put(3, late)).await);
    let (v, replaced) = put_reply(s.apply(put(1, late + 1)).await);
    assert!(v > v2, "upload 1 forgotten: stored anew");
    assert_eq!(replaced, Some(3));
}

/// Expired put records are pruned from the group's put floor on, which moves past
/// them (so a put never walks over the deleted ones); a put stamped before the
/// floor (a leader whose clock is behind) lowers it and is pruned in its turn.
#[tokio::test]
async fn expired_put_records_are_pruned_from_the_floor() {
    use crate::keys::sm;
    let mut s = TestSm::with_container(1001, CID).await;
    let floor = |sm: &StateMachine| {
        sm.view()
            .get(sm::M2_PUT_FLOOR)
            .unwrap()
            .map(|v| u64::from_be_bytes(v.as_slice().try_into().unwrap()))
    };
    let remembered = |sm: &StateMachine, upload: u8| {
        sm.view()
            .get(&sm::put_id(CID, &[upload; 16]))
            .unwrap()
            .is_some()
    };
    let t0 = 1_000_000;
    for u in 0..40u8 {
        put_reply(s.apply(put(10 + u, t0 + u64::from(u))).await);
    }
    assert_eq!(floor(&s.sm), None);

    // One late put prunes the 16 oldest records and moves the floor to the last.
    let late = t0 + PUT_RETRY_WINDOW_US + 1_000;
    put_reply(s.apply(put(100, late)).await);
    assert_eq!(floor(&s.sm), Some(t0 + 15));
    assert!(!remembered(&s.sm, 10 + 15));
    assert!(remembered(&s.sm, 10 + 16));

    // A put from a clock behind the floor lowers it.
    put_reply(s.apply(put(200, t0 + 5)).await);
    assert_eq!(floor(&s.sm), Some(t0 + 5));
    assert!(remembered(&s.sm, 200));

    // Later puts prune everything expired, that one included.
    for u in 0..3u8 {
        put_reply(s.apply(put(150 + u, late + 10 + u64::from(u))).await);
    }
    assert!(!remembered(&s.sm, 200));
    for u in 0..40u8 {
        assert!(
            !remembered(&s.sm, 10 + u),
            "upload {} still remembered",
            10 + u
        );
    }
    assert_eq!(floor(&s.sm), Some(t0 + 39));
    assert!(remembered(&s.sm, 100));
}
