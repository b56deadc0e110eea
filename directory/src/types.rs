//! The Raft type configuration shared by every group, and the commands (app data) and
//! replies that flow through the replicated log.

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Raft types of every directory group: `u64` node ids, `BasicNode { addr }` members,
    /// [`Command`] entries, [`Reply`] responses and snapshots streamed through files.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft instance of one directory group.
pub type DirRaft = openraft::Raft<TypeConfig>;
/// A log entry of a directory group.
pub type DirEntry = openraft::Entry<TypeConfig>;
/// Log id of a directory group.
pub type DirLogId = openraft::LogId<u64>;
/// Membership as stored by the state machine.
pub type DirMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
/// Snapshot metadata of a directory group.
pub type DirSnapshotMeta = openraft::SnapshotMeta<u64, openraft::BasicNode>;

/// Group id of meta0.
pub const META0_GROUP: u64 = 0;
/// First group id of meta2 groups; meta1 groups are `1..META2_BASE`.
pub const META2_BASE: u64 = 1000;

/// The three levels of the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GroupKind {
    /// Prefix table and group membership.
    Meta0,
    /// Accounts, access keys, containers.
    Meta1,
    /// Container contents.
    Meta2,
}

impl GroupKind {
    /// The kind a group id belongs to by construction of the id space.
    pub fn of(group: u64) -> GroupKind {
        match group {
            META0_GROUP => GroupKind::Meta0,
            g if g < META2_BASE => GroupKind::Meta1,
            _ => GroupKind::Meta2,
        }
    }

    /// The protobuf enumeration value.
    pub fn to_proto(self) -> oxio_proto::v1::GroupKind {
        match self {
            GroupKind::Meta0 => oxio_proto::v1::GroupKind::Meta0,
            GroupKind::Meta1 => oxio_proto::v1::GroupKind::Meta1,
            GroupKind::Meta2 => oxio_proto::v1::GroupKind::Meta2,
        }
    }

    /// The lower-case name (`meta0`, `meta1`, `meta2`).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::Meta0 => "meta0",
            GroupKind::Meta1 => "meta1",
            GroupKind::Meta2 => "meta2",
        }
    }
}

impl std::fmt::Display for GroupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member of a group as recorded in the meta0 table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Directory node id.
    pub node_id: u64,
    /// `host:port` of the node.
    pub addr: String,
}

/// A group as recorded in the meta0 table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Group id.
    pub id: u64,
    /// Level of the group.
    pub kind: GroupKind,
    /// Voters of the group.
    pub members: Vec<MemberRecord>,
}

/// Serde helper: byte strings as hex inside JSON (instead of arrays of numbers).
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Hex in human-readable formats (JSON), raw bytes in binary ones.
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(b))
        } else {
            s.serialize_bytes(b)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            hex::decode(s.as_bytes()).map_err(serde::de::Error::custom)
        } else {
            d.deserialize_byte_buf(Bytes)
        }
    }

    /// Accepts a byte string (or a sequence of bytes) from a binary format.
    pub struct Bytes;

    impl<'de> serde::de::Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// Serde helper: optional byte strings as hex.
pub(crate) mod opt_hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// A present value wrapped for [`super::hex_bytes`].
    struct Wrapped<'a>(&'a [u8]);

    impl serde::Serialize for Wrapped<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::hex_bytes::serialize(self.0, s)
        }
    }

    /// Owned counterpart of `Wrapped`.
    struct Unwrapped(Vec<u8>);

    impl<'de> Deserialize<'de> for Unwrapped {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::hex_bytes::deserialize(d).map(Unwrapped)
        }
    }

    pub fn serialize<S: Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_some(&Wrapped(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(<Option<Unwrapped>>::deserialize(d)?.map(|u| u.0))
    }
}

