//! `/v1/me`: the caller's own profile, push devices and notifications.
//!
//! Every route here is the caller's own, whatever their role: an admin's
//! `/v1/me` is their profile, not their tenant's. A device or notification
//! of anyone else, in this tenant or another, is a 404.
//!
//! - `GET/PATCH /v1/me`: time zone (IANA, 422 otherwise), locale (BCP 47),
//!   notification preferences per type, quiet hours.
//! - `POST/GET /v1/me/devices`, `DELETE /v1/me/devices/{id}`: push tokens.
//!   A token registered again is the same device (200, same id); a new one
//!   is a 201.
//! - `GET /v1/me/notifications`: the in-app inbox, newest first; with
//!   `Accept: text/event-stream`, the same live (server-sent events);
//!   `POST /v1/me/notifications/{id}/read`.

use std::{
    collections::{BTreeMap, HashMap},
    convert::Infallible,
    time::Duration,
};

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use chrono::{DateTime, Utc};
use futures::{stream, Stream, StreamExt};
use longhaul_jobs::inbox::{
    Device, NewDevice, Notification, NotificationType, Platform, ProfilePatch, QuietHours, APP_VERSION_MAX_CHARS,
    TOKEN_MAX_CHARS,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::Principal,
    extract::JsonBody,
    paging,
    problem::Problem,
    routes::travel::{decode_cursor, trim_page},
    sse::until_expiry,
    AppState,
};

/// The caller's profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    pub user_id: String,
    /// From the tenant's user imports.
    pub email: Option<String>,
    pub name: Option<String>,
    /// IANA name, such as `America/Sao_Paulo`; null until set (times are
    /// then shown in UTC).
    pub time_zone: Option<String>,
    /// BCP 47 tag, such as `pt-BR`; messages are in English unless it is
    /// Portuguese.
    pub locale: Option<String>,
    /// Every notification type, and whether the user wants it.
    pub notifications: NotificationChoices,
    /// Null when there are none.
    pub quiet_hours: Option<QuietHoursView>,
}

/// Quiet hours in the user's time zone, `HH:MM` on a 24-hour clock; a
/// start after the end spans midnight. Only urgent messages (a change to a
/// flight leaving within 24 hours) come through; the rest wait until the end.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursView {
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "22:00")]
    pub start: String,
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "07:00")]
    pub end: String,
}

impl ProfileView {
    fn of(profile: longhaul_jobs::inbox::Profile) -> ProfileView {
        let notifications = NotificationChoices::of(&profile);
        ProfileView {
            user_id: profile.user_id,
            email: profile.email,
            name: profile.name,
            time_zone: profile.time_zone,
            locale: profile.locale,
            notifications,
            quiet_hours: profile.quiet_hours.map(|quiet| QuietHoursView {
                start: QuietHours::format_time(quiet.start),
                end: QuietHours::format_time(quiet.end),
            }),
        }
    }
}

/// Whether the user wants each type of notification: `reservation.changed`
/// (a reservation changed at its agency), `trip.ready`, `report.ready`,
/// `video.ready`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationChoices {
    #[serde(rename = "reservation.changed", default, skip_serializing_if = "Option::is_none")]
    pub reservation_changed: Option<bool>,
    #[serde(rename = "trip.ready", default, skip_serializing_if = "Option::is_none")]
    pub trip_ready: Option<bool>,
    #[serde(rename = "report.ready", default, skip_serializing_if = "Option::is_none")]
    pub report_ready: Option<bool>,
    #[serde(rename = "video.ready", default, skip_serializing_if = "Option::is_none")]
    pub video_ready: Option<bool>,
}

impl NotificationChoices {
    fn of(profile: &longhaul_jobs::inbox::Profile) -> NotificationChoices {
        let wants = |kind| Some(profile.wants(kind));
        NotificationChoices {
            reservation_changed: wants(NotificationType::ReservationChanged),
            trip_ready: wants(NotificationType::TripReady),
            report_ready: wants(NotificationType::ReportReady),
            video_ready: wants(NotificationType::VideoReady),
        }
    }

