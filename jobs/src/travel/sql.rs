//! Reservations and trips in SQL, once for both databases (see
//! `store::sql`).

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{
    group_into_trips, reservation_from_row,
    trips::{places, Member},
    year_bounds, ChangeOrigin, MoveOutcome, Reservation, ReservationChange, ReservationFields, ReservationFilter,
    ReservationSource, ReservationStatus, TravelStore, Trip, TripSpan, VendorFigures, YearFigures, Zone,
};
use crate::{
    model::Scope,
    notify::event_types::TRIP_READY,
    store::{
        from_row,
        sql::{Dialect, Exec, Sql, SqlStore, Table, Tx},
        Columns, FromColumn, Result,
    },
};

pub(crate) const RESERVATION_COLUMNS: &str =
    "id, tenant_id, user_id, type, reservation_number, provider, status, starts_at, \
     ends_at, trip_id, trip_pinned, source, details, city, country, origin, destination, start_zone, end_zone, \
     created_at, updated_at, version, checked_at";

/// Whether a regrouping tells travelers of their new trips: writes that
/// add reservations do; changes, moves and deletions only regroup (a trip
/// split off by a changed time is not news).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewTrips {
    Announce,
    Quiet,
}

/// Regroups one user's trips, inside the caller's transaction.
pub(crate) async fn regroup(tx: &mut Tx, tenant_id: &str, user_id: &str, new_trips: NewTrips) -> Result<()> {
    regroup_users(tx, tenant_id, &[user_id.to_owned()], new_trips).await
}

