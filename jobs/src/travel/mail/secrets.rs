//! Envelope encryption for the credentials users give us.
//!
//! Every secret is sealed with AES-256-GCM under a fresh 256-bit data key;
//! the data key is itself sealed ("wrapped") by a key-encryption key (KEK).
//! Only the wrapped data key is stored beside the ciphertext. Both
//! encryptions take the same associated data (for a mail account: tenant,
//! user and account id), so a sealed secret moved to another row, tenant or
//! user fails to open instead of leaking.
//!
//! The KEK sits behind [`KeyWrapper`], the shape of AWS KMS's
//! `GenerateDataKey`/`Decrypt` with an encryption context: [`LocalKeys`]
//! keeps KEKs from configuration (`LONGHAUL_SECRET_KEYS`); a KMS wrapper is
//! the same three methods. Several KEKs may be configured: the first seals,
//! any of them opens (each sealed secret records its KEK's id), so a key is
//! rotated by putting the new one first and re-sealing at leisure.

use std::{collections::HashMap, fmt, path::Path, sync::Arc};

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Key, Nonce,
};
use async_trait::async_trait;
use base64::{engine::general_purpose::STANDARD, Engine};
use rand::RngCore;
use zeroize::Zeroizing;

/// The configuration variable that holds the KEKs.
pub const SECRET_KEYS_VAR: &str = "LONGHAUL_SECRET_KEYS";

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Bad configuration: names what to fix.
    #[error("{0}")]
    Config(String),
    /// The sealed secret names a KEK we do not have.
    #[error("the secret was sealed with key `{0}`, which is not configured in LONGHAUL_SECRET_KEYS")]
    UnknownKey(String),
    /// Wrong key, wrong associated data, or tampered bytes.
    #[error("the secret does not open: it was sealed for another account, or with another key, or it was altered")]
    Tampered,
}

pub type Result<T, E = SecretError> = std::result::Result<T, E>;

/// A secret as it is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Which KEK wrapped the data key.
    pub key_id: String,
    /// The data key, wrapped by the KEK (nonce, then ciphertext and tag).
    pub data_key: Vec<u8>,
    pub nonce: Vec<u8>,
    /// The secret, sealed by the data key (ciphertext and tag).
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// Wraps and unwraps data keys with a key-encryption key: local keys from
/// configuration, or a KMS.
#[async_trait]
pub trait KeyWrapper: Send + Sync {
    /// The KEK new secrets are sealed with.
    fn current_key_id(&self) -> &str;
    /// Seals `data_key` with the current KEK, bound to `context`.
    async fn wrap(&self, data_key: &[u8], context: &[u8]) -> Result<Vec<u8>>;
    /// Opens a data key that `key_id` wrapped for `context`.
    async fn unwrap(&self, key_id: &str, wrapped: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

/// Envelope encryption over a [`KeyWrapper`].
#[derive(Clone)]
pub struct Envelope {
    wrapper: Arc<dyn KeyWrapper>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope").field("current_key_id", &self.wrapper.current_key_id()).finish()
    }
}

impl Envelope {
    pub fn new(wrapper: Arc<dyn KeyWrapper>) -> Envelope {
        Envelope { wrapper }
    }

    /// Seals `plaintext` under a fresh data key, bound to `context`.
    pub async fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed> {
        let mut data_key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(data_key.as_mut_slice());
        let (nonce, ciphertext) = seal_with(data_key.as_slice(), plaintext, context)?;
        let wrapped = self.wrapper.wrap(data_key.as_slice(), context).await?;
        Ok(Sealed { key_id: self.wrapper.current_key_id().to_owned(), data_key: wrapped, nonce, ciphertext })
    }

    /// Opens what [`Envelope::seal`] sealed for the same `context`.
    pub async fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let data_key = self.wrapper.unwrap(&sealed.key_id, &sealed.data_key, context).await?;
        open_with(&data_key, &sealed.nonce, &sealed.ciphertext, context)
    }
}

fn cipher(key: &[u8]) -> Result<Aes256Gcm> {
    if key.len() != 32 {
        return Err(SecretError::Tampered);
    }
    Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)))
}

fn seal_with(key: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let ciphertext = cipher(key)?
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .map_err(|_| SecretError::Tampered)?;
    Ok((nonce.to_vec(), ciphertext))
}

fn open_with(key: &[u8], nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if nonce.len() != NONCE_LEN {
        return Err(SecretError::Tampered);
    }
    cipher(key)?
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad })
        .map(Zeroizing::new)
        .map_err(|_| SecretError::Tampered)
}

/// KEKs held in memory, from configuration: `id:base64[,id:base64…]`, each
/// key 32 random bytes. The first seals.
pub struct LocalKeys {
    current: String,
    keys: HashMap<String, Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for LocalKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("LocalKeys").field("current", &self.current).field("ids", &ids).finish()
    }
}

