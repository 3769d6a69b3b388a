//! The job model: kinds, lanes, statuses, the state machine, and the payload
//! type of every kind.
//!
//! A job kind is declared here once ([`JobKind`]), with its lane, its defaults
//! and its payload validation. The handler lives in `longhaul-workers`.

use std::{fmt, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// A workload class. Each lane has its own queue (and DLQ on SQS), its own
/// worker pool and its own autoscaler, so a flood of videos never delays a
/// password-reset-sized job in another lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    Video,
    Reports,
    Email,
    Refresh,
    Default,
}

impl Lane {
    pub const ALL: [Lane; 5] = [Lane::Video, Lane::Reports, Lane::Email, Lane::Refresh, Lane::Default];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Video => "video",
            Lane::Reports => "reports",
            Lane::Email => "email",
            Lane::Refresh => "refresh",
            Lane::Default => "default",
        }
    }

    /// Jobs one worker process runs at once in this lane, unless configured.
    pub fn default_concurrency(self) -> usize {
        match self {
            // One encode saturates a core; more would only thrash.
            Lane::Video => 1,
            Lane::Reports => 4,
            Lane::Email => 16,
            Lane::Refresh => 8,
            Lane::Default => 64,
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lane {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lane::ALL
            .into_iter()
            .find(|lane| lane.as_str() == s)
            .ok_or_else(|| UnknownName { what: "lane", name: s.to_owned() })
    }
}

/// A name that is not one of the known lanes, kinds or statuses.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {what} `{name}`")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

/// What a job does. The kind decides the lane, the payload type and the
/// defaults (attempts, timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    EmailPoll,
    ReservationRefresh,
    ReportBuild,
    VideoCompile,
    Noop,
}

impl JobKind {
    pub const ALL: [JobKind; 5] =
        [JobKind::EmailPoll, JobKind::ReservationRefresh, JobKind::ReportBuild, JobKind::VideoCompile, JobKind::Noop];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::EmailPoll => "email_poll",
            JobKind::ReservationRefresh => "reservation_refresh",
            JobKind::ReportBuild => "report_build",
            JobKind::VideoCompile => "video_compile",
            JobKind::Noop => "noop",
        }
    }

    pub fn lane(self) -> Lane {
        match self {
            JobKind::EmailPoll => Lane::Email,
            JobKind::ReservationRefresh => Lane::Refresh,
            JobKind::ReportBuild => Lane::Reports,
            JobKind::VideoCompile => Lane::Video,
            JobKind::Noop => Lane::Default,
        }
    }

    /// Whether the kind's outcomes are announced as events (`job.succeeded`,
    /// `job.failed`, `job.dead`). `noop` is a diagnostic: health checks and
    /// benchmarks would only flood subscribers.
    pub fn emits_events(self) -> bool {
        !matches!(self, JobKind::Noop)
    }

    /// Kinds a plain user may not submit.
    pub fn admin_only(self) -> bool {
        matches!(self, JobKind::Noop | JobKind::ReservationRefresh)
    }

    /// Whether a plain user may not submit this job: an admin-only kind, or
    /// a report of a whole tenant (`vendor_analytics`).
    pub fn admin_only_with(self, payload: &Value) -> bool {
        self.admin_only()
            || (self == JobKind::ReportBuild
                && payload.get("report").and_then(Value::as_str) == Some("vendor_analytics"))
    }

    pub fn default_max_attempts(self) -> i32 {
        match self {
            JobKind::VideoCompile => 3,
            JobKind::ReportBuild => 5,
            JobKind::EmailPoll => 5,
            // The next sweep re-checks the shard anyway; retrying hard only piles up.
            JobKind::ReservationRefresh => 2,
            JobKind::Noop => 5,
        }
    }

    /// How long one attempt may run before it is cancelled and retried.
    pub fn timeout(self) -> Duration {
        match self {
            JobKind::VideoCompile => Duration::from_secs(2 * 60 * 60),
            JobKind::ReportBuild => Duration::from_secs(15 * 60),
            JobKind::EmailPoll => Duration::from_secs(5 * 60),
            JobKind::ReservationRefresh => Duration::from_secs(4 * 60),
            JobKind::Noop => Duration::from_secs(5 * 60),
        }
    }

    /// Checks a payload against the kind's type. The error names the field.
    pub fn validate_payload(self, payload: &Value) -> Result<(), PayloadError> {
        match self {
            JobKind::Noop => parse::<NoopPayload>(payload).map(drop),
            JobKind::EmailPoll => parse::<EmailPollPayload>(payload).map(drop),
            JobKind::ReservationRefresh => parse::<ReservationRefreshPayload>(payload)?.validate(),
            JobKind::ReportBuild => parse::<ReportBuildPayload>(payload)?.validate(),
            JobKind::VideoCompile => parse::<VideoCompilePayload>(payload)?.validate(),
        }
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
        JobKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownName { what: "kind", name: s.to_owned() })
    }
}

