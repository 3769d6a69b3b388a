//! The sweep's storage on PostgreSQL: batched, one statement per kind of
//! write (UNNEST of arrays), one transaction per page.

use crate::travel::reservation_from_row;
use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{postgres::PgRow, Row};
use uuid::Uuid;

use super::{
    changed_event, decide, merged_staleness, shard_count, shard_keys, Decision, PageOutcome, PageWrite, RefreshStore,
    ShardItem, Staleness, SweepReport, SweepStart, SweepTotals, TenantSweep,
};
use crate::{
    notify::event_types::RESERVATION_CHANGED,
    store::{postgres::attempt_holds, AttemptRef, PgStore, Result},
    travel::postgres::{regroup, RESERVATION_COLUMNS},
};

/// A change the page applies, gathered for the batched statements.
struct Change {
    id: Uuid,
    tenant_id: String,
    user_id: String,
    version: i64,
    status: &'static str,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    details: Value,
    etag: Option<String>,
    hash: i64,
    changes: Value,
    changed_at: Option<DateTime<Utc>>,
    detected_at: DateTime<Utc>,
}

#[async_trait]
impl RefreshStore for PgStore {
    async fn begin_sweep(&self, slot: DateTime<Utc>, shard_size: u32) -> Result<Option<SweepStart>> {
        let mut tx = self.pool().begin().await?;
        let sweep_id = Uuid::now_v7();
        let active: i64 =
            sqlx::query_scalar("SELECT count(*) FROM reservations WHERE status = 'confirmed' AND NOT ended")
                .fetch_one(&mut *tx)
                .await?;
        let shards = shard_count(active, shard_size);
        let started = sqlx::query(
            "INSERT INTO sweeps (id, slot, active, shards, enqueued, skipped) VALUES ($1, $2, $3, $4, 0, 0) \
             ON CONFLICT (slot) DO NOTHING",
        )
        .bind(sweep_id)
        .bind(slot)
        .bind(active)
        .bind(i64::from(shards))
        .execute(&mut *tx)
        .await?;
        if started.rows_affected() == 0 {
            return Ok(None);
        }
        // Shards whose job ended without finishing them (dead, cancelled,
        // or never enqueued by a planner that died) hold nothing back.
        sqlx::query(
            "UPDATE sweep_shards s SET finished_at = now(), \
               error = coalesce(s.error, 'its job ended as ' || coalesce(j.status, 'never enqueued')) \
             FROM sweep_shards o LEFT JOIN jobs j ON j.id = o.job_id \
             WHERE s.sweep_id = o.sweep_id AND s.shard = o.shard AND o.finished_at IS NULL \
               AND o.sweep_id <> $1 \
               AND (j.status IN ('succeeded', 'failed', 'dead', 'cancelled') \
                    OR (j.id IS NULL AND (SELECT started_at FROM sweeps WHERE id = o.sweep_id) < now() - interval '10 minutes'))",
        )
        .bind(sweep_id)
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
        let (mut numbers, mut los, mut his, mut jobs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for shard in 0..shards {
            let (lo, hi) = shard_keys(shard, shards);
            if running.iter().any(|&(run_lo, run_hi)| run_lo < hi && lo < run_hi) {
                skipped += 1;
                continue;
            }
            let job_id = Uuid::now_v7();
            enqueue.push((shard, job_id));
            numbers.push(i32::try_from(shard).unwrap_or(i32::MAX));
            los.push(lo);
            his.push(hi);
            jobs.push(job_id);
        }
        sqlx::query(
            "INSERT INTO sweep_shards (sweep_id, shard, key_lo, key_hi, job_id) \
             SELECT $1, * FROM unnest($2::int4[], $3::int4[], $4::int4[], $5::uuid[])",
        )
        .bind(sweep_id)
        .bind(&numbers)
        .bind(&los)
        .bind(&his)
        .bind(&jobs)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE sweeps SET enqueued = $2, skipped = $3 WHERE id = $1")
            .bind(sweep_id)
            .bind(i32::try_from(enqueue.len()).unwrap_or(i32::MAX))
            .bind(i32::try_from(skipped).unwrap_or(i32::MAX))
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
               coalesce(ends_at, starts_at) < now() AS past \
             FROM reservations \
             WHERE status = 'confirmed' AND NOT ended AND shard_key >= $1 AND shard_key < $2 \
               AND (shard_key, id) > ($3, $4) AND ($5::text IS NULL OR tenant_id = $5) \
             ORDER BY shard_key, id LIMIT $6",
        )
        .bind(keys.0)
        .bind(keys.1)
        .bind(after_key)
        .bind(after_id)
        .bind(tenant_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ShardItem {
                    id: row.try_get("id")?,
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
        let mut tx = self.pool().begin().await?;
        if !attempt_holds(&mut tx, attempt).await? {
            return Ok(None);
        }
        if !page.updates.is_empty() {
            let ids: Vec<Uuid> = page.updates.iter().map(|update| update.id).collect();
            // The owners' trips are locked (as every regrouping does) before
            // their reservations, so this never deadlocks with a regrouping.
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtextextended(tenant_id || '/' || user_id, 0)) \
                 FROM (SELECT DISTINCT tenant_id, user_id FROM reservations WHERE id = ANY($1) \
                       ORDER BY tenant_id, user_id) owners",
            )
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
            let rows = sqlx::query(&format!(
                "SELECT {RESERVATION_COLUMNS}, agency_hash FROM reservations WHERE id = ANY($1) FOR UPDATE"
            ))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
            let mut held: HashMap<Uuid, PgRow> = HashMap::with_capacity(rows.len());
            for row in rows {
                held.insert(row.try_get("id")?, row);
            }
            let mut changes = Vec::new();
            let (mut base_ids, mut base_etags, mut base_hashes, mut base_at) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut base_details = Vec::new();
            let mut regroups = BTreeSet::new();
            for update in &page.updates {
                let Some(row) = held.get(&update.id) else { continue };
                let before = reservation_from_row(row)?;
                match decide(&before, row.try_get("agency_hash")?, update) {
                    Decision::AlreadyApplied => outcome.already_applied += 1,
                    Decision::Baseline { details } => {
                        base_ids.push(update.id);
                        base_details.push(details);
                        base_etags.push(update.etag.clone());
                        base_hashes.push(update.hash);
                        base_at.push(update.detected_at);
                    }
                    Decision::Change { fields, diff, regroup } => {
                        if regroup {
                            regroups.insert((before.tenant_id.clone(), before.user_id.clone()));
                        }
                        changes.push(Change {
                            id: update.id,
                            version: before.version + 1,
                            tenant_id: before.tenant_id,
                            user_id: before.user_id,
                            status: fields.status.as_str(),
                            starts_at: fields.starts_at,
                            ends_at: fields.ends_at,
                            details: fields.details,
                            etag: update.etag.clone(),
                            hash: update.hash,
                            changes: Value::Object(diff),
                            changed_at: update.changed_at,
                            detected_at: update.detected_at,
                        });
                    }
                }
            }
            if !base_ids.is_empty() {
                sqlx::query(
                    "UPDATE reservations r SET agency_etag = u.etag, agency_hash = u.hash, checked_at = u.at, \
                       details = u.details \
                     FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::timestamptz[], $5::jsonb[]) \
                       AS u(id, etag, hash, at, details) \
                     WHERE r.id = u.id",
                )
                .bind(&base_ids)
                .bind(&base_etags)
                .bind(&base_hashes)
                .bind(&base_at)
                .bind(&base_details)
                .execute(&mut *tx)
                .await?;
                outcome.baselined = base_ids.len() as u64;
            }
            if !changes.is_empty() {
                write_changes(&mut tx, &changes).await?;
                for (tenant_id, user_id) in &regroups {
                    regroup(&mut tx, tenant_id, user_id).await?;
                }
                outcome.changed = changes.iter().map(|c| (c.id, c.changed_at.map(|at| c.detected_at - at))).collect();
            }
        }
        if !page.past.is_empty() {
            let ended = sqlx::query(
                "UPDATE reservations r SET ended = true \
                 WHERE r.id = ANY($1) AND NOT r.ended AND coalesce(r.ends_at, r.starts_at) < now() \
                   AND NOT EXISTS (SELECT 1 FROM trips t WHERE t.id = r.trip_id AND t.ends_at >= now())",
            )
            .bind(&page.past)
            .execute(&mut *tx)
            .await?;
            outcome.ended = ended.rows_affected();
        }
        if let Some((sweep_id, shard)) = page.shard {
            let shard = i32::try_from(shard).unwrap_or(i32::MAX);
            let held: Option<Option<String>> =
                sqlx::query_scalar("SELECT staleness FROM sweep_shards WHERE sweep_id = $1 AND shard = $2 FOR UPDATE")
                    .bind(sweep_id)
                    .bind(shard)
                    .fetch_optional(&mut *tx)
                    .await?;
            let staleness = merged_staleness(held.flatten().as_deref(), &outcome.changed)?;
            let tally = &page.tally;
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            sqlx::query(
                "UPDATE sweep_shards SET checked = checked + $3, changed = changed + $4, \
                   not_modified = not_modified + $5, not_found = not_found + $6, invalid = invalid + $7, \
                   failed = failed + $8, no_agency = no_agency + $9, ended = ended + $10, \
                   staleness = coalesce($11, staleness) \
                 WHERE sweep_id = $1 AND shard = $2",
            )
            .bind(sweep_id)
            .bind(shard)
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
        let mut tx = self.pool().begin().await?;
        if !attempt_holds(&mut tx, attempt).await? {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE sweep_shards SET started_at = coalesce(started_at, now()), \
               checked = CASE WHEN $3 THEN 0 ELSE checked END, \
               not_modified = CASE WHEN $3 THEN 0 ELSE not_modified END, \
               not_found = CASE WHEN $3 THEN 0 ELSE not_found END, \
               invalid = CASE WHEN $3 THEN 0 ELSE invalid END, \
               failed = CASE WHEN $3 THEN 0 ELSE failed END, \
               no_agency = CASE WHEN $3 THEN 0 ELSE no_agency END \
             WHERE sweep_id = $1 AND shard = $2",
        )
        .bind(sweep_id)
        .bind(i32::try_from(shard).unwrap_or(i32::MAX))
        .bind(retry)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_shard(&self, attempt: AttemptRef, sweep_id: Uuid, shard: u32, error: Option<&str>) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        if !attempt_holds(&mut tx, attempt).await? {
            return Ok(false);
        }
        sqlx::query("UPDATE sweep_shards SET finished_at = now(), error = $3 WHERE sweep_id = $1 AND shard = $2")
            .bind(sweep_id)
            .bind(i32::try_from(shard).unwrap_or(i32::MAX))
            .bind(error)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn sweeps(&self, limit: u32) -> Result<Vec<SweepReport>> {
        let sweeps = sqlx::query(
            "SELECT id, started_at, active, shards, enqueued, skipped FROM sweeps ORDER BY slot DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let ids: Vec<Uuid> = sweeps.iter().map(|row| row.try_get("id")).collect::<std::result::Result<_, _>>()?;
        let shards = sqlx::query(
            "SELECT sweep_id, checked, changed, not_modified, not_found, invalid, failed, no_agency, ended, \
               staleness, finished_at, error FROM sweep_shards WHERE sweep_id = ANY($1) ORDER BY shard",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        let mut totals: HashMap<Uuid, SweepTotals> = HashMap::new();
        for row in &shards {
            let id: Uuid = row.try_get("sweep_id")?;
            let total = match totals.entry(id) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => entry.insert(SweepTotals::new()?),
            };
            total.add(
                [
                    row.try_get("checked")?,
                    row.try_get("changed")?,
                    row.try_get("not_modified")?,
                    row.try_get("not_found")?,
                    row.try_get("invalid")?,
                    row.try_get("failed")?,
                    row.try_get("no_agency")?,
                    row.try_get("ended")?,
                ],
                row.try_get("finished_at")?,
                row.try_get("error")?,
                row.try_get::<Option<&str>, _>("staleness")?,
            )?;
        }
        sweeps
            .iter()
            .map(|row| {
                let id: Uuid = row.try_get("id")?;
                let totals = match totals.remove(&id) {
                    Some(totals) => totals,
                    None => SweepTotals::new()?,
                };
                Ok(totals.report(
                    id,
                    row.try_get("started_at")?,
                    row.try_get("active")?,
                    [row.try_get("shards")?, row.try_get("enqueued")?, row.try_get("skipped")?],
                ))
            })
            .collect()
    }

    async fn tenant_sweeps(&self, tenant_id: &str, limit: u32) -> Result<Vec<TenantSweep>> {
        // Each sweep's window runs from its start to the next one's; the
        // tenant's agency changes detected in it are its findings.
        let rows = sqlx::query(
            "WITH s AS (SELECT id, slot, started_at, enqueued FROM sweeps ORDER BY slot DESC LIMIT $2), \
             w AS (SELECT id, started_at, enqueued, \
               coalesce(lag(started_at) OVER (ORDER BY slot DESC), 'infinity'::timestamptz) AS until FROM s) \
             SELECT w.id, w.started_at, w.enqueued::int8 AS enqueued, \
               (SELECT count(*) FROM sweep_shards sh WHERE sh.sweep_id = w.id AND sh.finished_at IS NOT NULL) \
                 AS finished_shards, \
               (SELECT max(finished_at) FROM sweep_shards sh WHERE sh.sweep_id = w.id) AS last_finished, \
               c.changed, c.measured, c.p50, c.p90, c.p99, c.max \
             FROM w LEFT JOIN LATERAL ( \
               SELECT count(*) AS changed, count(x.s) AS measured, \
                 percentile_disc(0.5) WITHIN GROUP (ORDER BY x.s) AS p50, \
                 percentile_disc(0.9) WITHIN GROUP (ORDER BY x.s) AS p90, \
                 percentile_disc(0.99) WITHIN GROUP (ORDER BY x.s) AS p99, max(x.s) AS max \
               FROM (SELECT greatest(extract(epoch FROM detected_at - changed_at), 0)::float8 AS s \
                 FROM reservation_changes WHERE tenant_id = $1 AND source = 'agency' \
                   AND detected_at >= w.started_at AND detected_at < w.until) x) c ON true \
             ORDER BY w.started_at DESC",
        )
        .bind(tenant_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let staleness = Staleness {
                    count: u64::try_from(row.try_get::<i64, _>("measured")?).unwrap_or(0),
                    p50_seconds: row.try_get("p50")?,
                    p90_seconds: row.try_get("p90")?,
                    p99_seconds: row.try_get("p99")?,
                    max_seconds: row.try_get("max")?,
                };
                Ok(TenantSweep::new(
                    row.try_get("id")?,
                    row.try_get("started_at")?,
                    (row.try_get("enqueued")?, row.try_get("finished_shards")?, row.try_get("last_finished")?),
                    row.try_get("changed")?,
                    staleness,
                ))
            })
            .collect()
    }

    async fn prune_sweeps(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sweeps WHERE started_at < $1").bind(before).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }
}

/// Writes the page's changes: the new fields and version, one history row
/// and one `reservation.changed` event each, in three statements.
async fn write_changes(tx: &mut sqlx::PgConnection, changes: &[Change]) -> Result<()> {
    let ids: Vec<Uuid> = changes.iter().map(|c| c.id).collect();
    let statuses: Vec<&str> = changes.iter().map(|c| c.status).collect();
    let starts: Vec<DateTime<Utc>> = changes.iter().map(|c| c.starts_at).collect();
    let ends: Vec<Option<DateTime<Utc>>> = changes.iter().map(|c| c.ends_at).collect();
    let details: Vec<Value> = changes.iter().map(|c| c.details.clone()).collect();
    let etags: Vec<Option<String>> = changes.iter().map(|c| c.etag.clone()).collect();
    let hashes: Vec<i64> = changes.iter().map(|c| c.hash).collect();
    let versions: Vec<i64> = changes.iter().map(|c| c.version).collect();
    let detected: Vec<DateTime<Utc>> = changes.iter().map(|c| c.detected_at).collect();
    sqlx::query(
        "UPDATE reservations r SET status = u.status, starts_at = u.starts_at, ends_at = u.ends_at, \
           details = u.details, agency_etag = u.etag, agency_hash = u.hash, version = u.version, \
           checked_at = u.at, ended = false, vendor_changes = r.vendor_changes + 1, updated_at = now() \
         FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::jsonb[], $6::text[], \
                     $7::int8[], $8::int8[], $9::timestamptz[]) \
           AS u(id, status, starts_at, ends_at, details, etag, hash, version, at) \
         WHERE r.id = u.id",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&starts)
    .bind(&ends)
    .bind(&details)
    .bind(&etags)
    .bind(&hashes)
    .bind(&versions)
    .bind(&detected)
    .execute(&mut *tx)
    .await?;
    let tenants: Vec<&str> = changes.iter().map(|c| c.tenant_id.as_str()).collect();
    let diffs: Vec<Value> = changes.iter().map(|c| c.changes.clone()).collect();
    let changed_at: Vec<Option<DateTime<Utc>>> = changes.iter().map(|c| c.changed_at).collect();
    sqlx::query(
        "INSERT INTO reservation_changes (tenant_id, reservation_id, source, changes, changed_at, detected_at) \
         SELECT tenant_id, id, 'agency', changes, changed_at, detected_at \
         FROM unnest($1::text[], $2::uuid[], $3::jsonb[], $4::timestamptz[], $5::timestamptz[]) \
           AS c(tenant_id, id, changes, changed_at, detected_at)",
    )
    .bind(&tenants)
    .bind(&ids)
    .bind(&diffs)
    .bind(&changed_at)
    .bind(&detected)
    .execute(&mut *tx)
    .await?;
    let events: Vec<Value> = changes
        .iter()
        .map(|c| changed_event(c.id, &c.tenant_id, &c.user_id, c.version, &c.changes, c.changed_at, c.detected_at))
        .collect();
    sqlx::query(
        "INSERT INTO outbox (tenant_id, event_type, payload) \
         SELECT tenant_id, $3, payload FROM unnest($1::text[], $2::jsonb[]) AS e(tenant_id, payload)",
    )
    .bind(&tenants)
    .bind(&events)
    .bind(RESERVATION_CHANGED)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
