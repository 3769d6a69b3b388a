//! The Store: one API over PostgreSQL and SQLite.
//!
//! Each backend implements [`JobStore`] with its own SQL, the way River's drivers
//! keep its client free of any one database library. Every read of user data
//! takes a [`Scope`], so a query cannot forget its tenant.
//!
//! The embedded queue lives here too: a queued job *is* its message, and a
//! claim is an `UPDATE … RETURNING` that moves rows to `running` under a lease.

pub(crate) mod columns;
mod dispatch;
pub(crate) mod postgres;
mod records;
pub(crate) mod sql;
pub(crate) mod sqlite;
mod wakeups;

pub(crate) use columns::{from_row, named_columns, Columns, FromColumn};

/// The jobs port, shared by every task of the process.
pub type DynJobStore = Arc<dyn JobStore>;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    model::{Job, Lane, NewJob, Scope, Status},
    notify::{event_types, OutboxEvent},
    JobKind,
};

pub use dispatch::{DeadLettered, Delivered, Dispatch, DispatchStore, DynDispatchStore, Started, Undelivered};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use wakeups::Wakeups;

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

impl StoreError {
    /// The database is out of reach for now (down, restarting, refusing
    /// connections, or busy), rather than the request or the code being
    /// wrong: the same request may well succeed in a moment.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database(err) = self else { return false };
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => true,
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // PostgreSQL: connection exceptions (08…), operator
                // intervention (57P01 admin shutdown, 57P02 crash shutdown,
                // 57P03 cannot connect now), too many connections (53300),
                // a read-only standby after a failover (25006).
                Some(code) if code.starts_with("08") || code.starts_with("57P") => true,
                Some("53300" | "25006") => true,
                // SQLite: the database is busy or locked (5, 6).
                Some("5" | "6") => true,
                _ => false,
            },
            _ => false,
        }
    }
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
    /// Only queued jobs that are not due yet: delayed, or waiting for a retry.
    pub delayed: bool,
    pub limit: u32,
}

/// A job handed to a worker: the claimed row, whose `generation` is the
/// fencing token of this run.
pub type Claimed = Job;

/// What a worker asks of the queue when it has room: up to `max` due jobs
/// of `lane`, each started under a lease of `lease` held by `worker_id`,
/// with never more than `tenant_cap` running jobs of one tenant in the lane
/// (reserved tenants, the platform's own work, have no cap).
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub lane: Lane,
    pub max: usize,
    pub lease: Duration,
    pub worker_id: &'a str,
    pub tenant_cap: Option<u32>,
}

impl<'a> ClaimRequest<'a> {
    /// Up to `max` jobs of `lane`, with no cap on any tenant's share.
    pub fn new(lane: Lane, max: usize, lease: Duration, worker_id: &'a str) -> Self {
        ClaimRequest { lane, max, lease, worker_id, tenant_cap: None }
    }

    /// The same request, with at most `cap` running jobs of one tenant.
    pub fn capped(self, cap: Option<u32>) -> Self {
        ClaimRequest { tenant_cap: cap, ..self }
    }
}

/// One running attempt, as the worker knows it: the job at the generation
/// its claim gave it. Every write of the attempt is fenced on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptRef {
    pub id: Uuid,
    /// The job's `generation` after the claim: it only ever grows, so no
    /// later run of the job (whatever its attempt count) can share it.
    pub generation: i32,
}

impl AttemptRef {
    /// The attempt a claimed job is at.
    pub fn of(job: &Job) -> AttemptRef {
        AttemptRef { id: job.id, generation: job.generation }
    }
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
        /// Files the job uploaded; they become visible with the success.
        artifacts: Vec<NewArtifact>,
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

/// A file a job uploaded to the object store, to be recorded with its success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArtifact {
    pub id: Uuid,
    /// The file name users see, such as `year-2026.pdf`.
    pub name: String,
    pub content_type: String,
    /// Where it is, as `ObjectKey::as_str` gives it (under `tenants/<tenant>/`).
    pub object_key: String,
    pub size_bytes: i64,
}

