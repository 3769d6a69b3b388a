//! What a handler gets for one attempt.

use std::sync::{Arc, OnceLock};

use longhaul_jobs::{objects::DynObjectStore, store::AttemptRef, DynStore, Job};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::kinds::JobError;

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
}

impl JobContext {
    pub fn attempt(&self) -> AttemptRef {
        AttemptRef { id: self.job.id, attempt: self.job.attempts }
    }

    /// The payload as the kind's type. A payload that does not fit is a
    /// permanent error: it will not fit any better next time.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        T::deserialize(&self.job.payload)
            .map_err(|err| JobError::permanent(format!("invalid {} payload: {err}", self.job.kind)))
    }

    /// The object store, or the permanent error of a worker that has none.
    pub fn objects(&self) -> Result<&DynObjectStore, JobError> {
        self.objects.as_ref().ok_or_else(|| JobError::permanent("this worker was started without an object store"))
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
