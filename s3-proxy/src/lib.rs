//! The S3 gateway of oxio. It serves the S3 REST API on hyper through `s3s` (request
//! parsing, SigV4 verification, error XML as AWS returns it) and turns every
//! operation into `oxio-sdk` calls: the bucket is a container of the account that
//! owns the access key, bodies stream through without being held whole.

pub mod auth;
pub mod error;
pub mod multipart;
pub mod server;
pub mod service;

pub use error::{Error, Result};
pub use server::{start, S3Config, Started};
