//! OAuth2 for XOAUTH2: a refresh token traded for an access token at the
//! provider's token endpoint (RFC 6749 §6). When the provider rotates the
//! refresh token, the new one is returned so that the poll can store it
//! before anything else happens.
//!
//! The endpoint is the user's choice, so it is checked like an IMAP host
//! (`imap::forbidden`), and the request goes exactly where the check
//! looked: the host is resolved once, its addresses are checked, and the
//! connection is pinned to them (the URL and its host name, hence TLS's
//! server name and the `Host` header, stay as given). A second lookup by
//! the HTTP client could answer differently (DNS rebinding) and reach the
//! cluster's own services. The answer is read up to
//! [`MAX_RESPONSE_BYTES`], within [`TOKEN_TIMEOUT`].

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use reqwest::Url;
use serde::Deserialize;

/// How long the token endpoint may take, its answer included.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to it may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A token answer is a few hundred bytes; a larger one is not read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// At most this many characters of an endpoint's error text are kept.
const MAX_DESCRIPTION: usize = 300;

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

/// A token endpoint that passed the check, with the addresses it passed
/// with: the only ones a request to it may connect to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: Url,
    /// The host name and its checked addresses; `None` when the URL names
    /// an address, which no lookup can change.
    pinned: Option<(String, Vec<SocketAddr>)>,
}

/// Whether a poll may call `token_url`: its host must not resolve to an
/// address polls never reach (see `imap::forbidden`). A refusal is
/// permanent; a failed DNS lookup is not.
pub async fn check_endpoint(token_url: &str, allow_private: bool) -> Result<Endpoint, TokenError> {
    let refused = |why: String| TokenError::Forbidden(why);
    let url = Url::parse(token_url).map_err(|err| refused(format!("the token URL is invalid: {err}")))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let host = url.host_str().ok_or_else(|| refused("the token URL has no host".into()))?.to_owned();
    // The URL parser writes addresses in their canonical form (IPv6 in
    // brackets), so an address is never mistaken for a name.
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return checked_address(url, ip, allow_private);
    }
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|err| TokenError::Transient(format!("cannot resolve {host}: {err}")))?
        .collect();
    if addresses.is_empty() {
        return Err(TokenError::Transient(format!("{host} resolves to no address")));
    }
    if let Some(address) = addresses.iter().find(|address| super::imap::forbidden(address.ip(), allow_private)) {
        return Err(refused(format!("{host} resolves to {}, which polls may not reach", address.ip())));
    }
    Ok(Endpoint { url, pinned: Some((host, addresses)) })
}

fn checked_address(url: Url, ip: IpAddr, allow_private: bool) -> Result<Endpoint, TokenError> {
    if super::imap::forbidden(ip, allow_private) {
        return Err(TokenError::Forbidden(format!("{ip} is an address polls may not reach")));
    }
    Ok(Endpoint { url, pinned: None })
}

