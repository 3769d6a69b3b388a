//! `events_erase`: honours users' deletion requests in the lake. Their raw
//! events went with the request; here every Parquet file of the tenant's
//! lake that holds a row of theirs (found by their pseudonym, reading only
//! the `user_id` column) is written again without those rows, under the
//! same name, and its partition's manifest and record are brought up to
//! date. Every request pending when the run starts is honoured by it, and
//! marked done only once every file is rewritten; a run that fails midway
//! is retried and rewrites what is left (a file already clean costs a
//! column's read).

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::Utc;
use longhaul_jobs::{
    events::LakePartition,
    kind::{self, EventsErasePayload},
    travel::mail::Envelope,
};
use serde_json::{json, Value};

use crate::{
    context::JobContext,
    error::JobError,
    handler::Handler,
    lake::{part_names, rewrite_without, row_count, Pseudonymiser, TenantLake},
    JobResult,
};

pub struct EventsErase {
    secrets: Option<Envelope>,
    delay: std::time::Duration,
}

impl EventsErase {
    /// `secrets` opens the tenants' pseudonymisation keys.
    pub fn new(secrets: Option<Envelope>) -> Self {
        EventsErase { secrets, delay: kind::EventsErase::DELAY }
    }

    /// Honours requests this old, not [`kind::EventsErase::DELAY`]: for
    /// tests, whose exports have all ended.
    pub fn with_delay(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[async_trait]
impl Handler for EventsErase {
    type Kind = kind::EventsErase;

    async fn run(&self, ctx: &JobContext, payload: EventsErasePayload) -> JobResult {
        let ttl = <kind::EventsErase as longhaul_jobs::kind::Kind>::TIMEOUT + std::time::Duration::from_secs(60);
        crate::lake::exclusive(ctx, ttl, self.work(ctx, payload)).await
    }
}

impl EventsErase {
    async fn work(&self, ctx: &JobContext, _payload: EventsErasePayload) -> JobResult {
        let Some(secrets) = &self.secrets else {
            return Err(JobError::permanent(
                "this worker has no key-encryption keys to open the tenants' pseudonymisation keys: set \
                 LONGHAUL_SECRET_KEYS",
            ));
        };
        let tenant = ctx.job.tenant_id.clone();
        // Only requests whose delay has passed: a later one's user may still
        // be written by an export that read their rows before it; its own
        // job honours it.
        let due = Utc::now() - chrono::Duration::from_std(self.delay).unwrap_or_default();
        let pending: Vec<_> = ctx
            .store
            .pending_event_deletions(&tenant)
            .await?
            .into_iter()
            .filter(|request| request.requested_at <= due)
            .collect();
        if pending.is_empty() {
            return Ok(Some(json!({ "requests": 0, "partitions_rewritten": 0, "rows_removed": 0 })));
        }
        let pseudonyms = Pseudonymiser::of_tenant(&ctx.store, secrets, &tenant).await?;
        let users: HashSet<String> = pending.iter().map(|request| pseudonyms.pseudonym(&request.user_id)).collect();
        let lake = TenantLake::new(ctx.objects()?.clone(), &tenant);
        let spool = tempfile::tempdir().map_err(|err| JobError::retryable(format!("cannot make a spool: {err}")))?;

        let partitions = ctx.store.lake_partitions(&tenant, None).await?;
        let (mut rewritten, mut removed) = (0usize, 0usize);
        for (n, partition) in partitions.iter().enumerate() {
            if ctx.cancel.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            let files = erase_partition(&lake, partition, &users, spool.path()).await?;
            let gone: usize = files.iter().map(|file| file.removed).sum();
            let holds: usize = files.iter().map(|file| file.kept).sum();
            // Rewritten now, or by an earlier attempt of this job that failed
            // before it recorded what the files hold: either way the
            // manifest and the record are made from the files themselves.
            if gone > 0 || i64::try_from(holds).ok() != Some(partition.events) {
                let manifest = rewritten_manifest(&partition.manifest, &files, &ctx.job.id.to_string());
                lake.put_manifest(partition.hour, &manifest).await?;
                let record = LakePartition {
                    events: i64::try_from(holds).unwrap_or(i64::MAX),
                    bytes: manifest["files"]
                        .as_array()
                        .map_or(0, |files| files.iter().filter_map(|file| file["bytes"].as_i64()).sum()),
                    manifest,
                    ..partition.clone()
                };
                ctx.store.record_lake_partition(&record).await?;
                rewritten += 1;
                removed += gone;
            }
            ctx.set_progress(i16::try_from((n + 1) * 100 / partitions.len()).unwrap_or(100)).await;
        }
        let ids: Vec<_> = pending.iter().map(|request| request.id).collect();
        let rows = i64::try_from(removed).unwrap_or(i64::MAX);
        ctx.store.finish_event_deletions(&ids, rows).await?;
        metrics::counter!("longhaul_lake_rows_erased_total").increment(removed as u64);
        tracing::info!(requests = ids.len(), rewritten, removed, "erased users' events from the lake");
        Ok(Some(json!({
            "requests": ids.len(),
            "partitions_checked": partitions.len(),
            "partitions_rewritten": rewritten,
            "rows_removed": removed,
        })))
    }
}

/// A file of a partition, after the erasure: what it lost (nothing if it
/// held none of the users' rows) and what it holds.
struct Erased {
    name: String,
    removed: usize,
    kept: usize,
    bytes: u64,
}

/// Rewrites the partition's files that hold rows of `users`, each uploaded
/// over the old one; what each file lost and holds.
async fn erase_partition(
    lake: &TenantLake,
    partition: &LakePartition,
    users: &HashSet<String>,
    spool: &std::path::Path,
) -> Result<Vec<Erased>, JobError> {
    let mut erased = Vec::new();
    for name in part_names(&partition.manifest) {
        let key = lake.key(partition.hour, &name)?;
        let input = spool.join("in.parquet");
        if !lake.download(&key, &input).await? {
            continue;
        }
        let output = spool.join("out.parquet");
        let (input_path, output_path, who) = (input.clone(), output.clone(), users.clone());
        let rewrite = tokio::task::spawn_blocking(move || rewrite_without(&input_path, &output_path, &who))
            .await
            .map_err(|err| JobError::retryable(format!("the Parquet rewrite stopped: {err}")))?
            .map_err(|err| JobError::permanent(format!("{key}: {}", err.0)))?;
        match rewrite {
            Some(rewrite) => {
                let bytes = lake.upload(&key, &output).await?;
                erased.push(Erased { name, removed: rewrite.removed, kept: rewrite.kept, bytes });
            }
            None => {
                let bytes = tokio::fs::metadata(&input).await.map(|meta| meta.len()).unwrap_or(0);
                let kept = row_count(&input).map_err(|err| JobError::permanent(format!("{key}: {}", err.0)))?;
                erased.push(Erased { name, removed: 0, kept, bytes });
            }
        }
    }
    Ok(erased)
}

/// The manifest of the partition's `files` as they now are: its count, each
/// file's rows and bytes, and the erasure.
fn rewritten_manifest(manifest: &Value, files: &[Erased], job_id: &str) -> Value {
    let mut manifest = manifest.clone();
    manifest["events"] = json!(files.iter().map(|file| file.kept).sum::<usize>());
    if let Some(entries) = manifest["files"].as_array_mut() {
        for entry in entries {
            if let Some(file) = files.iter().find(|file| entry["name"] == file.name.as_str()) {
                entry["rows"] = json!(file.kept);
                entry["bytes"] = json!(file.bytes);
            }
        }
    }
    manifest["erased_at"] = json!(Utc::now());
    manifest["erased_by_job"] = json!(job_id);
    manifest
}
