//! The admin dashboard at `/admin`: server-rendered pages (maud) over the
//! same store and operations as `/v1/admin`, with a little JavaScript of our
//! own for the live charts. Every asset is served from here; nothing comes
//! from a CDN, and the Content-Security-Policy says so.
//!
//! Signing in: an admin's token, posted once to `/admin/login`, becomes a
//! session. The cookie holds a random secret (HttpOnly, SameSite=Strict,
//! Path=/admin, and Secure behind HTTPS); the store keeps only its SHA-256,
//! for 8 hours, so any API replica can check it and a sign-out ends it
//! everywhere. Every POST must carry the session's CSRF token, compared in
//! constant time, and a request whose `Origin` is another site is refused.
//! A bearer token in `Authorization` works too, for scripts. A user's token
//! opens nothing.

mod pages;

use std::{convert::Infallible, time::Duration};

use axum::{
    body::Bytes,
    extract::{FromRequestParts, Path, Query, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Redirect, Response,
    },
    routing::{get, post},
    Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::Utc;
use longhaul_jobs::{admin::Session, store::CancelOutcome, store::JobFilter, JobKind, Lane, Status};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    audit::{self, Action, Client},
    auth::{Principal, Role},
    problem::Problem,
    routes::admin,
    views::JobView,
    AppState,
};

/// The session cookie.
const COOKIE: &str = "longhaul_admin";

/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);

/// Jobs per page.
const PAGE: u32 = 50;

/// How often the live stream sends the lanes' figures, and how many of those
/// ticks pass between two sends of the per-minute history.
const LIVE_TICK: Duration = Duration::from_secs(2);
const HISTORY_EVERY: u32 = 15;

/// The dashboard's routes, under `/admin`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(overview))
        .route("/admin/", get(overview))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/live", get(live))
        .route("/admin/jobs", get(jobs))
        .route("/admin/jobs/{id}", get(job))
        .route("/admin/jobs/{id}/{action}", post(job_action))
        .route("/admin/dead", get(dead).post(dead_bulk))
        .route("/admin/scheduled", get(scheduled))
        .route("/admin/sweeps", get(sweeps))
        .route("/admin/workers", get(workers))
        .route("/admin/audit", get(audit_log))
        .route("/admin/lanes/{lane}/{action}", post(lane_action))
        .route("/admin/artifacts/{id}", get(artifact))
        .route("/admin/assets/{name}", get(asset))
}

/// A signed-in admin: by session (whose forms carry `csrf`), or by bearer
/// token (no CSRF: a browser never adds one on its own).
pub(crate) struct Admin {
    pub principal: Principal,
    pub csrf: Option<String>,
    session_hash: Option<String>,
}

/// Why a dashboard request was not served, as a page.
pub(crate) enum Denied {
    /// No session: GETs go to the sign-in page, and come back after.
    SignIn { next: String },
    /// Signed in, or presenting a token, without the admin role; or a POST
    /// that failed its CSRF or origin check.
    Forbidden(String),
    /// A token that does not verify.
    Unauthorized(String),
    /// Anything else, with its status.
    Problem(Problem),
}

impl From<Problem> for Denied {
    fn from(problem: Problem) -> Self {
        Denied::Problem(problem)
    }
}

