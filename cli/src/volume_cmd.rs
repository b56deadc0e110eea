//! `oxio volume scrub`, `drain` and `repair-missing`: running a rawx's scrubber and
//! repairing what it reports, moving every chunk off a live rawx, and regenerating
//! the chunks puts left missing.

use crate::output::{Fields, Format, Rows};
use crate::units::parse_duration;
use anyhow::{Context, Result};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oxio_sdk::rebuild::{RebuildOptions, RebuildProgress, RebuildReport};
use oxio_sdk::scrub::{ScrubReport, ScrubStart};
use serde_json::json;
use std::time::Duration;

/// Most corrupt chunks printed by `volume scrub` (the rawx keeps up to 10,000).
const MAX_CORRUPT_SHOWN: usize = 10_000;

/// Volume repair commands: scrub (and repair), drain, repair-missing.
#[derive(Subcommand, Debug, PartialEq, Eq)]
pub enum VolumeRepairCmd {
    /// Start a scrub pass on a rawx (every chunk re-read and its checksums verified)
    /// and print the corrupt chunks it knows; with --wait, wait for the pass to end;
    /// with --repair, regenerate each corrupt chunk elsewhere from the other
    /// fragments or copies, update meta2 and delete the corrupt file.
    Scrub {
        /// Service id of the rawx (as in `oxio cluster list`).
        rawx_id: String,
        /// Wait for the pass to end, showing its progress.
        #[arg(long)]
        wait: bool,
        /// Repair the corrupt chunks once the pass has ended.
        #[arg(long, requires = "wait")]
        repair: bool,
        /// Longest wait for the pass.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        timeout: Duration,
        /// Chunks repaired at once (1 to 64).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: u16,
        /// No progress display (it is also off when stderr is not a terminal).
        #[arg(long)]
        no_progress: bool,
    },
    /// Move every chunk off a live rawx: lock its score at 0 (nothing new lands there;
    /// the lock stays), copy each chunk to another rawx (or regenerate it from the
    /// other fragments when it is unreadable), update meta2, delete the old chunk.
    /// Idempotent: run it again after a partial failure.
    Drain {
        /// Service id of the rawx (as in `oxio cluster list`).
        rawx_id: String,
        /// Chunks moved at once (1 to 64).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: u16,
        /// No progress bar (it is also off when stderr is not a terminal).
        #[arg(long)]
        no_progress: bool,
    },
    /// Regenerate the chunks missing from contents that were stored without every
    /// fragment or copy (a put that reached its write quorum while a rawx failed) and
    /// add them to meta2, for every container of the grid. Idempotent.
    RepairMissing {
        /// Chunks regenerated at once (1 to 64).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        concurrency: u16,
        /// No progress bar (it is also off when stderr is not a terminal).
        #[arg(long)]
        no_progress: bool,
    },
}

/// A repair or drain finished with chunks it could not handle: the rendered summary,
/// and why (exit status 4, as `volume rebuild`).
#[derive(Debug)]
pub struct VolumeIncomplete {
    /// The summary, printed on stdout.
    pub summary: String,
    /// Why, printed on stderr.
    pub message: String,
}

impl std::fmt::Display for VolumeIncomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for VolumeIncomplete {}

