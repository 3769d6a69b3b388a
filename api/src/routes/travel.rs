//! `/v1/reservations` and `/v1/trips`: what the jobs find, refresh and report
//! on, and what users add or correct by hand.
//!
//! Reads follow the caller's scope: a user sees their own, an admin their
//! tenant's. A reservation someone else owns is a 404, never a 403.

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use longhaul_jobs::travel::{
    ChangeOrigin, MoveOutcome, NewReservation, Reservation, ReservationChange, ReservationFilter, ReservationPatch,
    ReservationSource, ReservationStatus, ReservationType, Trip, Zone,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{auth::Principal, extract::JsonBody, paging, problem::Problem, AppState};

/// The body of `PATCH /v1/reservations/{id}`: the fields to change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationChanges {
    #[serde(rename = "type")]
    pub kind: Option<ReservationType>,
    pub reservation_number: Option<String>,
    pub provider: Option<String>,
    pub status: Option<ReservationStatus>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub origin: Option<String>,
    pub destination: Option<String>,
    /// Where it starts and ends: an IANA name or an offset. Changing the
    /// place without them gives the new place's zones.
    #[schema(value_type = Option<String>)]
    pub start_zone: Option<Zone>,
    #[schema(value_type = Option<String>)]
    pub end_zone: Option<Zone>,
    /// Move the reservation to one of your trips, for good: regrouping
    /// keeps it there. `null` hands it back to automatic grouping.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub trip_id: Option<Option<Uuid>>,
}

/// Tells a field set to `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<Uuid>>, D::Error> {
    Option::<Uuid>::deserialize(deserializer).map(Some)
}

/// One page of reservations, latest start first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationList {
    pub items: Vec<Reservation>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A reservation's history, oldest first: every change, whoever made it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationChangeList {
    pub items: Vec<ReservationChange>,
    /// Always null: the whole history is one page.
    pub next_cursor: Option<String>,
}

/// One page of trips, latest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TripList {
    pub items: Vec<Trip>,
    pub next_cursor: Option<String>,
}

/// The query of reservation lists. Parsed by hand, so that a bad value is a
/// 422 naming its parameter; empty values count as absent.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReservationQuery {
    /// Only reservations of this type.
    #[serde(rename = "type")]
    #[param(rename = "type", schema_with = paging::reservation_type_filter_schema)]
    pub kind: Option<String>,
    #[param(schema_with = paging::reservation_status_filter_schema)]
    pub status: Option<String>,
    /// Only the reservations of this trip.
    #[param(schema_with = paging::id_filter_schema)]
    pub trip_id: Option<String>,
    #[param(schema_with = paging::time_cursor_schema)]
    pub cursor: Option<String>,
    #[param(schema_with = paging::items_limit_schema)]
    pub limit: Option<String>,
}

/// The query of trip lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(schema_with = paging::time_cursor_schema)]
    pub cursor: Option<String>,
    #[param(schema_with = paging::items_limit_schema)]
    pub limit: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|value| !value.is_empty())
}

