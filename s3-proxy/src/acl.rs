//! Bucket access control lists, canned ones only: `private` (the default) and
//! `public-read` (anyone may GET and HEAD the bucket's objects and list it, see
//! [`crate::anonymous`]). The ACL is kept in the container's meta2 record.
//!
//! CreateBucket and PutBucketAcl take it from `x-amz-acl`; PutBucketAcl also takes an
//! `AccessControlPolicy` body whose grants are exactly those of one of the two canned
//! ACLs (the owner's `FULL_CONTROL`, plus `READ` for the AllUsers group). Other canned
//! ACLs (`public-read-write`, `authenticated-read`), `x-amz-grant-*` headers and any
//! other grant list answer 501 `NotImplemented`. GetBucketAcl answers the owner and
//! its grants as AWS does. Objects have no ACL of their own: a write of one may name
//! only the canned ACL its bucket has ([`check_object`]).

use crate::error::s3_error;
use oxio_sdk::Client;
use s3s::dto::*;
use s3s::{s3_error, S3Result};

/// The AllUsers group (anyone, signed or not), as AWS names it.
pub const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// A canned ACL the gateway serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CannedAcl {
    /// Only the owner's signed requests.
    Private,
    /// Anyone may read objects and list the bucket.
    PublicRead,
}

impl CannedAcl {
    /// The name stored in the container record (and sent in `x-amz-acl`).
    pub fn as_str(self) -> &'static str {
        match self {
            CannedAcl::Private => BucketCannedACL::PRIVATE,
            CannedAcl::PublicRead => BucketCannedACL::PUBLIC_READ,
        }
    }

    /// The ACL a container record holds ("" is private).
    pub fn stored(acl: &str) -> CannedAcl {
        if acl == BucketCannedACL::PUBLIC_READ {
            CannedAcl::PublicRead
        } else {
            CannedAcl::Private
        }
    }

    /// Parses `x-amz-acl`; `NotImplemented` for canned ACLs the gateway does not
    /// serve, `InvalidArgument` for names AWS does not know.
    pub fn parse(acl: &BucketCannedACL) -> S3Result<CannedAcl> {
        CannedAcl::named(acl.as_str())
    }

    /// The canned ACL called `name`, as [`CannedAcl::parse`] answers it.
    fn named(name: &str) -> S3Result<CannedAcl> {
        match name {
            BucketCannedACL::PRIVATE => Ok(CannedAcl::Private),
            BucketCannedACL::PUBLIC_READ => Ok(CannedAcl::PublicRead),
            BucketCannedACL::PUBLIC_READ_WRITE | BucketCannedACL::AUTHENTICATED_READ => {
                Err(unsupported_canned())
            }
            other => Err(s3_error!(InvalidArgument, "invalid canned ACL {other:?}")),
        }
    }
}

/// A canned ACL AWS knows and the gateway does not serve.
fn unsupported_canned() -> s3s::S3Error {
    s3_error!(
        NotImplemented,
        "A header you provided implies functionality that is not implemented: \
         only the private and public-read canned ACLs are supported"
    )
}

/// The `x-amz-grant-*` headers of a request, as the input types carry them.
#[derive(Default)]
pub struct GrantHeaders<'a> {
    /// `x-amz-grant-full-control`.
    pub full_control: Option<&'a str>,
    /// `x-amz-grant-read`.
    pub read: Option<&'a str>,
    /// `x-amz-grant-read-acp`.
    pub read_acp: Option<&'a str>,
    /// `x-amz-grant-write`.
    pub write: Option<&'a str>,
    /// `x-amz-grant-write-acp`.
    pub write_acp: Option<&'a str>,
}

impl GrantHeaders<'_> {
    fn refuse_any(&self) -> S3Result<()> {
        let any = [
            self.full_control,
            self.read,
            self.read_acp,
            self.write,
            self.write_acp,
        ]
        .iter()
        .any(Option::is_some);
        if any {
            return Err(s3_error!(
                NotImplemented,
                "A header you provided implies functionality that is not implemented: \
                 x-amz-grant-* headers are not supported, use x-amz-acl"
            ));
        }
        Ok(())
    }
}

