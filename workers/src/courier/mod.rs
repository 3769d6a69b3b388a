//! The courier: outbox events that concern a traveler become notifications
//! in their inbox, and pushes to their devices.
//!
//! It sits in front of the events' own notifier (SNS topic or log) as a
//! [`Notifier`] itself: for each batch the publisher drains, it renders the
//! notifications (`words`) in the user's language and zones, records them
//! (`InboxStore::record_notifications`, once per event and user, with one
//! pending push per device when pushes are on), and only then hands the
//! batch on. A batch that fails to record stays in the outbox and comes
//! again; recording it twice changes nothing, because the outbox row is the
//! notification's key. An event the courier cannot read (a payload of
//! another shape, a reservation since deleted) is passed on without a
//! notification, never held.
//!
//! Which events concern a traveler:
//! - `reservation.changed` → `reservation.changed`, urgent when the
//!   reservation is a flight that leaves within [`URGENT_WITHIN`] (before or
//!   after the change);
//! - `trip.ready` (a new trip that has not started) → `trip.ready`;
//! - `job.succeeded` of a `report_build` → `report.ready`, of a
//!   `video_compile` → `video.ready`.
//!
//! A type the user turned off makes nothing. A message that is not urgent
//! and comes in the user's quiet hours is held until they end
//! (`QuietHours::release`, in the user's zone).

pub mod push;
pub mod words;

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use longhaul_jobs::{
    database::DynStore,
    inbox::{NewNotification, NotificationType, Profile},
    notify::{event_types, DynNotifier, Notifier, NotifyError, OutboxEvent},
    travel::{Reservation, ReservationType},
    JobKind, Scope,
};
use serde_json::{json, Value};
use tracing::Instrument;
use uuid::Uuid;

use words::Lang;

/// A change to a flight leaving this soon is urgent: it goes through quiet
/// hours.
pub const URGENT_WITHIN: Duration = Duration::hours(24);

/// The courier in front of `next`.
pub struct Courier {
    store: DynStore,
    next: DynNotifier,
    /// Whether devices get pushes (a push service is configured): then each
    /// notification also gets one pending push per device.
    push: bool,
}

impl Courier {
    pub fn wrap(store: DynStore, next: DynNotifier, push: bool) -> DynNotifier {
        Arc::new(Courier { store, next, push })
    }

    /// The notification an event makes, if any. Errors are the store's
    /// (the batch is retried); an event it cannot use is `None`.
    async fn notification_for(
        &self,
        event: &OutboxEvent,
        profiles: &mut HashMap<(String, String), Profile>,
        now: DateTime<Utc>,
    ) -> Result<Option<NewNotification>, NotifyError> {
        // Most events concern no traveler (failed attempts, other kinds'
        // outcomes): they cost no query.
        if concerns(event).is_none() {
            return Ok(None);
        }
        let Some(user_id) = event.payload.get("user_id").and_then(Value::as_str) else { return Ok(None) };
        let tenant_id = event.tenant_id.as_str();
        let scope = Scope::User { tenant_id: tenant_id.to_owned(), user_id: user_id.to_owned() };
        let key = (tenant_id.to_owned(), user_id.to_owned());
        let profile = match profiles.get(&key) {
            Some(profile) => profile.clone(),
            None => {
                let profile = self.store.get_profile(tenant_id, user_id).await.map_err(store_error)?;
                profiles.insert(key, profile.clone());
                profile
            }
        };
        let lang = Lang::of(profile.locale.as_deref());
        let (kind, message, data, urgent) = match event.event_type.as_str() {
            event_types::RESERVATION_CHANGED => {
                let Some(id) = uuid_field(&event.payload, "reservation_id") else { return Ok(None) };
                let Some(reservation) = self.store.get_reservation(&scope, id).await.map_err(store_error)? else {
                    return Ok(None);
                };
                let changes = event.payload.get("changes").cloned().unwrap_or(Value::Null);
                let message = words::reservation_changed(lang, &reservation, &changes, profile.zone());
                let urgent = is_urgent(&reservation, &changes, now);
                let data = json!({
                    "reservation_id": reservation.id, "trip_id": reservation.trip_id,
                    "version": event.payload.get("version"), "changes": changes,
                    "changed_at": event.payload.get("changed_at"), "detected_at": event.payload.get("detected_at"),
                });
                (NotificationType::ReservationChanged, message, data, urgent)
            }
            event_types::TRIP_READY => {
                let Some(trip) = words::TripFacts::read(&event.payload) else { return Ok(None) };
                let message = words::trip_ready(lang, &trip, profile.zone());
                (NotificationType::TripReady, message, json!({"trip_id": trip.id}), false)
            }
            event_types::JOB_SUCCEEDED => {
                let Some(id) = uuid_field(&event.payload, "job_id") else { return Ok(None) };
                let Some(kind) = concerns(event) else { return Ok(None) };
                let Some(job) = self.store.get_job(&scope, id).await.map_err(store_error)? else { return Ok(None) };
                let message = match kind {
                    NotificationType::VideoReady => words::video_ready(lang, &job.payload),
                    _ => words::report_ready(lang, &job.payload),
                };
                (kind, message, json!({"job_id": job.id, "kind": job.kind}), false)
            }
            _ => return Ok(None),
        };
        if !profile.wants(kind) {
            return Ok(None);
        }
        let deliver_at = match profile.quiet_hours {
            Some(quiet) if !urgent => quiet.release(now, profile.zone()),
            _ => now,
        };
        Ok(Some(NewNotification {
            tenant_id: tenant_id.to_owned(),
            user_id: user_id.to_owned(),
            event_id: event.id,
            kind,
            title: message.title,
            body: message.body,
            data,
            urgent,
            deliver_at,
        }))
    }
}