fn parse<T: std::str::FromStr<Err = String>>(field: &str, value: &Option<String>) -> Result<Option<T>, Problem> {
    non_empty(value).map(|raw| raw.parse::<T>().map_err(|err| Problem::invalid_field(field, err))).transpose()
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z: the times a cursor
/// can stand for, which both databases store and compare.
const EARLIEST_CURSOR_MICROS: i64 = -62_135_596_800_000_000;
const LATEST_CURSOR_MICROS: i64 = 253_402_300_799_999_999;

/// Cursors are opaque: the base64url of the last item's start (microseconds)
/// and id, the key lists are ordered by.
fn encode_cursor(starts_at: DateTime<Utc>, id: Uuid) -> String {
    let mut bytes = starts_at.timestamp_micros().to_be_bytes().to_vec();
    bytes.extend_from_slice(id.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn decode_cursor(value: &Option<String>) -> Result<Option<(DateTime<Utc>, Uuid)>, Problem> {
    let Some(raw) = non_empty(value) else { return Ok(None) };
    let bad = || Problem::invalid_field("cursor", "not a cursor from this API");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    if bytes.len() != 24 {
        return Err(bad());
    }
    let (micros, id) = bytes.split_at(8);
    let micros = i64::from_be_bytes(micros.try_into().map_err(|_| bad())?);
    // Any 32 characters of base64url are a cursor (as its schema says): a
    // time beyond what lists hold is a position past their end.
    let micros = micros.clamp(EARLIEST_CURSOR_MICROS, LATEST_CURSOR_MICROS);
    let starts_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(Some((starts_at, Uuid::from_slice(id).map_err(|_| bad())?)))
}

/// Cuts a page fetched with one extra item back to `limit`, and returns the
/// cursor of the next page if that extra item was there.
pub(crate) fn trim_page<T>(
    items: &mut Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> (DateTime<Utc>, Uuid),
) -> Option<String> {
    if items.len() <= limit as usize {
        return None;
    }
    items.truncate(limit as usize);
    items.last().map(|last| {
        let (starts_at, id) = key(last);
        encode_cursor(starts_at, id)
    })
}

fn parse_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| Problem::not_found(format!("no reservation `{raw}`")))
}

fn invalid(err: longhaul_jobs::travel::InvalidField) -> Problem {
    Problem::invalid_field(err.field, err.message)
}

/// Add a reservation by hand (`source: manual`). It joins a trip at once.
#[utoipa::path(
    post, path = "/v1/reservations", tag = "travel",
    request_body = NewReservation,
    responses(
        (status = 201, description = "Created", body = Reservation),
        (status = 400, description = "Malformed JSON"),
        (status = 422, description = "A field is invalid; `field` names it"),
    ),
    security(("bearer" = []))
)]
pub async fn create_reservation(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<NewReservation>,
) -> Result<Response, Problem> {
    let fields = body.validate().map_err(invalid)?;
    let created = state
        .store
        .insert_reservation(&principal.tenant_id, &principal.user_id, ReservationSource::Manual, fields)
        .await?;
    let location = HeaderValue::from_str(&format!("/v1/reservations/{}", created.id)).ok();
    let mut response = (StatusCode::CREATED, Json(created)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Reservations, latest start first: a user's own, an admin's tenant's.
#[utoipa::path(
    get, path = "/v1/reservations", tag = "travel",
    params(ReservationQuery),
    responses(
        (status = 200, body = ReservationList),
        (status = 422, description = "A filter is invalid; `field` names it"),
    ),
    security(("bearer" = []))
)]
pub async fn list_reservations(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ReservationQuery>,
) -> Result<Json<ReservationList>, Problem> {
    let limit = paging::ITEMS.limit(query.limit.as_deref())?;
    let trip_id = non_empty(&query.trip_id)
        .map(|raw| {
            // The hyphenated form only, as the parameter's pattern says.
            (raw.len() == 36)
                .then(|| Uuid::parse_str(raw).ok())
                .flatten()
                .ok_or_else(|| Problem::invalid_field("trip_id", "must be a trip id"))
        })
        .transpose()?;
    let filter = ReservationFilter {
        kind: parse("type", &query.kind)?,
        status: parse("status", &query.status)?,
        trip_id,
        after: decode_cursor(&query.cursor)?,
        // One more than asked, to know whether another page exists.
        limit: limit + 1,
        ..ReservationFilter::default()
    };
    let mut items = state.store.list_reservations(&principal.scope(), &filter).await?;
    let next_cursor = trim_page(&mut items, limit, |r| (r.starts_at, r.id));
    Ok(Json(ReservationList { items, next_cursor }))
}

