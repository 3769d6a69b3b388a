//! The admin dashboard at `/admin`: server-rendered pages (maud) over the
//! same store and operations as `/v1/admin`, with a little JavaScript of our
//! own for the live charts. Every asset is served from here; nothing comes
//! from a CDN, and the Content-Security-Policy says so.
//! `session.rs` signs admins in and checks every request; `respond.rs`
//! turns outcomes into pages with the dashboard's headers; `pages.rs`
//! renders them.

mod pages;
mod respond;
mod session;

use std::{convert::Infallible, time::Duration};

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Redirect, Response,
    },
    routing::{get, post},
    Router,
};
use longhaul_jobs::{store::CancelOutcome, store::JobFilter, JobKind, Lane, Status};
use serde::Deserialize;
use uuid::Uuid;

use respond::{page, urlencode, Denied};
use session::{login, login_page, logout, Admin, Form};

use crate::{
    audit::{self, Action, Client},
    auth::Role,
    problem::Problem,
    routes::admin,
    views::JobView,
    AppState,
};

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
