//! Job kinds: one module each. A kind is its payload type (in
//! `longhaul_jobs::model`), a [`Handler`] here, its tests and its bench.

pub mod email_poll;
mod noop;
mod not_implemented;
pub(crate) mod report_build;
mod reservation_refresh;
#[cfg(feature = "video")]
mod video_compile;

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use longhaul_jobs::JobKind;
use serde_json::Value;

use crate::runtime::JobContext;

pub use email_poll::{EmailPoll, MailSettings};
pub use noop::Noop;
pub use not_implemented::NotImplemented;
pub use report_build::ReportBuild;
pub use reservation_refresh::{RefreshSettings, ReservationRefresh};
#[cfg(feature = "video")]
pub use video_compile::VideoCompile;

/// Why an attempt failed, which decides what happens next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt: a timeout, a flaky network, a busy provider.
    #[error("{0}")]
    Retryable(String),
    /// Worth another attempt, but not before `after`: a provider that said
    /// when it will take requests again.
    #[error("{message}")]
    RetryLater { message: String, after: std::time::Duration },
    /// Will fail the same way every time: a bad payload, a missing account.
    /// The job goes `dead` at once.
    #[error("{0}")]
    Permanent(String),
    /// The handler saw its cancellation token trip and stopped.
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    pub fn retryable(message: impl Into<String>) -> Self {
        JobError::Retryable(message.into())
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        JobError::Permanent(message.into())
    }
}

/// What a successful attempt returns: the job's `result`, if any.
pub type JobResult = Result<Option<Value>, JobError>;

/// Runs one kind of job.
///
/// Handlers must watch `ctx.cancel` at their await points: it trips on a
/// cancel request, on lease loss, on timeout and at the end of the shutdown
/// grace period.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    fn kind(&self) -> JobKind;
    async fn run(&self, ctx: &JobContext) -> JobResult;
}

/// The handlers this process can run, by kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<JobKind, Arc<dyn Handler>>,
}

impl Registry {
    /// Every kind this version of longhaul ships: `noop`, `report_build`,
    /// `video_compile` (with the `video` feature), and the kinds whose
    /// handlers have not landed yet (or were left out of this build), which
    /// fail permanently and say so.
    pub fn with_defaults() -> Self {
        let mut registry = Registry::default();
        registry.register(Noop);
        registry.register(EmailPoll::new(MailSettings::default()));
        registry.register(ReportBuild);
        registry.register(ReservationRefresh::new(RefreshSettings::default()));
        #[cfg(feature = "video")]
        registry.register(VideoCompile);
        for kind in JobKind::ALL {
            if registry.get(kind).is_none() {
                registry.register(NotImplemented(kind));
            }
        }
        registry
    }

    pub fn register(&mut self, handler: impl Handler) {
        self.handlers.insert(handler.kind(), Arc::new(handler));
    }

    pub fn get(&self, kind: JobKind) -> Option<Arc<dyn Handler>> {
        self.handlers.get(&kind).cloned()
    }
}
