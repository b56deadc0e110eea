//! meta1: accounts, access keys and containers (container -> meta2 group) of the
//! prefixes one meta1 group owns. Records are stored prost-encoded, with secondary
//! indexes `account -> access keys` and `account/name -> cid` for the listings.

use crate::error::Result;
use crate::keys::sm;
use crate::sm_data::{Overlay, SmView};
use crate::types::{Refusal, Reply};
use oxio_proto::v1::{AccessKeyRecord, AccountRecord, ContainerRecord};
use prost::Message;

/// Longest account, container name, access key or secret accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Most records one listing returns.
pub const MAX_LIST: usize = 10_000;

/// Applies `CreateAccount`: returns the existing record when there is one.
pub fn apply_create_account(ov: &mut Overlay<'_>, account: &str, ctime_ms: u64) -> Result<Reply> {
    let k = sm::one(sm::ACCOUNT, account.as_bytes());
    if let Some(existing) = ov.get(&k)? {
        return Ok(Reply::Account(existing));
    }
    let rec = AccountRecord {
        account: account.to_string(),
        ctime_ms,
    }
    .encode_to_vec();
    ov.put(k, rec.clone());
    Ok(Reply::Account(rec))
}

/// Applies `PutAccessKey`: creates or replaces the key, keeping the account index right.
pub fn apply_put_access_key(ov: &mut Overlay<'_>, record: &[u8]) -> Result<Reply> {
    let Ok(rec) = AccessKeyRecord::decode(record) else {
        return Ok(Reply::Refused(Refusal::Invalid));
    };
    if rec.access_key.is_empty() || rec.account.is_empty() {
        return Ok(Reply::Refused(Refusal::Invalid));
    }
    let k = sm::one(sm::ACCESS_KEY, rec.access_key.as_bytes());
    if let Some(old) = ov.get(&k)? {
        let old = AccessKeyRecord::decode(old.as_slice())?;
        ov.delete(sm::lp_then(
            sm::ACCESS_KEY_BY_ACCOUNT,
            old.account.as_bytes(),
            old.access_key.as_bytes(),
        ));
    }
    ov.put(
        sm::lp_then(
            sm::ACCESS_KEY_BY_ACCOUNT,
            rec.account.as_bytes(),
            rec.access_key.as_bytes(),
        ),
        Vec::new(),
    );
    let bytes = rec.encode_to_vec();
    ov.put(k, bytes.clone());
    Ok(Reply::AccessKey(bytes))
}

/// Applies `CreateContainer`: refuses when the cid exists, otherwise records it.
pub fn apply_create_container(
    ov: &mut Overlay<'_>,
    account: &str,
    name: &str,
    cid: &str,
    meta2_group: u64,
    ctime_ms: u64,
) -> Result<Reply> {
    let k = sm::one(sm::CONTAINER, cid.as_bytes());
    if ov.get(&k)?.is_some() {
        return Ok(Reply::Refused(Refusal::ContainerExists));
    }
    let rec = ContainerRecord {
        account: account.to_string(),
        name: name.to_string(),
        cid: cid.to_string(),
        meta2_group,
        ctime_ms,
    }
    .encode_to_vec();
    ov.put(k, rec.clone());
    ov.put(
        sm::lp_then(
            sm::CONTAINER_BY_ACCOUNT,
            account.as_bytes(),
            name.as_bytes(),
        ),
        cid.as_bytes().to_vec(),
    );
    Ok(Reply::Container(rec))
}

/// Applies `DeleteContainer`: removes the record and its index entry (idempotent).
pub fn apply_delete_container(ov: &mut Overlay<'_>, cid: &str) -> Result<Reply> {
    let k = sm::one(sm::CONTAINER, cid.as_bytes());
    if let Some(v) = ov.get(&k)? {
        let rec = ContainerRecord::decode(v.as_slice())?;
        ov.delete(sm::lp_then(
            sm::CONTAINER_BY_ACCOUNT,
            rec.account.as_bytes(),
            rec.name.as_bytes(),
        ));
        ov.delete(k);
    }
    Ok(Reply::Done)
}

/// Accounts of the group, sorted by name.
pub fn list_accounts(view: &SmView<'_>) -> Result<Vec<AccountRecord>> {
    let (rows, more) = view.scan(sm::ACCOUNT, MAX_LIST)?;
    if more {
        tracing::warn!(limit = MAX_LIST, "account listing truncated");
    }
    rows.iter()
        .map(|(_, v)| Ok(AccountRecord::decode(v.as_slice())?))
        .collect()
}

/// One access key.
pub fn get_access_key(view: &SmView<'_>, access_key: &str) -> Result<Option<AccessKeyRecord>> {
    match view.get(&sm::one(sm::ACCESS_KEY, access_key.as_bytes()))? {
        Some(v) => Ok(Some(AccessKeyRecord::decode(v.as_slice())?)),
        None => Ok(None),
    }
}

/// Access keys of one account, sorted by key.
pub fn list_access_keys(view: &SmView<'_>, account: &str) -> Result<Vec<AccessKeyRecord>> {
    let prefix = sm::lp_then(sm::ACCESS_KEY_BY_ACCOUNT, account.as_bytes(), b"");
    let (rows, more) = view.scan(&prefix, MAX_LIST)?;
    if more {
        tracing::warn!(account, limit = MAX_LIST, "access key listing truncated");
    }
    let mut out = Vec::with_capacity(rows.len());
    for (key, _) in rows {
        let key = String::from_utf8_lossy(&key);
        if let Some(rec) = get_access_key(view, &key)? {
            out.push(rec);
        }
    }
    Ok(out)
}

/// One container.
pub fn get_container(view: &SmView<'_>, cid: &str) -> Result<Option<ContainerRecord>> {
    match view.get(&sm::one(sm::CONTAINER, cid.as_bytes()))? {
        Some(v) => Ok(Some(ContainerRecord::decode(v.as_slice())?)),
        None => Ok(None),
    }
}

/// Containers of one account, sorted by name.
pub fn list_containers(view: &SmView<'_>, account: &str) -> Result<Vec<ContainerRecord>> {
    let prefix = sm::lp_then(sm::CONTAINER_BY_ACCOUNT, account.as_bytes(), b"");
    let (rows, more) = view.scan(&prefix, MAX_LIST)?;
    if more {
        tracing::warn!(account, limit = MAX_LIST, "container listing truncated");
    }
    let mut out = Vec::with_capacity(rows.len());
    for (_, cid) in rows {
        let cid = String::from_utf8_lossy(&cid);
        if let Some(rec) = get_container(view, &cid)? {
            out.push(rec);
        }
    }
    Ok(out)
}
