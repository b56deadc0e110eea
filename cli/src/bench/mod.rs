//! `oxio bench`: a load generator for any S3 endpoint (PUT, GET, mixed, listing) and,
//! with `--local`, a storage microbenchmark against one in-process rawx. It reports
//! ops/s, MiB/s, HDR latency percentiles, errors by kind and the client's own CPU.
//!
//! Layout: [`args`] (options and their checked [`Plan`]), `driver` (the bounded load
//! loop), `s3` and `local` (the workloads), `http` (client and body checks),
//! `payload` (shared random data), `cpu` (CPU accounting), [`report`].

pub mod args;
mod cpu;
mod driver;
pub mod error;
mod http;
mod local;
mod payload;
pub mod report;
mod s3;

pub use args::{BenchArgs, Op, Plan, Stop, Target};
pub use error::{Error, Result};
pub use report::{Cleanup, Latency, OpFigures, Report};

use driver::Measured;
use std::io::IsTerminal;

/// Most error kinds named in a failed-phase message.
const ERROR_KINDS_SHOWN: usize = 3;

/// Checks `args` and runs the benchmark they describe.
pub async fn run(args: &BenchArgs) -> Result<Report> {
    let plan = args.plan(std::io::stderr().is_terminal())?;
    run_plan(&plan).await
}

/// Runs a checked plan.
pub async fn run_plan(plan: &Plan) -> Result<Report> {
    match &plan.target {
        Target::S3 {
            endpoint,
            access_key,
            secret_key,
            region,
            bucket,
        } => {
            let creds = rusty_s3::Credentials::new(access_key.clone(), secret_key.clone());
            s3::run(plan, endpoint, creds, region, bucket).await
        }
        Target::Local { volume, direct_io } => local::run(plan, volume, *direct_io).await,
    }
}

/// The report as `--json` or text asks.
pub fn render(report: &Report, json: bool) -> String {
    if json {
        report.to_json()
    } else {
        report.to_text()
    }
}

/// The error of a prepare phase that had failures.
fn prepare_failed(m: &Measured) -> Error {
    Error::Phase {
        phase: "prepare",
        failed: m.tally.total_errors(),
        total: m.issued,
        kinds: m.tally.top_errors(ERROR_KINDS_SHOWN),
    }
}
