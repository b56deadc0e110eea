//! Repairing the corrupt chunks a rawx's scrubber reports.
//!
//! The rawx's `GET /scrub` list names the corrupt chunk ids; the meta2 reverse indexes
//! of every group give the record of each (as for a rebuild, filtered to those ids).
//! Each is regenerated on another rawx by the rebuild machinery with the corrupt copy
//! counted as lost (EC: decoded from the other fragments; replicated: another copy),
//! the record is switched with `ReplaceChunk`, and only then is the corrupt file
//! deleted from the rawx, so a failure at any step leaves the object readable and the
//! next run starts over. A corrupt chunk no record names is garbage: it is left to
//! `collect_garbage` (and reported).

use crate::client::Client;
use crate::rebuild::{self, Outcome, RebuildOptions, RebuildReport, MAX_CONCURRENCY};
use crate::{Error, Result};
use futures::StreamExt;
use std::collections::HashSet;

/// Most unrecorded ids and delete failures kept in a report.
pub const MAX_REPORTED: usize = 100;

/// What a repair found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// The rawx repaired.
    pub rawx_id: String,
    /// Corrupt chunks the scrubber listed.
    pub corrupt_listed: u64,
    /// The rebuild of those a record names (`progress.total` of them).
    pub rebuild: RebuildReport,
    /// Corrupt chunks no record names (garbage), at most [`MAX_REPORTED`].
    pub unrecorded: Vec<String>,
    /// Corrupt files deleted after their record moved.
    pub deleted: u64,
    /// Corrupt files whose delete failed (left for garbage collection), with why.
    pub delete_failures: Vec<String>,
}

impl RepairReport {
    /// Whether every recorded corrupt chunk was repaired or skipped.
    pub fn is_complete(&self) -> bool {
        self.rebuild.is_complete()
    }
}

impl Client {
    /// Repairs every corrupt chunk the scrubber of `rawx_id` lists: regenerated
    /// elsewhere, record switched, corrupt file deleted. `progress` is called once the
    /// chunks are found and after each one.
    #[tracing::instrument(level = "info", skip(self, options, progress))]
    pub async fn repair_corrupt(
        &self,
        rawx_id: &str,
        options: RebuildOptions,
        progress: impl Fn(rebuild::RebuildProgress),
    ) -> Result<RepairReport> {
        if !(1..=MAX_CONCURRENCY).contains(&options.concurrency) {
            return Err(Error::InvalidArgument(format!(
                "concurrency must be 1 to {MAX_CONCURRENCY}"
            )));
        }
        let addr = self.rawx_addr_up(rawx_id).await?;
        let status = crate::scrub::scrub_status_at(&addr).await?;
        let corrupt: HashSet<String> = status
            .corrupt
            .iter()
            .map(|c| c.chunk_id.to_ascii_uppercase())
            .collect();
        let mut report = RepairReport {
            rawx_id: rawx_id.to_string(),
            corrupt_listed: corrupt.len() as u64,
            ..Default::default()
        };
        if corrupt.is_empty() {
            progress(report.rebuild.progress);
            return Ok(report);
        }
        let inner = self.shared().clone();
        let (all, more) = rebuild::list_all(&inner, rawx_id).await?;
        report.rebuild.more_remaining = more;
        let work: Vec<_> = all
            .into_iter()
            .filter(|(_, e)| corrupt.contains(&e.chunk_id.to_ascii_uppercase()))
            .collect();
        let recorded: HashSet<String> = work
            .iter()
            .map(|(_, e)| e.chunk_id.to_ascii_uppercase())
            .collect();
        let mut unrecorded: Vec<String> = corrupt.difference(&recorded).cloned().collect();
        unrecorded.sort();
        unrecorded.truncate(MAX_REPORTED);
        report.unrecorded = unrecorded;
        report.rebuild.progress.total = work.len() as u64;
        tracing::info!(
            rawx = rawx_id,
            corrupt = corrupt.len(),
            recorded = work.len(),
            "repair listed"
        );
        progress(report.rebuild.progress);
        let mut results = futures::stream::iter(work)
            .map(|(group, entry)| {
                let inner = inner.clone();
                let addr = addr.clone();
                async move {
                    let outcome = rebuild::rebuild_one(&inner, group, rawx_id, &entry).await;
                    // The corrupt file goes only once no record names it.
                    let deleted = match outcome {
                        Outcome::Done(_) => Some(inner.rawx.delete(&addr, &entry.chunk_id).await),
                        _ => None,
                    };
                    (entry, outcome, deleted)
                }
            })
            .buffer_unordered(options.concurrency);
        while let Some((entry, outcome, deleted)) = results.next().await {
            note_delete(
                deleted,
                &entry.chunk_id,
                &mut report.deleted,
                &mut report.delete_failures,
            );
            report.rebuild.record(&entry, outcome);
            progress(report.rebuild.progress);
        }
        tracing::info!(
            rawx = rawx_id,
            repaired = report.rebuild.progress.done,
            failed = report.rebuild.progress.failed,
            deleted = report.deleted,
            "repair finished"
        );
        Ok(report)
    }
}

/// Counts the outcome of deleting an old copy after its record moved (`None`: no
/// delete was tried): a success in `deleted`, a failure with its reason in `failures`
/// (at most [`MAX_REPORTED`]).
pub(crate) fn note_delete(
    result: Option<Result<()>>,
    chunk_id: &str,
    deleted: &mut u64,
    failures: &mut Vec<String>,
) {
    match result {
        Some(Ok(())) => *deleted += 1,
        Some(Err(e)) => {
            tracing::warn!(chunk = %chunk_id, error = %e, "old chunk delete failed");
            if failures.len() < MAX_REPORTED {
                failures.push(format!("{chunk_id}: {e}"));
            }
        }
        None => {}
    }
}
