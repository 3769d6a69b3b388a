//! Signing in: an admin's token, posted once to `/admin/login`, becomes a
//! session. The cookie holds a random secret (HttpOnly, SameSite=Strict,
//! Path=/admin, and Secure behind HTTPS); the store keeps only its SHA-256,
//! for 8 hours, so any API replica can check it and a sign-out ends it
//! everywhere. Every POST must carry the session's CSRF token, compared in
//! constant time, and a request whose `Origin` is another site is refused.
//! A bearer token in `Authorization` works too, for scripts. A user's token
//! opens nothing.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::{FromRequestParts, Query, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::Utc;
use longhaul_jobs::admin::Session;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    pages,
    respond::{html, page, Denied},
};
use crate::{
    audit::{self, Action, Client},
    auth::{Principal, Role},
    AppState,
};

/// The session cookie.
const COOKIE: &str = "longhaul_admin";

/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);

/// A signed-in admin: by session (whose forms carry `csrf`), or by bearer
/// token (no CSRF: a browser never adds one on its own).
pub(crate) struct Admin {
    pub principal: Principal,
    pub csrf: Option<String>,
    session_hash: Option<String>,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Whether the request reached us over HTTPS (directly, or as the load
/// balancer says): the cookie is then `Secure`.
fn is_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|value| value.to_str().ok()).is_some_and(|value| value == "https")
}

fn session_cookie(secret: &str, headers: &HeaderMap) -> String {
    let secure = if is_https(headers) { "; Secure" } else { "" };
    format!("{COOKIE}={secret}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_TTL.as_secs())
}

fn cleared_cookie() -> &'static str {
    "longhaul_admin=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0"
}

fn parse_role(role: &str) -> Option<Role> {
    match role {
        "admin" => Some(Role::Admin),
        "platform" => Some(Role::Platform),
        _ => None,
    }
}

const USER_TOKEN: &str = "This token belongs to a user. The dashboard is for admins: sign in with a token whose \
                          role is admin or platform.";

impl FromRequestParts<AppState> for Admin {
    type Rejection = Denied;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
                .map(str::trim)
                .unwrap_or_default();
            let principal = state
                .auth
                .verify(token)
                .await
                .map_err(|problem| Denied::Unauthorized(problem.document().detail.clone().unwrap_or_default()))?;
            if principal.role < Role::Admin {
                return Err(Denied::Forbidden(USER_TOKEN.to_owned()));
            }
            return Ok(Admin { principal, csrf: None, session_hash: None });
        }
        let sign_in = || {
            let next = if parts.method == Method::GET {
                parts.uri.path_and_query().map_or("/admin", |path| path.as_str()).to_owned()
            } else {
                "/admin".to_owned()
            };
            Denied::SignIn { next }
        };
        let Some(secret) = cookie_value(&parts.headers) else {
            return Err(sign_in());
        };
        let session_hash = hash(&secret);
        let Some(session) = state.store.session(&session_hash).await? else {
            return Err(sign_in());
        };
        let Some(role) = parse_role(&session.role) else {
            return Err(Denied::Forbidden(USER_TOKEN.to_owned()));
        };
        let principal = Principal {
            tenant_id: session.tenant_id,
            user_id: session.user_id,
            role,
            locale: None,
            name: None,
            expires_at: Some(session.expires_at),
        };
        Ok(Admin { principal, csrf: Some(session.csrf), session_hash: Some(session_hash) })
    }
}

/// A posted form: every value of every field, in order.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub(super) fn parse(body: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(body).into_owned().collect())
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses a request that another site's page made: its `Origin` (browsers
/// send one on every POST) must name this host.
fn check_origin(headers: &HeaderMap) -> Result<(), Denied> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| url::Url::parse(origin).ok())
        .and_then(|url| url.host_str().map(|host| (host.to_owned(), url.port())));
    let same = match (origin_host, host) {
        (Some((origin_host, origin_port)), Some(host)) => {
            let expected = match origin_port {
                Some(port) => format!("{origin_host}:{port}"),
                None => origin_host,
            };
            expected.eq_ignore_ascii_case(host)
        }
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(Denied::Forbidden("This request came from another site's page, so it was refused.".to_owned()))
    }
}

