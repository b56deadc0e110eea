//! The TOML file `oxiod run` reads: which roles this host runs and how.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// One host's services.
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostConfig {
    /// Conscience addresses every service reports to.
    pub conscience_addrs: Vec<String>,
    /// Directory node addresses clients start from.
    pub directory_addrs: Vec<String>,
    /// Run a conscience here.
    pub conscience: Option<ConscienceRole>,
    /// Run a directory node here.
    pub directory: Option<DirectoryRole>,
    /// Rawx services here, one per volume.
    pub rawx: Vec<RawxRole>,
    /// Run an S3 gateway here.
    pub s3: Option<S3Role>,
    /// Time between two heartbeats of every service of this host, e.g. "1s"
    /// (default 1 s). The conscience's `service-timeout` must be longer.
    pub heartbeat_interval: Option<String>,
    /// Folder for this host's local-read sockets, e.g. "/run/oxio": each rawx binds
    /// one there and the S3 gateway reads their chunks from the files instead of
    /// over TCP (the gateway must be able to open the sockets: same user or group).
    /// Unset: no local reads.
    pub local_read_dir: Option<PathBuf>,
    /// With a local-read folder, the S3 gateway also writes new chunks of this host's
    /// rawx into their files itself, through each rawx's local-write socket there
    /// (default true).
    #[serde(default = "local_writes_default")]
    pub local_writes: bool,
}

fn local_writes_default() -> bool {
    true
}

/// `[conscience]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConscienceRole {
    /// Listen address.
    pub listen: SocketAddr,
    /// Where locks persist.
    pub data_dir: PathBuf,
    /// Where `/metrics` is served (HTTP); none when unset.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Lock every service at this score when it registers for the first time
    /// (an operator unlocks it once checked).
    #[serde(default)]
    pub lock_new_services: Option<u32>,
    /// Extra stats each service type's score expression may use, e.g.
    /// `rawx = ["chunks"]`.
    #[serde(default)]
    pub extra_stats: std::collections::HashMap<String, Vec<String>>,
    /// Score expression per service type (`default` for the others), e.g.
    /// `rawx = "root(3, cpu * io * space)"`; see `docs/ARCHITECTURE.md`.
    #[serde(default)]
    pub expressions: std::collections::HashMap<String, String>,
    /// A service silent for longer scores 0 and is shown down, e.g. "5s" (default).
    #[serde(default)]
    pub service_timeout: Option<String>,
    /// Largest rise of a score per heartbeat, 1..=100 (default 10); drops are
    /// immediate.
    #[serde(default)]
    pub score_rise_step: Option<i32>,
}

/// `[directory]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DirectoryRole {
    /// Raft node id.
    pub node_id: u64,
    /// Listen address.
    pub listen: SocketAddr,
    /// RocksDB folder.
    pub data_dir: PathBuf,
    /// Location of the node.
    pub location: String,
    /// Create a single-node directory when empty.
    #[serde(default)]
    pub bootstrap_single: bool,
    /// meta1 groups created by a single-node bootstrap.
    #[serde(default = "default_groups")]
    pub meta1_groups: u32,
    /// meta2 groups created by a single-node bootstrap.
    #[serde(default = "default_groups")]
    pub meta2_groups: u32,
    /// Where `/metrics` is served (HTTP); none when unset.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Time between two checks for directory nodes that joined and lead no meta2
    /// group yet, e.g. "10s" (the default); "0s" turns automatic growth off.
    #[serde(default)]
    pub auto_grow_interval: Option<String>,
}

impl DirectoryRole {
    /// See [`DirectoryRole::auto_grow_interval`] (the field).
    pub fn auto_grow(&self) -> Result<std::time::Duration> {
        match &self.auto_grow_interval {
            None => Ok(oxio_directory::config::DEFAULT_AUTO_GROW_INTERVAL),
            Some(t) => crate::units::parse_duration(t).map_err(|e| {
                anyhow::anyhow!(
                    "[directory] auto-grow-interval {t:?}: {e} (write it like \"10s\"; \"0s\" turns it off)"
                )
            }),
        }
    }
}

fn default_groups() -> u32 {
    4
}

