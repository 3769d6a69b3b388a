//! The sweep's storage in SQL, once for both databases (see `store::sql`):
//! batched, one statement per kind of write (a [`Table`] of the page's
//! rows), one transaction per page.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{
    changed_event, decide, merged_staleness, shard_count, shard_keys, staleness_of, Decision, PageOutcome, PageWrite,
    RefreshStore, ShardItem, Staleness, SweepReport, SweepStart, SweepTotals, TenantSweep,
};
use crate::{
    notify::event_types::RESERVATION_CHANGED,
    store::{
        from_row,
        sql::{attempt_holds, Db, Dialect, Exec, Row, SqlStore, Table, Tx},
        AttemptRef, Columns, Result,
    },
    travel::{
        reservation_from_row,
        sql::{regroup, NewTrips, RESERVATION_COLUMNS},
    },
};

/// A shard whose planner died before enqueuing its job is given up after
/// this long.
const NEVER_ENQUEUED: TimeDelta = TimeDelta::minutes(10);

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

/// A reservation's agency baseline, first seen.
struct Baseline {
    id: Uuid,
    etag: Option<String>,
    hash: i64,
    at: DateTime<Utc>,
    details: Value,
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn shard_number(shard: u32) -> i32 {
    i32::try_from(shard).unwrap_or(i32::MAX)
}

#[async_trait]
impl<S: SqlStore> RefreshStore for S {
    async fn begin_sweep(&self, slot: DateTime<Utc>, shard_size: u32) -> Result<Option<SweepStart>> {
        let mut tx = self.db().begin().await?;
        let sweep_id = Uuid::now_v7();
        let active = tx.sql("SELECT count(*) AS n FROM reservations WHERE status = 'confirmed' AND NOT ended");
        let active: i64 = tx.one(active).await?.get("n")?;
        let shards = shard_count(active, shard_size);
        let start = tx
            .sql(
                "INSERT INTO sweeps (id, slot, started_at, active, shards, enqueued, skipped) \
                 VALUES ($1, $2, now(), $3, $4, 0, 0) ON CONFLICT (slot) DO NOTHING",
            )
            .bind(sweep_id)
            .bind(slot)
            .bind(active)
            .bind(i64::from(shards));
        if tx.execute(start).await? == 0 {
            return Ok(None);
        }
        // Shards whose job ended without finishing them (dead, cancelled,
        // or never enqueued by a planner that died) hold nothing back.
        let orphans = tx
            .sql(
                "UPDATE sweep_shards SET finished_at = now(), \
                   error = coalesce(error, 'its job ended as ' || \
                     coalesce((SELECT status FROM jobs WHERE id = sweep_shards.job_id), 'never enqueued')) \
                 WHERE finished_at IS NULL AND sweep_id <> $1 AND ( \
                   (SELECT status FROM jobs WHERE id = sweep_shards.job_id) \
                     IN ('succeeded', 'failed', 'dead', 'cancelled') \
                   OR (NOT EXISTS (SELECT 1 FROM jobs WHERE id = sweep_shards.job_id) \
                       AND (SELECT started_at FROM sweeps WHERE id = sweep_shards.sweep_id) < $2))",
            )
            .bind(sweep_id)
            .bind(Utc::now() - NEVER_ENQUEUED);
        tx.execute(orphans).await?;
        let running = tx.sql(
            "SELECT s.key_lo, s.key_hi FROM sweep_shards s JOIN jobs j ON j.id = s.job_id \
             WHERE s.finished_at IS NULL AND j.status IN ('queued', 'running')",
        );
        let running = tx
            .rows(running)
            .await?
            .iter()
            .map(|row| Ok((row.get::<i32>("key_lo")?, row.get::<i32>("key_hi")?)))
            .collect::<Result<Vec<_>>>()?;
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
            numbers.push(shard_number(shard));
            los.push(lo);
            his.push(hi);
            jobs.push(job_id);
        }
        let table =
            Table::new().column("shard", numbers).column("key_lo", los).column("key_hi", his).column("job_id", jobs);
        let mut insert = tx
            .sql("INSERT INTO sweep_shards (sweep_id, shard, key_lo, key_hi, job_id) SELECT $1, shard, key_lo, key_hi, job_id FROM ")
            .bind(sweep_id);
        insert.push_table(table, "s");
        tx.execute(insert).await?;
        let totals = tx
            .sql("UPDATE sweeps SET enqueued = $2, skipped = $3 WHERE id = $1")
            .bind(sweep_id)
            .bind(i32::try_from(enqueue.len()).unwrap_or(i32::MAX))
            .bind(i32::try_from(skipped).unwrap_or(i32::MAX));
        tx.execute(totals).await?;
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
        let mut db = self.db();
        let select = db
            .sql(
                "SELECT id, shard_key, provider, reservation_number, agency_etag, agency_hash, \
                   coalesce(ends_at, starts_at) < now() AS past \
                 FROM reservations \
                 WHERE status = 'confirmed' AND NOT ended AND shard_key >= $1 AND shard_key < $2 \
                   AND (shard_key, id) > ($3, $4) AND (CAST($5 AS TEXT) IS NULL OR tenant_id = $5) \
                 ORDER BY shard_key, id LIMIT $6",
            )
            .bind(keys.0)
            .bind(keys.1)
            .bind(after_key)
            .bind(after_id)
            .bind(tenant_id)
            .bind(i64::from(limit));
        db.all(select, |row| {
            from_row!(row => ShardItem {
                id, shard_key, provider, reservation_number, etag = "agency_etag", hash = "agency_hash", past,
            })
        })
        .await
    }

