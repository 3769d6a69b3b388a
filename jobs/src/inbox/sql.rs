//! Profiles, devices and notifications in SQL, once for both databases
//! (see `store::sql`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{
    device_from_row, notification_from_row, profile_from_row, push_from_row, Device, InboxStore, NewDevice,
    NewNotification, Notification, Profile, ProfilePatch, PushDelivery, PushOutcome, MAX_DEVICES_PER_USER,
};
use crate::store::{
    sql::{Exec, Sql, SqlStore, Table, Tx},
    Columns, Result,
};

const PROFILE_COLUMNS: &str = "user_id, email, name, time_zone, locale, notification_prefs, quiet_start, quiet_end";

const DEVICE_COLUMNS: &str =
    "id, tenant_id, user_id, platform, token, app_version, endpoint_arn, disabled_at, created_at, updated_at";

const NOTIFICATION_COLUMNS: &str = "id, type, title, body, data, urgent, deliver_at, read_at";

/// A `SELECT` of one user's notifications: `tail` follows the tenant and
/// user (`$1`, `$2`), its own values bound after them.
fn notifications_of(exec: &impl Exec, tenant_id: &str, user_id: &str, tail: &str) -> Sql {
    exec.sql(&format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE tenant_id = $1 AND user_id = $2 {tail}"))
        .bind(tenant_id)
        .bind(user_id)
}

/// Why a device's pending pushes were dropped when its token died.
const DEAD_TOKEN: &str = "the push service no longer accepts this device's token";

async fn profile_row(tx: &mut Tx, tenant_id: &str, user_id: &str) -> Result<Option<(Profile, Value)>> {
    let mut sql = tx.sql(&format!("SELECT {PROFILE_COLUMNS} FROM users WHERE tenant_id = $1 AND user_id = $2"));
    sql = sql.bind(tenant_id).bind(user_id);
    sql.push_lock(" FOR UPDATE");
    let Some(row) = tx.optional(sql).await? else { return Ok(None) };
    Ok(Some((profile_from_row(&row)?, row.json("notification_prefs")?)))
}

/// Moves the SNS endpoints of devices about to go to the deletion queue.
async fn queue_endpoints_of(tx: &mut Tx, device_ids: Vec<Uuid>) -> Result<()> {
    if device_ids.is_empty() {
        return Ok(());
    }
    let mut sql = tx.sql(
        "INSERT INTO device_endpoints_gone (endpoint_arn, gone_at) SELECT endpoint_arn, now() FROM devices \
         WHERE endpoint_arn IS NOT NULL AND ",
    );
    sql.push_any("id", device_ids).push(" ON CONFLICT (endpoint_arn) DO NOTHING");
    tx.execute(sql).await?;
    Ok(())
}

#[async_trait]
impl<S: SqlStore> InboxStore for S {
    async fn get_profile(&self, tenant_id: &str, user_id: &str) -> Result<Profile> {
        let mut db = self.db();
        let sql = db
            .sql(&format!("SELECT {PROFILE_COLUMNS} FROM users WHERE tenant_id = $1 AND user_id = $2"))
            .bind(tenant_id)
            .bind(user_id);
        Ok(db.maybe(sql, profile_from_row).await?.unwrap_or_else(|| Profile::new(user_id)))
    }

    async fn update_profile(&self, tenant_id: &str, user_id: &str, patch: &ProfilePatch) -> Result<Profile> {
        let mut tx = self.db().begin().await?;
        let (mut profile, mut prefs) = profile_row(&mut tx, tenant_id, user_id)
            .await?
            .unwrap_or_else(|| (Profile::new(user_id), Value::Object(serde_json::Map::new())));
        if let Some(time_zone) = &patch.time_zone {
            profile.time_zone = time_zone.clone();
        }
        if let Some(locale) = &patch.locale {
            profile.locale = locale.clone();
        }
        if let Some(quiet_hours) = patch.quiet_hours {
            profile.quiet_hours = quiet_hours;
        }
        if !prefs.is_object() {
            prefs = Value::Object(serde_json::Map::new());
        }
        if let Value::Object(map) = &mut prefs {
            // Types this version does not know stay as they were stored.
            for (kind, wanted) in &patch.notifications {
                map.insert(kind.as_str().to_owned(), Value::Bool(*wanted));
                profile.notifications.insert(*kind, *wanted);
            }
        }
        let quiet = profile.quiet_hours.map(|quiet| (quiet.start, quiet.end));
        let minutes = |minute: Option<u16>| minute.and_then(|minute| i16::try_from(minute).ok());
        let sql = tx
            .sql(
                "INSERT INTO users (tenant_id, user_id, time_zone, locale, notification_prefs, quiet_start, \
                   quiet_end, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now()) \
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET time_zone = excluded.time_zone, \
                   locale = excluded.locale, notification_prefs = excluded.notification_prefs, \
                   quiet_start = excluded.quiet_start, quiet_end = excluded.quiet_end, updated_at = now()",
            )
            .bind(tenant_id)
            .bind(user_id)
            .bind(profile.time_zone.clone())
            .bind(profile.locale.clone())
            .bind(prefs)
            .bind(minutes(quiet.map(|(start, _)| start)))
            .bind(minutes(quiet.map(|(_, end)| end)));
        tx.execute(sql).await?;
        tx.commit().await?;
        Ok(profile)
    }

    async fn register_device(&self, device: NewDevice) -> Result<(Device, bool)> {
        let mut tx = self.db().begin().await?;
        let NewDevice { tenant_id, user_id, platform, token, app_version } = device;
        let insert = |tx: &Tx, id: Uuid, endpoint: Option<String>| {
            tx.sql(&format!(
                "INSERT INTO devices (id, tenant_id, user_id, platform, token, app_version, endpoint_arn, \
                   created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now()) \
                 ON CONFLICT (tenant_id, platform, token) DO NOTHING RETURNING {DEVICE_COLUMNS}"
            ))
            .bind(id)
            .bind(tenant_id.as_str())
            .bind(user_id.as_str())
            .bind(platform.as_str())
            .bind(token.as_str())
            .bind(app_version.clone())
            .bind(endpoint)
        };
        let (registered, created) = match tx.maybe(insert(&tx, Uuid::now_v7(), None), device_from_row).await? {
            Some(new) => (new, true),
            None => {
                // The token is known in the tenant (perhaps registered a
                // moment ago by a request racing this one).
                let mut select = tx
                    .sql(&format!(
                        "SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant_id = $1 AND platform = $2 AND token = $3"
                    ))
                    .bind(tenant_id.as_str())
                    .bind(platform.as_str())
                    .bind(token.as_str());
                select.push_lock(" FOR UPDATE");
                let held = tx.one(select).await.map(|row| device_from_row(&row))??;
                if held.user_id == user_id {
                    let update = tx
                        .sql(&format!(
                            "UPDATE devices SET app_version = coalesce($2, app_version), disabled_at = NULL, \
                               updated_at = now() WHERE id = $1 RETURNING {DEVICE_COLUMNS}"
                        ))
                        .bind(held.id)
                        .bind(app_version.clone());
                    (tx.one(update).await.map(|row| device_from_row(&row))??, false)
                } else {
                    // Someone else signed in on that phone: the device is
                    // theirs now, under a new id. A disabled token stays
                    // disabled until its endpoint is gone, so the endpoint
                    // is kept only while it works.
                    let keep = held.endpoint_arn.clone().filter(|_| held.disabled_at.is_none());
                    if keep.is_none() {
                        queue_endpoints_of(&mut tx, vec![held.id]).await?;
                    }
                    let delete = tx.sql("DELETE FROM devices WHERE id = $1").bind(held.id);
                    tx.execute(delete).await?;
                    let moved = tx.one(insert(&tx, Uuid::now_v7(), keep)).await.map(|row| device_from_row(&row))??;
                    (moved, true)
                }
            }
        };
        // The user's devices past the most kept, longest unregistered first.
        let select = tx
            .sql("SELECT id FROM devices WHERE tenant_id = $1 AND user_id = $2 ORDER BY updated_at DESC, id DESC")
            .bind(tenant_id.as_str())
            .bind(user_id.as_str());
        let ids = tx.rows(select).await?.iter().map(|row| row.uuid("id")).collect::<Result<Vec<_>>>()?;
        let excess: Vec<Uuid> = ids.into_iter().skip(MAX_DEVICES_PER_USER as usize).collect();
        if !excess.is_empty() {
            queue_endpoints_of(&mut tx, excess.clone()).await?;
            let mut delete = tx.sql("DELETE FROM devices WHERE ");
            delete.push_any("id", excess);
            tx.execute(delete).await?;
        }
        tx.commit().await?;
        Ok((registered, created))
    }

    async fn list_devices(&self, tenant_id: &str, user_id: &str) -> Result<Vec<Device>> {
        let mut db = self.db();
        let sql = db
            .sql(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant_id = $1 AND user_id = $2 \
                 ORDER BY updated_at DESC, id DESC"
            ))
            .bind(tenant_id)
            .bind(user_id);
        db.all(sql, device_from_row).await
    }

    async fn delete_device(&self, tenant_id: &str, user_id: &str, id: Uuid) -> Result<bool> {
        let mut tx = self.db().begin().await?;
        let owned = tx
            .sql("SELECT id FROM devices WHERE id = $1 AND tenant_id = $2 AND user_id = $3")
            .bind(id)
            .bind(tenant_id)
            .bind(user_id);
        if tx.optional(owned).await?.is_none() {
            return Ok(false);
        }
        queue_endpoints_of(&mut tx, vec![id]).await?;
        let delete = tx.sql("DELETE FROM devices WHERE id = $1").bind(id);
        tx.execute(delete).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_notifications(&self, notifications: &[NewNotification], push: bool) -> Result<u64> {
        if notifications.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db().begin().await?;
        let rows = Table::new()
            .column("id", notifications.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
            .column("tenant_id", notifications.iter().map(|n| n.tenant_id.clone()).collect::<Vec<_>>())
            .column("user_id", notifications.iter().map(|n| n.user_id.clone()).collect::<Vec<_>>())
            .column("event_id", notifications.iter().map(|n| n.event_id).collect::<Vec<_>>())
            .column("type", notifications.iter().map(|n| n.kind.as_str().to_owned()).collect::<Vec<_>>())
            .column("title", notifications.iter().map(|n| n.title.clone()).collect::<Vec<_>>())
            .column("body", notifications.iter().map(|n| n.body.clone()).collect::<Vec<_>>())
            .column("data", notifications.iter().map(|n| n.data.clone()).collect::<Vec<_>>())
            .column("urgent", notifications.iter().map(|n| i32::from(n.urgent)).collect::<Vec<_>>())
            .column("deliver_at", notifications.iter().map(|n| n.deliver_at).collect::<Vec<_>>());
        let mut insert = tx.sql(
            "INSERT INTO notifications (id, tenant_id, user_id, event_id, type, title, body, data, urgent, \
               created_at, deliver_at) \
             SELECT n.id, n.tenant_id, n.user_id, n.event_id, n.type, n.title, n.body, n.data, n.urgent <> 0, \
               now(), n.deliver_at FROM ",
        );
        insert
            .push_table(rows, "n")
            .push(" WHERE true ON CONFLICT (event_id, tenant_id, user_id) DO NOTHING RETURNING id");
        let new = tx.rows(insert).await?.iter().map(|row| row.uuid("id")).collect::<Result<Vec<_>>>()?;
        if push && !new.is_empty() {
            let mut deliveries = tx.sql(
                "INSERT INTO push_deliveries (notification_id, device_id, tenant_id, deliver_at, state) \
                 SELECT n.id, d.id, n.tenant_id, n.deliver_at, 'pending' FROM notifications n \
                 JOIN devices d ON d.tenant_id = n.tenant_id AND d.user_id = n.user_id AND d.disabled_at IS NULL \
                 WHERE ",
            );
            deliveries.push_any("n.id", new.clone()).push(" ON CONFLICT DO NOTHING");
            tx.execute(deliveries).await?;
        }
        tx.commit().await?;
        Ok(u64::try_from(new.len()).unwrap_or(u64::MAX))
    }

    async fn list_notifications(
        &self,
        tenant_id: &str,
        user_id: &str,
        after: Option<(DateTime<Utc>, Uuid)>,
        unread_only: bool,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        let mut db = self.db();
        let mut sql = notifications_of(&db, tenant_id, user_id, "AND deliver_at <= now()");
        if unread_only {
            sql.push(" AND read_at IS NULL");
        }
        if let Some((at, id)) = after {
            sql.push(" AND (deliver_at, id) < (").push_bind(at).push(", ").push_bind(id).push(")");
        }
        sql.push(" ORDER BY deliver_at DESC, id DESC LIMIT ").push_bind(i64::from(limit.max(1)));
        db.all(sql, notification_from_row).await
    }

    async fn notifications_since(
        &self,
        tenant_id: &str,
        user_id: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        let mut db = self.db();
        let sql = notifications_of(
            &db,
            tenant_id,
            user_id,
            "AND deliver_at > $3 AND deliver_at <= now() ORDER BY deliver_at, id LIMIT $4",
        )
        .bind(since)
        .bind(i64::from(limit.max(1)));
        db.all(sql, notification_from_row).await
    }

    async fn held_notifications(&self, tenant_id: &str, user_id: &str) -> Result<Vec<Notification>> {
        let mut db = self.db();
        let sql = notifications_of(&db, tenant_id, user_id, "AND deliver_at > now() ORDER BY deliver_at, id");
        db.all(sql, notification_from_row).await
    }

    async fn get_notification(&self, tenant_id: &str, user_id: &str, id: Uuid) -> Result<Option<Notification>> {
        let mut db = self.db();
        let sql = notifications_of(&db, tenant_id, user_id, "AND id = $3 AND deliver_at <= now()").bind(id);
        db.maybe(sql, notification_from_row).await
    }

    async fn mark_notification_read(&self, tenant_id: &str, user_id: &str, id: Uuid) -> Result<Option<Notification>> {
        let mut db = self.db();
        let sql = db
            .sql(&format!(
                "UPDATE notifications SET read_at = coalesce(read_at, now()) WHERE id = $1 AND tenant_id = $2 \
                 AND user_id = $3 AND deliver_at <= now() RETURNING {NOTIFICATION_COLUMNS}"
            ))
            .bind(id)
            .bind(tenant_id)
            .bind(user_id);
        db.maybe(sql, notification_from_row).await
    }

    async fn claim_pushes(&self, max: u32, lease: std::time::Duration) -> Result<Vec<PushDelivery>> {
        let mut tx = self.db().begin().await?;
        let dialect = tx.dialect();
        let mut claim = tx.sql(&format!(
            "UPDATE push_deliveries SET lease_until = {}, attempts = push_deliveries.attempts + 1 \
             FROM (SELECT notification_id, device_id FROM push_deliveries WHERE state = 'pending' \
               AND deliver_at <= now() AND (lease_until IS NULL OR lease_until < now()) \
               ORDER BY deliver_at LIMIT $2",
            dialect.later("$1")
        ));
        claim = claim.bind(dialect.span(lease)).bind(i64::from(max.max(1)));
        claim.push_lock(" FOR UPDATE SKIP LOCKED");
        claim.push(
            ") AS c WHERE push_deliveries.notification_id = c.notification_id \
             AND push_deliveries.device_id = c.device_id \
             RETURNING push_deliveries.notification_id, push_deliveries.device_id",
        );
        let claimed = tx.rows(claim).await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let keys = Table::new()
            .column("n", claimed.iter().map(|row| row.uuid("notification_id")).collect::<Result<Vec<_>>>()?)
            .column("d", claimed.iter().map(|row| row.uuid("device_id")).collect::<Result<Vec<_>>>()?);
        let mut select = tx.sql(
            "SELECT p.notification_id, p.device_id, p.tenant_id, n.user_id, d.platform, d.token, d.endpoint_arn, \
               n.type, n.title, n.body, n.data, p.attempts \
             FROM ",
        );
        select.push_table(keys, "k").push(
            " JOIN push_deliveries p ON p.notification_id = k.n AND p.device_id = k.d \
              JOIN notifications n ON n.id = p.notification_id JOIN devices d ON d.id = p.device_id \
              ORDER BY p.deliver_at",
        );
        let pushes = tx.all(select, push_from_row).await?;
        tx.commit().await?;
        Ok(pushes)
    }

    async fn finish_push(&self, notification_id: Uuid, device_id: Uuid, outcome: &PushOutcome) -> Result<()> {
        let mut db = self.db();
        let dialect = db.dialect();
        let sql = match outcome {
            PushOutcome::Sent { message_id } => db
                .sql(
                    "UPDATE push_deliveries SET state = 'sent', sent_at = now(), message_id = $3, \
                     lease_until = NULL, error = NULL WHERE notification_id = $1 AND device_id = $2",
                )
                .bind(notification_id)
                .bind(device_id)
                .bind(message_id.clone()),
            PushOutcome::Retry { error, after } => db
                .sql(&format!(
                    "UPDATE push_deliveries SET deliver_at = {}, lease_until = NULL, error = $3 \
                     WHERE notification_id = $1 AND device_id = $2 AND state = 'pending'",
                    dialect.later("$4")
                ))
                .bind(notification_id)
                .bind(device_id)
                .bind(error.as_str())
                .bind(dialect.span(*after)),
            PushOutcome::Dropped { error } => db
                .sql(
                    "UPDATE push_deliveries SET state = 'dropped', lease_until = NULL, error = $3 \
                     WHERE notification_id = $1 AND device_id = $2",
                )
                .bind(notification_id)
                .bind(device_id)
                .bind(error.as_str()),
        };
        db.execute(sql).await?;
        Ok(())
    }

    async fn set_device_endpoint(&self, device_id: Uuid, endpoint_arn: Option<&str>) -> Result<()> {
        let mut db = self.db();
        let sql = db.sql("UPDATE devices SET endpoint_arn = $2 WHERE id = $1").bind(device_id).bind(endpoint_arn);
        db.execute(sql).await?;
        Ok(())
    }

    async fn disable_device(&self, device_id: Uuid) -> Result<()> {
        let mut tx = self.db().begin().await?;
        queue_endpoints_of(&mut tx, vec![device_id]).await?;
        let device = tx
            .sql("UPDATE devices SET disabled_at = coalesce(disabled_at, now()), endpoint_arn = NULL WHERE id = $1")
            .bind(device_id);
        tx.execute(device).await?;
        let pending = tx
            .sql(
                "UPDATE push_deliveries SET state = 'dropped', lease_until = NULL, error = $2 \
                 WHERE device_id = $1 AND state = 'pending'",
            )
            .bind(device_id)
            .bind(DEAD_TOKEN);
        tx.execute(pending).await?;
        tx.commit().await
    }

    async fn gone_endpoints(&self, max: u32) -> Result<Vec<String>> {
        let mut db = self.db();
        let sql = db
            .sql("SELECT endpoint_arn FROM device_endpoints_gone ORDER BY gone_at LIMIT $1")
            .bind(i64::from(max.max(1)));
        db.rows(sql).await?.iter().map(|row| row.get::<String>("endpoint_arn")).collect()
    }

    async fn prune_notifications(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut db = self.db();
        // Pushes go with their notification (ON DELETE CASCADE).
        let delete = db.sql("DELETE FROM notifications WHERE deliver_at < $1").bind(before);
        db.execute(delete).await
    }

    async fn forget_gone_endpoints(&self, arns: &[String]) -> Result<()> {
        if arns.is_empty() {
            return Ok(());
        }
        let mut db = self.db();
        let mut sql = db.sql("DELETE FROM device_endpoints_gone WHERE ");
        sql.push_any("endpoint_arn", arns.to_vec());
        db.execute(sql).await?;
        Ok(())
    }
}