/// A state change proposed to a group. Everything non-deterministic (clocks, random
/// choices) is decided by the leader and carried here, so every replica applies the
/// same bytes to the same state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// meta0: set the prefix table and the group records (bootstrap, rebalancing).
    Meta0Init {
        /// 65,536 entries: prefix -> meta1 group id.
        prefix_to_meta1: Vec<u64>,
        /// Every group of the directory.
        groups: Vec<GroupRecord>,
    },
    /// Several commands proposed as one entry (see [`crate::proposer`]), applied in
    /// order; a batch never holds a batch.
    Batch {
        /// The commands.
        commands: Vec<Command>,
    },
    /// meta0: record groups added after the bootstrap.
    Meta0AddGroups {
        /// The new groups (already hosted and led).
        groups: Vec<GroupRecord>,
    },
    /// meta1: create an account unless it exists.
    CreateAccount {
        /// Account name.
        account: String,
        /// Creation time chosen by the leader.
        ctime_ms: u64,
    },
    /// meta1: create or replace an access key (prost `AccessKeyRecord`).
    PutAccessKey {
        /// Encoded `AccessKeyRecord`.
        #[serde(with = "hex_bytes")]
        record: Vec<u8>,
    },
    /// meta1: create a container unless it exists.
    CreateContainer {
        /// Owner.
        account: String,
        /// Container name.
        name: String,
        /// `container_id(account, name)`.
        cid: String,
        /// meta2 group chosen by the leader.
        meta2_group: u64,
        /// Creation time chosen by the leader.
        ctime_ms: u64,
    },
    /// meta1: forget a container (idempotent).
    DeleteContainer {
        /// Container id.
        cid: String,
    },
    /// meta1: remove an access key and its account index entry (see
    /// [`crate::meta1_admin`]).
    DeleteAccessKey {
        /// The access key.
        access_key: String,
    },
    /// meta1: remove an account record (see [`crate::meta1_admin`]).
    DeleteAccount {
        /// Account name.
        account: String,
    },
    /// meta2: create a container's record (idempotent).
    InitContainer {
        /// Container id.
        cid: String,
        /// Owner.
        account: String,
        /// Container name.
        name: String,
    },
    /// meta2: set (`Some`) or clear (`None`) a container's default storage policy.
    SetContainerPolicy {
        /// Container id.
        cid: String,
        /// A valid policy name, checked by the leader before proposing.
        policy: Option<String>,
    },
    /// meta2: set (`Some`) or clear (`None`) a container's quota of stored bytes.
    SetContainerQuota {
        /// Container id.
        cid: String,
        /// Most bytes the container's stored versions may hold.
        quota_bytes: Option<u64>,
    },
    /// meta2: remove an empty container.
    DropContainer {
        /// Container id.
        cid: String,
    },
    /// meta2: store a content header under a key.
    PutContent {
        /// Container id.
        cid: String,
        /// Object key.
        key: String,
        /// Encoded `ContentHeader`.
        #[serde(with = "hex_bytes")]
        header: Vec<u8>,
        /// The leader's clock in microseconds; the applied version is at least this.
        proposed_version: u64,
        /// What the key must hold for the put to happen (entries written before this
        /// field existed read `None`: unconditional).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        condition: Option<WriteCondition>,
    },
    /// meta2: replace the tag set of a content in place (same version, same chunks).
    SetContentTags {
        /// Container id.
        cid: String,
        /// Object key.
        key: String,
        /// The new tag set, `(key, value)` in order.
        tags: Vec<(String, String)>,
    },
    /// meta2: replace the tag set of one named version in place.
    SetVersionTags {
        /// Container id.
        cid: String,
        /// Object key.
        key: String,
        /// The version.
        version: crate::meta2::versions::VersionRef,
        /// The new tag set, `(key, value)` in order.
        tags: Vec<(String, String)>,
    },
    /// meta2: set a container's canned ACL (see [`crate::acl`]).
    SetContainerAcl {
        /// Container id.
        cid: String,
        /// `private` or `public-read`.
        acl: String,
    },
    /// meta2: set (`Some`) or remove (`None`) a container's tag set.
    SetContainerTags {
        /// Container id.
        cid: String,
        /// The new tag set, `(key, value)` in order.
        tags: Option<Vec<(String, String)>>,
    },
    /// meta2: remove a content.
    DeleteContent {
        /// Container id.
        cid: String,
        /// Object key.
        key: String,
    },
    /// meta2: start a multipart upload.
    CreateUpload {
        /// Container id.
        cid: String,
        /// Object key.
        key: String,
        /// Client-chosen upload id.
        upload_id: String,
        /// Encoded `ContentHeader` template of the final object.
        #[serde(with = "hex_bytes")]
        template: Vec<u8>,
        /// Initiation time chosen by the leader (microseconds).
        initiated_us: u64,
    },
    /// meta2: record (or replace) one part of an upload.
    PutPart {
        /// Container id.
        cid: String,
        /// Object key.
        key: String,
        /// Upload id.
        upload_id: String,
        /// Encoded `PartRecord`.
        #[serde(with = "hex_bytes")]
        part: Vec<u8>,
    },
    /// meta2: build the object from the listed parts and forget the upload.
    CompleteUpload {
        /// Container id.
        cid: String,
        /// Object key.
        key: String,
        /// Upload id.
        upload_id: String,
        /// `(part number, etag)` in the order the client listed them.
        parts: Vec<(u32, String)>,
        /// The leader's clock in microseconds; the applied version is at least this.
        proposed_version: u64,
        /// Modification time of the object, chosen by the leader.
        mtime_ms: u64,
        /// What the key must hold for the completion to happen (`None`: nothing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        condition: Option<WriteCondition>,
    },
    /// meta2: forget an upload and its parts.
    AbortUpload {
        /// Container id.
        cid: String,
        /// Object key.
        key: String,
        /// Upload id.
        upload_id: String,
    },
    /// meta2: set a container's versioning (there is no way back to unversioned).
    SetVersioning {
        /// Container id.
        cid: String,
        /// The new state.
        state: crate::meta2::versions::Versioning,
    },
    /// meta2: S3 DeleteObject with versioning semantics (a delete marker, or one
    /// version removed for good).
    DeleteVersion {
        /// Container id.
        cid: String,
        /// Object key.
        key: String,
        /// The version to remove for good (`None`: delete the key).
        version: Option<crate::meta2::versions::VersionRef>,
        /// The leader's clock for a delete marker's version and modification time.
        clock: crate::meta2::versions::DeleteClock,
    },
    /// meta2: point one chunk record of a content at a rebuilt copy.
    ReplaceChunk {
        /// Container id.
        cid: String,
        /// Object key.
        key: String,
        /// Version the rebuild read; any other version refuses.
        version: u64,
        /// Chunk id being replaced.
        old_chunk_id: String,
        /// Encoded `ChunkRecord` of the new copy.
        #[serde(with = "hex_bytes")]
        chunk: Vec<u8>,
    },
    /// meta2: add a regenerated chunk to an empty slot of an incomplete content.
    AddMissingChunk {
        /// Container id.
        cid: String,
        /// Object key.
        key: String,
        /// Version the repair read; any other version refuses.
        version: u64,
        /// Encoded `ChunkRecord` naming its metachunk and fragment.
        #[serde(with = "hex_bytes")]
        chunk: Vec<u8>,
    },
    /// meta2: these queued chunks were deleted from their rawx (see
    /// [`crate::purge`]).
    AckChunkDeletes {
        /// Chunk ids (at most [`crate::purge::MAX_PAGE`]).
        chunk_ids: Vec<String>,
    },
}

