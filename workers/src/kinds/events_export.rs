//! `events_export`: one closed hour of a tenant's events, from the database
//! to the data lake (see [`crate::lake`]).
//!
//! The hour's raw events are read in pages, in id order, turned into Arrow
//! batches (personal data pseudonymised under the tenant's key) and written
//! to Parquet parts of at most [`ExportSettings::rows_per_file`] rows, each
//! spooled to a temporary file and uploaded whole. Parts are named
//! `part-0.parquet`, `part-1.parquet`, … so a re-run of the hour writes the
//! same names: it overwrites the earlier files, deletes the parts it no
//! longer needs, and only then writes the `_manifest.json` and records the
//! partition. A re-run never duplicates a row.
//!
//! After a successful export, the tenant's raw events older than the raw
//! window (and already in the lake) are deleted from the database.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use longhaul_jobs::{
    events::{Catalogue, LakePartition},
    kind::{self, EventsExportPayload},
    travel::mail::Envelope,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    context::JobContext,
    error::JobError,
    handler::Handler,
    lake::{self, EventsTable, PartWriter, Pseudonymiser, TenantLake},
    JobResult,
};

/// How an export reads and writes.
#[derive(Clone)]
pub struct ExportSettings {
    /// Seals the tenants' pseudonymisation keys; without it every export
    /// fails and says what to set.
    pub secrets: Option<Envelope>,
    /// How long raw events stay in the database after their hour is in the
    /// lake (`LONGHAUL_EVENTS_RAW_RETENTION_HOURS`, 7 days by default): time
    /// to re-run an export, and no longer.
    pub raw_retention: Duration,
    /// Events read from the database at a time.
    pub page_rows: u32,
    /// Rows per Parquet file, at most.
    pub rows_per_file: usize,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            secrets: None,
            raw_retention: Duration::from_secs(7 * 24 * 3600),
            page_rows: 10_000,
            rows_per_file: 1_000_000,
        }
    }
}

pub struct EventsExport {
    settings: ExportSettings,
}

impl EventsExport {
    pub fn new(settings: ExportSettings) -> Self {
        EventsExport { settings }
    }
}

/// One uploaded part.
struct Part {
    name: String,
    rows: usize,
    bytes: u64,
}

#[async_trait]
impl Handler for EventsExport {
    type Kind = kind::EventsExport;

    async fn run(&self, ctx: &JobContext, payload: EventsExportPayload) -> JobResult {
        let ttl = <kind::EventsExport as longhaul_jobs::kind::Kind>::TIMEOUT + std::time::Duration::from_secs(60);
        crate::lake::exclusive(ctx, ttl, self.work(ctx, payload)).await
    }
}

