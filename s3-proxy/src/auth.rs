//! Access keys: looked up in the directory (meta1) and cached for a short while.

use dashmap::DashMap;
use oxio_sdk::Client;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a looked-up key is trusted without asking the directory again.
const KEY_TTL: Duration = Duration::from_secs(30);
/// Most keys kept in the cache.
const CACHE_MAX: usize = 100_000;

/// Cache of access key → (secret, account).
#[derive(Clone)]
pub struct KeyStore {
    sdk: Client,
    cache: Arc<DashMap<String, (String, String, Instant)>>,
}

impl KeyStore {
    /// A key store reading from the grid's directory.
    pub fn new(sdk: Client) -> Self {
        KeyStore {
            sdk,
            cache: Arc::new(DashMap::new()),
        }
    }

    /// (secret, account) of an access key.
    pub async fn lookup(&self, access_key: &str) -> S3Result<(String, String)> {
        if let Some(e) = self.cache.get(access_key) {
            if e.2.elapsed() < KEY_TTL {
                return Ok((e.0.clone(), e.1.clone()));
            }
        }
        match self.sdk.get_access_key(access_key).await {
            Ok(rec) => {
                if self.cache.len() >= CACHE_MAX {
                    self.cache.clear();
                }
                self.cache.insert(
                    access_key.to_string(),
                    (rec.secret_key.clone(), rec.account.clone(), Instant::now()),
                );
                Ok((rec.secret_key, rec.account))
            }
            Err(oxio_sdk::Error::NoSuchAccessKey) => Err(s3_error!(InvalidAccessKeyId)),
            Err(e) => Err(crate::error::s3_error(e)),
        }
    }
}

/// SigV4 secret lookup for s3s.
pub struct DirectoryAuth(pub KeyStore);

#[async_trait::async_trait]
impl S3Auth for DirectoryAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let (secret, _) = self.0.lookup(access_key).await?;
        Ok(SecretKey::from(secret))
    }
}