/// Regroups the trips of each of `users` (one tenant's), inside the
/// caller's transaction, in a fixed number of statements however many
/// users there are (a batch of an import touches hundreds). On PostgreSQL
/// the users are locked first, in order, so two writes for one user regroup
/// one at a time and two batches cannot deadlock; SQLite's one writer does
/// that already.
pub(crate) async fn regroup_users(tx: &mut Tx, tenant_id: &str, users: &[String], new_trips: NewTrips) -> Result<()> {
    let mut users: Vec<String> = users.to_vec();
    users.sort_unstable();
    users.dedup();
    if users.is_empty() {
        return Ok(());
    }
    if tx.dialect() == Dialect::Postgres {
        let mut lock = tx.sql("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || u.user_id, 0)) FROM ");
        lock = lock.bind(tenant_id);
        lock.push("(SELECT user_id FROM ")
            .push_table(Table::new().column("user_id", users.clone()), "l")
            .push(" ORDER BY user_id) AS u");
        tx.execute(lock).await?;
    }
    // Every reservation of the users, through the users' index: the
    // confirmed ones are grouped, the cancelled ones leave their trip. (A
    // statement of its own for the cancelled ones, cached as a generic plan,
    // can pick the `trip_id` index instead and read every trip's rows.)
    let mut select = tx
        .sql(
            "SELECT user_id, id, type, status, starts_at, ends_at, city, origin, destination, trip_id, trip_pinned \
             FROM reservations WHERE tenant_id = $1 AND ",
        )
        .bind(tenant_id);
    push_users(&mut select, "user_id", &users);
    let mut leaving = Vec::new();
    let mut members: std::collections::HashMap<String, Vec<Member>> = std::collections::HashMap::new();
    let mut held_trips = std::collections::HashSet::new();
    for row in tx.rows(select).await? {
        let trip_id = row.opt_uuid("trip_id")?;
        held_trips.extend(trip_id);
        if row.get::<String>("status")? != "confirmed" {
            leaving.extend(trip_id.map(|_| row.uuid("id")).transpose()?);
            continue;
        }
        let (city, origin, destination): (Option<String>, Option<String>, Option<String>) =
            (row.get("city")?, row.get("origin")?, row.get("destination")?);
        members.entry(row.get("user_id")?).or_default().push(Member {
            id: row.uuid("id")?,
            starts_at: row.time("starts_at")?,
            ends_at: row.opt_time("ends_at")?,
            places: places(city.as_deref(), origin.as_deref(), destination.as_deref()),
            leaves_from_unknown: matches!(row.get::<String>("type")?.as_str(), "train" | "bus"),
            city,
            trip_id,
            pinned: row.get("trip_pinned")?,
        });
    }
    let plans: Vec<(String, super::TripPlan)> = members
        .into_iter()
        .flat_map(|(user, members)| group_into_trips(members).into_iter().map(move |plan| (user.clone(), plan)))
        .collect();
    let trip_ids: Vec<Uuid> = plans.iter().map(|(_, plan)| plan.id).collect();
    let trips = Table::new()
        .column("id", trip_ids.clone())
        .column("user_id", plans.iter().map(|(user, _)| user.clone()).collect::<Vec<_>>())
        .column("name", plans.iter().map(|(_, plan)| plan.name.clone()).collect::<Vec<_>>())
        .column("starts_at", plans.iter().map(|(_, plan)| plan.starts_at).collect::<Vec<_>>())
        .column("ends_at", plans.iter().map(|(_, plan)| plan.ends_at).collect::<Vec<_>>());
    let mut upsert = tx
        .sql(
            "INSERT INTO trips (id, tenant_id, user_id, name, starts_at, ends_at, created_at, updated_at) \
             SELECT id, $1, user_id, name, starts_at, ends_at, now(), now() FROM ",
        )
        .bind(tenant_id);
    upsert.push_table(trips, "t").push(
        " WHERE true ON CONFLICT (id) DO UPDATE SET name = excluded.name, starts_at = excluded.starts_at, \
           ends_at = excluded.ends_at, updated_at = excluded.updated_at \
         WHERE trips.name IS DISTINCT FROM excluded.name OR trips.starts_at IS DISTINCT FROM excluded.starts_at \
           OR trips.ends_at IS DISTINCT FROM excluded.ends_at",
    );
    tx.execute(upsert).await?;
    let (members, member_trips): (Vec<Uuid>, Vec<Uuid>) =
        plans.iter().flat_map(|(_, plan)| plan.members.iter().map(move |id| (*id, plan.id))).unzip();
    // Bounded by the users' index, so the join reads only their rows
    // whatever plan the list of ids gets (without it, PostgreSQL may hash
    // the list and scan every reservation). SQLite, offered that index,
    // reads the users' rows first and scans the list for each (7.6 s to
    // group one user's 4,848): `+` keeps it to the list, each row found by
    // its id.
    let unindexed = if tx.dialect() == Dialect::Sqlite { "+" } else { "" };
    let mut join = tx.sql("UPDATE reservations SET trip_id = m.trip_id FROM ");
    join.push_table(Table::new().column("id", members).column("trip_id", member_trips), "m")
        .push(" WHERE reservations.id = m.id AND reservations.trip_id IS DISTINCT FROM m.trip_id AND ")
        .push(unindexed)
        .push("reservations.tenant_id = ")
        .push_bind(tenant_id)
        .push(" AND ")
        .push(unindexed);
    push_users(&mut join, "reservations.user_id", &users);
    tx.execute(join).await?;
    if !leaving.is_empty() {
        let mut leave = tx.sql("UPDATE reservations SET trip_id = NULL WHERE ");
        leave.push_any("id", leaving);
        tx.execute(leave).await?;
    }
    let mut delete = tx.sql("DELETE FROM trips WHERE tenant_id = $1 AND ").bind(tenant_id);
    push_users(&mut delete, "user_id", &users).push(" AND NOT (").push_any("id", trip_ids).push(")");
    tx.execute(delete).await?;
    if new_trips == NewTrips::Announce {
        announce_new_trips(tx, tenant_id, &plans, &held_trips).await?;
    }
    Ok(())
}

/// `column` is one of `users`. One user (every write but an import's
/// batch) is an equality on PostgreSQL, so that it reads the users' index
/// with both its columns whatever its statistics say: as `= ANY` of a
/// generic plan made while `trips` was small, [`regroup_users`]' delete
/// read every trip of the tenant (seen on the refresh bench: 1.4 ms a
/// change at 40,000 trips, growing with them). SQLite, which keeps no
/// statistics here, plans the list the same way at any size.
fn push_users<'a>(sql: &'a mut Sql, column: &str, users: &[String]) -> &'a mut Sql {
    match users {
        [user] if sql.dialect() == Dialect::Postgres => sql.push(column).push(" = ").push_bind(user.as_str()),
        _ => sql.push_any(column, users.to_vec()),
    }
}

