//! The incomplete-content RPCs of the `Directory` service: paging through the index
//! of contents missing chunks (behind a read barrier) and adding a regenerated chunk
//! to an empty slot (one Raft command).

use super::{check_key, internal, parse_cid, unexpected, DirectoryService, Res};
use crate::incomplete::{self, MAX_CURSOR_BYTES, MAX_PAGE};
use crate::types::{Command, GroupKind, Reply};
use oxio_proto::v1::*;
use prost::Message;
use tonic::{Response, Status};

/// Longest rawx id, address or hash accepted in a chunk record.
const MAX_FIELD_BYTES: usize = 256;

impl DirectoryService {
    pub(super) async fn incomplete_list(
        &self,
        req: ListIncompleteContentsRequest,
    ) -> Res<ListIncompleteContentsReply> {
        if req.start_after.len() > 2 * MAX_CURSOR_BYTES {
            return Err(Status::invalid_argument("start_after too long"));
        }
        let cursor = hex::decode(&req.start_after)
            .map_err(|_| Status::invalid_argument("start_after is not a cursor from this RPC"))?;
        let max = (req.max as usize).min(MAX_PAGE);
        let g = self.group(req.group, GroupKind::Meta2)?;
        self.barrier(&g).await?;
        let page = incomplete::list_incomplete(&g.sm.view(), &cursor, max).map_err(internal)?;
        Ok(Response::new(ListIncompleteContentsReply {
            entries: page
                .entries
                .into_iter()
                .map(|e| IncompleteContentEntry {
                    cid: e.cid,
                    key: e.key,
                    version: e.version,
                    missing: e.missing,
                })
                .collect(),
            truncated: page.next.is_some(),
            next_start_after: page.next.map(hex::encode).unwrap_or_default(),
        }))
    }

    pub(super) async fn incomplete_add(
        &self,
        req: AddMissingChunkRequest,
    ) -> Res<AddMissingChunkReply> {
        let cid = parse_cid(&req.cid)?;
        check_key(&req.key)?;
        let chunk = req
            .chunk
            .ok_or_else(|| Status::invalid_argument("chunk is required"))?;
        if chunk.chunk_id.len() != 64 || !chunk.chunk_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Status::invalid_argument(
                "chunk id must be 64 hex characters",
            ));
        }
        if chunk.rawx_id.is_empty()
            || chunk.rawx_id.len() > MAX_FIELD_BYTES
            || chunk.addr.len() > MAX_FIELD_BYTES
            || chunk.hash.len() > MAX_FIELD_BYTES
        {
            return Err(Status::invalid_argument(format!(
                "chunk rawx id must be 1 to {MAX_FIELD_BYTES} bytes, addr and hash at most {MAX_FIELD_BYTES}"
            )));
        }
        let g = self.group(req.group, GroupKind::Meta2)?;
        let cmd = Command::AddMissingChunk {
            cid,
            key: req.key,
            version: req.version,
            chunk: chunk.encode_to_vec(),
        };
        match self.write(&g, cmd).await? {
            Reply::Encoded(b) => Ok(Response::new(
                AddMissingChunkReply::decode(b.as_slice()).map_err(|e| internal(e.into()))?,
            )),
            other => Err(unexpected(other)),
        }
    }
}
