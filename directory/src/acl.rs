//! meta2 container access control: the canned ACL of a container, kept in its meta2
//! record. `private` (the default, stored as no ACL at all) serves only signed
//! requests of the owner's keys; `public-read` lets anyone read its objects and list
//! it. The gateway decides what an ACL allows; the directory only stores it.

use crate::error::Result;
use crate::meta2::{load_meta, stats_of, store_meta};
use crate::sm_data::Overlay;
use crate::types::{Refusal, Reply};
use prost::Message;

/// The default ACL: only the owner.
pub const ACL_PRIVATE: &str = "private";
/// Anyone may read objects and list the container.
pub const ACL_PUBLIC_READ: &str = "public-read";
/// Every canned ACL a container may hold.
pub const CANNED_ACLS: &[&str] = &[ACL_PRIVATE, ACL_PUBLIC_READ];

/// Checks a canned ACL name; the reason otherwise.
pub fn check_acl(acl: &str) -> std::result::Result<(), String> {
    if CANNED_ACLS.contains(&acl) {
        Ok(())
    } else {
        Err(format!(
            "unsupported ACL {acl:?}: expected one of {}",
            CANNED_ACLS.join(", ")
        ))
    }
}

/// Applies `SetContainerAcl`: stores the container's canned ACL (`private` is stored
/// as none) and answers the updated container stats.
pub fn apply_set_container_acl(ov: &mut Overlay<'_>, cid: &str, acl: &str) -> Result<Reply> {
    if check_acl(acl).is_err() {
        return Ok(Reply::Refused(Refusal::Invalid));
    }
    let Some(mut meta) = load_meta(ov, cid)? else {
        return Ok(Reply::Refused(Refusal::NoSuchContainer));
    };
    meta.acl = (acl != ACL_PRIVATE).then(|| acl.to_string());
    store_meta(ov, cid, &meta)?;
    Ok(Reply::Encoded(stats_of(&meta).encode_to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canned_acls_are_accepted() {
        assert!(check_acl("private").is_ok());
        assert!(check_acl("public-read").is_ok());
        assert!(check_acl("public-read-write").is_err());
        assert!(check_acl("").is_err());
    }

    #[tokio::test]
    async fn the_acl_is_stored_in_the_container_record() {
        use crate::node::open_db;
        use crate::state_machine::StateMachine;
        use crate::types::{Command, DirEntry};
        use openraft::storage::RaftStateMachine;
        use openraft::{CommittedLeaderId, EntryPayload, LogId};
        use oxio_proto::v1::ContainerStatsReply;
        use std::sync::Arc;

        const CID: &str = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(open_db(dir.path()).unwrap());
        let snaps = dir.path().join("snapshots");
        std::fs::create_dir_all(&snaps).unwrap();
        let mut sm = StateMachine::new(db, 1002, snaps);
        let mut index = 0;
        let mut apply = async |cmd: Command| {
            index += 1;
            let e = DirEntry {
                log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
                payload: EntryPayload::Normal(cmd),
            };
            sm.apply(vec![e]).await.unwrap().remove(0)
        };
        let set = |acl: &str| Command::SetContainerAcl {
            cid: CID.into(),
            acl: acl.into(),
        };
        assert_eq!(
            apply(set("public-read")).await,
            Reply::Refused(Refusal::NoSuchContainer)
        );
        apply(Command::InitContainer {
            cid: CID.into(),
            account: "acct".into(),
            name: "bucket".into(),
        })
        .await;
        let acl_of = |r: Reply| match r {
            Reply::Encoded(b) => ContainerStatsReply::decode(b.as_slice()).unwrap().acl,
            r => panic!("{r:?}"),
        };
        assert_eq!(acl_of(apply(set("public-read")).await), "public-read");
        assert_eq!(
            apply(set("public-read-write")).await,
            Reply::Refused(Refusal::Invalid)
        );
        assert_eq!(acl_of(apply(set("private")).await), "");
    }
}
