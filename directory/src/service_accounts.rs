//! The meta1 deletion RPCs of the `Directory` service: an access key (record and
//! account index entry) and an account record, each one Raft command.

use super::{check_name, decode, unexpected, DirectoryService, Res};
use crate::types::{Command, GroupKind, Reply};
use oxio_proto::v1::*;
use tonic::{Response, Status};

impl DirectoryService {
    pub(super) async fn accounts_delete_key(
        &self,
        req: DeleteAccessKeyRequest,
    ) -> Res<AccessKeyRecord> {
        check_name("access_key", &req.access_key)?;
        let g = self.group(req.group, GroupKind::Meta1)?;
        let cmd = Command::DeleteAccessKey {
            access_key: req.access_key,
        };
        match self.write(&g, cmd).await? {
            Reply::AccessKey(b) => {
                let rec: AccessKeyRecord = decode(&b)?;
                tracing::info!(access_key = %rec.access_key, account = %rec.account, "access key deleted");
                Ok(Response::new(rec))
            }
            Reply::Done => Err(Status::not_found("no such access key")),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn accounts_delete_account(
        &self,
        req: DeleteAccountRequest,
    ) -> Res<AccountRecord> {
        check_name("account", &req.account)?;
        let g = self.group(req.group, GroupKind::Meta1)?;
        let cmd = Command::DeleteAccount {
            account: req.account,
        };
        match self.write(&g, cmd).await? {
            Reply::Account(b) => {
                let rec: AccountRecord = decode(&b)?;
                tracing::info!(account = %rec.account, "account deleted");
                Ok(Response::new(rec))
            }
            Reply::Done => Err(Status::not_found("no such account")),
            other => Err(unexpected(other)),
        }
    }
}
