//! S3 access keys: how a new one is made. Keys live in meta1 next to their account;
//! the secret is shown once, when the key is created.

use oxio_proto::v1::AccessKeyRecord;
use rand::distr::{Alphanumeric, SampleString};

/// A fresh access key of `account`: `OXIO` + 16 upper-case letters or digits, and a
/// 40-character secret, both from the thread's CSPRNG.
pub fn new_access_key(account: &str) -> AccessKeyRecord {
    let mut rng = rand::rng();
    AccessKeyRecord {
        access_key: format!(
            "OXIO{}",
            Alphanumeric.sample_string(&mut rng, 16).to_uppercase()
        ),
        secret_key: Alphanumeric.sample_string(&mut rng, 40),
        account: account.to_string(),
        ctime_ms: oxio_common::now_ms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fresh_and_well_formed() {
        let a = new_access_key("acct");
        let b = new_access_key("acct");
        assert_ne!(a.access_key, b.access_key);
        assert_ne!(a.secret_key, b.secret_key);
        assert_eq!(a.access_key.len(), 20);
        assert!(a.access_key.starts_with("OXIO"));
        assert!(a.access_key[4..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        assert_eq!(a.secret_key.len(), 40);
        assert_eq!(a.account, "acct");
    }
}
