//! What the admin surfaces keep, besides the jobs themselves: the audit log
//! (who did what, when, from where), dashboard sessions, the worker
//! instances that are alive and what they run, and per-minute lane history
//! for the dashboard's charts.
//!
//! Sessions are stored, not signed into the cookie, so that any API replica
//! can check one, a logout ends it everywhere, and only a hash of the
//! cookie's secret is kept.

use crate::store::{from_row, Columns};
mod sql;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    model::{Lane, Scope},
    store::Result,
    JobKind,
};

/// An admin action to record.
#[derive(Debug, Clone)]
pub struct NewAudit {
    /// The actor's tenant.
    pub tenant_id: String,
    /// The actor: the token's subject.
    pub actor: String,
    pub role: String,
    /// Such as `job.retry` or `lane.pause`.
    pub action: String,
    /// What was acted on: a job id, a lane, a session.
    pub target: String,
    /// The tenant of what was acted on, when it is one tenant's (a job).
    pub subject_tenant: Option<String>,
    /// Counts and ids: what the action did.
    pub detail: Value,
    /// The client's address, as the API saw it (or as the proxy said).
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A recorded admin action.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Increasing: newer entries have larger ids. Pages go by `before`.
    pub id: i64,
    pub at: DateTime<Utc>,
    pub tenant_id: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub subject_tenant: Option<String>,
    pub detail: Value,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A dashboard session: the principal a login proved, and the token that
/// the session's forms must echo (CSRF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub tenant_id: String,
    pub user_id: String,
    pub role: String,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A job a worker instance is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunningJob {
    pub id: Uuid,
    pub kind: JobKind,
    pub lane: Lane,
    pub tenant_id: String,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
}

/// A lane a worker instance serves, and how many jobs it runs at once there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerLane {
    pub lane: Lane,
    pub concurrency: usize,
}

/// A worker instance, as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WorkerPresence {
    /// `hostname-pid`: the `locked_by` of the jobs it claims.
    pub id: String,
    pub host: String,
    /// The longhaul version it runs.
    pub version: String,
    pub lanes: Vec<WorkerLane>,
    pub running: Vec<RunningJob>,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// Jobs of a lane that ended in one minute: all of them, and those that
/// ended dead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LaneMinute {
    pub lane: Lane,
    pub minute: DateTime<Utc>,
    pub finished: i64,
    pub failed: i64,
}

/// The most entries one audit page holds.
pub const MAX_AUDIT_PAGE: u32 = 500;

/// How recently a worker instance must have reported to count as live:
/// three of its report intervals (5 s). The dashboard lists these, and
/// workers add up the lanes' slots of these for tenants' shares.
pub const LIVE_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// How long the dashboard's history reaches back, in minutes: lane minutes
/// are kept for a day.
pub const MAX_HISTORY_MINUTES: u32 = 24 * 60;

/// A stored JSON column that does not read back as its type.
pub(crate) fn corrupt(column: &str) -> impl Fn(serde_json::Error) -> crate::store::StoreError + '_ {
    move |err| crate::store::StoreError::Corrupt(format!("{column}: {err}"))
}

#[async_trait]
pub trait AdminStore {
    /// Appends an entry to the audit log.
    async fn record_audit(&self, entry: &NewAudit) -> Result<()>;

    /// The audit log, newest first: the tenant's entries (its admins' own
    /// actions, and actions on its jobs) for a tenant scope, every entry for
    /// the platform. `before` is the id of the last entry of the previous page.
    async fn audit_log(&self, scope: &Scope, before: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>>;

    /// Stores a new session under the hash of its cookie's secret.
    async fn create_session(&self, id_hash: &str, session: &Session) -> Result<()>;

    /// The session, if it exists and has not expired.
    async fn session(&self, id_hash: &str) -> Result<Option<Session>>;

    /// Ends a session, and forgets every expired one.
    async fn delete_session(&self, id_hash: &str) -> Result<()>;

    /// Records that a worker instance is alive, with what it runs now.
    async fn report_worker(&self, worker: &WorkerPresence) -> Result<()>;

    /// Removes a worker instance that is stopping, and those not seen for a
    /// day.
    async fn remove_worker(&self, id: &str) -> Result<()>;

    /// Worker instances seen within `seen_within`, by id.
    async fn workers(&self, seen_within: Duration) -> Result<Vec<WorkerPresence>>;

    /// Jobs finished and failed per lane and minute over the last `minutes`
    /// (at most a day), oldest first, of the jobs `scope` sees (a tenant's
    /// own, or all for the platform). Minutes with nothing are left out.
    async fn lane_history(&self, scope: &Scope, minutes: u32) -> Result<Vec<LaneMinute>>;

    /// Deletes the jobs of `ids` that are in scope and dead, failed or
    /// cancelled, with their queue rows. Returns the ids it deleted. Other
    /// jobs are left alone: queued and running ones must be cancelled first,
    /// and succeeded ones keep their artifacts until retention prunes them.
    async fn delete_jobs(&self, scope: &Scope, ids: &[Uuid]) -> Result<Vec<Uuid>>;
}

pub(crate) fn audit_from_row(row: &impl Columns) -> Result<AuditEntry> {
    from_row!(row => AuditEntry {
        id, at, tenant_id, actor, role, action, target, subject_tenant, detail, source_ip, user_agent,
    })
}

pub(crate) fn worker_from_row(row: &impl Columns) -> Result<WorkerPresence> {
    from_row!(row => WorkerPresence {
        id, host, version, lanes: row.json_as("lanes")?, running: row.json_as("running")?, started_at, seen_at,
    })
}
