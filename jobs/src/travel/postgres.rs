//! Reservations and trips on PostgreSQL.

use super::reservation_from_row;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, QueryBuilder, Row};
use uuid::Uuid;

use serde_json::Value;

use super::{
    group_into_trips,
    trips::{places, Member},
    year_bounds, ChangeOrigin, MoveOutcome, Reservation, ReservationChange, ReservationFields, ReservationFilter,
    ReservationSource, ReservationStatus, ReservationType, TravelStore, Trip, TripSpan, VendorFigures, YearFigures,
};
use crate::{
    model::Scope,
    store::{parse_enum, postgres::push_scope, PgStore, Result},
};

pub(super) const RESERVATION_COLUMNS: &str =
    "id, tenant_id, user_id, type, reservation_number, provider, status, starts_at, \
     ends_at, trip_id, trip_pinned, source, details, city, country, origin, destination, created_at, updated_at, \
     version, checked_at";

/// Regroups one user's trips, inside the caller's transaction. The user's
/// trips are locked first, so two writes for one user regroup one at a time.
pub(super) async fn regroup(conn: &mut PgConnection, tenant_id: &str, user_id: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
        .bind(tenant_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    // Every reservation of the user, through the user's index: the
    // confirmed ones are grouped, the cancelled ones leave their trip. (A
    // statement of its own for the cancelled ones, cached as a generic plan,
    // can pick the `trip_id` index instead and read every trip's rows.)
    let rows = sqlx::query(
        "SELECT id, type, status, starts_at, ends_at, city, origin, destination, trip_id, trip_pinned \
         FROM reservations WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut leaving = Vec::new();
    let mut confirmed = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<&str, _>("status")? == "confirmed" {
            confirmed.push(row);
        } else if row.try_get::<Option<Uuid>, _>("trip_id")?.is_some() {
            leaving.push(row.try_get::<Uuid, _>("id")?);
        }
    }
    let members = confirmed
        .into_iter()
        .map(|row| {
            Ok(Member {
                id: row.try_get("id")?,
                starts_at: row.try_get("starts_at")?,
                ends_at: row.try_get("ends_at")?,
                places: places(row.try_get("city")?, row.try_get("origin")?, row.try_get("destination")?),
                leaves_from_unknown: matches!(row.try_get::<&str, _>("type")?, "train" | "bus"),
                city: row.try_get("city")?,
                trip_id: row.try_get("trip_id")?,
                pinned: row.try_get("trip_pinned")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let plans = group_into_trips(members);
    let trip_ids: Vec<Uuid> = plans.iter().map(|plan| plan.id).collect();
    let names: Vec<&str> = plans.iter().map(|plan| plan.name.as_str()).collect();
    let starts: Vec<DateTime<Utc>> = plans.iter().map(|plan| plan.starts_at).collect();
    let ends: Vec<DateTime<Utc>> = plans.iter().map(|plan| plan.ends_at).collect();
    sqlx::query(
        "INSERT INTO trips (id, tenant_id, user_id, name, starts_at, ends_at) \
         SELECT id, $5, $6, name, starts_at, ends_at \
         FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS t(id, name, starts_at, ends_at) \
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, starts_at = EXCLUDED.starts_at, \
           ends_at = EXCLUDED.ends_at, updated_at = now() \
         WHERE (trips.name, trips.starts_at, trips.ends_at) \
           IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.starts_at, EXCLUDED.ends_at)",
    )
    .bind(&trip_ids)
    .bind(&names)
    .bind(&starts)
    .bind(&ends)
    .bind(tenant_id)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    let (members, member_trips): (Vec<Uuid>, Vec<Uuid>) =
        plans.iter().flat_map(|plan| plan.members.iter().map(move |id| (*id, plan.id))).unzip();
    sqlx::query(
        "UPDATE reservations r SET trip_id = m.trip_id \
         FROM unnest($1::uuid[], $2::uuid[]) AS m(id, trip_id) \
         WHERE r.id = m.id AND r.trip_id IS DISTINCT FROM m.trip_id",
    )
    .bind(&members)
    .bind(&member_trips)
    .execute(&mut *conn)
    .await?;
    if !leaving.is_empty() {
        sqlx::query("UPDATE reservations SET trip_id = NULL WHERE id = ANY($1)")
            .bind(&leaving)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("DELETE FROM trips WHERE tenant_id = $1 AND user_id = $2 AND NOT (id = ANY($3))")
        .bind(tenant_id)
        .bind(user_id)
        .bind(&trip_ids)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Writes a reservation's new fields and the history row of what changed,
/// inside the caller's transaction: every update (by its owner, in a newer
/// email, by the agency sweep) goes through here.
pub(super) async fn record_change(
    conn: &mut PgConnection,
    tenant_id: &str,
    id: Uuid,
    fields: &ReservationFields,
    changes: serde_json::Map<String, Value>,
    origin: ChangeOrigin,
) -> Result<()> {
    sqlx::query(
        "UPDATE reservations SET type = $2, reservation_number = $3, provider = $4, status = $5, \
             starts_at = $6, ends_at = $7, details = $8, city = $9, country = $10, origin = $11, \
             destination = $12, vendor_changes = vendor_changes + $13, version = version + 1, ended = false, \
             updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(fields.kind.as_str())
    .bind(&fields.reservation_number)
    .bind(&fields.provider)
    .bind(fields.status.as_str())
    .bind(fields.starts_at)
    .bind(fields.ends_at)
    .bind(&fields.details)
    .bind(&fields.city)
    .bind(&fields.country)
    .bind(&fields.origin)
    .bind(&fields.destination)
    .bind(i32::from(origin.is_vendor()))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO reservation_changes (tenant_id, reservation_id, source, changes, changed_at) \
             VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(origin.source.as_str())
    .bind(Value::Object(changes))
    .bind(origin.changed_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn reservation(conn: &mut PgConnection, id: Uuid) -> Result<Option<Reservation>> {
    let row = sqlx::query(&format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(reservation_from_row).transpose()
}

#[async_trait]
impl TravelStore for PgStore {
    async fn insert_reservations(
        &self,
        tenant_id: &str,
        user_id: &str,
        source: ReservationSource,
        reservations: &[ReservationFields],
    ) -> Result<Vec<Uuid>> {
        let mut tx = self.pool().begin().await?;
        let mut ids = Vec::with_capacity(reservations.len());
        for fields in reservations {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO reservations (id, tenant_id, user_id, type, reservation_number, provider, status, \
                 starts_at, ends_at, source, details, city, country, origin, destination) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(id)
            .bind(tenant_id)
            .bind(user_id)
            .bind(fields.kind.as_str())
            .bind(&fields.reservation_number)
            .bind(&fields.provider)
            .bind(fields.status.as_str())
            .bind(fields.starts_at)
            .bind(fields.ends_at)
            .bind(source.as_str())
            .bind(&fields.details)
            .bind(&fields.city)
            .bind(&fields.country)
            .bind(&fields.origin)
            .bind(&fields.destination)
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
        query.push_bind(id);
        push_scope(&mut query, scope);
        let row = query.build().fetch_optional(self.pool()).await?;
        row.as_ref().map(reservation_from_row).transpose()
    }

    async fn list_reservations(&self, scope: &Scope, filter: &ReservationFilter) -> Result<Vec<Reservation>> {
        let mut query = QueryBuilder::new(format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE true"));
        push_scope(&mut query, scope);
        if let Some(kind) = filter.kind {
            query.push(" AND type = ").push_bind(kind.as_str());
        }
        if let Some(status) = filter.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(trip_id) = filter.trip_id {
            query.push(" AND trip_id = ").push_bind(trip_id);
        }
        if let Some(from) = filter.starts_from {
            query.push(" AND starts_at >= ").push_bind(from);
        }
        if let Some(before) = filter.starts_before {
            query.push(" AND starts_at < ").push_bind(before);
        }
        let (after, order) = if filter.oldest_first { (">", "ASC") } else { ("<", "DESC") };
        if let Some((starts_at, id)) = filter.after {
            query
                .push(format!(" AND (starts_at, id) {after} ("))
                .push_bind(starts_at)
                .push(", ")
                .push_bind(id)
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
        let mut tx = self.pool().begin().await?;
        let mut query = QueryBuilder::new(format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = "));
        query.push_bind(id);
        push_scope(&mut query, scope);
        query.push(" FOR UPDATE");
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
        query.push_bind(id);
        push_scope(&mut query, scope);
        if query.build().fetch_optional(self.pool()).await?.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT id, source, changes, changed_at, detected_at FROM reservation_changes \
             WHERE reservation_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let changes = rows
            .iter()
            .map(|row| {
                Ok(ReservationChange {
                    id: row.try_get("id")?,
                    source: parse_enum(row.try_get::<&str, _>("source")?, "change source")?,
                    changes: row.try_get("changes")?,
                    changed_at: row.try_get("changed_at")?,
                    detected_at: row.try_get("detected_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(changes))
    }

    async fn move_reservation(&self, scope: &Scope, id: Uuid, trip: Option<Uuid>) -> Result<MoveOutcome> {
        let mut tx = self.pool().begin().await?;
        let mut query = QueryBuilder::new(format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = "));
        query.push_bind(id);
        push_scope(&mut query, scope);
        query.push(" FOR UPDATE");
        let Some(row) = query.build().fetch_optional(&mut *tx).await? else {
            return Ok(MoveOutcome::NoReservation);
        };
        let current = reservation_from_row(&row)?;
        if let Some(trip) = trip {
            if current.status == ReservationStatus::Cancelled {
                return Ok(MoveOutcome::Cancelled);
            }
            let owned = sqlx::query("SELECT 1 FROM trips WHERE id = $1 AND tenant_id = $2 AND user_id = $3")
                .bind(trip)
                .bind(&current.tenant_id)
                .bind(&current.user_id)
                .fetch_optional(&mut *tx)
                .await?;
            if owned.is_none() {
                return Ok(MoveOutcome::NoTrip);
            }
        }
        sqlx::query(
            "UPDATE reservations SET trip_id = coalesce($2, trip_id), trip_pinned = $3, updated_at = now() \
             WHERE id = $1",
        )
        .bind(id)
        .bind(trip)
        .bind(trip.is_some())
        .execute(&mut *tx)
        .await?;
        regroup(&mut tx, &current.tenant_id, &current.user_id).await?;
        let moved = reservation(&mut tx, id).await?;
        tx.commit().await?;
        Ok(moved.map_or(MoveOutcome::NoReservation, |r| MoveOutcome::Moved(Box::new(r))))
    }

    async fn delete_reservation(&self, scope: &Scope, id: Uuid) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let mut query = QueryBuilder::new("DELETE FROM reservations WHERE id = ");
        query.push_bind(id);
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
             FROM trips t WHERE true",
        );
        push_scope(&mut query, scope);
        if let Some((starts_at, id)) = after {
            query.push(" AND (t.starts_at, t.id) < (").push_bind(starts_at).push(", ").push_bind(id).push(")");
        }
        query.push(" ORDER BY t.starts_at DESC, t.id DESC LIMIT ").push_bind(i64::from(limit.max(1)));
        let rows = query.build().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                Ok(Trip {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    starts_at: row.try_get("starts_at")?,
                    ends_at: row.try_get("ends_at")?,
                    reservation_count: row.try_get("reservation_count")?,
                })
            })
            .collect()
    }

    async fn year_figures(&self, tenant_id: &str, user_id: &str, year: i32) -> Result<YearFigures> {
        let (from, to) = year_bounds(year)?;
        let pool = self.pool();
        // Every query reads one user's year through `reservations_user`.
        let scoped = "FROM reservations WHERE tenant_id = $1 AND user_id = $2 AND starts_at >= $3 AND starts_at < $4";
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
            "SELECT extract(month FROM starts_at AT TIME ZONE 'UTC')::int4 AS month, count(*) AS n {scoped} \
             AND status = 'confirmed' GROUP BY 1"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            figures.by_month.push((u32::try_from(row.try_get::<i32, _>("month")?).unwrap_or(0), row.try_get("n")?));
        }
        figures.hotel_nights = sqlx::query(&format!(
            "SELECT coalesce(sum((ends_at AT TIME ZONE 'UTC')::date - (starts_at AT TIME ZONE 'UTC')::date), 0)::int8 \
               AS nights {scoped} AND status = 'confirmed' AND type = 'lodging' AND ends_at IS NOT NULL"
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
            "SELECT name, starts_at, ends_at FROM trips WHERE tenant_id = $1 AND user_id = $2 \
             AND starts_at >= $3 AND starts_at < $4 ORDER BY starts_at, id",
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
                starts_at: row.try_get("starts_at")?,
                ends_at: row.try_get("ends_at")?,
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
        // One pass over the month (through `reservations_tenant_starts`, or
        // a parallel scan when the month is most of the table); the history
        // is not read: `vendor_changes` keeps its count.
        let rows = sqlx::query(
            "SELECT provider, type, count(*) AS reservations, \
               count(*) FILTER (WHERE status = 'cancelled') AS cancelled, \
               count(*) FILTER (WHERE vendor_changes > 0) AS changed, \
               coalesce(sum(vendor_changes), 0)::int8 AS changes \
             FROM reservations WHERE tenant_id = $1 AND starts_at >= $2 AND starts_at < $3 \
             GROUP BY provider, type",
        )
        .bind(tenant_id)
        .bind(from)
        .bind(to)
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
