//! Command-line options of `oxio bench` and their checked form, [`Plan`].

use super::error::{Error, Result};
use oxio_common::ByteSize;
use std::path::PathBuf;
use std::time::Duration;

/// Most concurrent requests.
pub const MAX_CONCURRENCY: usize = 1024;
/// Most measured operations in one run (`--count`, and the cap of a `--duration` run).
pub const MAX_OPS: u64 = 10_000_000;
/// Most objects prepared for `get`, `mixed` and `list`.
pub const MAX_OBJECTS: u64 = 1_000_000;
/// Largest object (the payload is held in memory once).
pub const MAX_SIZE_BYTES: u64 = 1 << 30;
/// Longest `--duration`.
pub use crate::units::MAX_DURATION;
/// Longest per-request `--timeout`.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// What each measured request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// PUT new objects (keys are not reused).
    Put,
    /// GET objects prepared beforehand, checking sizes (and some contents).
    Get,
    /// GETs and PUTs (overwrites) over the prepared objects, `--get-percent` GETs.
    Mixed,
    /// ListObjectsV2 pages of 1000 keys over the prepared keys.
    List,
}

impl Op {
    /// The lower-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Mixed => "mixed",
            Op::List => "list",
        }
    }
}

/// `oxio bench`: an S3 load generator for any S3 endpoint, or (`--local`) a storage
/// microbenchmark against one in-process rawx.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// S3 endpoint, e.g. http://127.0.0.1:6007.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,
    /// Access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key: Option<String>,
    /// Secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Region used in signatures.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Bucket to work in; created when missing (and then removed at the end).
    #[arg(long)]
    pub bucket: Option<String>,
    /// Operation to measure.
    #[arg(long, value_enum, default_value = "put")]
    pub op: Op,
    /// Object size (`4KiB`, `1MiB`, `100MB`, plain bytes).
    #[arg(long, default_value = "4KiB", value_parser = parse_size)]
    pub size: u64,
    /// Objects prepared before a get, mixed or list run (not measured).
    #[arg(long, default_value_t = 100)]
    pub objects: u64,
    /// Requests in flight at once (1 to 1024).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Run for this long (`30s`, `2m`, `500ms`); exclusive with --count.
    #[arg(long, value_parser = parse_duration, conflicts_with = "count", required_unless_present = "count")]
    pub duration: Option<Duration>,
    /// Run exactly this many operations; exclusive with --duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Percentage of GETs in a mixed run (the rest are PUTs).
    #[arg(long, default_value_t = 70, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub get_percent: u8,
    /// Give up on one request after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Keep the objects (and a bucket created by the run) at the end.
    #[arg(long)]
    pub keep: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// No live progress line on stderr (it is off anyway when stderr is not a tty).
    #[arg(long)]
    pub no_progress: bool,
    /// Drive one in-process rawx on --volume instead of an S3 endpoint.
    #[arg(long, requires = "volume")]
    pub local: bool,
    /// Volume folder of the in-process rawx (with --local).
    #[arg(long)]
    pub volume: Option<PathBuf>,
    /// With --local: the rawx reads and writes with O_DIRECT (no page cache).
    #[arg(long, requires = "local")]
    pub direct_io: bool,
}

/// When a measured phase stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this many operations.
    Count(u64),
    /// After this long, or [`MAX_OPS`] operations, whichever comes first.
    Duration(Duration),
}

impl Stop {
    /// Most operations this stop condition lets start.
    pub fn max_ops(self) -> u64 {
        match self {
            Stop::Count(n) => n,
            Stop::Duration(_) => MAX_OPS,
        }
    }
}

/// Where the load goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An S3 endpoint.
    S3 {
        /// Endpoint URL (http).
        endpoint: String,
        /// Access key id.
        access_key: String,
        /// Secret key.
        secret_key: String,
        /// Signing region.
        region: String,
        /// Bucket.
        bucket: String,
    },
    /// One rawx started in this process on this volume folder.
    Local {
        /// Volume folder.
        volume: PathBuf,
        /// O_DIRECT reads and writes.
        direct_io: bool,
    },
}

