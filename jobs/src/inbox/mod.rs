//! What reaches a traveler: their notification preferences ([`Profile`]),
//! the phones that receive their pushes ([`Device`]), and their
//! notifications ([`Notification`]), the in-app inbox.
//!
//! Notifications are made from outbox events (`reservation.changed`, a
//! report or video that is ready) by the workers' courier, which renders
//! them in the user's language and time zone and records them here: one per
//! user per event, keyed by the outbox row, so an event drained twice is
//! one notification, and one [`PushDelivery`] per device of the user when
//! pushes are on, so a device gets each message once. A notification is
//! visible, and pushed, from its `deliver_at`: later than its creation when
//! the user's quiet hours hold it.

mod sql;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    store::{from_row, Columns, Result, StoreError},
    travel::string_enum,
};

/// The most devices one user keeps; registering one more forgets the one
/// registered (or registered again) longest ago, as a phone that was wiped
/// never says goodbye.
pub const MAX_DEVICES_PER_USER: u32 = 20;

/// The longest push token taken: APNs tokens are 64 hex digits, FCM's are
/// about 160 characters; this leaves room for any token format to grow.
pub const TOKEN_MAX_CHARS: usize = 4096;

/// The longest `app_version`.
pub const APP_VERSION_MAX_CHARS: usize = 64;

/// How long a notification stays in the inbox after it was delivered; the
/// scheduler forgets older ones (and their pushes), read or not.
pub const NOTIFICATIONS_KEPT: chrono::Duration = chrono::Duration::days(180);

/// The kinds of notification a user receives, each with its own preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
pub enum NotificationType {
    /// A reservation changed at its agency: time, gate, terminal, seat or
    /// status.
    #[serde(rename = "reservation.changed")]
    ReservationChanged,
    /// A trip was put together from the user's reservations.
    #[serde(rename = "trip.ready")]
    TripReady,
    /// A report the user asked for is built.
    #[serde(rename = "report.ready")]
    ReportReady,
    /// The user's video is made.
    #[serde(rename = "video.ready")]
    VideoReady,
}

impl NotificationType {
    pub const ALL: [NotificationType; 4] = [
        NotificationType::ReservationChanged,
        NotificationType::TripReady,
        NotificationType::ReportReady,
        NotificationType::VideoReady,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::ReservationChanged => "reservation.changed",
            NotificationType::TripReady => "trip.ready",
            NotificationType::ReportReady => "report.ready",
            NotificationType::VideoReady => "video.ready",
        }
    }
}

impl std::str::FromStr for NotificationType {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        NotificationType::ALL.into_iter().find(|kind| kind.as_str() == text).ok_or_else(|| {
            let known: Vec<&str> = NotificationType::ALL.iter().map(|kind| kind.as_str()).collect();
            format!("unknown notification type `{text}`; expected one of {}", known.join(", "))
        })
    }
}

crate::store::named_columns!(NotificationType => "notification type");

string_enum!(
    /// The push service a device is reached through: APNs or FCM.
    Platform {
        Ios = "ios",
        Android = "android",
    }
);

/// The hours in which nothing but urgent messages is pushed or shown, in
/// the user's time zone, as `HH:MM`; `start` after `end` spans midnight
/// (`22:00` to `07:00`). Equal times are no quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Minutes after local midnight, 0 to 1439.
    pub start: u16,
    pub end: u16,
}

impl QuietHours {
    /// `HH:MM` (24-hour clock) as minutes after midnight.
    pub fn parse_time(text: &str) -> Option<u16> {
        let (hours, minutes) = text.split_once(':')?;
        if hours.len() != 2 || minutes.len() != 2 {
            return None;
        }
        let hours: u16 = hours.parse().ok()?;
        let minutes: u16 = minutes.parse().ok()?;
        (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
    }

    pub fn format_time(minutes: u16) -> String {
        format!("{:02}:{:02}", minutes / 60, minutes % 60)
    }

    /// Whether a local time of day (minutes after midnight) is quiet.
    pub fn holds(self, minute: u16) -> bool {
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Equal => false,
            std::cmp::Ordering::Less => (self.start..self.end).contains(&minute),
            std::cmp::Ordering::Greater => minute >= self.start || minute < self.end,
        }
    }