/// Where a job is in its life.
///
/// `queued → running → succeeded | failed | dead | cancelled`. A failed attempt
/// that will be retried goes back to `queued` with a later `run_at`; `dead`
/// means the attempts are exhausted or the error was permanent. `failed` is part
/// of the public contract but this version of the workers never produces it:
/// every failure is either retried (`queued`) or final (`dead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    Succeeded,
    Failed,
    Dead,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] =
        [Status::Queued, Status::Running, Status::Succeeded, Status::Failed, Status::Dead, Status::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Dead => "dead",
            Status::Cancelled => "cancelled",
        }
    }

    /// A final status: the job will not run again unless an admin retries it.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Dead | Status::Cancelled)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownName { what: "status", name: s.to_owned() })
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: Uuid,
    pub tenant_id: String,
    pub user_id: String,
    pub kind: JobKind,
    pub lane: Lane,
    pub status: Status,
    pub payload: Value,
    pub result: Option<Value>,
    /// The reason of the last failed attempt, or why the job ended.
    pub error: Option<String>,
    /// One entry per failed attempt: `{attempt, at, error}`.
    pub errors: Value,
    pub attempts: i32,
    /// The fencing token: moved on by every claim, and by an admin's retry
    /// or redrive (which reset `attempts`), never back. A running attempt is
    /// the job at one generation.
    #[serde(skip)]
    pub generation: i32,
    pub max_attempts: i32,
    pub priority: i16,
    /// 0 to 100.
    pub progress: i16,
    pub run_at: DateTime<Utc>,
    pub lease_until: Option<DateTime<Utc>>,
    pub locked_by: Option<String>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    #[serde(skip)]
    pub request_hash: Option<String>,
    pub traceparent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub tenant_id: String,
    pub user_id: String,
    pub kind: JobKind,
    pub payload: Value,
    pub max_attempts: i32,
    pub priority: i16,
    pub run_at: DateTime<Utc>,
    pub idempotency_key: Option<String>,
    /// A digest of the request that created the job, compared when the same
    /// idempotency key comes back.
    pub request_hash: Option<String>,
    pub traceparent: Option<String>,
}

impl NewJob {
    /// A job of `kind` with the kind's defaults, to run now.
    pub fn new(tenant_id: impl Into<String>, user_id: impl Into<String>, kind: JobKind, payload: Value) -> Self {
        NewJob {
            id: Uuid::now_v7(),
            tenant_id: tenant_id.into(),
            user_id: user_id.into(),
            kind,
            payload,
            max_attempts: kind.default_max_attempts(),
            priority: 0,
            run_at: Utc::now(),
            idempotency_key: None,
            request_hash: None,
            traceparent: None,
        }
    }
}

/// Priorities run from `PRIORITY_MIN` to `PRIORITY_MAX`; within a lane the
/// higher priority runs first, then the earlier `run_at`.
pub const PRIORITY_MIN: i16 = -10;
pub const PRIORITY_MAX: i16 = 10;

/// Tenant ids that start with this are the platform's own (the sweep's jobs
/// run as [`SYSTEM_TENANT`]), never a customer's: no token may carry one,
/// because code that sees such a tenant acts for every tenant.
///
/// [`SYSTEM_TENANT`]: crate::travel::refresh::SYSTEM_TENANT
pub const RESERVED_TENANT_PREFIX: &str = "_";