/// Runs one command.
pub async fn run(sdk: &oxio_sdk::Client, cmd: VolumeRepairCmd, f: Format) -> Result<String> {
    match cmd {
        VolumeRepairCmd::Scrub {
            rawx_id,
            wait,
            repair,
            timeout,
            concurrency,
            no_progress,
        } => {
            let before = sdk.scrub_status(&rawx_id).await?;
            let start = sdk.start_scrub(&rawx_id).await?;
            let already_running = start == ScrubStart::AlreadyRunning;
            let mut out = String::new();
            if already_running && f == Format::Table {
                out.push_str("a pass was already running or requested\n");
            }
            let status = if wait {
                let bar = chunk_bar(no_progress, f, "{spinner} [{elapsed_precise}] {msg}")?;
                let st = sdk
                    .wait_scrub_pass(&rawx_id, before.pass, timeout, |st| {
                        bar.set_message(format!(
                            "{}: {} chunks, {} checked, {} corrupt",
                            st.state,
                            st.checked_chunks,
                            indicatif::HumanBytes(st.checked_bytes),
                            st.corrupt_found
                        ));
                        bar.tick();
                    })
                    .await;
                bar.finish_and_clear();
                st?
            } else {
                sdk.scrub_status(&rawx_id).await?
            };
            // JSON and YAML: one document, the repair's figures under `repair`.
            let mut doc = scrub_doc(&rawx_id, &status, already_running);
            if f == Format::Table {
                out.push_str(&scrub_summary(&rawx_id, &status, f));
            }
            if !repair || status.corrupt.is_empty() {
                if f != Format::Table {
                    out = crate::output::render_document(&doc, f);
                }
                return Ok(out);
            }
            let bar = chunk_bar(no_progress, f, BAR_TEMPLATE)?;
            let report = sdk
                .repair_corrupt(&rawx_id, options(concurrency), |p| show(&bar, p))
                .await;
            bar.finish_and_clear();
            let report = report?;
            let mut fields = counts(Some(&rawx_id), &report.rebuild);
            fields.extend([
                ("corrupt_listed", json!(report.corrupt_listed)),
                ("unrecorded", json!(report.unrecorded.len())),
                ("deleted", json!(report.deleted)),
                ("delete_failures", json!(report.delete_failures)),
            ]);
            if f == Format::Table {
                out.push('\n');
                out.push_str(&summary(fields, &report.rebuild, f));
            } else {
                if let Some(o) = doc.as_object_mut() {
                    o.insert("repair".into(), summary_doc(fields, &report.rebuild));
                }
                out = crate::output::render_document(&doc, f);
            }
            if report.is_complete() {
                return Ok(out);
            }
            Err(VolumeIncomplete {
                message: format!(
                    "{} of {} corrupt chunks of {rawx_id} could not be repaired; run the command again",
                    report.rebuild.progress.failed, report.rebuild.progress.total
                ),
                summary: out,
            }
            .into())
        }
        VolumeRepairCmd::Drain {
            rawx_id,
            concurrency,
            no_progress,
        } => {
            let bar = chunk_bar(no_progress, f, BAR_TEMPLATE)?;
            let report = sdk
                .drain_rawx(&rawx_id, options(concurrency), |p| show(&bar, p))
                .await;
            bar.finish_and_clear();
            let report = report?;
            let mut fields = counts(Some(&rawx_id), &report.rebuild);
            fields.extend([
                ("copied", json!(report.copied)),
                ("regenerated", json!(report.regenerated)),
                ("deleted", json!(report.deleted)),
                ("delete_failures", json!(report.delete_failures)),
            ]);
            let out = summary(fields, &report.rebuild, f);
            if report.is_complete() {
                return Ok(out);
            }
            let mut message = format!(
                "{} of {} chunks of {rawx_id} could not be moved; run the command again",
                report.rebuild.progress.failed, report.rebuild.progress.total
            );
            if report.rebuild.more_remaining {
                message.push_str(" (this run stopped at its chunk limit)");
            }
            Err(VolumeIncomplete {
                summary: out,
                message,
            }
            .into())
        }
        VolumeRepairCmd::RepairMissing {
            concurrency,
            no_progress,
        } => {
            let bar = chunk_bar(no_progress, f, BAR_TEMPLATE)?;
            let report = sdk
                .complete_missing(options(concurrency), |p| show(&bar, p))
                .await;
            bar.finish_and_clear();
            let report = report?;
            let out = summary(counts(None, &report), &report, f);
            if report.is_complete() {
                return Ok(out);
            }
            Err(VolumeIncomplete {
                summary: out,
                message: format!(
                    "{} of {} missing chunks could not be regenerated; run the command again",
                    report.progress.failed, report.progress.total
                ),
            }
            .into())
        }
    }
}

const BAR_TEMPLATE: &str =
    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} chunks  {per_sec}  ETA {eta}  {msg}";

fn options(concurrency: u16) -> RebuildOptions {
    RebuildOptions {
        concurrency: usize::from(concurrency),
    }
}

/// A progress display on stderr, hidden unless it is a terminal and the output a table.
fn chunk_bar(hidden: bool, f: Format, template: &str) -> Result<ProgressBar> {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if hidden || f != Format::Table || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(ProgressStyle::with_template(template).context("progress bar template")?);
    Ok(bar)
}

fn show(bar: &ProgressBar, p: RebuildProgress) {
    bar.set_length(p.total);
    bar.set_position(p.done + p.skipped + p.failed);
    bar.set_message(format!("skipped {} failed {}", p.skipped, p.failed));
}

fn counts(rawx_id: Option<&str>, r: &RebuildReport) -> Vec<(&'static str, serde_json::Value)> {
    let p = &r.progress;
    let mut out = Vec::new();
    if let Some(id) = rawx_id {
        out.push(("rawx_id", json!(id)));
    }
    out.extend([
        ("total", json!(p.total)),
        ("done", json!(p.done)),
        ("skipped", json!(p.skipped)),
        ("failed", json!(p.failed)),
        ("bytes", json!(p.bytes)),
        ("more_remaining", json!(r.more_remaining)),
    ]);
    out
}