/// A recorded artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub id: Uuid,
    pub job_id: Uuid,
    pub tenant_id: String,
    pub user_id: String,
    pub name: String,
    pub content_type: String,
    pub object_key: String,
    pub size_bytes: i64,
    pub created_at: DateTime<Utc>,
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
    /// Paused for every tenant (by the platform).
    pub paused: bool,
    /// For a tenant's figures: whether the tenant paused its own jobs in
    /// the lane. Absent in the platform's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_paused: Option<bool>,
}

/// Where queued jobs wait, which decides what a store writes when a job
/// becomes `queued`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueMode {
    /// In the database: the store is the queue.
    #[default]
    Embedded,
    /// On an external queue (SQS): every transition to `queued`, and to
    /// `dead`, also writes a row to the dispatch outbox. PostgreSQL only.
    Dispatch,
}

/// The jobs and their leases: the port the queue, the lane pools, the
/// scheduler and the API's job routes use. The domains beside the jobs have
/// ports of their own (`TravelStore`, `MediaStore`, …); [`crate::Store`] is
/// all of them together.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    fn queue_mode(&self) -> QueueMode {
        QueueMode::Embedded
    }

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

    /// Claims up to `max` due jobs of `lane`, with no cap on any tenant's
    /// share: [`JobStore::claim_within`] of [`ClaimRequest::new`].
    async fn claim(&self, lane: Lane, max: usize, lease: Duration, worker_id: &str) -> Result<Vec<Claimed>> {
        self.claim_within(&ClaimRequest::new(lane, max, lease, worker_id)).await
    }

    /// Claims what `request` asks for, moving the jobs to `running` with
    /// `attempts + 1`, the next generation and the request's lease: highest
    /// priority first, then in fair order (tenants interleaved, see migration
    /// 0011), within the request's tenant cap. Paused lanes yield nothing,
    /// and a tenant that paused its jobs in the lane yields none of them.
    async fn claim_within(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>>;

    /// Extends the leases of running attempts, and reports which are still
    /// held and which were asked to cancel.
    async fn heartbeat(&self, attempts: &[AttemptRef], lease: Duration) -> Result<Vec<LeaseState>>;

    /// Commits the outcome of many attempts at once. Each commit is fenced: it
    /// only applies if the job is still `running` at that attempt's
    /// generation with a live lease. Returns the attempts that committed.
    async fn complete(&self, completions: &[Completion]) -> Result<Vec<AttemptRef>>;

    /// Gives running attempts back to the queue for immediate redelivery,
    /// without spending an attempt (used at shutdown).
    async fn release(&self, attempts: &[AttemptRef]) -> Result<u64>;

    /// Records progress (0–100) of a running attempt. Fenced like `complete`.
    async fn set_progress(&self, attempt: AttemptRef, progress: i16) -> Result<bool>;

    /// Requeues running jobs whose lease expired; jobs on their last attempt go dead.
    async fn reap_expired(&self) -> Result<ReapReport>;

    /// Pauses or resumes a lane for every tenant (the platform's switch).
    async fn set_lane_paused(&self, lane: Lane, paused: bool) -> Result<()>;

    async fn lane_paused(&self, lane: Lane) -> Result<bool>;

    /// Pauses or resumes one tenant's jobs in a lane (its admin's switch):
    /// running jobs finish, queued ones wait; other tenants are untouched.
    /// `by` is who did it, kept for the record.
    async fn set_tenant_lane_paused(&self, tenant_id: &str, lane: Lane, paused: bool, by: &str) -> Result<()>;

    /// Per-lane figures as `scope` may see them: the whole lane for the
    /// platform, the tenant's own jobs for a tenant (or user) scope.
    async fn lane_stats(&self, scope: &Scope) -> Result<Vec<LaneStats>>;

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

    /// The artifacts of these jobs, oldest first. The caller has already
    /// checked that it may see the jobs.
    async fn job_artifacts(&self, job_ids: &[Uuid]) -> Result<Vec<Artifact>>;

    /// One artifact, if `scope` may see it.
    async fn get_artifact(&self, scope: &Scope, id: Uuid) -> Result<Option<Artifact>>;

    /// Puts the dead jobs of `lane` that `scope` sees back in the queue with
    /// fresh attempts; with `only`, just those of them. Returns the ids requeued.
    async fn redrive(&self, scope: &Scope, lane: Lane, only: Option<&[Uuid]>) -> Result<Vec<Uuid>>;

    /// Checks that this process queues jobs the way the database's other
    /// processes do: one started without `LONGHAUL_QUEUE=sqs` against an SQS
    /// deployment would write jobs that never reach a worker. The first
    /// process records the mode; with `record` (`longhaul migrate`), this
    /// process's mode replaces the recorded one.
    async fn check_queue_mode(&self, mode: QueueMode, record: bool) -> Result<()> {
        let _ = record;
        match mode {
            QueueMode::Embedded => Ok(()),
            QueueMode::Dispatch => Err(not_dispatching(self.backend())),
        }
    }
}

