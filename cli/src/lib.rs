//! The oxio binaries' shared code: `oxiod` hosts any set of services (a whole local
//! grid with `oxiod dev`, or the roles of one TOML file), `oxio` is the admin CLI.
//! This crate composes the service crates; it owns no service logic of its own.

pub mod admin_cmd;
pub mod bench;
pub mod chunk_check;
pub mod cli_config;
pub mod config;
pub mod container_cmd;
pub mod dev;
pub mod grid_error;
pub mod groups;
pub mod host;
pub mod keys;
pub mod logging;
pub mod object_cmd;
pub mod output;
pub mod progress;
pub mod units;
pub mod volume_cmd;
