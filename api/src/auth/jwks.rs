//! The RS256 keys of the identity provider (Cognito), fetched from its JWKS URL.
//!
//! Keys are cached by `kid`. A token with an unknown `kid` triggers a refetch,
//! because that is how a key rotation shows up, but at most once per
//! [`REFETCH_INTERVAL`]: otherwise anyone could make the API hammer the
//! identity provider by sending tokens with made-up `kid`s.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use jsonwebtoken::{jwk::Jwk, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

/// The shortest time between two fetches of the key set.
const REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// How long one fetch may take. Token checks wait for it, so keep it short.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no key could be found for a token.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The set was fetched (now or recently) and has no such key: the token
    /// was not signed by our identity provider.
    #[error("no signing key with kid `{0}`")]
    UnknownKid(String),
    /// The set could not be fetched and no cached key matches: nothing can be
    /// said about the token, which is the server's problem, not the client's.
    #[error("cannot fetch the signing keys: {0:#}")]
    Unavailable(anyhow::Error),
}

/// A cached, lazily refreshed key set.
pub struct JwksCache {
    url: String,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, Arc<DecodingKey>>>,
    /// Held while fetching, so concurrent misses make one request, not many.
    /// Holds the last fetch attempt: when, and whether it succeeded.
    last_fetch: Mutex<Option<LastFetch>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").field("url", &self.url).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct LastFetch {
    at: Instant,
    succeeded: bool,
}

/// The JWKS document. Keys are parsed one by one, so that one key of a type
/// this library does not know does not hide the others.
#[derive(Deserialize)]
struct KeySet {
    keys: Vec<serde_json::Value>,
}

impl JwksCache {
    pub fn new(url: &str) -> anyhow::Result<JwksCache> {
        reqwest::Url::parse(url).with_context(|| format!("the JWKS URL `{url}` is not a valid URL"))?;
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .context("cannot build the HTTP client for the JWKS")?;
        Ok(JwksCache { url: url.to_owned(), client, keys: RwLock::new(HashMap::new()), last_fetch: Mutex::new(None) })
    }

    /// The key with id `kid`, fetching the set if it is not cached yet.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, JwksError> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(Arc::clone(key));
        }
        let mut last_fetch = self.last_fetch.lock().await;
        // Another request may have refreshed the set while this one waited.
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(Arc::clone(key));
        }
        if let Some(last) = *last_fetch {
            if last.at.elapsed() < REFETCH_INTERVAL {
                // Within the interval the answer of the last fetch stands: the
                // key is unknown, or the keys could not be had at all.
                return Err(if last.succeeded {
                    JwksError::UnknownKid(kid.to_owned())
                } else {
                    JwksError::Unavailable(anyhow::anyhow!("the last fetch failed; retrying later"))
                });
            }
        }
        let fetched = self.fetch().await;
        *last_fetch = Some(LastFetch { at: Instant::now(), succeeded: fetched.is_ok() });
        let fetched = fetched.map_err(|err| {
            tracing::warn!(url = %self.url, error = %format!("{err:#}"), "cannot fetch the JWKS");
            JwksError::Unavailable(err)
        })?;
        let found = fetched.get(kid).cloned();
        *self.keys.write().await = fetched;
        found.ok_or_else(|| JwksError::UnknownKid(kid.to_owned()))
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, Arc<DecodingKey>>> {
        let set: KeySet = self
            .client
            .get(&self.url)
            .send()
            .await
            .context("request failed")?
            .error_for_status()
            .context("the JWKS endpoint answered with an error")?
            .json()
            .await
            .context("the JWKS is not a JSON key set")?;
        let keys: HashMap<_, _> = set.keys.into_iter().filter_map(signing_key).collect();
        tracing::info!(url = %self.url, keys = keys.len(), "fetched the JWKS");
        Ok(keys)
    }
}

/// An RSA signing key with a `kid`, or None for anything else in the set
/// (encryption keys, other key types), which is skipped.
fn signing_key(value: serde_json::Value) -> Option<(String, Arc<DecodingKey>)> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    let is_rsa = matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_));
    let for_signing = !matches!(jwk.common.public_key_use, Some(jsonwebtoken::jwk::PublicKeyUse::Encryption));
    let kid = jwk.common.key_id.clone()?;
    if !(is_rsa && for_signing) {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, Arc::new(key)))
}
