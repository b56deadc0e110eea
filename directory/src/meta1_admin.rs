//! meta1 deletions: access keys and account records. Each is one Raft command applied
//! to the group that holds the record.
//!
//! An access key lives in the group of its own name (with its `account -> key` index
//! entry), an account record in the group of the account name, and the containers of
//! an account in the groups of their cids: the "account is empty" check spans groups,
//! so it is the caller's (`oxio account delete`) to make before deleting the record.

use crate::error::Result;
use crate::keys::sm;
use crate::sm_data::Overlay;
use crate::types::Reply;
use oxio_proto::v1::{AccessKeyRecord, AccountRecord};
use prost::Message;

/// Applies `DeleteAccessKey`: removes the key's record and its by-account index entry
/// together. Answers [`Reply::AccessKey`] with the removed record, or [`Reply::Done`]
/// when the key was unknown (nothing changes).
pub fn apply_delete_access_key(ov: &mut Overlay<'_>, access_key: &str) -> Result<Reply> {
    let k = sm::one(sm::ACCESS_KEY, access_key.as_bytes());
    let Some(bytes) = ov.get(&k)? else {
        return Ok(Reply::Done);
    };
    let rec = AccessKeyRecord::decode(bytes.as_slice())?;
    ov.delete(sm::lp_then(
        sm::ACCESS_KEY_BY_ACCOUNT,
        rec.account.as_bytes(),
        rec.access_key.as_bytes(),
    ));
    ov.delete(k);
    Ok(Reply::AccessKey(bytes))
}

/// Applies `DeleteAccount`: removes the account record. Answers [`Reply::Account`]
/// with the removed record, or [`Reply::Done`] when the account was unknown.
pub fn apply_delete_account(ov: &mut Overlay<'_>, account: &str) -> Result<Reply> {
    let k = sm::one(sm::ACCOUNT, account.as_bytes());
    let Some(bytes) = ov.get(&k)? else {
        return Ok(Reply::Done);
    };
    // Decoding checks the stored record before it is handed back to the caller.
    AccountRecord::decode(bytes.as_slice())?;
    ov.delete(k);
    Ok(Reply::Account(bytes))
}

