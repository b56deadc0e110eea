//! `x-amz-storage-class` → storage policy, through a table in the gateway's config.
//! A class mapped to "" names no policy: the bucket default and the size rule of the
//! sdk decide. The class is stored with the object (system_meta `storage-class`,
//! except `STANDARD`) and served back on GET, HEAD and in listings.

use crate::error::{Error, Result};
use oxio_common::StoragePolicy;
use oxio_sdk::{ContentHeader, PutOptions};
use s3s::{s3_error, S3Result};
use std::collections::HashMap;

/// Stored system header: the S3 storage class given at PUT (absent for STANDARD).
pub const SYS_STORAGE_CLASS: &str = "storage-class";
/// The class of objects put without one.
pub const STANDARD: &str = "STANDARD";
/// Most classes a table may hold.
pub const MAX_CLASSES: usize = 64;
/// Longest class name.
pub const MAX_CLASS_BYTES: usize = 64;

/// The default table: class → policy name ("" = no policy of its own).
pub fn default_storage_classes() -> HashMap<String, String> {
    [
        (STANDARD, ""),
        ("REDUCED_REDUNDANCY", "TWOCOPIES"),
        ("STANDARD_IA", "EC42"),
        ("ONEZONE_IA", "TWOCOPIES"),
    ]
    .into_iter()
    .map(|(c, p)| (c.to_string(), p.to_string()))
    .collect()
}

/// The checked table of storage classes.
#[derive(Clone, Debug)]
pub struct StorageClasses {
    table: HashMap<String, Option<StoragePolicy>>,
}

impl Default for StorageClasses {
    fn default() -> Self {
        // The built-in table only holds valid names.
        StorageClasses::new(&default_storage_classes()).unwrap_or(StorageClasses {
            table: HashMap::new(),
        })
    }
}

impl StorageClasses {
    /// Checks a class → policy-name table. `STANDARD` is always accepted (mapped to
    /// no policy unless the table says otherwise).
    pub fn new(config: &HashMap<String, String>) -> Result<Self> {
        if config.len() > MAX_CLASSES {
            return Err(Error::Config(format!(
                "more than {MAX_CLASSES} storage classes"
            )));
        }
        let mut table = HashMap::new();
        table.insert(STANDARD.to_string(), None);
        for (class, policy) in config {
            if class.is_empty() || class.len() > MAX_CLASS_BYTES {
                return Err(Error::Config(format!("storage class name {class:?}")));
            }
            let p = if policy.is_empty() {
                None
            } else {
                Some(
                    policy
                        .parse::<StoragePolicy>()
                        .map_err(|e| Error::Config(format!("storage class {class}: {e}")))?,
                )
            };
            table.insert(class.clone(), p);
        }
        Ok(StorageClasses { table })
    }

    /// The policy of `class` (`None`: none of its own), or `InvalidStorageClass`.
    pub fn policy_of(&self, class: &str) -> S3Result<Option<StoragePolicy>> {
        match self.table.get(class) {
            Some(p) => Ok(*p),
            None => Err(s3_error!(
                InvalidStorageClass,
                "The storage class you specified is not valid"
            )),
        }
    }

    /// Applies the request's class to `opts`: its policy (if it has one) and the
    /// stored class (dropped for STANDARD or no class).
    pub fn apply(&self, class: Option<&str>, opts: &mut PutOptions) -> S3Result<()> {
        opts.system_meta.remove(SYS_STORAGE_CLASS);
        let Some(class) = class.filter(|c| !c.is_empty()) else {
            return Ok(());
        };
        if let Some(p) = self.policy_of(class)? {
            opts.policy = Some(p);
        }
        if class != STANDARD {
            opts.system_meta
                .insert(SYS_STORAGE_CLASS.to_string(), class.to_string());
        }
        Ok(())
    }
}

/// The class an object is served with: `None` for STANDARD (omitted, as AWS does).
pub fn served_class(h: &ContentHeader) -> Option<String> {
    h.system_meta
        .get(SYS_STORAGE_CLASS)
        .filter(|c| !c.is_empty() && c.as_str() != STANDARD)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_maps_the_aws_classes() {
        let t = StorageClasses::default();
        assert_eq!(t.policy_of("STANDARD").unwrap(), None);
        assert_eq!(
            t.policy_of("REDUCED_REDUNDANCY").unwrap(),
            Some(StoragePolicy::Replicated { copies: 2 })
        );
        assert_eq!(
            t.policy_of("STANDARD_IA").unwrap(),
            Some(StoragePolicy::ErasureCoded { k: 4, m: 2 })
        );
        let e = t.policy_of("GLACIER_FANCY").unwrap_err();
        assert_eq!(e.code(), &s3s::S3ErrorCode::InvalidStorageClass);
    }

    #[test]
    fn apply_sets_policy_and_stored_class() {
        let t = StorageClasses::default();
        let mut o = PutOptions::default();
        t.apply(Some("ONEZONE_IA"), &mut o).unwrap();
        assert_eq!(o.policy, Some(StoragePolicy::Replicated { copies: 2 }));
        assert_eq!(o.system_meta[SYS_STORAGE_CLASS], "ONEZONE_IA");

        // STANDARD: no policy, nothing stored; a copied class is dropped.
        let mut o = PutOptions::default();
        o.system_meta
            .insert(SYS_STORAGE_CLASS.into(), "ONEZONE_IA".into());
        t.apply(Some("STANDARD"), &mut o).unwrap();
        assert_eq!(o.policy, None);
        assert!(!o.system_meta.contains_key(SYS_STORAGE_CLASS));

        let mut o = PutOptions::default();
        assert!(t.apply(Some("NOPE"), &mut o).is_err());
    }

    #[test]
    fn configured_tables_are_checked() {
        let mut c = default_storage_classes();
        c.insert("ARCHIVE".into(), "EC84".into());
        let t = StorageClasses::new(&c).unwrap();
        assert_eq!(
            t.policy_of("ARCHIVE").unwrap(),
            Some(StoragePolicy::ErasureCoded { k: 8, m: 4 })
        );
        c.insert("BAD".into(), "EC".into());
        assert!(StorageClasses::new(&c).is_err());
    }

    #[test]
    fn served_class_omits_standard() {
        let mut h = ContentHeader::default();
        assert_eq!(served_class(&h), None);
        h.system_meta
            .insert(SYS_STORAGE_CLASS.into(), "REDUCED_REDUNDANCY".into());
        assert_eq!(served_class(&h).as_deref(), Some("REDUCED_REDUNDANCY"));
    }
}