/// `[[rawx]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawxRole {
    /// Service id.
    pub id: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// Volume folder.
    pub volume: PathBuf,
    /// Location (site.rack.host.volume).
    pub location: String,
    /// Worker threads (0 = one per core).
    #[serde(default)]
    pub workers: usize,
    /// Scrubber read rate in bytes per second (0 turns it off; default 20 MiB/s).
    #[serde(default)]
    pub scrub_rate_bytes_per_s: Option<u64>,
    /// Seconds between two scrub passes (default one day).
    #[serde(default)]
    pub scrub_interval_s: Option<u64>,
    /// Most bytes this volume holds, e.g. "500GiB" (default: the whole file system).
    /// The `space` score then counts the free share of this capacity.
    #[serde(default)]
    pub capacity: Option<String>,
    /// Read and write chunk files with O_DIRECT (the file system must support it).
    #[serde(default)]
    pub direct_io: bool,
    /// Write chunk files with O_DIRECT, read them through the page cache (default
    /// true; a file system without O_DIRECT falls back to the page cache with a
    /// warning).
    #[serde(default = "direct_writes_default")]
    pub direct_writes: bool,
    /// I/O driver: `auto` (io_uring when the kernel allows it, else polling; the
    /// default), `io-uring` (fail to start without it) or `polling`.
    #[serde(default)]
    pub driver: RawxDriver,
}

fn direct_writes_default() -> bool {
    oxio_rawx::config::DEFAULT_DIRECT_WRITES
}

/// `[[rawx]] driver`
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RawxDriver {
    /// io_uring when allowed, polling otherwise.
    #[default]
    Auto,
    /// io_uring only.
    IoUring,
    /// epoll polling.
    Polling,
}

impl From<RawxDriver> for oxio_rawx::Driver {
    fn from(d: RawxDriver) -> Self {
        match d {
            RawxDriver::Auto => oxio_rawx::Driver::Auto,
            RawxDriver::IoUring => oxio_rawx::Driver::IoUring,
            RawxDriver::Polling => oxio_rawx::Driver::Polling,
        }
    }
}

/// `[s3]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct S3Role {
    /// Listen address.
    pub listen: SocketAddr,
    /// Region reported to clients.
    #[serde(default = "default_region")]
    pub region: String,
    /// `x-amz-storage-class` → storage policy name ("" = bucket default and size
    /// rule), merged over the gateway's defaults (`[s3.storage-classes]`).
    #[serde(default)]
    pub storage_classes: std::collections::HashMap<String, String>,
    /// The grid's default policy for chunked objects when neither the request, the
    /// bucket nor the size rule picks one (default EC42).
    #[serde(default)]
    pub policy: Option<String>,
    /// Size rule: objects whose length is known and under `small-object-max` (but
    /// not inline) get this policy (default THREECOPIES; "" turns the rule off).
    #[serde(default)]
    pub small_object_policy: Option<String>,
    /// Bound of the size rule, e.g. "256KiB" (the default).
    #[serde(default)]
    pub small_object_max: Option<String>,
    /// Longest wait for one step of a chunk transfer before a read decodes around
    /// that fragment or a write goes on without it, e.g. "5s" (the default).
    #[serde(default)]
    pub fragment_deadline: Option<String>,
}

/// Parses a duration setting ("1s", "500ms", "2m"), naming the key when it is wrong.
fn duration_setting(key: &str, text: &str) -> Result<std::time::Duration> {
    match crate::units::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => bail!("{key} must be above 0"),
        Err(e) => bail!("{key} {text:?}: {e} (write it like \"1s\" or \"500ms\")"),
    }
}

/// Parses a policy setting, naming the key when it is wrong.
fn policy_setting(key: &str, text: &str) -> Result<oxio_common::StoragePolicy> {
    text.parse::<oxio_common::StoragePolicy>().map_err(|e| {
        anyhow::anyhow!(
            "{key} {text:?}: {e} (SINGLE, TWOCOPIES, THREECOPIES or EC<k><m> such as EC42)"
        )
    })
}

fn default_region() -> String {
    "us-east-1".to_string()
}

