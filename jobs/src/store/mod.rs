//! The Store: one API over PostgreSQL and SQLite.
//!
//! Each backend implements [`Store`] with its own SQL, the way River's drivers
//! keep its client free of any one database library. Every read of user data
//! takes a [`Scope`], so a query cannot forget its tenant.
//!
//! The embedded queue lives here too: a queued job *is* its message, and a
//! claim is an `UPDATE … RETURNING` that moves rows to `running` under a lease.

mod postgres;
mod sqlite;
mod wakeups;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    model::{Job, JobKind, Lane, NewJob, Scope, Status},
    notify::OutboxEvent,
};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use wakeups::Wakeups;

/// A store shared by every task of the process.
pub type DynStore = Arc<dyn Store>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the stored row is invalid: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What happened to an insert that carried an idempotency key.
#[derive(Debug, Clone)]
pub enum InsertOutcome {
    /// A new job was created.
    Created(Job),
    /// The key was seen before with the same request: this is that job.
    Existing(Job),
    /// The key was seen before with a different request.
    Conflict(Job),
}

/// Filters for job lists. Results are newest first; `before` is the id of the
/// last job of the previous page (ids are UUIDv7, so they sort by creation).
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<Status>,
    pub kind: Option<JobKind>,
    pub lane: Option<Lane>,
    /// Only honoured for [`Scope::Platform`]; narrower scopes are already
    /// pinned to their tenant.
    pub tenant_id: Option<String>,
    pub before: Option<Uuid>,
    pub limit: u32,
}

/// A job handed to a worker: the claimed row, whose `attempts` is the fence
/// token of this run.
pub type Claimed = Job;

/// One running attempt, as the worker knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptRef {
    pub id: Uuid,
    pub attempt: i32,
}

/// The state of a lease after a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseState {
    pub attempt: AttemptRef,
    /// False when the lease was lost: the job was reaped, retried or taken by
    /// another worker. The worker must stop, and cannot commit.
    pub held: bool,
    /// Somebody asked for the job to be cancelled.
    pub cancel_requested: bool,
}

/// How an attempt ended, to be committed.
#[derive(Debug, Clone)]
pub struct Completion {
    pub attempt: AttemptRef,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded {
        result: Option<Value>,
    },
    /// Back to `queued`, to run again at `run_at`.
    Retry {
        error: String,
        run_at: DateTime<Utc>,
    },
    /// Attempts exhausted, or a permanent error.
    Dead {
        error: String,
    },
    Cancelled {
        reason: String,
    },
}

impl Outcome {
    pub fn status(&self) -> Status {
        match self {
            Outcome::Succeeded { .. } => Status::Succeeded,
            Outcome::Retry { .. } => Status::Queued,
            Outcome::Dead { .. } => Status::Dead,
            Outcome::Cancelled { .. } => Status::Cancelled,
        }
    }
}

/// What a cancel request did.
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// The job was queued and is now cancelled.
    Cancelled(Job),
    /// The job is running; its worker will stop it at its next heartbeat.
    Requested(Job),
    /// The job had already ended; nothing changed.
    AlreadyFinal(Job),
}

/// What the reaper did with expired leases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReapReport {
    /// Put back in the queue for another attempt.
    pub requeued: u64,
    /// The expired attempt was the last one.
    pub dead: u64,
}

/// Per-lane figures for the admin queue view.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LaneStats {
    pub lane: Lane,
    /// Queued and due now.
    pub depth: i64,
    pub in_flight: i64,
    /// Queued with `run_at` in the future (delayed, or waiting for a retry).
    pub delayed: i64,
    pub dead: i64,
    /// Age in seconds of the oldest job that is due and waiting.
    pub oldest_age_seconds: f64,
    /// Jobs finished in the last 5 minutes.
    pub throughput_5m: i64,
    pub paused: bool,
}

