//! Uploads and imported rows in SQL, once for both databases (see
//! `store::sql`).

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    profile_from_row, upload_from_row, upload_key, BatchCounts, ImportStore, ImportedReservation, ImportedUser,
    NewUpload, Upload, UserProfile,
};
use crate::{
    model::Scope,
    store::{
        sql::{attempt_holds, Exec, SqlStore, Table, Tx},
        AttemptRef, Columns, Result,
    },
    travel::{
        reservation_from_row,
        sql::{record_change, regroup_users, NewTrips, RESERVATION_COLUMNS},
        ChangeOrigin, ReservationSource,
    },
};

const UPLOAD_COLUMNS: &str =
    "id, tenant_id, user_id, purpose, content_type, status, size_bytes, created_at, uploaded_at, object_key";

/// A batch's transaction, fenced on `attempt` when there is one: `None`
/// when the attempt no longer holds its job.
async fn fenced<S: SqlStore + ?Sized>(store: &S, attempt: Option<AttemptRef>) -> Result<Option<Tx>> {
    let mut tx = store.db().begin().await?;
    if let Some(attempt) = attempt {
        if !attempt_holds(&mut tx, attempt).await? {
            return Ok(None);
        }
    }
    Ok(Some(tx))
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[async_trait]
impl<S: SqlStore> ImportStore for S {
    async fn insert_upload(&self, upload: NewUpload) -> Result<Upload> {
        let id = Uuid::now_v7();
        let key = upload_key(&upload.tenant_id, id)?;
        let mut db = self.db();
        let sql = db
            .sql(&format!(
                "INSERT INTO uploads (id, tenant_id, user_id, purpose, content_type, status, size_bytes, object_key, \
                 created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, now()) RETURNING {UPLOAD_COLUMNS}"
            ))
            .bind(id)
            .bind(upload.tenant_id)
            .bind(upload.user_id)
            .bind(upload.purpose.as_str())
            .bind(upload.content_type)
            .bind(upload.size_bytes.map(|size| i64::try_from(size).unwrap_or(i64::MAX)))
            .bind(key.as_str());
        upload_from_row(&db.one(sql).await?)
    }

    async fn get_upload(&self, scope: &Scope, id: Uuid) -> Result<Option<Upload>> {
        let mut db = self.db();
        let mut sql = db.sql(&format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = "));
        sql.push_bind(id).push_scope(scope);
        db.maybe(sql, upload_from_row).await
    }

    async fn mark_uploaded(&self, id: Uuid, size_bytes: u64) -> Result<bool> {
        let mut db = self.db();
        let sql = db
            .sql("UPDATE uploads SET status = 'uploaded', size_bytes = $2, uploaded_at = now() WHERE id = $1")
            .bind(id)
            .bind(i64::try_from(size_bytes).unwrap_or(i64::MAX));
        Ok(db.execute(sql).await? > 0)
    }

    async fn import_reservations(
        &self,
        tenant_id: &str,
        attempt: Option<AttemptRef>,
        rows: &[ImportedReservation],
    ) -> Result<Option<BatchCounts>> {
        let Some(mut tx) = fenced(self, attempt).await? else {
            return Ok(None);
        };
        let mut counts = BatchCounts::default();
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(Some(counts));
        }
        let keys: Vec<String> = rows.iter().map(ImportedReservation::dedupe_key).collect();
        let users: Vec<String> = rows.iter().map(|row| row.user_id.clone()).collect();
        // What the batch's keys hold now, locked until the batch commits:
        // driven from the keys, one index probe each (a semi-join from the
        // tenant's side would read all its reservations for every batch).
        let mut select = tx.sql(&format!("SELECT {RESERVATION_COLUMNS}, dedupe_key FROM "));
        select
            .push_table(Table::new().column("key_user", users).column("key_dedupe", keys.clone()), "k")
            .push(" JOIN reservations ON reservations.tenant_id = ")
            .push_bind(tenant_id)
            .push(" AND reservations.user_id = k.key_user AND reservations.dedupe_key = k.key_dedupe")
            .push_lock(" FOR UPDATE OF reservations");
        let mut stored = HashMap::new();
        for row in tx.rows(select).await? {
            let reservation = reservation_from_row(&row)?;
            let key: Option<String> = row.get("dedupe_key")?;
            if let Some(key) = key {
                stored.insert((reservation.user_id.clone(), key), reservation);
            }
        }
        let mut moved = Vec::new();
        let mut fresh: Vec<(&ImportedReservation, String)> = Vec::new();
        for (row, key) in rows.iter().zip(keys) {
            let Some(before) = stored.get(&(row.user_id.clone(), key.clone())) else {
                fresh.push((row, key));
                continue;
            };
            let now = before.fields();
            let merged = row.merged_into(&now);
            let changes = merged.changes_from(&now);
            if changes.is_empty() {
                counts.unchanged += 1;
                continue;
            }
            let origin = ChangeOrigin { source: ReservationSource::Manual, changed_at: None };
            record_change(&mut tx, tenant_id, before.id, &merged, changes, origin).await?;
            counts.updated += 1;
            moved.push(row.user_id.clone());
        }
        if !fresh.is_empty() {
            counts.inserted = count(fresh.len());
            moved.extend(fresh.iter().map(|(row, _)| row.user_id.clone()));
            let text = |pick: fn(&ImportedReservation) -> Option<String>| -> Vec<Option<String>> {
                fresh.iter().map(|(row, _)| pick(row)).collect()
            };
            let table = Table::new()
                .column("id", fresh.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
                .column("user_id", text(|row| Some(row.user_id.clone())))
                .column("dedupe_key", fresh.iter().map(|(_, key)| key.clone()).collect::<Vec<_>>())
                .column("type", text(|row| Some(row.fields.kind.as_str().to_owned())))
                .column("reservation_number", text(|row| Some(row.fields.reservation_number.clone())))
                .column("provider", text(|row| Some(row.fields.provider.clone())))
                .column("starts_at", fresh.iter().map(|(row, _)| row.fields.starts_at).collect::<Vec<_>>())
                .column("ends_at", fresh.iter().map(|(row, _)| row.fields.ends_at).collect::<Vec<_>>())
                .column("city", text(|row| row.fields.city.clone()))
                .column("country", text(|row| row.fields.country.clone()))
                .column("origin", text(|row| row.fields.origin.clone()))
                .column("destination", text(|row| row.fields.destination.clone()));
            let mut insert = tx
                .sql(
                    "INSERT INTO reservations (id, tenant_id, user_id, source, dedupe_key, type, reservation_number, \
                     provider, status, starts_at, ends_at, details, city, country, origin, destination, created_at, \
                     updated_at) \
                     SELECT id, $1, user_id, 'manual', dedupe_key, type, reservation_number, provider, 'confirmed', \
                     starts_at, ends_at, '{}', city, country, origin, destination, now(), now() FROM ",
                )
                .bind(tenant_id);
            insert.push_table(table, "r");
            tx.execute(insert).await?;
        }
        regroup_users(&mut tx, tenant_id, &moved, NewTrips::Announce).await?;
        tx.commit().await?;
        Ok(Some(counts))
    }

    async fn import_users(
        &self,
        tenant_id: &str,
        attempt: Option<AttemptRef>,
        rows: &[ImportedUser],
    ) -> Result<Option<BatchCounts>> {
        let Some(mut tx) = fenced(self, attempt).await? else {
            return Ok(None);
        };
        let text =
            |pick: fn(&ImportedUser) -> Option<String>| -> Vec<Option<String>> { rows.iter().map(pick).collect() };
        let ids: Vec<String> = rows.iter().map(|row| row.user_id.clone()).collect();
        let mut known = tx.sql("SELECT user_id FROM users WHERE tenant_id = $1 AND ").bind(tenant_id);
        known.push_any("user_id", ids);
        let mut existing = std::collections::HashSet::new();
        for row in tx.rows(known).await? {
            existing.insert(row.get::<String>("user_id")?);
        }
        let table = Table::new()
            .column("user_id", text(|row| Some(row.user_id.clone())))
            .column("email", text(|row| Some(row.email.clone())))
            .column("name", text(|row| row.name.clone()))
            .column("time_zone", text(|row| row.time_zone.clone()))
            .column("locale", text(|row| row.locale.clone()));
        // An empty cell keeps the stored value; a row equal to what is
        // stored updates nothing, and is not returned.
        let mut upsert = tx
            .sql(
                "INSERT INTO users (tenant_id, user_id, email, name, time_zone, locale, created_at, updated_at) \
                 SELECT $1, user_id, email, name, time_zone, locale, now(), now() FROM ",
            )
            .bind(tenant_id);
        upsert.push_table(table, "u").push(
            " WHERE true ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
               email = coalesce(excluded.email, users.email), name = coalesce(excluded.name, users.name), \
               time_zone = coalesce(excluded.time_zone, users.time_zone), \
               locale = coalesce(excluded.locale, users.locale), updated_at = excluded.updated_at \
             WHERE coalesce(excluded.email, users.email) IS DISTINCT FROM users.email \
               OR coalesce(excluded.name, users.name) IS DISTINCT FROM users.name \
               OR coalesce(excluded.time_zone, users.time_zone) IS DISTINCT FROM users.time_zone \
               OR coalesce(excluded.locale, users.locale) IS DISTINCT FROM users.locale \
             RETURNING user_id",
        );
        let written = tx.rows(upsert).await?;
        let mut counts = BatchCounts::default();
        for row in &written {
            if !existing.contains(&row.get::<String>("user_id")?) {
                counts.inserted += 1;
            } else {
                counts.updated += 1;
            }
        }
        counts.unchanged = count(rows.len().saturating_sub(written.len()));
        tx.commit().await?;
        Ok(Some(counts))
    }

    async fn get_user_profile(&self, tenant_id: &str, user_id: &str) -> Result<Option<UserProfile>> {
        let mut db = self.db();
        let sql = db
            .sql(
                "SELECT user_id, email, name, time_zone, locale, created_at, updated_at FROM users \
                 WHERE tenant_id = $1 AND user_id = $2",
            )
            .bind(tenant_id)
            .bind(user_id);
        db.maybe(sql, profile_from_row).await
    }
}
