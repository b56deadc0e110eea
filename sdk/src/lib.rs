//! The client library every oxio front end uses. It resolves a container through the
//! directory (meta0 table cached whole, meta1 answers cached, leader redirects
//! followed), asks the conscience where new chunks go, and streams objects to and from
//! rawx services: small objects inline in meta2, larger ones cut into metachunks that
//! are erasure coded (Reed-Solomon, stripe by stripe) or replicated. Reads reconstruct
//! missing or corrupt fragments on the fly. Chunks of a rawx on the same host that
//! offers local reads are read from their files, verified here ([`local`]; the files
//! of hot chunks stay open a few seconds, [`kept_files`]), and new
//! chunks for it are written into their files here ([`local_write`]).

pub mod account_admin;
pub mod acl;
pub mod admin;
pub mod client;
pub mod conscience;
pub mod deregister;
pub mod directory;
pub mod directory_admin;
pub mod drain;
pub mod ec;
pub mod error;
pub mod gc;
pub mod get;
pub mod kept_files;
pub mod local;
pub mod local_write;
pub mod md5_batch;
pub mod meta2_choice;
pub mod missing;
pub mod multipart;
pub mod policy;
pub mod put;
pub mod rawx;
pub mod rebuild;
pub mod repair;
pub mod scrub;
pub mod tags;

pub use client::{BodyMeta, Client, ClientConfig, ListPage, ObjectInfo, PutOptions};
pub use error::{Error, Result};
pub use oxio_proto::v1::{ContainerRecord, ContentHeader, ListEntry, PutCondition, Tag};
