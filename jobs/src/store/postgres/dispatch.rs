//! The dispatch outbox on PostgreSQL: [`DispatchStore`] for [`PgStore`].

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::dispatch::{DeadLettered, Delivered, Dispatch, DispatchStore, Started, Undelivered};

#[async_trait]
impl DispatchStore for PgStore {
    async fn start_delivered(&self, request: &ClaimRequest<'_>, messages: &[Delivered]) -> Result<Started> {
        let ClaimRequest { lane, lease, worker_id, tenant_cap, .. } = *request;
        if messages.is_empty() {
            return Ok(Started::default());
        }
        let ids: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
        let generations: Vec<i32> = messages.iter().map(|m| m.generation).collect();
        // The claim of `claim_within` (tenant pauses and caps included),
        // restricted to the delivered jobs at their message's generation. A
        // second early than due is allowed: SQS delays are whole seconds.
        let sql = format!(
            "WITH m AS (SELECT * FROM unnest($1::uuid[], $2::int4[]) AS m(id, generation)), \
             running AS MATERIALIZED ( \
               SELECT tenant_id, count(*) AS n FROM job_queue \
               WHERE lane = $3 AND lease_until IS NOT NULL GROUP BY tenant_id), \
             picked AS ( \
               SELECT q.id, q.tenant_id, q.priority, q.fair_at, m.generation FROM job_queue q JOIN m USING (id) \
               JOIN jobs j ON j.id = q.id AND j.status = 'queued' AND j.generation = m.generation \
               WHERE q.lane = $3 AND q.lease_until IS NULL AND NOT q.dead \
                 AND q.run_at <= now() + interval '1 second' \
                 AND NOT EXISTS (SELECT 1 FROM lanes WHERE lanes.lane = $3 AND lanes.paused) \
                 AND q.tenant_id NOT IN (SELECT tenant_id FROM tenant_lanes t WHERE t.lane = $3 AND t.paused) \
               FOR UPDATE OF q SKIP LOCKED), \
             allowed AS ( \
               SELECT p.id, p.generation FROM (SELECT id, tenant_id, generation, \
                   row_number() OVER (PARTITION BY tenant_id ORDER BY priority DESC, fair_at, id) AS rank \
                   FROM picked) p \
                 LEFT JOIN running r USING (tenant_id) \
               WHERE NOT ({unreserved_p}) OR p.rank + coalesce(r.n, 0) <= $6), \
             started AS ( \
               UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, generation = j.generation + 1, \
                 lease_until = now() + $4 * interval '1 second', locked_by = $5, \
                 started_at = now(), updated_at = now() \
               FROM allowed WHERE j.id = allowed.id AND j.status = 'queued' AND j.generation = allowed.generation \
               RETURNING {}), \
             leased AS (UPDATE job_queue q SET lease_until = started.lease_until FROM started WHERE q.id = started.id) \
             SELECT * FROM started",
            qualified_columns("j"),
            unreserved_p = UNRESERVED_TENANT.replace("tenant_id", "p.tenant_id"),
        );
        let claim = sqlx::query(&sql)
            .bind(&ids)
            .bind(&generations)
            .bind(lane.as_str())
            .bind(seconds(lease))
            .bind(worker_id)
            .bind(tenant_cap.map_or(i64::MAX, i64::from));
        let rows = run_claim(&self.pool, lane, tenant_cap.is_some(), claim).await?;
        let jobs = jobs_from_rows(&rows)?;
        if jobs.len() == messages.len() {
            return Ok(Started { jobs, others: Vec::new() });
        }
        let started: std::collections::HashSet<Uuid> = jobs.iter().map(|job| job.id).collect();
        let others = self.undelivered(messages, &started, tenant_cap).await?;
        Ok(Started { jobs, others })
    }

