//! Events in SQL, once for both databases (see `store::sql`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    event_deletion_from_row, hour_of, lake_partition_from_row, stored_event_from_row, BatchOutcome, Catalogue,
    EventBatch, EventDeletion, EventStore, LakePartition, StoredEvent,
};
use crate::{
    store::{
        from_row,
        sql::{Exec, SqlStore, Table},
        Columns, Result, StoreError,
    },
    travel::mail::Sealed,
};

const EVENT_COLUMNS: &str = "id, user_id, name, known, occurred_at, received_at, properties, session_id, \
     device_platform, device_app_version, device_os_version, device_model";

const PARTITION_COLUMNS: &str = "tenant_id, hour, files, events, bytes, manifest, exported_at";

#[async_trait]
impl<S: SqlStore> EventStore for S {
    async fn store_events(&self, batch: EventBatch) -> Result<BatchOutcome> {
        let accepted = batch.events.len();
        let hour = hour_of(batch.received_at);
        let events = &batch.events;
        let table = Table::new()
            .column("id", events.iter().map(|e| e.id).collect::<Vec<_>>())
            .column("name", events.iter().map(|e| e.name.clone()).collect::<Vec<_>>())
            .column("known", events.iter().map(|e| i32::from(e.known)).collect::<Vec<_>>())
            .column("occurred_at", events.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
            .column("properties", events.iter().map(|e| e.properties.clone()).collect::<Vec<_>>())
            .column("session_id", events.iter().map(|e| e.session_id.clone()).collect::<Vec<_>>())
            .column("platform", events.iter().map(|e| e.device.platform.clone()).collect::<Vec<_>>())
            .column("app_version", events.iter().map(|e| e.device.app_version.clone()).collect::<Vec<_>>())
            .column("os_version", events.iter().map(|e| e.device.os_version.clone()).collect::<Vec<_>>())
            .column("model", events.iter().map(|e| e.device.model.clone()).collect::<Vec<_>>());
        let mut db = self.db();
        let mut insert = db
            .sql(
                "INSERT INTO events (id, tenant_id, user_id, name, known, occurred_at, received_at, received_hour, \
                   properties, session_id, device_platform, device_app_version, device_os_version, device_model) \
                 SELECT e.id, $1, $2, e.name, e.known = 1, e.occurred_at, $3, $4, e.properties, e.session_id, \
                   e.platform, e.app_version, e.os_version, e.model FROM ",
            )
            .bind(batch.tenant_id.clone())
            .bind(batch.user_id.clone())
            .bind(batch.received_at)
            .bind(hour);
        insert.push_table(table, "e");
        let Some(key) = batch.idempotency_key else {
            db.execute(insert).await?;
            return Ok(BatchOutcome::Stored { accepted });
        };
        // The key's row and the events commit together: a retry finds the
        // row, and stores nothing.
        let mut tx = db.begin().await?;
        let claim = tx
            .sql(
                "INSERT INTO event_batches (tenant_id, user_id, idempotency_key, request_hash, accepted, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(batch.tenant_id.clone())
            .bind(batch.user_id.clone())
            .bind(key.clone())
            .bind(batch.request_hash.clone())
            .bind(i32::try_from(accepted).unwrap_or(i32::MAX))
            .bind(batch.received_at);
        if tx.execute(claim).await? == 1 {
            tx.execute(insert).await?;
            tx.commit().await?;
            return Ok(BatchOutcome::Stored { accepted });
        }
        let earlier = tx
            .sql(
                "SELECT request_hash, accepted FROM event_batches \
                 WHERE tenant_id = $1 AND user_id = $2 AND idempotency_key = $3",
            )
            .bind(batch.tenant_id)
            .bind(batch.user_id)
            .bind(key);
        let row = tx.one(earlier).await?;
        let hash: String = row.get("request_hash")?;
        let earlier_accepted: i32 = row.get("accepted")?;
        Ok(if hash == batch.request_hash {
            BatchOutcome::Replayed { accepted: usize::try_from(earlier_accepted).unwrap_or(0) }
        } else {
            BatchOutcome::Conflict
        })
    }

    async fn prune_event_batches(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut db = self.db();
        let sql = db.sql("DELETE FROM event_batches WHERE created_at < $1").bind(before);
        db.execute(sql).await
    }

    async fn event_catalogue(&self, tenant_id: &str) -> Result<Option<Catalogue>> {
        let mut db = self.db();
        let sql = db.sql("SELECT catalogue FROM event_catalogues WHERE tenant_id = $1").bind(tenant_id);
        db.maybe(sql, |row| row.json_as::<Catalogue>("catalogue")).await
    }

    async fn put_event_catalogue(&self, tenant_id: &str, catalogue: &Catalogue, updated_by: &str) -> Result<()> {
        let json = serde_json::to_value(catalogue).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        let mut db = self.db();
        let sql = db
            .sql(
                "INSERT INTO event_catalogues (tenant_id, catalogue, updated_by, updated_at) VALUES ($1, $2, $3, now()) \
                 ON CONFLICT (tenant_id) DO UPDATE SET catalogue = excluded.catalogue, \
                   updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            )
            .bind(tenant_id)
            .bind(json)
            .bind(updated_by);
        db.execute(sql).await?;
        Ok(())
    }

    async fn events_page(
        &self,
        tenant_id: &str,
        hour: DateTime<Utc>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let mut db = self.db();
        let mut sql = db.sql(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = "));
        sql.push_bind(tenant_id).push(" AND received_hour = ").push_bind(hour);
        if let Some(after) = after {
            sql.push(" AND id > ").push_bind(after);
        }
        sql.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit.max(1)));
        db.all(sql, stored_event_from_row).await
    }

    async fn unexported_tenants(&self, hour: DateTime<Utc>) -> Result<Vec<String>> {
        // A loose index scan of `events_hours`: one probe per tenant, not a
        // read of every event of the hour.
        let mut db = self.db();
        let sql = db
            .sql(
                "WITH RECURSIVE t(tenant_id) AS (\
                   SELECT min(tenant_id) FROM events WHERE received_hour = $1 \
                   UNION ALL \
                   SELECT (SELECT min(e.tenant_id) FROM events e \
                           WHERE e.received_hour = $1 AND e.tenant_id > t.tenant_id) \
                   FROM t WHERE t.tenant_id IS NOT NULL) \
                 SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL AND NOT EXISTS (\
                   SELECT 1 FROM lake_partitions p WHERE p.tenant_id = t.tenant_id AND p.hour = $1) \
                 ORDER BY tenant_id",
            )
            .bind(hour);
        db.all(sql, |row| row.get::<String>("tenant_id")).await
    }

    async fn lake_partition(&self, tenant_id: &str, hour: DateTime<Utc>) -> Result<Option<LakePartition>> {
        let mut db = self.db();
        let sql = db
            .sql(&format!("SELECT {PARTITION_COLUMNS} FROM lake_partitions WHERE tenant_id = $1 AND hour = $2"))
            .bind(tenant_id)
            .bind(hour);
        db.maybe(sql, lake_partition_from_row).await
    }

    async fn record_lake_partition(&self, partition: &LakePartition) -> Result<()> {
        let mut db = self.db();
        let sql = db
            .sql(
                "INSERT INTO lake_partitions (tenant_id, hour, files, events, bytes, manifest, exported_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, hour) DO UPDATE SET \
                   files = excluded.files, events = excluded.events, bytes = excluded.bytes, \
                   manifest = excluded.manifest, exported_at = excluded.exported_at",
            )
            .bind(partition.tenant_id.clone())
            .bind(partition.hour)
            .bind(partition.files)
            .bind(partition.events)
            .bind(partition.bytes)
            .bind(partition.manifest.clone())
            .bind(partition.exported_at);
        db.execute(sql).await?;
        Ok(())
    }

    async fn delete_exported_events(&self, tenant_id: &str, before: DateTime<Utc>) -> Result<u64> {
        let mut db = self.db();
        let sql = db
            .sql(
                "DELETE FROM events WHERE tenant_id = $1 AND received_hour < $2 AND EXISTS (\
                   SELECT 1 FROM lake_partitions p WHERE p.tenant_id = events.tenant_id \
                   AND p.hour = events.received_hour)",
            )
            .bind(tenant_id)
            .bind(hour_of(before));
        db.execute(sql).await
    }

    async fn lake_partitions(&self, tenant_id: &str, before: Option<DateTime<Utc>>) -> Result<Vec<LakePartition>> {
        let mut db = self.db();
        let mut sql = db.sql(&format!("SELECT {PARTITION_COLUMNS} FROM lake_partitions WHERE tenant_id = "));
        sql.push_bind(tenant_id);
        if let Some(before) = before {
            sql.push(" AND hour < ").push_bind(before);
        }
        sql.push(" ORDER BY hour");
        db.all(sql, lake_partition_from_row).await
    }

    async fn delete_lake_partitions(&self, tenant_id: &str, hours: &[DateTime<Utc>]) -> Result<u64> {
        let mut db = self.db();
        let mut sql = db.sql("DELETE FROM lake_partitions WHERE tenant_id = ");
        sql.push_bind(tenant_id).push(" AND ").push_any("hour", hours.to_vec());
        db.execute(sql).await
    }

    async fn lake_tenants(&self) -> Result<Vec<String>> {
        // A loose index scan of the primary key: a probe per tenant.
        let mut db = self.db();
        let sql = db.sql(
            "WITH RECURSIVE t(tenant_id) AS (\
               SELECT min(tenant_id) FROM lake_partitions \
               UNION ALL \
               SELECT (SELECT min(p.tenant_id) FROM lake_partitions p WHERE p.tenant_id > t.tenant_id) \
               FROM t WHERE t.tenant_id IS NOT NULL) \
             SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL ORDER BY tenant_id",
        );
        db.all(sql, |row| row.get::<String>("tenant_id")).await
    }

    async fn delete_events_before(&self, tenant_id: &str, before: DateTime<Utc>) -> Result<u64> {
        let mut db = self.db();
        let sql = db.sql("DELETE FROM events WHERE tenant_id = $1 AND received_at < $2").bind(tenant_id).bind(before);
        db.execute(sql).await
    }

    async fn request_event_deletion(
        &self,
        tenant_id: &str,
        user_id: &str,
        requested_by: &str,
    ) -> Result<EventDeletion> {
        let mut tx = self.db().begin().await?;
        let delete = tx.sql("DELETE FROM events WHERE tenant_id = $1 AND user_id = $2").bind(tenant_id).bind(user_id);
        let raw_deleted = tx.execute(delete).await?;
        let record = tx
            .sql(
                "INSERT INTO event_deletions (id, tenant_id, user_id, requested_by, requested_at, raw_deleted) \
                 VALUES ($1, $2, $3, $4, now(), $5) \
                 RETURNING id, tenant_id, user_id, requested_by, requested_at, raw_deleted, lake_rows, erased_at",
            )
            .bind(Uuid::now_v7())
            .bind(tenant_id)
            .bind(user_id)
            .bind(requested_by)
            .bind(i64::try_from(raw_deleted).unwrap_or(i64::MAX));
        let deletion = event_deletion_from_row(&tx.one(record).await?)?;
        tx.commit().await?;
        Ok(deletion)
    }

    async fn pending_event_deletions(&self, tenant_id: &str) -> Result<Vec<EventDeletion>> {
        let mut db = self.db();
        let sql = db
            .sql(
                "SELECT id, tenant_id, user_id, requested_by, requested_at, raw_deleted, lake_rows, erased_at \
                 FROM event_deletions WHERE tenant_id = $1 AND erased_at IS NULL ORDER BY requested_at",
            )
            .bind(tenant_id);
        db.all(sql, event_deletion_from_row).await
    }

    async fn finish_event_deletions(&self, ids: &[Uuid], lake_rows: i64) -> Result<()> {
        let mut db = self.db();
        let mut sql = db.sql("UPDATE event_deletions SET erased_at = now(), lake_rows = ");
        sql.push_bind(lake_rows).push(" WHERE erased_at IS NULL AND ").push_any("id", ids.to_vec());
        db.execute(sql).await?;
        Ok(())
    }

    async fn lake_key(&self, tenant_id: &str) -> Result<Option<Sealed>> {
        let mut db = self.db();
        let sql =
            db.sql("SELECT key_id, data_key, nonce, ciphertext FROM lake_keys WHERE tenant_id = $1").bind(tenant_id);
        db.maybe(sql, sealed_from_row).await
    }

    async fn insert_lake_key(&self, tenant_id: &str, sealed: &Sealed) -> Result<Sealed> {
        let mut db = self.db();
        let insert = db
            .sql(
                "INSERT INTO lake_keys (tenant_id, key_id, data_key, nonce, ciphertext, created_at) \
                 VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (tenant_id) DO NOTHING",
            )
            .bind(tenant_id)
            .bind(sealed.key_id.clone())
            .bind(sealed.data_key.clone())
            .bind(sealed.nonce.clone())
            .bind(sealed.ciphertext.clone());
        db.execute(insert).await?;
        self.lake_key(tenant_id).await?.ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }
}

fn sealed_from_row(row: &impl Columns) -> Result<Sealed> {
    from_row!(row => Sealed { key_id, data_key, nonce, ciphertext })
}
