//! `/v1/mail-accounts`: the inboxes users connect for `email_poll`.
//!
//! A credential (a password, or an OAuth2 client and refresh token) is
//! sealed before it is stored (AES-256-GCM envelope encryption, bound to the
//! tenant, the user and the account) and is never returned or logged.
//! Deleting an account deletes its credential and sync state; the
//! reservations it found stay. Someone else's account is a 404.

use std::net::IpAddr;

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use longhaul_jobs::{
    kind::{EmailPoll, EmailPollPayload},
    store::InsertOutcome,
    travel::mail::{
        normalize_domain, DkimPolicy, Envelope, MailAccount, MailAccountUpdate, MailSecret, MailTls, NewMailAccount,
        SECRET_KEYS_VAR,
    },
    NewJob,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{auth::Principal, extract::JsonBody, problem::Problem, tracecontext, views::JobView, AppState};

/// At most this many allowed sender domains per account.
pub(crate) const MAX_SENDERS: usize = 100;
/// The longest host name or sender domain (RFC 1035).
pub(crate) const HOST_MAX_CHARS: usize = 253;
/// The longest IMAP user name: an email address at most (RFC 5321).
pub(crate) const USERNAME_MAX_CHARS: usize = 320;
pub(crate) const PASSWORD_MAX_CHARS: usize = 4096;
pub(crate) const CLIENT_ID_MAX_CHARS: usize = 512;
pub(crate) const REFRESH_TOKEN_MAX_CHARS: usize = 8192;

/// OAuth2 credentials for XOAUTH2: the poll trades the refresh token for an
/// access token at `token_url` (and stores a rotated refresh token).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Body {
    /// The provider's token endpoint; `https`, or `http` on a loopback host.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub refresh_token: String,
}

/// The body of `POST /v1/mail-accounts`. Exactly one of `password` and
/// `oauth2`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMailAccountBody {
    pub imap_host: String,
    /// 993 for `tls`, 143 for `starttls` or `none`, when absent.
    pub imap_port: Option<u16>,
    pub tls: MailTls,
    pub username: String,
    pub password: Option<String>,
    pub oauth2: Option<OAuth2Body>,
    /// Sender domains to read mail from, such as `airline.example`: each
    /// also admits its subdomains, never a mere substring.
    pub allowed_senders: Vec<String>,
    /// What to make of DKIM verdicts; `if_present` when absent.
    pub dkim: Option<DkimPolicy>,
}

/// The body of `PATCH /v1/mail-accounts/{id}`: new credentials, senders or
/// DKIM policy. New credentials or senders make an account that needs
/// attention active again.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailAccountChanges {
    pub password: Option<String>,
    pub oauth2: Option<OAuth2Body>,
    pub allowed_senders: Option<Vec<String>>,
    pub dkim: Option<DkimPolicy>,
}

/// Every connected inbox of the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailAccountList {
    pub items: Vec<MailAccount>,
    /// Always null: all accounts fit one page.
    pub next_cursor: Option<String>,
}

// Bodies that carry credentials show none of them in `Debug`.
impl std::fmt::Debug for OAuth2Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2Body").field("token_url", &self.token_url).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewMailAccountBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMailAccountBody").field("imap_host", &self.imap_host).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MailAccountChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailAccountChanges").field("dkim", &self.dkim).finish_non_exhaustive()
    }
}

fn envelope(state: &AppState) -> Result<&Envelope, Problem> {
    state.secrets.as_ref().ok_or_else(|| {
        Problem::unavailable(format!(
            "mail accounts are not configured on this server: it has no key to seal credentials with \
             (set {SECRET_KEYS_VAR})"
        ))
    })
}