/// One `trip.ready` event for each trip this regrouping made that had no
/// reservation before and has not started: its traveler hears that it is
/// put together. A trip already held (its id is kept as it grows) says
/// nothing again, and neither does a past one (an import of last year).
/// Only writes that add reservations ask for this ([`NewTrips::Announce`]).
async fn announce_new_trips(
    tx: &mut Tx,
    tenant_id: &str,
    plans: &[(String, super::TripPlan)],
    held: &std::collections::HashSet<Uuid>,
) -> Result<()> {
    let now = Utc::now();
    let events: Vec<Value> = plans
        .iter()
        .filter(|(_, plan)| !held.contains(&plan.id) && plan.starts_at > now)
        .map(|(user, plan)| {
            serde_json::json!({
                "trip_id": plan.id, "user_id": user, "name": plan.name, "starts_at": plan.starts_at,
                "ends_at": plan.ends_at, "reservations": plan.members.len(),
            })
        })
        .collect();
    if events.is_empty() {
        return Ok(());
    }
    let mut outbox = tx
        .sql("INSERT INTO outbox (tenant_id, event_type, payload, created_at) SELECT $1, $2, payload, now() FROM ")
        .bind(tenant_id)
        .bind(TRIP_READY);
    outbox.push_table(Table::new().column("payload", events), "e");
    tx.execute(outbox).await?;
    Ok(())
}