    /// When a message due at `at` may go out for a user in `zone`: at
    /// once, or when the quiet hours around `at` end (the first instant at
    /// or after the local end time; across a DST gap, the first instant
    /// that exists after it).
    pub fn release(self, at: DateTime<Utc>, zone: chrono_tz::Tz) -> DateTime<Utc> {
        use chrono::{Duration, TimeZone, Timelike};
        let local = at.with_timezone(&zone);
        let minute = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0);
        if !self.holds(minute) {
            return at;
        }
        let mut day = local.date_naive();
        if minute >= self.end {
            // Quiet since this evening: it ends tomorrow morning.
            day = day.succ_opt().unwrap_or(day);
        }
        let end = chrono::NaiveTime::from_hms_opt(u32::from(self.end / 60), u32::from(self.end % 60), 0)
            .unwrap_or(chrono::NaiveTime::MIN);
        let mut wall = day.and_time(end);
        // A local time skipped by a DST jump: step forward to one that exists.
        for _ in 0..4 {
            if let Some(instant) = zone.from_local_datetime(&wall).earliest() {
                return instant.with_timezone(&Utc).max(at);
            }
            wall += Duration::minutes(30);
        }
        at
    }
}

impl Serialize for QuietHours {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("QuietHours", 2)?;
        out.serialize_field("start", &QuietHours::format_time(self.start))?;
        out.serialize_field("end", &QuietHours::format_time(self.end))?;
        out.end()
    }
}

/// A user's profile: who they are (from the tenant's imports), and how they
/// want to hear from longhaul.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// IANA name; none until the user or an import sets it (times are then
    /// shown in UTC, and quiet hours are kept in UTC).
    pub time_zone: Option<String>,
    /// BCP 47 tag; messages are in English unless it is Portuguese.
    pub locale: Option<String>,
    /// Every notification type, and whether the user wants it.
    pub notifications: BTreeMap<NotificationType, bool>,
    pub quiet_hours: Option<QuietHours>,
}

impl Profile {
    /// The profile of a user the tenant knows nothing about yet.
    pub fn new(user_id: &str) -> Profile {
        Profile {
            user_id: user_id.to_owned(),
            email: None,
            name: None,
            time_zone: None,
            locale: None,
            notifications: NotificationType::ALL.into_iter().map(|kind| (kind, true)).collect(),
            quiet_hours: None,
        }
    }

    /// The user's zone: their own, or UTC.
    pub fn zone(&self) -> chrono_tz::Tz {
        self.time_zone.as_deref().and_then(|name| name.parse().ok()).unwrap_or(chrono_tz::UTC)
    }

    /// The language their files are written in, when their locale names
    /// one longhaul writes.
    pub fn report_locale(&self) -> Option<crate::kind::ReportLocale> {
        self.locale.as_deref().and_then(crate::kind::ReportLocale::from_tag)
    }

    pub fn wants(&self, kind: NotificationType) -> bool {
        self.notifications.get(&kind).copied().unwrap_or(true)
    }
}

/// A change to a profile: a field that is `None` stays as it is;
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfilePatch {
    pub time_zone: Option<Option<String>>,
    pub locale: Option<Option<String>>,
    /// The types named; the others keep their setting.
    pub notifications: BTreeMap<NotificationType, bool>,
    pub quiet_hours: Option<Option<QuietHours>>,
}

/// A phone that receives the user's pushes.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = PushDevice)]
pub struct Device {
    pub id: Uuid,
    pub platform: Platform,
    /// The push token the app registered.
    pub token: String,
    pub app_version: Option<String>,
    /// When the push service said the token no longer works; pushes stop.
    /// The app registers its new token as another device.
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub tenant_id: String,
    #[serde(skip)]
    pub user_id: String,
    /// Its SNS platform endpoint, once the notifier has made it.
    #[serde(skip)]
    pub endpoint_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewDevice {
    pub tenant_id: String,
    pub user_id: String,
    pub platform: Platform,
    pub token: String,
    pub app_version: Option<String>,
}

/// One message in a user's inbox.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Notification {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: NotificationType,
    pub title: String,
    pub body: String,
    /// What the message is about, for the app to open: ids
    /// (`reservation_id`, `job_id`, …) and, for a change, each changed
    /// field `{"from", "to"}`.
    #[schema(value_type = Object)]
    pub data: Value,
    /// Whether it went through quiet hours (a change to a flight leaving
    /// within 24 hours).
    pub urgent: bool,
    /// When it reached the inbox: when it was made, or when the user's
    /// quiet hours ended.
    #[serde(rename = "created_at")]
    pub deliver_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// A notification to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub tenant_id: String,
    pub user_id: String,
    /// The outbox row it comes from: the key of its once-only delivery.
    pub event_id: i64,
    pub kind: NotificationType,
    pub title: String,
    pub body: String,
    pub data: Value,
    pub urgent: bool,
    pub deliver_at: DateTime<Utc>,
}

