//! Analytics events from the apps: what a batch may hold, how it is checked
//! against the tenant's catalogue, and the `EventStore` port that keeps the
//! raw events until their hour is exported to the data lake.
//!
//! Events are partitioned by the hour the API received them
//! (`received_hour`), not by when they happened: a phone that was offline
//! for a day still sends its events into the current hour, so an hour, once
//! past, is closed, and an export of it is final.

pub mod catalogue;
mod sql;

use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

pub use catalogue::{Catalogue, EventSpec, Pii, PropertySpec, PropertyType, UnknownEvents};

use crate::{
    store::{from_row, Columns, Result},
    travel::mail::Sealed,
};

/// How long a batch's `Idempotency-Key` is remembered: a phone that retries
/// within a week stores nothing twice.
pub const BATCH_KEYS_KEPT: Duration = Duration::days(7);

/// At most this many events in one `POST /v1/events`.
pub const MAX_BATCH: usize = 500;
/// At most this many properties on one event.
pub const MAX_EVENT_PROPERTIES: usize = 64;
/// The longest string property, in characters.
pub const MAX_STRING_CHARS: usize = 1024;
/// The longest `session_id` and device field, in characters.
pub const MAX_SESSION_ID_CHARS: usize = 128;
pub const MAX_DEVICE_FIELD_CHARS: usize = 64;
/// How far ahead of the server's clock an `occurred_at` may be (a phone's
/// clock drifts), and how far back: the lake keeps nothing older.
pub const FUTURE_TOLERANCE: Duration = Duration::hours(1);
pub const OLDEST_EVENT_DAYS: i64 = 730;

/// One event as the app sends it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// The event's name in the tenant's catalogue, such as `booking_started`.
    pub name: String,
    /// When it happened, on the device.
    pub occurred_at: DateTime<Utc>,
    /// Scalar values only (strings, numbers, booleans; `null` is absent),
    /// checked against the catalogue's types.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
    pub session_id: Option<String>,
    pub device: Option<Device>,
}

/// The device an event came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// `ios`, `android`, `web`, …: funnels are broken down by it.
    pub platform: Option<String>,
    pub app_version: Option<String>,
    pub os_version: Option<String>,
    pub model: Option<String>,
}

/// An event that passed the catalogue, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: Uuid,
    pub name: String,
    /// False for an event the catalogue does not name, kept because the
    /// tenant accepts unknown events.
    pub known: bool,
    pub occurred_at: DateTime<Utc>,
    /// A JSON object of scalars.
    pub properties: Value,
    pub session_id: Option<String>,
    pub device: Device,
}

/// One `POST /v1/events`: its events, stored together or not at all.
#[derive(Debug, Clone)]
pub struct EventBatch {
    pub tenant_id: String,
    pub user_id: String,
    /// With a key, a retry of the same batch stores nothing twice.
    pub idempotency_key: Option<String>,
    /// What makes two batches with one key the same (a hash of the body).
    pub request_hash: String,
    pub received_at: DateTime<Utc>,
    pub events: Vec<NewEvent>,
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Stored: this many events.
    Stored { accepted: usize },
    /// The same batch was stored before under this key; nothing was stored
    /// now.
    Replayed { accepted: usize },
    /// The key was used before for another batch.
    Conflict,
}

/// An event as stored, for the export.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: Uuid,
    pub user_id: String,
    pub name: String,
    pub known: bool,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub properties: Value,
    pub session_id: Option<String>,
    pub device_platform: Option<String>,
    pub device_app_version: Option<String>,
    pub device_os_version: Option<String>,
    pub device_model: Option<String>,
}

/// One exported hour of a tenant's events in the lake.
#[derive(Debug, Clone, PartialEq)]
pub struct LakePartition {
    pub tenant_id: String,
    pub hour: DateTime<Utc>,
    pub files: i32,
    pub events: i64,
    pub bytes: i64,
    /// The partition's `_manifest.json`, as written.
    pub manifest: Value,
    pub exported_at: DateTime<Utc>,
}

/// A user's request that their events be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDeletion {
    pub id: Uuid,
    pub tenant_id: String,
    pub user_id: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// Raw events deleted with the request.
    pub raw_deleted: i64,
    /// Rows the lake's rewrite removed, once it ran.
    pub lake_rows: Option<i64>,
    pub erased_at: Option<DateTime<Utc>>,
}

