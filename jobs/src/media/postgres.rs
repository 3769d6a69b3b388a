//! Photos on PostgreSQL.

use super::media_from_row;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::{media_key, Media, MediaCheck, MediaStore, NewMedia};
use crate::{
    model::Scope,
    store::{postgres::push_scope, PgStore, Result},
};

const MEDIA_COLUMNS: &str = "id, tenant_id, user_id, status, declared_type, content_type, size_bytes, width, height, \
     taken_at, caption, error, object_key, created_at";

#[async_trait]
impl MediaStore for PgStore {
    async fn insert_media(&self, media: NewMedia) -> Result<Media> {
        let id = Uuid::now_v7();
        let key = media_key(&media.tenant_id, id)?;
        let row = sqlx::query(&format!(
            "INSERT INTO media (id, tenant_id, user_id, status, declared_type, taken_at, caption, object_key) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7) RETURNING {MEDIA_COLUMNS}"
        ))
        .bind(id)
        .bind(&media.tenant_id)
        .bind(&media.user_id)
        .bind(&media.declared_type)
        .bind(media.taken_at)
        .bind(&media.caption)
        .bind(key.as_str())
        .fetch_one(self.pool())
        .await?;
        media_from_row(&row)
    }

    async fn get_media(&self, scope: &Scope, id: Uuid) -> Result<Option<Media>> {
        let mut query = QueryBuilder::new(format!("SELECT {MEDIA_COLUMNS} FROM media WHERE id = "));
        query.push_bind(id);
        push_scope(&mut query, scope);
        let row = query.build().fetch_optional(self.pool()).await?;
        row.as_ref().map(media_from_row).transpose()
    }

    async fn list_media(&self, scope: &Scope, after: Option<(DateTime<Utc>, Uuid)>, limit: u32) -> Result<Vec<Media>> {
        let mut query = QueryBuilder::new(format!("SELECT {MEDIA_COLUMNS} FROM media WHERE true"));
        push_scope(&mut query, scope);
        if let Some((created_at, id)) = after {
            query.push(" AND (created_at, id) < (").push_bind(created_at).push(", ").push_bind(id).push(")");
        }
        query.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(limit.max(1)));
        let rows = query.build().fetch_all(self.pool()).await?;
        rows.iter().map(media_from_row).collect()
    }

    async fn settle_media(&self, id: Uuid, check: &MediaCheck) -> Result<bool> {
        let columns = check.columns();
        let done = sqlx::query(
            "UPDATE media SET status = $2, content_type = $3, size_bytes = $4, width = $5, height = $6, \
             error = $7, updated_at = now() WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(columns.status)
        .bind(columns.content_type)
        .bind(columns.size_bytes)
        .bind(columns.width)
        .bind(columns.height)
        .bind(columns.error)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_media(&self, scope: &Scope, id: Uuid) -> Result<Option<Media>> {
        let mut query = QueryBuilder::new("DELETE FROM media WHERE id = ");
        query.push_bind(id);
        push_scope(&mut query, scope);
        query.push(format!(" RETURNING {MEDIA_COLUMNS}"));
        let row = query.build().fetch_optional(self.pool()).await?;
        row.as_ref().map(media_from_row).transpose()
    }

    async fn count_media(&self, scope: &Scope) -> Result<u64> {
        let mut query = QueryBuilder::new("SELECT count(*) FROM media WHERE true");
        push_scope(&mut query, scope);
        let count: i64 = query.build_query_scalar().fetch_one(self.pool()).await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