/// A checked benchmark description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Where the load goes.
    pub target: Target,
    /// The operation measured.
    pub op: Op,
    /// Object size in bytes.
    pub size_bytes: u64,
    /// Objects prepared (get, mixed, list).
    pub objects: u64,
    /// Requests in flight.
    pub concurrency: usize,
    /// When to stop.
    pub stop: Stop,
    /// GET share of a mixed run, in percent.
    pub get_percent: u8,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Keep what the run wrote.
    pub keep: bool,
    /// JSON output.
    pub json: bool,
    /// Live progress line.
    pub progress: bool,
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

fn required(value: &Option<String>, what: &str, env: &str) -> Result<String> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(usage(format!(
            "{what} is required: pass --{what} or set {env}"
        ))),
    }
}

impl BenchArgs {
    /// Checks the options against each other and against the limits; `stderr_is_tty`
    /// decides whether the progress line is shown.
    pub fn plan(&self, stderr_is_tty: bool) -> Result<Plan> {
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(usage(format!(
                "--concurrency {} out of range 1..={MAX_CONCURRENCY}",
                self.concurrency
            )));
        }
        if self.size > MAX_SIZE_BYTES {
            return Err(usage(format!(
                "--size {} above the limit {}",
                ByteSize(self.size),
                ByteSize(MAX_SIZE_BYTES)
            )));
        }
        let stop = match (self.count, self.duration) {
            (Some(n), None) if (1..=MAX_OPS).contains(&n) => Stop::Count(n),
            (Some(n), None) => {
                return Err(usage(format!("--count {n} out of range 1..={MAX_OPS}")))
            }
            (None, Some(d)) if !d.is_zero() && d <= MAX_DURATION => Stop::Duration(d),
            (None, Some(d)) => {
                return Err(usage(format!(
                    "--duration {d:?} out of range (above 0, at most 24h)"
                )))
            }
            _ => return Err(usage("give exactly one of --duration and --count")),
        };
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(usage("--timeout must be above 0 and at most 1h"));
        }
        let needs_objects = self.op != Op::Put;
        if needs_objects && !(1..=MAX_OBJECTS).contains(&self.objects) {
            return Err(usage(format!(
                "--objects {} out of range 1..={MAX_OBJECTS}",
                self.objects
            )));
        }
        let target = if self.local {
            let volume = self
                .volume
                .clone()
                .ok_or_else(|| usage("--local needs --volume DIR"))?;
            if !matches!(self.op, Op::Put | Op::Get) {
                return Err(usage("--local measures --op put or --op get only"));
            }
            Target::Local {
                volume,
                direct_io: self.direct_io,
            }
        } else {
            let bucket = match self.bucket.as_deref().map(str::trim) {
                Some(b) if !b.is_empty() => b.to_string(),
                _ => return Err(usage("--bucket is required with an S3 endpoint")),
            };
            if bucket.len() < 3 || bucket.len() > 63 {
                return Err(usage("--bucket must be 3 to 63 characters"));
            }
            Target::S3 {
                endpoint: required(&self.endpoint, "endpoint", "AWS_ENDPOINT_URL")?,
                access_key: required(&self.access_key, "access-key", "AWS_ACCESS_KEY_ID")?,
                secret_key: required(&self.secret_key, "secret-key", "AWS_SECRET_ACCESS_KEY")?,
                region: self.region.trim().to_string(),
                bucket,
            }
        };
        Ok(Plan {
            target,
            op: self.op,
            size_bytes: self.size,
            objects: if needs_objects { self.objects } else { 0 },
            concurrency: self.concurrency,
            stop,
            get_percent: self.get_percent,
            timeout: self.timeout,
            keep: self.keep,
            json: self.json,
            progress: !self.no_progress && stderr_is_tty,
        })
    }
}

/// Parses an `oxio_common::ByteSize` (`4KiB`, `1MiB`, `100MB`, bytes).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    text.parse::<ByteSize>()
        .map(|b| b.0)
        .map_err(|_| format!("{text:?} is not a size such as 4KiB, 1MiB or 100MB"))
}

