//! `/v1/events` and `/v1/admin/event-catalogue`: analytics events from the
//! apps, checked against the tenant's catalogue and stored before the 202.
//!
//! A batch is checked whole, then stored in one insert; the hourly
//! `events_export` job takes it from there to the data lake.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::Utc;
use longhaul_jobs::{
    events::{self, BatchOutcome, Catalogue, EventBatch, EventIn},
    kind::{EventsErase, EventsErasePayload},
    model::SCHEDULER_USER,
    store::InsertOutcome,
    NewJob,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    audit::{self, Action, Client},
    auth::Principal,
    extract::JsonBody,
    idempotency,
    problem::Problem,
    routes::admin::{target_tenant, TenantQuery},
    AppState,
};

/// The body of `POST /v1/events`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsBody {
    /// 1 to 500 events, stored together or not at all.
    pub events: Vec<EventIn>,
}

/// What a stored batch became.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsAccepted {
    /// Events stored by this batch (or, on a replay, by its first sending).
    pub accepted: usize,
    /// Of those, events the catalogue does not name, kept in the `unknown`
    /// bucket because the tenant accepts them.
    pub unknown: usize,
    /// True when this `Idempotency-Key` had already stored this batch, and
    /// nothing was stored again.
    pub replayed: bool,
}

/// Send a batch of analytics events.
///
/// Every event is checked against the tenant's event catalogue: an event it
/// does not name is a 422 that names it (unless the tenant accepts unknown
/// events), and so is a property of the wrong type. The batch is stored
/// durably before the 202. With an `Idempotency-Key`, a retried batch is
/// stored once (the retry answers 202 with `replayed`); the same key with a
/// different batch is a 409.
#[utoipa::path(
    post, path = "/v1/events", tag = "events",
    request_body = EventsBody,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a repeated key stores the batch once"),
    ),
    responses(
        (status = 202, description = "Stored", body = EventsAccepted),
        (status = 400),
        (status = 409, description = "Key reused with a different batch"),
        (status = 413),
        (status = 415),
        (status = 422, description = "An unknown event, or an invalid one; `field` names it, such as `events[3].name`"),
    ),
    security(("bearer" = []))
)]
pub async fn ingest(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    JsonBody(body): JsonBody<EventsBody>,
) -> Result<Response, Problem> {
    let idempotency_key = idempotency::key_of(&headers)?;
    let request_hash = serde_json::to_value(&body).map(|value| idempotency::body_hash(&value)).unwrap_or_default();
    let catalogue = catalogue_of(&state, &principal.tenant_id).await?;
    let received_at = Utc::now();
    let admitted = events::admit(&catalogue, body.events, received_at)
        .map_err(|err| Problem::invalid_field(err.field, err.message))?;
    let unknown = admitted.iter().filter(|event| !event.known).count();
    let batch = EventBatch {
        tenant_id: principal.tenant_id.clone(),
        user_id: principal.user_id.clone(),
        idempotency_key,
        request_hash,
        received_at,
        events: admitted,
    };
    let answer = match state.store.store_events(batch).await? {
        BatchOutcome::Stored { accepted } => {
            metrics::counter!("longhaul_events_ingested_total").increment(accepted as u64);
            EventsAccepted { accepted, unknown, replayed: false }
        }
        BatchOutcome::Replayed { accepted } => EventsAccepted { accepted, unknown, replayed: true },
        BatchOutcome::Conflict => return Err(Problem::idempotency_conflict()),
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// The tenant an admin's request is about: their own, or for the platform
/// role the one it names (its own when it names none).
fn admin_tenant(principal: &Principal, query: &TenantQuery) -> Result<String, Problem> {
    principal.require_admin()?;
    Ok(target_tenant(principal, query.tenant.as_deref()).unwrap_or_else(|| principal.tenant_id.clone()))
}

/// The tenant's catalogue, or the default one.
async fn catalogue_of(state: &AppState, tenant_id: &str) -> Result<Catalogue, Problem> {
    Ok(state.store.event_catalogue(tenant_id).await?.unwrap_or_else(Catalogue::default_catalogue))
}

/// The tenant's event catalogue: the events its apps may send, their
/// properties' types, and which properties are personal data. A tenant that
/// never changed it has the default one. The platform role reads a tenant's
/// with `tenant=`.
#[utoipa::path(
    get, path = "/v1/admin/event-catalogue", tag = "events",
    params(TenantQuery),
    responses((status = 200, body = Catalogue), (status = 403)),
    security(("bearer" = []))
)]
pub async fn get_catalogue(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<TenantQuery>,
) -> Result<Json<Catalogue>, Problem> {
    let tenant = admin_tenant(&principal, &query)?;
    Ok(Json(catalogue_of(&state, &tenant).await?))
}