    async fn commit_page(&self, attempt: AttemptRef, page: &PageWrite) -> Result<Option<PageOutcome>> {
        let mut outcome = PageOutcome::default();
        let mut tx = self.db().begin().await?;
        if !attempt_holds(&mut tx, attempt).await? {
            return Ok(None);
        }
        if !page.updates.is_empty() {
            let ids: Vec<Uuid> = page.updates.iter().map(|update| update.id).collect();
            if tx.dialect() == Dialect::Postgres {
                // The owners' trips are locked (as every regrouping does)
                // before their reservations, so this never deadlocks with a
                // regrouping. (SQLite's one writer already holds them.)
                let mut lock = tx.sql(
                    "SELECT pg_advisory_xact_lock(hashtextextended(tenant_id || '/' || user_id, 0)) \
                     FROM (SELECT DISTINCT tenant_id, user_id FROM reservations WHERE ",
                );
                lock.push_any("id", ids.clone()).push(" ORDER BY tenant_id, user_id) owners");
                tx.execute(lock).await?;
            }
            let mut select = tx.sql(&format!("SELECT {RESERVATION_COLUMNS}, agency_hash FROM reservations WHERE "));
            select.push_any("id", ids).push_lock(" FOR UPDATE");
            let mut held: HashMap<Uuid, Row> = HashMap::with_capacity(page.updates.len());
            for row in tx.rows(select).await? {
                held.insert(row.uuid("id")?, row);
            }
            let mut changes = Vec::new();
            let mut baselines = Vec::new();
            let mut regroups = BTreeSet::new();
            for update in &page.updates {
                let Some(row) = held.get(&update.id) else { continue };
                let before = reservation_from_row(row)?;
                match decide(&before, row.get("agency_hash")?, update) {
                    Decision::AlreadyApplied => outcome.already_applied += 1,
                    Decision::Baseline { details } => baselines.push(Baseline {
                        id: update.id,
                        etag: update.etag.clone(),
                        hash: update.hash,
                        at: update.detected_at,
                        details,
                    }),
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
            if !baselines.is_empty() {
                outcome.baselined = baselines.len() as u64;
                write_baselines(&mut tx, baselines).await?;
            }
            if !changes.is_empty() {
                write_changes(&mut tx, &changes).await?;
                for (tenant_id, user_id) in &regroups {
                    regroup(&mut tx, tenant_id, user_id, NewTrips::Quiet).await?;
                }
                outcome.changed = changes.iter().map(|c| (c.id, c.changed_at.map(|at| c.detected_at - at))).collect();
            }
        }
        if !page.past.is_empty() {
            let mut ended = tx.sql("UPDATE reservations SET ended = true WHERE ");
            ended.push_any("id", page.past.clone()).push(
                " AND NOT ended AND coalesce(ends_at, starts_at) < now() \
                 AND NOT EXISTS (SELECT 1 FROM trips t WHERE t.id = reservations.trip_id AND t.ends_at >= now())",
            );
            outcome.ended = tx.execute(ended).await?;
        }
        if let Some((sweep_id, shard)) = page.shard {
            let shard = shard_number(shard);
            let mut select = tx
                .sql("SELECT staleness FROM sweep_shards WHERE sweep_id = $1 AND shard = $2")
                .bind(sweep_id)
                .bind(shard);
            select.push_lock(" FOR UPDATE");
            let held: Option<String> = match tx.optional(select).await? {
                Some(row) => row.get("staleness")?,
                None => None,
            };
            let staleness = merged_staleness(held.as_deref(), &outcome.changed)?;
            let tally = &page.tally;
            let update = tx
                .sql(
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
                .bind(staleness);
            tx.execute(update).await?;
        }
        tx.commit().await?;
        Ok(Some(outcome))
    }

    async fn start_shard(&self, attempt: AttemptRef, sweep_id: Uuid, shard: u32, retry: bool) -> Result<bool> {
        let mut tx = self.db().begin().await?;
        if !attempt_holds(&mut tx, attempt).await? {
            return Ok(false);
        }
        let start = tx
            .sql(
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
            .bind(shard_number(shard))
            .bind(retry);
        tx.execute(start).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_shard(&self, attempt: AttemptRef, sweep_id: Uuid, shard: u32, error: Option<&str>) -> Result<bool> {
        let mut tx = self.db().begin().await?;
        if !attempt_holds(&mut tx, attempt).await? {
            return Ok(false);
        }
        let finish = tx
            .sql("UPDATE sweep_shards SET finished_at = now(), error = $3 WHERE sweep_id = $1 AND shard = $2")
            .bind(sweep_id)
            .bind(shard_number(shard))
            .bind(error);
        tx.execute(finish).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn sweeps(&self, limit: u32) -> Result<Vec<SweepReport>> {
        let mut db = self.db();
        let select = db
            .sql("SELECT id, started_at, active, shards, enqueued, skipped FROM sweeps ORDER BY slot DESC LIMIT $1")
            .bind(i64::from(limit));
        let sweeps = db.rows(select).await?;
        let ids = sweeps.iter().map(|row| row.uuid("id")).collect::<Result<Vec<_>>>()?;
        let mut select = db.sql(
            "SELECT sweep_id, checked, changed, not_modified, not_found, invalid, failed, no_agency, ended, \
               staleness, finished_at, error FROM sweep_shards WHERE ",
        );
        select.push_any("sweep_id", ids).push(" ORDER BY shard");
        let mut totals: HashMap<Uuid, SweepTotals> = HashMap::new();
        for row in db.rows(select).await? {
            let total = match totals.entry(row.uuid("sweep_id")?) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => entry.insert(SweepTotals::new()?),
            };
            let staleness: Option<String> = row.get("staleness")?;
            total.add(
                [
                    row.get("checked")?,
                    row.get("changed")?,
                    row.get("not_modified")?,
                    row.get("not_found")?,
                    row.get("invalid")?,
                    row.get("failed")?,
                    row.get("no_agency")?,
                    row.get("ended")?,
                ],
                row.opt_time("finished_at")?,
                row.get("error")?,
                staleness.as_deref(),
            )?;
        }
        sweeps
            .iter()
            .map(|row| {
                let id = row.uuid("id")?;
                let totals = match totals.remove(&id) {
                    Some(totals) => totals,
                    None => SweepTotals::new()?,
                };
                Ok(totals.report(
                    id,
                    row.time("started_at")?,
                    row.get("active")?,
                    [row.get("shards")?, row.get("enqueued")?, row.get("skipped")?],
                ))
            })
            .collect()
    }

    async fn tenant_sweeps(&self, tenant_id: &str, limit: u32) -> Result<Vec<TenantSweep>> {
        match self.db() {
            db @ Db::Postgres(_) => tenant_sweeps_in_sql(db, tenant_id, limit).await,
            db @ Db::Sqlite(_) => tenant_sweeps_in_rust(db, tenant_id, limit).await,
        }
    }

    async fn prune_sweeps(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut db = self.db();
        let delete = db.sql("DELETE FROM sweeps WHERE started_at < $1").bind(before);
        db.execute(delete).await
    }
}

/// Records the agency's first answer for reservations it had not answered
/// for before: their etag, hash and details, in one statement.
async fn write_baselines(tx: &mut Tx, baselines: Vec<Baseline>) -> Result<()> {
    let (mut ids, mut etags, mut hashes, mut at, mut details) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for baseline in baselines {
        ids.push(baseline.id);
        etags.push(baseline.etag);
        hashes.push(baseline.hash);
        at.push(baseline.at);
        details.push(baseline.details);
    }
    let table = Table::new()
        .column("id", ids)
        .column("etag", etags)
        .column("hash", hashes)
        .column("at", at)
        .column("details", details);
    let mut update = tx.sql(
        "UPDATE reservations SET agency_etag = u.etag, agency_hash = u.hash, checked_at = u.at, details = u.details \
         FROM ",
    );
    update.push_table(table, "u").push(" WHERE reservations.id = u.id");
    tx.execute(update).await?;
    Ok(())
}

/// Writes the page's changes: the new fields and version, one history row
/// and one `reservation.changed` event each, in three statements.
async fn write_changes(tx: &mut Tx, changes: &[Change]) -> Result<()> {
    let ids: Vec<Uuid> = changes.iter().map(|c| c.id).collect();
    let detected: Vec<DateTime<Utc>> = changes.iter().map(|c| c.detected_at).collect();
    let tenants: Vec<String> = changes.iter().map(|c| c.tenant_id.clone()).collect();
    let rows = Table::new()
        .column("id", ids.clone())
        .column("status", changes.iter().map(|c| c.status.to_owned()).collect::<Vec<_>>())
        .column("starts_at", changes.iter().map(|c| c.starts_at).collect::<Vec<_>>())
        .column("ends_at", changes.iter().map(|c| c.ends_at).collect::<Vec<_>>())
        .column("details", changes.iter().map(|c| c.details.clone()).collect::<Vec<_>>())
        .column("etag", changes.iter().map(|c| c.etag.clone()).collect::<Vec<_>>())
        .column("hash", changes.iter().map(|c| c.hash).collect::<Vec<_>>())
        .column("version", changes.iter().map(|c| c.version).collect::<Vec<_>>())
        .column("at", detected.clone());
    let mut update = tx.sql(
        "UPDATE reservations SET status = u.status, starts_at = u.starts_at, ends_at = u.ends_at, \
           details = u.details, agency_etag = u.etag, agency_hash = u.hash, version = u.version, \
           checked_at = u.at, ended = false, vendor_changes = reservations.vendor_changes + 1, updated_at = now() \
         FROM ",
    );
    update.push_table(rows, "u").push(" WHERE reservations.id = u.id");
    tx.execute(update).await?;
    let history = Table::new()
        .column("tenant_id", tenants.clone())
        .column("id", ids)
        .column("changes", changes.iter().map(|c| c.changes.clone()).collect::<Vec<_>>())
        .column("changed_at", changes.iter().map(|c| c.changed_at).collect::<Vec<_>>())
        .column("detected_at", detected);
    let mut insert = tx.sql(
        "INSERT INTO reservation_changes (tenant_id, reservation_id, source, changes, changed_at, detected_at) \
         SELECT tenant_id, id, 'agency', changes, changed_at, detected_at FROM ",
    );
    insert.push_table(history, "c");
    tx.execute(insert).await?;
    let events: Vec<Value> = changes
        .iter()
        .map(|c| changed_event(c.id, &c.tenant_id, &c.user_id, c.version, &c.changes, c.changed_at, c.detected_at))
        .collect();
    let mut outbox = tx
        .sql("INSERT INTO outbox (tenant_id, event_type, payload, created_at) SELECT tenant_id, $1, payload, now() FROM ")
        .bind(RESERVATION_CHANGED);
    outbox.push_table(Table::new().column("tenant_id", tenants).column("payload", events), "e");
    tx.execute(outbox).await?;
    Ok(())
}

/// The tenant's sweeps with their findings' staleness, percentiles and all,
/// in one statement: PostgreSQL ranks the changes itself, however many a
/// window holds.
async fn tenant_sweeps_in_sql(mut db: Db<'_>, tenant_id: &str, limit: u32) -> Result<Vec<TenantSweep>> {
    // Each sweep's window runs from its start to the next one's; the
    // tenant's agency changes detected in it are its findings.
    let select = db
        .sql(
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
        .bind(i64::from(limit));
    db.all(select, |row| {
        let staleness = Staleness {
            count: u64::try_from(row.get::<i64>("measured")?).unwrap_or(0),
            p50_seconds: row.get("p50")?,
            p90_seconds: row.get("p90")?,
            p99_seconds: row.get("p99")?,
            max_seconds: row.get("max")?,
        };
        Ok(TenantSweep::new(
            row.uuid("id")?,
            row.time("started_at")?,
            (row.get("enqueued")?, row.get("finished_shards")?, row.opt_time("last_finished")?),
            row.get("changed")?,
            staleness,
        ))
    })
    .await
}

/// The same, for SQLite, which has no percentiles: each window's changes
/// are read and ranked here (the embedded backend's windows are small).
async fn tenant_sweeps_in_rust(mut db: Db<'_>, tenant_id: &str, limit: u32) -> Result<Vec<TenantSweep>> {
    let select = db
        .sql(
            "SELECT id, started_at, enqueued, \
               (SELECT count(*) FROM sweep_shards sh WHERE sh.sweep_id = sweeps.id AND sh.finished_at IS NOT NULL) \
                 AS finished_shards, \
               (SELECT max(finished_at) FROM sweep_shards sh WHERE sh.sweep_id = sweeps.id) AS last_finished \
             FROM sweeps ORDER BY slot DESC LIMIT $1",
        )
        .bind(i64::from(limit));
    let sweeps = db.rows(select).await?;
    let mut reports = Vec::with_capacity(sweeps.len());
    // Each sweep's window runs from its start to the next one's.
    let mut until: Option<DateTime<Utc>> = None;
    for row in &sweeps {
        let started_at = row.time("started_at")?;
        let mut window = db
            .sql(
                "SELECT changed_at, detected_at FROM reservation_changes \
                 WHERE tenant_id = $1 AND source = 'agency' AND detected_at >= $2",
            )
            .bind(tenant_id)
            .bind(started_at);
        if let Some(until) = until {
            window.push(" AND detected_at < ").push_bind(until);
        }
        let seen = db.rows(window).await?;
        let mut staleness = Vec::with_capacity(seen.len());
        for change in &seen {
            if let Some(changed_at) = change.opt_time("changed_at")? {
                let lag = change.time("detected_at")? - changed_at;
                staleness.push(lag.num_milliseconds().max(0) as f64 / 1000.0);
            }
        }
        reports.push(TenantSweep::new(
            row.uuid("id")?,
            started_at,
            (row.get("enqueued")?, row.get("finished_shards")?, row.opt_time("last_finished")?),
            i64::try_from(seen.len()).unwrap_or(i64::MAX),
            staleness_of(staleness),
        ));
        until = Some(started_at);
    }
    Ok(reports)
}
