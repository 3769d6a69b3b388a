//! `/v1/admin`: queue figures and operations for admins and platform operators.
//!
//! Every operation is written to the audit log (see [`crate::audit`]) with
//! who did it and from where; reads are not.

use axum::{
    extract::{Path, Query, State},
    Json,
};
use longhaul_jobs::{
    admin::{AuditEntry, WorkerPresence, LIVE_WITHIN, MAX_AUDIT_PAGE},
    queue::RedriveReport,
    store::LaneStats,
    travel::refresh::{SweepReport, TenantSweep},
    Lane, Scope, Status,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    audit::{self, Action, Client},
    auth::{Principal, Role},
    paging,
    problem::Problem,
    routes::jobs::{list_page, parse_job_id, ListQuery},
    views::{JobList, JobView},
    AppState,
};

/// Per-lane figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuesView {
    /// Whose figures these are: the tenant's, or absent for the whole
    /// platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// One entry per lane, in a fixed order.
    pub lanes: Vec<LaneStats>,
}

/// Whether a lane's workers take new jobs: the whole lane's, or one
/// tenant's jobs in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LaneState {
    pub lane: Lane,
    pub paused: bool,
    /// The tenant whose jobs were paused or resumed; absent when the
    /// platform paused or resumed the whole lane.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// `?tenant=`: platform operators only, to act on or read one tenant. Other
/// roles are pinned to their own tenant whatever they send.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    pub tenant: Option<String>,
}

/// The tenant an admin request is about: a tenant admin's own, always; for
/// the platform role the one it named, if any (None: the whole platform).
pub(crate) fn target_tenant(principal: &Principal, named: Option<&str>) -> Option<String> {
    match principal.role {
        Role::Platform => named.map(str::trim).filter(|tenant| !tenant.is_empty()).map(str::to_owned),
        Role::Admin | Role::User => Some(principal.tenant_id.clone()),
    }
}

/// What the figures of an admin request cover (see [`target_tenant`]).
pub(crate) fn admin_scope(principal: &Principal, named: Option<&str>) -> Scope {
    match target_tenant(principal, named) {
        Some(tenant_id) => Scope::Tenant { tenant_id },
        None => Scope::Platform,
    }
}

/// Queue figures per lane: depth, in flight, delayed, dead, age of the oldest
/// waiting job, throughput over the last 5 minutes, and whether it is paused.
/// A tenant admin sees their tenant's jobs in each lane (and whether they
/// paused them); the platform role sees every tenant's, or one tenant's
/// with `tenant=`.
#[utoipa::path(
    get, path = "/v1/admin/queues", tag = "admin",
    params(TenantQuery),
    responses(
        (status = 200, body = QueuesView),
        (status = 403),
    ),
    security(("bearer" = []))
)]
pub async fn queues(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<TenantQuery>,
) -> Result<Json<QueuesView>, Problem> {
    principal.require_admin()?;
    let tenant = target_tenant(&principal, query.tenant.as_deref());
    let lanes = state.store.lane_stats(&admin_scope(&principal, tenant.as_deref())).await?;
    Ok(Json(QueuesView { tenant, lanes }))
}

/// Recent reservation sweeps.
#[derive(Debug, Serialize, ToSchema)]
pub struct SweepsView {
    /// Newest first: the platform's reports, or for a tenant admin what
    /// each sweep found of the tenant's reservations.
    pub items: Vec<SweepItem>,
}

/// A sweep: the platform's whole report, or a tenant's part of it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SweepItem {
    Platform(SweepReport),
    Tenant(TenantSweep),
}

/// `?limit=`: how many sweeps (default 20, at most 288: a day of 5-minute
/// sweeps).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SweepsQuery {
    #[param(schema_with = paging::sweeps_limit_schema)]
    pub limit: Option<String>,
    /// Platform operators only: one tenant's part of each sweep.
    pub tenant: Option<String>,
}