    fn by_type(&self) -> [(NotificationType, Option<bool>); 4] {
        [
            (NotificationType::ReservationChanged, self.reservation_changed),
            (NotificationType::TripReady, self.trip_ready),
            (NotificationType::ReportReady, self.report_ready),
            (NotificationType::VideoReady, self.video_ready),
        ]
    }
}

/// The body of `PATCH /v1/me`: the fields to change; `null` clears one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileChanges {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "America/Sao_Paulo")]
    pub time_zone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "pt-BR")]
    pub locale: Option<Option<String>>,
    /// Notification types and whether they are wanted; types left out (or
    /// null) keep their setting.
    #[serde(default, deserialize_with = "object_or_null")]
    pub notifications: Option<NotificationChoices>,
    #[serde(default, deserialize_with = "present_object")]
    #[schema(value_type = Option<QuietHoursView>)]
    pub quiet_hours: Option<Option<QuietHoursView>>,
}

/// Tells a field set to `null` (`Some(None)`) from one left out (`None`).
fn present<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A JSON object as `T`, or null as `None`. serde would also read a struct
/// from an array of its fields in order, which the document does not allow.
fn object_or_null<'de, T: serde::de::DeserializeOwned, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None => Ok(None),
        Some(object @ serde_json::Value::Object(_)) => T::deserialize(object).map(Some).map_err(D::Error::custom),
        Some(other) => Err(D::Error::invalid_type(unexpected(&other), &"an object or null")),
    }
}

/// As [`object_or_null`], telling null (`Some(None)`) from a field left out
/// (`None`, by `#[serde(default)]`).
fn present_object<'de, T: serde::de::DeserializeOwned, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    object_or_null(deserializer).map(Some)
}

/// How serde names a JSON value that is not what was expected.
fn unexpected(value: &serde_json::Value) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match value {
        serde_json::Value::Null => Unexpected::Unit,
        serde_json::Value::Bool(b) => Unexpected::Bool(*b),
        serde_json::Value::Number(_) => Unexpected::Other("a number"),
        serde_json::Value::String(s) => Unexpected::Str(s),
        serde_json::Value::Array(_) => Unexpected::Seq,
        serde_json::Value::Object(_) => Unexpected::Map,
    }
}

/// The longest time zone name taken (the longest IANA name is 32).
const TIME_ZONE_MAX_CHARS: usize = 64;
/// The longest locale tag taken.
pub(crate) const LOCALE_MAX_CHARS: usize = 35;

/// The language tags `normalise_locale` takes, as the API document states
/// it: a language of 2 or 3 letters, then subtags of 1 to 8 letters or
/// digits, after `-` or `_`.
pub(crate) const PROFILE_LOCALE_PATTERN: &str = "^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$";

impl ProfileChanges {
    fn patch(self) -> Result<ProfilePatch, Problem> {
        let time_zone = match self.time_zone {
            Some(Some(zone)) => {
                let parsed = (zone.chars().count() <= TIME_ZONE_MAX_CHARS)
                    .then(|| zone.parse::<chrono_tz::Tz>().ok())
                    .flatten()
                    .ok_or_else(|| {
                        Problem::invalid_field("time_zone", "not an IANA time zone name, such as `America/Sao_Paulo`")
                    })?;
                Some(Some(parsed.name().to_owned()))
            }
            other => other,
        };
        let locale = match self.locale {
            Some(Some(tag)) => {
                let normalised = (tag.chars().count() <= LOCALE_MAX_CHARS)
                    .then(|| longhaul_jobs::imports::normalise_locale(&tag))
                    .flatten()
                    .ok_or_else(|| Problem::invalid_field("locale", "not a language tag, such as `en` or `pt-BR`"))?;
                Some(Some(normalised))
            }
            other => other,
        };
        let notifications: BTreeMap<NotificationType, bool> = self
            .notifications
            .map(|choices| choices.by_type().into_iter().filter_map(|(kind, wanted)| Some((kind, wanted?))).collect())
            .unwrap_or_default();
        let quiet_hours = match self.quiet_hours {
            Some(Some(view)) => {
                let time = |field: &str, text: &str| {
                    QuietHours::parse_time(text).ok_or_else(|| {
                        Problem::invalid_field(
                            format!("quiet_hours.{field}"),
                            "a time of day as `HH:MM`, such as `22:00`",
                        )
                    })
                };
                Some(Some(QuietHours { start: time("start", &view.start)?, end: time("end", &view.end)? }))
            }
            Some(None) => Some(None),
            None => None,
        };
        Ok(ProfilePatch { time_zone, locale, notifications, quiet_hours })
    }
}

