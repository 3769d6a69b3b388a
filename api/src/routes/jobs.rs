//! `/v1/jobs`: submit, read, list and cancel jobs.

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use longhaul_jobs::{
    kind::{Owner, Submitter},
    model::{PRIORITY_MAX, PRIORITY_MIN},
    store::{CancelOutcome, InsertOutcome, JobFilter},
    Job, JobKind, NewJob, Status,
};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::{Principal, Role},
    extract::JsonBody,
    idempotency, paging,
    problem::Problem,
    tracecontext,
    views::{decode_cursor, encode_cursor, JobList, JobView},
    AppState,
};

/// The body of `POST /v1/jobs`. Unknown fields are refused (422), so that a
/// typo such as `priorty` is not silently ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// The job kind.
    // A string, not a `JobKind`, so that an unknown kind is a 422 that names
    // `kind` and lists the known kinds, rather than serde's generic message.
    #[schema(value_type = JobKind)]
    pub kind: String,
    /// The kind's payload; `{}` when absent.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Run no earlier than this; now when absent. At most 366 days ahead;
    /// a time up to 5 minutes in the past means now, an older one is a 422.
    pub run_at: Option<DateTime<Utc>>,
    /// Higher runs first within a lane; 0 when absent. From -10 to 0 for
    /// users and tenant admins (a lower priority puts a job behind their
    /// others), up to 10 for the platform role only.
    #[schema(minimum = -10, maximum = 10)]
    pub priority: Option<i16>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Submit a job.
///
/// A repeated `Idempotency-Key` with the same body answers 200 with the job
/// the first request created; with a different body, 409.
#[utoipa::path(
    post, path = "/v1/jobs", tag = "jobs",
    request_body = SubmitJob,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a repeated key returns the first job"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context, carried to the worker"),
    ),
    responses(
        (status = 202, description = "Created", body = JobView),
        (status = 200, description = "Already created by an earlier request with this key", body = JobView),
        (status = 400, description = "Malformed JSON"),
        (status = 403, description = "The kind is for admins only"),
        (status = 409, description = "Key reused with a different body"),
        (status = 413, description = "Body over the limit"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "Unknown kind or invalid payload; `field` names it"),
    ),
    security(("bearer" = []))
)]
pub async fn submit_job(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SubmitJob>,
) -> Result<Response, Problem> {
    let kind: JobKind = body.kind.parse().map_err(|_| {
        let known: Vec<&str> = JobKind::all().iter().map(|kind| kind.as_str()).collect();
        Problem::invalid_field("kind", format!("unknown kind `{}`; expected one of {}", body.kind, known.join(", ")))
    })?;
    if kind.admin_only() && principal.role < Role::Admin {
        return Err(Problem::forbidden(format!("only admins may submit `{kind}` jobs")));
    }
    let admitted = kind
        .admit(&body.payload, &submitter(&principal, &headers))
        .map_err(|err| Problem::invalid_field(err.field, err.message))?;
    if let Some(why) = admitted.needs_admin.filter(|_| principal.role < Role::Admin) {
        return Err(Problem::forbidden(format!("only admins may submit this `{kind}` job: {why}")));
    }
    let priority = body.priority.unwrap_or(0);
    let highest = highest_priority(principal.role);
    if !(PRIORITY_MIN..=highest).contains(&priority) {
        return Err(Problem::invalid_field(
            "priority",
            if priority > highest && priority <= PRIORITY_MAX {
                format!(
                    "must be between {PRIORITY_MIN} and {highest} for the {} role: a higher priority would run \
                     ahead of every other tenant's jobs",
                    principal.role
                )
            } else {
                format!("must be between {PRIORITY_MIN} and {highest}")
            },
        ));
    }
    let run_at = body.run_at.map(checked_run_at).transpose()?;
    let idempotency_key = idempotency::key_of(&headers)?;

    // The hash is of the request as sent: a retry from a phone whose
    // language changed meanwhile is still the same request.
    let request_hash = idempotency::request_hash(kind, &body.payload, body.run_at, priority);
    let (tenant, owner) = match admitted.owner {
        Owner::Submitter => (principal.tenant_id.clone(), principal.user_id.clone()),
        Owner::MailAccount(account) => super::mail::poll_owner(&state, &principal, account).await?,
    };
    let mut job = NewJob::new(tenant, owner, kind, admitted.payload);
    job.request_hash = Some(request_hash);
    job.priority = priority;
    if let Some(run_at) = run_at {
        job.run_at = run_at;
    }
    job.idempotency_key = idempotency_key;
    job.traceparent = Some(tracecontext::traceparent_for(&headers));

    match state.store.insert_job(job).await? {
        InsertOutcome::Created(job) => {
            tracing::info!(job_id = %job.id, kind = %job.kind, tenant_id = %job.tenant_id, "job submitted");
            let location = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)).ok();
            let mut response = (StatusCode::ACCEPTED, Json(JobView::from(job))).into_response();
            if let Some(location) = location {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        // The same key from another user of the tenant is somebody else's job:
        // answer as for a different body rather than reveal it.
        InsertOutcome::Existing(job) if is_own(&principal, &job) => {
            Ok((StatusCode::OK, Json(JobView::from(job))).into_response())
        }
        InsertOutcome::Existing(_) | InsertOutcome::Conflict(_) => Err(Problem::idempotency_conflict()),
    }
}