impl From<longhaul_jobs::StoreError> for Denied {
    fn from(err: longhaul_jobs::StoreError) -> Self {
        Denied::Problem(err.into())
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::SignIn { next } => Redirect::to(&format!("/admin/login?next={}", urlencode(&next))).into_response(),
            Denied::Forbidden(message) => html(StatusCode::FORBIDDEN, pages::denied("Not allowed", &message)),
            Denied::Unauthorized(message) => html(StatusCode::UNAUTHORIZED, pages::login("/admin", Some(&message))),
            Denied::Problem(problem) => {
                let status = problem.status_code();
                let detail = problem.document().detail.clone().unwrap_or_else(|| problem.document().title.clone());
                html(status, pages::denied(&problem.document().title, &detail))
            }
        }
    }
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A dashboard page, with the headers every page gets: nothing but our own
/// assets may load, no framing, no caching of admin data.
fn html(status: StatusCode, markup: maud::Markup) -> Response {
    let mut response = (status, axum::response::Html(markup.into_string())).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn page(markup: maud::Markup) -> Response {
    html(StatusCode::OK, markup)
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
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(body).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
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
    fn check_post(&self, headers: &HeaderMap, form: &Form) -> Result<(), Denied> {
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
    fn posted(&self, headers: &HeaderMap, body: &[u8]) -> Result<Form, Denied> {
        let form = Form::parse(body);
        self.check_post(headers, &form)?;
        Ok(form)
    }

    fn view(&self) -> pages::Viewer<'_> {
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
struct LoginQuery {
    next: Option<String>,
}

async fn login_page(Query(query): Query<LoginQuery>) -> Response {
    page(pages::login(&safe_next(query.next.as_deref()), None))
}

async fn login(State(state): State<AppState>, client: Client, headers: HeaderMap, body: Bytes) -> Response {
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

async fn logout(
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

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

async fn overview(
    State(state): State<AppState>,
    admin: Admin,
    Query(notice): Query<Notice>,
) -> Result<Response, Denied> {
    // A tenant admin's overview is their tenant's; the platform's, every
    // tenant's.
    let scope = admin::admin_scope(&admin.principal, None);
    let lanes = state.store.lane_stats(&scope).await?;
    let history = state.store.lane_history(&scope, 60).await?;
    Ok(page(pages::overview(&admin.view(), notice.done.as_deref(), &lanes, &history)))
}

/// Server-sent events for the overview: `lanes` (the figures of every lane)
/// every 2 seconds, and `history` (jobs finished and failed per minute, for
/// the last hour) every 30. The stream ends when the server stops, and with
/// an `expired` event when the session (or token) does. It counts towards
/// the admin's open streams: over the cap, a 429 problem (the page's
/// script stops listening; a reload tries again). A tenant admin's figures
/// are their tenant's.
async fn live(State(state): State<AppState>, admin: Admin) -> Response {
    let slot = match state.limits.open_stream(&admin.principal, "/admin/live") {
        Ok(slot) => slot,
        Err(problem) => return problem.into_response(),
    };
    let scope = admin::admin_scope(&admin.principal, None);
    let stream = futures::stream::unfold((state, scope, 0u32), |(state, scope, tick)| async move {
        if tick > 0 {
            tokio::select! {
                () = state.shutdown.cancelled() => return None,
                () = tokio::time::sleep(LIVE_TICK) => {}
            }
        }
        let event = if tick % HISTORY_EVERY == 0 {
            state
                .store
                .lane_history(&scope, 60)
                .await
                .ok()
                .and_then(|history| Event::default().event("history").json_data(history).ok())
        } else {
            None
        };
        let event = match event {
            Some(event) => event,
            None => match state.store.lane_stats(&scope).await {
                Ok(lanes) => Event::default().event("lanes").json_data(lanes).unwrap_or_default(),
                Err(err) => Event::default().event("problem").data(err.to_string()),
            },
        };
        Some((Ok::<_, Infallible>(event), (state, scope, tick.wrapping_add(1))))
    });
    let stream = crate::sse::until_expiry(stream, admin.principal.expires_at, slot);
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

#[derive(Deserialize, Default)]
struct JobsQuery {
    status: Option<String>,
    kind: Option<String>,
    lane: Option<String>,
    tenant: Option<String>,
    before: Option<String>,
    done: Option<String>,
}

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|value| !value.is_empty())
}

fn parse_filter<T: std::str::FromStr>(value: &Option<String>, what: &str) -> Result<Option<T>, Denied> {
    nonempty(value)
        .map(|raw| {
            raw.parse::<T>()
                .map_err(|_| Denied::Problem(Problem::invalid_field(what, format!("unknown {what} `{raw}`"))))
        })
        .transpose()
}

impl JobsQuery {
    fn filter(&self, admin: &Admin) -> Result<JobFilter, Denied> {
        Ok(JobFilter {
            status: parse_filter::<Status>(&self.status, "status")?,
            kind: parse_filter::<JobKind>(&self.kind, "kind")?,
            lane: parse_filter::<Lane>(&self.lane, "lane")?,
            tenant_id: if admin.principal.role == Role::Platform {
                nonempty(&self.tenant).map(str::to_owned)
            } else {
                None
            },
            before: parse_filter::<Uuid>(&self.before, "before")?,
            delayed: false,
            limit: PAGE + 1,
        })
    }

    fn form(&self) -> pages::JobsForm<'_> {
        pages::JobsForm {
            status: nonempty(&self.status),
            kind: nonempty(&self.kind),
            lane: nonempty(&self.lane),
            tenant: nonempty(&self.tenant),
        }
    }
}

/// One page of jobs, and the id to continue after, if there are more.
async fn jobs_page(
    state: &AppState,
    admin: &Admin,
    filter: &JobFilter,
) -> Result<(Vec<JobView>, Option<Uuid>), Denied> {
    let mut jobs = state.store.list_jobs(&admin.principal.scope(), filter).await?;
    let more = jobs.len() > PAGE as usize;
    jobs.truncate(PAGE as usize);
    let next = if more { jobs.last().map(|job| job.id) } else { None };
    Ok((jobs.into_iter().map(JobView::from).collect(), next))
}

async fn jobs(State(state): State<AppState>, admin: Admin, Query(query): Query<JobsQuery>) -> Result<Response, Denied> {
    let filter = query.filter(&admin)?;
    let (jobs, next) = jobs_page(&state, &admin, &filter).await?;
    Ok(page(pages::jobs(&admin.view(), &query.form(), &jobs, next)))
}

async fn job(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, Denied> {
    let Ok(id) = Uuid::parse_str(&id) else {
        return Err(Problem::not_found(format!("no job `{id}`")).into());
    };
    let Some(job) = state.store.get_job(&admin.principal.scope(), id).await? else {
        return Err(Problem::not_found(format!("no job `{id}`")).into());
    };
    let errors = job.errors.clone();
    let traceparent = job.traceparent.clone();
    let locked_by = job.locked_by.clone();
    let view = JobView::with_artifacts(&state.store, vec![job]).await?.into_iter().next();
    let Some(view) = view else {
        return Err(Problem::not_found(format!("no job `{id}`")).into());
    };
    let extra =
        pages::JobExtra { errors: &errors, traceparent: traceparent.as_deref(), locked_by: locked_by.as_deref() };
    Ok(page(pages::job(&admin.view(), notice.done.as_deref(), &view, &extra)))
}

/// Where to go back to after an action: a dashboard path the form named, or
/// the default.
fn back(form: &Form, default: &str, done: &str) -> Response {
    let to = match form.get("back") {
        Some(path) if path.starts_with("/admin") && !path.starts_with("//") => {
            path.split('?').next().unwrap_or(default)
        }
        _ => default,
    };
    Redirect::to(&format!("{to}?done={}", urlencode(done))).into_response()
}

async fn job_action(
    State(state): State<AppState>,
    admin: Admin,
    client: Client,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Denied> {
    let form = admin.posted(&headers, &body)?;
    let Ok(id) = Uuid::parse_str(&id) else {
        return Err(Problem::not_found(format!("no job `{id}`")).into());
    };
    let here = format!("/admin/jobs/{id}");
    match action.as_str() {
        "retry" => {
            admin::retry(&state, &admin.principal, &client, id).await?;
            Ok(back(&form, &here, "Job queued again with fresh attempts."))
        }
        "delete" => {
            let deleted = admin::delete(&state, &admin.principal, &client, &[id]).await?;
            if deleted.is_empty() {
                return Err(Problem::conflict(
                    "Job cannot be deleted",
                    "only dead, failed or cancelled jobs can be deleted",
                )
                .into());
            }
            Ok(back(&form, "/admin/dead", "Job deleted."))
        }
        "cancel" => {
            let message = match state.store.cancel_job(&admin.principal.scope(), id).await? {
                None => return Err(Problem::not_found(format!("no job `{id}`")).into()),
                Some(CancelOutcome::AlreadyFinal(job)) => {
                    return Err(
                        Problem::conflict("Job cannot be cancelled", format!("the job is {}", job.status)).into()
                    )
                }
                Some(CancelOutcome::Cancelled(job)) => {
                    record_cancel(&state, &admin, &client, &job).await;
                    "Job cancelled."
                }
                Some(CancelOutcome::Requested(job)) => {
                    record_cancel(&state, &admin, &client, &job).await;
                    "Cancel requested: the worker stops the job at its next heartbeat."
                }
            };
            Ok(back(&form, &here, message))
        }
        _ => Err(Problem::not_found(format!("no job action `{action}`")).into()),
    }
}

async fn record_cancel(state: &AppState, admin: &Admin, client: &Client, job: &longhaul_jobs::Job) {
    let action = Action::new("job.cancel", job.id.to_string()).on_tenant(job.tenant_id.clone());
    audit::record(&state.store, &admin.principal, client, action).await;
}

async fn dead(State(state): State<AppState>, admin: Admin, Query(query): Query<JobsQuery>) -> Result<Response, Denied> {
    let mut filter = query.filter(&admin)?;
    filter.status = Some(Status::Dead);
    let (jobs, next) = jobs_page(&state, &admin, &filter).await?;
    let lanes = state.store.lane_stats(&admin::admin_scope(&admin.principal, None)).await?;
    Ok(page(pages::dead(&admin.view(), query.done.as_deref(), &query.form(), &jobs, next, &lanes)))
}

/// Retries or deletes the dead jobs ticked on the dead jobs page.
async fn dead_bulk(
    State(state): State<AppState>,
    admin: Admin,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Denied> {
    let form = admin.posted(&headers, &body)?;
    let ids: Vec<Uuid> = form.all("ids").filter_map(|id| Uuid::parse_str(id).ok()).collect();
    if ids.is_empty() {
        return Ok(back(&form, "/admin/dead", "Nothing was selected."));
    }
    let message = match form.get("action") {
        Some("retry") => {
            let mut retried = 0;
            let mut refused = Vec::new();
            for id in &ids {
                match admin::retry(&state, &admin.principal, &client, *id).await {
                    Ok(_) => retried += 1,
                    Err(problem) => refused.push(format!(
                        "{id}: {}",
                        problem.document().detail.clone().unwrap_or_else(|| problem.document().title.clone())
                    )),
                }
            }
            if refused.is_empty() {
                format!("{retried} job(s) queued again.")
            } else {
                format!("{retried} job(s) queued again; {} refused ({}).", refused.len(), refused.join("; "))
            }
        }
        Some("delete") => {
            let deleted = admin::delete(&state, &admin.principal, &client, &ids).await?;
            format!("{} job(s) deleted.", deleted.len())
        }
        _ => return Err(Problem::bad_request("the form's action must be `retry` or `delete`").into()),
    };
    Ok(back(&form, "/admin/dead", &message))
}

async fn scheduled(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<JobsQuery>,
) -> Result<Response, Denied> {
    let mut filter = query.filter(&admin)?;
    filter.delayed = true;
    filter.status = None;
    let (jobs, next) = jobs_page(&state, &admin, &filter).await?;
    let recent_sweeps = admin::sweep_items(&state, &admin.principal, None, 2).await?;
    Ok(page(pages::scheduled(&admin.view(), &query.form(), &jobs, next, &recent_sweeps)))
}

async fn sweeps(State(state): State<AppState>, admin: Admin) -> Result<Response, Denied> {
    let sweeps = admin::sweep_items(&state, &admin.principal, None, 96).await?;
    Ok(page(pages::sweeps(&admin.view(), &sweeps)))
}

async fn workers(State(state): State<AppState>, admin: Admin) -> Result<Response, Denied> {
    let workers = admin::live_workers(&state, &admin.principal).await?;
    Ok(page(pages::workers(&admin.view(), &workers)))
}

#[derive(Deserialize)]
struct AuditQuery {
    before: Option<i64>,
}

async fn audit_log(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<AuditQuery>,
) -> Result<Response, Denied> {
    let view = admin::audit_page(&state, &admin.principal, query.before, 100).await?;
    Ok(page(pages::audit(&admin.view(), &view)))
}

async fn lane_action(
    State(state): State<AppState>,
    admin: Admin,
    client: Client,
    headers: HeaderMap,
    Path((lane, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Denied> {
    let form = admin.posted(&headers, &body)?;
    let Ok(lane) = lane.parse::<Lane>() else {
        return Err(Problem::not_found(format!("no lane `{lane}`")).into());
    };
    // A tenant admin's buttons act on their tenant's jobs in the lane; the
    // platform's, on the whole lane.
    let tenant = admin::target_tenant(&admin.principal, None);
    let whose = if tenant.is_some() { "your tenant's jobs in lane" } else { "lane" };
    let message = match action.as_str() {
        "pause" => {
            admin::set_paused(&state, &admin.principal, &client, lane, tenant, true).await?;
            format!("Paused {whose} {lane}: no new jobs start; running ones finish.")
        }
        "resume" => {
            admin::set_paused(&state, &admin.principal, &client, lane, tenant, false).await?;
            format!("Resumed {whose} {lane}.")
        }
        "redrive" => {
            let report = admin::redrive(&state, &admin.principal, &client, lane, tenant).await?;
            format!("Lane {lane}: {} dead job(s) queued again.", report.requeued + report.recovered)
        }
        _ => return Err(Problem::not_found(format!("no lane action `{action}`")).into()),
    };
    Ok(back(&form, "/admin", &message))
}

/// An artifact of a job, for a signed-in admin: the dashboard's session is
/// not a bearer token, so the job page links here, not to `/v1/artifacts`.
async fn artifact(State(state): State<AppState>, admin: Admin, Path(id): Path<String>) -> Result<Response, Denied> {
    Ok(crate::routes::artifacts::download(&state, &admin.principal, &id).await?)
}

/// The dashboard's own static files, compiled in.
async fn asset(Path(name): Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "admin.css" => (include_str!("assets/admin.css"), "text/css; charset=utf-8"),
        "admin.js" => (include_str!("assets/admin.js"), "text/javascript; charset=utf-8"),
        _ => return Problem::not_found(format!("no asset `{name}`")).into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
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
