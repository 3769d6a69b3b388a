//! One tenant's files in the lake, through the object store: where a
//! partition's files are, and moving them between the store and a local
//! spool (Parquet is read and written as local files).

use std::path::Path;

use chrono::{DateTime, Utc};
use longhaul_jobs::objects::{DynObjectStore, ObjectKey};
use tokio::io::AsyncWriteExt;

use super::{partition_path, LakeError, EVENTS_TABLE};

/// The media type of a Parquet file.
pub const PARQUET: &str = "application/vnd.apache.parquet";

/// A tenant's partitions of the events table.
pub struct TenantLake {
    objects: DynObjectStore,
    tenant: String,
}

impl TenantLake {
    pub fn new(objects: DynObjectStore, tenant: &str) -> TenantLake {
        TenantLake { objects, tenant: tenant.to_owned() }
    }

    /// The file `name` (`part-0.parquet`, `_manifest.json`) of `hour`.
    pub fn key(&self, hour: DateTime<Utc>, name: &str) -> Result<ObjectKey, LakeError> {
        ObjectKey::lake(EVENTS_TABLE, &self.tenant, &format!("{}/{name}", partition_path(hour)))
            .map_err(|err| LakeError(format!("cannot name the lake file {name}: {err}")))
    }

    /// The partition's prefix, as the result of a job reports it.
    pub fn prefix(&self, hour: DateTime<Utc>) -> String {
        format!("lake/{EVENTS_TABLE}/tenant={}/{}/", self.tenant, partition_path(hour))
    }

    /// Copies the object at `key` to `path`; false when there is none.
    pub async fn download(&self, key: &ObjectKey, path: &Path) -> Result<bool, LakeError> {
        let Some(mut reader) =
            self.objects.get(key).await.map_err(|err| LakeError(format!("cannot read {key}: {err}")))?
        else {
            return Ok(false);
        };
        let mut file =
            tokio::fs::File::create(path).await.map_err(|err| LakeError(format!("cannot spool {key}: {err}")))?;
        tokio::io::copy(&mut reader, &mut file).await.map_err(|err| LakeError(format!("cannot read {key}: {err}")))?;
        file.flush().await.map_err(|err| LakeError(format!("cannot spool {key}: {err}")))?;
        Ok(true)
    }

    /// Uploads the Parquet file at `path` as `key`; its size.
    pub async fn upload(&self, key: &ObjectKey, path: &Path) -> Result<u64, LakeError> {
        self.objects.put_file(key, path, PARQUET).await.map_err(|err| LakeError(format!("cannot upload {key}: {err}")))
    }

    pub async fn put_manifest(&self, hour: DateTime<Utc>, manifest: &serde_json::Value) -> Result<(), LakeError> {
        let key = self.key(hour, "_manifest.json")?;
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|err| LakeError(err.to_string()))?;
        self.objects
            .put_bytes(&key, bytes.into(), "application/json")
            .await
            .map_err(|err| LakeError(format!("cannot write {key}: {err}")))
    }

    pub async fn delete(&self, key: &ObjectKey) -> Result<(), LakeError> {
        self.objects.delete(key).await.map_err(|err| LakeError(format!("cannot delete {key}: {err}")))
    }
}

/// The names of a partition's Parquet files, as its manifest lists them.
pub fn part_names(manifest: &serde_json::Value) -> Vec<String> {
    manifest["files"]
        .as_array()
        .map(|files| files.iter().filter_map(|file| file["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Runs `work` while the job holds its tenant's lake: exports, erasures and
/// retention of one tenant rewrite the same files and records, so they take
/// turns (a named lease in the database, `lake:<tenant>`, held by the job
/// across its attempts and given up when `work` ends, however it ends; a
/// worker that dies leaves it to expire after `ttl`). A job that finds the
/// lake taken tries again a minute or more later (an attempt of its own).
pub async fn exclusive<F>(ctx: &crate::JobContext, ttl: std::time::Duration, work: F) -> crate::JobResult
where
    F: std::future::Future<Output = crate::JobResult>,
{
    let (name, holder) = (format!("lake:{}", ctx.job.tenant_id), format!("job:{}", ctx.job.id));
    let taken = ctx
        .store
        .try_lead(&name, &holder, ttl)
        .await
        .map_err(|err| crate::JobError::retryable(format!("the database failed: {err}")))?;
    if !taken {
        return Err(crate::JobError::RetryLater {
            message: "another job is rewriting this tenant's lake".into(),
            after: std::time::Duration::from_secs(60),
        });
    }
    let result = work.await;
    if let Err(err) = ctx.store.resign(&name, &holder).await {
        tracing::warn!(error = %err, "could not give up the tenant's lake; it expires on its own");
    }
    result
}
