//! `/v1/admin`: queue figures and operations for admins and platform operators.
//!
//! Every operation is written to the audit log (the `longhaul::audit` tracing
//! target) with who did it; reads are not.

use axum::{
    extract::{Path, Query, State},
    Json,
};
use longhaul_jobs::{queue::RedriveReport, store::LaneStats, travel::refresh::SweepReport, Lane, Status};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
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

fn audit(principal: &Principal, action: &str, target: &str) {
    tracing::info!(
        target: "longhaul::audit",
        tenant_id = %principal.tenant_id,
        user_id = %principal.user_id,
        role = %principal.role,
        action,
        target,
        "admin action"
    );
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
    Path(lane): Path<String>,
) -> Result<Json<LaneState>, Problem> {
    set_paused(&state, &principal, &lane, true).await
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
    Path(lane): Path<String>,
) -> Result<Json<LaneState>, Problem> {
    set_paused(&state, &principal, &lane, false).await
}

async fn set_paused(
    state: &AppState,
    principal: &Principal,
    raw_lane: &str,
    paused: bool,
) -> Result<Json<LaneState>, Problem> {
    principal.require_admin()?;
    let lane = parse_lane(raw_lane)?;
    state.store.set_lane_paused(lane, paused).await?;
    audit(principal, if paused { "lane.pause" } else { "lane.resume" }, lane.as_str());
    Ok(Json(LaneState { lane, paused }))
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
    Path(id): Path<String>,
) -> Result<Json<JobView>, Problem> {
    principal.require_admin()?;
    let id = parse_job_id(&id)?;
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
    audit(&principal, "job.retry", &id.to_string());
    Ok(Json(job.into()))
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
    Path(lane): Path<String>,
) -> Result<Json<RedriveReport>, Problem> {
    principal.require_admin()?;
    let lane = parse_lane(&lane)?;
    let report = state.queue.redrive(&principal.scope(), lane).await?;
    audit(&principal, "lane.redrive", lane.as_str());
    Ok(Json(report))
}