/// The caller's profile.
#[utoipa::path(
    get, path = "/v1/me", tag = "me",
    responses((status = 200, body = ProfileView)),
    security(("bearer" = []))
)]
pub async fn get_me(State(state): State<AppState>, principal: Principal) -> Result<Json<ProfileView>, Problem> {
    let profile = state.store.get_profile(&principal.tenant_id, &principal.user_id).await?;
    Ok(Json(ProfileView::of(profile)))
}

/// Change the caller's time zone, locale, notification preferences or
/// quiet hours; the rest stay.
#[utoipa::path(
    patch, path = "/v1/me", tag = "me",
    request_body = ProfileChanges,
    responses(
        (status = 200, body = ProfileView),
        (status = 422, description = "A field is invalid (a time zone that is not an IANA name, an unknown notification type, a time that is not `HH:MM`); `field` names it"),
    ),
    security(("bearer" = []))
)]
pub async fn update_me(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<ProfileChanges>,
) -> Result<Json<ProfileView>, Problem> {
    let patch = body.patch()?;
    let profile = state.store.update_profile(&principal.tenant_id, &principal.user_id, &patch).await?;
    Ok(Json(ProfileView::of(profile)))
}

/// The body of `POST /v1/me/devices`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeviceBody {
    pub platform: Platform,
    /// The push token: APNs's device token for `ios`, the FCM registration
    /// token for `android`. Printable ASCII, no spaces.
    #[schema(min_length = 1, max_length = 4096, pattern = "^[!-~]+$")]
    pub token: String,
    #[schema(max_length = 64)]
    pub app_version: Option<String>,
}

/// The caller's devices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList {
    pub items: Vec<Device>,
    /// Always null: a user has at most a few devices.
    pub next_cursor: Option<String>,
}

/// Register a phone for pushes. The same token again is the same device.
#[utoipa::path(
    post, path = "/v1/me/devices", tag = "me",
    request_body = NewDeviceBody,
    responses(
        (status = 201, description = "A new device", body = Device),
        (status = 200, description = "The token was registered already: the same device", body = Device),
        (status = 422, description = "A field is invalid; `field` names it"),
    ),
    security(("bearer" = []))
)]
pub async fn register_device(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<NewDeviceBody>,
) -> Result<(StatusCode, Json<Device>), Problem> {
    let token = body.token.as_str();
    if token.is_empty() || token.len() > TOKEN_MAX_CHARS || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(Problem::invalid_field(
            "token",
            format!("a push token is 1 to {TOKEN_MAX_CHARS} printable ASCII characters, without spaces"),
        ));
    }
    if body
        .app_version
        .as_ref()
        .is_some_and(|version| version.chars().count() > APP_VERSION_MAX_CHARS || version.chars().any(char::is_control))
    {
        return Err(Problem::invalid_field(
            "app_version",
            format!("at most {APP_VERSION_MAX_CHARS} characters, without control characters"),
        ));
    }
    let device = NewDevice {
        tenant_id: principal.tenant_id.clone(),
        user_id: principal.user_id.clone(),
        platform: body.platform,
        token: token.to_owned(),
        app_version: body.app_version.map(|version| version.trim().to_owned()).filter(|v| !v.is_empty()),
    };
    let (device, created) = state.store.register_device(device).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(device)))
}

