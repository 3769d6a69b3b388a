//! [`AdminStore`] on SQLite. Times are milliseconds since the epoch.

use super::{audit_from_row, worker_from_row};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::{corrupt, AdminStore, AuditEntry, LaneMinute, NewAudit, Session, WorkerPresence, MAX_HISTORY_MINUTES};
use crate::{
    model::Scope,
    store::{
        parse_enum,
        sqlite::{duration_ms, ms, now_ms, push_scope, time},
        Result, SqliteStore, StoreError,
    },
};

const MINUTE_MS: i64 = 60_000;

fn push_ids(query: &mut QueryBuilder<'_, Sqlite>, ids: &[Uuid]) {
    query.push("(");
    let mut separated = query.separated(", ");
    for id in ids {
        separated.push_bind(id.to_string());
    }
    query.push(")");
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn record_audit(&self, entry: &NewAudit) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, tenant_id, actor, role, action, target, subject_tenant, detail, source_ip, \
               user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(now_ms())
        .bind(&entry.tenant_id)
        .bind(&entry.actor)
        .bind(&entry.role)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.subject_tenant)
        .bind(entry.detail.to_string())
        .bind(&entry.source_ip)
        .bind(&entry.user_agent)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn audit_log(&self, scope: &Scope, before: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>> {
        let mut query = QueryBuilder::new("SELECT * FROM audit_log WHERE 1");
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
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id_hash)
        .bind(&session.tenant_id)
        .bind(&session.user_id)
        .bind(&session.role)
        .bind(&session.csrf)
        .bind(ms(session.created_at))
        .bind(ms(session.expires_at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> Result<Option<Session>> {
        let row = sqlx::query("SELECT * FROM admin_sessions WHERE id_hash = ? AND expires_at > ?")
            .bind(id_hash)
            .bind(now_ms())
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| {
            Ok(Session {
                tenant_id: row.try_get("tenant_id")?,
                user_id: row.try_get("user_id")?,
                role: row.try_get("role")?,
                csrf: row.try_get("csrf")?,
                created_at: time(row.try_get("created_at")?)?,
                expires_at: time(row.try_get("expires_at")?)?,
            })
        })
        .transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE id_hash = ? OR expires_at < ?")
            .bind(id_hash)
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn report_worker(&self, worker: &WorkerPresence) -> Result<()> {
        let lanes = serde_json::to_string(&worker.lanes).map_err(corrupt("workers.lanes"))?;
        let running = serde_json::to_string(&worker.running).map_err(corrupt("workers.running"))?;
        sqlx::query(
            "INSERT INTO workers (id, host, version, lanes, running, started_at, seen_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, version = excluded.version, \
               lanes = excluded.lanes, running = excluded.running, seen_at = excluded.seen_at",
        )
        .bind(&worker.id)
        .bind(&worker.host)
        .bind(&worker.version)
        .bind(lanes)
        .bind(running)
        .bind(ms(worker.started_at))
        .bind(ms(worker.seen_at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn remove_worker(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM workers WHERE id = ? OR seen_at < ?")
            .bind(id)
            .bind(now_ms() - 24 * 60 * MINUTE_MS)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn workers(&self, seen_within: Duration) -> Result<Vec<WorkerPresence>> {
        sqlx::query("SELECT * FROM workers WHERE seen_at > ? ORDER BY id")
            .bind(now_ms() - duration_ms(seen_within))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(worker_from_row)
            .collect()
    }

    async fn lane_history(&self, scope: &Scope, minutes: u32) -> Result<Vec<LaneMinute>> {
        // No minute counters here: the finished jobs' own times, on their
        // index, are cheap at the embedded backend's sizes.
        let now = now_ms();
        let since = (now / MINUTE_MS - i64::from(minutes.clamp(1, MAX_HISTORY_MINUTES)) + 1) * MINUTE_MS;
        let tenant = match scope {
            Scope::Platform => None,
            Scope::Tenant { tenant_id } | Scope::User { tenant_id, .. } => Some(tenant_id.as_str()),
        };
        let rows = sqlx::query(
            "SELECT lane, finished_at / ?2 * ?2 AS minute, count(*) AS finished, \
               sum(status IN ('dead', 'failed')) AS failed \
             FROM jobs WHERE finished_at >= ?1 AND (?3 IS NULL OR tenant_id = ?3) \
             GROUP BY lane, minute ORDER BY minute, lane",
        )
        .bind(since)
        .bind(MINUTE_MS)
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LaneMinute {
                    lane: parse_enum(row.try_get::<&str, _>("lane")?, "lane")?,
                    minute: time(row.try_get("minute")?)?,
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
        let mut query = QueryBuilder::new("DELETE FROM jobs WHERE id IN ");
        push_ids(&mut query, ids);
        query.push(" AND status IN ('dead', 'failed', 'cancelled')");
        push_scope(&mut query, scope);
        query.push(" RETURNING id");
        query
            .build()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|row| {
                let id: &str = row.try_get("id")?;
                Uuid::parse_str(id).map_err(|err| StoreError::Corrupt(format!("jobs.id `{id}`: {err}")))
            })
            .collect()
    }
}
