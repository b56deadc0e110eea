//! Batching of a group's writes into Raft entries.
//!
//! Every write a client sends becomes a command; proposed one by one, each would be
//! its own log entry, flush notification, commit step and state-machine apply. The
//! proposer of a group queues the commands that arrive while earlier ones are in
//! flight and proposes them together as one [`Command::Batch`] entry (at most
//! [`MAX_BATCH_COMMANDS`] commands or about [`MAX_BATCH_BYTES`]), applied in order
//! in one state-machine batch as separate entries would be; each caller gets its own
//! reply. A few batches are in flight at once ([`MAX_IN_FLIGHT`]), so a batch
//! forms while the previous one waits for its fsync.

use crate::types::{Command, DirRaft, Reply};
use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Most commands in one batch entry.
pub const MAX_BATCH_COMMANDS: usize = 256;
/// A batch closes once its commands' payloads reach about this many bytes.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Batch entries proposed and not yet applied, at most.
pub const MAX_IN_FLIGHT: usize = 4;
/// Commands waiting to be batched, at most (callers wait beyond).
const QUEUE: usize = 4096;

/// What a proposal answers: the command's reply and the log index of its entry.
pub type Proposed = Result<(Reply, u64), RaftError<u64, ClientWriteError<u64, BasicNode>>>;

struct Pending {
    cmd: Command,
    reply: oneshot::Sender<Proposed>,
}

/// The proposer of one group. Cheap to clone; its task ends with the last clone.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<Pending>,
}

impl Proposer {
    /// Starts the proposer of `raft` (on the current tokio runtime).
    pub fn spawn(raft: DirRaft) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, rx));
        Proposer { tx }
    }

    /// Proposes `cmd` (batched with others) and waits for it to be applied.
    pub async fn propose(&self, cmd: Command) -> Proposed {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Pending { cmd, reply }).await.is_err() {
            return Err(RaftError::Fatal(openraft::error::Fatal::Stopped));
        }
        rx.await
            .unwrap_or(Err(RaftError::Fatal(openraft::error::Fatal::Stopped)))
    }
}

/// Rough size of a command in a log entry (what bounds a batch).
fn weight(cmd: &Command) -> usize {
    match cmd {
        Command::PutContent { header, .. } => header.len() + 256,
        Command::PutPart { part, .. } => part.len() + 256,
        Command::CreateUpload { template, .. } => template.len() + 256,
        Command::ReplaceChunk { chunk, .. } | Command::AddMissingChunk { chunk, .. } => {
            chunk.len() + 256
        }
        Command::CompleteUpload { parts, .. } => parts.len() * 48 + 256,
        Command::AckChunkDeletes { chunk_ids } => chunk_ids.len() * 72 + 64,
        _ => 512,
    }
}

async fn run(raft: DirRaft, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Wait for room first: commands arriving meanwhile join this batch.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = weight(&first.cmd);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_COMMANDS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += weight(&p.cmd);
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch).await;
            drop(permit);
        });
    }
}

/// Proposes one entry for `batch` and hands out the replies.
async fn propose(raft: &DirRaft, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        let Some(p) = batch.pop() else { return };
        let r = raft
            .client_write(p.cmd)
            .await
            .map(|resp| (resp.data, resp.log_id.index));
        let _ = p.reply.send(r);
        return;
    }
    let (cmds, replies): (Vec<Command>, Vec<oneshot::Sender<Proposed>>) =
        batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
    let n = cmds.len();
    match raft.client_write(Command::Batch { commands: cmds }).await {
        Ok(resp) => {
            let index = resp.log_id.index;
            let mut each = match resp.data {
                Reply::Batch(r) if r.len() == n => r,
                other => {
                    tracing::error!(reply = ?other, commands = n, "a batch answered no reply per command");
                    vec![Reply::Refused(crate::types::Refusal::Invalid); n]
                }
            };
            for (tx, r) in replies
                .into_iter()
                .rev()
                .zip(std::iter::from_fn(|| each.pop()))
            {
                let _ = tx.send(Ok((r, index)));
            }
        }
        Err(e) => {
            for tx in replies {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}