#[cfg(test)]
mod tests {
    use crate::meta1;
    use crate::node::open_db;
    use crate::state_machine::StateMachine;
    use crate::types::{Command, DirEntry, Reply};
    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, EntryPayload, LogId};
    use oxio_proto::v1::{AccessKeyRecord, AccountRecord};
    use prost::Message;
    use std::sync::Arc;

    /// A meta1 group id.
    const GROUP: u64 = 3;

    fn entry(index: u64, cmd: Command) -> DirEntry {
        DirEntry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(cmd),
        }
    }

    fn key(access_key: &str, account: &str) -> Command {
        Command::PutAccessKey {
            record: AccessKeyRecord {
                access_key: access_key.into(),
                secret_key: "s".into(),
                account: account.into(),
                ctime_ms: 1,
            }
            .encode_to_vec(),
        }
    }

    fn open(dir: &tempfile::TempDir) -> StateMachine {
        let db = Arc::new(open_db(dir.path()).unwrap());
        let snaps = dir.path().join("snapshots");
        std::fs::create_dir_all(&snaps).unwrap();
        StateMachine::new(db, GROUP, snaps)
    }

    #[tokio::test]
    async fn deleting_a_key_removes_record_and_account_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(&dir);
        sm.apply(vec![
            entry(1, key("AK1", "acct")),
            entry(2, key("AK2", "acct")),
            entry(3, key("AK3", "other")),
        ])
        .await
        .unwrap();
        let r = sm
            .apply(vec![entry(
                4,
                Command::DeleteAccessKey {
                    access_key: "AK1".into(),
                },
            )])
            .await
            .unwrap();
        match &r[0] {
            Reply::AccessKey(b) => {
                let rec = AccessKeyRecord::decode(b.as_slice()).unwrap();
                assert_eq!(
                    (rec.access_key.as_str(), rec.account.as_str()),
                    ("AK1", "acct")
                );
            }
            other => panic!("unexpected reply {other:?}"),
        }
        let view = sm.view();
        assert!(meta1::get_access_key(&view, "AK1").unwrap().is_none());
        let left: Vec<String> = meta1::list_access_keys(&view, "acct")
            .unwrap()
            .into_iter()
            .map(|k| k.access_key)
            .collect();
        assert_eq!(left, vec!["AK2"]);
        assert_eq!(meta1::list_access_keys(&view, "other").unwrap().len(), 1);
        // Unknown (or already deleted) key: nothing changes, `Done` answers it.
        let r = sm
            .apply(vec![entry(
                5,
                Command::DeleteAccessKey {
                    access_key: "AK1".into(),
                },
            )])
            .await
            .unwrap();
        assert_eq!(r, vec![Reply::Done]);
        assert_eq!(
            meta1::list_access_keys(&sm.view(), "acct").unwrap().len(),
            1
        );
    }

    #[tokio::test]
    async fn a_key_moved_to_another_account_is_deleted_from_the_right_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(&dir);
        sm.apply(vec![entry(1, key("AK", "a")), entry(2, key("AK", "b"))])
            .await
            .unwrap();
        sm.apply(vec![entry(
            3,
            Command::DeleteAccessKey {
                access_key: "AK".into(),
            },
        )])
        .await
        .unwrap();
        let view = sm.view();
        assert!(meta1::list_access_keys(&view, "a").unwrap().is_empty());
        assert!(meta1::list_access_keys(&view, "b").unwrap().is_empty());
        let (rows, _) = view
            .scan(crate::keys::sm::ACCESS_KEY_BY_ACCOUNT, 10)
            .unwrap();
        assert!(rows.is_empty(), "index entries left: {rows:?}");
    }

    #[tokio::test]
    async fn deleting_an_account_removes_only_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(&dir);
        sm.apply(vec![
            entry(
                1,
                Command::CreateAccount {
                    account: "a".into(),
                    ctime_ms: 7,
                },
            ),
            entry(
                2,
                Command::CreateAccount {
                    account: "b".into(),
                    ctime_ms: 8,
                },
            ),
        ])
        .await
        .unwrap();
        let r = sm
            .apply(vec![
                entry(
                    3,
                    Command::DeleteAccount {
                        account: "a".into(),
                    },
                ),
                entry(
                    4,
                    Command::DeleteAccount {
                        account: "nobody".into(),
                    },
                ),
            ])
            .await
            .unwrap();
        match &r[0] {
            Reply::Account(b) => {
                let rec = AccountRecord::decode(b.as_slice()).unwrap();
                assert_eq!((rec.account.as_str(), rec.ctime_ms), ("a", 7));
            }
            other => panic!("unexpected reply {other:?}"),
        }
        assert_eq!(r[1], Reply::Done);
        let names: Vec<String> = meta1::list_accounts(&sm.view())
            .unwrap()
            .into_iter()
            .map(|a| a.account)
            .collect();
        assert_eq!(names, vec!["b"]);
        // Created again later: a fresh record.
        sm.apply(vec![entry(
            5,
            Command::CreateAccount {
                account: "a".into(),
                ctime_ms: 9,
            },
        )])
        .await
        .unwrap();
        let a = meta1::list_accounts(&sm.view()).unwrap();
        assert_eq!((a[0].account.as_str(), a[0].ctime_ms), ("a", 9));
    }

    #[tokio::test]
    async fn meta2_groups_refuse_meta1_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(open_db(dir.path()).unwrap());
        let snaps = dir.path().join("snapshots");
        std::fs::create_dir_all(&snaps).unwrap();
        let mut sm = StateMachine::new(db, crate::types::META2_BASE, snaps);
        let r = sm
            .apply(vec![entry(
                1,
                Command::DeleteAccount {
                    account: "a".into(),
                },
            )])
            .await
            .unwrap();
        assert_eq!(r, vec![Reply::Refused(crate::types::Refusal::WrongGroup)]);
    }
}
