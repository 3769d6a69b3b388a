//! Who is calling: bearer JWTs turned into a [`Principal`].
//!
//! Two kinds of token are accepted:
//! - **RS256** tokens from the identity provider (Cognito-compatible), checked
//!   against the keys at [`AuthConfig::jwks_url`];
//! - **HS256** dev tokens, only when [`AuthConfig::dev_key`] is set (see
//!   [`mint_dev_token`]).
//!
//! The algorithm decides which key is used, and each key is tried only with its
//! own algorithm, so an HS256 token can never be checked against an RSA public
//! key (the classic algorithm-confusion attack).
//!
//! Every token needs `exp`, and is refused before its `nbf` (both with
//! [`LEEWAY_SECS`] of tolerance for clocks that differ). A `token_use` other
//! than `id` or `access` (Cognito's two kinds) is refused. The identity
//! provider's tokens are further held to [`AuthConfig::issuer`] (`iss` must
//! be present and equal) and [`AuthConfig::audiences`] (an id token's `aud`,
//! an access token's `client_id`, must be one of them); dev tokens are not,
//! because whoever holds the dev key can write any claim anyway. Finally the
//! tenant id must be a sane one that is not reserved for the platform
//! ([`longhaul_jobs::model::check_tenant_id`]): a token naming the sweep's
//! tenant would otherwise act for every tenant.

mod dev;
mod jwks;

use std::{fmt, str::FromStr, sync::Arc};

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderMap},
};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use longhaul_jobs::{model::check_tenant_id, Scope};
use serde::{Deserialize, Serialize};

pub use dev::{load_dev_key, load_or_create_dev_key, mint_dev_token};
use jwks::{JwksCache, JwksError};

use crate::{problem::Problem, AppState};

/// What a caller may do. Ordered: each role can do what the one before can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A person using the app: their own jobs.
    User,
    /// An operator of one tenant: every job and queue of it.
    Admin,
    /// An operator of the whole platform: every tenant.
    Platform,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Platform => "platform",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            "platform" => Ok(Role::Platform),
            other => Err(anyhow::anyhow!("unknown role `{other}`; expected user, admin or platform")),
        }
    }
}

/// How tokens are verified. With neither field set no token can be verified,
/// and [`crate::router`] refuses to start.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// The HS256 key of dev tokens. Production leaves it unset.
    pub dev_key: Option<Vec<u8>>,
    /// Where the identity provider publishes its RS256 keys, such as
    /// `https://cognito-idp.<region>.amazonaws.com/<pool>/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
    /// The identity provider's issuer (`iss`), such as
    /// `https://cognito-idp.<region>.amazonaws.com/<pool>`. When set, its
    /// tokens must carry exactly this `iss`.
    pub issuer: Option<String>,
    /// The app client ids the API serves. When not empty, an id token's
    /// `aud` (or a token without `token_use`'s) or an access token's
    /// `client_id` must be one of them.
    pub audiences: Vec<String>,
}

/// Never prints the key, so the config can be logged.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("dev_key", &self.dev_key.as_ref().map(|_| "<redacted>"))
            .field("jwks_url", &self.jwks_url)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .finish()
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: String,
    pub user_id: String,
    pub role: Role,
    /// The user's language, from the OpenID `locale` claim (a Cognito
    /// standard attribute), such as `pt-BR`; reports default to it.
    pub locale: Option<String>,
    /// The user's name, from the OpenID `name` claim; the yearly video's
    /// title card shows it.
    pub name: Option<String>,
    /// When the credential stops working: the token's `exp`, or the end of
    /// a dashboard session. Event streams end then (see `sse`), so that a
    /// stream opened once does not outlive its token.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Principal {
    /// What this caller may read: their jobs, their tenant's, or everything.
    pub fn scope(&self) -> Scope {
        match self.role {
            Role::User => Scope::User { tenant_id: self.tenant_id.clone(), user_id: self.user_id.clone() },
            Role::Admin => Scope::Tenant { tenant_id: self.tenant_id.clone() },
            Role::Platform => Scope::Platform,
        }
    }

    /// A 403 unless the caller is an admin or a platform operator.
    pub fn require_admin(&self) -> Result<(), Problem> {
        if self.role >= Role::Admin {
            Ok(())
        } else {
            Err(Problem::forbidden("this operation needs the admin role"))
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Verified already by the rate limiter (`limits`), which needs to
        // know the caller first; only this crate can put one there.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        state.auth.verify(bearer_token(&parts.headers)?).await
    }
}