impl Command {
    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Meta0Init { .. } => "meta0_init",
            Command::Batch { .. } => "batch",
            Command::Meta0AddGroups { .. } => "meta0_add_groups",
            Command::CreateAccount { .. } => "create_account",
            Command::PutAccessKey { .. } => "put_access_key",
            Command::CreateContainer { .. } => "create_container",
            Command::DeleteContainer { .. } => "delete_container",
            Command::DeleteAccessKey { .. } => "delete_access_key",
            Command::DeleteAccount { .. } => "delete_account",
            Command::InitContainer { .. } => "init_container",
            Command::SetContainerPolicy { .. } => "set_container_policy",
            Command::SetContainerQuota { .. } => "set_container_quota",
            Command::DropContainer { .. } => "drop_container",
            Command::PutContent { .. } => "put_content",
            Command::DeleteContent { .. } => "delete_content",
            Command::SetContentTags { .. } => "set_content_tags",
            Command::SetContainerTags { .. } => "set_container_tags",
            Command::SetVersionTags { .. } => "set_version_tags",
            Command::SetContainerAcl { .. } => "set_container_acl",
            Command::CreateUpload { .. } => "create_upload",
            Command::PutPart { .. } => "put_part",
            Command::CompleteUpload { .. } => "complete_upload",
            Command::AbortUpload { .. } => "abort_upload",
            Command::ReplaceChunk { .. } => "replace_chunk",
            Command::AddMissingChunk { .. } => "add_missing_chunk",
            Command::AckChunkDeletes { .. } => "ack_chunk_deletes",
            Command::SetVersioning { .. } => "set_versioning",
            Command::DeleteVersion { .. } => "delete_version",
        }
    }
}

