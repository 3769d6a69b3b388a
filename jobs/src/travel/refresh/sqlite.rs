//! The sweep's storage on SQLite: the same writes as on PostgreSQL, row by
//! row inside one write transaction per page (SQLite has one writer, and
//! no arrays to unnest).

use crate::travel::reservation_from_row;
use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use super::{
    changed_event, decide, merged_staleness, shard_count, shard_keys, staleness_of, Decision, PageOutcome, PageWrite,
    RefreshStore, ShardItem, SweepReport, SweepStart, SweepTotals, TenantSweep,
};
use crate::{
    notify::event_types::RESERVATION_CHANGED,
    store::{
        sqlite::{attempt_holds, ms, now_ms, opt_time, time},
        AttemptRef, Result, SqliteStore,
    },
    travel::sqlite::{regroup, uuid, RESERVATION_COLUMNS},
};

#[async_trait]
impl RefreshStore for SqliteStore {
    async fn begin_sweep(&self, slot: DateTime<Utc>, shard_size: u32) -> Result<Option<SweepStart>> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let sweep_id = Uuid::now_v7();
        let now = now_ms();
        let active: i64 =
            sqlx::query_scalar("SELECT count(*) FROM reservations WHERE status = 'confirmed' AND ended = 0")
                .fetch_one(&mut *tx)
                .await?;
        let shards = shard_count(active, shard_size);
        let started = sqlx::query(
            "INSERT INTO sweeps (id, slot, started_at, active, shards, enqueued, skipped) \
             VALUES (?1, ?2, ?3, ?4, ?5, 0, 0) ON CONFLICT (slot) DO NOTHING",
        )
        .bind(sweep_id.to_string())
        .bind(ms(slot))
        .bind(now)
        .bind(active)
        .bind(i64::from(shards))
        .execute(&mut *tx)
        .await?;
        if started.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE sweep_shards SET finished_at = ?2, \
               error = coalesce(error, 'its job ended as ' || \
                 coalesce((SELECT status FROM jobs WHERE id = sweep_shards.job_id), 'never enqueued')) \
             WHERE finished_at IS NULL AND sweep_id <> ?1 AND ( \
               (SELECT status FROM jobs WHERE id = sweep_shards.job_id) IN ('succeeded', 'failed', 'dead', 'cancelled') \
               OR (NOT EXISTS (SELECT 1 FROM jobs WHERE id = sweep_shards.job_id) \
                   AND (SELECT started_at FROM sweeps WHERE id = sweep_shards.sweep_id) < ?2 - 600000))",
        )
        .bind(sweep_id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let running: Vec<(i32, i32)> = sqlx::query_as(
            "SELECT s.key_lo, s.key_hi FROM sweep_shards s JOIN jobs j ON j.id = s.job_id \
             WHERE s.finished_at IS NULL AND j.status IN ('queued', 'running')",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut enqueue = Vec::new();
        let mut skipped = 0;
        for shard in 0..shards {
            let (lo, hi) = shard_keys(shard, shards);
            if running.iter().any(|&(run_lo, run_hi)| run_lo < hi && lo < run_hi) {
                skipped += 1;
                continue;
            }
            let job_id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO sweep_shards (sweep_id, shard, key_lo, key_hi, job_id) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .bind(sweep_id.to_string())
            .bind(i64::from(shard))
            .bind(lo)
            .bind(hi)
            .bind(job_id.to_string())
            .execute(&mut *tx)
            .await?;
            enqueue.push((shard, job_id));
        }
        sqlx::query("UPDATE sweeps SET enqueued = ?2, skipped = ?3 WHERE id = ?1")
            .bind(sweep_id.to_string())
            .bind(enqueue.len() as i64)
            .bind(i64::from(skipped))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(SweepStart { sweep_id, active, shards, enqueue, skipped }))
    }

    async fn shard_page(
        &self,
        tenant_id: Option<&str>,
        keys: (i32, i32),
        after: Option<(i32, Uuid)>,
        limit: u32,
    ) -> Result<Vec<ShardItem>> {
        let (after_key, after_id) = after.unwrap_or((keys.0, Uuid::nil()));
        let rows = sqlx::query(
            "SELECT id, shard_key, provider, reservation_number, agency_etag, agency_hash, \
               coalesce(ends_at, starts_at) < ?7 AS past \
             FROM reservations \
             WHERE status = 'confirmed' AND ended = 0 AND shard_key >= ?1 AND shard_key < ?2 \
               AND (shard_key > ?3 OR (shard_key = ?3 AND id > ?4)) AND (?5 IS NULL OR tenant_id = ?5) \
             ORDER BY shard_key, id LIMIT ?6",
        )
        .bind(keys.0)
        .bind(keys.1)
        .bind(after_key)
        .bind(after_id.to_string())
        .bind(tenant_id)
        .bind(i64::from(limit))
        .bind(now_ms())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ShardItem {
                    id: uuid(row.try_get("id")?)?,
                    shard_key: row.try_get("shard_key")?,
                    provider: row.try_get("provider")?,
                    reservation_number: row.try_get("reservation_number")?,
                    etag: row.try_get("agency_etag")?,
                    hash: row.try_get("agency_hash")?,
                    past: row.try_get("past")?,
                })
            })
            .collect()
    }

    async fn commit_page(&self, attempt: AttemptRef, page: &PageWrite) -> Result<Option<PageOutcome>> {
        let mut outcome = PageOutcome::default();
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        if !attempt_holds(&mut tx, attempt).await? {
            return Ok(None);
        }
        let mut regroups = BTreeSet::new();
        for update in &page.updates {
            let row =
                sqlx::query(&format!("SELECT {RESERVATION_COLUMNS}, agency_hash FROM reservations WHERE id = ?1"))
                    .bind(update.id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(row) = row else { continue };
            let before = reservation_from_row(&row)?;
            let (new, diff) = match decide(&before, row.try_get("agency_hash")?, update) {
                Decision::AlreadyApplied => {
                    outcome.already_applied += 1;
                    continue;
                }
                Decision::Baseline { details } => {
                    sqlx::query(
                        "UPDATE reservations SET agency_etag = ?2, agency_hash = ?3, checked_at = ?4, details = ?5 \
                         WHERE id = ?1",
                    )
                    .bind(update.id.to_string())
                    .bind(&update.etag)
                    .bind(update.hash)
                    .bind(ms(update.detected_at))
                    .bind(details.to_string())
                    .execute(&mut *tx)
                    .await?;
                    outcome.baselined += 1;
                    continue;
                }
                Decision::Change { fields, diff, regroup } => {
                    if regroup {
                        regroups.insert((before.tenant_id.clone(), before.user_id.clone()));
                    }
                    (fields, diff)
                }
            };
            let version = before.version + 1;
            sqlx::query(
                "UPDATE reservations SET status = ?2, starts_at = ?3, ends_at = ?4, details = ?5, \
                   agency_etag = ?6, agency_hash = ?7, version = ?8, checked_at = ?9, ended = 0, \
                   vendor_changes = vendor_changes + 1, updated_at = ?10 WHERE id = ?1",
            )
            .bind(update.id.to_string())
            .bind(new.status.as_str())
            .bind(ms(new.starts_at))
            .bind(new.ends_at.map(ms))
            .bind(new.details.to_string())
            .bind(&update.etag)
            .bind(update.hash)
            .bind(version)
            .bind(ms(update.detected_at))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            let changes = Value::Object(diff);
            sqlx::query(
                "INSERT INTO reservation_changes (tenant_id, reservation_id, source, changes, changed_at, detected_at) \
                 VALUES (?1, ?2, 'agency', ?3, ?4, ?5)",
            )
            .bind(&before.tenant_id)
            .bind(update.id.to_string())
            .bind(changes.to_string())
            .bind(update.changed_at.map(ms))
            .bind(ms(update.detected_at))
            .execute(&mut *tx)
            .await?;
            let event = changed_event(
                update.id,
                &before.tenant_id,
                &before.user_id,
                version,
                &changes,
                update.changed_at,
                update.detected_at,
            );
            sqlx::query("INSERT INTO outbox (tenant_id, event_type, payload, created_at) VALUES (?1, ?2, ?3, ?4)")
                .bind(&before.tenant_id)
                .bind(RESERVATION_CHANGED)
                .bind(event.to_string())
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            outcome.changed.push((update.id, update.changed_at.map(|at| update.detected_at - at)));
        }
        for (tenant_id, user_id) in &regroups {
            regroup(&mut tx, tenant_id, user_id).await?;
        }
        let now = now_ms();
        for id in &page.past {
            let ended = sqlx::query(
                "UPDATE reservations SET ended = 1 \
                 WHERE id = ?1 AND ended = 0 AND coalesce(ends_at, starts_at) < ?2 \
                   AND NOT EXISTS (SELECT 1 FROM trips t WHERE t.id = reservations.trip_id AND t.ends_at >= ?2)",
            )
            .bind(id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            outcome.ended += ended.rows_affected();
        }
        if let Some((sweep_id, shard)) = page.shard {
            let held: Option<Option<String>> =
                sqlx::query_scalar("SELECT staleness FROM sweep_shards WHERE sweep_id = ?1 AND shard = ?2")
                    .bind(sweep_id.to_string())
                    .bind(i64::from(shard))
                    .fetch_optional(&mut *tx)
                    .await?;
            let staleness = merged_staleness(held.flatten().as_deref(), &outcome.changed)?;
            let tally = &page.tally;
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            sqlx::query(
                "UPDATE sweep_shards SET checked = checked + ?3, changed = changed + ?4, \
                   not_modified = not_modified + ?5, not_found = not_found + ?6, invalid = invalid + ?7, \
                   failed = failed + ?8, no_agency = no_agency + ?9, ended = ended + ?10, \
                   staleness = coalesce(?11, staleness) \
                 WHERE sweep_id = ?1 AND shard = ?2",
            )
            .bind(sweep_id.to_string())
            .bind(i64::from(shard))
            .bind(count(tally.checked))
            .bind(count(outcome.changed.len() as u64))
            .bind(count(tally.not_modified))
            .bind(count(tally.not_found))
            .bind(count(tally.invalid))
            .bind(count(tally.failed))
            .bind(count(tally.no_agency))
            .bind(count(outcome.ended))
            .bind(staleness)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(outcome))
    }

    async fn start_shard(&self, attempt: AttemptRef, sweep_id: Uuid, shard: u32, retry: bool) -> Result<bool> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        if !attempt_holds(&mut tx, attempt).await? {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE sweep_shards SET started_at = coalesce(started_at, ?3), \
               checked = CASE WHEN ?4 THEN 0 ELSE checked END, \
               not_modified = CASE WHEN ?4 THEN 0 ELSE not_modified END, \
               not_found = CASE WHEN ?4 THEN 0 ELSE not_found END, \
               invalid = CASE WHEN ?4 THEN 0 ELSE invalid END, \
               failed = CASE WHEN ?4 THEN 0 ELSE failed END, \
               no_agency = CASE WHEN ?4 THEN 0 ELSE no_agency END \
             WHERE sweep_id = ?1 AND shard = ?2",
        )
        .bind(sweep_id.to_string())
        .bind(i64::from(shard))
        .bind(now_ms())
        .bind(retry)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_shard(&self, attempt: AttemptRef, sweep_id: Uuid, shard: u32, error: Option<&str>) -> Result<bool> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        if !attempt_holds(&mut tx, attempt).await? {
            return Ok(false);
        }
        sqlx::query("UPDATE sweep_shards SET finished_at = ?3, error = ?4 WHERE sweep_id = ?1 AND shard = ?2")
            .bind(sweep_id.to_string())
            .bind(i64::from(shard))
            .bind(now_ms())
            .bind(error)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn sweeps(&self, limit: u32) -> Result<Vec<SweepReport>> {
        let sweeps = sqlx::query(
            "SELECT id, started_at, active, shards, enqueued, skipped FROM sweeps ORDER BY slot DESC LIMIT ?1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut reports = Vec::with_capacity(sweeps.len());
        let mut totals: HashMap<String, SweepTotals> = HashMap::new();
        for row in &sweeps {
            let id: String = row.try_get("id")?;
            let shards = sqlx::query(
                "SELECT checked, changed, not_modified, not_found, invalid, failed, no_agency, ended, \
                   staleness, finished_at, error FROM sweep_shards WHERE sweep_id = ?1 ORDER BY shard",
            )
            .bind(&id)
            .fetch_all(self.pool())
            .await?;
            let mut total = SweepTotals::new()?;
            for shard in &shards {
                total.add(
                    [
                        shard.try_get("checked")?,
                        shard.try_get("changed")?,
                        shard.try_get("not_modified")?,
                        shard.try_get("not_found")?,
                        shard.try_get("invalid")?,
                        shard.try_get("failed")?,
                        shard.try_get("no_agency")?,
                        shard.try_get("ended")?,
                    ],
                    opt_time(shard.try_get("finished_at")?)?,
                    shard.try_get("error")?,
                    shard.try_get::<Option<&str>, _>("staleness")?,
                )?;
            }
            totals.insert(id, total);
        }
        for row in &sweeps {
            let id: String = row.try_get("id")?;
            let total = match totals.remove(&id) {
                Some(total) => total,
                None => SweepTotals::new()?,
            };
            reports.push(total.report(
                uuid(&id)?,
                time(row.try_get("started_at")?)?,
                row.try_get("active")?,
                [row.try_get("shards")?, row.try_get("enqueued")?, row.try_get("skipped")?],
            ));
        }
        Ok(reports)
    }

    async fn tenant_sweeps(&self, tenant_id: &str, limit: u32) -> Result<Vec<TenantSweep>> {
        let sweeps = sqlx::query(
            "SELECT id, started_at, enqueued, \
               (SELECT count(*) FROM sweep_shards sh WHERE sh.sweep_id = sweeps.id AND sh.finished_at IS NOT NULL) \
                 AS finished_shards, \
               (SELECT max(finished_at) FROM sweep_shards sh WHERE sh.sweep_id = sweeps.id) AS last_finished \
             FROM sweeps ORDER BY slot DESC LIMIT ?1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut reports = Vec::with_capacity(sweeps.len());
        // Each sweep's window runs from its start to the next one's.
        let mut until = i64::MAX;
        for row in &sweeps {
            let started_at: i64 = row.try_get("started_at")?;
            let seen = sqlx::query(
                "SELECT changed_at, detected_at FROM reservation_changes \
                 WHERE tenant_id = ?1 AND source = 'agency' AND detected_at >= ?2 AND detected_at < ?3",
            )
            .bind(tenant_id)
            .bind(started_at)
            .bind(until)
            .fetch_all(self.pool())
            .await?;
            let mut staleness = Vec::with_capacity(seen.len());
            for change in &seen {
                if let Some(changed_at) = change.try_get::<Option<i64>, _>("changed_at")? {
                    let detected_at: i64 = change.try_get("detected_at")?;
                    staleness.push((detected_at - changed_at).max(0) as f64 / 1000.0);
                }
            }
            reports.push(TenantSweep::new(
                uuid(row.try_get("id")?)?,
                time(started_at)?,
                (row.try_get("enqueued")?, row.try_get("finished_shards")?, opt_time(row.try_get("last_finished")?)?),
                i64::try_from(seen.len()).unwrap_or(i64::MAX),
                staleness_of(staleness),
            ));
            until = started_at;
        }
        Ok(reports)
    }

    async fn prune_sweeps(&self, before: DateTime<Utc>) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM sweeps WHERE started_at < ?1").bind(ms(before)).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }
}
