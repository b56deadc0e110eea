//! The oxio binaries' shared code: `oxiod` hosts any set of services (a whole local
//! grid with `oxiod dev`, or the roles of one TOML file), `oxio` is the admin CLI.
//! This crate composes the service crates; it owns no service logic of its own.

pub mod bench;
pub mod config;
pub mod dev;
pub mod host;
pub mod keys;
pub mod logging;
pub mod output;
pub mod units;