    async fn dead_letter_delivered(&self, messages: &[Delivered], receives: u32) -> Result<DeadLettered> {
        if messages.is_empty() {
            return Ok(DeadLettered::default());
        }
        let ids: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
        let generations: Vec<i32> = messages.iter().map(|m| m.generation).collect();
        let error = format!(
            "its message was delivered {receives} times without the job finishing (a poison message); \
             it was moved to the dead-letter queue"
        );
        let rows = sqlx::query(&format!(
            "WITH m AS (SELECT * FROM unnest($1::uuid[], $2::int4[]) AS m(id, generation)), \
             picked AS (SELECT q.id, m.generation FROM job_queue q JOIN m USING (id) \
               WHERE q.lease_until IS NULL AND NOT q.dead FOR UPDATE OF q SKIP LOCKED), \
             killed AS (UPDATE jobs j SET status = 'dead', error = $3, finished_at = now(), updated_at = now(), \
                 errors = j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempts, 'at', now(), \
                   'error', $3::text)) \
               FROM picked WHERE j.id = picked.id AND j.status = 'queued' AND j.generation = picked.generation \
               RETURNING j.id, j.status, j.lane, j.tenant_id, j.user_id, j.kind, j.attempts, j.generation, j.error, j.run_at, \
                 j.traceparent), \
             queue AS (UPDATE job_queue q SET dead = true FROM killed WHERE q.id = killed.id), \
             events AS (INSERT INTO outbox (tenant_id, event_type, payload) \
               SELECT {JOB_EVENT_VALUES} FROM killed WHERE kind = ANY($4)), \
             dispatched AS (INSERT INTO {DISPATCH_COLUMNS} SELECT {DISPATCH_VALUES} FROM killed) \
             SELECT id FROM killed"
        ))
        .bind(&ids)
        .bind(&generations)
        .bind(&error)
        .bind(emitting_kinds())
        .fetch_all(&self.pool)
        .await?;
        if !rows.is_empty() {
            self.wakeups.notify_outbox();
        }
        let killed = rows.iter().map(|row| Ok(row.try_get("id")?)).collect::<Result<Vec<Uuid>>>()?;
        let others = self.undelivered(messages, &killed.iter().copied().collect(), None).await?;
        Ok(DeadLettered { killed, others })
    }

    async fn redispatch(&self, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        let rows = sqlx::query(&format!(
            "INSERT INTO {DISPATCH_COLUMNS} SELECT {DISPATCH_VALUES} FROM jobs \
             WHERE id = ANY($1) AND status = 'queued' RETURNING job_id"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get("job_id")?)).collect()
    }

