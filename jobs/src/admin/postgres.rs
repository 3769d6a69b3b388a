//! [`AdminStore`] on PostgreSQL.

use super::{audit_from_row, worker_from_row};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};
use uuid::Uuid;

use super::{corrupt, AdminStore, AuditEntry, LaneMinute, NewAudit, Session, WorkerPresence, MAX_HISTORY_MINUTES};
use crate::{
    model::Scope,
    store::{parse_enum, postgres::push_scope, PgStore, Result},
};

#[async_trait]
impl AdminStore for PgStore {
    async fn record_audit(&self, entry: &NewAudit) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, actor, role, action, target, subject_tenant, detail, source_ip, \
               user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&entry.tenant_id)
        .bind(&entry.actor)
        .bind(&entry.role)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.subject_tenant)
        .bind(&entry.detail)
        .bind(&entry.source_ip)
        .bind(&entry.user_agent)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn audit_log(&self, scope: &Scope, before: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>> {
        let mut query = QueryBuilder::new("SELECT * FROM audit_log WHERE true");
        match scope {
            Scope::Platform => {}
            Scope::Tenant { tenant_id } | Scope::User { tenant_id, .. } => {
                query.push(" AND (tenant_id = ").push_bind(tenant_id.clone());
                query.push(" OR subject_tenant = ").push_bind(tenant_id.clone()).push(")");
            }
        }
        if let Some(before) = before {
            query.push(" AND id < ").push_bind(before);
        }
        query.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit.clamp(1, super::MAX_AUDIT_PAGE)));
        query.build().fetch_all(self.pool()).await?.iter().map(audit_from_row).collect()
    }

    async fn create_session(&self, id_hash: &str, session: &Session) -> Result<()> {
        sqlx::query(
            "INSERT INTO admin_sessions (id_hash, tenant_id, user_id, role, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id_hash)
        .bind(&session.tenant_id)
        .bind(&session.user_id)
        .bind(&session.role)
        .bind(&session.csrf)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> Result<Option<Session>> {
        let row = sqlx::query("SELECT * FROM admin_sessions WHERE id_hash = $1 AND expires_at > now()")
            .bind(id_hash)
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| {
            Ok(Session {
                tenant_id: row.try_get("tenant_id")?,
                user_id: row.try_get("user_id")?,
                role: row.try_get("role")?,
                csrf: row.try_get("csrf")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE id_hash = $1 OR expires_at < now()")
            .bind(id_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn report_worker(&self, worker: &WorkerPresence) -> Result<()> {
        let lanes = serde_json::to_value(&worker.lanes).map_err(corrupt("workers.lanes"))?;
        let running = serde_json::to_value(&worker.running).map_err(corrupt("workers.running"))?;
        sqlx::query(
            "INSERT INTO workers (id, host, version, lanes, running, started_at, seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, version = EXCLUDED.version, \
               lanes = EXCLUDED.lanes, running = EXCLUDED.running, seen_at = EXCLUDED.seen_at",
        )
        .bind(&worker.id)
        .bind(&worker.host)
        .bind(&worker.version)
        .bind(lanes)
        .bind(running)
        .bind(worker.started_at)
        .bind(worker.seen_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn remove_worker(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM workers WHERE id = $1 OR seen_at < now() - interval '1 day'")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn workers(&self, seen_within: Duration) -> Result<Vec<WorkerPresence>> {
        sqlx::query("SELECT * FROM workers WHERE seen_at > now() - $1 * interval '1 second' ORDER BY id")
            .bind(seen_within.as_secs_f64())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(worker_from_row)
            .collect()
    }

    async fn lane_history(&self, scope: &Scope, minutes: u32) -> Result<Vec<LaneMinute>> {
        let rows = sqlx::query(
            "SELECT lane, minute, sum(finished)::int8 AS finished, sum(failed)::int8 AS failed FROM lane_minutes \
             WHERE minute > date_trunc('minute', now()) - $1 * interval '1 minute' \
               AND ($2::text IS NULL OR tenant_id = $2) \
             GROUP BY lane, minute ORDER BY minute, lane",
        )
        .bind(f64::from(minutes.clamp(1, MAX_HISTORY_MINUTES)))
        .bind(crate::store::postgres::scope_tenant(scope))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LaneMinute {
                    lane: parse_enum(row.try_get::<&str, _>("lane")?, "lane")?,
                    minute: row.try_get("minute")?,
                    finished: row.try_get("finished")?,
                    failed: row.try_get("failed")?,
                })
            })
            .collect()
    }

    async fn delete_jobs(&self, scope: &Scope, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool().begin().await?;
        // Queue rows first: the lock order every statement follows.
        sqlx::query("SELECT 1 FROM job_queue WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(ids)
            .execute(&mut *tx)
            .await?;
        let mut query = QueryBuilder::new("DELETE FROM jobs WHERE id = ANY(");
        query.push_bind(ids).push(") AND status IN ('dead', 'failed', 'cancelled')");
        push_scope(&mut query, scope);
        query.push(" RETURNING id");
        let deleted: Vec<Uuid> =
            query.build().fetch_all(&mut *tx).await?.iter().map(|row| row.try_get("id")).collect::<Result<_, _>>()?;
        sqlx::query("DELETE FROM job_queue WHERE id = ANY($1)").bind(&deleted).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