/// The highest priority a role may give its jobs. Priority orders a whole
/// lane, across tenants: only the platform may put a job ahead of everyone
/// else's. Users and tenant admins may lower their jobs' priority (a
/// backfill behind their other work), not raise it.
pub fn highest_priority(role: Role) -> i16 {
    match role {
        Role::Platform => PRIORITY_MAX,
        Role::User | Role::Admin => 0,
    }
}

/// How far ahead a job may be scheduled: a year, enough for any yearly
/// report or reminder, and a bound on what the queue is asked to keep.
pub const RUN_AT_HORIZON_DAYS: i64 = 366;

/// How far in the past a `run_at` may be, as a phone's clock may be a little
/// behind: such a time means "now". Anything older is a mistake.
pub const RUN_AT_PAST_TOLERANCE_SECS: i64 = 300;

/// A `run_at` within bounds: no earlier than now (a time a little in the
/// past, within a clock's drift, becomes now) and no later than the horizon.
fn checked_run_at(run_at: DateTime<Utc>) -> Result<DateTime<Utc>, Problem> {
    let now = Utc::now();
    if run_at < now - chrono::Duration::seconds(RUN_AT_PAST_TOLERANCE_SECS) {
        return Err(Problem::invalid_field(
            "run_at",
            format!("must not be in the past (more than {RUN_AT_PAST_TOLERANCE_SECS} s ago); leave it out to run now"),
        ));
    }
    if run_at > now + chrono::Duration::days(RUN_AT_HORIZON_DAYS) {
        return Err(Problem::invalid_field("run_at", format!("must be within {RUN_AT_HORIZON_DAYS} days from now")));
    }
    Ok(run_at.max(now))
}

fn is_own(principal: &Principal, job: &Job) -> bool {
    job.tenant_id == principal.tenant_id && job.user_id == principal.user_id
}

/// A job id from the path. Anything that is not a UUID cannot name a job, so
/// it is a 404 like any other missing job.
pub(crate) fn parse_job_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| Problem::not_found(format!("no job `{raw}`")))
}

/// The job, if the caller may see it; a 404 otherwise, whether it does not
/// exist or belongs to someone else.
pub(crate) async fn visible_job(state: &AppState, principal: &Principal, raw_id: &str) -> Result<Job, Problem> {
    let id = parse_job_id(raw_id)?;
    state.store.get_job(&principal.scope(), id).await?.ok_or_else(|| Problem::not_found(format!("no job `{id}`")))
}

/// Read a job.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "The job id")),
    responses(
        (status = 200, body = JobView),
        (status = 404, description = "No such job, or not yours"),
    ),
    security(("bearer" = []))
)]
pub async fn get_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<JobView>, Problem> {
    let job = visible_job(&state, &principal, &id).await?;
    Ok(Json(JobView::of(&state.store, job).await?))
}

/// The query of job lists. Values are parsed by hand, so that a bad one is a
/// 422 naming the parameter rather than a generic 400. Empty filters count
/// as absent (`?status=&kind=` is what a form with blank filters sends); see
/// [`crate::paging`] for `limit` and `cursor`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this status.
    #[param(schema_with = paging::status_filter_schema)]
    pub status: Option<String>,
    /// Only jobs of this kind.
    #[param(schema_with = paging::kind_filter_schema)]
    pub kind: Option<String>,
    #[param(schema_with = paging::job_cursor_schema)]
    pub cursor: Option<String>,
    #[param(schema_with = paging::items_limit_schema)]
    pub limit: Option<String>,
    /// Platform operators only: one tenant's jobs. Ignored for other roles,
    /// whose lists are already limited to their tenant.
    pub tenant: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|value| !value.is_empty())
}