/// The caller's devices, most recently registered first.
#[utoipa::path(
    get, path = "/v1/me/devices", tag = "me",
    responses((status = 200, body = DeviceList)),
    security(("bearer" = []))
)]
pub async fn list_devices(State(state): State<AppState>, principal: Principal) -> Result<Json<DeviceList>, Problem> {
    let items = state.store.list_devices(&principal.tenant_id, &principal.user_id).await?;
    Ok(Json(DeviceList { items, next_cursor: None }))
}

/// Stop pushes to a phone (the app signs out).
#[utoipa::path(
    delete, path = "/v1/me/devices/{id}", tag = "me",
    params(("id" = Uuid, Path, description = "The device id")),
    responses(
        (status = 204, description = "Forgotten"),
        (status = 404),
    ),
    security(("bearer" = []))
)]
pub async fn delete_device(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, Problem> {
    let not_found = || Problem::not_found(format!("no device `{raw}`"));
    let id = Uuid::parse_str(&raw).map_err(|_| not_found())?;
    if state.store.delete_device(&principal.tenant_id, &principal.user_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// `GET /v1/me/notifications` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// `true` for unread notifications only.
    pub unread: Option<bool>,
    #[param(schema_with = paging::time_cursor_schema)]
    pub cursor: Option<String>,
    #[param(schema_with = paging::items_limit_schema)]
    pub limit: Option<String>,
}

/// One page of the inbox, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    pub items: Vec<Notification>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The caller's in-app inbox, newest first; or, asked for
/// `text/event-stream`, the inbox live: a `notification` event (the
/// notification as data, its id as the event id) for each one that reaches
/// it from then on. Reconnecting with `Last-Event-ID` resumes after that
/// notification.
#[utoipa::path(
    get, path = "/v1/me/notifications", tag = "me",
    params(
        NotificationQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "With `Accept: text/event-stream`: the id of the last notification received, to resume after it"),
    ),
    responses(
        (status = 200, description = "A page of the inbox; or, with `Accept: text/event-stream`, `notification` events (a notification as data) and an `expired` event (a problem document as data) when the token expires",
            content((NotificationList = "application/json"), (Notification = "text/event-stream"))),
        (status = 422, description = "A bad cursor or limit"),
        (status = 429, description = "With `Accept: text/event-stream`: the user holds the most event streams one user may; see `Retry-After`",
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ),
    security(("bearer" = []))
)]
pub async fn list_notifications(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(query): Query<NotificationQuery>,
) -> Result<Response, Problem> {
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|kind| kind.trim().starts_with("text/event-stream")));
    if wants_stream {
        return Ok(notification_events(state, principal, &headers).await?.into_response());
    }
    let limit = paging::ITEMS.limit(query.limit.as_deref())?;
    let after = decode_cursor(&query.cursor)?;
    let unread = query.unread.unwrap_or(false);
    let mut items =
        state.store.list_notifications(&principal.tenant_id, &principal.user_id, after, unread, limit + 1).await?;
    let next_cursor = trim_page(&mut items, limit, |n| (n.deliver_at, n.id));
    Ok(Json(NotificationList { items, next_cursor }).into_response())
}

