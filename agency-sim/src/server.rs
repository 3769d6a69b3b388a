//! The simulator's HTTP API: the providers' reservation look-ups and the
//! `/_sim` control endpoints.

use std::{sync::Arc, time::Duration};

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{
    data::{etag_of, SimReservation, Wire},
    stats::Counters,
    ProviderState, Shared,
};

/// What a malformed reservation carries as its `starts_at`.
const NOT_A_DATE: &str = "tomorrow-ish";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/stats", get(stats))
        .route("/_sim/{provider}/{action}", post(control))
        .route("/_sim/{provider}/reservations/{number}/move", post(move_reservation))
        .route("/{provider}/reservations/batch", post(batch))
        .route("/{provider}/reservations/{number}", get(lookup))
        .with_state(shared)
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<crate::Stats> {
    Json(shared.stats())
}

#[derive(Debug, Deserialize)]
struct ControlQuery {
    retry_after: Option<u64>,
}

async fn control(
    State(shared): State<Arc<Shared>>,
    Path((provider, action)): Path<(String, String)>,
    Query(query): Query<ControlQuery>,
) -> Response {
    let known = match action.as_str() {
        "down" => shared.set_down(&provider, true),
        "up" => shared.set_down(&provider, false),
        "throttle" => shared.set_throttle(&provider, Some(query.retry_after.unwrap_or(shared.config.retry_after_secs))),
        "unthrottle" => shared.set_throttle(&provider, None),
        other => return (StatusCode::NOT_FOUND, format!("unknown action `{other}`\n")).into_response(),
    };
    if known {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::NOT_FOUND, format!("unknown provider `{provider}`\n")).into_response()
    }
}

#[derive(Debug, Deserialize)]
struct MoveQuery {
    /// How far to move it, later (or earlier, negative), in minutes.
    minutes: i64,
}

/// The longest move taken: a year either way.
const MAX_MOVE_MINUTES: i64 = 366 * 24 * 60;

/// `POST /_sim/{provider}/reservations/{number}/move?minutes=N`: the airline
/// rebooks a reservation N minutes later (or earlier), as a known change;
/// answers the reservation as it now is.
async fn move_reservation(
    State(shared): State<Arc<Shared>>,
    Path((provider_name, number)): Path<(String, String)>,
    Query(query): Query<MoveQuery>,
) -> Response {
    let Some(provider) = shared.provider(&provider_name) else {
        return unknown_provider(&provider_name);
    };
    let Some(i) = shared.index_of(provider, &number) else {
        return (StatusCode::NOT_FOUND, format!("no reservation `{number}`\n")).into_response();
    };
    if query.minutes == 0 || query.minutes.abs() > MAX_MOVE_MINUTES {
        return (StatusCode::UNPROCESSABLE_ENTITY, format!("minutes: not 0, at most {MAX_MOVE_MINUTES} either way\n"))
            .into_response();
    }
    let moved = shared.shift(provider, i, chrono::Duration::minutes(query.minutes));
    Json(moved.wire()).into_response()
}

/// Sleeps for the configured latency plus a random share of the jitter.
async fn delay(shared: &Shared) {
    let config = &shared.config;
    let jitter = if config.latency_jitter.is_zero() {
        Duration::ZERO
    } else {
        config.latency_jitter.mul_f64(rand::rng().random::<f64>())
    };
    let wait = config.latency + jitter;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

/// The failure to answer with instead of serving, if any: the provider is
/// down or throttled, or the configured rates pick this request.
fn injected(shared: &Shared, provider: &ProviderState) -> Option<Response> {
    let config = &shared.config;
    let retry_after = if provider.is_down() {
        return Some(unavailable(provider));
    } else if let Some(secs) = provider.throttled() {
        secs
    } else if config.error_rate > 0.0 || config.throttle_rate > 0.0 {
        let roll: f64 = rand::rng().random();
        if roll < config.error_rate {
            return Some(unavailable(provider));
        } else if roll < config.error_rate + config.throttle_rate {
            config.retry_after_secs
        } else {
            return None;
        }
    } else {
        return None;
    };
    Counters::add(&provider.counters.injected_429, 1);
    let mut response = (StatusCode::TOO_MANY_REQUESTS, "too many requests (simulated)\n").into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    Some(response)
}

fn unavailable(provider: &ProviderState) -> Response {
    Counters::add(&provider.counters.injected_5xx, 1);
    (StatusCode::SERVICE_UNAVAILABLE, "service unavailable (simulated)\n").into_response()
}

fn unknown_provider(provider: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("unknown provider `{provider}`\n")).into_response()
}

/// Whether an `If-None-Match` value (a list of entity tags, weak or strong,
/// or `*`) matches `etag`.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The wire form of `reservation`, broken if the test asked for it.
fn wire<'a>(provider: &ProviderState, i: u64, reservation: &'a SimReservation) -> Wire<'a> {
    let mut wire = reservation.wire();
    if provider.is_malformed(i) {
        wire.starts_at = NOT_A_DATE.to_owned();
    }
    wire
}

