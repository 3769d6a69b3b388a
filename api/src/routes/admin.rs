//! `/v1/admin`: queue figures and operations for admins and platform operators.
//!
//! Every operation is written to the audit log (see [`crate::audit`]) with
//! who did it and from where; reads are not.

use axum::{
    extract::{Path, Query, State},
    Json,
};
use longhaul_jobs::{
    admin::{AuditEntry, WorkerPresence, MAX_AUDIT_PAGE},
    queue::RedriveReport,
    store::LaneStats,
    travel::refresh::SweepReport,
    Lane, Status,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    audit::{self, Action, Client},
    auth::Principal,
    problem::{Problem, ProblemDocument},
    routes::jobs::{list_page, parse_job_id, ListQuery},
    views::{JobList, JobView},
    AppState,
};

/// Per-lane figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuesView {
    /// One entry per lane, in a fixed order.
    pub lanes: Vec<LaneStats>,
}

/// Whether a lane's workers take new jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct LaneState {
    pub lane: Lane,
    pub paused: bool,
}

/// Queue figures per lane: depth, in flight, delayed, dead, age of the oldest
/// waiting job, throughput over the last 5 minutes, and whether it is paused.
/// The figures are for the whole platform: lanes are shared by all tenants.
#[utoipa::path(
    get, path = "/v1/admin/queues", tag = "admin",
    responses(
        (status = 200, body = QueuesView),
        (status = 403, body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn queues(State(state): State<AppState>, principal: Principal) -> Result<Json<QueuesView>, Problem> {
    principal.require_admin()?;
    Ok(Json(QueuesView { lanes: state.store.lane_stats().await? }))
}

/// Recent reservation sweeps.
#[derive(Debug, Serialize, ToSchema)]
pub struct SweepsView {
    /// Newest first.
    pub items: Vec<SweepReport>,
}

/// `?limit=`: how many sweeps (default 20, at most 288: a day of 5-minute
/// sweeps).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SweepsQuery {
    pub limit: Option<u32>,
}

/// The latest reservation sweeps: when each started, its shards (enqueued,
/// skipped because the previous run of them was still going, finished),
/// what it checked and changed, how long it took, and the staleness of the
/// changes it found (how long after the agency changed them), as
/// percentiles. Sweeps cover every tenant; the figures are counts only.
#[utoipa::path(
    get, path = "/v1/admin/sweeps", tag = "admin",
    params(SweepsQuery),
    responses(
        (status = 200, body = SweepsView),
        (status = 403, body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn sweeps(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<SweepsQuery>,
) -> Result<Json<SweepsView>, Problem> {
    principal.require_admin()?;
    let limit = query.limit.unwrap_or(20).clamp(1, 288);
    Ok(Json(SweepsView { items: state.store.sweeps(limit).await? }))
}

/// Jobs of the tenant (every tenant for the platform role, or one with
/// `tenant=`), filterable, such as `?status=dead`.
#[utoipa::path(
    get, path = "/v1/admin/jobs", tag = "admin",
    params(ListQuery),
    responses(
        (status = 200, body = JobList),
        (status = 403, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<Json<JobList>, Problem> {
    principal.require_admin()?;
    Ok(Json(list_page(&state, &principal, &query).await?))
}

fn parse_lane(raw: &str) -> Result<Lane, Problem> {
    raw.parse().map_err(|_| Problem::not_found(format!("no lane `{raw}`")))
}

/// Stop a lane's workers from taking new jobs. Running jobs finish.
#[utoipa::path(
    post, path = "/v1/admin/lanes/{lane}/pause", tag = "admin",
    params(("lane" = Lane, Path, description = "The lane")),
    responses(
        (status = 200, body = LaneState),
        (status = 403, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such lane", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn pause_lane(
    State(state): State<AppState>,
    principal: Principal,
    client: Client,
    Path(lane): Path<String>,
) -> Result<Json<LaneState>, Problem> {
    principal.require_admin()?;
    Ok(Json(set_paused(&state, &principal, &client, parse_lane(&lane)?, true).await?))
}

/// Let a paused lane's workers take jobs again.
#[utoipa::path(
    post, path = "/v1/admin/lanes/{lane}/resume", tag = "admin",
    params(("lane" = Lane, Path, description = "The lane")),
    responses(
        (status = 200, body = LaneState),
        (status = 403, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such lane", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn resume_lane(
    State(state): State<AppState>,
    principal: Principal,
    client: Client,
    Path(lane): Path<String>,
) -> Result<Json<LaneState>, Problem> {
    principal.require_admin()?;
    Ok(Json(set_paused(&state, &principal, &client, parse_lane(&lane)?, false).await?))
}

/// Pauses or resumes a lane for an admin, and records it. Shared with the
/// dashboard.
pub(crate) async fn set_paused(
    state: &AppState,
    principal: &Principal,
    client: &Client,
    lane: Lane,
    paused: bool,
) -> Result<LaneState, Problem> {
    principal.require_admin()?;
    state.store.set_lane_paused(lane, paused).await?;
    let action = if paused { "lane.pause" } else { "lane.resume" };
    audit::record(&state.store, principal, client, Action::new(action, lane.as_str())).await;
    Ok(LaneState { lane, paused })
}

/// Put a dead, failed or cancelled job back in the queue with a fresh set of
/// attempts.
#[utoipa::path(
    post, path = "/v1/admin/jobs/{id}/retry", tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "The job id")),
    responses(
        (status = 200, body = JobView),
        (status = 403, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The job is not dead, failed or cancelled", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn retry_job(
    State(state): State<AppState>,
    principal: Principal,
    client: Client,
    Path(id): Path<String>,
) -> Result<Json<JobView>, Problem> {
    principal.require_admin()?;
    let id = parse_job_id(&id)?;
    Ok(Json(retry(&state, &principal, &client, id).await?.into()))
}

/// Retries one job for an admin, and records it. Shared with the dashboard.
pub(crate) async fn retry(
    state: &AppState,
    principal: &Principal,
    client: &Client,
    id: uuid::Uuid,
) -> Result<longhaul_jobs::Job, Problem> {
    principal.require_admin()?;
    let scope = principal.scope();
    let Some(job) = state.store.get_job(&scope, id).await? else {
        return Err(Problem::not_found(format!("no job `{id}`")));
    };
    let not_retryable = |status: Status| {
        Problem::conflict(
            "Job cannot be retried",
            format!("the job is {status}; only dead, failed or cancelled jobs can be retried"),
        )
    };
    if !matches!(job.status, Status::Dead | Status::Failed | Status::Cancelled) {
        return Err(not_retryable(job.status));
    }
    // The status can change between the read and the retry (another admin
    // retried it first); the store decides, and None then means "not any more".
    let Some(job) = state.store.retry_job(&scope, id).await? else {
        return Err(Problem::conflict("Job cannot be retried", "the job changed while being retried; read it again"));
    };
    if job.status != Status::Queued {
        return Err(not_retryable(job.status));
    }
    let action = Action::new("job.retry", id.to_string())
        .on_tenant(job.tenant_id.clone())
        .with_detail(serde_json::json!({ "kind": job.kind, "lane": job.lane }));
    audit::record(&state.store, principal, client, action).await;
    Ok(job)
}

/// Deletes a dead, failed or cancelled job for good. Queued and running jobs
/// must be cancelled first; succeeded ones are kept until retention prunes
/// them.
#[utoipa::path(
    delete, path = "/v1/admin/jobs/{id}", tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "The job id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The job has not ended, or succeeded", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_job(
    State(state): State<AppState>,
    principal: Principal,
    client: Client,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, Problem> {
    principal.require_admin()?;
    let id = parse_job_id(&id)?;
    let Some(job) = state.store.get_job(&principal.scope(), id).await? else {
        return Err(Problem::not_found(format!("no job `{id}`")));
    };
    if delete(&state, &principal, &client, &[id]).await?.is_empty() {
        return Err(Problem::conflict(
            "Job cannot be deleted",
            format!("the job is {}; only dead, failed or cancelled jobs can be deleted", job.status),
        ));
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Deletes the jobs of `ids` that are in scope and dead, failed or
/// cancelled, and records each. Shared with the dashboard.
pub(crate) async fn delete(
    state: &AppState,
    principal: &Principal,
    client: &Client,
    ids: &[uuid::Uuid],
) -> Result<Vec<uuid::Uuid>, Problem> {
    principal.require_admin()?;
    let scope = principal.scope();
    let mut tenants = std::collections::HashMap::new();
    for id in ids {
        if let Some(job) = state.store.get_job(&scope, *id).await? {
            tenants.insert(job.id, (job.tenant_id, job.kind, job.status));
        }
    }
    let deleted = state.store.delete_jobs(&scope, ids).await?;
    for id in &deleted {
        let mut action = Action::new("job.delete", id.to_string());
        if let Some((tenant, kind, status)) = tenants.remove(id) {
            action = action.on_tenant(tenant).with_detail(serde_json::json!({ "kind": kind, "status": status }));
        }
        audit::record(&state.store, principal, client, action).await;
    }
    Ok(deleted)
}

/// Put the lane's dead jobs back in the queue with fresh attempts: the
/// tenant's for an admin, every tenant's for the platform role. On SQS this
/// also drains the lane's dead-letter queue of their messages (by hand:
/// receive, requeue through the dispatch outbox, delete).
#[utoipa::path(
    post, path = "/v1/admin/lanes/{lane}/redrive", tag = "admin",
    params(("lane" = Lane, Path, description = "The lane")),
    responses(
        (status = 200, body = RedriveReport),
        (status = 403, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such lane", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The queue did not answer", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn redrive_lane(
    State(state): State<AppState>,
    principal: Principal,
    client: Client,
    Path(lane): Path<String>,
) -> Result<Json<RedriveReport>, Problem> {
    principal.require_admin()?;
    Ok(Json(redrive(&state, &principal, &client, parse_lane(&lane)?).await?))
}

/// Redrives a lane for an admin, and records it with what it moved. Shared
/// with the dashboard.
pub(crate) async fn redrive(
    state: &AppState,
    principal: &Principal,
    client: &Client,
    lane: Lane,
) -> Result<RedriveReport, Problem> {
    principal.require_admin()?;
    let report = state.queue.redrive(&principal.scope(), lane).await?;
    let detail = serde_json::to_value(report).unwrap_or_default();
    audit::record(&state.store, principal, client, Action::new("lane.redrive", lane.as_str()).with_detail(detail))
        .await;
    Ok(report)
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Newest first.
    pub items: Vec<AuditEntry>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<i64>,
}

/// `?before=&limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The `next_before` of the previous page.
    pub before: Option<i64>,
    /// Entries per page: 1 to 500, default 100.
    pub limit: Option<u32>,
}

/// The audit log: who did what, when and from where. An admin reads their
/// tenant's (their admins' actions and actions on their jobs); the platform
/// role reads every tenant's.
#[utoipa::path(
    get, path = "/v1/admin/audit", tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, body = AuditView),
        (status = 403, body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn audit_log(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditView>, Problem> {
    principal.require_admin()?;
    Ok(Json(audit_page(&state, &principal, query.before, query.limit.unwrap_or(100)).await?))
}

pub(crate) async fn audit_page(
    state: &AppState,
    principal: &Principal,
    before: Option<i64>,
    limit: u32,
) -> Result<AuditView, Problem> {
    let limit = limit.clamp(1, MAX_AUDIT_PAGE);
    let mut items = state.store.audit_log(&principal.scope(), before, limit + 1).await?;
    let next_before = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|entry| entry.id)
    } else {
        None
    };
    Ok(AuditView { items, next_before })
}

/// Live worker instances.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkersView {
    /// Instances seen in the last 15 seconds, by id.
    pub items: Vec<WorkerPresence>,
}

/// How recently an instance must have reported to count as live: three
/// report intervals.
pub(crate) const LIVE_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// The worker instances that are alive: their lanes and concurrency, and the
/// jobs each is running now. Workers are shared by all tenants; an admin
/// sees only their own tenant's running jobs.
#[utoipa::path(
    get, path = "/v1/admin/workers", tag = "admin",
    responses(
        (status = 200, body = WorkersView),
        (status = 403, body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn workers(State(state): State<AppState>, principal: Principal) -> Result<Json<WorkersView>, Problem> {
    principal.require_admin()?;
    Ok(Json(WorkersView { items: live_workers(&state, &principal).await? }))
}

pub(crate) async fn live_workers(state: &AppState, principal: &Principal) -> Result<Vec<WorkerPresence>, Problem> {
    let mut workers = state.store.workers(LIVE_WITHIN).await?;
    if let longhaul_jobs::Scope::Tenant { tenant_id } | longhaul_jobs::Scope::User { tenant_id, .. } = principal.scope()
    {
        for worker in &mut workers {
            worker.running.retain(|job| job.tenant_id == tenant_id);
        }
    }
    Ok(workers)
}
