//! The S3 gateway of oxio. It serves the S3 REST API on hyper through `s3s` (request
//! parsing, SigV4 verification, error XML as AWS returns it) and turns every
//! operation into `oxio-sdk` calls: the bucket is a container of the account that
//! owns the access key, bodies stream through without being held whole.
//! Beyond the object basics it serves CopyObject and UploadPartCopy server side
//! ([`copy`], [`part_copy`]), ListObjects
//! v1 and v2 ([`listing`]), conditional GET / HEAD ([`conditional`]) and the stored
//! system headers with their `response-*` overrides ([`headers`]), and maps
//! `x-amz-storage-class` to storage policies ([`storage_class`]) and serves object and
//! bucket tagging ([`tagging`]). Buckets take the `private` and `public-read` canned
//! ACLs ([`acl`]); unsigned reads of public buckets are served ([`anonymous`]).
//!
//! Every response carries a fresh `x-amz-request-id`; the id goes into the request's
//! `tracing` span and, as `x-oxio-request-id`, onto every chunk request to a rawx.
//! Unauthenticated `GET /metrics` answers the gateway's Prometheus metrics
//! ([`metrics`], [`front`]).

pub mod acl;
pub mod anonymous;
pub mod auth;
pub mod checksum;
pub mod conditional;
pub mod copy;
pub mod error;
pub mod front;
pub mod headers;
pub mod listing;
pub mod metrics;
pub mod multipart;
pub mod part_copy;
pub mod parts;
pub mod server;
pub mod service;
pub mod storage_class;
pub mod tagging;
pub mod versioning;

pub use error::{Error, Result};
pub use server::{start, S3Config, Started};
pub use storage_class::default_storage_classes;