/// The token of an `Authorization: Bearer <token>` header, or a 401.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, Problem> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("send a bearer token in the Authorization header"))?;
    value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| Problem::unauthorized("the Authorization header must be `Bearer <token>`"))
}

/// The claims this API reads, under their plain and their Cognito names.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    tenant_id: Option<String>,
    #[serde(rename = "custom:tenant_id")]
    cognito_tenant_id: Option<String>,
    role: Option<String>,
    #[serde(rename = "cognito:groups", default)]
    cognito_groups: Vec<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// Checked by `jsonwebtoken`; read again for [`Principal::expires_at`].
    #[serde(default)]
    exp: Option<f64>,
    /// Cognito: `id` or `access`. Absent in dev tokens and plain JWTs.
    #[serde(default)]
    token_use: Option<String>,
    #[serde(default)]
    aud: Option<OneOrMany>,
    /// Cognito access tokens name their app client here, not in `aud`.
    #[serde(default)]
    client_id: Option<String>,
}

/// `aud` is a string or an array of strings (RFC 7519, 4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn contains_any(&self, accepted: &[String]) -> bool {
        match self {
            OneOrMany::One(value) => accepted.contains(value),
            OneOrMany::Many(values) => values.iter().any(|value| accepted.contains(value)),
        }
    }
}

/// Seconds of tolerance for clocks that differ between the issuer and this
/// host, on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

/// Cognito's two kinds of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenUse {
    Id,
    Access,
}

/// The token's `token_use`, if it has one; anything but `id` or `access`
/// is refused rather than guessed at.
fn token_use_of(claims: &Claims) -> Result<Option<TokenUse>, String> {
    match claims.token_use.as_deref() {
        None => Ok(None),
        Some("id") => Ok(Some(TokenUse::Id)),
        Some("access") => Ok(Some(TokenUse::Access)),
        Some(_) => Err("the token's `token_use` must be `id` or `access`".to_owned()),
    }
}

/// Whether the token was issued for one of `accepted` (the app client
/// ids): an access token says so in `client_id`, an id token (or a token
/// without `token_use`, as other OpenID providers issue) in `aud`.
fn check_audience(claims: &Claims, token_use: Option<TokenUse>, accepted: &[String]) -> Result<(), String> {
    match token_use {
        Some(TokenUse::Access) => match &claims.client_id {
            None => Err("the access token has no `client_id` claim".to_owned()),
            Some(client_id) if accepted.contains(client_id) => Ok(()),
            Some(_) => Err("the access token was issued for another app client".to_owned()),
        },
        Some(TokenUse::Id) | None => match &claims.aud {
            None => Err("the token has no `aud` claim".to_owned()),
            Some(aud) if aud.contains_any(accepted) => Ok(()),
            Some(_) => Err("the token was issued for another audience".to_owned()),
        },
    }
}

/// Verifies tokens with the configured keys.
pub(crate) struct Authenticator {
    dev_key: Option<Arc<DecodingKey>>,
    jwks: Option<JwksCache>,
    issuer: Option<String>,
    audiences: Vec<String>,
}

