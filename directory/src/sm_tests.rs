//! Tests of the log store and state machine: openraft's conformance suite, and the
//! meta2 semantics (versions, stats, reverse index) through the real apply path.

use crate::log_store::LogStore;
use crate::meta2;
use crate::node::open_db;
use crate::state_machine::StateMachine;
use crate::types::{Command, DirEntry, Refusal, Reply, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, LogId, RaftSnapshotBuilder, StorageError};
use oxio_proto::v1::{ChunkRecord, ContentHeader};
use prost::Message;
use std::sync::Arc;
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let (log, sm) = open(&dir, 5);
        Ok((dir, log, sm))
    }
}

fn open(dir: &TempDir, group: u64) -> (LogStore, StateMachine) {
    let db = Arc::new(open_db(dir.path()).unwrap());
    let snaps = dir.path().join("snapshots");
    std::fs::create_dir_all(&snaps).unwrap();
    (
        LogStore::new(
            db.clone(),
            group,
            crate::log_store::WalSyncer::spawn(db.clone()),
        ),
        StateMachine::new(db, group, snaps),
    )
}

#[test]
fn openraft_storage_suite() {
    Suite::<TypeConfig, LogStore, StateMachine, Builder, TempDir>::test_all(Builder).unwrap();
}

const CID: &str = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";
const META2: u64 = 1000;

fn entry(index: u64, cmd: Command) -> DirEntry {
    DirEntry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(cmd),
    }
}

