//! Job kinds: what each kind of job takes, where it runs and who may ask
//! for it.
//!
//! A kind is a type that implements [`Kind`]: its name, its lane, its
//! defaults, its payload type and the payload's rules. One line registers it
//! (`inventory::submit!(JobKind::of::<MyKind>())`), and from then on the API
//! accepts it, checks its payloads, documents it, and the workers route it;
//! its handler lives in `longhaul-workers`. ARCHITECTURE.md, "How to add a
//! job kind", walks through one.
//!
//! A payload is parsed once, at the edge that takes it (the API, the sweep
//! planner, the mail scheduler), into the kind's type: closed sets are enums,
//! and a rule that one field's type cannot state is [`Kind::check`]. The
//! worker is handed the same type, read back from the stored JSON.

mod bulk_import;
mod email_poll;
mod events_erase;
mod events_export;
mod events_retention;
mod noop;
mod report_build;
mod reservation_refresh;
mod video_compile;

use std::{fmt, hash::Hash, str::FromStr, sync::OnceLock, time::Duration};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::{schema::Schema, RefOr};
use uuid::Uuid;

use crate::model::{Lane, UnknownName};

pub use bulk_import::{BulkImport, BulkImportPayload};
pub use email_poll::{EmailPoll, EmailPollPayload};
pub use events_erase::{EventsErase, EventsErasePayload};
pub use events_export::{EventsExport, EventsExportPayload};
pub use events_retention::{EventsRetention, EventsRetentionPayload};
pub use noop::{Noop, NoopPayload};
pub use report_build::{
    FunnelRequest, Report, ReportBuild, ReportBuildPayload, ReportFormat, ReportLocale, ReportRequest, YearMonth,
    FUNNEL_STEPS, FUNNEL_WINDOW_HOURS, LOCALE_PATTERN, MONTH_PATTERN, PAYLOAD_YEARS,
};
pub use reservation_refresh::{ReservationRefresh, ReservationRefreshPayload};
pub use video_compile::{Aspect, Music, VideoCompile, VideoCompilePayload, VIDEO_MEDIA_MAX, VIDEO_NAME_MAX};

/// One kind of job. Implement it on a unit type and register it with
/// `inventory::submit!(JobKind::of::<MyKind>())`.
pub trait Kind: Send + Sync + 'static {
    /// The name in the API and the database, in snake_case.
    const NAME: &'static str;
    /// The pool that runs it.
    const LANE: Lane;
    /// Attempts before the job goes `dead`.
    const MAX_ATTEMPTS: i32 = 5;
    /// How long one attempt may run before it is cancelled and retried.
    const TIMEOUT: Duration = Duration::from_secs(5 * 60);
    /// Whether outcomes are announced as events (`job.succeeded`, …).
    const EMITS_EVENTS: bool = true;
    /// Whether only admins may submit it, whatever its payload.
    const ADMIN_ONLY: bool = false;

    /// The payload, as the API documents it (its schema is the
    /// `{Payload}` component) and as the worker takes it.
    type Payload: Serialize + DeserializeOwned + utoipa::ToSchema + Send + Sync + 'static;

    /// The rules beyond the payload's type (one field against another). The
    /// error names the field, as `payload.<field>`.
    fn check(_payload: &Self::Payload) -> Result<(), PayloadError> {
        Ok(())
    }

    /// Why only an admin may submit this payload, if so (a report of a
    /// whole tenant): asked of kinds that are not [`Kind::ADMIN_ONLY`].
    fn needs_admin(_payload: &Self::Payload) -> Option<&'static str> {
        None
    }

    /// Fills what the submitter left out, from who they are.
    fn complete(_payload: &mut Self::Payload, _submitter: &Submitter) {}

    /// Whose job it is once admitted.
    fn owner(_payload: &Self::Payload) -> Owner {
        Owner::Submitter
    }

    /// A payload field that only the platform's own planners may set, if
    /// this payload sets one.
    fn platform_field(_payload: &Self::Payload) -> Option<PayloadError> {
        None
    }
}

/// Who submits a job, for [`Kind::complete`].
#[derive(Debug, Clone, Default)]
pub struct Submitter {
    /// The submitter's language: the token's `locale` claim, else the
    /// request's `Accept-Language` ranges, best first.
    pub languages: Vec<String>,
    /// The submitter's name (the OpenID `name` claim).
    pub name: Option<String>,
}

impl Submitter {
    /// The first of the submitter's languages that longhaul writes files
    /// in (reports, the video's cards).
    pub fn file_locale(&self) -> Option<ReportLocale> {
        self.languages.iter().find_map(|tag| ReportLocale::from_tag(tag.trim()))
    }
}