/// The latest reservation sweeps. For the platform role: when each started,
/// its shards (enqueued, skipped because the previous run of them was still
/// going, finished), what it checked and changed, how long it took, and the
/// staleness of the changes it found (how long after the agency changed
/// them), as percentiles. Sweeps cover every tenant at once, so a tenant
/// admin (or the platform with `tenant=`) sees instead, per sweep, when it
/// ran and the tenant's own changes it found, with their staleness.
#[utoipa::path(
    get, path = "/v1/admin/sweeps", tag = "admin",
    params(SweepsQuery),
    responses(
        (status = 200, body = SweepsView),
        (status = 403),
        (status = 422, description = "A `limit` that is not a whole number from 1"),
    ),
    security(("bearer" = []))
)]
pub async fn sweeps(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<SweepsQuery>,
) -> Result<Json<SweepsView>, Problem> {
    principal.require_admin()?;
    let limit = paging::SWEEPS.limit(query.limit.as_deref())?;
    Ok(Json(SweepsView { items: sweep_items(&state, &principal, query.tenant.as_deref(), limit).await? }))
}

/// The sweeps as the caller may see them (see [`sweeps`]). Shared with the
/// dashboard.
pub(crate) async fn sweep_items(
    state: &AppState,
    principal: &Principal,
    tenant: Option<&str>,
    limit: u32,
) -> Result<Vec<SweepItem>, Problem> {
    Ok(match target_tenant(principal, tenant) {
        None => state.store.sweeps(limit).await?.into_iter().map(SweepItem::Platform).collect(),
        Some(tenant) => state.store.tenant_sweeps(&tenant, limit).await?.into_iter().map(SweepItem::Tenant).collect(),
    })
}

/// Jobs of the tenant (every tenant for the platform role, or one with
/// `tenant=`), filterable, such as `?status=dead`.
#[utoipa::path(
    get, path = "/v1/admin/jobs", tag = "admin",
    params(ListQuery),
    responses(
        (status = 200, body = JobList),
        (status = 403),
        (status = 422),
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

/// Stop taking new jobs in a lane. Running jobs finish. A tenant admin
/// pauses their own tenant's jobs in the lane (other tenants' run on); the
/// platform role pauses the whole lane, or one tenant's jobs with
/// `tenant=`.
#[utoipa::path(
    post, path = "/v1/admin/lanes/{lane}/pause", tag = "admin",
    params(("lane" = Lane, Path, description = "The lane"), TenantQuery),
    responses(
        (status = 200, body = LaneState),
        (status = 403),
        (status = 404, description = "No such lane"),
    ),
    security(("bearer" = []))
)]
pub async fn pause_lane(
    State(state): State<AppState>,
    principal: Principal,
    client: Client,
    Path(lane): Path<String>,
    Query(query): Query<TenantQuery>,
) -> Result<Json<LaneState>, Problem> {
    principal.require_admin()?;
    let tenant = target_tenant(&principal, query.tenant.as_deref());
    Ok(Json(set_paused(&state, &principal, &client, parse_lane(&lane)?, tenant, true).await?))
}

/// Take new jobs in a lane again: the tenant's own (tenant admins), or the
/// whole lane's or one tenant's with `tenant=` (platform role).
#[utoipa::path(
    post, path = "/v1/admin/lanes/{lane}/resume", tag = "admin",
    params(("lane" = Lane, Path, description = "The lane"), TenantQuery),
    responses(
        (status = 200, body = LaneState),
        (status = 403),
        (status = 404, description = "No such lane"),
    ),
    security(("bearer" = []))
)]
pub async fn resume_lane(
    State(state): State<AppState>,
    principal: Principal,
    client: Client,
    Path(lane): Path<String>,
    Query(query): Query<TenantQuery>,
) -> Result<Json<LaneState>, Problem> {
    principal.require_admin()?;
    let tenant = target_tenant(&principal, query.tenant.as_deref());
    Ok(Json(set_paused(&state, &principal, &client, parse_lane(&lane)?, tenant, false).await?))
}

/// Pauses or resumes `tenant`'s jobs in a lane, or with no tenant the whole
/// lane (the platform role only), and records it. Shared with the
/// dashboard.
pub(crate) async fn set_paused(
    state: &AppState,
    principal: &Principal,
    client: &Client,
    lane: Lane,
    tenant: Option<String>,
    paused: bool,
) -> Result<LaneState, Problem> {
    principal.require_admin()?;
    let action = if paused { "lane.pause" } else { "lane.resume" };
    match &tenant {
        Some(tenant) => {
            if principal.role < Role::Platform && *tenant != principal.tenant_id {
                return Err(Problem::forbidden("an admin pauses and resumes only their own tenant's jobs"));
            }
            state.store.set_tenant_lane_paused(tenant, lane, paused, &principal.user_id).await?;
            let record = Action::new(action, lane.as_str()).on_tenant(tenant.clone());
            audit::record(&state.store, principal, client, record).await;
        }
        None => {
            if principal.role < Role::Platform {
                return Err(Problem::forbidden("pausing a whole lane, for every tenant, needs the platform role"));
            }
            state.store.set_lane_paused(lane, paused).await?;
            let record = Action::new(action, lane.as_str()).with_detail(serde_json::json!({ "scope": "platform" }));
            audit::record(&state.store, principal, client, record).await;
        }
    }
    Ok(LaneState { lane, paused, tenant })
}