    async fn release_dispatch(&self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query("UPDATE dispatch SET lease_until = NULL WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn claim_dispatch(&self, max: usize, horizon: Duration, lease: Duration) -> Result<Vec<Dispatch>> {
        let rows = sqlx::query(
            "UPDATE dispatch d SET lease_until = now() + $3 * interval '1 second' \
             FROM (SELECT id FROM dispatch \
                   WHERE send_at <= now() + $2 * interval '1 second' \
                     AND (lease_until IS NULL OR lease_until < now()) \
                   ORDER BY send_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) picked \
             WHERE d.id = picked.id \
             RETURNING d.id, d.job_id, d.lane, d.tenant_id, d.attempt, d.dead_letter, d.send_at, d.traceparent",
        )
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .bind(seconds(horizon))
        .bind(seconds(lease))
        .fetch_all(&self.pool)
        .await?;
        let mut rows = rows
            .iter()
            .map(|row| {
                Ok(Dispatch {
                    id: row.try_get("id")?,
                    job_id: row.try_get("job_id")?,
                    lane: parse_enum(row.try_get::<&str, _>("lane")?, "lane")?,
                    tenant_id: row.try_get("tenant_id")?,
                    generation: row.try_get("attempt")?,
                    dead_letter: row.try_get("dead_letter")?,
                    send_at: row.try_get("send_at")?,
                    traceparent: row.try_get("traceparent")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        rows.sort_by_key(|row| row.id);
        Ok(rows)
    }

    async fn delete_dispatch(&self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query("DELETE FROM dispatch WHERE id = ANY($1)").bind(ids).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn dispatch_backlog(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT count(*) AS n FROM dispatch").fetch_one(&self.pool).await?.try_get("n")?)
    }
}

impl PgStore {
    /// What to do with delivered messages that did not start (or kill)
    /// their job: looked up without locking.
    async fn undelivered(
        &self,
        messages: &[Delivered],
        handled: &std::collections::HashSet<Uuid>,
        tenant_cap: Option<u32>,
    ) -> Result<Vec<Undelivered>> {
        let rest: Vec<Uuid> = messages.iter().map(|m| m.id).filter(|id| !handled.contains(id)).collect();
        if rest.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT j.id, j.status, j.generation, extract(epoch FROM j.run_at - now())::float8 AS wait, \
               coalesce((SELECT paused FROM lanes WHERE lanes.lane = j.lane), false) \
                 OR EXISTS (SELECT 1 FROM tenant_lanes t WHERE t.lane = j.lane AND t.tenant_id = j.tenant_id \
                   AND t.paused) AS paused, \
               {unreserved_j} AND (SELECT count(*) FROM job_queue q WHERE q.lane = j.lane \
                 AND q.tenant_id = j.tenant_id AND q.lease_until IS NOT NULL) >= $2 AS at_cap \
             FROM jobs j WHERE j.id = ANY($1)",
            unreserved_j = UNRESERVED_TENANT.replace("tenant_id", "j.tenant_id"),
        ))
        .bind(&rest)
        .bind(tenant_cap.map_or(i64::MAX, i64::from))
        .fetch_all(&self.pool)
        .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let id: Uuid = row.try_get("id")?;
            let status: Status = parse_enum(row.try_get::<&str, _>("status")?, "status")?;
            let generation: i32 = row.try_get("generation")?;
            let paused: bool = row.try_get("paused")?;
            let at_cap: bool = row.try_get("at_cap")?;
            found.insert(id, (status, generation, row.try_get::<f64, _>("wait")?, paused, at_cap));
        }
        // A message whose tenant is at its share is sent again later, as a
        // fresh message (deleting this one): hiding it instead would count
        // every wait towards the poison limit, and a busy tenant's jobs would
        // end in the dead-letter queue for being popular.
        let over_cap: Vec<(Uuid, i32)> = messages
            .iter()
            .filter(|m| {
                matches!(found.get(&m.id), Some((Status::Queued, generation, wait, false, true))
                    if *generation == m.generation && *wait <= 1.0)
            })
            .map(|m| (m.id, m.generation))
            .collect();
        let requeued = self.requeue_over_cap(&over_cap).await?;
        Ok(messages
            .iter()
            .filter(|m| !handled.contains(&m.id))
            .map(|m| match found.get(&m.id) {
                None => Undelivered::Drop { id: m.id, why: "the job no longer exists" },
                Some((Status::Queued, generation, ..)) if *generation == m.generation && requeued.contains(&m.id) => {
                    Undelivered::Drop { id: m.id, why: "its tenant is at its share of the lane; sent again later" }
                }
                Some((Status::Queued, generation, wait, paused, _)) if *generation == m.generation => {
                    let after = if *paused {
                        // Paused lanes do not receive; this one slipped
                        // through as the pause landed (in a long poll that
                        // began before it), or its tenant paused its own
                        // jobs. Soon back, in case the pause is short.
                        Duration::from_secs(5)
                    } else {
                        // Early, or locked by a cancel or another delivery.
                        Duration::from_secs_f64(wait.max(1.0).ceil())
                    };
                    Undelivered::Postpone { id: m.id, after }
                }
                Some((Status::Queued, ..)) => Undelivered::Drop { id: m.id, why: "the job was dispatched again since" },
                Some((Status::Running, ..)) => {
                    Undelivered::Drop { id: m.id, why: "the job is running under another message" }
                }
                Some(_) => Undelivered::Drop { id: m.id, why: "the job has finished" },
            })
            .collect())
    }

    /// Writes a fresh dispatch row, due in 2 to 6 seconds (spread, so the
    /// tenant's messages do not all come back at once), for each job that
    /// is still queued at the given generation. Returns the jobs requeued.
    async fn requeue_over_cap(&self, jobs: &[(Uuid, i32)]) -> Result<std::collections::HashSet<Uuid>> {
        if jobs.is_empty() {
            return Ok(std::collections::HashSet::new());
        }
        let (ids, generations): (Vec<Uuid>, Vec<i32>) = jobs.iter().copied().unzip();
        let rows = sqlx::query(&format!(
            "INSERT INTO {DISPATCH_COLUMNS} \
             SELECT j.id, j.lane, j.tenant_id, j.generation, false, \
               now() + (2 + 4 * random()) * interval '1 second', j.traceparent \
             FROM jobs j JOIN unnest($1::uuid[], $2::int4[]) AS m(id, generation) \
               ON j.id = m.id AND j.generation = m.generation \
             WHERE j.status = 'queued' RETURNING job_id"
        ))
        .bind(&ids)
        .bind(&generations)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get::<Uuid, _>("job_id")?)).collect()
    }
}
