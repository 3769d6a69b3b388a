//! The JSON shapes of the public contract.
//!
//! These are separate from the stored [`Job`] on purpose: the store may gain
//! columns (leases, worker ids, request hashes) that are nobody's business
//! outside, and a renamed column must not silently rename a public field.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

use longhaul_jobs::{DynStore, Job, JobKind, Lane, Status, StoreError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// A job, as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub tenant_id: String,
    pub user_id: String,
    pub kind: JobKind,
    pub lane: Lane,
    pub status: Status,
    pub payload: Value,
    /// From 0 to 100, reported by the worker while the job runs.
    pub progress: i16,
    /// Attempts started so far, including the running one.
    pub attempts: i32,
    pub max_attempts: i32,
    pub priority: i16,
    /// When the job becomes (or became) due; a retry pushes it back.
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Set when a cancel was asked for a running job that has not stopped yet.
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed, or why the job ended.
    pub error: Option<String>,
    /// What the job produced, for kinds whose result is a summary (counts).
    pub result: Option<Value>,
    /// Files the job produced (reports, videos).
    pub artifacts: Vec<Artifact>,
    pub idempotency_key: Option<String>,
}

impl From<Job> for JobView {
    fn from(job: Job) -> JobView {
        JobView {
            id: job.id,
            tenant_id: job.tenant_id,
            user_id: job.user_id,
            kind: job.kind,
            lane: job.lane,
            status: job.status,
            payload: job.payload,
            progress: job.progress,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            priority: job.priority,
            run_at: job.run_at,
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            cancel_requested_at: job.cancel_requested_at,
            error: job.error,
            result: job.result,
            // Filled by `JobView::with_artifacts`, which reads them.
            artifacts: Vec::new(),
            idempotency_key: job.idempotency_key,
        }
    }
}

impl JobView {
    /// The views of `jobs`, each with its artifacts (one query for all; only
    /// succeeded jobs have any).
    pub async fn with_artifacts(store: &DynStore, jobs: Vec<Job>) -> Result<Vec<JobView>, StoreError> {
        let succeeded: Vec<Uuid> =
            jobs.iter().filter(|job| job.status == Status::Succeeded).map(|job| job.id).collect();
        let mut by_job: HashMap<Uuid, Vec<Artifact>> = HashMap::new();
        for artifact in store.job_artifacts(&succeeded).await? {
            by_job.entry(artifact.job_id).or_default().push(Artifact::from(artifact));
        }
        Ok(jobs
            .into_iter()
            .map(|job| {
                let artifacts = by_job.remove(&job.id).unwrap_or_default();
                JobView { artifacts, ..JobView::from(job) }
            })
            .collect())
    }

    /// One job's view, with its artifacts.
    pub async fn of(store: &DynStore, job: Job) -> Result<JobView, StoreError> {
        let mut views = JobView::with_artifacts(store, vec![job.clone()]).await?;
        Ok(views.pop().unwrap_or_else(|| JobView::from(job)))
    }
}

impl From<longhaul_jobs::store::Artifact> for Artifact {
    fn from(artifact: longhaul_jobs::store::Artifact) -> Artifact {
        Artifact {
            id: artifact.id,
            url: format!("/v1/artifacts/{}", artifact.id),
            name: artifact.name,
            content_type: artifact.content_type,
            size_bytes: artifact.size_bytes,
        }
    }
}

/// A file a job produced, downloadable at `url`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Artifact {
    pub id: Uuid,
    pub name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// `/v1/artifacts/{id}`: a redirect to the object store, or the file.
    pub url: String,
}

/// One page of jobs, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobList {
    pub items: Vec<JobView>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Cursors are opaque to clients: the base64url of the last job id of the
/// page. Opaque so that the ordering key can change without breaking clients.
pub fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// The job id a cursor stands for, or None if it is not one of ours.
pub fn decode_cursor(cursor: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    Uuid::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)), Some(id));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(decode_cursor("AAAA"), None);
    }
}