/// The notification an event makes, by its type (and a job's kind); None
/// for the events that concern no traveler.
fn concerns(event: &OutboxEvent) -> Option<NotificationType> {
    match event.event_type.as_str() {
        event_types::RESERVATION_CHANGED => Some(NotificationType::ReservationChanged),
        event_types::TRIP_READY => Some(NotificationType::TripReady),
        event_types::JOB_SUCCEEDED => match event.payload.get("kind").and_then(Value::as_str) {
            Some(kind) if kind == JobKind::REPORT_BUILD.as_str() => Some(NotificationType::ReportReady),
            Some(kind) if kind == JobKind::VIDEO_COMPILE.as_str() => Some(NotificationType::VideoReady),
            _ => None,
        },
        _ => None,
    }
}

fn uuid_field(payload: &Value, field: &str) -> Option<Uuid> {
    payload.get(field)?.as_str()?.parse().ok()
}

fn store_error(err: longhaul_jobs::StoreError) -> NotifyError {
    NotifyError(format!("recording notifications: {err}"))
}

/// Whether a change must reach the traveler at once: a flight that leaves
/// within [`URGENT_WITHIN`] of now, by its new time or its old one (a
/// flight moved from tomorrow morning to next week is news tonight).
pub fn is_urgent(reservation: &Reservation, changes: &Value, now: DateTime<Utc>) -> bool {
    if reservation.kind != ReservationType::Flight {
        return false;
    }
    let before = changes
        .get("starts_at")
        .and_then(|change| change.get("from"))
        .and_then(Value::as_str)
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.with_timezone(&Utc));
    let soon = |at: DateTime<Utc>| at > now - Duration::hours(1) && at <= now + URGENT_WITHIN;
    soon(reservation.starts_at) || before.is_some_and(soon)
}

#[async_trait]
impl Notifier for Courier {
    fn backend(&self) -> &'static str {
        self.next.backend()
    }

    async fn publish(&self, events: &[OutboxEvent]) -> Result<Vec<i64>, NotifyError> {
        let now = Utc::now();
        let mut profiles = HashMap::new();
        let mut made = Vec::new();
        for event in events {
            let span = tracing::info_span!(
                "courier",
                event_id = event.id,
                event_type = %event.event_type,
                tenant = %event.tenant_id
            );
            if let Some(notification) = self.notification_for(event, &mut profiles, now).instrument(span).await? {
                made.push(notification);
            }
        }
        if !made.is_empty() {
            let new = self.store.record_notifications(&made, self.push).await.map_err(store_error)?;
            tracing::debug!(made = made.len(), new, "notifications recorded");
        }
        self.next.publish(events).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, kind: Option<&str>) -> OutboxEvent {
        OutboxEvent {
            id: 1,
            tenant_id: "t".into(),
            event_type: event_type.into(),
            payload: json!({"user_id": "u", "kind": kind}),
        }
    }

    #[test]
    fn only_changes_new_trips_and_finished_reports_and_films_concern_a_traveler() {
        let cases = [
            (event(event_types::RESERVATION_CHANGED, None), Some(NotificationType::ReservationChanged)),
            (event(event_types::TRIP_READY, None), Some(NotificationType::TripReady)),
            (event(event_types::JOB_SUCCEEDED, Some("report_build")), Some(NotificationType::ReportReady)),
            (event(event_types::JOB_SUCCEEDED, Some("video_compile")), Some(NotificationType::VideoReady)),
            (event(event_types::JOB_SUCCEEDED, Some("email_poll")), None),
            (event(event_types::JOB_FAILED, Some("report_build")), None),
            (event(event_types::JOB_DEAD, Some("video_compile")), None),
        ];
        for (event, expected) in cases {
            assert_eq!(concerns(&event), expected, "{} {}", event.event_type, event.payload);
        }
    }
}
