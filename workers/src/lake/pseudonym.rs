//! Pseudonyms for personal data in the lake: HMAC-SHA-256 of the value
//! under a key of the tenant's own.
//!
//! A keyed hash, not a plain one: an email address or a phone number has
//! too few possible values for an unkeyed hash to hide it (anyone could hash
//! every phone number and look the result up). The same value under the
//! same key always gives the same pseudonym, so a user still joins across
//! files and hours; another tenant's key gives another one, so tenants'
//! lakes cannot be joined on a person. Each key is 32 random bytes, made on
//! the tenant's first export and kept sealed in the database by the
//! key-encryption keys that seal mail credentials; deleting it makes every
//! pseudonym of the tenant unlinkable for good.

use hmac::{Hmac, Mac};
use longhaul_jobs::{database::DynStore, travel::mail::Envelope};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::JobError;

/// Makes pseudonyms under one tenant's key.
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Hmac<Sha256>,
}

impl Pseudonymiser {
    pub fn new(key: &[u8]) -> Pseudonymiser {
        // HMAC takes a key of any length; this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        Pseudonymiser { mac }
    }

    /// The pseudonym of `value`: 64 hex digits.
    pub fn pseudonym(&self, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The tenant's pseudonymiser, its key made and sealed on first use.
    /// Two exports of one tenant racing to make it agree on the one stored
    /// first.
    pub async fn of_tenant(store: &DynStore, secrets: &Envelope, tenant_id: &str) -> Result<Pseudonymiser, JobError> {
        let context = format!("lake-key:{tenant_id}");
        let sealed = match store.lake_key(tenant_id).await? {
            Some(sealed) => sealed,
            None => {
                let mut key = Zeroizing::new([0u8; 32]);
                rand::rng().fill_bytes(key.as_mut_slice());
                let sealed = secrets
                    .seal(key.as_slice(), context.as_bytes())
                    .await
                    .map_err(|err| JobError::retryable(format!("cannot seal the tenant's lake key: {err}")))?;
                store.insert_lake_key(tenant_id, &sealed).await?
            }
        };
        let key = secrets.open(&sealed, context.as_bytes()).await.map_err(|err| {
            JobError::permanent(format!(
                "cannot open the tenant's lake key ({err}); the key-encryption keys (LONGHAUL_SECRET_KEYS) \
                 must include the one that sealed it"
            ))
        })?;
        Ok(Pseudonymiser::new(&key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_value_under_the_same_key_is_the_same_pseudonym_and_another_key_another() {
        let acme = Pseudonymiser::new(b"acme's key");
        let globex = Pseudonymiser::new(b"globex's key");
        assert_eq!(acme.pseudonym("alice@example.com"), acme.pseudonym("alice@example.com"));
        assert_ne!(acme.pseudonym("alice@example.com"), acme.pseudonym("bob@example.com"));
        assert_ne!(acme.pseudonym("alice@example.com"), globex.pseudonym("alice@example.com"));
        assert_eq!(acme.pseudonym("x").len(), 64);
    }
}