/// An event that does not fit; `field` is its JSON path, such as
/// `events[3].properties.value`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    pub field: String,
    pub message: String,
}

/// The start of the hour `at` falls in.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::hours(1)).unwrap_or(at)
}

/// Checks a batch against `catalogue` at `now`, and gives each event its id.
/// The first event that does not fit fails the whole batch, so a client
/// never has to work out which half was kept.
pub fn admit(catalogue: &Catalogue, events: Vec<EventIn>, now: DateTime<Utc>) -> Result<Vec<NewEvent>, EventError> {
    if events.is_empty() || events.len() > MAX_BATCH {
        return Err(EventError { field: "events".into(), message: format!("must hold 1 to {MAX_BATCH} events") });
    }
    events.into_iter().enumerate().map(|(index, event)| admit_one(catalogue, event, now, index)).collect()
}

fn admit_one(catalogue: &Catalogue, event: EventIn, now: DateTime<Utc>, index: usize) -> Result<NewEvent, EventError> {
    let error = |field: &str, message: String| EventError { field: format!("events[{index}].{field}"), message };
    if !catalogue::is_valid_name(&event.name) {
        return Err(error("name", format!("must match {}", catalogue::NAME_PATTERN)));
    }
    let spec = catalogue.events.get(&event.name);
    if spec.is_none() && catalogue.unknown_events == UnknownEvents::Reject {
        return Err(error(
            "name",
            format!(
                "unknown event `{}`: the tenant's event catalogue does not name it (GET /v1/admin/event-catalogue)",
                event.name
            ),
        ));
    }
    if event.occurred_at > now + FUTURE_TOLERANCE {
        return Err(error("occurred_at", "is more than an hour ahead of the server's clock".into()));
    }
    // Nothing older than the tenant keeps: it would outlive its retention.
    let oldest = i64::from(catalogue.retention_days).min(OLDEST_EVENT_DAYS);
    if event.occurred_at < now - Duration::days(oldest) {
        return Err(error("occurred_at", format!("is more than {oldest} days old, the tenant's retention")));
    }
    if event.properties.len() > MAX_EVENT_PROPERTIES {
        return Err(error("properties", format!("at most {MAX_EVENT_PROPERTIES} properties")));
    }
    let mut properties = Map::with_capacity(event.properties.len());
    for (name, value) in event.properties {
        let field = format!("properties.{name}");
        if !catalogue::is_valid_name(&name) || catalogue::RESERVED_COLUMNS.contains(&name.as_str()) {
            return Err(error(
                &field,
                format!(
                    "a property name must match {} and not be one of the lake's own columns ({})",
                    catalogue::NAME_PATTERN,
                    catalogue::RESERVED_COLUMNS.join(", ")
                ),
            ));
        }
        match &value {
            Value::Null => continue,
            Value::Object(_) | Value::Array(_) => {
                return Err(error(&field, "must be a string, a number or a boolean".into()))
            }
            Value::String(text) if text.chars().count() > MAX_STRING_CHARS => {
                return Err(error(&field, format!("at most {MAX_STRING_CHARS} characters")))
            }
            // PostgreSQL's JSON cannot hold a NUL; no property needs one.
            Value::String(text) if text.contains('\0') => {
                return Err(error(&field, "must not contain a NUL character".into()))
            }
            _ => {}
        }
        if let Some(property) = spec.and_then(|spec| spec.properties.get(&name)) {
            if !catalogue::value_fits(property.kind, &value) {
                return Err(error(&field, format!("must be of type {:?}", property.kind).to_lowercase()));
            }
        }
        properties.insert(name, value);
    }
    if let Some(session) = &event.session_id {
        if session.is_empty() || session.chars().count() > MAX_SESSION_ID_CHARS || session.chars().any(char::is_control)
        {
            return Err(error("session_id", format!("1 to {MAX_SESSION_ID_CHARS} characters, no control characters")));
        }
    }
    let device = event.device.unwrap_or_default();
    for (name, value) in [
        ("platform", &device.platform),
        ("app_version", &device.app_version),
        ("os_version", &device.os_version),
        ("model", &device.model),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > MAX_DEVICE_FIELD_CHARS || v.chars().any(char::is_control))
        {
            return Err(error(
                &format!("device.{name}"),
                format!("at most {MAX_DEVICE_FIELD_CHARS} characters, no control characters"),
            ));
        }
    }
    Ok(NewEvent {
        id: Uuid::now_v7(),
        known: spec.is_some(),
        name: event.name,
        occurred_at: event.occurred_at,
        properties: Value::Object(properties),
        session_id: event.session_id,
        device,
    })
}