/// One reservation.
#[utoipa::path(
    get, path = "/v1/reservations/{id}", tag = "travel",
    params(("id" = Uuid, Path, description = "The reservation id")),
    responses(
        (status = 200, body = Reservation),
        (status = 404),
    ),
    security(("bearer" = []))
)]
pub async fn get_reservation(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Reservation>, Problem> {
    let id = parse_id(&id)?;
    let found = state.store.get_reservation(&principal.scope(), id).await?;
    found.map(Json).ok_or_else(|| Problem::not_found(format!("no reservation `{id}`")))
}

/// Change some fields of a reservation; the rest stay. Its trip follows.
#[utoipa::path(
    patch, path = "/v1/reservations/{id}", tag = "travel",
    params(("id" = Uuid, Path, description = "The reservation id")),
    request_body = ReservationChanges,
    responses(
        (status = 200, body = Reservation),
        (status = 404),
        (status = 422, description = "A field is invalid; `field` names it"),
    ),
    security(("bearer" = []))
)]
pub async fn update_reservation(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReservationChanges>,
) -> Result<Json<Reservation>, Problem> {
    let id = parse_id(&id)?;
    let scope = principal.scope();
    let not_found = || Problem::not_found(format!("no reservation `{id}`"));
    let current = state.store.get_reservation(&scope, id).await?.ok_or_else(not_found)?;
    let patch = ReservationPatch {
        kind: body.kind,
        reservation_number: body.reservation_number,
        provider: body.provider,
        status: body.status,
        starts_at: body.starts_at,
        ends_at: body.ends_at,
        details: body.details,
        city: body.city,
        country: body.country,
        origin: body.origin,
        destination: body.destination,
        start_zone: body.start_zone,
        end_zone: body.end_zone,
    };
    let fields = patch.apply(&current).map_err(invalid)?;
    let updated = state.store.update_reservation(&scope, id, fields, ChangeOrigin::MANUAL).await?;
    let updated = updated.ok_or_else(not_found)?;
    let Some(trip) = body.trip_id else { return Ok(Json(updated)) };
    match state.store.move_reservation(&scope, id, trip).await? {
        MoveOutcome::Moved(moved) => Ok(Json(*moved)),
        MoveOutcome::NoReservation => Err(not_found()),
        MoveOutcome::NoTrip => Err(Problem::invalid_field("trip_id", "not one of the reservation owner's trips")),
        MoveOutcome::Cancelled => Err(Problem::invalid_field("trip_id", "a cancelled reservation belongs to no trip")),
    }
}

/// A reservation's history: what changed, who changed it (`agency`,
/// `email` or `manual`) and when.
#[utoipa::path(
    get, path = "/v1/reservations/{id}/changes", tag = "travel",
    params(("id" = Uuid, Path, description = "The reservation id")),
    responses(
        (status = 200, body = ReservationChangeList),
        (status = 404),
    ),
    security(("bearer" = []))
)]
pub async fn reservation_changes(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ReservationChangeList>, Problem> {
    let id = parse_id(&id)?;
    let items = state.store.reservation_changes(&principal.scope(), id).await?;
    let items = items.ok_or_else(|| Problem::not_found(format!("no reservation `{id}`")))?;
    Ok(Json(ReservationChangeList { items, next_cursor: None }))
}

/// Delete a reservation. Its trip shrinks, or goes if it was the last one.
#[utoipa::path(
    delete, path = "/v1/reservations/{id}", tag = "travel",
    params(("id" = Uuid, Path, description = "The reservation id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404),
    ),
    security(("bearer" = []))
)]
pub async fn delete_reservation(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let id = parse_id(&id)?;
    if state.store.delete_reservation(&principal.scope(), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no reservation `{id}`")))
    }
}

/// Trips: confirmed reservations grouped by time, latest first.
#[utoipa::path(
    get, path = "/v1/trips", tag = "travel",
    params(PageQuery),
    responses(
        (status = 200, body = TripList),
        (status = 422, description = "A parameter is invalid; `field` names it"),
    ),
    security(("bearer" = []))
)]
pub async fn list_trips(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<PageQuery>,
) -> Result<Json<TripList>, Problem> {
    let limit = paging::ITEMS.limit(query.limit.as_deref())?;
    let after = decode_cursor(&query.cursor)?;
    let mut items = state.store.list_trips(&principal.scope(), after, limit + 1).await?;
    let next_cursor = trim_page(&mut items, limit, |t| (t.starts_at, t.id));
    Ok(Json(TripList { items, next_cursor }))
}