/// Text that is not blank, has no control characters (surrounding
/// whitespace aside, which is trimmed) and at most `max` characters, as
/// sent: the rule [`crate::openapi::rules`] states in the document.
pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<String, Problem> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Problem::invalid_field(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(Problem::invalid_field(field, format!("must be at most {max} characters")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Problem::invalid_field(field, "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

/// A host name or an IP address.
pub(crate) fn check_host(value: &str) -> Result<String, Problem> {
    let host = check_text("imap_host", value, HOST_MAX_CHARS)?.to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_owned();
    if host.parse::<IpAddr>().is_ok() {
        return Ok(host);
    }
    let valid = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if !valid {
        return Err(Problem::invalid_field("imap_host", format!("`{host}` is not a host name or IP address")));
    }
    Ok(host)
}

pub(crate) fn check_senders(senders: &[String]) -> Result<Vec<String>, Problem> {
    if senders.is_empty() {
        return Err(Problem::invalid_field(
            "allowed_senders",
            "name at least one sender domain, such as `airline.example`: mail from anyone else is never read",
        ));
    }
    if senders.len() > MAX_SENDERS {
        return Err(Problem::invalid_field("allowed_senders", format!("at most {MAX_SENDERS} domains")));
    }
    let mut domains: Vec<String> = Vec::with_capacity(senders.len());
    for (index, raw) in senders.iter().enumerate() {
        let field = format!("allowed_senders[{index}]");
        let domain = normalize_domain(raw);
        let labels_ok = raw.chars().count() <= HOST_MAX_CHARS
            && domain.split('.').count() >= 2
            && domain.split('.').all(|label| {
                !label.is_empty() && label.len() <= 63 && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if domain.contains('@') {
            return Err(Problem::invalid_field(
                field,
                format!("`{raw}` is an address; give its domain (`{}`)", domain.rsplit('@').next().unwrap_or("")),
            ));
        }
        if !labels_ok {
            return Err(Problem::invalid_field(field, format!("`{raw}` is not a domain such as `airline.example`")));
        }
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    Ok(domains)
}

fn check_token_url(raw: &str) -> Result<String, Problem> {
    let field = "oauth2.token_url";
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|err| Problem::invalid_field(field, format!("`{raw}` is not a URL: {err}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url.into()),
        "http" if loopback => Ok(url.into()),
        _ => Err(Problem::invalid_field(field, "must be an https URL (http only on a loopback host)")),
    }
}

/// The credential of a request: exactly one of a password and OAuth2.
fn secret_of(
    password: Option<String>,
    oauth2: Option<OAuth2Body>,
    required: bool,
) -> Result<Option<MailSecret>, Problem> {
    match (password, oauth2) {
        (Some(_), Some(_)) => Err(Problem::invalid_field("password", "give either `password` or `oauth2`, not both")),
        (Some(password), None) => {
            if password.is_empty() || password.chars().count() > PASSWORD_MAX_CHARS {
                return Err(Problem::invalid_field(
                    "password",
                    format!("must be 1 to {PASSWORD_MAX_CHARS} characters"),
                ));
            }
            if password.chars().any(char::is_control) {
                return Err(Problem::invalid_field("password", "must not contain control characters"));
            }
            Ok(Some(MailSecret::Password { password }))
        }
        (None, Some(oauth2)) => Ok(Some(MailSecret::Oauth2 {
            token_url: check_token_url(&oauth2.token_url)?,
            client_id: check_text("oauth2.client_id", &oauth2.client_id, CLIENT_ID_MAX_CHARS)?,
            client_secret: oauth2.client_secret.filter(|secret| !secret.is_empty()),
            refresh_token: check_text("oauth2.refresh_token", &oauth2.refresh_token, REFRESH_TOKEN_MAX_CHARS)?,
        })),
        (None, None) if required => {
            Err(Problem::invalid_field("password", "give a `password` or `oauth2` credentials"))
        }
        (None, None) => Ok(None),
    }
}

fn parse_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| Problem::not_found(format!("no mail account `{raw}`")))
}

fn not_found(id: Uuid) -> Problem {
    Problem::not_found(format!("no mail account `{id}`"))
}

/// Connect an inbox.
#[utoipa::path(
    post, path = "/v1/mail-accounts", tag = "mail",
    request_body = NewMailAccountBody,
    responses(
        (status = 201, description = "Connected; polled within the minute, then every 15 minutes", body = MailAccount),
        (status = 409, description = "The user has the most inboxes one user may (`urn:longhaul:problem:quota-exceeded`; `limit` says how many)"),
        (status = 422, description = "A field is invalid; `field` names it"),
        (status = 503, description = "No key to seal credentials with is configured"),
    ),
    security(("bearer" = []))
)]
pub async fn create_mail_account(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<NewMailAccountBody>,
) -> Result<Response, Problem> {
    let envelope = envelope(&state)?;
    check_account_quota(&state, &principal).await?;
    let imap_host = check_host(&body.imap_host)?;
    let imap_port = match body.imap_port {
        Some(0) => return Err(Problem::invalid_field("imap_port", "must be between 1 and 65535")),
        Some(port) => port,
        None if body.tls == MailTls::Tls => 993,
        None => 143,
    };
    let username = check_text("username", &body.username, USERNAME_MAX_CHARS)?;
    let allowed_senders = check_senders(&body.allowed_senders)?;
    let secret = secret_of(body.password, body.oauth2, true)?
        .ok_or_else(|| Problem::invalid_field("password", "give a `password` or `oauth2` credentials"))?;
    let id = Uuid::now_v7();
    let context = MailSecret::context(&principal.tenant_id, &principal.user_id, id);
    let sealed = secret.seal(envelope, &context).await.map_err(|err| {
        tracing::error!(error = %err, "could not seal a mail credential");
        Problem::unavailable("the credential could not be sealed; try again")
    })?;
    let account = state
        .store
        .insert_mail_account(NewMailAccount {
            id,
            tenant_id: principal.tenant_id.clone(),
            user_id: principal.user_id.clone(),
            imap_host,
            imap_port,
            tls: body.tls,
            username,
            auth: secret.auth(),
            allowed_senders,
            dkim: body.dkim.unwrap_or(DkimPolicy::IfPresent),
            secret: sealed,
        })
        .await?;
    tracing::info!(account_id = %account.id, tenant_id = %account.tenant_id, auth = %account.auth, "mail account connected");
    let mut response = (StatusCode::CREATED, Json(account)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/mail-accounts/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A 409 when the caller has as many inboxes connected as one user may.
/// Each is polled every few minutes, so they cost workers and IMAP
/// connections. Counted, then inserted: racing requests can pass the cap by
/// as many as race, which the rate limit keeps to a handful.
async fn check_account_quota(state: &AppState, principal: &Principal) -> Result<(), Problem> {
    let cap = state.limits.config().mail_accounts_per_user;
    if cap == 0 {
        return Ok(());
    }
    let own = longhaul_jobs::Scope::User { tenant_id: principal.tenant_id.clone(), user_id: principal.user_id.clone() };
    if state.store.count_mail_accounts(&own).await? >= cap {
        return Err(Problem::quota_exceeded("inboxes connected", cap));
    }
    Ok(())
}

/// The caller's connected inboxes (an admin's: the tenant's).
#[utoipa::path(
    get, path = "/v1/mail-accounts", tag = "mail",
    responses((status = 200, body = MailAccountList)),
    security(("bearer" = []))
)]
pub async fn list_mail_accounts(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<MailAccountList>, Problem> {
    let items = state.store.list_mail_accounts(&principal.scope()).await?;
    Ok(Json(MailAccountList { items, next_cursor: None }))
}

/// One connected inbox: its settings, status and sync figures.
#[utoipa::path(
    get, path = "/v1/mail-accounts/{id}", tag = "mail",
    params(("id" = Uuid, Path, description = "The account id")),
    responses(
        (status = 200, body = MailAccount),
        (status = 404),
    ),
    security(("bearer" = []))
)]
pub async fn get_mail_account(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<MailAccount>, Problem> {
    let id = parse_id(&id)?;
    state.store.get_mail_account(&principal.scope(), id).await?.map(Json).ok_or_else(|| not_found(id))
}

/// New credentials, senders or DKIM policy for an inbox.
#[utoipa::path(
    patch, path = "/v1/mail-accounts/{id}", tag = "mail",
    params(("id" = Uuid, Path, description = "The account id")),
    request_body = MailAccountChanges,
    responses(
        (status = 200, body = MailAccount),
        (status = 404),
        (status = 422),
    ),
    security(("bearer" = []))
)]
pub async fn update_mail_account(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<MailAccountChanges>,
) -> Result<Json<MailAccount>, Problem> {
    let id = parse_id(&id)?;
    let scope = principal.scope();
    let current = state.store.get_mail_account(&scope, id).await?.ok_or_else(|| not_found(id))?;
    let mut update = MailAccountUpdate {
        allowed_senders: body.allowed_senders.as_deref().map(check_senders).transpose()?,
        dkim: body.dkim,
        secret: None,
    };
    if let Some(secret) = secret_of(body.password, body.oauth2, false)? {
        let context = MailSecret::context(&current.tenant_id, &current.user_id, id);
        let sealed = secret.seal(envelope(&state)?, &context).await.map_err(|err| {
            tracing::error!(error = %err, "could not seal a mail credential");
            Problem::unavailable("the credential could not be sealed; try again")
        })?;
        update.secret = Some((secret.auth(), sealed));
    }
    state.store.update_mail_account(&scope, id, update).await?.map(Json).ok_or_else(|| not_found(id))
}

/// Disconnect an inbox: its credential and sync state are deleted; the
/// reservations it found stay.
#[utoipa::path(
    delete, path = "/v1/mail-accounts/{id}", tag = "mail",
    params(("id" = Uuid, Path, description = "The account id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404),
    ),
    security(("bearer" = []))
)]
pub async fn delete_mail_account(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let id = parse_id(&id)?;
    if state.store.delete_mail_account(&principal.scope(), id).await? {
        tracing::info!(account_id = %id, tenant_id = %principal.tenant_id, "mail account deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(id))
    }
}

/// Poll an inbox now: submits an `email_poll` job, as `POST /v1/jobs`
/// would. If a poll of the account is already running, the new one finds
/// it busy and ends at once.
#[utoipa::path(
    post, path = "/v1/mail-accounts/{id}/poll", tag = "mail",
    params(("id" = Uuid, Path, description = "The account id")),
    responses(
        (status = 202, description = "The poll job", body = JobView),
        (status = 404),
    ),
    security(("bearer" = []))
)]
pub async fn poll_mail_account(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_id(&id)?;
    let account = state.store.get_mail_account(&principal.scope(), id).await?.ok_or_else(|| not_found(id))?;
    let mut job = NewJob::of::<EmailPoll>(account.tenant_id, account.user_id, &EmailPollPayload { account_id: id })
        .map_err(|err| Problem::internal().with_detail(err.to_string()))?;
    job.traceparent = Some(tracecontext::traceparent_for(&headers));
    match state.store.insert_job(job).await? {
        InsertOutcome::Created(job) | InsertOutcome::Existing(job) | InsertOutcome::Conflict(job) => {
            tracing::info!(job_id = %job.id, account_id = %id, "inbox poll requested");
            Ok((StatusCode::ACCEPTED, Json(JobView::from(job))).into_response())
        }
    }
}

