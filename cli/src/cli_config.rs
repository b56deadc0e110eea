//! The `oxio` configuration file: where the grid is and which account commands act
//! on, so they need not be repeated on every command line.
//!
//! ```toml
//! conscience = "10.0.0.1:6000,10.0.0.2:6000"   # or a list of strings
//! directory = ["10.0.0.1:6001", "10.0.0.2:6001"]
//! account = "prod"
//! ```
//!
//! A setting comes from, in order: its flag, its environment variable, this file,
//! the built-in default.

use std::path::{Path, PathBuf};

/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;
/// Most addresses one key may list.
const MAX_ADDRS: usize = 64;
/// Keys the file may hold.
pub const KEYS: [&str; 3] = ["conscience", "directory", "account"];

/// Built-in conscience address.
pub const DEFAULT_CONSCIENCE: &str = "127.0.0.1:6000";
/// Built-in directory address.
pub const DEFAULT_DIRECTORY: &str = "127.0.0.1:6001";
/// Built-in account.
pub const DEFAULT_ACCOUNT: &str = "dev";

/// Why the configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named with `--config` / `OXIO_CONFIG` cannot be read.
    #[error("cannot read the configuration file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// The file is not TOML.
    #[error("the configuration file {path} is not valid TOML: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and why parsing stopped.
        reason: String,
    },
    /// A key is unknown or holds a bad value.
    #[error("the configuration file {path}: key `{key}` {problem}")]
    Key {
        /// The file.
        path: PathBuf,
        /// The key at fault.
        key: String,
        /// What is wrong and what is expected.
        problem: String,
    },
}

/// The settings of a configuration file; `None` where the file says nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileConfig {
    /// Conscience addresses.
    pub conscience: Option<Vec<String>>,
    /// Directory addresses.
    pub directory: Option<Vec<String>>,
    /// Account.
    pub account: Option<String>,
    /// The file they came from (none when no file was read).
    pub path: Option<PathBuf>,
}

/// The default file: `$XDG_CONFIG_HOME/oxio/config.toml`, else
/// `~/.config/oxio/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("oxio").join("config.toml"))
}

/// Reads the configuration: `explicit` (from `--config` or `OXIO_CONFIG`) must
/// exist; otherwise the default file is read when it exists, and nothing is read
/// when it does not.
pub fn load(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match default_path() {
            Some(p) if p.is_file() => p,
            _ => return Ok(FileConfig::default()),
        },
    };
    let read_err = |reason: String| ConfigError::Read {
        path: path.clone(),
        reason,
    };
    let len = std::fs::metadata(&path)
        .map_err(|e| read_err(e.to_string()))?
        .len();
    if len > MAX_CONFIG_BYTES {
        return Err(read_err(format!(
            "{len} bytes, more than the {MAX_CONFIG_BYTES} accepted"
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| read_err(e.to_string()))?;
    parse(&path, &text)
}

/// Parses the text of the file at `path`.
pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_path_buf(),
            reason: e.message().to_string(),
        })?;
    let key_err = |key: &str, problem: String| ConfigError::Key {
        path: path.to_path_buf(),
        key: key.to_string(),
        problem,
    };
    let mut out = FileConfig {
        path: Some(path.to_path_buf()),
        ..FileConfig::default()
    };
    for (key, value) in &table {
        match key.as_str() {
            "conscience" => out.conscience = Some(addrs(value).map_err(|p| key_err(key, p))?),
            "directory" => out.directory = Some(addrs(value).map_err(|p| key_err(key, p))?),
            "account" => match value {
                toml::Value::String(s) if !s.trim().is_empty() => {
                    out.account = Some(s.trim().to_string())
                }
                _ => {
                    return Err(key_err(
                        key,
                        format!("must be a non-empty string, not {}", describe(value)),
                    ))
                }
            },
            _ => {
                return Err(key_err(
                    key,
                    format!("is unknown (the keys are {})", KEYS.join(", ")),
                ))
            }
        }
    }
    Ok(out)
}

