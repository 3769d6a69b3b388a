//! [`AdminStore`] in SQL, once for both databases (see `store::sql`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use uuid::Uuid;

use super::{
    audit_from_row, corrupt, worker_from_row, AdminStore, AuditEntry, LaneMinute, NewAudit, Session, WorkerPresence,
    MAX_HISTORY_MINUTES,
};
use crate::{
    model::Scope,
    store::{
        from_row,
        sql::{Dialect, Exec, SqlStore},
        Columns, Result,
    },
};

/// Workers not seen for this long are forgotten when another one stops.
const FORGET_WORKERS: chrono::TimeDelta = chrono::TimeDelta::days(1);

#[async_trait]
impl<S: SqlStore> AdminStore for S {
    async fn record_audit(&self, entry: &NewAudit) -> Result<()> {
        let mut db = self.db();
        let sql = db
            .sql(
                "INSERT INTO audit_log (at, tenant_id, actor, role, action, target, subject_tenant, detail, \
                   source_ip, user_agent) VALUES (now(), $1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&entry.tenant_id)
            .bind(&entry.actor)
            .bind(&entry.role)
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(&entry.subject_tenant)
            .bind(&entry.detail)
            .bind(&entry.source_ip)
            .bind(&entry.user_agent);
        db.execute(sql).await?;
        Ok(())
    }

    async fn audit_log(&self, scope: &Scope, before: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>> {
        let mut db = self.db();
        let mut sql = db.sql("SELECT * FROM audit_log WHERE true");
        match scope {
            Scope::Platform => {}
            Scope::Tenant { tenant_id } | Scope::User { tenant_id, .. } => {
                sql.push(" AND (tenant_id = ").push_bind(tenant_id);
                sql.push(" OR subject_tenant = ").push_bind(tenant_id).push(")");
            }
        }
        if let Some(before) = before {
            sql.push(" AND id < ").push_bind(before);
        }
        sql.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit.clamp(1, super::MAX_AUDIT_PAGE)));
        db.all(sql, audit_from_row).await
    }

    async fn create_session(&self, id_hash: &str, session: &Session) -> Result<()> {
        let mut db = self.db();
        let sql = db
            .sql(
                "INSERT INTO admin_sessions (id_hash, tenant_id, user_id, role, csrf, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id_hash)
            .bind(&session.tenant_id)
            .bind(&session.user_id)
            .bind(&session.role)
            .bind(&session.csrf)
            .bind(session.created_at)
            .bind(session.expires_at);
        db.execute(sql).await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> Result<Option<Session>> {
        let mut db = self.db();
        let sql = db.sql("SELECT * FROM admin_sessions WHERE id_hash = $1 AND expires_at > now()").bind(id_hash);
        db.optional(sql)
            .await?
            .as_ref()
            .map(|row| from_row!(row => Session { tenant_id, user_id, role, csrf, created_at, expires_at }))
            .transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let mut db = self.db();
        let sql = db.sql("DELETE FROM admin_sessions WHERE id_hash = $1 OR expires_at < now()").bind(id_hash);
        db.execute(sql).await?;
        Ok(())
    }

    async fn report_worker(&self, worker: &WorkerPresence) -> Result<()> {
        let lanes = serde_json::to_value(&worker.lanes).map_err(corrupt("workers.lanes"))?;
        let running = serde_json::to_value(&worker.running).map_err(corrupt("workers.running"))?;
        let mut db = self.db();
        let sql = db
            .sql(
                "INSERT INTO workers (id, host, version, lanes, running, started_at, seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET host = excluded.host, version = excluded.version, \
                   lanes = excluded.lanes, running = excluded.running, seen_at = excluded.seen_at",
            )
            .bind(&worker.id)
            .bind(&worker.host)
            .bind(&worker.version)
            .bind(lanes)
            .bind(running)
            .bind(worker.started_at)
            .bind(worker.seen_at);
        db.execute(sql).await?;
        Ok(())
    }

    async fn remove_worker(&self, id: &str) -> Result<()> {
        let mut db = self.db();
        let sql =
            db.sql("DELETE FROM workers WHERE id = $1 OR seen_at < $2").bind(id).bind(Utc::now() - FORGET_WORKERS);
        db.execute(sql).await?;
        Ok(())
    }

    async fn workers(&self, seen_within: Duration) -> Result<Vec<WorkerPresence>> {
        let since = Utc::now() - chrono::TimeDelta::from_std(seen_within).unwrap_or(chrono::TimeDelta::MAX);
        let mut db = self.db();
        let sql = db.sql("SELECT * FROM workers WHERE seen_at > $1 ORDER BY id").bind(since);
        db.all(sql, worker_from_row).await
    }

    async fn lane_history(&self, scope: &Scope, minutes: u32) -> Result<Vec<LaneMinute>> {
        let minutes = minutes.clamp(1, MAX_HISTORY_MINUTES);
        let tenant = match scope {
            Scope::Platform => None,
            Scope::Tenant { tenant_id } | Scope::User { tenant_id, .. } => Some(tenant_id.as_str()),
        };
        let mut db = self.db();
        let sql = match db.dialect() {
            // Minute counters, kept by a trigger on the jobs table.
            Dialect::Postgres => db
                .sql(
                    "SELECT lane, minute, sum(finished)::int8 AS finished, sum(failed)::int8 AS failed \
                     FROM lane_minutes WHERE minute > date_trunc('minute', now()) - $1 * interval '1 minute' \
                       AND ($2::text IS NULL OR tenant_id = $2) \
                     GROUP BY lane, minute ORDER BY minute, lane",
                )
                .bind(f64::from(minutes)),
            // No counters on the embedded backend: the finished jobs' own
            // times, on their index, are cheap at its sizes.
            Dialect::Sqlite => {
                const MINUTE_MS: i64 = 60_000;
                let since = (Utc::now().timestamp_millis() / MINUTE_MS - i64::from(minutes) + 1) * MINUTE_MS;
                db.sql(
                    "SELECT lane, finished_at / 60000 * 60000 AS minute, count(*) AS finished, \
                       sum(status IN ('dead', 'failed')) AS failed \
                     FROM jobs WHERE finished_at >= $1 AND ($2 IS NULL OR tenant_id = $2) \
                     GROUP BY lane, minute ORDER BY minute, lane",
                )
                .bind(since)
            }
        };
        db.rows(sql.bind(tenant))
            .await?
            .iter()
            .map(|row| from_row!(row => LaneMinute { lane, minute, finished, failed }))
            .collect()
    }

    async fn delete_jobs(&self, scope: &Scope, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.db().begin().await?;
        let queue = tx.dialect() == Dialect::Postgres;
        if queue {
            // PostgreSQL's queue rows first: the lock order every statement
            // follows.
            let mut lock = tx.sql("SELECT 1 AS held FROM job_queue WHERE ");
            lock.push_any("id", ids.to_vec()).push(" ORDER BY id FOR UPDATE");
            tx.execute(lock).await?;
        }
        let mut delete = tx.sql("DELETE FROM jobs WHERE ");
        delete.push_any("id", ids.to_vec()).push(" AND status IN ('dead', 'failed', 'cancelled')");
        delete.push_scope(scope).push(" RETURNING id");
        let deleted = tx.rows(delete).await?.iter().map(|row| row.uuid("id")).collect::<Result<Vec<_>>>()?;
        if queue && !deleted.is_empty() {
            let mut dequeue = tx.sql("DELETE FROM job_queue WHERE ");
            dequeue.push_any("id", deleted.clone());
            tx.execute(dequeue).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }
}