fn header(size: u64, chunks: &[(&str, &str)]) -> Vec<u8> {
    ContentHeader {
        placement_degraded: false,
        size,
        policy: "TWOCOPIES".into(),
        chunks: chunks
            .iter()
            .map(|(rawx, chunk)| ChunkRecord {
                rawx_id: rawx.to_string(),
                chunk_id: chunk.to_string(),
                size,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

fn put(key: &str, size: u64, chunks: &[(&str, &str)], proposed: u64) -> Command {
    Command::PutContent {
        cid: CID.into(),
        key: key.into(),
        header: header(size, chunks),
        proposed_version: proposed,
        condition: None,
    }
}

#[tokio::test]
async fn versions_increase_and_reverse_index_follows() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = open(&dir, META2);
    let init = Command::InitContainer {
        cid: CID.into(),
        account: "acct".into(),
        name: "bucket".into(),
    };
    // A put before init is refused.
    let r = sm
        .apply(vec![entry(1, put("k", 1, &[], 10))])
        .await
        .unwrap();
    assert_eq!(r, vec![Reply::Refused(Refusal::NoSuchContainer)]);
    sm.apply(vec![entry(2, init)]).await.unwrap();

    let r = sm
        .apply(vec![entry(3, put("k", 100, &[("rawx-a", "C1")], 1_000))])
        .await
        .unwrap();
    assert_eq!(
        r,
        vec![Reply::Put {
            version: 1_000,
            replaced: None
        }]
    );

    // The leader's clock went backwards: the version still increases, and the replaced
    // header comes back with its version.
    let r = sm
        .apply(vec![entry(4, put("k", 50, &[("rawx-b", "C2")], 500))])
        .await
        .unwrap();
    let Reply::Put { version, replaced } = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(*version, 1_001);
    let replaced = ContentHeader::decode(replaced.as_deref().unwrap()).unwrap();
    assert_eq!(replaced.version, 1_000);
    assert_eq!(replaced.size, 100);

    // Two puts of one key in one apply call see each other.
    let r = sm
        .apply(vec![
            entry(5, put("k", 7, &[("rawx-b", "C3")], 1_001)),
            entry(6, put("k", 8, &[("rawx-c", "C4")], 1_001)),
        ])
        .await
        .unwrap();
    assert!(matches!(r[0], Reply::Put { version: 1_002, .. }), "{r:?}");
    assert!(matches!(r[1], Reply::Put { version: 1_003, .. }), "{r:?}");

    let view = sm.view();
    assert!(meta2::chunks_on_rawx(&view, "rawx-a", 10)
        .unwrap()
        .is_empty());
    assert!(meta2::chunks_on_rawx(&view, "rawx-b", 10)
        .unwrap()
        .is_empty());
    let on_c = meta2::chunks_on_rawx(&view, "rawx-c", 10).unwrap();
    assert_eq!(on_c.len(), 1);
    assert_eq!(on_c[0].chunk_id, "C4");
    assert_eq!(on_c[0].cid, CID);
    assert_eq!(on_c[0].key, "k");
    assert_eq!(on_c[0].version, 1_003);
    let stats = meta2::container_meta(&view, CID).unwrap().unwrap();
    assert_eq!((stats.objects, stats.bytes), (1, 8));
    let stored = meta2::get_content(&view, CID, "k").unwrap().unwrap();
    assert_eq!(stored.version, 1_003);

    // Not empty: drop refused. Delete empties the index and the stats.
    let r = sm
        .apply(vec![entry(7, Command::DropContainer { cid: CID.into() })])
        .await
        .unwrap();
    assert_eq!(r, vec![Reply::Refused(Refusal::NotEmpty)]);
    let r = sm
        .apply(vec![entry(
            8,
            Command::DeleteContent {
                cid: CID.into(),
                key: "k".into(),
            },
        )])
        .await
        .unwrap();
    assert!(matches!(r[0], Reply::Deleted(_)));
    let r = sm
        .apply(vec![entry(
            9,
            Command::DeleteContent {
                cid: CID.into(),
                key: "k".into(),
            },
        )])
        .await
        .unwrap();
    assert_eq!(r, vec![Reply::Refused(Refusal::NoSuchKey)]);
    let view = sm.view();
    assert!(meta2::chunks_on_rawx(&view, "rawx-c", 10)
        .unwrap()
        .is_empty());
    let stats = meta2::container_meta(&view, CID).unwrap().unwrap();
    assert_eq!((stats.objects, stats.bytes), (0, 0));
    let r = sm
        .apply(vec![entry(10, Command::DropContainer { cid: CID.into() })])
        .await
        .unwrap();
    assert_eq!(r, vec![Reply::Done]);
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.unwrap().index, 10);
}

#[tokio::test]
async fn commands_of_another_level_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = open(&dir, 3); // a meta1 group
    let r = sm.apply(vec![entry(1, put("k", 1, &[], 1))]).await.unwrap();
    assert_eq!(r, vec![Reply::Refused(Refusal::WrongGroup)]);
}

#[tokio::test]
async fn snapshot_carries_the_data_to_another_node() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (_la, mut a) = open(&dir_a, META2);
    let (_lb, mut b) = open(&dir_b, META2);
    let mut entries = vec![entry(
        1,
        Command::InitContainer {
            cid: CID.into(),
            account: "acct".into(),
            name: "bucket".into(),
        },
    )];
    for i in 0..300u64 {
        entries.push(entry(
            2 + i,
            put(
                &format!("obj/{i:04}"),
                i,
                &[("rawx-x", &format!("CH{i}"))],
                10,
            ),
        ));
    }
    a.apply(entries).await.unwrap();
    // b holds stale data that the snapshot must replace.
    b.apply(vec![entry(
        1,
        Command::InitContainer {
            cid: "F".repeat(64),
            account: "old".into(),
            name: "old".into(),
        },
    )])
    .await
    .unwrap();

    let snap = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snap.meta.last_log_id.unwrap().index, 301);
    let mut recv = b.begin_receiving_snapshot().await.unwrap();
    let mut src = *snap.snapshot;
    tokio::io::copy(&mut src, &mut *recv).await.unwrap();
    b.install_snapshot(&snap.meta, recv).await.unwrap();

    let (applied, _) = b.applied_state().await.unwrap();
    assert_eq!(applied.unwrap().index, 301);
    let view = b.view();
    assert!(meta2::container_meta(&view, &"F".repeat(64))
        .unwrap()
        .is_none());
    let stats = meta2::container_meta(&view, CID).unwrap().unwrap();
    assert_eq!(stats.objects, 300);
    assert_eq!(stats.bytes, (0..300u64).sum::<u64>());
    assert_eq!(
        meta2::chunks_on_rawx(&view, "rawx-x", 1000).unwrap().len(),
        300
    );
    let cur = b.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(cur.meta, snap.meta);
}