/// A push that is due: a notification, and the device it goes to.
#[derive(Debug, Clone, PartialEq)]
pub struct PushDelivery {
    pub notification_id: Uuid,
    pub device_id: Uuid,
    pub tenant_id: String,
    pub user_id: String,
    pub platform: Platform,
    pub token: String,
    pub endpoint_arn: Option<String>,
    pub kind: NotificationType,
    pub title: String,
    pub body: String,
    pub data: Value,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

/// How a push ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PushOutcome {
    /// The push service took it.
    Sent { message_id: Option<String> },
    /// It failed for now; try again after `after`.
    Retry { error: String, after: std::time::Duration },
    /// It can never go (the device's token is dead, or it failed too often).
    Dropped { error: String },
}

/// Profiles, devices and notifications, on both databases.
#[async_trait]
pub trait InboxStore: Send + Sync {
    /// The user's profile; the defaults when the tenant has no row for them.
    async fn get_profile(&self, tenant_id: &str, user_id: &str) -> Result<Profile>;

    /// Applies a patch (making the user's row if there is none) and returns
    /// the profile as it now is.
    async fn update_profile(&self, tenant_id: &str, user_id: &str, patch: &ProfilePatch) -> Result<Profile>;

    /// Registers a push token: a new device (true), or the device that
    /// already has it in the tenant (false), now the caller's, with the
    /// app version given and pushes on again. A token that moves to
    /// another user becomes a new device (a new id): its past owner's id
    /// no longer names anything. Past [`MAX_DEVICES_PER_USER`], the user's
    /// oldest device is forgotten.
    async fn register_device(&self, device: NewDevice) -> Result<(Device, bool)>;

    /// The user's devices, most recently registered first.
    async fn list_devices(&self, tenant_id: &str, user_id: &str) -> Result<Vec<Device>>;

    /// Forgets one of the user's devices; false when it is not theirs.
    async fn delete_device(&self, tenant_id: &str, user_id: &str, id: Uuid) -> Result<bool>;

    /// Records notifications, each once: one already recorded for its
    /// event and user is left as it is. With `push`, each new one gets a
    /// pending push for every working device of its user. Returns how many
    /// were new.
    async fn record_notifications(&self, notifications: &[NewNotification], push: bool) -> Result<u64>;

    /// A page of the user's inbox, newest first: what has reached it
    /// (`deliver_at` passed), after the cursor's (time, id).
    async fn list_notifications(
        &self,
        tenant_id: &str,
        user_id: &str,
        after: Option<(DateTime<Utc>, Uuid)>,
        unread_only: bool,
        limit: u32,
    ) -> Result<Vec<Notification>>;

