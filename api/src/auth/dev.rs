//! Dev tokens: HS256 JWTs signed with a key kept in the data directory.
//!
//! `longhaul up` and `longhaul token` share the key through a file, so a token
//! printed by one process is accepted by the other. Production never has the
//! file: it verifies RS256 tokens against a JWKS instead.
//!
//! The key file holds 32 random bytes as 64 lowercase hex characters and a
//! newline. Hex rather than raw bytes so that the file survives being copied
//! through a terminal, a Kubernetes secret or an environment variable.

use std::{
    io::Write,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::Role;

/// The length of a new dev key. 256 bits is what HS256 needs to be as strong
/// as its hash.
const DEV_KEY_BYTES: usize = 32;

/// Reads the dev key at `path`, creating it (and its parent directory) with
/// fresh random bytes and mode 0600 if it does not exist.
///
/// Two processes racing to create the key both end up with the same one: the
/// file is created with `create_new`, and the loser reads the winner's.
pub fn load_or_create_dev_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.exists() {
        return load_dev_key(path);
    }
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the directory {} for the dev signing key", parent.display()))?;
    }
    let key: [u8; DEV_KEY_BYTES] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Set at creation, not after: there is no moment where others can read it.
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            writeln!(file, "{}", hex::encode(key))
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write the dev signing key to {}", path.display()))?;
            Ok(key.to_vec())
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => load_dev_key(path),
        Err(err) => Err(err).with_context(|| format!("cannot create the dev signing key at {}", path.display())),
    }
}

/// Reads the dev key at `path`, which must exist.
pub fn load_dev_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the dev signing key at {}", path.display()))?;
    let key = hex::decode(text.trim()).with_context(|| {
        format!("the dev signing key at {} is not hex; delete it to have a new one created", path.display())
    })?;
    if key.len() < DEV_KEY_BYTES {
        bail!("the dev signing key at {} has {} bytes; at least {DEV_KEY_BYTES} are needed", path.display(), key.len());
    }
    Ok(key)
}

#[derive(Serialize)]
struct DevClaims<'a> {
    sub: &'a str,
    tenant_id: &'a str,
    role: Role,
    iat: u64,
    exp: u64,
}

/// Mints an HS256 token for `user` of `tenant` with `role`, valid for `ttl`.
pub fn mint_dev_token(key: &[u8], tenant: &str, user: &str, role: Role, ttl: Duration) -> anyhow::Result<String> {
    if tenant.is_empty() || user.is_empty() {
        bail!("a token needs a non-empty tenant and user");
    }
    // The API refuses such a token; better to say so here than to hand one out.
    if let Err(reason) = longhaul_jobs::model::check_tenant_id(tenant) {
        bail!("cannot mint a token for tenant `{}`: {reason}", tenant.escape_debug());
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).context("the system clock is before 1970")?;
    let claims =
        DevClaims { sub: user, tenant_id: tenant, role, iat: now.as_secs(), exp: now.saturating_add(ttl).as_secs() };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key))
        .context("cannot sign the dev token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_is_loaded_back_unchanged() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("nested/dev-signing.key");
        let created = load_or_create_dev_key(&path).expect("the key is created");
        assert_eq!(created.len(), DEV_KEY_BYTES);
        assert_eq!(load_or_create_dev_key(&path).expect("the key is read back"), created);
        assert_eq!(load_dev_key(&path).expect("the key loads"), created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn no_token_is_minted_for_a_reserved_tenant() {
        let err = mint_dev_token(&[1; 32], "_longhaul", "u", Role::Platform, Duration::from_secs(60))
            .expect_err("a reserved tenant");
        assert!(err.to_string().contains("reserved"), "{err}");
        assert!(mint_dev_token(&[1; 32], "acme", "u", Role::User, Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn a_missing_key_is_an_error_for_load() {
        let dir = tempfile::tempdir().expect("a temp dir");
        assert!(load_dev_key(&dir.path().join("absent.key")).is_err());
    }

    #[test]
    fn a_short_or_garbled_key_is_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("short.key");
        std::fs::write(&path, "abcd\n").expect("write");
        assert!(load_dev_key(&path).is_err());
        std::fs::write(&path, "not hex at all").expect("write");
        assert!(load_dev_key(&path).is_err());
    }
}
