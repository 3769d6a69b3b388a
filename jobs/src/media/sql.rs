//! Photos in SQL, once for both databases (see `store::sql`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{media_from_row, media_key, Media, MediaCheck, MediaStore, NewMedia};
use crate::{
    model::Scope,
    store::{
        sql::{Exec, SqlStore},
        Columns, Result,
    },
};

const MEDIA_COLUMNS: &str = "id, tenant_id, user_id, status, declared_type, content_type, size_bytes, width, height, \
     taken_at, caption, error, object_key, created_at";

#[async_trait]
impl<S: SqlStore> MediaStore for S {
    async fn insert_media(&self, media: NewMedia) -> Result<Media> {
        let id = Uuid::now_v7();
        let key = media_key(&media.tenant_id, id)?;
        let mut db = self.db();
        let sql = db
            .sql(&format!(
                "INSERT INTO media (id, tenant_id, user_id, status, declared_type, taken_at, caption, object_key, \
                 created_at, updated_at) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, now(), now()) \
                 RETURNING {MEDIA_COLUMNS}"
            ))
            .bind(id)
            .bind(media.tenant_id)
            .bind(media.user_id)
            .bind(media.declared_type)
            .bind(media.taken_at)
            .bind(media.caption)
            .bind(key.as_str());
        media_from_row(&db.one(sql).await?)
    }

    async fn get_media(&self, scope: &Scope, id: Uuid) -> Result<Option<Media>> {
        let mut db = self.db();
        let mut sql = db.sql(&format!("SELECT {MEDIA_COLUMNS} FROM media WHERE id = "));
        sql.push_bind(id).push_scope(scope);
        db.maybe(sql, media_from_row).await
    }

    async fn list_media(&self, scope: &Scope, after: Option<(DateTime<Utc>, Uuid)>, limit: u32) -> Result<Vec<Media>> {
        let mut db = self.db();
        let mut sql = db.sql(&format!("SELECT {MEDIA_COLUMNS} FROM media WHERE true"));
        sql.push_scope(scope);
        if let Some((created_at, id)) = after {
            sql.push(" AND (created_at, id) < (").push_bind(created_at).push(", ").push_bind(id).push(")");
        }
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(limit.max(1)));
        db.all(sql, media_from_row).await
    }

    async fn settle_media(&self, id: Uuid, check: &MediaCheck) -> Result<bool> {
        let columns = check.columns();
        let mut db = self.db();
        let sql = db
            .sql(
                "UPDATE media SET status = $2, content_type = $3, size_bytes = $4, width = $5, height = $6, \
                 error = $7, updated_at = now() WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(columns.status)
            .bind(columns.content_type)
            .bind(columns.size_bytes)
            .bind(columns.width)
            .bind(columns.height)
            .bind(columns.error);
        Ok(db.execute(sql).await? == 1)
    }

    async fn delete_media(&self, scope: &Scope, id: Uuid) -> Result<Option<Media>> {
        let mut db = self.db();
        let mut sql = db.sql("DELETE FROM media WHERE id = ");
        sql.push_bind(id).push_scope(scope).push(&format!(" RETURNING {MEDIA_COLUMNS}"));
        db.maybe(sql, media_from_row).await
    }

    async fn count_media(&self, scope: &Scope) -> Result<u64> {
        let mut db = self.db();
        let mut sql = db.sql("SELECT count(*) AS n FROM media WHERE true");
        sql.push_scope(scope);
        let count: i64 = db.one(sql).await?.get("n")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
