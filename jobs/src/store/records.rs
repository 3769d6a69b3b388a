//! The operations of the [`JobStore`](super::JobStore) port whose SQL is the
//! same on both databases (see `store::sql`), written once: reading jobs
//! and artifacts, a running job's progress, leader leases, lane pauses and
//! published events. Each backend's `JobStore` hands these to this module;
//! what it keeps is its queue (inserting, claiming, leasing, completing,
//! reaping), which is a different algorithm on each.

use std::time::Duration;

use uuid::Uuid;

use super::{
    artifact_from_row, job_from_row,
    sql::{Db, Exec},
    Artifact, AttemptRef, Columns, JobFilter, Result, ARTIFACT_COLUMNS,
};
use crate::model::{Job, Lane, Scope};

pub(crate) const JOB_COLUMNS: &str = "id, tenant_id, user_id, kind, lane, status, payload, result, error, errors, \
     attempts, generation, max_attempts, priority, progress, run_at, lease_until, locked_by, cancel_requested_at, \
     idempotency_key, request_hash, traceparent, created_at, updated_at, started_at, finished_at";

pub(crate) async fn ping(mut db: Db<'_>) -> Result<()> {
    let ping = db.sql("SELECT 1 AS one");
    db.execute(ping).await?;
    Ok(())
}

pub(crate) async fn get_job(mut db: Db<'_>, scope: &Scope, id: Uuid) -> Result<Option<Job>> {
    let mut select = db.sql(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = "));
    select.push_bind(id).push_scope(scope);
    db.maybe(select, job_from_row).await
}

pub(crate) async fn list_jobs(mut db: Db<'_>, scope: &Scope, filter: &JobFilter) -> Result<Vec<Job>> {
    let mut select = db.sql(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE true"));
    select.push_scope(scope);
    if let (Scope::Platform, Some(tenant_id)) = (scope, &filter.tenant_id) {
        select.push(" AND tenant_id = ").push_bind(tenant_id);
    }
    if let Some(status) = filter.status {
        select.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(kind) = filter.kind {
        select.push(" AND kind = ").push_bind(kind.as_str());
    }
    if let Some(lane) = filter.lane {
        select.push(" AND lane = ").push_bind(lane.as_str());
    }
    if filter.delayed {
        select.push(" AND status = 'queued' AND run_at > now()");
    }
    if let Some(before) = filter.before {
        // UUIDv7s sort by time; so does their hyphenated lower-case text.
        select.push(" AND id < ").push_bind(before);
    }
    select.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(filter.limit.max(1)));
    db.all(select, job_from_row).await
}

pub(crate) async fn set_progress(mut db: Db<'_>, attempt: AttemptRef, progress: i16) -> Result<bool> {
    let update = db
        .sql(
            "UPDATE jobs SET progress = $3, updated_at = now() \
             WHERE id = $1 AND generation = $2 AND status = 'running' AND lease_until > now() AND progress <> $3",
        )
        .bind(attempt.id)
        .bind(attempt.generation)
        .bind(progress.clamp(0, 100));
    Ok(db.execute(update).await? == 1)
}

/// Pauses or resumes a lane for everyone; the backend wakes its pools.
pub(crate) async fn set_lane_paused(mut db: Db<'_>, lane: Lane, paused: bool) -> Result<()> {
    let upsert = db
        .sql(
            "INSERT INTO lanes (lane, paused, updated_at) VALUES ($1, $2, now()) \
             ON CONFLICT (lane) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
        )
        .bind(lane.as_str())
        .bind(paused);
    db.execute(upsert).await?;
    Ok(())
}

/// Pauses or resumes one tenant's jobs in a lane; the backend wakes its
/// pools.
pub(crate) async fn set_tenant_lane_paused(
    mut db: Db<'_>,
    tenant_id: &str,
    lane: Lane,
    paused: bool,
    by: &str,
) -> Result<()> {
    let upsert = db
        .sql(
            "INSERT INTO tenant_lanes (lane, tenant_id, paused, paused_by, updated_at) VALUES ($1, $2, $3, $4, now()) \
             ON CONFLICT (lane, tenant_id) DO UPDATE SET paused = excluded.paused, paused_by = excluded.paused_by, \
               updated_at = excluded.updated_at",
        )
        .bind(lane.as_str())
        .bind(tenant_id)
        .bind(paused)
        .bind(by);
    db.execute(upsert).await?;
    Ok(())
}

pub(crate) async fn lane_paused(mut db: Db<'_>, lane: Lane) -> Result<bool> {
    let select = db.sql("SELECT paused FROM lanes WHERE lane = $1").bind(lane.as_str());
    Ok(db.maybe(select, |row| row.get::<bool>("paused")).await?.unwrap_or(false))
}

pub(crate) async fn try_lead(mut db: Db<'_>, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
    let dialect = db.dialect();
    let lead = db
        .sql(&format!(
            "INSERT INTO leader_leases (name, holder, lease_until) VALUES ($1, $2, {}) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until \
             WHERE leader_leases.holder = excluded.holder OR leader_leases.lease_until < now() \
             RETURNING holder",
            dialect.later("$3")
        ))
        .bind(name)
        .bind(holder)
        .bind(dialect.span(ttl));
    Ok(db.optional(lead).await?.is_some())
}

pub(crate) async fn resign(mut db: Db<'_>, name: &str, holder: &str) -> Result<()> {
    let delete = db.sql("DELETE FROM leader_leases WHERE name = $1 AND holder = $2").bind(name).bind(holder);
    db.execute(delete).await?;
    Ok(())
}

pub(crate) async fn delete_outbox(mut db: Db<'_>, ids: &[i64]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut delete = db.sql("DELETE FROM outbox WHERE ");
    delete.push_any("id", ids.to_vec());
    db.execute(delete).await
}

pub(crate) async fn job_artifacts(mut db: Db<'_>, job_ids: &[Uuid]) -> Result<Vec<Artifact>> {
    if job_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut select = db.sql(&format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE "));
    select.push_any("job_id", job_ids.to_vec()).push(" ORDER BY id");
    db.all(select, artifact_from_row).await
}

pub(crate) async fn get_artifact(mut db: Db<'_>, scope: &Scope, id: Uuid) -> Result<Option<Artifact>> {
    let mut select = db.sql(&format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE id = "));
    select.push_bind(id).push_scope(scope);
    db.maybe(select, artifact_from_row).await
}