impl ListQuery {
    fn to_filter(&self) -> Result<JobFilter, Problem> {
        let status = non_empty(&self.status)
            .map(|raw| raw.parse::<Status>().map_err(|err| Problem::invalid_field("status", err.to_string())))
            .transpose()?;
        let kind = non_empty(&self.kind)
            .map(|raw| raw.parse::<JobKind>().map_err(|err| Problem::invalid_field("kind", err.to_string())))
            .transpose()?;
        let before = non_empty(&self.cursor)
            .map(|raw| decode_cursor(raw).ok_or_else(|| Problem::invalid_field("cursor", "not a cursor from this API")))
            .transpose()?;
        let limit = paging::ITEMS.limit(self.limit.as_deref())?;
        let tenant_id = non_empty(&self.tenant).map(str::to_owned);
        Ok(JobFilter { status, kind, tenant_id, before, limit, ..JobFilter::default() })
    }
}

/// The page of jobs the caller may see, for both `/v1/jobs` and `/v1/admin/jobs`.
pub(crate) async fn list_page(state: &AppState, principal: &Principal, query: &ListQuery) -> Result<JobList, Problem> {
    let mut filter = query.to_filter()?;
    let limit = filter.limit as usize;
    // One more than asked, to know whether another page exists without making
    // clients fetch an empty last page.
    filter.limit += 1;
    let mut jobs = state.store.list_jobs(&principal.scope(), &filter).await?;
    let next_cursor = if jobs.len() > limit {
        jobs.truncate(limit);
        jobs.last().map(|job| encode_cursor(job.id))
    } else {
        None
    };
    Ok(JobList { items: JobView::with_artifacts(&state.store, jobs).await?, next_cursor })
}

/// List jobs: a user's own, an admin's tenant's, or every tenant's for the
/// platform role. Newest first.
#[utoipa::path(
    get, path = "/v1/jobs", tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, body = JobList),
        (status = 422, description = "A filter is invalid; `field` names it"),
    ),
    security(("bearer" = []))
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<Json<JobList>, Problem> {
    Ok(Json(list_page(&state, &principal, &query).await?))
}

/// Cancel a job.
///
/// A queued job is cancelled at once (200). A running job is asked to stop,
/// and its worker stops it at its next heartbeat (202, with
/// `cancel_requested_at` set). A job that has already ended is a 409.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = Uuid, Path, description = "The job id")),
    responses(
        (status = 200, description = "Cancelled", body = JobView),
        (status = 202, description = "Running; the worker was asked to stop", body = JobView),
        (status = 404),
        (status = 409, description = "The job already finished"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    principal: Principal,
    client: crate::audit::Client,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = parse_job_id(&id)?;
    let outcome = state.store.cancel_job(&principal.scope(), id).await?;
    // An admin's cancel is an admin action, wherever it comes from.
    if let (Some(CancelOutcome::Cancelled(job) | CancelOutcome::Requested(job)), true) =
        (&outcome, principal.role >= crate::auth::Role::Admin)
    {
        let action = crate::audit::Action::new("job.cancel", job.id.to_string()).on_tenant(job.tenant_id.clone());
        crate::audit::record(&state.store, &principal, &client, action).await;
    }
    match outcome {
        None => Err(Problem::not_found(format!("no job `{id}`"))),
        Some(CancelOutcome::Cancelled(job)) => {
            tracing::info!(job_id = %job.id, user_id = %principal.user_id, "job cancelled");
            Ok((StatusCode::OK, Json(JobView::from(job))).into_response())
        }
        Some(CancelOutcome::Requested(job)) => {
            tracing::info!(job_id = %job.id, user_id = %principal.user_id, "cancel requested for a running job");
            Ok((StatusCode::ACCEPTED, Json(JobView::from(job))).into_response())
        }
        Some(CancelOutcome::AlreadyFinal(job)) => Err(Problem::conflict(
            "Job already finished",
            format!("the job is {}; only queued or running jobs can be cancelled", job.status),
        )),
    }
}

/// Who submits a job, for the kind to fill its defaults from: the token's
/// name, and its `locale` claim, then the request's `Accept-Language`
/// ranges, best first.
fn submitter(principal: &Principal, headers: &HeaderMap) -> Submitter {
    let mut languages: Vec<String> = principal.locale.iter().cloned().collect();
    if let Some(header) = headers.get(header::ACCEPT_LANGUAGE).and_then(|value| value.to_str().ok()) {
        let mut ranges: Vec<(&str, f32)> = header
            .split(',')
            .filter_map(|range| {
                let mut parts = range.split(';');
                let tag = parts.next()?.trim();
                let quality = parts
                    .find_map(|param| param.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                Some((tag, quality))
            })
            .filter(|(_, quality)| *quality > 0.0)
            .collect();
        // Stable: equal qualities keep the client's order.
        ranges.sort_by(|a, b| b.1.total_cmp(&a.1));
        languages.extend(ranges.into_iter().map(|(tag, _)| tag.to_owned()));
    }
    Submitter { languages, name: principal.name.clone() }
}