pub use crate::units::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    const S3: [&str; 7] = [
        "bench",
        "--endpoint",
        "http://127.0.0.1:6007",
        "--access-key",
        "AK",
        "--secret-key",
        "SK",
    ];

    fn parse(extra: &[&str]) -> std::result::Result<BenchArgs, clap::Error> {
        let argv: Vec<&str> = S3.iter().chain(extra).copied().collect();
        Cli::try_parse_from(argv).map(|c| c.args)
    }

    #[test]
    fn parses_sizes_durations_and_ops() {
        let a = parse(&[
            "--bucket",
            "b01",
            "--op",
            "mixed",
            "--size",
            "1MiB",
            "--duration",
            "2m",
            "--concurrency",
            "64",
            "--objects",
            "500",
            "--json",
        ])
        .unwrap();
        let p = a.plan(true).unwrap();
        assert_eq!(p.op, Op::Mixed);
        assert_eq!(p.size_bytes, 1 << 20);
        assert_eq!(p.stop, Stop::Duration(Duration::from_secs(120)));
        assert_eq!((p.concurrency, p.objects, p.get_percent), (64, 500, 70));
        assert!(p.json && p.progress && !p.keep);
        match p.target {
            Target::S3 {
                endpoint, bucket, ..
            } => assert_eq!(
                (endpoint.as_str(), bucket.as_str()),
                ("http://127.0.0.1:6007", "b01")
            ),
            other => panic!("wrong target {other:?}"),
        }
        let p = parse(&[
            "--bucket",
            "b01",
            "--count",
            "200",
            "--size",
            "4KiB",
            "--no-progress",
        ])
        .unwrap()
        .plan(true)
        .unwrap();
        assert_eq!(
            (p.stop, p.size_bytes, p.op, p.objects),
            (Stop::Count(200), 4096, Op::Put, 0)
        );
        assert!(!p.progress, "--no-progress turns the line off");
        assert!(
            !parse(&["--bucket", "b01", "--count", "1"])
                .unwrap()
                .plan(false)
                .unwrap()
                .progress
        );
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("25h").is_err() && parse_duration("5d").is_err());
        assert!(parse_size("4XB").is_err());
    }

    #[test]
    fn rejects_bad_combinations() {
        // Neither or both of --duration and --count.
        assert!(parse(&["--bucket", "b01"]).is_err());
        assert!(parse(&["--bucket", "b01", "--count", "5", "--duration", "1s"]).is_err());
        let plan = |extra: &[&str]| parse(extra).unwrap().plan(false);
        assert!(matches!(
            plan(&["--bucket", "b01", "--count", "5", "--concurrency", "1025"]),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            plan(&["--bucket", "b01", "--count", "5", "--concurrency", "0"]),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            plan(&["--bucket", "b01", "--count", "0"]),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            plan(&["--bucket", "b01", "--count", "20000000"]),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            plan(&["--bucket", "b01", "--count", "5", "--size", "2GiB"]),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            plan(&[
                "--bucket",
                "b01",
                "--count",
                "5",
                "--op",
                "get",
                "--objects",
                "0"
            ]),
            Err(Error::Usage(_))
        ));
        assert!(matches!(plan(&["--count", "5"]), Err(Error::Usage(m)) if m.contains("bucket")));
        assert!(parse(&["--bucket", "b01", "--count", "5", "--get-percent", "101"]).is_err());
        // --local needs a volume and measures put or get only.
        assert!(parse(&["--local", "--count", "5"]).is_err());
        assert!(matches!(
            plan(&["--local", "--volume", "/tmp/v", "--count", "5", "--op", "list"]),
            Err(Error::Usage(_))
        ));
        let p = plan(&[
            "--local", "--volume", "/tmp/v", "--count", "5", "--op", "get",
        ])
        .unwrap();
        assert_eq!(
            p.target,
            Target::Local {
                volume: "/tmp/v".into(),
                direct_io: false,
            }
        );
    }
}
