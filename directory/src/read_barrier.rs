//! Shared read-index barriers of a group.
//!
//! A linearizable read first asks the leader to confirm it still leads
//! ([`openraft::Raft::ensure_linearizable`]): one trip through the group's Raft core
//! and, with followers, one heartbeat round to a quorum of them. Done per read,
//! concurrent reads each pay that round. The barrier of a group lets the reads that
//! arrive while a check is in flight wait for the next check together: a check
//! serves only the reads queued before it started, so each read still sees every
//! write acknowledged before the read arrived. At most one check per group is in
//! flight; at most [`MAX_WAITERS`] reads share one.

use crate::types::DirRaft;
use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::BasicNode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// What a barrier answers: Ok once local reads see every write acknowledged before
/// the read asked.
pub type Checked = Result<(), RaftError<u64, CheckIsLeaderError<u64, BasicNode>>>;

/// Most reads served by one leadership check.
pub const MAX_WAITERS: usize = 1024;
/// Reads waiting for the next check, at most (callers wait beyond).
const QUEUE: usize = 4096;

/// The read barrier of one group. Cheap to clone; its task ends with the last clone.
#[derive(Clone)]
pub struct ReadBarrier {
    tx: mpsc::Sender<oneshot::Sender<Checked>>,
    checks: Arc<AtomicU64>,
}

impl ReadBarrier {
    /// Starts the barrier of `raft` (on the current tokio runtime).
    pub fn spawn(raft: DirRaft) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let checks = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(raft, rx, checks.clone()));
        ReadBarrier { tx, checks }
    }

    /// Leadership checks made so far.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Waits for a leadership check that started after this call, and for the state
    /// machine to apply what it found committed.
    pub async fn wait(&self) -> Checked {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(reply).await.is_err() {
            return Err(RaftError::Fatal(openraft::error::Fatal::Stopped));
        }
        rx.await
            .unwrap_or(Err(RaftError::Fatal(openraft::error::Fatal::Stopped)))
    }
}

async fn run(
    raft: DirRaft,
    mut rx: mpsc::Receiver<oneshot::Sender<Checked>>,
    checks: Arc<AtomicU64>,
) {
    let mut waiters = Vec::new();
    while let Some(first) = rx.recv().await {
        waiters.push(first);
        while waiters.len() < MAX_WAITERS {
            match rx.try_recv() {
                Ok(w) => waiters.push(w),
                Err(_) => break,
            }
        }
        // Every waiter taken above asked before this check starts.
        checks.fetch_add(1, Ordering::Relaxed);
        let checked = raft.ensure_linearizable().await.map(|_| ());
        for w in waiters.drain(..) {
            let _ = w.send(checked.clone());
        }
    }
}