impl LocalKeys {
    /// Parses `id:base64[,id:base64…]`.
    pub fn parse(spec: &str) -> Result<LocalKeys> {
        let mut current = None;
        let mut keys = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            let Some((id, encoded)) = entry.split_once(':') else {
                return Err(SecretError::Config(format!(
                    "{SECRET_KEYS_VAR}: each key is `id:base64`, and one has no `:`"
                )));
            };
            let id = id.trim();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(SecretError::Config(format!(
                    "{SECRET_KEYS_VAR}: key ids are letters, digits, `-`, `_` and `.`; got `{id}`"
                )));
            }
            let key =
                Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|err| {
                    SecretError::Config(format!("{SECRET_KEYS_VAR}: key `{id}` is not base64: {err}"))
                })?);
            if key.len() != 32 {
                return Err(SecretError::Config(format!(
                    "{SECRET_KEYS_VAR}: key `{id}` is {} bytes; AES-256 needs 32 (`openssl rand -base64 32`)",
                    key.len()
                )));
            }
            if keys.insert(id.to_owned(), key).is_some() {
                return Err(SecretError::Config(format!("{SECRET_KEYS_VAR}: key `{id}` is given twice")));
            }
            current.get_or_insert_with(|| id.to_owned());
        }
        let current =
            current.ok_or_else(|| SecretError::Config(format!("{SECRET_KEYS_VAR} is set but holds no key")))?;
        Ok(LocalKeys { current, keys })
    }

    /// A new key in the `id:base64` form, for `up`'s data directory.
    pub fn generate(id: &str) -> Zeroizing<String> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut_slice());
        Zeroizing::new(format!("{id}:{}", STANDARD.encode(key.as_slice())))
    }

    /// Reads the keys from `path`, first creating it (mode 0600) with one new
    /// key if it does not exist: the embedded defaults' key.
    pub fn load_or_create(path: &Path) -> Result<LocalKeys> {
        let io = |err: std::io::Error| SecretError::Config(format!("{}: {err}", path.display()));
        if !path.exists() {
            let spec = LocalKeys::generate("local-1");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => std::io::Write::write_all(&mut file, spec.as_bytes()).map_err(io)?,
                // Another process made it first: read theirs.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(io(err)),
            }
        }
        let spec = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        LocalKeys::parse(&spec)
    }
}

#[async_trait]
impl KeyWrapper for LocalKeys {
    fn current_key_id(&self) -> &str {
        &self.current
    }

    async fn wrap(&self, data_key: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        let kek = self.keys.get(&self.current).ok_or_else(|| SecretError::UnknownKey(self.current.clone()))?;
        let (mut nonce, ciphertext) = seal_with(kek, data_key, context)?;
        nonce.extend_from_slice(&ciphertext);
        Ok(nonce)
    }

    async fn unwrap(&self, key_id: &str, wrapped: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let kek = self.keys.get(key_id).ok_or_else(|| SecretError::UnknownKey(key_id.to_owned()))?;
        let (nonce, ciphertext) = wrapped.split_at_checked(NONCE_LEN).ok_or(SecretError::Tampered)?;
        open_with(kek, nonce, ciphertext, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(spec: &str) -> Envelope {
        Envelope::new(Arc::new(LocalKeys::parse(spec).expect("valid keys")))
    }

    #[tokio::test]
    async fn a_sealed_secret_opens_only_with_its_context_and_bytes() {
        let keys = LocalKeys::generate("k1");
        let envelope = envelope(&keys);
        let sealed = envelope.seal(b"hunter2", b"tenant-a\0user-1\0account-1").await.expect("seals");
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"hunter2"));
        let opened = envelope.open(&sealed, b"tenant-a\0user-1\0account-1").await.expect("opens");
        assert_eq!(opened.as_slice(), b"hunter2");
        // Another tenant, user or account: it does not open.
        for context in [&b"tenant-b\0user-1\0account-1"[..], b"tenant-a\0user-2\0account-1", b""] {
            assert!(matches!(envelope.open(&sealed, context).await, Err(SecretError::Tampered)));
        }
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(matches!(envelope.open(&flipped, b"tenant-a\0user-1\0account-1").await, Err(SecretError::Tampered)));
        // Two seals of one secret share nothing.
        let again = envelope.seal(b"hunter2", b"tenant-a\0user-1\0account-1").await.expect("seals");
        assert_ne!(again.ciphertext, sealed.ciphertext);
        assert_ne!(again.data_key, sealed.data_key);
    }

    #[tokio::test]
    async fn rotation_keeps_old_secrets_readable_and_seals_with_the_new_key() {
        let old = LocalKeys::generate("old");
        let sealed = envelope(&old).seal(b"s3cret", b"ctx").await.expect("seals");
        let new = LocalKeys::generate("new");
        let rotated = envelope(&format!("{},{}", new.as_str(), old.as_str()));
        assert_eq!(rotated.open(&sealed, b"ctx").await.expect("opens").as_slice(), b"s3cret");
        assert_eq!(rotated.seal(b"x", b"ctx").await.expect("seals").key_id, "new");
        let forgotten = envelope(&new);
        assert!(matches!(forgotten.open(&sealed, b"ctx").await, Err(SecretError::UnknownKey(id)) if id == "old"));
    }

    #[test]
    fn bad_key_configuration_is_named() {
        for (spec, says) in [
            ("", "holds no key"),
            ("nocolon", "no `:`"),
            ("k1:not base64!", "not base64"),
            ("k1:AAAA", "3 bytes"),
            ("bad id:AAAA", "key ids"),
        ] {
            let err = LocalKeys::parse(spec).expect_err(spec).to_string();
            assert!(err.contains(says), "{spec}: {err}");
        }
        let key = LocalKeys::generate("k1");
        let err = LocalKeys::parse(&format!("{},{}", key.as_str(), key.as_str())).expect_err("twice").to_string();
        assert!(err.contains("twice"), "{err}");
        assert!(!format!("{:?}", LocalKeys::parse(&key).expect("valid")).contains(&key[3..]));
    }
}
