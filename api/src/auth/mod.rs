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

mod dev;
mod jwks;

use std::{fmt, str::FromStr, sync::Arc};

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use longhaul_jobs::Scope;
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
}

/// Never prints the key, so the config can be logged.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("dev_key", &self.dev_key.as_ref().map(|_| "<redacted>"))
            .field("jwks_url", &self.jwks_url)
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
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| Problem::unauthorized("send a bearer token in the Authorization header"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| Problem::unauthorized("the Authorization header must be `Bearer <token>`"))?;
        state.auth.verify(token).await
    }
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
}

/// Verifies tokens with the configured keys.
pub(crate) struct Authenticator {
    dev_key: Option<Arc<DecodingKey>>,
    jwks: Option<JwksCache>,
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
        Ok(Arc::new(Authenticator {
            dev_key: config.dev_key.as_deref().map(|key| Arc::new(DecodingKey::from_secret(key))),
            jwks,
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
        let mut validation = Validation::new(header.alg);
        // Cognito access tokens carry `client_id`, not `aud`, and the key set is
        // specific to one user pool, so the signature already pins the issuer.
        validation.validate_aud = false;
        // Tolerate small clock differences between the issuer and this host.
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|err| {
            use jsonwebtoken::errors::ErrorKind;
            match err.kind() {
                ErrorKind::ExpiredSignature => invalid("the token has expired"),
                ErrorKind::InvalidSignature => invalid("the token's signature is invalid"),
                ErrorKind::MissingRequiredClaim(claim) => invalid(&format!("the token has no `{claim}` claim")),
                ErrorKind::ImmatureSignature => invalid("the token is not valid yet"),
                _ => invalid("the token is invalid"),
            }
        })?;
        principal_of(data.claims).map_err(|detail| invalid(&detail))
    }
}

/// The caller named by verified claims. `role` wins over `cognito:groups`;
/// among groups, `platform` wins over `admin`; without either, a user.
fn principal_of(claims: Claims) -> Result<Principal, String> {
    let user_id = claims.sub.filter(|sub| !sub.is_empty()).ok_or("the token has no `sub` claim")?;
    let tenant_id = claims
        .tenant_id
        .or(claims.cognito_tenant_id)
        .filter(|tenant| !tenant.is_empty())
        .ok_or("the token has no `tenant_id` (or `custom:tenant_id`) claim")?;
    let role = match claims.role {
        Some(role) => role.parse().map_err(|err: anyhow::Error| err.to_string())?,
        None => claims.cognito_groups.iter().filter_map(|group| group.parse().ok()).max().unwrap_or(Role::User),
    };
    let locale = claims.locale.filter(|locale| !locale.trim().is_empty());
    let name = claims.name.map(|name| name.trim().to_owned()).filter(|name| !name.is_empty());
    Ok(Principal { tenant_id, user_id, role, locale, name })
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
            Principal { tenant_id: "t1".into(), user_id: "u1".into(), role: Role::Admin, locale: None, name: None }
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
}
