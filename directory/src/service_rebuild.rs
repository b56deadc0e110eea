//! The rebuild RPCs of the `Directory` service: paging through the reverse index of a
//! rawx (behind a read barrier) and replacing one chunk record (one Raft command).

use super::{check_key, internal, parse_cid, unexpected, DirectoryService, Res};
use crate::rebuild::{self, MAX_CURSOR_BYTES, MAX_PAGE};
use crate::types::{Command, GroupKind, Reply};
use oxio_proto::v1::*;
use prost::Message;
use tonic::{Response, Status};

/// Longest rawx service id accepted.
const MAX_RAWX_ID_BYTES: usize = 256;

fn check_rawx_id(id: &str) -> Result<(), Status> {
    if id.is_empty() || id.len() > MAX_RAWX_ID_BYTES {
        return Err(Status::invalid_argument(format!(
            "rawx id must be 1 to {MAX_RAWX_ID_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_chunk_id(what: &str, id: &str) -> Result<(), Status> {
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Status::invalid_argument(format!(
            "{what} must be 64 hex characters"
        )));
    }
    Ok(())
}

impl DirectoryService {
    pub(super) async fn rebuild_list(
        &self,
        req: ListRawxChunksRequest,
    ) -> Res<ListRawxChunksReply> {
        check_rawx_id(&req.rawx_id)?;
        if req.start_after.len() > 2 * MAX_CURSOR_BYTES {
            return Err(Status::invalid_argument("start_after too long"));
        }
        let cursor = hex::decode(&req.start_after)
            .map_err(|_| Status::invalid_argument("start_after is not a cursor from this RPC"))?;
        let max = (req.max as usize).min(MAX_PAGE);
        let g = self.group(req.group, GroupKind::Meta2)?;
        self.barrier(&g).await?;
        let page = rebuild::list_rawx_chunks(&g.sm.view(), &req.rawx_id, &cursor, max)
            .map_err(internal)?;
        Ok(Response::new(ListRawxChunksReply {
            entries: page
                .entries
                .into_iter()
                .map(|e| RawxChunkEntry {
                    cid: e.cid,
                    key: e.key,
                    version: e.version,
                    chunk_id: e.chunk_id,
                    metachunk: e.metachunk,
                    fragment: e.fragment,
                })
                .collect(),
            truncated: page.next.is_some(),
            next_start_after: page.next.map(hex::encode).unwrap_or_default(),
        }))
    }

    pub(super) async fn rebuild_replace(&self, req: ReplaceChunkRequest) -> Res<ReplaceChunkReply> {
        let cid = parse_cid(&req.cid)?;
        check_key(&req.key)?;
        check_chunk_id("old_chunk_id", &req.old_chunk_id)?;
        let chunk = req
            .chunk
            .ok_or_else(|| Status::invalid_argument("chunk is required"))?;
        check_chunk_id("chunk id", &chunk.chunk_id)?;
        check_rawx_id(&chunk.rawx_id)?;
        if chunk.addr.len() > MAX_RAWX_ID_BYTES || chunk.hash.len() > MAX_RAWX_ID_BYTES {
            return Err(Status::invalid_argument("chunk addr or hash too long"));
        }
        let g = self.group(req.group, GroupKind::Meta2)?;
        let cmd = Command::ReplaceChunk {
            cid,
            key: req.key,
            version: req.version,
            old_chunk_id: req.old_chunk_id,
            chunk: chunk.encode_to_vec(),
        };
        match self.write(&g, cmd).await? {
            Reply::Encoded(b) => Ok(Response::new(
                ReplaceChunkReply::decode(b.as_slice()).map_err(|e| internal(e.into()))?,
            )),
            other => Err(unexpected(other)),
        }
    }
}