impl Endpoint {
    /// A client that connects to the checked addresses only: no DNS, no
    /// proxy (a proxy would resolve the name itself), no redirects (a
    /// redirect could lead anywhere).
    fn client(&self) -> Result<reqwest::Client, TokenError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOKEN_TIMEOUT);
        if let Some((host, addresses)) = &self.pinned {
            builder = builder.resolve_to_addrs(host, addresses);
        }
        builder.build().map_err(|err| TokenError::Transient(format!("cannot build an HTTP client: {err}")))
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
    endpoint: &Endpoint,
    client_id: &str,
    client_secret: Option<&str>,
    refresh_token: &str,
) -> Result<Tokens, TokenError> {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", client_id)];
    if let Some(secret) = client_secret {
        form.push(("client_secret", secret));
    }
    let response = endpoint
        .client()?
        .post(endpoint.url.clone())
        .header("Accept", "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|err| TokenError::Transient(err.without_url().to_string()))?;
    let status = response.status();
    let bytes = read_capped(response).await?;
    let body: Option<TokenResponse> = serde_json::from_slice(&bytes).ok();
    let described = |body: &Option<TokenResponse>| {
        let text = body
            .as_ref()
            .map(|b| {
                let error = b.error.clone().unwrap_or_else(|| "no error code".into());
                match &b.error_description {
                    Some(text) => format!("{error}: {text}"),
                    None => error,
                }
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        super::imap::clip(&text, MAX_DESCRIPTION)
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

/// The answer's body, streamed, refused once past [`MAX_RESPONSE_BYTES`]
/// (before any of it is read, when its length says so).
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, TokenError> {
    let too_large = || TokenError::Transient(format!("the answer is larger than {} KiB", MAX_RESPONSE_BYTES / 1024));
    if response.content_length().is_some_and(|length| length > MAX_RESPONSE_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|err| TokenError::Transient(err.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// What a test endpoint answers: a whole response, or a head and then
    /// body bytes without end.
    enum Answer {
        Json(u16, &'static str),
        Endless(&'static str),
    }

    /// A token endpoint on loopback that answers one request, and hands
    /// back the request it was sent (head and form).
    async fn endpoint(answer: Answer) -> (String, tokio::task::JoinHandle<String>) {
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
                let Some((head, form)) = text.split_once("\r\n\r\n") else { continue };
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if form.len() < length && n > 0 {
                    continue;
                }
                match answer {
                    Answer::Json(status, body) => {
                        let response = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        socket.write_all(response.as_bytes()).await.expect("write");
                    }
                    Answer::Endless(head) => {
                        socket.write_all(head.as_bytes()).await.expect("write");
                        let block = vec![b' '; 64 * 1024];
                        // Until the client hangs up.
                        while socket.write_all(&block).await.is_ok() {}
                    }
                }
                return text;
            }
        });
        (url, served)
    }

    async fn checked(url: &str) -> Endpoint {
        check_endpoint(url, true).await.expect("a loopback endpoint, allowed")
    }

    #[tokio::test]
    async fn a_refresh_gives_an_access_token_and_any_rotated_refresh_token() {
        let (url, served) = endpoint(Answer::Json(
            200,
            r#"{"access_token":"at-1","expires_in":3599,"refresh_token":"rt-2","token_type":"Bearer"}"#,
        ))
        .await;
        let tokens = refresh(&checked(&url).await, "client", Some("shh"), "rt-1").await.expect("tokens");
        assert_eq!(tokens.access_token, "at-1");
        assert_eq!(tokens.rotated_refresh_token.as_deref(), Some("rt-2"));
        let form = served.await.expect("served");
        for pair in ["grant_type=refresh_token", "refresh_token=rt-1", "client_id=client", "client_secret=shh"] {
            assert!(form.contains(pair), "{form}");
        }
        assert!(!format!("{tokens:?}").contains("at-1"), "tokens never show in Debug");

        // The same refresh token back is no rotation.
        let (url, _) = endpoint(Answer::Json(200, r#"{"access_token":"at-2","refresh_token":"rt-1"}"#)).await;
        let tokens = refresh(&checked(&url).await, "client", None, "rt-1").await.expect("tokens");
        assert!(tokens.rotated_refresh_token.is_none());
    }

    #[tokio::test]
    async fn a_refused_grant_is_for_the_owner_and_a_server_error_is_worth_a_retry() {
        let (url, _) =
            endpoint(Answer::Json(400, r#"{"error":"invalid_grant","error_description":"Token has been revoked."}"#))
                .await;
        let err = refresh(&checked(&url).await, "client", None, "rt").await.expect_err("refused");
        assert!(matches!(&err, TokenError::Refused(text) if text.contains("invalid_grant")), "{err}");
        let (url, _) = endpoint(Answer::Json(503, "busy")).await;
        let err = refresh(&checked(&url).await, "client", None, "rt").await.expect_err("transient");
        assert!(matches!(err, TokenError::Transient(_)), "{err}");
        let (url, _) = endpoint(Answer::Json(200, r#"{"token_type":"Bearer"}"#)).await;
        let err = refresh(&checked(&url).await, "client", None, "rt").await.expect_err("no token");
        assert!(matches!(err, TokenError::Transient(_)), "{err}");
    }

    #[tokio::test]
    async fn the_request_goes_to_the_checked_address_under_the_url_s_host_name() {
        let (url, served) = endpoint(Answer::Json(200, r#"{"access_token":"at-1"}"#)).await;
        let port = Url::parse(&url).expect("a URL").port().expect("a port");
        // `.invalid` never resolves (RFC 6761): only the pinned address can
        // have been used.
        let pinned = Endpoint {
            url: Url::parse(&format!("http://token.invalid:{port}/token")).expect("a URL"),
            pinned: Some(("token.invalid".into(), vec![SocketAddr::from(([127, 0, 0, 1], port))])),
        };
        let tokens = refresh(&pinned, "client", None, "rt").await.expect("tokens from the pinned address");
        assert_eq!(tokens.access_token, "at-1");
        let request = served.await.expect("served").to_ascii_lowercase();
        assert!(request.contains(&format!("host: token.invalid:{port}")), "the host name is kept: {request}");
    }

    #[tokio::test]
    async fn the_check_resolves_once_and_pins_what_it_checked() {
        let endpoint = check_endpoint("http://localhost:8/token", true).await.expect("allowed");
        let (host, addresses) = endpoint.pinned.expect("a host name is pinned");
        assert_eq!(host, "localhost");
        assert!(
            !addresses.is_empty() && addresses.iter().all(|a| a.ip().is_loopback() && a.port() == 8),
            "{addresses:?}"
        );

        for private in ["http://localhost:8/token", "http://127.0.0.1/token", "http://[::1]/token"] {
            let err = check_endpoint(private, false).await.expect_err("private");
            assert!(matches!(err, TokenError::Forbidden(_)), "{private}: {err}");
        }
        let err = check_endpoint("http://169.254.169.254/latest/meta-data", true).await.expect_err("metadata");
        assert!(matches!(err, TokenError::Forbidden(_)), "{err}");
        assert!(check_endpoint("http://127.0.0.1:9/token", true).await.expect("allowed").pinned.is_none());
    }

    #[tokio::test]
    async fn an_answer_larger_than_the_cap_is_not_read() {
        let started = std::time::Instant::now();
        // A length over the cap: refused before the body.
        let (url, _) = endpoint(Answer::Endless(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n",
        ))
        .await;
        let err = refresh(&checked(&url).await, "client", None, "rt").await.expect_err("too large");
        assert!(err.to_string().contains("larger than 64 KiB"), "{err}");
        // No length at all, and no end: refused at the cap.
        let (url, _) = endpoint(Answer::Endless(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"access_token\":\"",
        ))
        .await;
        let err = refresh(&checked(&url).await, "client", None, "rt").await.expect_err("too large");
        assert!(err.to_string().contains("larger than 64 KiB"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }
}
