//! Typed in-process answers to the reads a gateway of this process makes for every
//! small GET and HEAD ([`oxio_proto::local::DirectoryReads`]): the gRPC handler is
//! called with the request as it is, with no protobuf encoding, HTTP body or tower
//! layers between, and the call is counted in the node's gRPC metrics like any other
//! (and in `oxio_directory_typed_calls_total`).

use crate::metrics::DirectoryMetrics;
use crate::service::DirectoryService;
use oxio_proto::local::{DirectoryReads, TypedFuture};
use oxio_proto::v1::directory_server::{Directory, DirectoryServer};
use oxio_proto::v1::{ContentRecord, GetContentVersionRequest};
use std::sync::Arc;
use tonic::server::NamedService;
use tonic::{Request, Response};

/// The gRPC service name the calls are reported under.
const SERVICE: &str = <DirectoryServer<DirectoryService> as NamedService>::NAME;

/// The typed reads of one directory node.
pub(crate) struct TypedReads {
    svc: DirectoryService,
    metrics: Arc<DirectoryMetrics>,
}

impl TypedReads {
    pub(crate) fn new(svc: DirectoryService, metrics: Arc<DirectoryMetrics>) -> Self {
        TypedReads { svc, metrics }
    }
}

impl DirectoryReads for TypedReads {
    fn get_content_version(&self, req: GetContentVersionRequest) -> TypedFuture<'_, ContentRecord> {
        const METHOD: &str = "GetContentVersion";
        Box::pin(async move {
            self.metrics.typed_call(METHOD);
            oxio_proto::rpc::typed_call(&*self.metrics, SERVICE, METHOD, req, |r| async move {
                self.svc
                    .get_content_version(Request::new(r))
                    .await
                    .map(Response::into_inner)
            })
            .await
        })
    }
}