impl HostConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let cfg: HostConfig =
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks fields against each other.
    pub fn validate(&self) -> Result<()> {
        if self.conscience.is_none()
            && self.directory.is_none()
            && self.rawx.is_empty()
            && self.s3.is_none()
        {
            bail!("the config runs no service: add a [conscience], [directory], [[rawx]] or [s3] section");
        }
        if self.conscience_addrs.is_empty()
            && (self.directory.is_some() || !self.rawx.is_empty() || self.s3.is_some())
        {
            bail!("conscience-addrs is empty: list the conscience address(es) services report to");
        }
        if self.s3.is_some() && self.directory_addrs.is_empty() {
            bail!("[s3] needs directory-addrs: list at least one directory node address");
        }
        for r in &self.rawx {
            r.location
                .parse::<oxio_common::Location>()
                .with_context(|| format!("rawx {}", r.id))?;
            r.capacity_bytes()?;
            if let Some(dir) = &self.local_read_dir {
                let addr = r.listen.to_string();
                oxio_common::local_read::bindable_socket_path(dir, &addr)
                    .and_then(|_| oxio_common::local_write::bindable_socket_path(dir, &addr))
                    .map_err(|e| anyhow::anyhow!("local-read-dir, rawx {}: {e}", r.id))?;
            }
        }
        if let Some(d) = &self.directory {
            d.auto_grow()?;
        }
        let heartbeat = self.heartbeat()?;
        if let Some(c) = &self.conscience {
            let cc = c.conscience_config(None)?;
            if cc.service_timeout <= heartbeat {
                bail!(
                    "[conscience] service-timeout ({:?}) must be longer than heartbeat-interval ({heartbeat:?})",
                    cc.service_timeout
                );
            }
            cc.validate().context("[conscience]")?;
        }
        if let Some(s) = &self.s3 {
            s.apply_policies(&mut oxio_sdk::ClientConfig::new(Vec::new(), Vec::new()))?;
        }
        Ok(())
    }

    /// The heartbeat period of this host's services (default 1 s).
    pub fn heartbeat(&self) -> Result<std::time::Duration> {
        match &self.heartbeat_interval {
            None => Ok(crate::host::HEARTBEAT),
            Some(t) => duration_setting("heartbeat-interval", t),
        }
    }
}

impl ConscienceRole {
    /// The conscience's settings (`listen` as given, `metrics_listen` overridable).
    pub fn conscience_config(
        &self,
        metrics_listen: Option<SocketAddr>,
    ) -> Result<oxio_conscience::ConscienceConfig> {
        let mut c = oxio_conscience::ConscienceConfig {
            listen: self.listen,
            data_dir: Some(self.data_dir.clone()),
            lock_new_services: self.lock_new_services,
            metrics_listen: metrics_listen.or(self.metrics_listen),
            extra_stats: self.extra_stats.clone(),
            expressions: self.expressions.clone(),
            ..Default::default()
        };
        if let Some(t) = &self.service_timeout {
            c.service_timeout = duration_setting("[conscience] service-timeout", t)?;
        }
        if let Some(step) = self.score_rise_step {
            c.score_rise_step = step;
        }
        Ok(c)
    }
}

impl S3Role {
    /// Applies the grid default policy and the size rule to an sdk config.
    pub fn apply_policies(&self, sdk: &mut oxio_sdk::ClientConfig) -> Result<()> {
        if let Some(p) = &self.policy {
            sdk.policy = policy_setting("[s3] policy", p)?;
        }
        if let Some(d) = &self.fragment_deadline {
            sdk.fragment_deadline = duration_setting("[s3] fragment-deadline", d)?;
        }
        let (mut max, mut small) = sdk.small_policy.unwrap_or((
            oxio_sdk::policy::DEFAULT_SMALL_THRESHOLD,
            oxio_sdk::policy::DEFAULT_SMALL_POLICY,
        ));
        if let Some(text) = &self.small_object_max {
            max = match text.parse::<oxio_common::ByteSize>() {
                Ok(size) => size.0,
                Err(e) => bail!("[s3] small-object-max {text:?}: {e} (write it like \"256KiB\")"),
            };
        }
        match self.small_object_policy.as_deref() {
            Some("") => {
                sdk.small_policy = None;
                return Ok(());
            }
            Some(p) => small = policy_setting("[s3] small-object-policy", p)?,
            None => {}
        }
        sdk.small_policy = Some((max, small));
        Ok(())
    }
}

