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
    /// The endpoint is somewhere polls may not go.
    #[error("the token endpoint is refused: {0}")]
    Forbidden(String),
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

/// Whether a poll may call `token_url`: its host must not resolve to an
/// address polls never reach (see `imap::forbidden`). A refusal is
/// permanent; a failed DNS lookup is not.
pub async fn check_endpoint(token_url: &str, allow_private: bool) -> Result<(), TokenError> {
    let refused = |why: String| TokenError::Forbidden(why);
    let url = reqwest::Url::parse(token_url).map_err(|err| refused(format!("the token URL is invalid: {err}")))?;
    let host = url.host_str().ok_or_else(|| refused("the token URL has no host".into()))?;
    let host = host.trim_matches(|c| c == '[' || c == ']');
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|err| TokenError::Transient(format!("cannot resolve {host}: {err}")))?;
    for address in addresses {
        if super::imap::forbidden(address.ip(), allow_private) {
            return Err(refused(format!("{host} resolves to {}, which polls may not reach", address.ip())));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// A token endpoint on loopback that answers one request with `status`
    /// and `body`, and hands back the form it was sent.
    async fn endpoint(status: u16, body: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/token", listener.local_addr().expect("addr"));
        let served = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = socket.read(&mut buf).await.expect("read");
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, form)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if form.len() >= length || n == 0 {
                        let response = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        socket.write_all(response.as_bytes()).await.expect("write");
                        return form.to_owned();
                    }
                }
            }
        });
        (url, served)
    }

    #[tokio::test]
    async fn a_refresh_gives_an_access_token_and_any_rotated_refresh_token() {
        let (url, served) =
            endpoint(200, r#"{"access_token":"at-1","expires_in":3599,"refresh_token":"rt-2","token_type":"Bearer"}"#)
                .await;
        let tokens = refresh(&reqwest::Client::new(), &url, "client", Some("shh"), "rt-1").await.expect("tokens");
        assert_eq!(tokens.access_token, "at-1");
        assert_eq!(tokens.rotated_refresh_token.as_deref(), Some("rt-2"));
        let form = served.await.expect("served");
        for pair in ["grant_type=refresh_token", "refresh_token=rt-1", "client_id=client", "client_secret=shh"] {
            assert!(form.contains(pair), "{form}");
        }
        assert!(!format!("{tokens:?}").contains("at-1"), "tokens never show in Debug");

        // The same refresh token back is no rotation.
        let (url, _) = endpoint(200, r#"{"access_token":"at-2","refresh_token":"rt-1"}"#).await;
        let tokens = refresh(&reqwest::Client::new(), &url, "client", None, "rt-1").await.expect("tokens");
        assert!(tokens.rotated_refresh_token.is_none());
    }

    #[tokio::test]
    async fn a_refused_grant_is_for_the_owner_and_a_server_error_is_worth_a_retry() {
        let (url, _) =
            endpoint(400, r#"{"error":"invalid_grant","error_description":"Token has been revoked."}"#).await;
        let err = refresh(&reqwest::Client::new(), &url, "client", None, "rt").await.expect_err("refused");
        assert!(matches!(&err, TokenError::Refused(text) if text.contains("invalid_grant")), "{err}");
        let (url, _) = endpoint(503, "busy").await;
        let err = refresh(&reqwest::Client::new(), &url, "client", None, "rt").await.expect_err("transient");
        assert!(matches!(err, TokenError::Transient(_)), "{err}");
        let (url, _) = endpoint(200, r#"{"token_type":"Bearer"}"#).await;
        let err = refresh(&reqwest::Client::new(), &url, "client", None, "rt").await.expect_err("no token");
        assert!(matches!(err, TokenError::Transient(_)), "{err}");
    }
}