#[tokio::test]
async fn container_policy_is_set_cleared_and_validated() {
    use crate::service::check_policy;
    use oxio_proto::v1::ContainerStatsReply;

    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = open(&dir, META2);
    let set = |index, policy: Option<&str>| {
        entry(
            index,
            Command::SetContainerPolicy {
                cid: CID.into(),
                policy: policy.map(str::to_string),
            },
        )
    };
    // No container yet: refused.
    let r = sm.apply(vec![set(1, Some("EC84"))]).await.unwrap();
    assert_eq!(r, vec![Reply::Refused(Refusal::NoSuchContainer)]);
    sm.apply(vec![entry(
        2,
        Command::InitContainer {
            cid: CID.into(),
            account: "acct".into(),
            name: "bucket".into(),
        },
    )])
    .await
    .unwrap();
    assert_eq!(
        meta2::container_meta(&sm.view(), CID)
            .unwrap()
            .unwrap()
            .policy,
        None
    );

    let r = sm.apply(vec![set(3, Some("THREECOPIES"))]).await.unwrap();
    let Reply::Encoded(b) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(
        ContainerStatsReply::decode(b.as_slice()).unwrap().policy,
        "THREECOPIES"
    );
    // Objects put afterwards keep the policy and the counts move.
    sm.apply(vec![entry(4, put("k", 10, &[], 1))])
        .await
        .unwrap();
    let meta = meta2::container_meta(&sm.view(), CID).unwrap().unwrap();
    assert_eq!(meta.policy.as_deref(), Some("THREECOPIES"));
    assert_eq!(meta2::stats_of(&meta).objects, 1);

    let r = sm.apply(vec![set(5, None)]).await.unwrap();
    let Reply::Encoded(b) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(
        ContainerStatsReply::decode(b.as_slice()).unwrap().policy,
        ""
    );
    assert_eq!(
        meta2::container_meta(&sm.view(), CID)
            .unwrap()
            .unwrap()
            .policy,
        None
    );

    // A record written before the field existed still loads.
    let old: meta2::ContainerMeta =
        serde_json::from_str(r#"{"account":"a","name":"b","objects":1,"bytes":2}"#).unwrap();
    assert_eq!(old.policy, None);

    // The leader's validation: canonical names pass, "" clears, others name the forms.
    assert_eq!(check_policy("EC84").unwrap().as_deref(), Some("EC84"));
    assert_eq!(
        check_policy("TWOCOPIES").unwrap().as_deref(),
        Some("TWOCOPIES")
    );
    assert_eq!(check_policy("").unwrap(), None);
    for bad in ["EC", "FOUR", "ec42", "EC0", "THREECOPIESX"] {
        let e = check_policy(bad).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}");
        assert!(e.message().contains("EC<k><m>"), "{}", e.message());
    }
}

#[tokio::test]
async fn an_install_cut_short_is_finished_at_the_next_start() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (_la, mut a) = open(&dir_a, META2);
    let mut entries = vec![entry(
        1,
        Command::InitContainer {
            cid: CID.into(),
            account: "acct".into(),
            name: "bucket".into(),
        },
    )];
    for i in 0..50u64 {
        entries.push(entry(
            2 + i,
            put(
                &format!("obj/{i:04}"),
                i,
                &[("rawx-x", &format!("CH{i}"))],
                10,
            ),
        ));
    }
    a.apply(entries).await.unwrap();
    let snap = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    // b received the file durably, dropped its old state, then crashed: no applied
    // mark, no data, the received file waiting.
    let snaps_b = dir_b.path().join("snapshots");
    std::fs::create_dir_all(&snaps_b).unwrap();
    std::fs::copy(
        crate::snapshot::path(&dir_a.path().join("snapshots"), META2),
        crate::snapshot::installing_path(&snaps_b, META2),
    )
    .unwrap();
    let db_b = Arc::new(open_db(dir_b.path()).unwrap());
    assert!(crate::snapshot::resume_install(&db_b, META2, &snaps_b).unwrap());
    assert!(!crate::snapshot::installing_path(&snaps_b, META2).exists());
    assert!(!crate::snapshot::resume_install(&db_b, META2, &snaps_b).unwrap());
    let mut b = StateMachine::new(db_b, META2, snaps_b);
    let (applied, _) = b.applied_state().await.unwrap();
    assert_eq!(applied, snap.meta.last_log_id);
    let stats = meta2::container_meta(&b.view(), CID).unwrap().unwrap();
    assert_eq!(stats.objects, 50);
    assert_eq!(
        b.get_current_snapshot().await.unwrap().unwrap().meta,
        snap.meta
    );
}