/// Writes a reservation's new fields and the history row of what changed,
/// inside the caller's transaction: every update (by its owner, in a newer
/// email, by the agency sweep) goes through here.
pub(crate) async fn record_change(
    tx: &mut Tx,
    tenant_id: &str,
    id: Uuid,
    fields: &ReservationFields,
    changes: serde_json::Map<String, Value>,
    origin: ChangeOrigin,
) -> Result<()> {
    let update = tx
        .sql(
            "UPDATE reservations SET type = $2, reservation_number = $3, provider = $4, status = $5, \
             starts_at = $6, ends_at = $7, details = $8, city = $9, country = $10, origin = $11, \
             destination = $12, start_zone = $13, end_zone = $14, vendor_changes = vendor_changes + $15, \
             version = version + 1, ended = false, \
             updated_at = now() WHERE id = $1",
        )
        .bind(id);
    let update = bind_fields(update, fields).bind(i32::from(origin.is_vendor()));
    tx.execute(update).await?;
    let history = tx
        .sql(
            "INSERT INTO reservation_changes (tenant_id, reservation_id, source, changes, changed_at, detected_at) \
             VALUES ($1, $2, $3, $4, $5, now())",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(origin.source.as_str())
        .bind(Value::Object(changes))
        .bind(origin.changed_at);
    tx.execute(history).await?;
    Ok(())
}

/// Binds a reservation's fields, in the order of its columns: type,
/// reservation_number, provider, status, starts_at, ends_at, details, city,
/// country, origin, destination, start_zone, end_zone.
fn bind_fields(sql: Sql, fields: &ReservationFields) -> Sql {
    sql.bind(fields.kind.as_str())
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
        .bind(fields.start_zone.map(|zone| zone.to_string()))
        .bind(fields.end_zone.map(|zone| zone.to_string()))
}

/// Inserts one reservation, inside the caller's transaction (which then
/// regroups its owner's trips). `dedupe_key` is the key an email's finding
/// is upserted by. Returns its id.
pub(crate) async fn insert_reservation(
    tx: &mut Tx,
    tenant_id: &str,
    user_id: &str,
    source: ReservationSource,
    fields: &ReservationFields,
    dedupe_key: Option<&str>,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let insert = tx
        .sql(
            "INSERT INTO reservations (id, tenant_id, user_id, source, dedupe_key, type, reservation_number, \
             provider, status, starts_at, ends_at, details, city, country, origin, destination, start_zone, \
             end_zone, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, now(), now())",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(user_id)
        .bind(source.as_str())
        .bind(dedupe_key);
    let insert = bind_fields(insert, fields);
    tx.execute(insert).await?;
    Ok(id)
}

async fn reservation(tx: &mut Tx, id: Uuid) -> Result<Option<Reservation>> {
    let select = tx.sql(&format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = $1")).bind(id);
    tx.maybe(select, reservation_from_row).await
}

/// One reservation in scope, locked for the caller's transaction.
async fn locked_reservation(tx: &mut Tx, scope: &Scope, id: Uuid) -> Result<Option<Reservation>> {
    let mut select = tx.sql(&format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = "));
    select.push_bind(id).push_scope(scope).push_lock(" FOR UPDATE");
    tx.maybe(select, reservation_from_row).await
}

#[async_trait]
impl<S: SqlStore> TravelStore for S {
    async fn insert_reservations(
        &self,
        tenant_id: &str,
        user_id: &str,
        source: ReservationSource,
        reservations: &[ReservationFields],
    ) -> Result<Vec<Uuid>> {
        let mut tx = self.db().begin().await?;
        let mut ids = Vec::with_capacity(reservations.len());
        for fields in reservations {
            ids.push(insert_reservation(&mut tx, tenant_id, user_id, source, fields, None).await?);
        }
        regroup(&mut tx, tenant_id, user_id, NewTrips::Announce).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn get_reservation(&self, scope: &Scope, id: Uuid) -> Result<Option<Reservation>> {
        let mut db = self.db();
        let mut select = db.sql(&format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = "));
        select.push_bind(id).push_scope(scope);
        db.maybe(select, reservation_from_row).await
    }

    async fn list_reservations(&self, scope: &Scope, filter: &ReservationFilter) -> Result<Vec<Reservation>> {
        let mut db = self.db();
        let mut select = db.sql(&format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE true"));
        select.push_scope(scope);
        if let Some(kind) = filter.kind {
            select.push(" AND type = ").push_bind(kind.as_str());
        }
        if let Some(status) = filter.status {
            select.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(trip_id) = filter.trip_id {
            select.push(" AND trip_id = ").push_bind(trip_id);
        }
        if let Some(from) = filter.starts_from {
            select.push(" AND starts_at >= ").push_bind(from);
        }
        if let Some(before) = filter.starts_before {
            select.push(" AND starts_at < ").push_bind(before);
        }
        let (after, order) = if filter.oldest_first { (">", "ASC") } else { ("<", "DESC") };
        if let Some((starts_at, id)) = filter.after {
            select.push(&format!(" AND (starts_at, id) {after} (")).push_bind(starts_at).push(", ").push_bind(id);
            select.push(")");
        }
        select
            .push(&format!(" ORDER BY starts_at {order}, id {order} LIMIT "))
            .push_bind(i64::from(filter.limit.max(1)));
        db.all(select, reservation_from_row).await
    }

    async fn update_reservation(
        &self,
        scope: &Scope,
        id: Uuid,
        fields: ReservationFields,
        origin: ChangeOrigin,
    ) -> Result<Option<Reservation>> {
        let mut tx = self.db().begin().await?;
        let Some(before) = locked_reservation(&mut tx, scope, id).await? else {
            return Ok(None);
        };
        let changes = fields.changes_from(&before.fields());
        if changes.is_empty() {
            return Ok(Some(before));
        }
        record_change(&mut tx, &before.tenant_id, id, &fields, changes, origin).await?;
        regroup(&mut tx, &before.tenant_id, &before.user_id, NewTrips::Quiet).await?;
        let updated = reservation(&mut tx, id).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn reservation_changes(&self, scope: &Scope, id: Uuid) -> Result<Option<Vec<ReservationChange>>> {
        let mut db = self.db();
        let mut exists = db.sql("SELECT id FROM reservations WHERE id = ");
        exists.push_bind(id).push_scope(scope);
        if db.optional(exists).await?.is_none() {
            return Ok(None);
        }
        let select = db
            .sql(
                "SELECT id, source, changes, changed_at, detected_at FROM reservation_changes \
                 WHERE reservation_id = $1 ORDER BY id",
            )
            .bind(id);
        let changes = db
            .all(select, |row| from_row!(row => ReservationChange { id, source, changes, changed_at, detected_at }))
            .await?;
        Ok(Some(changes))
    }

    async fn move_reservation(&self, scope: &Scope, id: Uuid, trip: Option<Uuid>) -> Result<MoveOutcome> {
        let mut tx = self.db().begin().await?;
        let Some(current) = locked_reservation(&mut tx, scope, id).await? else {
            return Ok(MoveOutcome::NoReservation);
        };
        if let Some(trip) = trip {
            if current.status == ReservationStatus::Cancelled {
                return Ok(MoveOutcome::Cancelled);
            }
            let owned = tx
                .sql("SELECT 1 AS owned FROM trips WHERE id = $1 AND tenant_id = $2 AND user_id = $3")
                .bind(trip)
                .bind(&current.tenant_id)
                .bind(&current.user_id);
            if tx.optional(owned).await?.is_none() {
                return Ok(MoveOutcome::NoTrip);
            }
        }
        let update = tx
            .sql(
                "UPDATE reservations SET trip_id = coalesce($2, trip_id), trip_pinned = $3, updated_at = now() \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(trip)
            .bind(trip.is_some());
        tx.execute(update).await?;
        regroup(&mut tx, &current.tenant_id, &current.user_id, NewTrips::Quiet).await?;
        let moved = reservation(&mut tx, id).await?;
        tx.commit().await?;
        Ok(moved.map_or(MoveOutcome::NoReservation, |r| MoveOutcome::Moved(Box::new(r))))
    }

    async fn delete_reservation(&self, scope: &Scope, id: Uuid) -> Result<bool> {
        let mut tx = self.db().begin().await?;
        let mut delete = tx.sql("DELETE FROM reservations WHERE id = ");
        delete.push_bind(id).push_scope(scope).push(" RETURNING tenant_id, user_id");
        let Some(row) = tx.optional(delete).await? else {
            return Ok(false);
        };
        let (tenant_id, user_id): (String, String) = (row.get("tenant_id")?, row.get("user_id")?);
        regroup(&mut tx, &tenant_id, &user_id, NewTrips::Quiet).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_trips(&self, scope: &Scope, after: Option<(DateTime<Utc>, Uuid)>, limit: u32) -> Result<Vec<Trip>> {
        let mut db = self.db();
        let mut select = db.sql(
            "SELECT t.id, t.name, t.starts_at, t.ends_at, \
               (SELECT count(*) FROM reservations r WHERE r.trip_id = t.id) AS reservation_count \
             FROM trips t WHERE true",
        );
        select.push_scope(scope);
        if let Some((starts_at, id)) = after {
            select.push(" AND (t.starts_at, t.id) < (").push_bind(starts_at).push(", ").push_bind(id).push(")");
        }
        select.push(" ORDER BY t.starts_at DESC, t.id DESC LIMIT ").push_bind(i64::from(limit.max(1)));
        db.all(select, |row| from_row!(row => Trip { id, name, starts_at, ends_at, reservation_count })).await
    }

    async fn year_figures(&self, tenant_id: &str, user_id: &str, year: i32, zone: Zone) -> Result<YearFigures> {
        let (from, to) = year_bounds(year, zone)?;
        let mut db = self.db();
        let dialect = db.dialect();
        // Every query reads one user's year through `reservations_user`.
        let year = |select: &str, rest: &str| {
            db.sql(&format!(
                "SELECT {select} FROM reservations \
                 WHERE tenant_id = $1 AND user_id = $2 AND starts_at >= $3 AND starts_at < $4 {rest}"
            ))
            .bind(tenant_id)
            .bind(user_id)
            .bind(from)
            .bind(to)
        };
        let confirmed = "AND status = 'confirmed'";
        let by_type = year("type, status, count(*) AS n", "GROUP BY type, status");
        // Counted per quarter hour, and the quarter hours placed in the
        // user's months here: the same on both databases, in any zone.
        let by_quarter = year(
            &format!("{} AS quarter, count(*) AS n", dialect.quarter_hour("starts_at")),
            &format!("{confirmed} GROUP BY 1"),
        );
        // A stay's nights are between its local dates, in its own zone.
        let stays = year(
            "starts_at, ends_at, start_zone, end_zone, city, country",
            &format!("{confirmed} AND type = 'lodging' AND ends_at IS NOT NULL"),
        );
        let routes = year(
            "origin, destination, count(*) AS n",
            &format!("{confirmed} AND type = 'flight' GROUP BY origin, destination"),
        );
        let places = year("DISTINCT city, country", confirmed);
        let providers = year(
            "type, provider, count(*) AS n",
            &format!("{confirmed} AND type IN ('flight', 'lodging', 'rental_car') GROUP BY type, provider"),
        );
        let mut figures = YearFigures::default();
        for row in db.rows(by_type).await? {
            let n: i64 = row.get("n")?;
            if row.get::<String>("status")? == "cancelled" {
                figures.cancelled += n;
            } else {
                figures.by_type.push((row.parsed("type", "reservation type")?, n));
            }
        }
        let mut by_month = std::collections::BTreeMap::<u32, i64>::new();
        for row in db.rows(by_quarter).await? {
            let quarter: i64 = row.get("quarter")?;
            let Some(at) = DateTime::from_timestamp(quarter.saturating_mul(900), 0) else { continue };
            *by_month.entry(zone.local(at).month()).or_default() += row.get::<i64>("n")?;
        }
        figures.by_month = by_month.into_iter().collect();
        for row in db.rows(stays).await? {
            let (starts_at, ends_at) = (row.time("starts_at")?, row.time("ends_at")?);
            let city: Option<String> = row.get("city")?;
            let country: Option<String> = row.get("country")?;
            let place = || Zone::of_city(city.as_deref(), country.as_deref());
            let start_zone = Option::<Zone>::from_column(&row, "start_zone")?.or_else(place);
            let end_zone = Option::<Zone>::from_column(&row, "end_zone")?.or(start_zone);
            let date =
                |zone: Option<Zone>, at: DateTime<Utc>| zone.map_or(at.date_naive(), |z| z.local(at).date_naive());
            figures.hotel_nights += (date(end_zone, ends_at) - date(start_zone, starts_at)).num_days().max(0);
        }
        for row in db.rows(routes).await? {
            figures.routes.push((row.get("origin")?, row.get("destination")?, row.get("n")?));
        }
        for row in db.rows(places).await? {
            figures.places.push((row.get("city")?, row.get("country")?));
        }
        for row in db.rows(providers).await? {
            figures.providers.push((row.parsed("type", "reservation type")?, row.get("provider")?, row.get("n")?));
        }
        let trips = db
            .sql(
                "SELECT name, starts_at, ends_at FROM trips WHERE tenant_id = $1 AND user_id = $2 \
                 AND starts_at >= $3 AND starts_at < $4 ORDER BY starts_at, id",
            )
            .bind(tenant_id)
            .bind(user_id)
            .bind(from)
            .bind(to);
        for row in db.rows(trips).await? {
            figures.trips.push(TripSpan {
                name: row.get("name")?,
                starts_at: row.time("starts_at")?,
                ends_at: row.time("ends_at")?,
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
        let mut db = self.db();
        let select = db
            .sql(
                "SELECT provider, type, count(*) AS reservations, \
                   count(*) FILTER (WHERE status = 'cancelled') AS cancelled, \
                   count(*) FILTER (WHERE vendor_changes > 0) AS changed, \
                   CAST(coalesce(sum(vendor_changes), 0) AS BIGINT) AS changes \
                 FROM reservations WHERE tenant_id = $1 AND starts_at >= $2 AND starts_at < $3 \
                 GROUP BY provider, type",
            )
            .bind(tenant_id)
            .bind(from)
            .bind(to);
        db.all(select, |row| {
            from_row!(row => VendorFigures {
                vendor = "provider", kind = "type", reservations, cancelled, changed, changes,
            })
        })
        .await
    }
}