/// The longest tenant id a token may carry, in characters. Ids go into
/// object keys, logs and database rows; no real tenant needs more.
pub const TENANT_ID_MAX_CHARS: usize = 128;

/// Whether `tenant_id` belongs to the platform itself (see
/// [`RESERVED_TENANT_PREFIX`]).
pub fn is_reserved_tenant(tenant_id: &str) -> bool {
    tenant_id.starts_with(RESERVED_TENANT_PREFIX)
}

/// Checks a tenant id that comes from outside (a token, the CLI): not
/// empty, at most [`TENANT_ID_MAX_CHARS`] characters, no control
/// characters, no surrounding spaces, and not reserved. The error says which
/// rule it breaks, for a 401's detail or the CLI's message.
pub fn check_tenant_id(tenant_id: &str) -> Result<(), String> {
    if tenant_id.is_empty() {
        return Err("the tenant id is empty".to_owned());
    }
    if tenant_id.chars().count() > TENANT_ID_MAX_CHARS {
        return Err(format!("the tenant id is longer than {TENANT_ID_MAX_CHARS} characters"));
    }
    if tenant_id.chars().any(char::is_control) {
        return Err("the tenant id contains control characters".to_owned());
    }
    if tenant_id.trim() != tenant_id {
        return Err("the tenant id starts or ends with whitespace".to_owned());
    }
    if is_reserved_tenant(tenant_id) {
        return Err(format!(
            "tenant ids starting with `{RESERVED_TENANT_PREFIX}` are reserved for the platform's own jobs"
        ));
    }
    Ok(())
}

/// Who is asking, for tenant-scoped reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// An operator of the whole platform: every tenant.
    Platform,
    /// An admin of one tenant: every user of it.
    Tenant { tenant_id: String },
    /// One user of one tenant.
    User { tenant_id: String, user_id: String },
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

fn parse<T: serde::de::DeserializeOwned>(payload: &Value) -> Result<T, PayloadError> {
    T::deserialize(payload).map_err(|err| {
        // serde_json's messages name the offending field ("unknown field `x`",
        // "missing field `year`"), which is what the caller needs.
        PayloadError::new("payload", err.to_string())
    })
}

/// `noop`: sleeps, then succeeds. Used for health checks and queue benchmarks.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoopPayload {
    #[serde(default)]
    pub sleep_ms: u64,
    /// Fail this many attempts with a retryable error before succeeding.
    #[serde(default)]
    pub fail_times: u32,
    /// Fail with a permanent error.
    #[serde(default)]
    pub fail_permanently: bool,
    /// Write this text as the artifact `noop.txt` through the object store:
    /// a smoke test of the worker's object store.
    #[serde(default)]
    pub artifact: Option<String>,
}

/// `email_poll`: sync one connected inbox.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailPollPayload {
    pub account_id: String,
}

/// `reservation_refresh`: one shard of the active reservations.
///
/// The sweep planner sets all three. An admin may submit `{}` (every active
/// reservation of the admin's tenant) or `{"shard": i, "shards": n}` (one
/// shard of it).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationRefreshPayload {
    /// The sweep this shard belongs to, whose tallies it adds to.
    #[serde(default)]
    pub sweep_id: Option<Uuid>,
    /// Which shard, from 0.
    #[serde(default)]
    pub shard: Option<u32>,
    /// Into how many shards the active set is split (1 to 65536).
    #[serde(default)]
    pub shards: Option<u32>,
}

impl ReservationRefreshPayload {
    /// The most shards: one per shard key.
    pub const MAX_SHARDS: u32 = 1 << 16;

    fn validate(&self) -> Result<(), PayloadError> {
        match (self.shard, self.shards) {
            (None, None) if self.sweep_id.is_none() => Ok(()),
            (None, None) => Err(PayloadError::new("payload.shard", "required with sweep_id")),
            (Some(_), None) => Err(PayloadError::new("payload.shards", "required with shard")),
            (None, Some(_)) => Err(PayloadError::new("payload.shard", "required with shards")),
            (Some(_), Some(shards)) if shards == 0 || shards > Self::MAX_SHARDS => {
                Err(PayloadError::new("payload.shards", format!("must be between 1 and {}", Self::MAX_SHARDS)))
            }
            (Some(shard), Some(shards)) if shard >= shards => {
                Err(PayloadError::new("payload.shard", "must be less than shards"))
            }
            _ => Ok(()),
        }
    }
}

