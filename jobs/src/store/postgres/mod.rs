//! The PostgreSQL backend: production (RDS) and the multi-process embedded queue.
//!
//! Throughput comes from batching: one statement claims a whole batch with
//! `FOR UPDATE SKIP LOCKED`, and one statement commits a whole batch of
//! outcomes through `UNNEST`, so a drain costs two round trips per batch rather
//! than two per job.

mod dispatch;

use super::{
    job_from_row, jobs_from_rows,
    records::{self, JOB_COLUMNS},
    sql::SqlStore,
};
use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{
    postgres::{PgListener, PgPoolOptions, PgRow},
    PgPool, Postgres, QueryBuilder, Row,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    emitting_kinds, parse_enum, Artifact, AttemptRef, CancelOutcome, ClaimRequest, Claimed, Completion, InsertOutcome,
    JobFilter, JobStore, LaneStats, LeaseState, OutboxEvent, Outcome, QueueMode, ReapReport, Result, StoreError,
    Wakeups,
};
use crate::model::{Job, Lane, NewJob, Scope, Status};

/// The channel inserts notify, with the lane as payload.
const NOTIFY_CHANNEL: &str = "longhaul_jobs";
/// The channel cancel requests of running jobs notify.
const CANCEL_CHANNEL: &str = "longhaul_cancels";

/// The outbox values (tenant, type, payload) announcing a job row's new
/// status, selected from a CTE of updated jobs. The payload has the shape of
/// `store::event_payload`, which the SQLite backend builds in Rust.
const JOB_EVENT_VALUES: &str = "tenant_id, \
     CASE status WHEN 'succeeded' THEN 'job.succeeded' WHEN 'queued' THEN 'job.failed' ELSE 'job.dead' END, \
     jsonb_build_object('job_id', id, 'tenant_id', tenant_id, 'user_id', user_id, 'kind', kind, \
       'status', status, 'attempt', attempts, 'error', error, 'at', now())";

/// The dispatch rows for a CTE of jobs that just became `queued` or `dead`
/// (it must have id, lane, tenant_id, generation, status, run_at and
/// traceparent). Each CTE using it filters on the store's dispatch flag.
const DISPATCH_COLUMNS: &str = "dispatch (job_id, lane, tenant_id, attempt, dead_letter, send_at, traceparent)";
const DISPATCH_VALUES: &str = "id, lane, tenant_id, generation, status = 'dead', run_at, traceparent";

/// Rows per statement for bulk inserts: large enough to amortise the round
/// trip, small enough to keep one statement's memory modest.
const INSERT_CHUNK: usize = 10_000;

/// How far apart one tenant's due jobs are chained in fair-tag time. Small
/// enough that a backlog of millions spans seconds, so tags stay close to
/// the wall clock (delayed jobs, tagged with their run_at, interleave
/// sensibly with them).
const FAIR_STEP: &str = "interval '1 microsecond'";

/// A job whose run_at is no later than this counts as due on arrival and
/// joins its tenant's chain. The slack absorbs clock differences between the
/// API's host, which sets run_at, and the database's.
const DUE_HORIZON: &str = "now() + interval '5 seconds'";

/// SQL true for a tenant id that is not reserved for the platform (see
/// `model::is_reserved_tenant`): only those tenants are held to a share.
const UNRESERVED_TENANT: &str = "left(tenant_id, 1) <> '_'";

/// The lane's front, as SQL: the smallest fair tag among the due jobs
/// waiting in lane `lane` (an SQL expression), or now when none waits. One
/// probe of the claim index per priority, rather than a scan of the backlog.
fn lane_front(lane: &str) -> String {
    format!(
        "coalesce((SELECT min(f.tag) FROM generate_series({min}, {max}) AS p(priority), \
           LATERAL (SELECT q.fair_at AS tag FROM job_queue q WHERE q.lane = {lane} AND q.priority = p.priority \
             AND q.lease_until IS NULL AND NOT q.dead AND q.run_at <= now() ORDER BY q.fair_at LIMIT 1) f), now())",
        min = crate::model::PRIORITY_MIN,
        max = crate::model::PRIORITY_MAX,
    )
}

pub struct PgStore {
    pool: PgPool,
    wakeups: Arc<Wakeups>,
    listener: CancellationToken,
    /// Whether jobs that become queued or dead also get a dispatch row.
    dispatch: bool,
}

impl PgStore {
    /// Opens the store for the queue `mode` says (`database::connect` and
    /// `database::connect_dispatch` are the ways in from outside the crate).
    pub(crate) async fn connect_with(url: &str, mode: QueueMode) -> Result<PgStore> {
        let max_connections = match std::env::var("LONGHAUL_DATABASE_MAX_CONNECTIONS") {
            Ok(value) if !value.trim().is_empty() => {
                value.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    StoreError::Config(format!(
                        "LONGHAUL_DATABASE_MAX_CONNECTIONS=`{value}` is invalid: expected a whole number above 0"
                    ))
                })?
            }
            _ => 16,
        };
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let wakeups = Arc::new(Wakeups::default());
        let listener = CancellationToken::new();
        tokio::spawn(listen(pool.clone(), wakeups.clone(), listener.clone()));
        Ok(PgStore { pool, wakeups, listener, dispatch: mode == QueueMode::Dispatch })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn notify_lanes(&self, lanes: impl IntoIterator<Item = Lane>) -> Result<()> {
        let mut lanes: Vec<&str> = lanes.into_iter().map(Lane::as_str).collect();
        lanes.sort_unstable();
        lanes.dedup();
        if lanes.is_empty() {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, lane) FROM unnest($2::text[]) AS lane")
            .bind(NOTIFY_CHANNEL)
            .bind(&lanes)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.cancel();
    }
}