/// The one API over both databases.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// Wakes lane pools when work arrives, in this process and (PostgreSQL,
    /// through LISTEN/NOTIFY) in every other.
    fn wakeups(&self) -> &Arc<Wakeups>;

    async fn migrate(&self) -> Result<()>;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<()>;

    /// Inserts a job, honouring its idempotency key, and wakes its lane.
    async fn insert_job(&self, job: NewJob) -> Result<InsertOutcome>;

    /// Inserts many jobs in as few statements as the backend allows. Keys are
    /// not checked; this is for the scheduler and benchmarks.
    async fn insert_jobs(&self, jobs: &[NewJob]) -> Result<u64>;

    async fn get_job(&self, scope: &Scope, id: Uuid) -> Result<Option<Job>>;

    async fn list_jobs(&self, scope: &Scope, filter: &JobFilter) -> Result<Vec<Job>>;

    /// A queued job is cancelled at once; a running one is asked to stop.
    async fn cancel_job(&self, scope: &Scope, id: Uuid) -> Result<Option<CancelOutcome>>;

    /// Puts a dead, failed or cancelled job back in the queue with a fresh set
    /// of attempts.
    async fn retry_job(&self, scope: &Scope, id: Uuid) -> Result<Option<Job>>;

    /// Claims up to `max` due jobs of `lane`, highest priority first, moving
    /// them to `running` with `attempts + 1` and a lease of `lease`. Paused
    /// lanes yield nothing.
    async fn claim(&self, lane: Lane, max: usize, lease: Duration, worker_id: &str) -> Result<Vec<Claimed>>;

    /// Extends the leases of running attempts, and reports which are still
    /// held and which were asked to cancel.
    async fn heartbeat(&self, attempts: &[AttemptRef], lease: Duration) -> Result<Vec<LeaseState>>;

    /// Commits the outcome of many attempts at once. Each commit is fenced: it
    /// only applies if the job is still `running` at that attempt with a live
    /// lease. Returns the attempts that committed.
    async fn complete(&self, completions: &[Completion]) -> Result<Vec<AttemptRef>>;

    /// Gives running attempts back to the queue for immediate redelivery,
    /// without spending an attempt (used at shutdown).
    async fn release(&self, attempts: &[AttemptRef]) -> Result<u64>;

    /// Records progress (0–100) of a running attempt. Fenced like `complete`.
    async fn set_progress(&self, attempt: AttemptRef, progress: i16) -> Result<bool>;

    /// Requeues running jobs whose lease expired; jobs on their last attempt go dead.
    async fn reap_expired(&self) -> Result<ReapReport>;

    async fn set_lane_paused(&self, lane: Lane, paused: bool) -> Result<()>;

    async fn lane_stats(&self) -> Result<Vec<LaneStats>>;

    /// Takes or renews a named lease for `holder`. True while `holder` leads.
    async fn try_lead(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool>;

    /// Gives up a named lease, so that another instance takes over at once.
    async fn resign(&self, name: &str, holder: &str) -> Result<()>;

    /// Deletes final jobs older than `age`. Returns how many.
    async fn prune_finished(&self, age: Duration) -> Result<u64>;

    /// Leases up to `max` outbox events that nobody holds, oldest first.
    async fn claim_outbox(&self, max: usize, lease: Duration) -> Result<Vec<OutboxEvent>>;

    /// Removes published events.
    async fn delete_outbox(&self, ids: &[i64]) -> Result<u64>;
}

/// The event type that announces an outcome, if any.
fn event_type(status: Status) -> Option<&'static str> {
    match status {
        Status::Succeeded => Some("job.succeeded"),
        // A failed attempt that will be retried.
        Status::Queued => Some("job.failed"),
        Status::Dead => Some("job.dead"),
        _ => None,
    }
}

/// The body of a job event.
#[allow(clippy::too_many_arguments)]
fn event_payload(
    id: Uuid,
    tenant_id: &str,
    user_id: &str,
    kind: &str,
    status: &str,
    attempt: i32,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> Value {
    serde_json::json!({
        "job_id": id, "tenant_id": tenant_id, "user_id": user_id, "kind": kind,
        "status": status, "attempt": attempt, "error": error, "at": at,
    })
}

/// The kinds whose outcomes are announced, for SQL that filters on them.
fn emitting_kinds() -> Vec<&'static str> {
    crate::model::JobKind::ALL.into_iter().filter(|kind| kind.emits_events()).map(|kind| kind.as_str()).collect()
}

/// Opens the store a URL names: `sqlite://path` or `postgres://…`.
pub async fn connect(url: &str) -> Result<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::Config(format!(
            "unsupported database URL `{}`: expected sqlite://… or postgres://…",
            redact_url(url)
        )))
    }
}

/// A URL without its password, fit for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Appends one failed attempt to the `errors` history.
fn error_entry(attempt: i32, at: DateTime<Utc>, error: &str) -> Value {
    serde_json::json!({ "attempt": attempt, "at": at, "error": error })
}

fn parse_enum<T: std::str::FromStr>(value: &str, what: &str) -> Result<T> {
    value.parse().map_err(|_| StoreError::Corrupt(format!("unknown {what} `{value}` in the jobs table")))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("sqlite://./a.db"), "sqlite://./a.db");
    }
}