impl Admin {
    /// The checks every state-changing request passes: same origin, and for a
    /// session, the form's CSRF token.
    pub(super) fn check_post(&self, headers: &HeaderMap, form: &Form) -> Result<(), Denied> {
        check_origin(headers)?;
        if let Some(expected) = &self.csrf {
            let given = form.get("csrf").unwrap_or_default();
            if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                return Err(Denied::Forbidden(
                    "The form's security token is missing or stale. Reload the page and try again.".to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// A state-changing request's form, once it passed [`Admin::check_post`].
    pub(super) fn posted(&self, headers: &HeaderMap, body: &[u8]) -> Result<Form, Denied> {
        let form = Form::parse(body);
        self.check_post(headers, &form)?;
        Ok(form)
    }

    pub(super) fn view(&self) -> pages::Viewer<'_> {
        pages::Viewer { principal: &self.principal, csrf: self.csrf.as_deref().unwrap_or_default() }
    }
}

/// Where to go after signing in: only a dashboard path of this site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with("/admin") && !next.starts_with("//") && !next.contains('\\') => next.to_owned(),
        _ => "/admin".to_owned(),
    }
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

pub(super) async fn login_page(Query(query): Query<LoginQuery>) -> Response {
    page(pages::login(&safe_next(query.next.as_deref()), None))
}

pub(super) async fn login(State(state): State<AppState>, client: Client, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let next = safe_next(form.get("next"));
    if let Err(denied) = check_origin(&headers) {
        return denied.into_response();
    }
    let token = form.get("token").map(str::trim).unwrap_or_default();
    if token.is_empty() {
        return html(StatusCode::UNAUTHORIZED, pages::login(&next, Some("Paste an admin token to sign in.")));
    }
    let principal = match state.auth.verify(token).await {
        Ok(principal) => principal,
        Err(problem) => {
            let reason = problem.document().detail.clone().unwrap_or_default();
            return html(
                problem.status_code(),
                pages::login(&next, Some(&format!("The token was refused: {reason}."))),
            );
        }
    };
    if principal.role < Role::Admin {
        return html(StatusCode::FORBIDDEN, pages::login(&next, Some(USER_TOKEN)));
    }
    let secret = random_token();
    let now = Utc::now();
    let session = Session {
        tenant_id: principal.tenant_id.clone(),
        user_id: principal.user_id.clone(),
        role: principal.role.as_str().to_owned(),
        csrf: random_token(),
        created_at: now,
        expires_at: now + SESSION_TTL,
    };
    if let Err(err) = state.store.create_session(&hash(&secret), &session).await {
        return Denied::from(err).into_response();
    }
    audit::record(&state.store, &principal, &client, Action::new("session.login", "dashboard")).await;
    let mut response = Redirect::to(&next).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session_cookie(&secret, &headers)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

pub(super) async fn logout(
    State(state): State<AppState>,
    admin: Admin,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Denied> {
    admin.posted(&headers, &body)?;
    if let Some(session_hash) = &admin.session_hash {
        state.store.delete_session(session_hash).await?;
        audit::record(&state.store, &admin.principal, &client, Action::new("session.logout", "dashboard")).await;
    }
    let mut response = Redirect::to("/admin/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static(cleared_cookie()));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_dashboard() {
        assert_eq!(safe_next(Some("/admin/jobs?status=dead")), "/admin/jobs?status=dead");
        assert_eq!(safe_next(Some("//evil.example/admin")), "/admin");
        assert_eq!(safe_next(Some("https://evil.example/admin")), "/admin");
        assert_eq!(safe_next(Some("/v1/jobs")), "/admin");
        assert_eq!(safe_next(None), "/admin");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; longhaul_admin=secret; b=2"));
        assert_eq!(cookie_value(&headers).as_deref(), Some("secret"));
        headers.insert(header::COOKIE, HeaderValue::from_static("longhaul_admin="));
        assert_eq!(cookie_value(&headers), None);
    }

    #[test]
    fn origins_must_match_the_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(check_origin(&headers).is_ok(), "no Origin: a same-site form or a script");
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(check_origin(&headers).is_ok());
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example:8080"));
        assert!(check_origin(&headers).is_err());
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(check_origin(&headers).is_err());
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn cookies_are_strict_and_http_only() {
        let headers = HeaderMap::new();
        let cookie = session_cookie("s", &headers);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/admin"));
        assert!(!cookie.contains("Secure"));
        let mut https = HeaderMap::new();
        https.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(session_cookie("s", &https).contains("; Secure"));
    }
}