/// The counts, then the failures (a table, or a `failures` list in JSON / YAML).
pub fn summary(
    fields: Vec<(&'static str, serde_json::Value)>,
    r: &RebuildReport,
    f: Format,
) -> String {
    if f != Format::Table {
        return crate::output::render_document(&summary_doc(fields, r), f);
    }
    let mut out = Fields::new(fields).render(f);
    if !r.failures.is_empty() {
        let mut rows = Rows::new(&["cid", "key", "chunk_id", "reason"]);
        for x in &r.failures {
            rows.push(vec![
                json!(x.cid),
                json!(x.key),
                json!(x.chunk_id),
                json!(x.reason),
            ]);
        }
        out.push('\n');
        out.push_str(&rows.render(f));
        if r.failures_omitted > 0 {
            out.push_str(&format!("\n... and {} more failures", r.failures_omitted));
        }
    }
    out
}

/// The counts and the failures as one JSON document.
fn summary_doc(
    mut fields: Vec<(&'static str, serde_json::Value)>,
    r: &RebuildReport,
) -> serde_json::Value {
    let failures: Vec<serde_json::Value> = r
        .failures
        .iter()
        .map(|x| json!({"cid": x.cid, "key": x.key, "chunk_id": x.chunk_id, "reason": x.reason}))
        .collect();
    fields.push(("failures", json!(failures)));
    fields.push(("failures_omitted", json!(r.failures_omitted)));
    serde_json::Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// The scrubber's report as a JSON document, with the rawx id and whether a pass
/// was already running when this one was asked for.
fn scrub_doc(rawx_id: &str, st: &ScrubReport, already_running: bool) -> serde_json::Value {
    let mut doc = serde_json::to_value(st).unwrap_or_default();
    if let Some(o) = doc.as_object_mut() {
        o.insert("rawx_id".into(), json!(rawx_id));
        o.insert("already_running".into(), json!(already_running));
    }
    doc
}

/// The scrubber's figures, then its corrupt chunks.
fn scrub_summary(rawx_id: &str, st: &ScrubReport, f: Format) -> String {
    if f != Format::Table {
        return crate::output::render_document(&scrub_doc(rawx_id, st, false), f);
    }
    let mut out = Fields::new(vec![
        ("rawx_id", json!(rawx_id)),
        ("state", json!(st.state)),
        ("pass", json!(st.pass)),
        ("checked_chunks", json!(st.checked_chunks)),
        ("checked_bytes", json!(st.checked_bytes)),
        ("corrupt_found", json!(st.corrupt_found)),
        ("corrupt_listed", json!(st.corrupt.len())),
    ])
    .render(f);
    if !st.corrupt.is_empty() {
        let mut rows = Rows::new(&["chunk_id", "container", "position", "error", "found_ms"]);
        for c in st.corrupt.iter().take(MAX_CORRUPT_SHOWN) {
            rows.push(vec![
                json!(c.chunk_id),
                json!(c.container),
                json!(c.position),
                json!(c.error),
                json!(c.found_ms),
            ]);
        }
        out.push('\n');
        out.push_str(&rows.render(f));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        cmd: VolumeRepairCmd,
    }

    #[test]
    fn commands_parse() {
        let t = T::try_parse_from(["t", "scrub", "rawx-1", "--wait", "--repair"]).unwrap();
        assert!(matches!(
            t.cmd,
            VolumeRepairCmd::Scrub {
                wait: true,
                repair: true,
                concurrency: 4,
                ..
            }
        ));
        assert!(T::try_parse_from(["t", "scrub", "rawx-1", "--repair"]).is_err());
        let t = T::try_parse_from(["t", "drain", "rawx-1", "--concurrency", "8"]).unwrap();
        assert_eq!(
            t.cmd,
            VolumeRepairCmd::Drain {
                rawx_id: "rawx-1".into(),
                concurrency: 8,
                no_progress: false
            }
        );
        assert!(T::try_parse_from(["t", "drain", "r", "--concurrency", "0"]).is_err());
        let t = T::try_parse_from(["t", "repair-missing", "--no-progress"]).unwrap();
        assert_eq!(
            t.cmd,
            VolumeRepairCmd::RepairMissing {
                concurrency: 4,
                no_progress: true
            }
        );
    }

    #[test]
    fn summaries_render() {
        let st = ScrubReport {
            state: "idle".into(),
            pass: 3,
            corrupt: vec![oxio_sdk::scrub::ScrubCorrupt {
                chunk_id: "AB".into(),
                error: "checksum mismatch".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let table = scrub_summary("rawx-1", &st, Format::Table);
        assert!(table.contains("AB") && table.contains("checksum mismatch"));
        let doc: serde_json::Value =
            serde_json::from_str(&scrub_summary("rawx-1", &st, Format::Json)).unwrap();
        assert_eq!(doc["rawx_id"], "rawx-1");
        assert_eq!(doc["corrupt"][0]["chunk_id"], "AB");

        let mut r = RebuildReport::default();
        r.progress.total = 2;
        r.progress.failed = 1;
        r.failures.push(oxio_sdk::rebuild::RebuildFailure {
            cid: "C".into(),
            key: "k".into(),
            chunk_id: "X".into(),
            reason: "boom".into(),
        });
        let doc: serde_json::Value =
            serde_json::from_str(&summary(counts(Some("rawx-1"), &r), &r, Format::Json)).unwrap();
        assert_eq!(doc["failed"], 1);
        assert_eq!(doc["failures"][0]["reason"], "boom");
        assert!(summary(counts(Some("rawx-1"), &r), &r, Format::Table).contains("boom"));
    }
}