/// Mark a notification read (again: nothing changes).
#[utoipa::path(
    post, path = "/v1/me/notifications/{id}/read", tag = "me",
    params(("id" = Uuid, Path, description = "The notification id")),
    responses(
        (status = 200, body = Notification),
        (status = 404),
    ),
    security(("bearer" = []))
)]
pub async fn read_notification(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Notification>, Problem> {
    let not_found = || Problem::not_found(format!("no notification `{raw}`"));
    let id = Uuid::parse_str(&raw).map_err(|_| not_found())?;
    let read = state.store.mark_notification_read(&principal.tenant_id, &principal.user_id, id).await?;
    read.map(Json).ok_or_else(not_found)
}

/// How far back each poll of a live inbox looks again, for notifications
/// whose transaction committed after a later one's: longer than any
/// courier transaction, and than the clocks of the API's host and the
/// database differ.
const OVERLAP: chrono::Duration = chrono::Duration::seconds(30);

/// The most notifications one poll sends.
const POLL_BATCH: u32 = 100;

/// How often to send a keep-alive comment on a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Store failures in a row after which the stream ends (the client
/// reconnects, with `Last-Event-ID`, and misses nothing).
const MAX_CONSECUTIVE_ERRORS: u32 = 10;

/// The inbox as server-sent events (see [`list_notifications`]).
async fn notification_events(
    state: AppState,
    principal: Principal,
    headers: &HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, Problem> {
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| Uuid::parse_str(value.trim()).ok());
    let since = match resume {
        Some(id) => state
            .store
            .get_notification(&principal.tenant_id, &principal.user_id, id)
            .await?
            .map(|notification| (notification.deliver_at, notification.id)),
        None => None,
    };
    let slot = state.limits.open_stream(&principal, "/v1/me/notifications")?;
    // From the one resumed after, or from now: what reached the inbox by
    // then counts as sent (the list, not the stream, is the record). The
    // stream sends in (time, id) order, so of several that reached the inbox
    // at the same instant, those after the resumed one's id were not sent.
    let (floor, last) = since.unwrap_or_else(|| (Utc::now(), Uuid::max()));
    let seen =
        state.store.notifications_since(&principal.tenant_id, &principal.user_id, floor - OVERLAP, POLL_BATCH).await?;
    let follow = Follow {
        state,
        tenant_id: principal.tenant_id.clone(),
        user_id: principal.user_id.clone(),
        floor,
        sent: seen
            .into_iter()
            .filter(|n| (n.deliver_at, n.id) <= (floor, last))
            .map(|n| (n.id, n.deliver_at))
            .collect(),
        errors: 0,
        first: true,
    };
    let shutdown = follow.state.shutdown.clone().cancelled_owned();
    let events = stream::unfold(follow, |mut follow| async move {
        let batch = follow.next_batch().await?;
        Some((stream::iter(batch.into_iter().map(Ok)), follow))
    })
    .flatten();
    let events = until_expiry(events, principal.expires_at, slot).take_until(shutdown);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// A live inbox between polls.
struct Follow {
    state: AppState,
    tenant_id: String,
    user_id: String,
    /// Notifications that reached the inbox after this (less the overlap)
    /// are looked for.
    floor: DateTime<Utc>,
    /// Those sent whose time is within the overlap of the floor, and their
    /// times: the ones a poll can find again.
    sent: HashMap<Uuid, DateTime<Utc>>,
    errors: u32,
    first: bool,
}

impl Follow {
    /// The next notifications to send (waiting for some); None ends the stream.
    async fn next_batch(&mut self) -> Option<Vec<Event>> {
        loop {
            if !std::mem::take(&mut self.first) {
                tokio::time::sleep(self.state.sse_poll_interval).await;
            }
            let polled_at = Utc::now();
            let found = match self
                .state
                .store
                .notifications_since(&self.tenant_id, &self.user_id, self.floor - OVERLAP, POLL_BATCH)
                .await
            {
                Ok(found) => {
                    self.errors = 0;
                    found
                }
                Err(err) => {
                    self.errors += 1;
                    tracing::warn!(error = %err, attempt = self.errors, "cannot poll the inbox for its event stream");
                    if self.errors >= MAX_CONSECUTIVE_ERRORS {
                        return None;
                    }
                    continue;
                }
            };
            let full = found.len() >= POLL_BATCH as usize;
            let mut events = Vec::new();
            let mut latest = None;
            for notification in found {
                latest = Some(notification.deliver_at);
                if self.sent.insert(notification.id, notification.deliver_at).is_none() {
                    let id = notification.id.to_string();
                    match Event::default().event("notification").id(id).json_data(&notification) {
                        Ok(event) => events.push(event),
                        Err(err) => tracing::warn!(error = %err, "a notification did not serialise"),
                    }
                }
            }
            // A full page may have more: the next poll starts after it.
            self.floor = if full { latest.unwrap_or(self.floor).max(self.floor) } else { polled_at.max(self.floor) };
            let horizon = self.floor - OVERLAP;
            self.sent.retain(|_, at| *at > horizon);
            if !events.is_empty() {
                return Some(events);
            }
        }
    }
}
