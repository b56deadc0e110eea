//! A state machine over a temporary RocksDB for the apply-path tests: commands are
//! applied as consecutive log entries, and `with_container` starts with one meta2
//! container initialised. Test modules wrap it (`struct Sm(TestSm)` with `Deref`) to
//! add their own helpers.

use crate::node::open_db;
use crate::state_machine::StateMachine;
use crate::types::{Command, DirEntry, Reply};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use std::sync::Arc;
use tempfile::TempDir;

pub(crate) struct TestSm {
    pub sm: StateMachine,
    index: u64,
    _dir: TempDir,
}

impl TestSm {
    /// A fresh state machine of `group`.
    pub async fn new(group: u64) -> TestSm {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(open_db(dir.path()).unwrap());
        let snaps = dir.path().join("snapshots");
        std::fs::create_dir_all(&snaps).unwrap();
        TestSm {
            sm: StateMachine::new(db, group, snaps),
            index: 0,
            _dir: dir,
        }
    }

    /// A meta2 state machine of `group` holding the container `cid`.
    pub async fn with_container(group: u64, cid: &str) -> TestSm {
        let mut s = TestSm::new(group).await;
        let r = s
            .apply(Command::InitContainer {
                cid: cid.into(),
                account: "acct".into(),
                name: "bucket".into(),
            })
            .await;
        assert_eq!(r, Reply::Done);
        s
    }

    /// Applies `cmds` as consecutive log entries.
    pub async fn apply_all(&mut self, cmds: Vec<Command>) -> Vec<Reply> {
        let entries: Vec<DirEntry> = cmds
            .into_iter()
            .map(|cmd| {
                self.index += 1;
                DirEntry {
                    log_id: LogId::new(CommittedLeaderId::new(1, 0), self.index),
                    payload: EntryPayload::Normal(cmd),
                }
            })
            .collect();
        self.sm.apply(entries).await.unwrap()
    }

    /// Applies one command.
    pub async fn apply(&mut self, cmd: Command) -> Reply {
        self.apply_all(vec![cmd]).await.remove(0)
    }
}