/// The ACL a CreateBucket asks for (`None`: the default, private).
pub fn for_create(input: &CreateBucketInput) -> S3Result<Option<CannedAcl>> {
    GrantHeaders {
        full_control: input.grant_full_control.as_deref(),
        read: input.grant_read.as_deref(),
        read_acp: input.grant_read_acp.as_deref(),
        write: input.grant_write.as_deref(),
        write_acp: input.grant_write_acp.as_deref(),
    }
    .refuse_any()?;
    input.acl.as_ref().map(CannedAcl::parse).transpose()
}

/// The bucket ACL an object's `x-amz-acl` amounts to: the owner-only ones are
/// private, `public-read` is public; others answer as [`CannedAcl::parse`] does.
fn object_canned(acl: &ObjectCannedACL) -> S3Result<CannedAcl> {
    match acl.as_str() {
        ObjectCannedACL::BUCKET_OWNER_FULL_CONTROL | ObjectCannedACL::BUCKET_OWNER_READ => {
            Ok(CannedAcl::Private)
        }
        ObjectCannedACL::AWS_EXEC_READ => Err(unsupported_canned()),
        other => CannedAcl::named(other),
    }
}

/// Checks the ACL a write of an object asks for (`x-amz-acl` and `x-amz-grant-*` on
/// PutObject, CopyObject, CreateMultipartUpload). Objects have no ACL of their own:
/// they are read as their bucket's ACL says. So a canned ACL is accepted when it
/// amounts to the bucket's, and any other answers 501 `NotImplemented` rather than
/// being ignored (an object asked for as private in a public-read bucket would be
/// readable by anyone). Grants are refused as for buckets.
pub async fn check_object(
    sdk: &Client,
    account: &str,
    bucket: &str,
    acl: Option<&ObjectCannedACL>,
    grants: GrantHeaders<'_>,
) -> S3Result<()> {
    grants.refuse_any()?;
    let Some(acl) = acl else {
        return Ok(());
    };
    let wanted = object_canned(acl)?;
    let held = stored(sdk, account, bucket).await?;
    if wanted != held {
        return Err(s3_error!(
            NotImplemented,
            "objects have no ACL of their own: they are read as their bucket's ACL says \
             ({} for bucket {bucket}), and x-amz-acl {} differs; set the bucket's ACL instead",
            held.as_str(),
            acl.as_str()
        ));
    }
    Ok(())
}

/// Whether a grantee is the AllUsers group.
fn is_all_users(g: &Grantee) -> bool {
    g.type_.as_str() == Type::GROUP && g.uri.as_deref() == Some(ALL_USERS_URI)
}

/// Whether a grantee is the owner `account`.
fn is_owner(g: &Grantee, account: &str) -> bool {
    g.type_.as_str() == Type::CANONICAL_USER && g.id.as_deref() == Some(account)
}

/// The canned ACL an `AccessControlPolicy` amounts to, when it is one.
pub fn from_policy(policy: &AccessControlPolicy, account: &str) -> S3Result<CannedAcl> {
    let unsupported = || {
        s3_error!(
            NotImplemented,
            "only the grants of the private and public-read canned ACLs are supported"
        )
    };
    if let Some(id) = policy.owner.as_ref().and_then(|o| o.id.as_deref()) {
        if id != account {
            return Err(s3_error!(
                AccessDenied,
                "the owner of a bucket cannot change"
            ));
        }
    }
    let mut owner_full = false;
    let mut public_read = false;
    for grant in policy.grants.iter().flatten() {
        let (Some(grantee), Some(permission)) = (&grant.grantee, &grant.permission) else {
            return Err(s3_error!(
                MalformedACLError,
                "a grant needs a grantee and a permission"
            ));
        };
        match permission.as_str() {
            Permission::FULL_CONTROL if is_owner(grantee, account) => owner_full = true,
            Permission::READ if is_all_users(grantee) => public_read = true,
            _ => return Err(unsupported()),
        }
    }
    if !owner_full {
        return Err(unsupported());
    }
    Ok(if public_read {
        CannedAcl::PublicRead
    } else {
        CannedAcl::Private
    })
}