impl RawxRole {
    /// The `capacity` in bytes, if set; an error says how to write it.
    pub fn capacity_bytes(&self) -> Result<Option<u64>> {
        let Some(text) = &self.capacity else {
            return Ok(None);
        };
        match text.parse::<oxio_common::ByteSize>() {
            Ok(size) if size.0 > 0 => Ok(Some(size.0)),
            Ok(_) => bail!("rawx {}: capacity must be above 0", self.id),
            Err(e) => bail!(
                "rawx {}: capacity {text:?}: {e} (write it like \"500GiB\")",
                self.id
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_host_file() {
        let cfg: HostConfig = toml::from_str(
            r#"
conscience-addrs = ["127.0.0.1:6000"]
directory-addrs = ["127.0.0.1:6001"]
[conscience]
listen = "127.0.0.1:6000"
data-dir = "/tmp/c"
lock-new-services = 0
extra-stats = { rawx = ["chunks"] }
[directory]
node-id = 1
listen = "127.0.0.1:6001"
data-dir = "/tmp/d"
location = "s.r.h.meta"
metrics-listen = "127.0.0.1:6021"
[[rawx]]
id = "rawx-0"
listen = "127.0.0.1:6200"
volume = "/tmp/v0"
location = "s.r.h.v0"
scrub-rate-bytes-per-s = 0
capacity = "2GiB"
"#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.rawx.len(), 1);
        assert_eq!(cfg.rawx[0].scrub_rate_bytes_per_s, Some(0));
        assert_eq!(cfg.rawx[0].capacity_bytes().unwrap(), Some(2 << 30));
        let c = cfg.conscience.as_ref().unwrap();
        assert_eq!(c.lock_new_services, Some(0));
        let d = cfg.directory.as_ref().unwrap();
        assert_eq!(d.metrics_listen, Some("127.0.0.1:6021".parse().unwrap()));
        assert_eq!(c.extra_stats["rawx"], vec!["chunks".to_string()]);
        let mut bad = cfg;
        bad.rawx[0].capacity = Some("lots".into());
        assert!(bad.validate().unwrap_err().to_string().contains("capacity"));
        assert!(toml::from_str::<HostConfig>("bogus = 1").is_err());
        let empty = HostConfig::default();
        assert!(empty
            .validate()
            .unwrap_err()
            .to_string()
            .contains("runs no service"));
    }

    #[test]
    fn local_read_dir_is_settable_and_checked() {
        let text = |dir: &str| {
            format!(
                r#"
conscience-addrs = ["127.0.0.1:6000"]
local-read-dir = "{dir}"
[[rawx]]
id = "rawx-0"
listen = "127.0.0.1:6200"
volume = "/tmp/v0"
location = "s.r.h.v0"
"#
            )
        };
        let cfg: HostConfig = toml::from_str(&text("/run/oxio")).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.local_read_dir.as_deref(), Some(Path::new("/run/oxio")));
        assert!(cfg.local_writes, "local writes on by default");
        let off: HostConfig =
            toml::from_str(&text("/run/oxio").replacen("\n", "\nlocal-writes = false\n", 1))
                .unwrap();
        assert!(!off.local_writes);
        let long = format!("/run/{}", "x".repeat(100));
        let cfg: HostConfig = toml::from_str(&text(&long)).unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("local-read-dir") && err.contains("shorter"),
            "{err}"
        );
    }

    #[test]
    fn scoring_timing_policies_and_rawx_io_are_settable() {
        let cfg: HostConfig = toml::from_str(
            r#"
conscience-addrs = ["127.0.0.1:6000"]
directory-addrs = ["127.0.0.1:6001"]
heartbeat-interval = "500ms"
[conscience]
listen = "127.0.0.1:6000"
data-dir = "/tmp/c"
service-timeout = "3s"
score-rise-step = 25
extra-stats = { rawx = ["chunks"] }
expressions = { rawx = "if(chunks > 1000, 10, space)", default = "space" }
[[rawx]]
id = "rawx-0"
listen = "127.0.0.1:6200"
volume = "/tmp/v0"
location = "s.r.h.v0"
direct-io = true
direct-writes = false
driver = "polling"
[s3]
listen = "127.0.0.1:6007"
policy = "EC84"
small-object-policy = "TWOCOPIES"
small-object-max = "1MiB"
fragment-deadline = "2s"
"#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.heartbeat().unwrap(),
            std::time::Duration::from_millis(500)
        );
        let c = cfg
            .conscience
            .as_ref()
            .unwrap()
            .conscience_config(None)
            .unwrap();
        assert_eq!(c.service_timeout, std::time::Duration::from_secs(3));
        assert_eq!(c.score_rise_step, 25);
        assert_eq!(c.expressions["default"], "space");
        assert!(cfg.rawx[0].direct_io);
        assert!(!cfg.rawx[0].direct_writes);
        assert_eq!(cfg.rawx[0].driver, RawxDriver::Polling);
        let mut sdk = oxio_sdk::ClientConfig::new(Vec::new(), Vec::new());
        cfg.s3.as_ref().unwrap().apply_policies(&mut sdk).unwrap();
        assert_eq!(sdk.policy.to_string(), "EC84");
        let (max, small) = sdk.small_policy.unwrap();
        assert_eq!((max, small.to_string().as_str()), (1 << 20, "TWOCOPIES"));
        assert_eq!(sdk.fragment_deadline, std::time::Duration::from_secs(2));

        let with = |extra: &str| -> String {
            let text =
                format!("conscience-addrs = [\"a:1\"]\ndirectory-addrs = [\"a:2\"]\n{extra}");
            match toml::from_str::<HostConfig>(&text) {
                Ok(cfg) => cfg
                    .validate()
                    .map(|_| String::new())
                    .unwrap_or_else(|e| format!("{e:#}")),
                Err(e) => e.to_string(),
            }
        };
        let conscience = "[conscience]\nlisten = \"127.0.0.1:6000\"\ndata-dir = \"/tmp/c\"\n";
        let e = with(&format!(
            "{conscience}expressions = {{ rawx = \"cpu * spcae\" }}\n"
        ));
        assert!(e.contains("spcae") && e.contains("at byte 6"), "{e}");
        let e = with(&format!("{conscience}service-timeout = \"1s\"\n"));
        assert!(e.contains("longer than heartbeat-interval"), "{e}");
        let e = with(&format!("{conscience}score-rise-step = 0\n"));
        assert!(e.contains("score_rise_step"), "{e}");
        let e = with("heartbeat-interval = \"soon\"\n[s3]\nlisten = \"127.0.0.1:1\"\n");
        assert!(e.contains("heartbeat-interval"), "{e}");
        let e = with("[s3]\nlisten = \"127.0.0.1:1\"\npolicy = \"EC99x\"\n");
        assert!(e.contains("[s3] policy"), "{e}");
        let e = with("[s3]\nlisten = \"127.0.0.1:1\"\nsmall-object-max = \"big\"\n");
        assert!(e.contains("small-object-max"), "{e}");
        let dir = "[directory]\nnode-id = 1\nlisten = \"127.0.0.1:2\"\ndata-dir = \"/tmp/d\"\nlocation = \"a.b.c.d\"\n";
        let e = with(&format!("{dir}auto-grow-interval = \"often\"\n"));
        assert!(e.contains("auto-grow-interval"), "{e}");
        let grow = |extra: &str| {
            toml::from_str::<HostConfig>(&format!("{dir}{extra}"))
                .unwrap()
                .directory
                .unwrap()
                .auto_grow()
                .unwrap()
        };
        assert_eq!(grow(""), oxio_directory::config::DEFAULT_AUTO_GROW_INTERVAL);
        assert_eq!(
            grow("auto-grow-interval = \"0s\"\n"),
            std::time::Duration::ZERO
        );
        assert_eq!(
            grow("auto-grow-interval = \"30s\"\n"),
            std::time::Duration::from_secs(30)
        );
        let off: HostConfig =
            toml::from_str("[s3]\nlisten = \"127.0.0.1:1\"\nsmall-object-policy = \"\"\n").unwrap();
        let mut sdk = oxio_sdk::ClientConfig::new(Vec::new(), Vec::new());
        off.s3.unwrap().apply_policies(&mut sdk).unwrap();
        assert!(sdk.small_policy.is_none());
        assert!(toml::from_str::<HostConfig>(
            "[[rawx]]\nid = \"r\"\nlisten = \"127.0.0.1:1\"\nvolume = \"/v\"\nlocation = \"a.b.c.d\"\ndriver = \"uring\"\n"
        )
        .is_err());
    }

    #[test]
    fn parses_s3_storage_classes() {
        let cfg: HostConfig = toml::from_str(
            r#"
[s3]
listen = "127.0.0.1:6007"
[s3.storage-classes]
GLACIER_IR = "EC84"
STANDARD = ""
"#,
        )
        .unwrap();
        let s3 = cfg.s3.as_ref().unwrap();
        assert_eq!(s3.storage_classes["GLACIER_IR"], "EC84");
        assert_eq!(s3.storage_classes["STANDARD"], "");
        let plain: HostConfig = toml::from_str("[s3]\nlisten = \"127.0.0.1:6007\"\n").unwrap();
        assert!(plain.s3.unwrap().storage_classes.is_empty());
    }
}
