//! Garbage collection of orphan chunks: chunk files a rawx holds that no meta2 record
//! lists, left by writes that failed after some chunks were stored, by deletes whose
//! background chunk removal did not complete (process crash, rawx down), or by a
//! rebuild interrupted between the copy and the record switch.
//!
//! One pass over one rawx: the meta2 reverse indexes give every chunk id recorded on
//! it (completed objects, every stored version, parts of multipart uploads in
//! progress); the rawx lists its complete chunk files page by page; a file that no
//! record names and that is older than the grace period is an orphan and is deleted.
//! The grace period protects writes in flight: their chunks are on the rawx before
//! meta2 commits the content (default one hour; a write never takes that long).

use crate::client::Client;
use crate::{Error, Result};
use std::collections::HashSet;
use std::time::Duration;
use tracing::Instrument;

/// Default age under which an unrecorded chunk is left alone.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
/// Most chunk files one pass looks at.
pub const MAX_LISTED: u64 = 20_000_000;
/// Most orphan ids and failures kept in a report.
pub const MAX_REPORTED: usize = 1000;
/// Chunk files asked for per listing page.
const PAGE: usize = 1000;

/// How a pass runs.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Unrecorded chunks younger than this are kept.
    pub grace: Duration,
    /// Find orphans without deleting them.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: DEFAULT_GRACE,
            dry_run: false,
        }
    }
}

/// What a pass found and did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GcReport {
    /// The rawx collected.
    pub rawx_id: String,
    /// Chunk files listed on the rawx.
    pub listed: u64,
    /// Of those, chunks a meta2 record names.
    pub recorded: u64,
    /// Unrecorded chunks kept because they are younger than the grace period.
    pub young: u64,
    /// Unrecorded chunks older than the grace period.
    pub orphans: u64,
    /// Bytes of those orphan files.
    pub orphan_bytes: u64,
    /// Orphans deleted (0 in a dry run).
    pub deleted: u64,
    /// The first orphan ids (at most [`MAX_REPORTED`]).
    pub orphan_ids: Vec<String>,
    /// Deletes that failed, with the reason (at most [`MAX_REPORTED`]).
    pub failures: Vec<String>,
}

impl Client {
    /// Runs one garbage-collection pass over the rawx `rawx_id`.
    pub async fn collect_garbage(&self, rawx_id: &str, opts: GcOptions) -> Result<GcReport> {
        let span = tracing::info_span!("collect_garbage", rawx = %rawx_id, dry_run = opts.dry_run);
        self.collect_garbage_in_span(rawx_id, opts)
            .instrument(span)
            .await
    }

    async fn collect_garbage_in_span(&self, rawx_id: &str, opts: GcOptions) -> Result<GcReport> {
        let services = self.list_services("rawx").await?;
        let svc = services
            .iter()
            .find(|s| s.info.as_ref().is_some_and(|i| i.id == rawx_id))
            .ok_or_else(|| Error::InvalidArgument(format!("no rawx {rawx_id:?} is registered")))?;
        if !svc.up {
            return Err(Error::Unavailable(format!(
                "rawx {rawx_id} is down: garbage collection needs it up"
            )));
        }
        let addr = svc
            .info
            .as_ref()
            .map(|i| i.addr.clone())
            .unwrap_or_default();
        // First the records, then the files: a chunk written in between is young.
        let (entries, capped) = crate::rebuild::list_all(&self.inner, rawx_id).await?;
        if capped {
            return Err(Error::Internal(format!(
                "rawx {rawx_id} has more than {} recorded chunks: too many for one pass",
                crate::rebuild::MAX_CHUNKS_PER_RUN
            )));
        }
        let recorded: HashSet<String> = entries
            .into_iter()
            .map(|(_, e)| e.chunk_id.to_ascii_uppercase())
            .collect();
        let now_ms = oxio_common::now_ms();
        let grace_ms = opts.grace.as_millis() as u64;
        let mut report = GcReport {
            rawx_id: rawx_id.to_string(),
            ..Default::default()
        };
        let mut after = String::new();
        loop {
            let page = self.inner.rawx.list_chunks(&addr, &after, PAGE).await?;
            for c in &page.chunks {
                report.listed += 1;
                if recorded.contains(&c.id) {
                    report.recorded += 1;
                    continue;
                }
                if now_ms.saturating_sub(c.mtime_ms) < grace_ms {
                    report.young += 1;
                    continue;
                }
                report.orphans += 1;
                report.orphan_bytes += c.bytes;
                if report.orphan_ids.len() < MAX_REPORTED {
                    report.orphan_ids.push(c.id.clone());
                }
                if opts.dry_run {
                    continue;
                }
                match self.inner.rawx.delete(&addr, &c.id).await {
                    Ok(()) => report.deleted += 1,
                    Err(e) => {
                        tracing::warn!(chunk = %c.id, error = %e, "orphan delete failed");
                        if report.failures.len() < MAX_REPORTED {
                            report.failures.push(format!("{}: {e}", c.id));
                        }
                    }
                }
            }
            match page.chunks.last() {
                Some(last) if page.truncated && report.listed < MAX_LISTED => {
                    after = last.id.clone();
                }
                _ => break,
            }
        }
        tracing::info!(
            listed = report.listed,
            recorded = report.recorded,
            young = report.young,
            orphans = report.orphans,
            deleted = report.deleted,
            "garbage collection pass done"
        );
        Ok(report)
    }
}
