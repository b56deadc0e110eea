//! MD5 of the uploads in flight, hashed side by side. The MD5 of every byte is the
//! S3 ETag of a single-part upload, and it is the costliest per-byte step of a PUT.
//! One message's MD5 cannot be computed in parallel (each 64-byte block depends on
//! the one before), but the messages of concurrent uploads are independent: one
//! hashing thread takes every stripe queued by then and runs them through the SIMD
//! lanes of `md5-many` together (16 lanes with AVX-512, 8 with AVX2), where a lane
//! goes about as fast as a lone message does ([`update_side_by_side`]).
//!
//! An upload hands each stripe to the thread and goes on encoding and sending it; it
//! waits for the digest of a stripe only before handing over the next one (the
//! stripes of one message are hashed in order) and at the end. Short data is hashed
//! in place, and so is a stripe that finds the queue full.
//!
//! The thread waits up to [`BATCH_WAIT`] for the stripes of other uploads in flight
//! before it hashes fewer than there are uploads: an upload is not held up by that
//! (its stripe's digest is needed only when its next stripe is ready), and a lone
//! message in the lanes costs as much time as a full batch.

use bytes::Bytes;
use md5_many::{Md5Many, Md5State};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

use crate::{Error, Result};

/// Data shorter than this is hashed by the caller, not handed to the thread.
const INLINE_BYTES: usize = 64 * 1024;
/// Stripes queued toward the thread; past that, uploads hash their own.
const QUEUE_DEPTH: usize = 256;
/// Longest wait for the stripes of other uploads in flight before a batch is hashed.
pub const BATCH_WAIT: Duration = Duration::from_millis(1);
/// Most messages hashed in one batch (three native groups of AVX-512 lanes, the
/// widest kernel `md5-many` interleaves).
const MAX_BATCH: usize = 48;

/// A piece of one message to hash after the pieces before it.
struct Job {
    state: Md5State,
    data: Bytes,
    done: oneshot::Sender<Md5State>,
}

/// Messages that handed a piece to the thread and are not finished.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The hashing thread, started on first use.
fn queue() -> Option<&'static mpsc::SyncSender<Job>> {
    static QUEUE: OnceLock<Option<mpsc::SyncSender<Job>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
            let started = std::thread::Builder::new()
                .name("oxio-md5".into())
                .spawn(move || run(rx));
            match started {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::warn!(error = %e, "no MD5 thread; uploads hash their own bytes");
                    None
                }
            }
        })
        .as_ref()
}

/// The batch engine and the lanes a batch is filled up to: the native width of the
/// widest kernel this CPU has (1: no SIMD kernel worth filling).
fn engine() -> (Md5Many, usize) {
    static ENGINE: OnceLock<(Md5Many, usize)> = OnceLock::new();
    *ENGINE.get_or_init(|| {
        let mut width = 1;
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                width = 16;
            } else if std::arch::is_x86_feature_detected!("avx2") {
                width = 8;
            }
        }
        (Md5Many::new(), width)
    })
}

/// Advances `states[i]` over `inputs[i]` for every `i`, side by side. A batch short
/// of a whole number of native lane groups is filled with copies of its own inputs
/// hashed into scratch states: the lanes run in lockstep, so the spare ones cost no
/// time, and some partial widths would take slow paths.
pub fn update_side_by_side(states: &mut [Md5State], inputs: &[&[u8]]) {
    assert_eq!(states.len(), inputs.len(), "one input per state");
    let real = states.len();
    if real <= 1 {
        if let (Some(state), Some(input)) = (states.first_mut(), inputs.first()) {
            state.update(input);
        }
        return;
    }
    let (engine, width) = engine();
    let fill = real.div_ceil(width) * width;
    if fill == real {
        engine.update_many(states, inputs);
        return;
    }
    let mut all: Vec<Md5State> = Vec::with_capacity(fill);
    let mut all_inputs: Vec<&[u8]> = Vec::with_capacity(fill);
    all.extend_from_slice(states);
    all_inputs.extend_from_slice(inputs);
    for i in real..fill {
        all.push(Md5State::new());
        all_inputs.push(inputs[i % real]);
    }
    engine.update_many(&mut all, &all_inputs);
    states.copy_from_slice(&all[..real]);
}