impl Authenticator {
    pub(crate) fn new(config: &AuthConfig) -> anyhow::Result<Arc<Authenticator>> {
        if config.dev_key.is_none() && config.jwks_url.is_none() {
            anyhow::bail!(
                "no way to verify tokens: set LONGHAUL_JWKS_URL (production) or LONGHAUL_DEV_SIGNING_KEY_FILE (development)"
            );
        }
        if config.dev_key.as_ref().is_some_and(|key| key.len() < 32) {
            anyhow::bail!("the dev signing key must have at least 32 bytes");
        }
        let jwks = config.jwks_url.as_deref().map(JwksCache::new).transpose()?;
        let issuer = config.issuer.as_deref().map(str::trim).filter(|issuer| !issuer.is_empty()).map(str::to_owned);
        let audiences: Vec<String> = config
            .audiences
            .iter()
            .map(|audience| audience.trim().to_owned())
            .filter(|audience| !audience.is_empty())
            .collect();
        Ok(Arc::new(Authenticator {
            dev_key: config.dev_key.as_deref().map(|key| Arc::new(DecodingKey::from_secret(key))),
            jwks,
            issuer,
            audiences,
        }))
    }

    /// The principal of a valid token, or a 401 (a 503 when the JWKS cannot be
    /// fetched: the token may well be valid).
    pub(crate) async fn verify(&self, token: &str) -> Result<Principal, Problem> {
        let invalid = |detail: &str| Problem::unauthorized(detail.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("the token is not a JWT"))?;
        let key = match header.alg {
            Algorithm::HS256 => match &self.dev_key {
                Some(key) => Arc::clone(key),
                None => return Err(invalid("dev tokens are not accepted by this server")),
            },
            Algorithm::RS256 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| invalid("RS256 tokens are not accepted by this server"))?;
                let kid = header.kid.as_deref().ok_or_else(|| invalid("the token has no kid"))?;
                jwks.key(kid).await.map_err(|err| match err {
                    JwksError::UnknownKid(_) => invalid("the token was signed by an unknown key"),
                    JwksError::Unavailable(_) => Problem::unavailable("cannot reach the identity provider's keys"),
                })?
            }
            _ => return Err(invalid("the token's algorithm is not accepted; use RS256")),
        };
        // The identity provider's tokens answer to its issuer and app
        // clients; a dev token answers to the dev key alone.
        let from_identity_provider = header.alg == Algorithm::RS256;
        let mut validation = Validation::new(header.alg);
        // Checked below: Cognito access tokens carry `client_id`, not `aud`.
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let mut required = vec!["exp"];
        if let (true, Some(issuer)) = (from_identity_provider, &self.issuer) {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|err| {
            use jsonwebtoken::errors::ErrorKind;
            match err.kind() {
                ErrorKind::ExpiredSignature => invalid("the token has expired"),
                ErrorKind::InvalidSignature => invalid("the token's signature is invalid"),
                ErrorKind::MissingRequiredClaim(claim) => invalid(&format!("the token has no `{claim}` claim")),
                ErrorKind::ImmatureSignature => invalid("the token is not valid yet (its `nbf` is in the future)"),
                ErrorKind::InvalidIssuer => invalid("the token was issued by another issuer"),
                _ => invalid("the token is invalid"),
            }
        })?;
        let token_use = token_use_of(&data.claims).map_err(|detail| invalid(&detail))?;
        if from_identity_provider && !self.audiences.is_empty() {
            check_audience(&data.claims, token_use, &self.audiences).map_err(|detail| invalid(&detail))?;
        }
        principal_of(data.claims).map_err(|detail| invalid(&detail))
    }
}