/// `report_build`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBuildPayload {
    pub report: String,
    #[serde(default)]
    pub year: Option<i32>,
    #[serde(default)]
    pub month: Option<String>,
    #[serde(default)]
    pub formats: Option<Vec<String>>,
    #[serde(default)]
    pub locale: Option<String>,
}

/// The report language a BCP 47 tag asks for, when longhaul has it: `en`
/// or `pt-BR` (`pt`, `pt-PT`, `en-GB`, `pt_BR`… map to them).
pub fn report_locale(tag: &str) -> Option<&'static str> {
    let tag = tag.trim().replace('_', "-").to_ascii_lowercase();
    match tag.split('-').next() {
        Some("en") => Some("en"),
        Some("pt") => Some("pt-BR"),
        _ => None,
    }
}

/// The locales a report may ask for (`pt` and `en-*` map to `pt-BR` and `en`).
pub const REPORT_LOCALES: [&str; 5] = ["en", "en-US", "en-GB", "pt", "pt-BR"];
/// The files a report may be built as.
pub const REPORT_FORMATS: [&str; 3] = ["pdf", "csv", "json"];
/// The years a year summary or a yearly video may be of.
pub const PAYLOAD_YEARS: std::ops::RangeInclusive<i32> = 1970..=2100;
/// The shapes of a yearly video.
pub const VIDEO_ASPECTS: [&str; 2] = ["9:16", "16:9"];
/// The most photos a video may list.
pub const VIDEO_MEDIA_MAX: usize = 300;

/// `YYYY-MM`, exactly: the pattern the API document gives `month`.
pub const MONTH_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])$";

fn is_month(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 7
        && bytes[4] == b'-'
        && bytes.iter().enumerate().all(|(i, b)| i == 4 || b.is_ascii_digit())
        && matches!(&value[5..], "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12")
}

impl ReportBuildPayload {
    fn validate(&self) -> Result<(), PayloadError> {
        match self.report.as_str() {
            "year_summary" => {
                let year = self.year.ok_or_else(|| PayloadError::new("payload.year", "required for year_summary"))?;
                if !PAYLOAD_YEARS.contains(&year) {
                    return Err(PayloadError::new("payload.year", "must be between 1970 and 2100"));
                }
            }
            "vendor_analytics" => {
                let month = self
                    .month
                    .as_deref()
                    .ok_or_else(|| PayloadError::new("payload.month", "required for vendor_analytics"))?;
                if !is_month(month) {
                    return Err(PayloadError::new("payload.month", "must look like 2026-10"));
                }
            }
            other => {
                return Err(PayloadError::new(
                    "payload.report",
                    format!("unknown report `{other}`; expected year_summary or vendor_analytics"),
                ))
            }
        }
        if let Some(locale) = self.locale.as_deref() {
            if !REPORT_LOCALES.contains(&locale) {
                return Err(PayloadError::new(
                    "payload.locale",
                    format!("unknown locale `{locale}`; expected en or pt-BR"),
                ));
            }
        }
        for format in self.formats.iter().flatten() {
            if !REPORT_FORMATS.contains(&format.as_str()) {
                return Err(PayloadError::new(
                    "payload.formats",
                    format!("unknown format `{format}`; expected pdf, csv or json"),
                ));
            }
        }
        Ok(())
    }
}

/// `video_compile`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoCompilePayload {
    pub year: i32,
    pub aspect: String,
    #[serde(default)]
    pub media: Option<Vec<String>>,
    /// A soundtrack from `assets/music/` by name (see [`VIDEO_MUSIC`]), or
    /// `"none"`; `daybreak` when left out.
    #[serde(default)]
    pub music: Option<String>,
    /// The name on the title card. The API fills it from the token's OpenID
    /// `name` claim when the request leaves it out.
    #[serde(default)]
    pub name: Option<String>,
}

/// The soundtracks a video may ask for, besides `"none"`.
pub const VIDEO_MUSIC: &[&str] = &["daybreak"];