/// The thread: takes what is queued (waiting up to [`BATCH_WAIT`] for the other
/// messages in flight), hashes it as one batch, answers, until every sender is gone.
fn run(rx: mpsc::Receiver<Job>) {
    let width = engine().1;
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    // Bounded: each pass hashes at least one job, and the loop ends with the channel.
    while let Ok(first) = rx.recv() {
        jobs.push(first);
        let deadline = Instant::now() + BATCH_WAIT;
        // Bounded: each pass takes a job or ends (queue empty and the deadline past,
        // or enough jobs).
        while jobs.len() < MAX_BATCH {
            if let Ok(j) = rx.try_recv() {
                jobs.push(j);
                continue;
            }
            let wanted = IN_FLIGHT.load(Ordering::Relaxed).min(width);
            let left = deadline.saturating_duration_since(Instant::now());
            if jobs.len() >= wanted || left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        hash_batch(&mut jobs);
        for job in jobs.drain(..) {
            // An upload that gave up no longer waits for its digest.
            let _ = job.done.send(job.state);
        }
    }
}

/// Advances every job's state over its data, side by side.
fn hash_batch(jobs: &mut [Job]) {
    let mut states: Vec<Md5State> = jobs.iter().map(|j| j.state).collect();
    let inputs: Vec<&[u8]> = jobs.iter().map(|j| &j.data[..]).collect();
    update_side_by_side(&mut states, &inputs);
    for (job, state) in jobs.iter_mut().zip(states) {
        job.state = state;
    }
}

/// The MD5 of one message, fed piece by piece.
#[derive(Debug)]
pub struct StreamMd5 {
    state: Md5State,
    /// The state after the last piece handed to the thread, while it is hashed.
    pending: Option<oneshot::Receiver<Md5State>>,
    /// Counted in [`IN_FLIGHT`].
    counted: bool,
}

impl Drop for StreamMd5 {
    fn drop(&mut self) {
        if self.counted {
            IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Default for StreamMd5 {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamMd5 {
    /// The MD5 of an empty message, so far.
    pub fn new() -> Self {
        StreamMd5 {
            state: Md5State::new(),
            pending: None,
            counted: false,
        }
    }

    /// Adds `data` to the message. Long data is handed to the hashing thread and
    /// this returns at once; it waits only for the piece handed over before (hashing
    /// here when the thread's queue is full).
    pub async fn update(&mut self, data: Bytes) -> Result<()> {
        self.settle().await?;
        if data.len() < INLINE_BYTES {
            self.state.update(&data);
            return Ok(());
        }
        let Some(queue) = queue() else {
            self.state.update(&data);
            return Ok(());
        };
        let (done, answer) = oneshot::channel();
        let job = Job {
            state: self.state,
            data,
            done,
        };
        match queue.try_send(job) {
            Ok(()) => {
                if !self.counted {
                    self.counted = true;
                    IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
                }
                self.pending = Some(answer);
            }
            // The queue is full or the thread is gone: hash here.
            Err(mpsc::TrySendError::Full(job) | mpsc::TrySendError::Disconnected(job)) => {
                self.state.update(&job.data);
            }
        }
        Ok(())
    }

    /// The digest of everything added.
    pub async fn finalize(mut self) -> Result<[u8; 16]> {
        self.settle().await?;
        Ok(self.state.finalize())
    }

    /// Waits for the piece handed to the thread, if any.
    async fn settle(&mut self) -> Result<()> {
        if let Some(answer) = self.pending.take() {
            self.state = answer
                .await
                .map_err(|_| Error::Internal("the MD5 thread dropped a piece".into()))?;
        }
        Ok(())
    }
}

/// The MD5 of `data` in one call.
pub fn md5(data: &[u8]) -> [u8; 16] {
    md5_many::md5(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    fn reference(data: &[u8]) -> [u8; 16] {
        md5::Md5::digest(data).into()
    }

    fn message(len: usize, seed: u32) -> Bytes {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_messages_get_their_own_digest() {
        // Many messages at once, cut in pieces of many lengths (inline and handed
        // over, block-aligned and not), so batches of every size and mixed lengths
        // form on the thread.
        let mut tasks = Vec::new();
        for m in 0..40u32 {
            tasks.push(tokio::spawn(async move {
                let len = 100_000 * (m as usize % 7) + 1000 * m as usize + m as usize;
                let data = message(len, m);
                let mut h = StreamMd5::new();
                let mut at = 0;
                let mut step = 0usize;
                while at < data.len() {
                    let n = [70_000, 1, 64, 300_001, 65_536, 63][step % 6].min(data.len() - at);
                    h.update(data.slice(at..at + n)).await.unwrap();
                    at += n;
                    step += 1;
                }
                (h.finalize().await.unwrap(), reference(&data))
            }));
        }
        for t in tasks {
            let (got, want) = t.await.unwrap();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn batches_of_any_size_change_only_their_own_states() {
        // Sizes around the native groups (8, 16) and past them; each message
        // already has a prefix hashed, and lengths differ (so lanes diverge).
        for real in [1usize, 2, 3, 5, 7, 8, 9, 15, 16, 17, 20] {
            let datas: Vec<Bytes> = (0..real)
                .map(|i| message(70_000 + 640 * i + i, i as u32))
                .collect();
            let mut states: Vec<Md5State> = datas
                .iter()
                .map(|d| {
                    let mut s = Md5State::new();
                    s.update(&d[..100]);
                    s
                })
                .collect();
            let inputs: Vec<&[u8]> = datas.iter().map(|d| &d[100..]).collect();
            update_side_by_side(&mut states, &inputs);
            for (state, d) in states.iter().zip(&datas) {
                assert_eq!(state.finalize(), reference(d), "batch of {real}");
            }
        }
    }

    #[tokio::test]
    async fn empty_and_one_shot_digests_match() {
        assert_eq!(StreamMd5::new().finalize().await.unwrap(), reference(b""));
        let data = message(1 << 20, 9);
        assert_eq!(md5(&data), reference(&data));
    }
}