    /// What reached the user's inbox after `since` (up to now), oldest
    /// first, at most `limit`: what a live stream sends next.
    async fn notifications_since(
        &self,
        tenant_id: &str,
        user_id: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Notification>>;

    /// The user's notifications that quiet hours hold (not in their inbox
    /// yet), soonest first.
    async fn held_notifications(&self, tenant_id: &str, user_id: &str) -> Result<Vec<Notification>>;

    /// One of the user's notifications, if it has reached their inbox.
    async fn get_notification(&self, tenant_id: &str, user_id: &str, id: Uuid) -> Result<Option<Notification>>;

    /// Marks one of the user's notifications read (once: a second time
    /// keeps the first `read_at`); None when it is not theirs.
    async fn mark_notification_read(&self, tenant_id: &str, user_id: &str, id: Uuid) -> Result<Option<Notification>>;

    /// Leases up to `max` due pushes nobody holds, oldest first.
    async fn claim_pushes(&self, max: u32, lease: std::time::Duration) -> Result<Vec<PushDelivery>>;

    /// Records how a push ended.
    async fn finish_push(&self, notification_id: Uuid, device_id: Uuid, outcome: &PushOutcome) -> Result<()>;

    /// Records the SNS endpoint made for a device, or forgets one that no
    /// longer exists.
    async fn set_device_endpoint(&self, device_id: Uuid, endpoint_arn: Option<&str>) -> Result<()>;

    /// Stops pushes to a device whose token the push service refused: its
    /// pending pushes are dropped, and its endpoint is queued for deletion.
    async fn disable_device(&self, device_id: Uuid) -> Result<()>;

    /// Up to `max` SNS endpoints of devices that are gone, to delete.
    async fn gone_endpoints(&self, max: u32) -> Result<Vec<String>>;

    /// Forgets endpoints deleted at SNS.
    async fn forget_gone_endpoints(&self, arns: &[String]) -> Result<()>;

    /// Forgets notifications delivered before `before`, with their pushes.
    /// Returns how many.
    async fn prune_notifications(&self, before: DateTime<Utc>) -> Result<u64>;
}

pub(crate) fn device_from_row(row: &impl Columns) -> Result<Device> {
    from_row!(row => Device {
        id, platform, token, app_version, disabled_at, created_at, updated_at, tenant_id, user_id, endpoint_arn,
    })
}

pub(crate) fn notification_from_row(row: &impl Columns) -> Result<Notification> {
    from_row!(row => Notification { id, kind = "type", title, body, data, urgent, deliver_at, read_at })
}

pub(crate) fn profile_from_row(row: &impl Columns) -> Result<Profile> {
    let user_id: String = row.get("user_id")?;
    let mut profile = Profile::new(&user_id);
    profile.email = row.get("email")?;
    profile.name = row.get("name")?;
    profile.time_zone = row.get("time_zone")?;
    profile.locale = row.get("locale")?;
    if let Value::Object(prefs) = row.json("notification_prefs")? {
        for (name, wanted) in prefs {
            // A type this version does not know is kept in the row, unused.
            if let (Ok(kind), Some(wanted)) = (name.parse::<NotificationType>(), wanted.as_bool()) {
                profile.notifications.insert(kind, wanted);
            }
        }
    }
    let start: Option<i16> = row.get("quiet_start")?;
    let end: Option<i16> = row.get("quiet_end")?;
    profile.quiet_hours = match (start, end) {
        (Some(start), Some(end)) => Some(QuietHours {
            start: u16::try_from(start).map_err(|_| StoreError::Corrupt(format!("quiet_start {start}")))?,
            end: u16::try_from(end).map_err(|_| StoreError::Corrupt(format!("quiet_end {end}")))?,
        }),
        _ => None,
    };
    Ok(profile)
}

pub(crate) fn push_from_row(row: &impl Columns) -> Result<PushDelivery> {
    from_row!(row => PushDelivery {
        notification_id, device_id, tenant_id, user_id, platform, token, endpoint_arn, kind = "type", title, body,
        data, attempts,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn quiet_hours_span_midnight_and_equal_times_are_none() {
        let night = QuietHours { start: 22 * 60, end: 7 * 60 };
        assert!(night.holds(23 * 60));
        assert!(night.holds(0));
        assert!(night.holds(6 * 60 + 59));
        assert!(!night.holds(7 * 60));
        assert!(!night.holds(12 * 60));
        let nap = QuietHours { start: 13 * 60, end: 14 * 60 };
        assert!(nap.holds(13 * 60 + 30));
        assert!(!nap.holds(14 * 60));
        assert!(!QuietHours { start: 600, end: 600 }.holds(600));
        assert_eq!(QuietHours::parse_time("07:05"), Some(425));
        assert_eq!(QuietHours::parse_time("24:00"), None);
        assert_eq!(QuietHours::parse_time("7:05"), None);
        assert_eq!(QuietHours::format_time(425), "07:05");
    }

    #[test]
    fn a_quiet_message_is_released_at_the_local_end_of_the_night() {
        let zone: chrono_tz::Tz = "America/Sao_Paulo".parse().unwrap_or(chrono_tz::UTC);
        let night = QuietHours { start: 22 * 60, end: 7 * 60 };
        // 23:30 in São Paulo (UTC-3) is 02:30 UTC the next day.
        let late = Utc.with_ymd_and_hms(2026, 12, 8, 2, 30, 0).unwrap();
        assert_eq!(night.release(late, zone), Utc.with_ymd_and_hms(2026, 12, 8, 10, 0, 0).unwrap());
        // 03:00 local: released at 07:00 the same day.
        let small_hours = Utc.with_ymd_and_hms(2026, 12, 8, 6, 0, 0).unwrap();
        assert_eq!(night.release(small_hours, zone), Utc.with_ymd_and_hms(2026, 12, 8, 10, 0, 0).unwrap());
        // Noon: at once.
        let noon = Utc.with_ymd_and_hms(2026, 12, 8, 15, 0, 0).unwrap();
        assert_eq!(night.release(noon, zone), noon);
    }

    #[test]
    fn a_release_time_that_dst_skips_moves_to_the_next_that_exists() {
        // Europe/Berlin skips 02:00-03:00 on 2026-03-29.
        let zone: chrono_tz::Tz = "Europe/Berlin".parse().unwrap_or(chrono_tz::UTC);
        let quiet = QuietHours { start: 23 * 60, end: 2 * 60 + 30 };
        let at = Utc.with_ymd_and_hms(2026, 3, 28, 23, 0, 0).unwrap(); // 00:00 CET
        let released = night_end(quiet.release(at, zone), zone);
        assert_eq!(released, "2026-03-29 03:00 CEST");
    }

    fn night_end(at: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
        at.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z").to_string()
    }
}