/// A deterministic refusal decided while applying a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The container is not known to this group.
    NoSuchContainer,
    /// The key is not in the container.
    NoSuchKey,
    /// The container still holds objects.
    NotEmpty,
    /// The container already exists.
    ContainerExists,
    /// The command is malformed (e.g. wrong table size).
    Invalid,
    /// The command does not belong to this kind of group.
    WrongGroup,
    /// The multipart upload is not known (never created, completed or aborted).
    NoSuchUpload,
    /// The multipart upload id is already taken.
    UploadExists,
    /// A listed part was never uploaded or its etag does not match.
    InvalidPart,
    /// The listed part numbers are not strictly ascending.
    InvalidPartOrder,
    /// A part other than the last is smaller than the minimum part size.
    EntityTooSmall,
    /// The completed object would list more chunks than a header may hold.
    EntityTooLarge,
    /// The content a chunk replacement was computed for was overwritten, deleted, or
    /// no longer lists the chunk.
    ContentChanged,
    /// The condition of a conditional write does not hold.
    PreconditionFailed,
    /// The write would take the container's stored bytes over its quota.
    QuotaExceeded,
}

/// A condition on what a key holds, checked while applying a write (S3 conditional
/// writes: `If-None-Match: *`, `If-Match: "etag"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCondition {
    /// The key must not hold an object.
    #[serde(default)]
    pub if_none_match: bool,
    /// The key must hold an object with this ETag (without quotes, lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
}

/// Longest ETag a condition may name.
pub const MAX_CONDITION_ETAG_BYTES: usize = 256;

impl WriteCondition {
    /// The condition a request carries (`None` when it asks for nothing); an ETag
    /// longer than [`MAX_CONDITION_ETAG_BYTES`] is refused.
    pub fn from_proto(
        c: Option<oxio_proto::v1::PutCondition>,
    ) -> std::result::Result<Option<WriteCondition>, tonic::Status> {
        let Some(c) = c else {
            return Ok(None);
        };
        if c.if_match.len() > MAX_CONDITION_ETAG_BYTES {
            return Err(tonic::Status::invalid_argument("if_match etag too long"));
        }
        let if_match = Some(bare_etag(&c.if_match)).filter(|e| !e.is_empty());
        if !c.if_none_match && if_match.is_none() {
            return Ok(None);
        }
        Ok(Some(WriteCondition {
            if_none_match: c.if_none_match,
            if_match,
        }))
    }

    /// Whether a key holding `current` (its ETag, `None` when the key is empty)
    /// satisfies the condition; the refusal otherwise.
    pub fn check(&self, current: Option<&str>) -> std::result::Result<(), Refusal> {
        if self.if_none_match && current.is_some() {
            return Err(Refusal::PreconditionFailed);
        }
        if let Some(want) = &self.if_match {
            match current {
                None => return Err(Refusal::NoSuchKey),
                // `If-Match: *`: any object will do.
                Some(_) if want == "*" => {}
                Some(etag) if bare_etag(etag) != *want => return Err(Refusal::PreconditionFailed),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// An ETag without quotes (and the weak prefix), lower case, for comparison.
pub fn bare_etag(e: &str) -> String {
    let e = e.trim();
    let e = e.strip_prefix("W/").unwrap_or(e);
    e.trim_matches('"').to_ascii_lowercase()
}

/// The outcome of applying one log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Blank and membership entries, and commands without a payload to return.
    #[default]
    Done,
    /// An encoded `AccountRecord`.
    Account(#[serde(with = "hex_bytes")] Vec<u8>),
    /// An encoded `AccessKeyRecord`.
    AccessKey(#[serde(with = "hex_bytes")] Vec<u8>),
    /// An encoded `ContainerRecord`.
    Container(#[serde(with = "hex_bytes")] Vec<u8>),
    /// Result of a put: the assigned version and the replaced header.
    Put {
        /// Assigned version.
        version: u64,
        /// Encoded `ContentHeader` that was replaced.
        #[serde(with = "opt_hex_bytes")]
        replaced: Option<Vec<u8>>,
    },
    /// An encoded `ContentHeader` that was removed.
    Deleted(#[serde(with = "hex_bytes")] Vec<u8>),
    /// A prost-encoded reply message (the multipart commands answer their gRPC reply).
    Encoded(#[serde(with = "hex_bytes")] Vec<u8>),
    /// The command was refused; the state did not change.
    Refused(Refusal),
    /// The replies of a [`Command::Batch`], in its commands' order.
    Batch(Vec<Reply>),
}
