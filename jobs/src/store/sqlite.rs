//! The SQLite backend: the embedded default of `longhaul up`.
//!
//! SQLite has one writer at a time, so a claim is a single
//! `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING` statement: it runs under
//! the database's write lock, and two claimers (threads or processes) can never
//! take the same row. Multi-statement writes use `BEGIN IMMEDIATE`, which takes
//! the write lock up front instead of failing with SQLITE_BUSY when a reader
//! tries to upgrade. Times are stored as milliseconds since the epoch.

use super::{
    job_from_row, jobs_from_rows,
    records::{self, JOB_COLUMNS},
    sql::SqlStore,
};
use std::{str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous},
    QueryBuilder, Row, Sqlite, SqlitePool,
};
use uuid::Uuid;

use super::{
    error_entry, event_payload, event_type, parse_enum, Artifact, AttemptRef, CancelOutcome, ClaimRequest, Claimed,
    Completion, InsertOutcome, JobFilter, JobStore, LaneStats, LeaseState, OutboxEvent, Outcome, ReapReport, Result,
    StoreError, Wakeups,
};
use crate::model::{Job, Lane, NewJob, Scope, Status};

/// SQLite allows 32,766 bound parameters per statement; 14 per row.
const INSERT_CHUNK: usize = 2_000;

/// A job whose run_at is at most this far ahead counts as due on arrival and
/// joins its tenant's chain of fair tags (the PostgreSQL backend's
/// `DUE_HORIZON`).
const DUE_SLACK_MS: i64 = 5_000;

/// SQL true for a tenant id not reserved for the platform: only those are
/// held to a share.
const UNRESERVED_TENANT: &str = "substr(tenant_id, 1, 1) <> '_'";

const LEASE_EXPIRED: &str = "lease expired: the worker stopped heartbeating (it crashed, or lost the database)";

pub struct SqliteStore {
    pool: SqlitePool,
    wakeups: Arc<Wakeups>,
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn time(value: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(value)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {value} is out of range")))
}

/// `UPDATE jobs SET …` to a fresh start: queued, due now, no attempt spent,
/// no result, and the fence moved on (so nothing from before can commit).
/// The caller adds which jobs (admin retry, redrive).
fn start_over() -> QueryBuilder<'static, Sqlite> {
    let now = now_ms();
    let mut query =
        QueryBuilder::new("UPDATE jobs SET status = 'queued', attempts = 0, generation = generation + 1, run_at = ");
    query.push_bind(now);
    query.push(
        ", result = NULL, progress = 0, finished_at = NULL, cancel_requested_at = NULL, lease_until = NULL, \
         locked_by = NULL, updated_at = ",
    );
    query.push_bind(now);
    query
}