/// Where raw events, catalogues and the lake's bookkeeping live.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores a batch in one insert (with its key, in one transaction with
    /// the key's row).
    async fn store_events(&self, batch: EventBatch) -> Result<BatchOutcome>;

    /// Forgets the idempotency keys of batches stored before `before`; how
    /// many. (A retry after that stores its batch again.)
    async fn prune_event_batches(&self, before: DateTime<Utc>) -> Result<u64>;

    /// The tenant's own catalogue, or `None` when it uses the default.
    async fn event_catalogue(&self, tenant_id: &str) -> Result<Option<Catalogue>>;

    async fn put_event_catalogue(&self, tenant_id: &str, catalogue: &Catalogue, updated_by: &str) -> Result<()>;

    /// A page of a tenant's events received in `hour`, in id order, after
    /// `after`.
    async fn events_page(
        &self,
        tenant_id: &str,
        hour: DateTime<Utc>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>>;

    /// The tenants with raw events received in `hour` and no lake
    /// partition for it yet.
    async fn unexported_tenants(&self, hour: DateTime<Utc>) -> Result<Vec<String>>;

    async fn lake_partition(&self, tenant_id: &str, hour: DateTime<Utc>) -> Result<Option<LakePartition>>;

    /// Records an exported hour, replacing what an earlier export recorded.
    async fn record_lake_partition(&self, partition: &LakePartition) -> Result<()>;

    /// Deletes a tenant's raw events of whole hours before the one `before`
    /// falls in, whose hour is in the lake (an hour's raw events go
    /// together, so a re-run of an hour has all of them or none); how many.
    async fn delete_exported_events(&self, tenant_id: &str, before: DateTime<Utc>) -> Result<u64>;

    /// A tenant's lake partitions of hours before `before` (every one when
    /// `None`), oldest first.
    async fn lake_partitions(&self, tenant_id: &str, before: Option<DateTime<Utc>>) -> Result<Vec<LakePartition>>;

    /// Forgets a tenant's partitions of these hours (their files are gone);
    /// how many.
    async fn delete_lake_partitions(&self, tenant_id: &str, hours: &[DateTime<Utc>]) -> Result<u64>;

    /// The tenants with partitions in the lake.
    async fn lake_tenants(&self) -> Result<Vec<String>>;

    /// Deletes a tenant's raw events received before `before`, exported or
    /// not (retention); how many.
    async fn delete_events_before(&self, tenant_id: &str, before: DateTime<Utc>) -> Result<u64>;

    /// Deletes a user's raw events and records the request, in one
    /// transaction, so that no export after it sees them.
    async fn request_event_deletion(&self, tenant_id: &str, user_id: &str, requested_by: &str)
        -> Result<EventDeletion>;

    /// A tenant's requests whose lake rewrite has not run, oldest first.
    async fn pending_event_deletions(&self, tenant_id: &str) -> Result<Vec<EventDeletion>>;

    /// Records that the lake was rewritten without these requests' users:
    /// `lake_rows` removed in all.
    async fn finish_event_deletions(&self, ids: &[Uuid], lake_rows: i64) -> Result<()>;

    /// The tenant's sealed pseudonymisation key, if it has one.
    async fn lake_key(&self, tenant_id: &str) -> Result<Option<Sealed>>;

    /// Keeps `sealed` as the tenant's key unless it has one already; the key
    /// kept (two exports racing agree on one).
    async fn insert_lake_key(&self, tenant_id: &str, sealed: &Sealed) -> Result<Sealed>;
}

pub(crate) fn stored_event_from_row(row: &impl Columns) -> Result<StoredEvent> {
    from_row!(row => StoredEvent {
        id, user_id, name, known, occurred_at, received_at, properties, session_id, device_platform,
        device_app_version, device_os_version, device_model,
    })
}