/// Whose job an admitted payload makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The submitter's.
    Submitter,
    /// The owner of this mail account, which the submitter must be able to
    /// see (an admin may poll a user's inbox).
    MailAccount(Uuid),
}

/// A payload that passed its kind's rules, ready to store.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The payload as stored: the parsed value written back, with what
    /// [`Kind::complete`] filled in.
    pub payload: Value,
    /// Why only an admin may submit it, if so.
    pub needs_admin: Option<&'static str>,
    pub owner: Owner,
}

/// A payload that does not fit its kind. `field` is a JSON path such as
/// `payload.year`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PayloadError {
    pub field: String,
    pub message: String,
}

impl PayloadError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        PayloadError { field: field.into(), message: message.into() }
    }
}

/// Reads a payload into its type. The error names the field where serde
/// stopped (`payload.formats[1]`), with serde's words for what is wrong.
pub fn parse<K: Kind>(payload: &Value) -> Result<K::Payload, PayloadError> {
    let parsed: K::Payload = serde_path_to_error::deserialize(payload).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." { "payload".to_owned() } else { format!("payload.{path}") };
        PayloadError::new(field, err.into_inner().to_string())
    })?;
    K::check(&parsed)?;
    Ok(parsed)
}

/// What the platform knows of a kind without running it: the [`Kind`]'s
/// constants, and its payload rules behind plain functions.
pub struct KindSpec {
    pub name: &'static str,
    pub lane: Lane,
    pub max_attempts: i32,
    pub timeout: Duration,
    pub emits_events: bool,
    pub admin_only: bool,
    /// The payload's schema component name, such as `ReportBuildPayload`.
    pub schema_name: fn() -> String,
    /// Adds the payload's schema and those it refers to, as components.
    pub schemas: fn(&mut Vec<(String, RefOr<Schema>)>),
    admit: fn(&Value, &Submitter) -> Result<Admitted, PayloadError>,
    check: fn(&Value) -> Result<(), PayloadError>,
}

impl KindSpec {
    const fn of<K: Kind>() -> KindSpec {
        KindSpec {
            name: K::NAME,
            lane: K::LANE,
            max_attempts: K::MAX_ATTEMPTS,
            timeout: K::TIMEOUT,
            emits_events: K::EMITS_EVENTS,
            admin_only: K::ADMIN_ONLY,
            schema_name: schema_name::<K>,
            schemas: schemas::<K>,
            admit: admit::<K>,
            check: check::<K>,
        }
    }
}

fn schema_name<K: Kind>() -> String {
    <K::Payload as utoipa::ToSchema>::name().into_owned()
}

fn schemas<K: Kind>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    use utoipa::{PartialSchema, ToSchema};
    schemas.push((schema_name::<K>(), K::Payload::schema()));
    K::Payload::schemas(schemas);
}

fn admit<K: Kind>(payload: &Value, submitter: &Submitter) -> Result<Admitted, PayloadError> {
    let mut parsed = parse::<K>(payload)?;
    if let Some(refused) = K::platform_field(&parsed) {
        return Err(refused);
    }
    K::complete(&mut parsed, submitter);
    let payload = serde_json::to_value(&parsed).map_err(|err| PayloadError::new("payload", err.to_string()))?;
    Ok(Admitted { payload, needs_admin: K::needs_admin(&parsed), owner: K::owner(&parsed) })
}

fn check<K: Kind>(payload: &Value) -> Result<(), PayloadError> {
    parse::<K>(payload).map(drop)
}

