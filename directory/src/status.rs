//! The one place where directory outcomes become gRPC statuses: not hosted, not leader
//! (with the `oxio-leader` metadata), refusals decided by the state machine, bad input.

use crate::types::{GroupKind, Refusal};
use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::BasicNode;
use tonic::Status;

/// Metadata key carrying the leader's address on UNAVAILABLE answers.
pub const LEADER_METADATA: &str = "oxio-leader";

/// The group is not hosted by this node.
pub fn not_hosted(group: u64) -> Status {
    Status::not_found(format!("group {group} not hosted here"))
}

/// The RPC does not apply to this kind of group.
pub fn wrong_kind(group: u64, kind: GroupKind, want: GroupKind) -> Status {
    Status::invalid_argument(format!(
        "group {group} is a {kind} group, this call needs {want}"
    ))
}

/// This node does not lead the group; names the leader when known.
pub fn not_leader(group: u64, leader_addr: Option<&str>) -> Status {
    let mut s = Status::unavailable(format!("not leader of group {group}"));
    if let Some(addr) = leader_addr {
        if let Ok(v) = tonic::metadata::MetadataValue::try_from(addr) {
            s.metadata_mut().insert(LEADER_METADATA, v);
        }
    }
    s
}

fn forward(group: u64, f: &ForwardToLeader<u64, BasicNode>) -> Status {
    not_leader(group, f.leader_node.as_ref().map(|n| n.addr.as_str()))
}

/// Maps a failed read barrier.
pub fn from_check_leader(
    group: u64,
    e: RaftError<u64, CheckIsLeaderError<u64, BasicNode>>,
) -> Status {
    match e {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => forward(group, &f),
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
            Status::unavailable(format!("group {group}: {q}"))
        }
        RaftError::Fatal(f) => Status::unavailable(format!("group {group} stopped: {f}")),
    }
}

/// Maps a failed proposal.
pub fn from_write(group: u64, e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> Status {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => forward(group, &f),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            Status::failed_precondition(format!("group {group}: {c}"))
        }
        RaftError::Fatal(f) => Status::unavailable(format!("group {group} stopped: {f}")),
    }
}

/// Maps a refusal decided while applying.
pub fn refusal(r: Refusal) -> Status {
    match r {
        Refusal::NoSuchContainer => Status::not_found("no such container"),
        Refusal::NoSuchKey => Status::not_found("no such key"),
        Refusal::NotEmpty => Status::failed_precondition("container not empty"),
        Refusal::ContainerExists => Status::already_exists("container exists"),
        Refusal::Invalid => Status::invalid_argument("invalid command"),
        Refusal::WrongGroup => Status::invalid_argument("command does not belong to this group"),
        Refusal::NoSuchUpload => Status::not_found("no such upload"),
        Refusal::UploadExists => Status::already_exists("upload exists"),
        Refusal::InvalidPart => Status::failed_precondition(
            "InvalidPart: One or more of the specified parts could not be found or its \
             entity tag did not match",
        ),
        Refusal::InvalidPartOrder => Status::failed_precondition(
            "InvalidPartOrder: The list of parts was not in ascending order",
        ),
        Refusal::EntityTooSmall => Status::failed_precondition(
            "EntityTooSmall: Your proposed upload is smaller than the minimum allowed object size",
        ),
        Refusal::EntityTooLarge => Status::failed_precondition(
            "EntityTooLarge: The completed object would hold too many chunks",
        ),
        Refusal::ContentChanged => Status::failed_precondition("content changed"),
        Refusal::PreconditionFailed => Status::failed_precondition(
            "PreconditionFailed: At least one of the pre-conditions you specified did not hold",
        ),
        Refusal::QuotaExceeded => Status::failed_precondition(
            "QuotaExceeded: the write would take the container over its quota \
             (oxio container show BUCKET; raise it with oxio container set BUCKET --quota SIZE)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_leader_carries_the_leader_address() {
        let f = ForwardToLeader::new(2, BasicNode::new("10.0.0.2:6001"));
        let s = from_write(7, RaftError::APIError(ClientWriteError::ForwardToLeader(f)));
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert_eq!(s.message(), "not leader of group 7");
        assert_eq!(
            s.metadata().get(LEADER_METADATA).unwrap().to_str().unwrap(),
            "10.0.0.2:6001"
        );
        let none = not_leader(7, None);
        assert!(none.metadata().get(LEADER_METADATA).is_none());
    }

    #[test]
    fn refusals_map_to_the_documented_codes() {
        assert_eq!(
            refusal(Refusal::NotEmpty).code(),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(refusal(Refusal::NotEmpty).message(), "container not empty");
        let changed = refusal(Refusal::ContentChanged);
        assert_eq!(
            (changed.code(), changed.message()),
            (tonic::Code::FailedPrecondition, "content changed")
        );
        assert_eq!(
            refusal(Refusal::ContainerExists).code(),
            tonic::Code::AlreadyExists
        );
        assert_eq!(refusal(Refusal::NoSuchKey).code(), tonic::Code::NotFound);
        assert_eq!(refusal(Refusal::NoSuchUpload).message(), "no such upload");
        for (r, prefix) in [
            (Refusal::InvalidPart, "InvalidPart:"),
            (Refusal::InvalidPartOrder, "InvalidPartOrder:"),
            (Refusal::EntityTooSmall, "EntityTooSmall:"),
        ] {
            let s = refusal(r);
            assert_eq!(s.code(), tonic::Code::FailedPrecondition);
            assert!(s.message().starts_with(prefix), "{}", s.message());
        }
    }
}