/// For `POST /v1/jobs` of `email_poll`: the account must be one the caller
/// sees, and the job runs as its owner (so an admin may poll a user's
/// inbox): its tenant and user.
pub(crate) async fn poll_owner(
    state: &AppState,
    principal: &Principal,
    account: Uuid,
) -> Result<(String, String), Problem> {
    let account = state
        .store
        .get_mail_account(&principal.scope(), account)
        .await?
        .ok_or_else(|| Problem::invalid_field("payload.account_id", format!("no mail account `{account}`")))?;
    Ok((account.tenant_id, account.user_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_domains_are_normalised_and_checked() {
        let ok = check_senders(&["Airline.Example.".into(), "hotel.example".into(), "airline.example".into()]);
        assert_eq!(ok.expect("valid"), vec!["airline.example".to_owned(), "hotel.example".to_owned()]);
        for bad in ["", "localhost", "bad domain.example", "a..example", "x@airline.example"] {
            let problem = check_senders(&[bad.into()]).expect_err(bad);
            assert_eq!(problem.document().field.as_deref(), Some("allowed_senders[0]"), "{bad}");
        }
        assert!(check_senders(&[]).is_err());
    }

    #[test]
    fn token_urls_are_https_or_loopback() {
        assert!(check_token_url("https://oauth2.googleapis.com/token").is_ok());
        assert!(check_token_url("http://127.0.0.1:8999/token").is_ok());
        assert!(check_token_url("http://localhost/token").is_ok());
        assert!(check_token_url("http://oauth.example/token").is_err());
        assert!(check_token_url("ftp://oauth.example/token").is_err());
        assert!(check_token_url("not a url").is_err());
    }

    #[test]
    fn hosts_are_names_or_addresses() {
        assert_eq!(check_host(" IMAP.Example.com. ").expect("valid"), "imap.example.com");
        assert!(check_host("127.0.0.1").is_ok());
        assert!(check_host("::1").is_ok());
        for bad in ["", "imap example.com", "-bad.example", "imap/.example"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }
}