fn not_dispatching(backend: &str) -> StoreError {
    StoreError::Config(format!(
        "the {backend} store is not in dispatch mode: the SQS queue needs PostgreSQL, opened with QueueMode::Dispatch"
    ))
}

/// The event type that announces an outcome, if any.
fn event_type(status: Status) -> Option<&'static str> {
    match status {
        Status::Succeeded => Some(event_types::JOB_SUCCEEDED),
        // A failed attempt that will be retried.
        Status::Queued => Some(event_types::JOB_FAILED),
        Status::Dead => Some(event_types::JOB_DEAD),
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
    crate::JobKind::all().iter().filter(|kind| kind.emits_events()).map(|kind| kind.as_str()).collect()
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

pub(crate) fn parse_enum<T: std::str::FromStr>(value: &str, what: &str) -> Result<T> {
    value.parse().map_err(|_| StoreError::Corrupt(format!("unknown {what} `{value}` in the database")))
}

named_columns!(JobKind => "kind", Lane => "lane", Status => "status");

/// A job row, from either database.
pub(crate) fn job_from_row(row: &impl Columns) -> Result<Job> {
    from_row!(row => Job {
        id, tenant_id, user_id, kind, lane, status, payload, result, error, errors, attempts, generation,
        max_attempts, priority, progress, run_at, lease_until, locked_by, cancel_requested_at, idempotency_key,
        request_hash, traceparent, created_at, updated_at, started_at, finished_at,
    })
}

pub(crate) fn jobs_from_rows<R: Columns>(rows: &[R]) -> Result<Vec<Job>> {
    rows.iter().map(job_from_row).collect()
}

pub(crate) const ARTIFACT_COLUMNS: &str =
    "id, job_id, tenant_id, user_id, name, content_type, object_key, size_bytes, created_at";

pub(crate) fn artifact_from_row(row: &impl Columns) -> Result<Artifact> {
    from_row!(row => Artifact { id, job_id, tenant_id, user_id, name, content_type, object_key, size_bytes, created_at })
}

#[cfg(test)]
mod tests {
    use super::{redact_url, StoreError};

    #[tokio::test]
    async fn a_database_out_of_reach_is_unavailable_and_a_bad_query_is_not() {
        use sqlx::Connection;
        // Nothing listens on port 1: the connection is refused, as during a restart.
        let refused = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:1/x").await.err();
        let refused = StoreError::from(refused.expect("no server on port 1"));
        assert!(refused.is_unavailable(), "{refused}");
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!StoreError::Corrupt("a bad row".into()).is_unavailable());
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("sqlite://./a.db"), "sqlite://./a.db");
    }
}
