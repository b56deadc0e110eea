//! Typed in-process answers to the reads a gateway of this process makes for every
//! GET and HEAD ([`oxio_proto::local::DirectoryReads`]): the gRPC handler is
//! called with the request as it is, with no protobuf encoding, HTTP body or tower
//! layers between, and the call is counted in the node's gRPC metrics like any other
//! (and in `oxio_directory_typed_calls_total`).

use crate::metrics::DirectoryMetrics;
use crate::service::DirectoryService;
use oxio_proto::local::{DirectoryReads, TypedFuture};
use oxio_proto::v1::directory_server::{Directory, DirectoryServer};
use oxio_proto::v1::{ContentRecord, GetContentVersionRequest};
use prometheus::IntCounter;
use std::sync::Arc;
use tonic::server::NamedService;
use tonic::{Request, Response};

/// The gRPC service name the calls are reported under.
const SERVICE: &str = <DirectoryServer<DirectoryService> as NamedService>::NAME;

/// Method name of [`DirectoryReads::get_content_version`].
const GET_CONTENT_VERSION: &str = "GetContentVersion";

/// The typed reads of one directory node.
pub(crate) struct TypedReads {
    svc: DirectoryService,
    metrics: Arc<DirectoryMetrics>,
    get_content_version_calls: IntCounter,
}

impl TypedReads {
    pub(crate) fn new(svc: DirectoryService, metrics: Arc<DirectoryMetrics>) -> Self {
        let get_content_version_calls = metrics.typed_calls(GET_CONTENT_VERSION);
        TypedReads {
            svc,
            metrics,
            get_content_version_calls,
        }
    }
}

impl DirectoryReads for TypedReads {
    fn get_content_version(&self, req: GetContentVersionRequest) -> TypedFuture<'_, ContentRecord> {
        Box::pin(async move {
            self.get_content_version_calls.inc();
            let (metrics, method) = (&*self.metrics, GET_CONTENT_VERSION);
            oxio_proto::rpc::typed_call(metrics, SERVICE, method, req, |r| async move {
                self.svc
                    .get_content_version(Request::new(r))
                    .await
                    .map(Response::into_inner)
            })
            .await
        })
    }
}
