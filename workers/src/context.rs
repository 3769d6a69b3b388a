//! What a handler gets for one attempt.

use std::sync::{Arc, OnceLock};

use std::{path::Path, sync::Mutex, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use longhaul_jobs::{
    objects::{DynObjectStore, ObjectError, ObjectKey},
    store::{AttemptRef, NewArtifact},
    DynStore, Job,
};
use tokio_util::sync::CancellationToken;

use crate::error::JobError;

/// How long an artifact upload keeps trying while the object store fails in
/// a way that may pass, before the attempt fails.
pub const UPLOAD_PATIENCE: Duration = Duration::from_secs(20);

/// Why an attempt's cancellation token tripped. The first reason wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// A user or admin cancelled the job.
    Requested,
    /// The heartbeat found the lease gone: another worker may own the job now,
    /// and nothing this attempt does can commit.
    LeaseLost,
    /// The kind's timeout elapsed.
    Timeout,
    /// The worker is shutting down and the grace period is over.
    Shutdown,
}

/// The cancellation of one attempt, with its reason.
#[derive(Debug, Clone, Default)]
pub struct Cancellation {
    token: CancellationToken,
    reason: Arc<OnceLock<CancelReason>>,
}

impl Cancellation {
    pub fn cancel(&self, reason: CancelReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<CancelReason> {
        self.reason.get().copied()
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// One attempt of one job, as its handler sees it.
pub struct JobContext {
    /// The claimed row; `job.attempts` is this attempt's number.
    pub job: Job,
    /// Trips on cancel, lease loss, timeout, or the end of the shutdown grace.
    pub cancel: CancellationToken,
    pub store: DynStore,
    /// Where artifacts go. `None` in runtimes started without one (tests of
    /// kinds that write nothing); a kind that needs it fails permanently.
    pub objects: Option<DynObjectStore>,
    /// Artifacts uploaded by this attempt, recorded with its success.
    pub(crate) artifacts: Mutex<Vec<NewArtifact>>,
}

impl JobContext {
    pub fn attempt(&self) -> AttemptRef {
        AttemptRef::of(&self.job)
    }

    /// The job owner's profile: the zone and language their files are
    /// written in. A user the tenant knows nothing of has the defaults
    /// (UTC, English).
    pub async fn owner_profile(&self) -> Result<longhaul_jobs::inbox::Profile, JobError> {
        self.store
            .get_profile(&self.job.tenant_id, &self.job.user_id)
            .await
            .map_err(|err| JobError::retryable(format!("cannot read the owner's profile: {err}")))
    }

    /// The object store, or the permanent error of a worker that has none.
    pub fn objects(&self) -> Result<&DynObjectStore, JobError> {
        self.objects.as_ref().ok_or_else(|| JobError::permanent("this worker was started without an object store"))
    }

    /// Where this attempt's artifact `name` goes. Each attempt has its own
    /// keys, so an attempt that lost its lease never overwrites the file of
    /// the one that committed.
    fn artifact_key(&self, name: &str) -> Result<ObjectKey, JobError> {
        ObjectKey::new(&self.job.tenant_id, &format!("jobs/{}/{}/{name}", self.job.id, self.job.attempts))
            .map_err(|err| JobError::permanent(format!("cannot name the artifact `{name}`: {err}")))
    }

    fn record_artifact(&self, name: &str, content_type: &str, key: &ObjectKey, size: u64) {
        let artifact = NewArtifact {
            id: uuid::Uuid::now_v7(),
            name: name.to_owned(),
            content_type: content_type.to_owned(),
            object_key: key.as_str().to_owned(),
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        };
        self.artifacts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(artifact);
    }

    /// Uploads `bytes` as the artifact `name`. It is listed on the job, and
    /// downloadable, once the job succeeds; not before.
    pub async fn put_artifact_bytes(
        &self,
        name: &str,
        content_type: &str,
        bytes: Bytes,
    ) -> Result<ObjectKey, JobError> {
        let key = self.artifact_key(name)?;
        let size = bytes.len() as u64;
        let objects = self.objects()?;
        self.riding_out_outages(name, || objects.put_bytes(&key, bytes.clone(), content_type)).await?;
        self.record_artifact(name, content_type, &key, size);
        Ok(key)
    }

    /// Runs an upload of the artifact `name`, again while the store fails
    /// in a way that may pass (an outage, a reset connection: a blip of S3
    /// should cost a few seconds, not one of the job's attempts), for up to
    /// about [`UPLOAD_PATIENCE`]; then, or at once for an error that will
    /// not pass, the attempt fails (retryably). Gives way to the attempt's
    /// cancellation.
    async fn riding_out_outages<T, Fut>(&self, name: &str, upload: impl FnMut() -> Fut) -> Result<T, JobError>
    where
        Fut: std::future::Future<Output = Result<T, ObjectError>>,
    {
        let retries = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(4))
            .with_jitter()
            .without_max_times()
            .with_total_delay(Some(UPLOAD_PATIENCE));
        let uploading = upload
            .retry(retries)
            .when(|err| matches!(err, ObjectError::Backend(_) | ObjectError::Io(_)))
            .notify(|err, next| {
                let retry_in_ms = u64::try_from(next.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(artifact = name, error = %err, retry_in_ms, "cannot store an artifact yet; trying again");
            });
        tokio::select! {
            uploaded = uploading => {
                uploaded.map_err(|err| JobError::retryable(format!("cannot store the artifact `{name}`: {err}")))
            }
            () = self.cancel.cancelled() => Err(JobError::Cancelled),
        }
    }

    /// Uploads the file at `path` as the artifact `name`, streaming it
    /// (multipart on S3).
    pub async fn put_artifact_file(&self, name: &str, content_type: &str, path: &Path) -> Result<ObjectKey, JobError> {
        let key = self.artifact_key(name)?;
        let objects = self.objects()?;
        let size = self.riding_out_outages(name, || objects.put_file(&key, path, content_type)).await?;
        self.record_artifact(name, content_type, &key, size);
        Ok(key)
    }

    /// The artifacts this attempt uploaded, for its completion.
    pub(crate) fn take_artifacts(&self) -> Vec<NewArtifact> {
        std::mem::take(&mut *self.artifacts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Reports progress (0–100). Failures are logged, not fatal: progress is
    /// a courtesy to the user, and the heartbeat decides whether we still own
    /// the job.
    pub async fn set_progress(&self, progress: i16) {
        if let Err(err) = self.store.set_progress(self.attempt(), progress).await {
            tracing::warn!(error = %err, "could not record progress");
        }
    }
}