/// Put a dead, failed or cancelled job back in the queue with a fresh set of
/// attempts.
#[utoipa::path(
    post, path = "/v1/admin/jobs/{id}/retry", tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "The job id")),
    responses(
        (status = 200, body = JobView),
        (status = 403),
        (status = 404),
        (status = 409, description = "The job is not dead, failed or cancelled"),
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
        (status = 403),
        (status = 404),
        (status = 409, description = "The job has not ended, or succeeded"),
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
/// tenant's for an admin, every tenant's for the platform role (or one
/// tenant's with `tenant=`). On SQS this also drains the lane's dead-letter
/// queue of their messages (by hand: receive, requeue through the dispatch
/// outbox, delete); other tenants' messages are put back as they were.
#[utoipa::path(
    post, path = "/v1/admin/lanes/{lane}/redrive", tag = "admin",
    params(("lane" = Lane, Path, description = "The lane"), TenantQuery),
    responses(
        (status = 200, body = RedriveReport),
        (status = 403),
        (status = 404, description = "No such lane"),
        (status = 503, description = "The queue did not answer"),
    ),
    security(("bearer" = []))
)]
pub async fn redrive_lane(
    State(state): State<AppState>,
    principal: Principal,
    client: Client,
    Path(lane): Path<String>,
    Query(query): Query<TenantQuery>,
) -> Result<Json<RedriveReport>, Problem> {
    principal.require_admin()?;
    let tenant = target_tenant(&principal, query.tenant.as_deref());
    Ok(Json(redrive(&state, &principal, &client, parse_lane(&lane)?, tenant).await?))
}

/// Redrives a lane (`tenant`'s dead jobs in it, or with none every
/// tenant's, for the platform role only) and records it with what it moved.
/// Shared with the dashboard.
pub(crate) async fn redrive(
    state: &AppState,
    principal: &Principal,
    client: &Client,
    lane: Lane,
    tenant: Option<String>,
) -> Result<RedriveReport, Problem> {
    principal.require_admin()?;
    let scope = match &tenant {
        Some(tenant) if principal.role >= Role::Platform || *tenant == principal.tenant_id => {
            Scope::Tenant { tenant_id: tenant.clone() }
        }
        Some(_) => return Err(Problem::forbidden("an admin redrives only their own tenant's jobs")),
        None if principal.role >= Role::Platform => Scope::Platform,
        None => return Err(Problem::forbidden("redriving every tenant's jobs needs the platform role")),
    };
    let report = state.queue.redrive(&scope, lane).await?;
    let detail = serde_json::to_value(report).unwrap_or_default();
    let mut record = Action::new("lane.redrive", lane.as_str()).with_detail(detail);
    if let Some(tenant) = tenant {
        record = record.on_tenant(tenant);
    }
    audit::record(&state.store, principal, client, record).await;
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
    #[param(schema_with = paging::audit_limit_schema)]
    pub limit: Option<String>,
}

/// The audit log: who did what, when and from where. An admin reads their
/// tenant's (their admins' actions and actions on their jobs); the platform
/// role reads every tenant's.
#[utoipa::path(
    get, path = "/v1/admin/audit", tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, body = AuditView),
        (status = 403),
        (status = 422, description = "A `limit` that is not a whole number from 1"),
    ),
    security(("bearer" = []))
)]
pub async fn audit_log(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditView>, Problem> {
    principal.require_admin()?;
    let limit = paging::AUDIT.limit(query.limit.as_deref())?;
    Ok(Json(audit_page(&state, &principal, query.before, limit).await?))
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

/// The worker instances that are alive: their lanes and concurrency, and the
/// jobs each is running now. Workers are shared by all tenants; an admin
/// sees only their own tenant's running jobs.
#[utoipa::path(
    get, path = "/v1/admin/workers", tag = "admin",
    responses(
        (status = 200, body = WorkersView),
        (status = 403),
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
