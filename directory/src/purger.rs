//! The worker that empties the chunk delete queue ([`crate::purge`]) of every meta2
//! group this node leads.
//!
//! Each round, per group: the next page of queued chunks after an in-memory cursor
//! (wrapping to the start at the end, so a rawx that stays down never blocks the
//! others), a `DELETE` of each on its rawx (a few at a time, each with a deadline;
//! 204 and 404 both mean gone), then one Raft command acknowledging those done. A
//! rawx whose delete failed is left alone for a while (doubling up to
//! [`MAX_BACKOFF`]); its entries stay queued. A node that loses the lead simply
//! stops; the next leader starts from its own cursor, and a chunk deleted twice
//! answers 404 the second time.

use crate::metrics::DirectoryMetrics;
use crate::node::{Group, Node};
use crate::purge::{self, PendingDelete};
use crate::types::{Command, GroupKind};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Chunks listed per group and round.
pub const PAGE: usize = 256;
/// Deletes in flight at once, per group.
const CONCURRENCY: usize = 16;
/// Deadline of one rawx delete.
const DELETE_TIMEOUT: Duration = Duration::from_secs(5);
/// First pause before trying a rawx again after a failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest pause before trying a failing rawx again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// When a failing rawx may be tried again, and the pause after the next failure.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    until: Instant,
    next: Duration,
}

/// What the worker remembers between rounds.
struct State {
    http: Http,
    /// Per group: the chunk id the next page starts after.
    cursors: HashMap<u64, String>,
    /// Per rawx id: while it is failing, when to try again.
    backoff: HashMap<String, Backoff>,
}

/// Runs the worker for `node` every `interval` (sooner while there is work) until
/// `stop` fires. The node is held weakly, only for the length of a round.
pub fn spawn(
    node: Weak<Node>,
    metrics: Arc<DirectoryMetrics>,
    interval: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        let mut state = State {
            http: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(CONCURRENCY)
                .build(http),
            cursors: HashMap::new(),
            backoff: HashMap::new(),
        };
        loop {
            let busy = match node.upgrade() {
                Some(n) => round(&n, &metrics, &mut state).await,
                None => return,
            };
            let pause = if busy { Duration::ZERO } else { interval };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    })
}

/// One pass over the groups this node leads; whether any work was done (so the
/// next round comes at once).
async fn round(node: &Arc<Node>, metrics: &DirectoryMetrics, state: &mut State) -> bool {
    let mut busy = false;
    for g in node.groups_snapshot() {
        if g.kind != GroupKind::Meta2 || g.raft.metrics().borrow().current_leader != Some(node.id) {
            state.cursors.remove(&g.id);
            continue;
        }
        match group_round(&g, metrics, state).await {
            Ok(done) => busy |= done > 0,
            Err(e) => tracing::warn!(group = g.id, error = %e, "chunk delete queue"),
        }
    }
    busy
}

/// Works through one page of `g`'s queue; returns the chunks acknowledged.
async fn group_round(
    g: &Group,
    metrics: &DirectoryMetrics,
    state: &mut State,
) -> crate::error::Result<usize> {
    let after = state.cursors.get(&g.id).cloned().unwrap_or_default();
    let (page, more) = purge::list(&g.sm.view(), &after, PAGE)?;
    match (page.last(), more) {
        (Some(last), true) => {
            state.cursors.insert(g.id, last.chunk_id.clone());
        }
        _ => {
            state.cursors.remove(&g.id);
        }
    }
    let now = Instant::now();
    let due: Vec<PendingDelete> = page
        .into_iter()
        .filter(|e| state.backoff.get(&e.rawx_id).is_none_or(|b| b.until <= now))
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    let http = state.http.clone();
    let outcomes: Vec<(PendingDelete, Result<(), String>)> = futures::stream::iter(due)
        .map(|e| {
            let http = http.clone();
            async move {
                let r = delete(&http, &e.addr, &e.chunk_id).await;
                (e, r)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut done = Vec::new();
    for (e, r) in outcomes {
        match r {
            Ok(()) => {
                state.backoff.remove(&e.rawx_id);
                done.push(e.chunk_id);
            }
            Err(why) => {
                metrics.chunk_delete_failed();
                let b = state.backoff.entry(e.rawx_id.clone()).or_insert(Backoff {
                    until: now,
                    next: FIRST_BACKOFF,
                });
                b.until = Instant::now() + b.next;
                b.next = (b.next * 2).min(MAX_BACKOFF);
                tracing::debug!(group = g.id, rawx = %e.rawx_id, chunk = %e.chunk_id, error = %why, "chunk delete failed, kept queued");
            }
        }
    }
    if done.is_empty() {
        return Ok(0);
    }
    let n = done.len();
    g.raft
        .client_write(Command::AckChunkDeletes { chunk_ids: done })
        .await
        .map_err(|e| crate::error::Error::Raft(format!("acknowledging chunk deletes: {e}")))?;
    metrics.chunks_deleted(n as u64);
    Ok(n)
}

/// `DELETE http://addr/CHUNK`: gone (204, or 404 when it never was or is already).
async fn delete(http: &Http, addr: &str, chunk_id: &str) -> Result<(), String> {
    let uri: hyper::Uri = format!("http://{addr}/{chunk_id}")
        .parse()
        .map_err(|e| format!("bad chunk address {addr}/{chunk_id}: {e}"))?;
    let req = hyper::Request::delete(uri)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(DELETE_TIMEOUT, http.request(req))
        .await
        .map_err(|_| format!("no answer within {DELETE_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    if status.is_success() || status == hyper::StatusCode::NOT_FOUND {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}