/// The caller named by verified claims. `role` wins over `cognito:groups`;
/// among groups, `platform` wins over `admin`; without either, a user.
fn principal_of(claims: Claims) -> Result<Principal, String> {
    let user_id = claims.sub.filter(|sub| !sub.is_empty()).ok_or("the token has no `sub` claim")?;
    if user_id.starts_with('_') {
        // The platform's own jobs (the hourly exports) run as `_scheduler`:
        // no caller may be that user, or hold its idempotency keys.
        return Err("the token's `sub` starts with `_`, which is reserved for the platform's own jobs".into());
    }
    let tenant_id = claims
        .tenant_id
        .or(claims.cognito_tenant_id)
        .filter(|tenant| !tenant.is_empty())
        .ok_or("the token has no `tenant_id` (or `custom:tenant_id`) claim")?;
    check_tenant_id(&tenant_id).map_err(|reason| format!("the token's tenant is not accepted: {reason}"))?;
    let role = match claims.role {
        Some(role) => role.parse().map_err(|err: anyhow::Error| err.to_string())?,
        None => claims.cognito_groups.iter().filter_map(|group| group.parse().ok()).max().unwrap_or(Role::User),
    };
    let locale = claims.locale.filter(|locale| !locale.trim().is_empty());
    let name = claims.name.map(|name| name.trim().to_owned()).filter(|name| !name.is_empty());
    // Whole seconds; a fraction only makes the token live a little less.
    let expires_at = claims.exp.and_then(|exp| DateTime::from_timestamp(exp.floor() as i64, 0));
    Ok(Principal { tenant_id, user_id, role, locale, name, expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> Claims {
        serde_json::from_value(json).expect("claims parse")
    }

    #[test]
    fn cognito_claims_are_understood() {
        let principal = principal_of(claims(serde_json::json!({
            "sub": "u1", "custom:tenant_id": "t1", "cognito:groups": ["users", "admin"]
        })))
        .expect("valid claims");
        assert_eq!(
            principal,
            Principal {
                tenant_id: "t1".into(),
                user_id: "u1".into(),
                role: Role::Admin,
                locale: None,
                name: None,
                expires_at: None
            }
        );
    }

    #[test]
    fn platform_group_outranks_admin() {
        let principal = principal_of(claims(serde_json::json!({
            "sub": "u1", "tenant_id": "t1", "cognito:groups": ["admin", "platform"]
        })))
        .expect("valid claims");
        assert_eq!(principal.role, Role::Platform);
    }

    #[test]
    fn missing_tenant_or_sub_is_refused() {
        assert!(principal_of(claims(serde_json::json!({"sub": "u1"}))).is_err());
        assert!(principal_of(claims(serde_json::json!({"tenant_id": "t1"}))).is_err());
        assert!(principal_of(claims(serde_json::json!({"sub": "u", "tenant_id": "t", "role": "root"}))).is_err());
    }

    #[test]
    fn reserved_or_insane_tenants_are_refused() {
        for tenant in ["_longhaul", "_x", " t", "t\u{0}"] {
            let refused = principal_of(claims(serde_json::json!({"sub": "u", "tenant_id": tenant})));
            assert!(refused.is_err(), "{tenant:?}");
        }
    }

    #[test]
    fn access_tokens_are_checked_on_client_id_and_id_tokens_on_aud() {
        let accepted = vec!["app".to_owned()];
        let check = |json| {
            let claims = claims(json);
            let token_use = token_use_of(&claims)?;
            check_audience(&claims, token_use, &accepted)
        };
        assert!(check(serde_json::json!({"token_use": "access", "client_id": "app"})).is_ok());
        assert!(check(serde_json::json!({"token_use": "access", "aud": "app"})).is_err(), "access: client_id, not aud");
        assert!(check(serde_json::json!({"token_use": "access", "client_id": "other"})).is_err());
        assert!(check(serde_json::json!({"token_use": "id", "aud": "app"})).is_ok());
        assert!(check(serde_json::json!({"token_use": "id", "client_id": "app"})).is_err(), "id: aud, not client_id");
        assert!(check(serde_json::json!({"aud": ["other", "app"]})).is_ok());
        assert!(check(serde_json::json!({"aud": ["other"]})).is_err());
        assert!(check(serde_json::json!({"token_use": "refresh", "aud": "app"})).is_err());
    }
}