impl EventsExport {
    async fn work(&self, ctx: &JobContext, payload: EventsExportPayload) -> JobResult {
        let Some(secrets) = &self.settings.secrets else {
            return Err(JobError::permanent(
                "this worker has no key-encryption keys to seal the tenants' pseudonymisation keys: set \
                 LONGHAUL_SECRET_KEYS",
            ));
        };
        let tenant = ctx.job.tenant_id.clone();
        let hour = payload.hour;
        if hour + chrono::Duration::hours(1) > Utc::now() {
            return Err(JobError::permanent(format!("the hour {hour} has not ended yet; export it once it has")));
        }
        let lake = TenantLake::new(ctx.objects()?.clone(), &tenant);
        let catalogue = ctx.store.event_catalogue(&tenant).await?.unwrap_or_else(Catalogue::default_catalogue);
        let table = EventsTable::new(&catalogue);
        let pseudonyms = Pseudonymiser::of_tenant(&ctx.store, secrets, &tenant).await?;
        let spool =
            tempfile::tempdir().map_err(|err| JobError::retryable(format!("cannot make a spool directory: {err}")))?;

        // Raw events of an hour leave the database together, once the raw
        // window has passed: a re-run then has none, and must not replace
        // the lake's files with nothing.
        let earlier = ctx.store.lake_partition(&tenant, hour).await?;
        if earlier.as_ref().is_some_and(|partition| partition.events > 0) {
            let first = ctx.store.events_page(&tenant, hour, None, 1).await?;
            if first.is_empty() {
                return Err(JobError::permanent(format!(
                    "the hour {hour} is in the lake, and its raw events are gone (kept \
                     LONGHAUL_EVENTS_RAW_RETENTION_HOURS after export): the lake's files stay as they are"
                )));
            }
        }
        let mut parts: Vec<Part> = Vec::new();
        let mut writer: Option<(PartWriter, std::path::PathBuf)> = None;
        let mut after: Option<Uuid> = None;
        let mut events = 0usize;
        loop {
            if ctx.cancel.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            let page = ctx.store.events_page(&tenant, hour, after, self.settings.page_rows).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            events += page.len();
            let batch = table.batch(&page, &pseudonyms).map_err(|err| JobError::permanent(err.0))?;
            let (mut part, path) = match writer.take() {
                Some(open) => open,
                None => {
                    let path = spool.path().join(format!("part-{}.parquet", parts.len()));
                    (PartWriter::create(&path, table.schema())?, path)
                }
            };
            // Writing compresses a row group: CPU work off the async threads.
            let (part, result) = tokio::task::spawn_blocking(move || {
                let result = part.write(&batch);
                (part, result)
            })
            .await
            .map_err(|err| JobError::retryable(format!("the Parquet writer stopped: {err}")))?;
            result?;
            if part.rows() >= self.settings.rows_per_file {
                parts.push(upload(&lake, hour, part, &path).await?);
            } else {
                writer = Some((part, path));
            }
        }
        if let Some((part, path)) = writer.take() {
            parts.push(upload(&lake, hour, part, &path).await?);
        }

        // The parts an earlier run wrote beyond this run's are left over.
        let earlier_files = earlier.as_ref().map_or(0, |partition| usize::try_from(partition.files).unwrap_or(0));
        for n in parts.len()..earlier_files {
            lake.delete(&lake.key(hour, &format!("part-{n}.parquet"))?).await?;
        }

        let bytes: u64 = parts.iter().map(|part| part.bytes).sum();
        let exported_at = Utc::now();
        let manifest = json!({
            "table": lake::EVENTS_TABLE,
            "tenant": tenant,
            "hour": hour,
            "partition": lake::partition_path(hour),
            "events": events,
            "files": parts.iter().map(|part| json!({"name": part.name, "rows": part.rows, "bytes": part.bytes})).collect::<Vec<_>>(),
            "columns": table.property_columns().iter().map(|column| json!({
                "name": column.name, "type": column.kind, "pii": column.pii,
            })).collect::<Vec<_>>(),
            "pseudonymisation": "HMAC-SHA-256 under the tenant's key, as 64 hex digits",
            "compression": "snappy",
            "row_group_rows": lake::ROW_GROUP_ROWS,
            "exported_at": exported_at,
            "job_id": ctx.job.id,
        });
        lake.put_manifest(hour, &manifest).await?;
        let record = LakePartition {
            tenant_id: tenant.clone(),
            hour,
            files: i32::try_from(parts.len()).unwrap_or(i32::MAX),
            events: i64::try_from(events).unwrap_or(i64::MAX),
            bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
            manifest,
            exported_at,
        };
        ctx.store.record_lake_partition(&record).await?;
        let window = chrono::Duration::from_std(self.settings.raw_retention).unwrap_or(chrono::Duration::days(7));
        let deleted = ctx.store.delete_exported_events(&tenant, exported_at - window).await?;
        metrics::counter!("longhaul_lake_events_exported_total").increment(events as u64);
        metrics::counter!("longhaul_lake_bytes_written_total").increment(bytes);
        tracing::info!(events, files = parts.len(), bytes, raw_deleted = deleted, %hour, "events exported");
        Ok(Some(json!({
            "events": events,
            "files": parts.len(),
            "bytes": bytes,
            "partition": lake.prefix(hour),
            "raw_events_deleted": deleted,
        })))
    }
}

/// Finishes a part and uploads it.
async fn upload(
    lake: &TenantLake,
    hour: DateTime<Utc>,
    part: PartWriter,
    path: &std::path::Path,
) -> Result<Part, JobError> {
    let rows = tokio::task::spawn_blocking(move || part.finish())
        .await
        .map_err(|err| JobError::retryable(format!("the Parquet writer stopped: {err}")))??;
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("part.parquet").to_owned();
    let bytes = lake.upload(&lake.key(hour, &name)?, path).await?;
    // The spool holds one part at a time.
    let _ = tokio::fs::remove_file(path).await;
    Ok(Part { name, rows, bytes })
}