/// `"a:1,b:2"` or `["a:1", "b:2"]` as a list of HOST:PORT.
fn addrs(value: &toml::Value) -> Result<Vec<String>, String> {
    let items: Vec<String> = match value {
        toml::Value::String(s) => s.split(',').map(|a| a.trim().to_string()).collect(),
        toml::Value::Array(list) => list
            .iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s.trim().to_string()),
                other => Err(format!(
                    "must list addresses as strings, not {}",
                    describe(other)
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "must be \"HOST:PORT,...\" or a list of \"HOST:PORT\", not {}",
                describe(other)
            ))
        }
    };
    if items.is_empty() || items.len() > MAX_ADDRS {
        return Err(format!("must list 1 to {MAX_ADDRS} addresses"));
    }
    for a in &items {
        let ok = a
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Err(format!("holds {a:?}, which is not HOST:PORT"));
        }
    }
    Ok(items)
}

fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the string {s:?}"),
        other => format!("a {} ({other})", other.type_str()),
    }
}

/// Where the grid is and which account to use, every setting resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Conscience addresses.
    pub conscience: Vec<String>,
    /// Directory addresses.
    pub directory: Vec<String>,
    /// Account of account-scoped commands that name none.
    pub account: String,
}

impl FileConfig {
    /// Settings from the command line or the environment (`Some`) win over the
    /// file's, which win over the built-in defaults.
    pub fn resolve(
        &self,
        conscience: Option<Vec<String>>,
        directory: Option<Vec<String>>,
        account: Option<String>,
    ) -> Resolved {
        let nonempty = |v: Option<Vec<String>>| v.filter(|v| v.iter().any(|a| !a.is_empty()));
        Resolved {
            conscience: nonempty(conscience)
                .or_else(|| self.conscience.clone())
                .unwrap_or_else(|| vec![DEFAULT_CONSCIENCE.to_string()]),
            directory: nonempty(directory)
                .or_else(|| self.directory.clone())
                .unwrap_or_else(|| vec![DEFAULT_DIRECTORY.to_string()]),
            account: account
                .filter(|a| !a.is_empty())
                .or_else(|| self.account.clone())
                .unwrap_or_else(|| DEFAULT_ACCOUNT.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/etc/oxio.toml")
    }

    #[test]
    fn parses_strings_and_lists() {
        let c = parse(
            p(),
            "conscience = \"a:1, b:2\"\ndirectory = [\"d:3\"]\naccount = \"prod\"\n",
        )
        .unwrap();
        assert_eq!(c.conscience.unwrap(), vec!["a:1", "b:2"]);
        assert_eq!(c.directory.unwrap(), vec!["d:3"]);
        assert_eq!(c.account.as_deref(), Some("prod"));
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let e = parse(p(), "conscience = 5\n").unwrap_err().to_string();
        assert!(
            e.contains("/etc/oxio.toml") && e.contains("`conscience`"),
            "{e}"
        );
        let e = parse(p(), "directory = [\"nope\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`directory`") && e.contains("HOST:PORT"), "{e}");
        let e = parse(p(), "acount = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("`acount`") && e.contains("unknown"), "{e}");
        let e = parse(p(), "account = [").unwrap_err().to_string();
        assert!(
            e.contains("/etc/oxio.toml") && e.contains("not valid TOML"),
            "{e}"
        );
    }

    #[test]
    fn flags_win_over_the_file_over_defaults() {
        let file = parse(p(), "conscience = \"f:1\"\naccount = \"fa\"\n").unwrap();
        let r = file.resolve(Some(vec!["c:9".into()]), None, None);
        assert_eq!(r.conscience, vec!["c:9"]);
        assert_eq!(r.directory, vec![DEFAULT_DIRECTORY]);
        assert_eq!(r.account, "fa");
        let r = file.resolve(None, None, Some("flag".into()));
        assert_eq!(
            (r.conscience[0].as_str(), r.account.as_str()),
            ("f:1", "flag")
        );
        let r = FileConfig::default().resolve(None, None, None);
        assert_eq!(r.account, DEFAULT_ACCOUNT);
    }

    #[test]
    fn a_named_file_must_exist() {
        let e = load(Some(Path::new("/nonexistent/oxio.toml"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/oxio.toml"));
    }
}
