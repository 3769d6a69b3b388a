//! OAuth2 for XOAUTH2: a refresh token traded for an access token at the
//! provider's token endpoint (RFC 6749 §6). When the provider rotates the
//! refresh token, the new one is returned so that the poll can store it
//! before anything else happens.

use std::time::Duration;

use serde::Deserialize;

/// How long the token endpoint may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The provider refused the grant (revoked, expired, wrong client):
    /// only the owner can fix it.
    #[error("the token endpoint refused the refresh token: {0}")]
    Refused(String),
    #[error("the token endpoint failed: {0}")]
    Transient(String),
}

/// A fresh access token, and the refresh token if the provider rotated it.
pub struct Tokens {
    pub access_token: String,
    pub rotated_refresh_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("rotated", &self.rotated_refresh_token.is_some()).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub async fn refresh(
    http: &reqwest::Client,
    token_url: &str,
    client_id: &str,
    client_secret: Option<&str>,
    refresh_token: &str,
) -> Result<Tokens, TokenError> {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", client_id)];
    if let Some(secret) = client_secret {
        form.push(("client_secret", secret));
    }
    let response = http
        .post(token_url)
        .timeout(TOKEN_TIMEOUT)
        .header("Accept", "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|err| TokenError::Transient(err.without_url().to_string()))?;
    let status = response.status();
    let body: Option<TokenResponse> = response.json().await.ok();
    let described = |body: &Option<TokenResponse>| {
        body.as_ref()
            .map(|b| {
                let error = b.error.clone().unwrap_or_else(|| "no error code".into());
                match &b.error_description {
                    Some(text) => format!("{error}: {text}"),
                    None => error,
                }
            })
            .unwrap_or_else(|| format!("HTTP {status}"))
    };
    if status.is_success() {
        let body = body.ok_or_else(|| TokenError::Transient("the answer is not JSON".into()))?;
        let access_token = body
            .access_token
            .filter(|token| !token.is_empty())
            .ok_or_else(|| TokenError::Transient("the answer has no access_token".into()))?;
        let rotated_refresh_token = body.refresh_token.filter(|token| !token.is_empty() && token != refresh_token);
        return Ok(Tokens { access_token, rotated_refresh_token });
    }
    // 400 invalid_grant / unauthorized_client / invalid_client, or 401:
    // the grant itself is bad. 429 and 5xx pass.
    if matches!(status.as_u16(), 400 | 401 | 403) {
        Err(TokenError::Refused(described(&body)))
    } else {
        Err(TokenError::Transient(described(&body)))
    }
}