async fn lookup(
    State(shared): State<Arc<Shared>>,
    Path((provider_name, number)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(provider) = shared.provider(&provider_name) else {
        return unknown_provider(&provider_name);
    };
    Counters::add(&provider.counters.requests, 1);
    let _flight = (shared.in_flight.enter(), provider.counters.in_flight.enter());
    delay(&shared).await;
    if let Some(failure) = injected(&shared, provider) {
        return failure;
    }
    Counters::add(&provider.counters.items, 1);
    let Some(i) = shared.index_of(provider, &number) else {
        Counters::add(&provider.counters.not_found, 1);
        return (StatusCode::NOT_FOUND, format!("no reservation `{number}`\n")).into_response();
    };
    let reservation = shared.current(provider, i);
    let etag = etag_of(reservation.version);
    let etag_header = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| etag_matches(value, &etag));
    if matches {
        Counters::add(&provider.counters.not_modified, 1);
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response();
    }
    Counters::add(&provider.counters.ok, 1);
    let mut response = Json(wire(provider, i, &reservation)).into_response();
    response.headers_mut().insert(header::ETAG, etag_header);
    response
}

#[derive(Debug, Deserialize)]
struct BatchRequest {
    items: Vec<BatchRequestItem>,
}

#[derive(Debug, Deserialize)]
struct BatchRequestItem {
    reservation_number: String,
    #[serde(default)]
    etag: Option<String>,
}

#[derive(Serialize)]
struct BatchResponse<'a> {
    items: Vec<BatchResponseItem<'a>>,
}

#[derive(Serialize)]
struct BatchResponseItem<'a> {
    reservation_number: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation: Option<Wire<'a>>,
}

/// What one batch item found, before it is rendered.
enum ItemAnswer {
    Current(u64, SimReservation),
    NotModified,
    NotFound,
}

async fn batch(State(shared): State<Arc<Shared>>, Path(provider_name): Path<String>, body: Bytes) -> Response {
    let Some(provider) = shared.provider(&provider_name) else {
        return unknown_provider(&provider_name);
    };
    Counters::add(&provider.counters.requests, 1);
    Counters::add(&provider.counters.batch_requests, 1);
    let _flight = (shared.in_flight.enter(), provider.counters.in_flight.enter());
    delay(&shared).await;
    if let Some(failure) = injected(&shared, provider) {
        return failure;
    }
    let request: BatchRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return (StatusCode::BAD_REQUEST, format!("unreadable batch request: {err}\n")).into_response(),
    };
    if request.items.len() > shared.config.max_batch {
        let message = format!("{} items; at most {} per batch\n", request.items.len(), shared.config.max_batch);
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    let counters = &provider.counters;
    Counters::add(&counters.items, request.items.len() as u64);
    let found: Vec<ItemAnswer> = request
        .items
        .iter()
        .map(|item| {
            let Some(i) = shared.index_of(provider, &item.reservation_number) else {
                Counters::add(&counters.not_found, 1);
                return ItemAnswer::NotFound;
            };
            let reservation = shared.current(provider, i);
            let etag = etag_of(reservation.version);
            if item.etag.as_deref().is_some_and(|sent| etag_matches(sent, &etag)) {
                Counters::add(&counters.not_modified, 1);
                ItemAnswer::NotModified
            } else {
                Counters::add(&counters.ok, 1);
                ItemAnswer::Current(i, reservation)
            }
        })
        .collect();
    let items = request
        .items
        .iter()
        .zip(&found)
        .map(|(item, found)| {
            let reservation_number = item.reservation_number.as_str();
            match found {
                ItemAnswer::Current(i, reservation) => BatchResponseItem {
                    reservation_number,
                    status: 200,
                    etag: Some(reservation.etag()),
                    reservation: Some(wire(provider, *i, reservation)),
                },
                ItemAnswer::NotModified => {
                    BatchResponseItem { reservation_number, status: 304, etag: None, reservation: None }
                }
                ItemAnswer::NotFound => {
                    BatchResponseItem { reservation_number, status: 404, etag: None, reservation: None }
                }
            }
        })
        .collect();
    Json(BatchResponse { items }).into_response()
}

#[cfg(test)]
mod tests {
    use super::etag_matches;

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        assert!(etag_matches("\"3\"", "\"3\""));
        assert!(etag_matches("W/\"3\"", "\"3\""));
        assert!(etag_matches("\"1\", \"3\"", "\"3\""));
        assert!(etag_matches("*", "\"3\""));
        assert!(!etag_matches("\"2\"", "\"3\""));
        assert!(!etag_matches("3", "\"3\""));
        assert!(!etag_matches("", "\"3\""));
    }
}