/// The longest name a title card shows, in characters.
pub const VIDEO_NAME_MAX: usize = 80;

impl VideoCompilePayload {
    fn validate(&self) -> Result<(), PayloadError> {
        if let Some(music) = &self.music {
            if music != "none" && !VIDEO_MUSIC.contains(&music.as_str()) {
                return Err(PayloadError::new(
                    "payload.music",
                    format!(
                        "must be one of {} or \"none\"",
                        VIDEO_MUSIC.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        if self.name.as_ref().is_some_and(|name| name.chars().count() > VIDEO_NAME_MAX) {
            return Err(PayloadError::new("payload.name", format!("must be at most {VIDEO_NAME_MAX} characters")));
        }
        if let Some(media) = &self.media {
            if media.len() > VIDEO_MEDIA_MAX {
                return Err(PayloadError::new("payload.media", format!("must list at most {VIDEO_MEDIA_MAX} photos")));
            }
        }
        if !PAYLOAD_YEARS.contains(&self.year) {
            return Err(PayloadError::new("payload.year", "must be between 1970 and 2100"));
        }
        if !VIDEO_ASPECTS.contains(&self.aspect.as_str()) {
            return Err(PayloadError::new("payload.aspect", "must be \"9:16\" or \"16:9\""));
        }
        Ok(())
    }
}

/// The trace id of a W3C `traceparent` (`00-<trace id>-<parent id>-<flags>`):
/// 32 lowercase hex digits, not all zeros. The API's request span and the
/// worker's job span both record it, so their logs join.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let trace_id = traceparent.trim().split('-').nth(1)?;
    let hex = trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex && trace_id.bytes().any(|b| b != b'0')).then_some(trace_id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_trace_id_is_read_from_a_well_formed_traceparent_only() {
        use super::trace_id;
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id("00-4bf92f35-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id("garbage"), None);
        assert_eq!(trace_id(""), None);
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn the_platforms_own_tenant_is_reserved_and_tokens_cannot_name_it() {
        assert!(is_reserved_tenant(crate::travel::refresh::SYSTEM_TENANT));
        assert!(is_reserved_tenant("_x"));
        assert!(!is_reserved_tenant("acme"));
        assert!(check_tenant_id(crate::travel::refresh::SYSTEM_TENANT).is_err());
        assert!(check_tenant_id("acme").is_ok());
        assert!(check_tenant_id("Acme Corp 🚀").is_ok());
        assert!(check_tenant_id(&"t".repeat(TENANT_ID_MAX_CHARS)).is_ok());
        let too_long = "t".repeat(TENANT_ID_MAX_CHARS + 1);
        for bad in ["", too_long.as_str(), "a\nb", " acme", "\u{7}"] {
            assert!(check_tenant_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for kind in JobKind::ALL {
            assert_eq!(kind.as_str().parse::<JobKind>().ok(), Some(kind));
        }
        for lane in Lane::ALL {
            assert_eq!(lane.as_str().parse::<Lane>().ok(), Some(lane));
        }
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().ok(), Some(status));
        }
    }

    #[test]
    fn payload_errors_name_the_field() {
        let err =
            JobKind::ReportBuild.validate_payload(&json!({"report": "year_summary"})).expect_err("year is required");
        assert_eq!(err.field, "payload.year");
        let err = JobKind::VideoCompile
            .validate_payload(&json!({"year": 2026, "aspect": "4:3"}))
            .expect_err("aspect is checked");
        assert_eq!(err.field, "payload.aspect");
        let err = JobKind::Noop.validate_payload(&json!({"sleep": 1})).expect_err("unknown field");
        assert!(err.message.contains("sleep"), "{}", err.message);
    }

    #[test]
    fn valid_payloads_pass() {
        assert!(JobKind::Noop.validate_payload(&json!({})).is_ok());
        assert!(JobKind::ReportBuild
            .validate_payload(&json!({"report": "vendor_analytics", "month": "2026-10"}))
            .is_ok());
        assert!(JobKind::VideoCompile.validate_payload(&json!({"year": 2026, "aspect": "9:16"})).is_ok());
    }
}