/// A registered kind: a name with its [`KindSpec`]. Two are equal when
/// their names are.
#[derive(Clone, Copy)]
pub struct JobKind(&'static KindSpec);

inventory::collect!(JobKind);

inventory::submit!(JobKind::of::<BulkImport>());
inventory::submit!(JobKind::of::<EmailPoll>());
inventory::submit!(JobKind::of::<EventsErase>());
inventory::submit!(JobKind::of::<EventsExport>());
inventory::submit!(JobKind::of::<EventsRetention>());
inventory::submit!(JobKind::of::<Noop>());
inventory::submit!(JobKind::of::<ReportBuild>());
inventory::submit!(JobKind::of::<ReservationRefresh>());
inventory::submit!(JobKind::of::<VideoCompile>());

impl JobKind {
    pub const BULK_IMPORT: JobKind = JobKind::of::<BulkImport>();
    pub const EMAIL_POLL: JobKind = JobKind::of::<EmailPoll>();
    pub const EVENTS_ERASE: JobKind = JobKind::of::<EventsErase>();
    pub const EVENTS_EXPORT: JobKind = JobKind::of::<EventsExport>();
    pub const EVENTS_RETENTION: JobKind = JobKind::of::<EventsRetention>();
    pub const NOOP: JobKind = JobKind::of::<Noop>();
    pub const REPORT_BUILD: JobKind = JobKind::of::<ReportBuild>();
    pub const RESERVATION_REFRESH: JobKind = JobKind::of::<ReservationRefresh>();
    pub const VIDEO_COMPILE: JobKind = JobKind::of::<VideoCompile>();

    /// The kind `K`.
    pub const fn of<K: Kind>() -> JobKind {
        JobKind(const { &KindSpec::of::<K>() })
    }

    /// Every registered kind, by name.
    pub fn all() -> &'static [JobKind] {
        static ALL: OnceLock<Vec<JobKind>> = OnceLock::new();
        ALL.get_or_init(|| {
            let mut kinds: Vec<JobKind> = inventory::iter::<JobKind>().copied().collect();
            kinds.sort_by_key(|kind| kind.as_str());
            // A name registered twice is one kind (a test may register a
            // built-in again); the first registration stands.
            kinds.dedup_by_key(|kind| kind.as_str());
            kinds
        })
    }

    pub fn spec(self) -> &'static KindSpec {
        self.0
    }

    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    pub fn lane(self) -> Lane {
        self.0.lane
    }

    /// Whether the kind's outcomes are announced as events.
    pub fn emits_events(self) -> bool {
        self.0.emits_events
    }

    /// Whether only admins may submit this kind, whatever the payload.
    pub fn admin_only(self) -> bool {
        self.0.admin_only
    }

    pub fn default_max_attempts(self) -> i32 {
        self.0.max_attempts
    }

    /// How long one attempt may run before it is cancelled and retried.
    pub fn timeout(self) -> Duration {
        self.0.timeout
    }

    /// Checks a payload against the kind's type and rules. The error names
    /// the field.
    pub fn validate_payload(self, payload: &Value) -> Result<(), PayloadError> {
        (self.0.check)(payload)
    }

    /// Parses a submitted payload, fills its defaults for `submitter`, and
    /// says what it needs: the API's one door for payloads.
    pub fn admit(self, payload: &Value, submitter: &Submitter) -> Result<Admitted, PayloadError> {
        (self.0.admit)(payload, submitter)
    }
}

impl PartialEq for JobKind {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for JobKind {}

impl Hash for JobKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobKind({})", self.as_str())
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::all()
            .iter()
            .copied()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownName { what: "kind", name: s.to_owned() })
    }
}

impl Serialize for JobKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for JobKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(JobKind::all().iter().map(|kind| kind.as_str())))
            .description(Some("What a job does; the kind decides the lane and the payload's type."))
            .into()
    }
}

impl utoipa::ToSchema for JobKind {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name_and_the_built_ins_are_registered() {
        let names: Vec<&str> = JobKind::all().iter().map(|kind| kind.as_str()).collect();
        assert_eq!(
            names,
            [
                "bulk_import",
                "email_poll",
                "events_erase",
                "events_export",
                "events_retention",
                "noop",
                "report_build",
                "reservation_refresh",
                "video_compile"
            ]
        );
        for kind in JobKind::all() {
            assert_eq!(kind.as_str().parse::<JobKind>().ok(), Some(*kind));
        }
        assert!("nope".parse::<JobKind>().is_err());
    }

    #[test]
    fn payload_errors_name_the_field() {
        let err =
            JobKind::REPORT_BUILD.validate_payload(&json!({"report": "year_summary"})).expect_err("year is required");
        assert_eq!(err.field, "payload.year");
        let err = JobKind::VIDEO_COMPILE
            .validate_payload(&json!({"year": 2026, "aspect": "4:3"}))
            .expect_err("aspect is checked");
        assert_eq!(err.field, "payload.aspect");
        let err = JobKind::REPORT_BUILD
            .validate_payload(&json!({"report": "year_summary", "year": 2026, "formats": ["pdf", "doc"]}))
            .expect_err("formats are checked");
        assert_eq!(err.field, "payload.formats[1]");
        let err = JobKind::NOOP.validate_payload(&json!({"sleep": 1})).expect_err("unknown field");
        assert!(err.message.contains("sleep"), "{}", err.message);
    }

    #[test]
    fn valid_payloads_pass() {
        assert!(JobKind::NOOP.validate_payload(&json!({})).is_ok());
        assert!(JobKind::REPORT_BUILD
            .validate_payload(&json!({"report": "vendor_analytics", "month": "2026-10"}))
            .is_ok());
        assert!(JobKind::VIDEO_COMPILE.validate_payload(&json!({"year": 2026, "aspect": "9:16"})).is_ok());
    }
}