/// Replace the tenant's event catalogue. Properties named `email`, `phone`,
/// `name`, `ip_address` or `passport_number` are personal data wherever they
/// appear: `pseudonymise` or `drop`, never `none`. A property has one type
/// across events (it is one column in the lake). The change is audited, and
/// applies to the next batch.
#[utoipa::path(
    put, path = "/v1/admin/event-catalogue", tag = "events",
    params(TenantQuery),
    request_body = Catalogue,
    responses(
        (status = 200, body = Catalogue),
        (status = 400),
        (status = 403),
        (status = 413),
        (status = 415),
        (status = 422, description = "The catalogue does not hold; `field` names where"),
    ),
    security(("bearer" = []))
)]
pub async fn put_catalogue(
    State(state): State<AppState>,
    principal: Principal,
    client: Client,
    Query(query): Query<TenantQuery>,
    JsonBody(catalogue): JsonBody<Catalogue>,
) -> Result<Json<Catalogue>, Problem> {
    let tenant = admin_tenant(&principal, &query)?;
    catalogue.validate().map_err(|err| Problem::invalid_field(err.field, err.message))?;
    state.store.put_event_catalogue(&tenant, &catalogue, &principal.user_id).await?;
    let detail = serde_json::json!({ "events": catalogue.events.len(), "unknown_events": catalogue.unknown_events });
    let action = Action::new("event_catalogue.put", tenant.clone()).on_tenant(tenant).with_detail(detail);
    audit::record(&state.store, &principal, &client, action).await;
    Ok(Json(catalogue))
}

/// A deletion request, as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDeletionView {
    /// The request's id.
    pub id: uuid::Uuid,
    pub user_id: String,
    /// Raw events deleted with the request, at once.
    pub raw_deleted: i64,
    /// The `events_erase` job that rewrites the lake without the user's
    /// events; it starts once every export that could still be writing
    /// their events has ended (within the hour).
    pub erase_job_id: uuid::Uuid,
    pub requested_at: chrono::DateTime<Utc>,
}

/// Delete your analytics events.
///
/// Your raw events are deleted at once (no export after this sees them),
/// and an `events_erase` job rewrites the tenant's data lake without them
/// within the hour.
#[utoipa::path(
    delete, path = "/v1/me/events", tag = "events",
    responses((status = 202, description = "Deleted from the database; the lake follows", body = EventDeletionView)),
    security(("bearer" = []))
)]
pub async fn delete_my_events(State(state): State<AppState>, principal: Principal) -> Result<Response, Problem> {
    let deletion = request_deletion(&state, &principal.tenant_id, &principal.user_id, &principal.user_id).await?;
    Ok((StatusCode::ACCEPTED, Json(deletion)).into_response())
}

/// Delete a user's analytics events, on their behalf.
///
/// As `DELETE /v1/me/events`, for a user of the admin's tenant (the
/// platform role names the tenant with `tenant=`). Audited.
#[utoipa::path(
    delete, path = "/v1/admin/users/{user}/events", tag = "events",
    params(("user" = String, Path, description = "The user's id (the token's `sub`)"), TenantQuery),
    responses(
        (status = 202, description = "Deleted from the database; the lake follows", body = EventDeletionView),
        (status = 403),
        (status = 404, description = "No such user: an id no token can carry (empty, over 255 characters, a control character, or the platform's `_` prefix)"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_user_events(
    State(state): State<AppState>,
    principal: Principal,
    client: Client,
    Path(user): Path<String>,
    Query(query): Query<TenantQuery>,
) -> Result<Response, Problem> {
    let tenant = admin_tenant(&principal, &query)?;
    let deletion = request_deletion(&state, &tenant, &user, &principal.user_id).await?;
    let detail = serde_json::json!({ "raw_deleted": deletion.raw_deleted, "request_id": deletion.id });
    let action = Action::new("events.delete_user", user).on_tenant(tenant).with_detail(detail);
    audit::record(&state.store, &principal, &client, action).await;
    Ok((StatusCode::ACCEPTED, Json(deletion)).into_response())
}

/// Records the request (the raw rows go with it) and submits the lake's
/// rewrite, to start once any export that read the rows has ended.
async fn request_deletion(
    state: &AppState,
    tenant: &str,
    user: &str,
    requested_by: &str,
) -> Result<EventDeletionView, Problem> {
    if user.is_empty() || user.starts_with('_') || user.chars().count() > 255 || user.chars().any(char::is_control) {
        return Err(Problem::not_found(format!("no user `{}` can exist", user.escape_debug())));
    }
    let deletion = state.store.request_event_deletion(tenant, user, requested_by).await?;
    let payload = EventsErasePayload { request_id: deletion.id };
    let mut job = NewJob::of::<EventsErase>(tenant, SCHEDULER_USER, &payload)
        .map_err(|err| Problem::bad_request(err.to_string()))?;
    job.run_at = Utc::now() + chrono::Duration::from_std(EventsErase::DELAY).unwrap_or_default();
    job.idempotency_key = Some(format!("events_erase:{}", deletion.id));
    let erase_job_id = match state.store.insert_job(job).await? {
        InsertOutcome::Created(job) | InsertOutcome::Existing(job) | InsertOutcome::Conflict(job) => job.id,
    };
    tracing::info!(request_id = %deletion.id, raw_deleted = deletion.raw_deleted, "events deletion requested");
    Ok(EventDeletionView {
        id: deletion.id,
        user_id: deletion.user_id,
        raw_deleted: deletion.raw_deleted,
        erase_job_id,
        requested_at: deletion.requested_at,
    })
}