/// Forwards NOTIFYs from other processes to this process's lane pools. When
/// the connection drops it reconnects; meanwhile pools fall back to polling.
async fn listen(pool: PgPool, wakeups: Arc<Wakeups>, stop: CancellationToken) {
    let mut delay = Duration::from_millis(200);
    while !stop.is_cancelled() {
        let listener = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen_all([NOTIFY_CHANNEL, CANCEL_CHANNEL]).await?;
            loop {
                let notification = listener.recv().await?;
                if notification.channel() == CANCEL_CHANNEL {
                    wakeups.notify_cancel();
                } else if let Ok(lane) = notification.payload().parse::<Lane>() {
                    wakeups.notify(lane);
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            outcome = listener => {
                if let Err(err) = outcome {
                    tracing::debug!(error = %err, "job notification listener lost its connection; reconnecting");
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Runs a claim statement of `lane`. Capped claims take turns: each counts
/// the lane's running jobs per tenant and starts up to the cap, so two at
/// once (two claim loops, two workers) would see the same count and together
/// overshoot it. A transaction-scoped advisory lock per lane makes the second
/// wait until the first has committed, and under READ COMMITTED its
/// statement then sees the first one's leases. Uncapped claims (no tenant
/// share configured) need no turn and run side by side.
async fn run_claim(
    pool: &PgPool,
    lane: Lane,
    capped: bool,
    claim: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<Vec<PgRow>> {
    if !capped {
        return Ok(claim.fetch_all(pool).await?);
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('longhaul.claim/' || $1, 0))")
        .bind(lane.as_str())
        .execute(&mut *tx)
        .await?;
    let rows = claim.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Appends the tenant/user condition of `scope` to a query.
pub(crate) fn push_scope(query: &mut QueryBuilder<'_, Postgres>, scope: &Scope) {
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

/// The tenant a scope is pinned to; `None` for the platform.
pub(crate) fn scope_tenant(scope: &Scope) -> Option<&str> {
    match scope {
        Scope::Platform => None,
        Scope::Tenant { tenant_id } | Scope::User { tenant_id, .. } => Some(tenant_id),
    }
}

/// `j.id, j.tenant_id, …`: the job columns of a table alias, for RETURNING
/// clauses of statements that join.
fn qualified_columns(alias: &str) -> String {
    JOB_COLUMNS.split(", ").map(|column| format!("{alias}.{column}")).collect::<Vec<_>>().join(", ")
}

/// The smallest UUIDv7 of the millisecond `time`.
fn uuid_v7_floor(time: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(time.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    Uuid::from_bytes(bytes)
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

fn attempt_arrays(attempts: &[AttemptRef]) -> (Vec<Uuid>, Vec<i32>) {
    attempts.iter().map(|a| (a.id, a.generation)).unzip()
}

#[async_trait]
impl JobStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn wakeups(&self) -> &Arc<Wakeups> {
        &self.wakeups
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        records::ping(self.db()).await
    }

    async fn insert_job(&self, job: NewJob) -> Result<InsertOutcome> {
        // The fair tag (see migration 0011): a due job extends its
        // tenant's chain from the lane's front; a delayed one queues as if
        // it arrived at its run_at.
        let sql = format!(
            "WITH front AS (SELECT {front} AS v), \
             chain AS (INSERT INTO tenant_lanes (lane, tenant_id, fair_at) \
               SELECT $5, $2, (SELECT v FROM front) WHERE $9 <= {due} \
               ON CONFLICT (lane, tenant_id) DO UPDATE \
               SET fair_at = greatest(EXCLUDED.fair_at, tenant_lanes.fair_at + {step}), updated_at = now() \
               RETURNING fair_at), \
             ins AS ( \
               INSERT INTO jobs (id, tenant_id, user_id, kind, lane, status, payload, max_attempts, priority, \
               run_at, idempotency_key, request_hash, traceparent) \
               VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10, $11, $12) \
               ON CONFLICT (tenant_id, user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
               RETURNING {JOB_COLUMNS}), \
             queued AS (INSERT INTO job_queue (id, lane, tenant_id, priority, run_at, fair_at) \
               SELECT id, lane, tenant_id, priority, run_at, \
                 coalesce((SELECT fair_at FROM chain), greatest(run_at, (SELECT v FROM front))) FROM ins), \
             dispatched AS (INSERT INTO {DISPATCH_COLUMNS} SELECT {DISPATCH_VALUES} FROM ins WHERE $13) \
             SELECT * FROM ins",
            front = lane_front("$5"),
            due = DUE_HORIZON,
            step = FAIR_STEP,
        );
        let inserted = sqlx::query(&sql)
            .bind(job.id)
            .bind(&job.tenant_id)
            .bind(&job.user_id)
            .bind(job.kind.as_str())
            .bind(job.kind.lane().as_str())
            .bind(&job.payload)
            .bind(job.max_attempts)
            .bind(job.priority)
            .bind(job.run_at)
            .bind(&job.idempotency_key)
            .bind(&job.request_hash)
            .bind(&job.traceparent)
            .bind(self.dispatch)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = inserted {
            let created = job_from_row(&row)?;
            self.wakeups.notify(created.lane);
            self.notify_lanes([created.lane]).await?;
            return Ok(InsertOutcome::Created(created));
        }
        // The key exists. ON CONFLICT waited for the winner's transaction, so
        // its row is visible to this new statement.
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND user_id = $2 AND idempotency_key = $3");
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
        let mut inserted = 0;
        for chunk in jobs.chunks(INSERT_CHUNK) {
            let mut ids = Vec::with_capacity(chunk.len());
            let mut tenants = Vec::with_capacity(chunk.len());
            let mut users = Vec::with_capacity(chunk.len());
            let mut kinds = Vec::with_capacity(chunk.len());
            let mut lanes = Vec::with_capacity(chunk.len());
            let mut payloads = Vec::with_capacity(chunk.len());
            let mut max_attempts = Vec::with_capacity(chunk.len());
            let mut priorities = Vec::with_capacity(chunk.len());
            let mut run_ats = Vec::with_capacity(chunk.len());
            let mut traceparents = Vec::with_capacity(chunk.len());
            for job in chunk {
                ids.push(job.id);
                tenants.push(job.tenant_id.as_str());
                users.push(job.user_id.as_str());
                kinds.push(job.kind.as_str());
                lanes.push(job.kind.lane().as_str());
                payloads.push(job.payload.to_string());
                max_attempts.push(job.max_attempts);
                priorities.push(job.priority);
                run_ats.push(job.run_at);
                traceparents.push(job.traceparent.as_deref());
            }
            // Fair tags as in `insert_job`, for a batch: each tenant's due
            // jobs of a lane are chained in the batch's order from where the
            // tenant's chain ended (or the lane's front, if later).
            let done = sqlx::query(&format!(
                "WITH t AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], \
                   $6::text[], $7::int4[], $8::int2[], $9::timestamptz[], $10::text[]) WITH ORDINALITY \
                   AS t(id, tenant_id, user_id, kind, lane, payload, max_attempts, priority, run_at, traceparent, ord)), \
                 fronts AS (SELECT l.lane, {front} AS v FROM (SELECT DISTINCT lane FROM t) l), \
                 due AS (SELECT id, lane, tenant_id, \
                   row_number() OVER (PARTITION BY lane, tenant_id ORDER BY ord) - 1 AS seq \
                   FROM t WHERE run_at <= {due}), \
                 chains AS (SELECT d.lane, d.tenant_id, count(*) AS n, \
                   greatest(f.v, max(tl.fair_at) + {step}) AS base \
                   FROM due d JOIN fronts f USING (lane) \
                   LEFT JOIN tenant_lanes tl ON tl.lane = d.lane AND tl.tenant_id = d.tenant_id \
                   GROUP BY d.lane, d.tenant_id, f.v), \
                 chained AS (INSERT INTO tenant_lanes (lane, tenant_id, fair_at) \
                   SELECT lane, tenant_id, base + (n - 1) * {step} FROM chains \
                   ON CONFLICT (lane, tenant_id) DO UPDATE \
                   SET fair_at = greatest(EXCLUDED.fair_at, tenant_lanes.fair_at), updated_at = now()), \
                 ins AS ( \
                   INSERT INTO jobs (id, tenant_id, user_id, kind, lane, status, payload, max_attempts, priority, \
                   run_at, traceparent) \
                   SELECT id, tenant_id, user_id, kind, lane, 'queued', payload::jsonb, max_attempts, priority, \
                   run_at, traceparent FROM t ORDER BY ord \
                   RETURNING id, lane, tenant_id, priority, generation, status, run_at, traceparent), \
                 queued AS (INSERT INTO job_queue (id, lane, tenant_id, priority, run_at, fair_at) \
                   SELECT ins.id, ins.lane, ins.tenant_id, ins.priority, ins.run_at, \
                     coalesce(c.base + d.seq * {step}, greatest(ins.run_at, f.v)) \
                   FROM ins JOIN fronts f ON f.lane = ins.lane LEFT JOIN due d ON d.id = ins.id \
                   LEFT JOIN chains c ON c.lane = d.lane AND c.tenant_id = d.tenant_id), \
                 dispatched AS (INSERT INTO {DISPATCH_COLUMNS} SELECT {DISPATCH_VALUES} FROM ins WHERE $11) \
                 SELECT count(*) AS inserted FROM ins",
                front = lane_front("l.lane"),
                due = DUE_HORIZON,
                step = FAIR_STEP,
            ))
            .bind(&ids)
            .bind(&tenants)
            .bind(&users)
            .bind(&kinds)
            .bind(&lanes)
            .bind(&payloads)
            .bind(&max_attempts)
            .bind(&priorities)
            .bind(&run_ats)
            .bind(&traceparents)
            .bind(self.dispatch)
            .fetch_one(&self.pool)
            .await?;
            inserted += u64::try_from(done.try_get::<i64, _>("inserted")?).unwrap_or(0);
        }
        let lanes: Vec<Lane> = jobs.iter().map(|job| job.kind.lane()).collect();
        for lane in &lanes {
            self.wakeups.notify(*lane);
        }
        self.notify_lanes(lanes).await?;
        Ok(inserted)
    }

    async fn get_job(&self, scope: &Scope, id: Uuid) -> Result<Option<Job>> {
        records::get_job(self.db(), scope, id).await
    }

    async fn list_jobs(&self, scope: &Scope, filter: &JobFilter) -> Result<Vec<Job>> {
        records::list_jobs(self.db(), scope, filter).await
    }

    async fn cancel_job(&self, scope: &Scope, id: Uuid) -> Result<Option<CancelOutcome>> {
        let mut tx = self.pool.begin().await?;
        // Queue row first: the lock order every statement follows.
        sqlx::query("SELECT 1 FROM job_queue WHERE id = $1 FOR UPDATE").bind(id).execute(&mut *tx).await?;
        let mut query = QueryBuilder::new("WITH old AS (SELECT id, status FROM jobs WHERE id = ");
        query.push_bind(id);
        push_scope(&mut query, scope);
        query.push(
            " FOR UPDATE) \
             UPDATE jobs j SET \
               status = CASE WHEN old.status = 'queued' THEN 'cancelled' ELSE j.status END, \
               finished_at = CASE WHEN old.status = 'queued' THEN now() ELSE j.finished_at END, \
               error = CASE WHEN old.status = 'queued' THEN 'cancelled before it ran' ELSE j.error END, \
               cancel_requested_at = CASE WHEN old.status IN ('queued', 'running') \
                 THEN coalesce(j.cancel_requested_at, now()) ELSE j.cancel_requested_at END, \
               updated_at = now() \
             FROM old WHERE j.id = old.id RETURNING old.status AS old_status, ",
        );
        query.push(qualified_columns("j"));
        let Some(row) = query.build().fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let job = job_from_row(&row)?;
        let old: Status = parse_enum(row.try_get::<&str, _>("old_status")?, "status")?;
        match old {
            Status::Queued => {
                sqlx::query("DELETE FROM job_queue WHERE id = $1").bind(id).execute(&mut *tx).await?;
            }
            // Delivered at commit, to every worker's listener.
            Status::Running => {
                sqlx::query("SELECT pg_notify($1, '')").bind(CANCEL_CHANNEL).execute(&mut *tx).await?;
            }
            _ => {}
        }
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM job_queue WHERE id = $1 FOR UPDATE").bind(id).execute(&mut *tx).await?;
        let mut query = QueryBuilder::new(
            "UPDATE jobs SET status = 'queued', attempts = 0, generation = generation + 1, run_at = now(), \
             result = NULL, progress = 0, finished_at = NULL, cancel_requested_at = NULL, lease_until = NULL, locked_by = NULL, \
             updated_at = now() WHERE status IN ('dead', 'failed', 'cancelled') AND id = ",
        );
        query.push_bind(id);
        push_scope(&mut query, scope);
        query.push(format!(" RETURNING {JOB_COLUMNS}"));
        let Some(row) = query.build().fetch_optional(&mut *tx).await? else {
            drop(tx);
            // Not retriable (still queued or running) or not visible: tell
            // the caller which, by what it can see.
            return self.get_job(scope, id).await;
        };
        let job = job_from_row(&row)?;
        // Back in line at the lane's front, like a new arrival of its tenant.
        sqlx::query(&format!(
            "INSERT INTO job_queue (id, lane, tenant_id, priority, run_at, fair_at) \
             VALUES ($1, $2, $3, $4, now(), {front}) \
             ON CONFLICT (id) DO UPDATE SET dead = false, lease_until = NULL, run_at = now(), \
               fair_at = EXCLUDED.fair_at",
            front = lane_front("$2")
        ))
        .bind(job.id)
        .bind(job.lane.as_str())
        .bind(&job.tenant_id)
        .bind(job.priority)
        .execute(&mut *tx)
        .await?;
        if self.dispatch {
            sqlx::query(&format!("INSERT INTO {DISPATCH_COLUMNS} SELECT {DISPATCH_VALUES} FROM jobs WHERE id = $1"))
                .bind(job.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.wakeups.notify(job.lane);
        self.notify_lanes([job.lane]).await?;
        Ok(Some(job))
    }

    async fn claim_within(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>> {
        let ClaimRequest { lane, max, lease, worker_id, tenant_cap } = *request;
        if max == 0 {
            return Ok(Vec::new());
        }
        // One statement: the lane's running jobs counted per tenant (a scan
        // of the lane's leases, which are as many as its busy slots), then
        // the due jobs in fair order, skipping paused tenants and tenants at
        // their cap, then at most `cap - running` of each tenant's. Reserved
        // tenants (the platform's own work, such as sweep shards) have no cap.
        // With a cap, claims of the lane take turns (`run_claim`).
        let sql = format!(
            "WITH running AS MATERIALIZED ( \
               SELECT tenant_id, count(*) AS n FROM job_queue \
               WHERE lane = $1 AND lease_until IS NOT NULL GROUP BY tenant_id), \
             picked AS ( \
               SELECT id, tenant_id, priority, fair_at FROM job_queue \
               WHERE lane = $1 AND lease_until IS NULL AND NOT dead AND run_at <= now() \
                 AND NOT EXISTS (SELECT 1 FROM lanes WHERE lanes.lane = $1 AND lanes.paused) \
                 AND tenant_id NOT IN (SELECT tenant_id FROM tenant_lanes t WHERE t.lane = $1 AND t.paused) \
                 AND tenant_id NOT IN (SELECT tenant_id FROM running WHERE n >= $5 AND {unreserved}) \
               ORDER BY priority DESC, fair_at, id \
               LIMIT $2 \
               FOR UPDATE SKIP LOCKED), \
             allowed AS ( \
               SELECT p.id FROM (SELECT id, tenant_id, \
                   row_number() OVER (PARTITION BY tenant_id ORDER BY priority DESC, fair_at, id) AS rank \
                   FROM picked) p \
                 LEFT JOIN running r USING (tenant_id) \
               WHERE NOT ({unreserved_p}) OR p.rank + coalesce(r.n, 0) <= $5), \
             leased AS ( \
               UPDATE job_queue q SET lease_until = now() + $3 * interval '1 second' \
               FROM allowed WHERE q.id = allowed.id RETURNING q.id) \
             UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, generation = j.generation + 1, \
               lease_until = now() + $3 * interval '1 second', locked_by = $4, \
               started_at = now(), updated_at = now() \
             FROM leased WHERE j.id = leased.id \
             RETURNING {}",
            qualified_columns("j"),
            unreserved = UNRESERVED_TENANT,
            unreserved_p = UNRESERVED_TENANT.replace("tenant_id", "p.tenant_id"),
        );
        let claim = sqlx::query(&sql)
            .bind(lane.as_str())
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(seconds(lease))
            .bind(worker_id)
            .bind(tenant_cap.map_or(i64::MAX, i64::from));
        let rows = run_claim(&self.pool, lane, tenant_cap.is_some(), claim).await?;
        jobs_from_rows(&rows)
    }

    async fn heartbeat(&self, attempts: &[AttemptRef], lease: Duration) -> Result<Vec<LeaseState>> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, numbers) = attempt_arrays(attempts);
        // An expired lease is lost even if nobody has reaped it yet: the
        // reaper may be about to, and a worker must never resurrect it.
        let rows = sqlx::query(
            "WITH held AS ( \
               UPDATE jobs j SET lease_until = now() + $3 * interval '1 second', updated_at = now() \
               FROM unnest($1::uuid[], $2::int4[]) AS h(id, generation) \
               WHERE j.id = h.id AND j.generation = h.generation AND j.status = 'running' AND j.lease_until > now() \
               RETURNING j.id, j.lease_until, j.cancel_requested_at IS NOT NULL AS cancel_requested), \
             queue AS (UPDATE job_queue q SET lease_until = held.lease_until FROM held WHERE q.id = held.id) \
             SELECT id, cancel_requested FROM held",
        )
        .bind(&ids)
        .bind(&numbers)
        .bind(seconds(lease))
        .fetch_all(&self.pool)
        .await?;
        let mut held = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            held.insert(row.try_get::<Uuid, _>("id")?, row.try_get::<bool, _>("cancel_requested")?);
        }
        Ok(attempts
            .iter()
            .map(|attempt| LeaseState {
                attempt: *attempt,
                held: held.contains_key(&attempt.id),
                cancel_requested: held.get(&attempt.id).copied().unwrap_or(false),
            })
            .collect())
    }

    async fn complete(&self, completions: &[Completion]) -> Result<Vec<AttemptRef>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::with_capacity(completions.len());
        let mut generations = Vec::with_capacity(completions.len());
        let mut statuses = Vec::with_capacity(completions.len());
        let mut results: Vec<Option<String>> = Vec::with_capacity(completions.len());
        let mut errors: Vec<Option<&str>> = Vec::with_capacity(completions.len());
        let mut run_ats: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(completions.len());
        let (mut art_ids, mut art_jobs, mut art_names) = (Vec::new(), Vec::new(), Vec::new());
        let (mut art_types, mut art_keys, mut art_sizes) = (Vec::new(), Vec::new(), Vec::new());
        for completion in completions {
            ids.push(completion.attempt.id);
            generations.push(completion.attempt.generation);
            statuses.push(completion.outcome.status().as_str());
            match &completion.outcome {
                Outcome::Succeeded { result, artifacts } => {
                    for artifact in artifacts {
                        art_ids.push(artifact.id);
                        art_jobs.push(completion.attempt.id);
                        art_names.push(artifact.name.as_str());
                        art_types.push(artifact.content_type.as_str());
                        art_keys.push(artifact.object_key.as_str());
                        art_sizes.push(artifact.size_bytes);
                    }
                    results.push(result.as_ref().map(|value| value.to_string()));
                    errors.push(None);
                    run_ats.push(None);
                }
                Outcome::Retry { error, run_at } => {
                    results.push(None);
                    errors.push(Some(error));
                    run_ats.push(Some(*run_at));
                }
                Outcome::Dead { error } | Outcome::Cancelled { reason: error } => {
                    results.push(None);
                    errors.push(Some(error));
                    run_ats.push(None);
                }
            }
        }
        // Fenced: the attempt must still be ours, running, with a live lease.
        let rows = sqlx::query(&format!(
            "WITH done AS ( \
             UPDATE jobs j SET status = c.status, \
               result = c.result::jsonb, \
               error = c.error, \
               errors = CASE WHEN c.error IS NULL OR c.status = 'cancelled' THEN j.errors ELSE j.errors || \
                 jsonb_build_array(jsonb_build_object('attempt', j.attempts, 'at', now(), 'error', c.error)) END, \
               run_at = coalesce(c.run_at, j.run_at), \
               progress = CASE WHEN c.status = 'succeeded' THEN 100 ELSE j.progress END, \
               lease_until = NULL, locked_by = NULL, updated_at = now(), \
               finished_at = CASE WHEN c.status = 'queued' THEN NULL ELSE now() END \
             FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) \
               AS c(id, generation, status, result, error, run_at) \
             WHERE j.id = c.id AND j.generation = c.generation AND j.status = 'running' AND j.lease_until > now() \
             RETURNING j.id, j.attempts, j.generation, j.status, j.run_at, j.lane, j.tenant_id, j.user_id, j.kind, j.error, \
               j.traceparent), \
             finished AS (DELETE FROM job_queue q USING done \
               WHERE q.id = done.id AND done.status IN ('succeeded', 'cancelled')), \
             requeued AS (UPDATE job_queue q SET lease_until = NULL, run_at = done.run_at, \
               dead = (done.status = 'dead'), \
               fair_at = CASE WHEN done.status = 'queued' THEN greatest(q.fair_at, done.run_at) ELSE q.fair_at END \
               FROM done WHERE q.id = done.id AND done.status IN ('queued', 'dead')), \
             counted AS (INSERT INTO lane_minutes (lane, tenant_id, minute, finished, failed) \
               SELECT lane, tenant_id, date_trunc('minute', now()), count(*), count(*) FILTER (WHERE status = 'dead') \
               FROM done WHERE status <> 'queued' GROUP BY lane, tenant_id \
               ON CONFLICT (lane, minute, tenant_id) DO UPDATE SET finished = lane_minutes.finished + EXCLUDED.finished, \
                 failed = lane_minutes.failed + EXCLUDED.failed), \
             events AS (INSERT INTO outbox (tenant_id, event_type, payload) \
               SELECT {JOB_EVENT_VALUES} FROM done WHERE status IN ('succeeded', 'queued', 'dead') AND kind = ANY($7) \
               RETURNING 1), \
             dispatched AS (INSERT INTO {DISPATCH_COLUMNS} SELECT {DISPATCH_VALUES} FROM done \
               WHERE $8 AND status IN ('queued', 'dead')), \
             artifacts AS (INSERT INTO artifacts (id, job_id, tenant_id, user_id, name, content_type, object_key, \
                 size_bytes) \
               SELECT a.id, a.job_id, done.tenant_id, done.user_id, a.name, a.content_type, a.object_key, a.size_bytes \
               FROM unnest($9::uuid[], $10::uuid[], $11::text[], $12::text[], $13::text[], $14::int8[]) \
                 AS a(id, job_id, name, content_type, object_key, size_bytes) \
               JOIN done ON done.id = a.job_id AND done.status = 'succeeded') \
             SELECT id, generation, (SELECT count(*) FROM events) AS events FROM done"
        ))
        .bind(&ids)
        .bind(&generations)
        .bind(&statuses)
        .bind(&results)
        .bind(&errors)
        .bind(&run_ats)
        .bind(emitting_kinds())
        .bind(self.dispatch)
        .bind(&art_ids)
        .bind(&art_jobs)
        .bind(&art_names)
        .bind(&art_types)
        .bind(&art_keys)
        .bind(&art_sizes)
        .fetch_all(&self.pool)
        .await?;
        if rows.iter().any(|row| row.try_get::<i64, _>("events").unwrap_or(0) > 0) {
            self.wakeups.notify_outbox();
        }
        rows.iter()
            .map(|row| Ok(AttemptRef { id: row.try_get("id")?, generation: row.try_get("generation")? }))
            .collect()
    }

    async fn release(&self, attempts: &[AttemptRef]) -> Result<u64> {
        if attempts.is_empty() {
            return Ok(0);
        }
        let (ids, numbers) = attempt_arrays(attempts);
        // On SQS a released job gets a fresh message, rather than its old one
        // back: a deploy must not count towards the poison limit, and the old
        // message may already be gone (dropped as a duplicate while it ran).
        let rows = sqlx::query(&format!(
            "WITH released AS ( \
               UPDATE jobs j SET status = 'queued', attempts = j.attempts - 1, run_at = now(), \
                 lease_until = NULL, locked_by = NULL, updated_at = now() \
               FROM unnest($1::uuid[], $2::int4[]) AS h(id, generation) \
               WHERE j.id = h.id AND j.generation = h.generation AND j.status = 'running' \
               RETURNING j.id, j.lane, j.tenant_id, j.generation, j.status, j.run_at, j.traceparent), \
             queue AS (UPDATE job_queue q SET lease_until = NULL, run_at = released.run_at \
               FROM released WHERE q.id = released.id), \
             dispatched AS (INSERT INTO {DISPATCH_COLUMNS} SELECT {DISPATCH_VALUES} FROM released WHERE $3) \
             SELECT lane FROM released"
        ))
        .bind(&ids)
        .bind(&numbers)
        .bind(self.dispatch)
        .fetch_all(&self.pool)
        .await?;
        let lanes = rows
            .iter()
            .map(|row| parse_enum::<Lane>(row.try_get::<&str, _>("lane")?, "lane"))
            .collect::<Result<Vec<_>>>()?;
        self.notify_lanes(lanes).await?;
        Ok(rows.len() as u64)
    }

    async fn set_progress(&self, attempt: AttemptRef, progress: i16) -> Result<bool> {
        records::set_progress(self.db(), attempt, progress).await
    }

    async fn reap_expired(&self) -> Result<ReapReport> {
        // SKIP LOCKED on both tables: a row a worker is committing right now
        // is left for the next tick rather than waited on (which could
        // deadlock against the commit's opposite lock order).
        let rows = sqlx::query(&format!(
            "WITH expired AS ( \
               SELECT id FROM job_queue WHERE lease_until < now() FOR UPDATE SKIP LOCKED), \
             locked AS ( \
               SELECT j.id FROM jobs j JOIN expired USING (id) \
               WHERE j.status = 'running' AND j.lease_until < now() FOR UPDATE OF j SKIP LOCKED), \
             reaped AS ( \
               UPDATE jobs j SET \
                 status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                 error = 'lease expired: the worker stopped heartbeating (it crashed, or lost the database)', \
                 errors = errors || jsonb_build_array(jsonb_build_object('attempt', attempts, 'at', now(), \
                   'error', 'lease expired')), \
                 finished_at = CASE WHEN attempts >= max_attempts THEN now() ELSE NULL END, \
                 run_at = now(), lease_until = NULL, locked_by = NULL, updated_at = now() \
               FROM locked WHERE j.id = locked.id \
               RETURNING j.id, j.status, j.lane, j.tenant_id, j.user_id, j.kind, j.attempts, j.generation, j.error, \
                 j.run_at, j.traceparent), \
             queue AS (UPDATE job_queue q SET lease_until = NULL, run_at = now(), dead = (reaped.status = 'dead') \
               FROM reaped WHERE q.id = reaped.id), \
             events AS (INSERT INTO outbox (tenant_id, event_type, payload) \
               SELECT {JOB_EVENT_VALUES} FROM reaped WHERE kind = ANY($1)), \
             dispatched AS (INSERT INTO {DISPATCH_COLUMNS} SELECT {DISPATCH_VALUES} FROM reaped WHERE $2) \
             SELECT status, lane FROM reaped"
        ))
        .bind(emitting_kinds())
        .bind(self.dispatch)
        .fetch_all(&self.pool)
        .await?;
        let mut report = ReapReport::default();
        let mut lanes = Vec::new();
        for row in &rows {
            if row.try_get::<&str, _>("status")? == "dead" {
                report.dead += 1;
            } else {
                report.requeued += 1;
                lanes.push(parse_enum::<Lane>(row.try_get::<&str, _>("lane")?, "lane")?);
            }
        }
        self.notify_lanes(lanes).await?;
        Ok(report)
    }

    async fn set_lane_paused(&self, lane: Lane, paused: bool) -> Result<()> {
        records::set_lane_paused(self.db(), lane, paused).await?;
        if !paused {
            self.notify_lanes([lane]).await?;
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
            self.notify_lanes([lane]).await?;
        }
        Ok(())
    }

    async fn lane_stats(&self, scope: &Scope) -> Result<Vec<LaneStats>> {
        let tenant = scope_tenant(scope);
        // Everything but throughput reads the narrow queue table's partial
        // indexes; throughput reads five minute-counters per lane (and
        // tenant). A tenant's figures filter on the tenant id those indexes
        // carry.
        let rows = sqlx::query(
            "SELECT l.lane, \
               (SELECT count(*) FROM job_queue q WHERE q.lane = l.lane AND lease_until IS NULL AND NOT dead \
                  AND run_at <= now() AND ($2::text IS NULL OR q.tenant_id = $2)) AS depth, \
               (SELECT count(*) FROM job_queue q WHERE q.lane = l.lane AND lease_until IS NULL AND NOT dead \
                  AND run_at > now() AND ($2::text IS NULL OR q.tenant_id = $2)) AS delayed, \
               (SELECT count(*) FROM job_queue q WHERE q.lane = l.lane AND lease_until IS NOT NULL \
                  AND ($2::text IS NULL OR q.tenant_id = $2)) AS in_flight, \
               (SELECT count(*) FROM job_queue q WHERE q.lane = l.lane AND dead \
                  AND ($2::text IS NULL OR q.tenant_id = $2)) AS dead, \
               (SELECT extract(epoch FROM now() - min(run_at))::float8 FROM job_queue q \
                  WHERE q.lane = l.lane AND lease_until IS NULL AND NOT dead AND run_at <= now() \
                  AND ($2::text IS NULL OR q.tenant_id = $2)) AS oldest, \
               (SELECT coalesce(sum(finished), 0)::int8 FROM lane_minutes m \
                  WHERE m.lane = l.lane AND m.minute > now() - interval '5 minutes' \
                  AND ($2::text IS NULL OR m.tenant_id = $2)) AS throughput, \
               coalesce((SELECT paused FROM lanes WHERE lanes.lane = l.lane), false) AS paused, \
               CASE WHEN $2::text IS NULL THEN NULL ELSE coalesce((SELECT paused FROM tenant_lanes t \
                  WHERE t.lane = l.lane AND t.tenant_id = $2), false) END AS tenant_paused \
             FROM unnest($1::text[]) AS l(lane)",
        )
        .bind(Lane::ALL.iter().map(|lane| lane.as_str()).collect::<Vec<_>>())
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LaneStats {
                    lane: parse_enum(row.try_get::<&str, _>("lane")?, "lane")?,
                    depth: row.try_get("depth")?,
                    delayed: row.try_get("delayed")?,
                    in_flight: row.try_get("in_flight")?,
                    dead: row.try_get("dead")?,
                    oldest_age_seconds: row.try_get::<Option<f64>, _>("oldest")?.unwrap_or(0.0).max(0.0),
                    throughput_5m: row.try_get("throughput")?,
                    paused: row.try_get("paused")?,
                    tenant_paused: row.try_get("tenant_paused")?,
                })
            })
            .collect()
    }

    async fn try_lead(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        records::try_lead(self.db(), name, holder, ttl).await
    }

    async fn resign(&self, name: &str, holder: &str) -> Result<()> {
        records::resign(self.db(), name, holder).await
    }

    async fn prune_finished(&self, age: Duration) -> Result<u64> {
        // Ids are UUIDv7: every job created before the cutoff has a smaller
        // id, so the primary key finds them without an index on finished_at.
        let cutoff =
            uuid_v7_floor(chrono::Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX));
        let done = sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
               WHERE id < $1 AND status IN ('succeeded', 'cancelled') \
                 AND finished_at < now() - $2 * interval '1 second' \
               LIMIT 10000)",
        )
        .bind(cutoff)
        .bind(seconds(age))
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM lane_minutes WHERE minute < now() - interval '1 day'").execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn claim_outbox(&self, max: usize, lease: Duration) -> Result<Vec<OutboxEvent>> {
        let rows = sqlx::query(
            "UPDATE outbox o SET lease_until = now() + $2 * interval '1 second', attempts = o.attempts + 1 \
             FROM (SELECT id FROM outbox WHERE lease_until IS NULL OR lease_until < now() \
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) picked \
             WHERE o.id = picked.id \
             RETURNING o.id, o.tenant_id, o.event_type, o.payload",
        )
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .bind(seconds(lease))
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows
            .iter()
            .map(|row| {
                Ok(OutboxEvent {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    event_type: row.try_get("event_type")?,
                    payload: row.try_get("payload")?,
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
        let mut query = QueryBuilder::new("WITH picked AS (SELECT id FROM job_queue WHERE dead AND lane = ");
        query.push_bind(lane.as_str());
        if let Some(ids) = only {
            query.push(" AND id = ANY(").push_bind(ids.to_vec()).push(")");
        }
        query.push(
            " FOR UPDATE SKIP LOCKED), \
             revived AS (UPDATE jobs SET status = 'queued', attempts = 0, generation = generation + 1, run_at = now(), result = NULL, \
               progress = 0, finished_at = NULL, cancel_requested_at = NULL, lease_until = NULL, locked_by = NULL, \
               updated_at = now() \
             WHERE status = 'dead' AND id IN (SELECT id FROM picked)",
        );
        push_scope(&mut query, scope);
        // Back in line like new arrivals: each tenant's revived jobs extend
        // its chain of fair tags, so a redrive of thousands of one tenant's
        // jobs interleaves with the others' rather than going before them.
        let lane_sql = format!("'{}'", lane.as_str());
        query.push(format!(
            " RETURNING id, lane, tenant_id, generation, status, run_at, traceparent), \
             front AS (SELECT {front} AS v), \
             seq AS (SELECT id, tenant_id, row_number() OVER (PARTITION BY tenant_id ORDER BY id) - 1 AS seq \
               FROM revived), \
             chains AS (SELECT s.tenant_id, count(*) AS n, \
               greatest((SELECT v FROM front), max(tl.fair_at) + {step}) AS base \
               FROM seq s LEFT JOIN tenant_lanes tl ON tl.lane = {lane_sql} AND tl.tenant_id = s.tenant_id \
               GROUP BY s.tenant_id), \
             chained AS (INSERT INTO tenant_lanes (lane, tenant_id, fair_at) \
               SELECT {lane_sql}, tenant_id, base + (n - 1) * {step} FROM chains \
               ON CONFLICT (lane, tenant_id) DO UPDATE \
               SET fair_at = greatest(EXCLUDED.fair_at, tenant_lanes.fair_at), updated_at = now()), \
             queue AS (UPDATE job_queue q SET dead = false, lease_until = NULL, run_at = now(), \
               fair_at = c.base + s.seq * {step} \
               FROM seq s JOIN chains c USING (tenant_id) WHERE q.id = s.id), \
             dispatched AS (INSERT INTO {DISPATCH_COLUMNS} SELECT {DISPATCH_VALUES} FROM revived WHERE ",
            front = lane_front(&lane_sql),
            step = FAIR_STEP,
        ));
        query.push_bind(self.dispatch);
        query.push(") SELECT id FROM revived");
        let rows = query.build().fetch_all(&self.pool).await?;
        if !rows.is_empty() {
            self.wakeups.notify(lane);
            self.notify_lanes([lane]).await?;
        }
        rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
    }

    fn queue_mode(&self) -> QueueMode {
        if self.dispatch {
            QueueMode::Dispatch
        } else {
            QueueMode::Embedded
        }
    }

    async fn check_queue_mode(&self, mode: QueueMode, record: bool) -> Result<()> {
        let name = match mode {
            QueueMode::Embedded => "embedded",
            QueueMode::Dispatch => "sqs",
        };
        let row = if record {
            sqlx::query(
                "INSERT INTO queue_settings (id, queue) VALUES (true, $1) \
                 ON CONFLICT (id) DO UPDATE SET queue = EXCLUDED.queue, updated_at = now() RETURNING queue",
            )
        } else {
            sqlx::query(
                "WITH ins AS (INSERT INTO queue_settings (id, queue) VALUES (true, $1) ON CONFLICT (id) DO NOTHING \
                   RETURNING queue) \
                 SELECT queue FROM ins UNION ALL SELECT queue FROM queue_settings",
            )
        }
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let row = match row {
            Some(row) => row,
            // Another process recorded it while this statement ran: its
            // snapshot predates that row, a new statement sees it.
            None => sqlx::query("SELECT queue FROM queue_settings").fetch_one(&self.pool).await?,
        };
        let recorded: String = row.try_get("queue")?;
        if recorded != name {
            return Err(StoreError::Config(format!(
                "this database's jobs are queued on `{recorded}`, but this process was started with \
                 LONGHAUL_QUEUE={name}: its jobs would never reach a worker. Set LONGHAUL_QUEUE={recorded}, or \
                 switch the database (once its queue is drained) with `LONGHAUL_QUEUE={name} longhaul migrate`"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_v7_floor_sorts_below_every_id_of_its_millisecond_and_above_earlier_ones() {
        let time = Utc.timestamp_millis_opt(1_795_000_000_123).single().expect("a valid time");
        let floor = uuid_v7_floor(time);
        assert_eq!(floor.get_version_num(), 7);
        let same_ms = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1_795_000_000, 123_000_000));
        let earlier = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1_795_000_000, 122_000_000));
        assert!(floor <= same_ms);
        assert!(earlier < floor);
    }
}