pub(crate) fn event_deletion_from_row(row: &impl Columns) -> Result<EventDeletion> {
    from_row!(row => EventDeletion {
        id, tenant_id, user_id, requested_by, requested_at, raw_deleted, lake_rows, erased_at,
    })
}

pub(crate) fn lake_partition_from_row(row: &impl Columns) -> Result<LakePartition> {
    from_row!(row => LakePartition { tenant_id, hour, files, events, bytes, manifest, exported_at })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(value: Value) -> EventIn {
        serde_json::from_value(value).expect("an event")
    }

    fn now() -> DateTime<Utc> {
        "2026-12-05T08:30:00Z".parse().expect("time")
    }

    #[test]
    fn a_known_event_keeps_its_properties_and_drops_nulls() {
        let events = vec![event(json!({
            "name": "search", "occurred_at": "2026-12-05T08:29:00Z",
            "properties": {"query": "lisbon", "results": 12, "origin": null},
            "device": {"platform": "ios"}
        }))];
        let admitted = admit(&Catalogue::default_catalogue(), events, now()).expect("admitted");
        assert_eq!(admitted[0].properties, json!({"query": "lisbon", "results": 12}));
        assert!(admitted[0].known);
        assert_eq!(admitted[0].device.platform.as_deref(), Some("ios"));
    }

    #[test]
    fn an_unknown_event_is_refused_by_name_unless_the_tenant_accepts_them() {
        let events = || {
            vec![
                event(json!({"name": "search", "occurred_at": "2026-12-05T08:00:00Z"})),
                event(json!({"name": "wishlist_opened", "occurred_at": "2026-12-05T08:00:00Z"})),
            ]
        };
        let mut catalogue = Catalogue::default_catalogue();
        let err = admit(&catalogue, events(), now()).expect_err("refused");
        assert_eq!(err.field, "events[1].name");
        assert!(err.message.contains("wishlist_opened"), "{}", err.message);
        catalogue.unknown_events = UnknownEvents::Accept;
        let admitted = admit(&catalogue, events(), now()).expect("accepted");
        assert!(!admitted[1].known);
    }

    #[test]
    fn each_rule_names_its_field() {
        let catalogue = Catalogue::default_catalogue();
        for (body, field) in [
            (
                json!({"name": "search", "occurred_at": "2026-12-05T08:00:00Z", "properties": {"results": "many"}}),
                "events[0].properties.results",
            ),
            (
                json!({"name": "search", "occurred_at": "2026-12-05T08:00:00Z", "properties": {"q": {"a": 1}}}),
                "events[0].properties.q",
            ),
            (
                json!({"name": "search", "occurred_at": "2026-12-05T08:00:00Z", "properties": {"Bad-Name": 1}}),
                "events[0].properties.Bad-Name",
            ),
            (
                json!({"name": "search", "occurred_at": "2026-12-05T08:00:00Z", "properties": {"user_id": "x"}}),
                "events[0].properties.user_id",
            ),
            (
                json!({"name": "search", "occurred_at": "2026-12-05T08:00:00Z", "properties": {"query": "a\u{0}b"}}),
                "events[0].properties.query",
            ),
            (json!({"name": "search", "occurred_at": "2026-12-06T08:00:00Z"}), "events[0].occurred_at"),
            (json!({"name": "search", "occurred_at": "2020-01-01T00:00:00Z"}), "events[0].occurred_at"),
            (
                json!({"name": "search", "occurred_at": "2026-12-05T08:00:00Z", "session_id": ""}),
                "events[0].session_id",
            ),
            (
                json!({"name": "search", "occurred_at": "2026-12-05T08:00:00Z", "device": {"model": "x".repeat(65)}}),
                "events[0].device.model",
            ),
        ] {
            let err = admit(&catalogue, vec![event(body)], now()).err().map(|e| e.field);
            assert_eq!(err.as_deref(), Some(field));
        }
        assert_eq!(admit(&catalogue, Vec::new(), now()).err().map(|e| e.field).as_deref(), Some("events"));
    }

    #[test]
    fn events_fall_in_the_hour_they_were_received() {
        assert_eq!(
            hour_of("2026-12-05T08:59:59.999Z".parse().expect("t")),
            "2026-12-05T08:00:00Z".parse::<DateTime<Utc>>().expect("t")
        );
    }
}
