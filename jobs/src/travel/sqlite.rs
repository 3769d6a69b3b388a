//! Reservations and trips on SQLite (times in milliseconds, as in the jobs
//! table).

use super::reservation_from_row;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, SqliteConnection};
use uuid::Uuid;

use super::{
    group_into_trips,
    trips::{places, Member},
    year_bounds, ChangeOrigin, MoveOutcome, Reservation, ReservationChange, ReservationFields, ReservationFilter,
    ReservationSource, ReservationStatus, ReservationType, TravelStore, Trip, TripSpan, VendorFigures, YearFigures,
};
use crate::{
    model::Scope,
    store::{
        parse_enum,
        sqlite::{json, ms, now_ms, opt_time, push_scope, time},
        Result, SqliteStore, StoreError,
    },
};

pub(super) const RESERVATION_COLUMNS: &str =
    "id, tenant_id, user_id, type, reservation_number, provider, status, starts_at, \
     ends_at, trip_id, trip_pinned, source, details, city, country, origin, destination, created_at, updated_at, \
     version, checked_at";

pub(super) fn uuid(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|err| StoreError::Corrupt(format!("id `{text}`: {err}")))
}

/// Regroups one user's trips, inside the caller's write transaction (SQLite
/// has one writer, so nobody regroups beside it).
pub(super) async fn regroup(conn: &mut SqliteConnection, tenant_id: &str, user_id: &str) -> Result<()> {
    let rows = sqlx::query(
        "SELECT id, type, starts_at, ends_at, city, origin, destination, trip_id, trip_pinned FROM reservations \
         WHERE tenant_id = ?1 AND user_id = ?2 AND status = 'confirmed'",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    let members = rows
        .iter()
        .map(|row| {
            Ok(Member {
                id: uuid(row.try_get("id")?)?,
                starts_at: time(row.try_get("starts_at")?)?,
                ends_at: opt_time(row.try_get("ends_at")?)?,
                places: places(row.try_get("city")?, row.try_get("origin")?, row.try_get("destination")?),
                leaves_from_unknown: matches!(row.try_get::<&str, _>("type")?, "train" | "bus"),
                city: row.try_get("city")?,
                trip_id: row.try_get::<Option<&str>, _>("trip_id")?.map(uuid).transpose()?,
                pinned: row.try_get("trip_pinned")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let plans = group_into_trips(members);
    let now = now_ms();
    for plan in &plans {
        sqlx::query(
            "INSERT INTO trips (id, tenant_id, user_id, name, starts_at, ends_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, starts_at = excluded.starts_at, \
               ends_at = excluded.ends_at, updated_at = excluded.updated_at \
             WHERE trips.name IS NOT excluded.name OR trips.starts_at IS NOT excluded.starts_at \
               OR trips.ends_at IS NOT excluded.ends_at",
        )
        .bind(plan.id.to_string())
        .bind(tenant_id)
        .bind(user_id)
        .bind(&plan.name)
        .bind(ms(plan.starts_at))
        .bind(ms(plan.ends_at))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        for member in &plan.members {
            sqlx::query("UPDATE reservations SET trip_id = ?1 WHERE id = ?2 AND trip_id IS NOT ?1")
                .bind(plan.id.to_string())
                .bind(member.to_string())
                .execute(&mut *conn)
                .await?;
        }
    }
    sqlx::query(
        "UPDATE reservations SET trip_id = NULL \
         WHERE tenant_id = ?1 AND user_id = ?2 AND status = 'cancelled' AND trip_id IS NOT NULL",
    )
    .bind(tenant_id)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    let mut delete = QueryBuilder::new("DELETE FROM trips WHERE tenant_id = ");
    delete.push_bind(tenant_id.to_owned()).push(" AND user_id = ").push_bind(user_id.to_owned());
    if !plans.is_empty() {
        delete.push(" AND id NOT IN (");
        let mut ids = delete.separated(", ");
        for plan in &plans {
            ids.push_bind(plan.id.to_string());
        }
        delete.push(")");
    }
    delete.build().execute(&mut *conn).await?;
    Ok(())
}

/// Writes a reservation's new fields and the history row of what changed,
/// inside the caller's write transaction: every update (by its owner, in a
/// newer email, by the agency sweep) goes through here.
pub(super) async fn record_change(
    conn: &mut SqliteConnection,
    tenant_id: &str,
    id: Uuid,
    fields: &ReservationFields,
    changes: serde_json::Map<String, serde_json::Value>,
    origin: ChangeOrigin,
) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "UPDATE reservations SET type = ?2, reservation_number = ?3, provider = ?4, status = ?5, \
             starts_at = ?6, ends_at = ?7, details = ?8, city = ?9, country = ?10, origin = ?11, \
             destination = ?12, vendor_changes = vendor_changes + ?14, version = version + 1, ended = 0, \
             updated_at = ?13 WHERE id = ?1",
    )
    .bind(id.to_string())
    .bind(fields.kind.as_str())
    .bind(&fields.reservation_number)
    .bind(&fields.provider)
    .bind(fields.status.as_str())
    .bind(ms(fields.starts_at))
    .bind(fields.ends_at.map(ms))
    .bind(fields.details.to_string())
    .bind(&fields.city)
    .bind(&fields.country)
    .bind(&fields.origin)
    .bind(&fields.destination)
    .bind(now)
    .bind(i32::from(origin.is_vendor()))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO reservation_changes (tenant_id, reservation_id, source, changes, changed_at, detected_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(tenant_id)
    .bind(id.to_string())
    .bind(origin.source.as_str())
    .bind(serde_json::Value::Object(changes).to_string())
    .bind(origin.changed_at.map(ms))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn reservation(conn: &mut SqliteConnection, id: Uuid) -> Result<Option<Reservation>> {
    let row = sqlx::query(&format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?1"))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(reservation_from_row).transpose()
}

#[async_trait]
impl TravelStore for SqliteStore {
    async fn insert_reservations(
        &self,
        tenant_id: &str,
        user_id: &str,
        source: ReservationSource,
        reservations: &[ReservationFields],
    ) -> Result<Vec<Uuid>> {
        let now = now_ms();
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let mut ids = Vec::with_capacity(reservations.len());
        for fields in reservations {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO reservations (id, tenant_id, user_id, type, reservation_number, provider, status, \
                 starts_at, ends_at, source, details, city, country, origin, destination, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
            )
            .bind(id.to_string())
            .bind(tenant_id)
            .bind(user_id)
            .bind(fields.kind.as_str())
            .bind(&fields.reservation_number)
            .bind(&fields.provider)
            .bind(fields.status.as_str())
            .bind(ms(fields.starts_at))
            .bind(fields.ends_at.map(ms))
            .bind(source.as_str())
            .bind(fields.details.to_string())
            .bind(&fields.city)
            .bind(&fields.country)
            .bind(&fields.origin)
            .bind(&fields.destination)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            ids.push(id);
        }
        regroup(&mut tx, tenant_id, user_id).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn get_reservation(&self, scope: &Scope, id: Uuid) -> Result<Option<Reservation>> {
        let mut query = QueryBuilder::new(format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = "));
        query.push_bind(id.to_string());
        push_scope(&mut query, scope);
        let row = query.build().fetch_optional(self.pool()).await?;
        row.as_ref().map(reservation_from_row).transpose()
    }

    async fn list_reservations(&self, scope: &Scope, filter: &ReservationFilter) -> Result<Vec<Reservation>> {
        let mut query = QueryBuilder::new(format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE 1"));
        push_scope(&mut query, scope);
        if let Some(kind) = filter.kind {
            query.push(" AND type = ").push_bind(kind.as_str());
        }
        if let Some(status) = filter.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(trip_id) = filter.trip_id {
            query.push(" AND trip_id = ").push_bind(trip_id.to_string());
        }
        if let Some(from) = filter.starts_from {
            query.push(" AND starts_at >= ").push_bind(ms(from));
        }
        if let Some(before) = filter.starts_before {
            query.push(" AND starts_at < ").push_bind(ms(before));
        }
        let (after, order) = if filter.oldest_first { (">", "ASC") } else { ("<", "DESC") };
        if let Some((starts_at, id)) = filter.after {
            query
                .push(format!(" AND (starts_at, id) {after} ("))
                .push_bind(ms(starts_at))
                .push(", ")
                .push_bind(id.to_string())
                .push(")");
        }
        query.push(format!(" ORDER BY starts_at {order}, id {order} LIMIT ")).push_bind(i64::from(filter.limit.max(1)));
        let rows = query.build().fetch_all(self.pool()).await?;
        rows.iter().map(reservation_from_row).collect()
    }

    async fn update_reservation(
        &self,
        scope: &Scope,
        id: Uuid,
        fields: ReservationFields,
        origin: ChangeOrigin,
    ) -> Result<Option<Reservation>> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let mut query = QueryBuilder::new(format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = "));
        query.push_bind(id.to_string());
        push_scope(&mut query, scope);
        let Some(row) = query.build().fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let before = reservation_from_row(&row)?;
        let changes = fields.changes_from(&before.fields());
        if changes.is_empty() {
            return Ok(Some(before));
        }
        record_change(&mut tx, &before.tenant_id, id, &fields, changes, origin).await?;
        regroup(&mut tx, &before.tenant_id, &before.user_id).await?;
        let updated = reservation(&mut tx, id).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn reservation_changes(&self, scope: &Scope, id: Uuid) -> Result<Option<Vec<ReservationChange>>> {
        let mut query = QueryBuilder::new("SELECT id FROM reservations WHERE id = ");
        query.push_bind(id.to_string());
        push_scope(&mut query, scope);
        if query.build().fetch_optional(self.pool()).await?.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT id, source, changes, changed_at, detected_at FROM reservation_changes \
             WHERE reservation_id = ?1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(self.pool())
        .await?;
        let changes = rows
            .iter()
            .map(|row| {
                Ok(ReservationChange {
                    id: row.try_get("id")?,
                    source: parse_enum(row.try_get::<&str, _>("source")?, "change source")?,
                    changes: json(row.try_get("changes")?, "changes")?,
                    changed_at: opt_time(row.try_get("changed_at")?)?,
                    detected_at: time(row.try_get("detected_at")?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(changes))
    }

    async fn move_reservation(&self, scope: &Scope, id: Uuid, trip: Option<Uuid>) -> Result<MoveOutcome> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let mut query = QueryBuilder::new(format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = "));
        query.push_bind(id.to_string());
        push_scope(&mut query, scope);
        let Some(row) = query.build().fetch_optional(&mut *tx).await? else {
            return Ok(MoveOutcome::NoReservation);
        };
        let current = reservation_from_row(&row)?;
        if let Some(trip) = trip {
            if current.status == ReservationStatus::Cancelled {
                return Ok(MoveOutcome::Cancelled);
            }
            let owned = sqlx::query("SELECT 1 FROM trips WHERE id = ?1 AND tenant_id = ?2 AND user_id = ?3")
                .bind(trip.to_string())
                .bind(&current.tenant_id)
                .bind(&current.user_id)
                .fetch_optional(&mut *tx)
                .await?;
            if owned.is_none() {
                return Ok(MoveOutcome::NoTrip);
            }
        }
        sqlx::query(
            "UPDATE reservations SET trip_id = coalesce(?2, trip_id), trip_pinned = ?3, updated_at = ?4 WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(trip.map(|t| t.to_string()))
        .bind(trip.is_some())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        regroup(&mut tx, &current.tenant_id, &current.user_id).await?;
        let moved = reservation(&mut tx, id).await?;
        tx.commit().await?;
        Ok(moved.map_or(MoveOutcome::NoReservation, |r| MoveOutcome::Moved(Box::new(r))))
    }

    async fn delete_reservation(&self, scope: &Scope, id: Uuid) -> Result<bool> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let mut query = QueryBuilder::new("DELETE FROM reservations WHERE id = ");
        query.push_bind(id.to_string());
        push_scope(&mut query, scope);
        query.push(" RETURNING tenant_id, user_id");
        let Some(row) = query.build().fetch_optional(&mut *tx).await? else {
            return Ok(false);
        };
        let (tenant_id, user_id): (String, String) = (row.try_get("tenant_id")?, row.try_get("user_id")?);
        regroup(&mut tx, &tenant_id, &user_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_trips(&self, scope: &Scope, after: Option<(DateTime<Utc>, Uuid)>, limit: u32) -> Result<Vec<Trip>> {
        let mut query = QueryBuilder::new(
            "SELECT t.id, t.name, t.starts_at, t.ends_at, \
               (SELECT count(*) FROM reservations r WHERE r.trip_id = t.id) AS reservation_count \
             FROM trips t WHERE 1",
        );
        push_scope(&mut query, scope);
        if let Some((starts_at, id)) = after {
            query
                .push(" AND (t.starts_at, t.id) < (")
                .push_bind(ms(starts_at))
                .push(", ")
                .push_bind(id.to_string())
                .push(")");
        }
        query.push(" ORDER BY t.starts_at DESC, t.id DESC LIMIT ").push_bind(i64::from(limit.max(1)));
        let rows = query.build().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                Ok(Trip {
                    id: uuid(row.try_get("id")?)?,
                    name: row.try_get("name")?,
                    starts_at: time(row.try_get("starts_at")?)?,
                    ends_at: time(row.try_get("ends_at")?)?,
                    reservation_count: row.try_get("reservation_count")?,
                })
            })
            .collect()
    }

    async fn year_figures(&self, tenant_id: &str, user_id: &str, year: i32) -> Result<YearFigures> {
        let (from, to) = year_bounds(year)?;
        let (from, to) = (ms(from), ms(to));
        let pool = self.pool();
        let scoped = "FROM reservations WHERE tenant_id = ?1 AND user_id = ?2 AND starts_at >= ?3 AND starts_at < ?4";
        let mut figures = YearFigures::default();
        let rows = sqlx::query(&format!("SELECT type, status, count(*) AS n {scoped} GROUP BY type, status"))
            .bind(tenant_id)
            .bind(user_id)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?;
        for row in &rows {
            let kind: ReservationType = parse_enum(row.try_get::<&str, _>("type")?, "reservation type")?;
            let n: i64 = row.try_get("n")?;
            if row.try_get::<&str, _>("status")? == "cancelled" {
                figures.cancelled += n;
            } else {
                figures.by_type.push((kind, n));
            }
        }
        let rows = sqlx::query(&format!(
            "SELECT CAST(strftime('%m', starts_at / 1000, 'unixepoch') AS INTEGER) AS month, count(*) AS n \
             {scoped} AND status = 'confirmed' GROUP BY 1"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            figures.by_month.push((u32::try_from(row.try_get::<i64, _>("month")?).unwrap_or(0), row.try_get("n")?));
        }
        figures.hotel_nights = sqlx::query(&format!(
            "SELECT coalesce(sum(CAST(julianday(date(ends_at / 1000, 'unixepoch')) \
               - julianday(date(starts_at / 1000, 'unixepoch')) AS INTEGER)), 0) AS nights \
             {scoped} AND status = 'confirmed' AND type = 'lodging' AND ends_at IS NOT NULL"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await?
        .try_get("nights")?;
        let rows = sqlx::query(&format!(
            "SELECT origin, destination, count(*) AS n {scoped} AND status = 'confirmed' AND type = 'flight' \
             GROUP BY origin, destination"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            figures.routes.push((row.try_get("origin")?, row.try_get("destination")?, row.try_get("n")?));
        }
        let rows = sqlx::query(&format!("SELECT DISTINCT city, country {scoped} AND status = 'confirmed'"))
            .bind(tenant_id)
            .bind(user_id)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?;
        for row in &rows {
            figures.places.push((row.try_get("city")?, row.try_get("country")?));
        }
        let rows = sqlx::query(&format!(
            "SELECT type, provider, count(*) AS n {scoped} AND status = 'confirmed' \
             AND type IN ('flight', 'lodging', 'rental_car') GROUP BY type, provider"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            let kind: ReservationType = parse_enum(row.try_get::<&str, _>("type")?, "reservation type")?;
            figures.providers.push((kind, row.try_get("provider")?, row.try_get("n")?));
        }
        let rows = sqlx::query(
            "SELECT name, starts_at, ends_at FROM trips WHERE tenant_id = ?1 AND user_id = ?2 \
             AND starts_at >= ?3 AND starts_at < ?4 ORDER BY starts_at, id",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            figures.trips.push(TripSpan {
                name: row.try_get("name")?,
                starts_at: time(row.try_get("starts_at")?)?,
                ends_at: time(row.try_get("ends_at")?)?,
            });
        }
        Ok(figures)
    }

    async fn vendor_figures(
        &self,
        tenant_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<VendorFigures>> {
        let rows = sqlx::query(
            "SELECT provider, type, count(*) AS reservations, \
               sum(status = 'cancelled') AS cancelled, sum(vendor_changes > 0) AS changed, \
               coalesce(sum(vendor_changes), 0) AS changes \
             FROM reservations WHERE tenant_id = ?1 AND starts_at >= ?2 AND starts_at < ?3 \
             GROUP BY provider, type",
        )
        .bind(tenant_id)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(VendorFigures {
                    vendor: row.try_get("provider")?,
                    kind: parse_enum(row.try_get::<&str, _>("type")?, "reservation type")?,
                    reservations: row.try_get("reservations")?,
                    cancelled: row.try_get("cancelled")?,
                    changed: row.try_get("changed")?,
                    changes: row.try_get("changes")?,
                })
            })
            .collect()
    }
}
