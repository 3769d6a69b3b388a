//! The job model: lanes, statuses, the state machine, jobs as stored and to
//! insert, and who is asking. Kinds and their payloads are in [`crate::kind`].

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::kind::{JobKind, Kind};
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
    /// Event exports to the data lake and admins' bulk imports.
    Data,
    Default,
}

impl Lane {
    pub const ALL: [Lane; 6] = [Lane::Video, Lane::Reports, Lane::Email, Lane::Refresh, Lane::Data, Lane::Default];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Video => "video",
            Lane::Reports => "reports",
            Lane::Email => "email",
            Lane::Refresh => "refresh",
            Lane::Data => "data",
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
            // An export holds an hour of a tenant's events in row groups,
            // an import a batch of rows; two keep a pod's memory bounded.
            Lane::Data => 2,
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

    /// A job of kind `K` from its typed payload.
    pub fn of<K: Kind>(
        tenant_id: impl Into<String>,
        user_id: impl Into<String>,
        payload: &K::Payload,
    ) -> Result<Self, serde_json::Error> {
        Ok(NewJob::new(tenant_id, user_id, JobKind::of::<K>(), serde_json::to_value(payload)?))
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
/// The user the platform's own jobs of a tenant run as (the hourly exports,
/// the lake's erasures and retention). No token may carry a `sub` that
/// starts with `_`, so no caller is this user or holds its idempotency keys.
pub const SCHEDULER_USER: &str = "_scheduler";

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
    fn every_lane_and_status_round_trips_through_its_name() {
        for lane in Lane::ALL {
            assert_eq!(lane.as_str().parse::<Lane>().ok(), Some(lane));
        }
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().ok(), Some(status));
        }
    }
}
