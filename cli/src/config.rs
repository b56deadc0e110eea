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
        }
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