pub(crate) fn json(text: &str, column: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt(format!("{column} is not JSON: {err}")))
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<SqliteStore> {
        let in_memory = url.contains(":memory:");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable against process crashes; only an OS crash
            // can lose the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists once per connection.
            .max_connections(if in_memory { 1 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool, wakeups: Arc::new(Wakeups::default()) })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

pub(crate) fn push_scope(query: &mut QueryBuilder<'_, Sqlite>, scope: &Scope) {
    match scope {
        Scope::Platform => {}
        Scope::Tenant { tenant_id } => {
            query.push(" AND tenant_id = ").push_bind(tenant_id.clone());
        }
        Scope::User { tenant_id, user_id } => {
            query.push(" AND tenant_id = ").push_bind(tenant_id.clone());
            query.push(" AND user_id = ").push_bind(user_id.clone());
        }
    }
}

/// Appends `{attempt, at, error}` to a stored `errors` array.
fn append_error(errors: &str, attempt: i32, error: &str) -> Result<String> {
    let mut history = json(errors, "errors")?;
    let entry = error_entry(attempt, Utc::now(), error);
    match history.as_array_mut() {
        Some(entries) => entries.push(entry),
        None => history = serde_json::Value::Array(vec![entry]),
    }
    Ok(history.to_string())
}

/// Writes the event that announces a job row's new status, if its kind and
/// status have one, in the caller's transaction. `row` carries id, tenant_id,
/// user_id, kind, status, attempts and error. Returns how many were written.
async fn insert_job_event(tx: &mut sqlx::SqliteConnection, row: &SqliteRow, now: i64) -> Result<u32> {
    let kind: crate::JobKind = parse_enum(row.try_get::<&str, _>("kind")?, "kind")?;
    let status: Status = parse_enum(row.try_get::<&str, _>("status")?, "status")?;
    let Some(event_type) = event_type(status).filter(|_| kind.emits_events()) else {
        return Ok(0);
    };
    let id: &str = row.try_get("id")?;
    let tenant_id: &str = row.try_get("tenant_id")?;
    let payload = event_payload(
        Uuid::parse_str(id).map_err(|err| StoreError::Corrupt(format!("job id `{id}`: {err}")))?,
        tenant_id,
        row.try_get("user_id")?,
        kind.as_str(),
        status.as_str(),
        row.try_get("attempts")?,
        row.try_get("error")?,
        time(now)?,
    );
    sqlx::query("INSERT INTO outbox (tenant_id, event_type, payload, created_at) VALUES (?, ?, ?, ?)")
        .bind(tenant_id)
        .bind(event_type)
        .bind(payload.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(1)
}

/// A job joining the queue, for its fair tag: its lane, tenant and run_at.
struct Arrival<'a> {
    lane: Lane,
    tenant_id: &'a str,
    run_at: i64,
}

/// The fair tags (see the PostgreSQL migration 0011), in microseconds, of
/// jobs joining the queue, in their order; moves each tenant's chain on.
/// Runs inside the caller's write transaction, so nobody tags in between.
async fn fair_tags(tx: &mut sqlx::SqliteConnection, arrivals: &[Arrival<'_>], now: i64) -> Result<Vec<i64>> {
    fair_tags_from(tx, arrivals, now, std::collections::HashMap::new()).await
}

/// [`fair_tags`], with the fronts of some lanes already read (before the
/// jobs being tagged joined the queue, whose old tags would skew them).
async fn fair_tags_from(
    tx: &mut sqlx::SqliteConnection,
    arrivals: &[Arrival<'_>],
    now: i64,
    mut fronts: std::collections::HashMap<Lane, i64>,
) -> Result<Vec<i64>> {
    // The next tag of each (lane, tenant) chain that this batch extends.
    let mut chains: std::collections::HashMap<(Lane, &str), i64> = std::collections::HashMap::new();
    let mut tags = Vec::with_capacity(arrivals.len());
    for arrival in arrivals {
        let front = match fronts.get(&arrival.lane) {
            Some(front) => *front,
            None => {
                let front = lane_front(tx, arrival.lane, now).await?;
                fronts.insert(arrival.lane, front);
                front
            }
        };
        if arrival.run_at > now + DUE_SLACK_MS {
            // Delayed: queues as if it arrived at its run_at.
            tags.push((arrival.run_at * 1000).max(front));
            continue;
        }
        let key = (arrival.lane, arrival.tenant_id);
        let next = match chains.get(&key) {
            Some(next) => *next,
            None => {
                let last: Option<i64> =
                    sqlx::query_scalar("SELECT fair_at FROM tenant_lanes WHERE lane = ?1 AND tenant_id = ?2")
                        .bind(arrival.lane.as_str())
                        .bind(arrival.tenant_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .flatten();
                last.map_or(front, |last| (last + 1).max(front))
            }
        };
        tags.push(next);
        chains.insert(key, next + 1);
    }
    for ((lane, tenant_id), next) in chains {
        sqlx::query(
            "INSERT INTO tenant_lanes (lane, tenant_id, fair_at, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (lane, tenant_id) DO UPDATE \
             SET fair_at = max(coalesce(tenant_lanes.fair_at, 0), excluded.fair_at), updated_at = excluded.updated_at",
        )
        .bind(lane.as_str())
        .bind(tenant_id)
        .bind(next - 1)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(tags)
}

/// The lane's front, in microseconds: the smallest fair tag of a due job
/// waiting in `lane`, or now. One probe of the claim index per priority.
async fn lane_front(tx: &mut sqlx::SqliteConnection, lane: Lane, now: i64) -> Result<i64> {
    let front: Option<i64> = sqlx::query_scalar(
        "WITH RECURSIVE p(priority) AS (SELECT ?3 UNION ALL SELECT priority + 1 FROM p WHERE priority < ?4) \
         SELECT min((SELECT fair_at FROM jobs WHERE lane = ?1 AND status = 'queued' AND priority = p.priority \
           AND run_at <= ?2 ORDER BY fair_at LIMIT 1)) FROM p",
    )
    .bind(lane.as_str())
    .bind(now)
    .bind(crate::model::PRIORITY_MIN)
    .bind(crate::model::PRIORITY_MAX)
    .fetch_one(&mut *tx)
    .await?;
    Ok(front.unwrap_or(now * 1000))
}

/// Puts restarted jobs (an admin's retry or redrive, already `queued`) back
/// in line as new arrivals of their tenants, behind the front of `lane` as
/// it was before they were restarted (`front`, from [`lane_front`]).
async fn retag(tx: &mut sqlx::SqliteConnection, rows: &[SqliteRow], lane: Lane, front: i64, now: i64) -> Result<()> {
    let mut arrivals = Vec::with_capacity(rows.len());
    for row in rows {
        arrivals.push(Arrival {
            lane: parse_enum(row.try_get::<&str, _>("lane")?, "lane")?,
            tenant_id: row.try_get("tenant_id")?,
            run_at: now,
        });
    }
    let tags = fair_tags_from(tx, &arrivals, now, [(lane, front)].into()).await?;
    for (row, tag) in rows.iter().zip(tags) {
        sqlx::query("UPDATE jobs SET fair_at = ?1 WHERE id = ?2")
            .bind(tag)
            .bind(row.try_get::<&str, _>("id")?)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl JobStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn wakeups(&self) -> &Arc<Wakeups> {
        &self.wakeups
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        records::ping(self.db()).await
    }

    async fn insert_job(&self, job: NewJob) -> Result<InsertOutcome> {
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let arrival = Arrival { lane: job.kind.lane(), tenant_id: &job.tenant_id, run_at: ms(job.run_at) };
        let tags = fair_tags(&mut tx, &[arrival], now).await?;
        let sql = format!(
            "INSERT INTO jobs (id, tenant_id, user_id, kind, lane, status, payload, max_attempts, priority, \
             run_at, idempotency_key, request_hash, traceparent, created_at, updated_at, fair_at) \
             VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
             RETURNING {JOB_COLUMNS}"
        );
        let inserted = sqlx::query(&sql)
            .bind(job.id.to_string())
            .bind(&job.tenant_id)
            .bind(&job.user_id)
            .bind(job.kind.as_str())
            .bind(job.kind.lane().as_str())
            .bind(job.payload.to_string())
            .bind(job.max_attempts)
            .bind(job.priority)
            .bind(ms(job.run_at))
            .bind(&job.idempotency_key)
            .bind(&job.request_hash)
            .bind(&job.traceparent)
            .bind(now)
            .bind(now)
            .bind(tags.first().copied().unwrap_or(now * 1000))
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        if let Some(row) = inserted {
            let created = job_from_row(&row)?;
            self.wakeups.notify(created.lane);
            return Ok(InsertOutcome::Created(created));
        }
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = ? AND user_id = ? AND idempotency_key = ?");
        let row = sqlx::query(&sql)
            .bind(&job.tenant_id)
            .bind(&job.user_id)
            .bind(&job.idempotency_key)
            .fetch_one(&self.pool)
            .await?;
        let existing = job_from_row(&row)?;
        Ok(if existing.request_hash == job.request_hash {
            InsertOutcome::Existing(existing)
        } else {
            InsertOutcome::Conflict(existing)
        })
    }

    async fn insert_jobs(&self, jobs: &[NewJob]) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let arrivals: Vec<Arrival<'_>> = jobs
            .iter()
            .map(|job| Arrival { lane: job.kind.lane(), tenant_id: &job.tenant_id, run_at: ms(job.run_at) })
            .collect();
        let tags = fair_tags(&mut tx, &arrivals, now).await?;
        let mut inserted = 0;
        for (chunk, tags) in jobs.chunks(INSERT_CHUNK).zip(tags.chunks(INSERT_CHUNK)) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO jobs (id, tenant_id, user_id, kind, lane, status, payload, max_attempts, priority, \
                 run_at, traceparent, created_at, updated_at, fair_at) ",
            );
            query.push_values(chunk.iter().zip(tags), |mut row, (job, tag)| {
                row.push_bind(job.id.to_string())
                    .push_bind(job.tenant_id.clone())
                    .push_bind(job.user_id.clone())
                    .push_bind(job.kind.as_str())
                    .push_bind(job.kind.lane().as_str())
                    .push_bind("queued")
                    .push_bind(job.payload.to_string())
                    .push_bind(job.max_attempts)
                    .push_bind(job.priority)
                    .push_bind(ms(job.run_at))
                    .push_bind(job.traceparent.clone())
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(*tag);
            });
            inserted += query.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        for job in jobs {
            self.wakeups.notify(job.kind.lane());
        }
        Ok(inserted)
    }

    async fn get_job(&self, scope: &Scope, id: Uuid) -> Result<Option<Job>> {
        records::get_job(self.db(), scope, id).await
    }

    async fn list_jobs(&self, scope: &Scope, filter: &JobFilter) -> Result<Vec<Job>> {
        records::list_jobs(self.db(), scope, filter).await
    }

    async fn cancel_job(&self, scope: &Scope, id: Uuid) -> Result<Option<CancelOutcome>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut query = QueryBuilder::new("SELECT status FROM jobs WHERE id = ");
        query.push_bind(id.to_string());
        push_scope(&mut query, scope);
        let Some(row) = query.build().fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let old: Status = parse_enum(row.try_get::<&str, _>("status")?, "status")?;
        let now = now_ms();
        let sql = match old {
            Status::Queued => {
                "UPDATE jobs SET status = 'cancelled', finished_at = ?1, error = 'cancelled before it ran', \
                 cancel_requested_at = coalesce(cancel_requested_at, ?1), updated_at = ?1 WHERE id = ?2"
            }
            Status::Running => {
                "UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, ?1), updated_at = ?1 WHERE id = ?2"
            }
            _ => "SELECT ?1, ?2",
        };
        sqlx::query(sql).bind(now).bind(id.to_string()).execute(&mut *tx).await?;
        let select = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?");
        let job = job_from_row(&sqlx::query(&select).bind(id.to_string()).fetch_one(&mut *tx).await?)?;
        tx.commit().await?;
        if old == Status::Running {
            self.wakeups.notify_cancel();
        }
        Ok(Some(match old {
            Status::Queued => CancelOutcome::Cancelled(job),
            Status::Running => CancelOutcome::Requested(job),
            _ => CancelOutcome::AlreadyFinal(job),
        }))
    }

    async fn retry_job(&self, scope: &Scope, id: Uuid) -> Result<Option<Job>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let lane: Option<String> = sqlx::query_scalar("SELECT lane FROM jobs WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(lane) = lane else {
            return Ok(None);
        };
        let lane: Lane = parse_enum(&lane, "lane")?;
        let now = now_ms();
        let front = lane_front(&mut tx, lane, now).await?;
        let mut query = start_over();
        query.push(" WHERE status IN ('dead', 'failed', 'cancelled') AND id = ");
        query.push_bind(id.to_string());
        push_scope(&mut query, scope);
        query.push(format!(" RETURNING {JOB_COLUMNS}"));
        let Some(row) = query.build().fetch_optional(&mut *tx).await? else {
            drop(tx);
            return self.get_job(scope, id).await;
        };
        retag(&mut tx, std::slice::from_ref(&row), lane, front, now).await?;
        tx.commit().await?;
        let job = job_from_row(&row)?;
        self.wakeups.notify(job.lane);
        Ok(Some(job))
    }

    async fn claim_within(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>> {
        let ClaimRequest { lane, max, lease, worker_id, tenant_cap } = *request;
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        // As on PostgreSQL: fair order, paused tenants skipped, at most
        // `cap - running` jobs of each tenant (reserved tenants uncapped).
        let sql = format!(
            "WITH running AS ( \
               SELECT tenant_id, count(*) AS n FROM jobs WHERE lane = ?4 AND status = 'running' GROUP BY tenant_id), \
             picked AS ( \
               SELECT id, tenant_id, \
                 row_number() OVER (PARTITION BY tenant_id ORDER BY priority DESC, fair_at, id) AS rank \
               FROM (SELECT id, tenant_id, priority, fair_at FROM jobs \
                 WHERE lane = ?4 AND status = 'queued' AND run_at <= ?3 \
                   AND NOT EXISTS (SELECT 1 FROM lanes WHERE lanes.lane = ?4 AND lanes.paused) \
                   AND tenant_id NOT IN (SELECT tenant_id FROM tenant_lanes t WHERE t.lane = ?4 AND t.paused) \
                   AND tenant_id NOT IN (SELECT tenant_id FROM running WHERE n >= ?6 AND {unreserved}) \
                 ORDER BY priority DESC, fair_at, id LIMIT ?5)) \
             UPDATE jobs SET status = 'running', attempts = attempts + 1, generation = generation + 1, \
               lease_until = ?1, locked_by = ?2, started_at = ?3, updated_at = ?3 \
             WHERE id IN ( \
               SELECT p.id FROM picked p LEFT JOIN running r ON r.tenant_id = p.tenant_id \
               WHERE NOT ({unreserved_p}) OR p.rank + coalesce(r.n, 0) <= ?6) \
             RETURNING {JOB_COLUMNS}",
            unreserved = UNRESERVED_TENANT,
            unreserved_p = UNRESERVED_TENANT.replace("tenant_id", "p.tenant_id"),
        );
        let rows = sqlx::query(&sql)
            .bind(now + duration_ms(lease))
            .bind(worker_id)
            .bind(now)
            .bind(lane.as_str())
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(tenant_cap.map_or(i64::MAX, i64::from))
            .fetch_all(&self.pool)
            .await?;
        jobs_from_rows(&rows)
    }

    async fn heartbeat(&self, attempts: &[AttemptRef], lease: Duration) -> Result<Vec<LeaseState>> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut states = Vec::with_capacity(attempts.len());
        for attempt in attempts {
            let row = sqlx::query(
                "UPDATE jobs SET lease_until = ?1, updated_at = ?2 \
                 WHERE id = ?3 AND generation = ?4 AND status = 'running' AND lease_until > ?2 \
                 RETURNING cancel_requested_at IS NOT NULL AS cancel_requested",
            )
            .bind(now + duration_ms(lease))
            .bind(now)
            .bind(attempt.id.to_string())
            .bind(attempt.generation)
            .fetch_optional(&mut *tx)
            .await?;
            states.push(match row {
                Some(row) => {
                    LeaseState { attempt: *attempt, held: true, cancel_requested: row.try_get("cancel_requested")? }
                }
                None => LeaseState { attempt: *attempt, held: false, cancel_requested: false },
            });
        }
        tx.commit().await?;
        Ok(states)
    }

    async fn complete(&self, completions: &[Completion]) -> Result<Vec<AttemptRef>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut committed = Vec::with_capacity(completions.len());
        let mut events = 0;
        // Fenced: the attempt must still be ours, running, with a live lease.
        let fence = "WHERE id = ?1 AND generation = ?2 AND status = 'running' AND lease_until > ?3 \
                     RETURNING id, tenant_id, user_id, kind, status, attempts, error";
        for completion in completions {
            let AttemptRef { id, generation } = completion.attempt;
            let done = match &completion.outcome {
                Outcome::Succeeded { result, .. } => {
                    sqlx::query(&format!(
                        "UPDATE jobs SET status = 'succeeded', result = ?4, error = NULL, progress = 100, \
                         lease_until = NULL, locked_by = NULL, updated_at = ?3, finished_at = ?3 {fence}"
                    ))
                    .bind(id.to_string())
                    .bind(generation)
                    .bind(now)
                    .bind(result.as_ref().map(|value| value.to_string()))
                    .fetch_optional(&mut *tx)
                    .await?
                }
                Outcome::Cancelled { reason } => {
                    sqlx::query(&format!(
                        "UPDATE jobs SET status = 'cancelled', error = ?4, lease_until = NULL, locked_by = NULL, \
                         updated_at = ?3, finished_at = ?3 {fence}"
                    ))
                    .bind(id.to_string())
                    .bind(generation)
                    .bind(now)
                    .bind(reason)
                    .fetch_optional(&mut *tx)
                    .await?
                }
                Outcome::Retry { error, .. } | Outcome::Dead { error } => {
                    let Some(row) = sqlx::query(
                        "SELECT errors, attempts FROM jobs WHERE id = ?1 AND generation = ?2 \
                         AND status = 'running' AND lease_until > ?3",
                    )
                    .bind(id.to_string())
                    .bind(generation)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?
                    else {
                        continue;
                    };
                    let errors = append_error(row.try_get("errors")?, row.try_get("attempts")?, error)?;
                    let (status, run_at, finished_at) = match &completion.outcome {
                        Outcome::Retry { run_at, .. } => ("queued", Some(ms(*run_at)), None),
                        _ => ("dead", None, Some(now)),
                    };
                    sqlx::query(&format!(
                        "UPDATE jobs SET status = ?4, error = ?5, errors = ?6, run_at = coalesce(?7, run_at), \
                         fair_at = max(fair_at, coalesce(?7 * 1000, 0)), \
                         finished_at = ?8, lease_until = NULL, locked_by = NULL, updated_at = ?3 {fence}"
                    ))
                    .bind(id.to_string())
                    .bind(generation)
                    .bind(now)
                    .bind(status)
                    .bind(error)
                    .bind(errors)
                    .bind(run_at)
                    .bind(finished_at)
                    .fetch_optional(&mut *tx)
                    .await?
                }
            };
            if let Some(row) = done {
                committed.push(completion.attempt);
                events += insert_job_event(&mut tx, &row, now).await?;
                if let Outcome::Succeeded { artifacts, .. } = &completion.outcome {
                    for artifact in artifacts {
                        sqlx::query(
                            "INSERT INTO artifacts (id, job_id, tenant_id, user_id, name, content_type, object_key, \
                             size_bytes, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        )
                        .bind(artifact.id.to_string())
                        .bind(id.to_string())
                        .bind(row.try_get::<&str, _>("tenant_id")?)
                        .bind(row.try_get::<&str, _>("user_id")?)
                        .bind(&artifact.name)
                        .bind(&artifact.content_type)
                        .bind(&artifact.object_key)
                        .bind(artifact.size_bytes)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
        }
        tx.commit().await?;
        if events > 0 {
            self.wakeups.notify_outbox();
        }
        Ok(committed)
    }

    async fn release(&self, attempts: &[AttemptRef]) -> Result<u64> {
        if attempts.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut released = 0;
        let mut lanes = Vec::new();
        for attempt in attempts {
            let row = sqlx::query(
                "UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_at = ?1, lease_until = NULL, \
                 locked_by = NULL, updated_at = ?1 WHERE id = ?2 AND generation = ?3 AND status = 'running' \
                 RETURNING lane",
            )
            .bind(now)
            .bind(attempt.id.to_string())
            .bind(attempt.generation)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = row {
                released += 1;
                lanes.push(parse_enum::<Lane>(row.try_get::<&str, _>("lane")?, "lane")?);
            }
        }
        tx.commit().await?;
        for lane in lanes {
            self.wakeups.notify(lane);
        }
        Ok(released)
    }

    async fn set_progress(&self, attempt: AttemptRef, progress: i16) -> Result<bool> {
        records::set_progress(self.db(), attempt, progress).await
    }

    async fn reap_expired(&self) -> Result<ReapReport> {
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(
            "SELECT id, attempts, max_attempts, errors, lane FROM jobs WHERE status = 'running' AND lease_until < ?",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut report = ReapReport::default();
        let mut lanes = Vec::new();
        let mut events = 0;
        for row in &rows {
            let attempts: i32 = row.try_get("attempts")?;
            let dead = attempts >= row.try_get::<i32, _>("max_attempts")?;
            let errors = append_error(row.try_get("errors")?, attempts, "lease expired")?;
            let reaped = sqlx::query(
                "UPDATE jobs SET status = ?1, error = ?2, errors = ?3, finished_at = ?4, run_at = ?5, \
                 lease_until = NULL, locked_by = NULL, updated_at = ?5 WHERE id = ?6 \
                 RETURNING id, tenant_id, user_id, kind, status, attempts, error",
            )
            .bind(if dead { "dead" } else { "queued" })
            .bind(LEASE_EXPIRED)
            .bind(errors)
            .bind(dead.then_some(now))
            .bind(now)
            .bind(row.try_get::<&str, _>("id")?)
            .fetch_one(&mut *tx)
            .await?;
            events += insert_job_event(&mut tx, &reaped, now).await?;
            if dead {
                report.dead += 1;
            } else {
                report.requeued += 1;
                lanes.push(parse_enum::<Lane>(row.try_get::<&str, _>("lane")?, "lane")?);
            }
        }
        tx.commit().await?;
        for lane in lanes {
            self.wakeups.notify(lane);
        }
        if events > 0 {
            self.wakeups.notify_outbox();
        }
        Ok(report)
    }

    async fn set_lane_paused(&self, lane: Lane, paused: bool) -> Result<()> {
        records::set_lane_paused(self.db(), lane, paused).await?;
        if !paused {
            self.wakeups.notify(lane);
        }
        Ok(())
    }

    async fn lane_paused(&self, lane: Lane) -> Result<bool> {
        records::lane_paused(self.db(), lane).await
    }

    async fn set_tenant_lane_paused(&self, tenant_id: &str, lane: Lane, paused: bool, by: &str) -> Result<()> {
        records::set_tenant_lane_paused(self.db(), tenant_id, lane, paused, by).await?;
        if !paused {
            self.wakeups.notify(lane);
        }
        Ok(())
    }

    async fn lane_stats(&self, scope: &Scope) -> Result<Vec<LaneStats>> {
        let now = now_ms();
        let tenant = match scope {
            Scope::Platform => None,
            Scope::Tenant { tenant_id } | Scope::User { tenant_id, .. } => Some(tenant_id.as_str()),
        };
        let mut stats = Vec::with_capacity(Lane::ALL.len());
        for lane in Lane::ALL {
            let row = sqlx::query(
                "SELECT \
                   (SELECT count(*) FROM jobs WHERE lane = ?1 AND status = 'queued' AND run_at <= ?2 \
                      AND (?3 IS NULL OR tenant_id = ?3)) AS depth, \
                   (SELECT count(*) FROM jobs WHERE lane = ?1 AND status = 'queued' AND run_at > ?2 \
                      AND (?3 IS NULL OR tenant_id = ?3)) AS delayed, \
                   (SELECT count(*) FROM jobs WHERE lane = ?1 AND status = 'running' \
                      AND (?3 IS NULL OR tenant_id = ?3)) AS in_flight, \
                   (SELECT count(*) FROM jobs WHERE lane = ?1 AND status = 'dead' \
                      AND (?3 IS NULL OR tenant_id = ?3)) AS dead, \
                   (SELECT min(run_at) FROM jobs WHERE lane = ?1 AND status = 'queued' AND run_at <= ?2 \
                      AND (?3 IS NULL OR tenant_id = ?3)) AS oldest, \
                   (SELECT count(*) FROM jobs WHERE lane = ?1 AND finished_at > ?2 - 300000 \
                      AND (?3 IS NULL OR tenant_id = ?3)) AS throughput, \
                   coalesce((SELECT paused FROM lanes WHERE lanes.lane = ?1), 0) AS paused, \
                   CASE WHEN ?3 IS NULL THEN NULL ELSE coalesce((SELECT paused FROM tenant_lanes t \
                      WHERE t.lane = ?1 AND t.tenant_id = ?3), 0) END AS tenant_paused",
            )
            .bind(lane.as_str())
            .bind(now)
            .bind(tenant)
            .fetch_one(&self.pool)
            .await?;
            let oldest: Option<i64> = row.try_get("oldest")?;
            stats.push(LaneStats {
                lane,
                depth: row.try_get("depth")?,
                delayed: row.try_get("delayed")?,
                in_flight: row.try_get("in_flight")?,
                dead: row.try_get("dead")?,
                oldest_age_seconds: oldest.map(|oldest| (now - oldest).max(0) as f64 / 1000.0).unwrap_or(0.0),
                throughput_5m: row.try_get("throughput")?,
                paused: row.try_get("paused")?,
                tenant_paused: row.try_get("tenant_paused")?,
            });
        }
        Ok(stats)
    }

    async fn try_lead(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        records::try_lead(self.db(), name, holder, ttl).await
    }

    async fn resign(&self, name: &str, holder: &str) -> Result<()> {
        records::resign(self.db(), name, holder).await
    }

    async fn prune_finished(&self, age: Duration) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
               WHERE finished_at < ? AND status IN ('succeeded', 'cancelled') LIMIT 10000)",
        )
        .bind(now_ms() - duration_ms(age))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn claim_outbox(&self, max: usize, lease: Duration) -> Result<Vec<OutboxEvent>> {
        let now = now_ms();
        let rows = sqlx::query(
            "UPDATE outbox SET lease_until = ?1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox WHERE lease_until IS NULL OR lease_until < ?2 ORDER BY id LIMIT ?3) \
             RETURNING id, tenant_id, event_type, payload",
        )
        .bind(now + duration_ms(lease))
        .bind(now)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows
            .iter()
            .map(|row| {
                Ok(OutboxEvent {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    event_type: row.try_get("event_type")?,
                    payload: json(row.try_get("payload")?, "payload")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        events.sort_by_key(|event| event.id);
        Ok(events)
    }

    async fn delete_outbox(&self, ids: &[i64]) -> Result<u64> {
        records::delete_outbox(self.db(), ids).await
    }

    async fn job_artifacts(&self, job_ids: &[Uuid]) -> Result<Vec<Artifact>> {
        records::job_artifacts(self.db(), job_ids).await
    }

    async fn get_artifact(&self, scope: &Scope, id: Uuid) -> Result<Option<Artifact>> {
        records::get_artifact(self.db(), scope, id).await
    }

    async fn redrive(&self, scope: &Scope, lane: Lane, only: Option<&[Uuid]>) -> Result<Vec<Uuid>> {
        let mut query = start_over();
        query.push(" WHERE status = 'dead' AND lane = ");
        query.push_bind(lane.as_str());
        if let Some(ids) = only {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            query.push(" AND id IN (");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(id.to_string());
            }
            query.push(")");
        }
        push_scope(&mut query, scope);
        query.push(" RETURNING id, lane, tenant_id");
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = now_ms();
        let front = lane_front(&mut tx, lane, now).await?;
        let rows = query.build().fetch_all(&mut *tx).await?;
        retag(&mut tx, &rows, lane, front, now).await?;
        tx.commit().await?;
        if !rows.is_empty() {
            self.wakeups.notify(lane);
        }
        rows.iter()
            .map(|row| {
                let id: &str = row.try_get("id")?;
                Uuid::parse_str(id).map_err(|err| StoreError::Corrupt(format!("job id `{id}`: {err}")))
            })
            .collect()
    }
}