/// The ACL a PutBucketAcl sets: `x-amz-acl` or the policy in its body (not both).
pub fn for_put(input: &PutBucketAclInput, account: &str) -> S3Result<CannedAcl> {
    GrantHeaders {
        full_control: input.grant_full_control.as_deref(),
        read: input.grant_read.as_deref(),
        read_acp: input.grant_read_acp.as_deref(),
        write: input.grant_write.as_deref(),
        write_acp: input.grant_write_acp.as_deref(),
    }
    .refuse_any()?;
    match (&input.acl, &input.access_control_policy) {
        (Some(_), Some(_)) => Err(s3_error!(
            UnexpectedContent,
            "This request does not support content when x-amz-acl is given"
        )),
        (Some(acl), None) => CannedAcl::parse(acl),
        (None, Some(policy)) => from_policy(policy, account),
        (None, None) => Err(s3_error!(
            MissingSecurityHeader,
            "Your request was missing a required header: x-amz-acl"
        )),
    }
}

/// The owner as AWS shows it (the account is both id and display name).
fn owner(account: &str) -> Owner {
    Owner {
        display_name: Some(account.to_string()),
        id: Some(account.to_string()),
    }
}

/// The grants of a canned ACL owned by `account`.
pub fn grants(acl: CannedAcl, account: &str) -> Grants {
    let mut out = vec![Grant {
        grantee: Some(Grantee {
            display_name: Some(account.to_string()),
            email_address: None,
            id: Some(account.to_string()),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }];
    if acl == CannedAcl::PublicRead {
        out.push(Grant {
            grantee: Some(Grantee {
                display_name: None,
                email_address: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                uri: Some(ALL_USERS_URI.to_string()),
            }),
            permission: Some(Permission::from_static(Permission::READ)),
        });
    }
    out
}

/// The canned ACL stored for a bucket.
pub async fn stored(sdk: &Client, account: &str, bucket: &str) -> S3Result<CannedAcl> {
    let stats = sdk
        .container_stats(account, bucket)
        .await
        .map_err(s3_error)?;
    Ok(CannedAcl::stored(&stats.acl))
}

/// Stores a bucket's canned ACL.
pub async fn set(sdk: &Client, account: &str, bucket: &str, acl: CannedAcl) -> S3Result<()> {
    sdk.set_container_acl(account, bucket, acl.as_str())
        .await
        .map_err(s3_error)?;
    Ok(())
}

/// GetBucketAcl.
pub async fn get_bucket(sdk: &Client, account: &str, bucket: &str) -> S3Result<GetBucketAclOutput> {
    let acl = stored(sdk, account, bucket).await?;
    Ok(GetBucketAclOutput {
        grants: Some(grants(acl, account)),
        owner: Some(owner(account)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(grants: Grants) -> AccessControlPolicy {
        AccessControlPolicy {
            grants: Some(grants),
            owner: Some(owner("dev")),
        }
    }

    #[test]
    fn canned_acls_round_trip_through_their_grants() {
        for acl in [CannedAcl::Private, CannedAcl::PublicRead] {
            let p = policy(grants(acl, "dev"));
            assert_eq!(from_policy(&p, "dev").unwrap(), acl);
            assert_eq!(CannedAcl::stored(acl.as_str()), acl);
        }
        assert_eq!(CannedAcl::stored(""), CannedAcl::Private);
    }

    #[test]
    fn other_acls_are_not_implemented() {
        let e = CannedAcl::parse(&BucketCannedACL::from_static("public-read-write")).unwrap_err();
        assert_eq!(*e.code(), s3s::S3ErrorCode::NotImplemented);
        let e = CannedAcl::parse(&BucketCannedACL::from_static("nonsense")).unwrap_err();
        assert_eq!(*e.code(), s3s::S3ErrorCode::InvalidArgument);
        // Write access for everyone is not a canned ACL the gateway serves.
        let mut g = grants(CannedAcl::PublicRead, "dev");
        g[1].permission = Some(Permission::from_static(Permission::WRITE));
        let e = from_policy(&policy(g), "dev").unwrap_err();
        assert_eq!(*e.code(), s3s::S3ErrorCode::NotImplemented);
        // Someone else's owner id.
        let e = from_policy(&policy(grants(CannedAcl::Private, "dev")), "other").unwrap_err();
        assert_eq!(*e.code(), s3s::S3ErrorCode::AccessDenied);
    }

    #[test]
    fn grant_headers_are_refused() {
        let input = CreateBucketInput {
            bucket: "b".into(),
            grant_read: Some("uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"".into()),
            ..Default::default()
        };
        let e = for_create(&input).unwrap_err();
        assert_eq!(*e.code(), s3s::S3ErrorCode::NotImplemented);
    }
}
