//! What runs a job: a [`Handler`] per kind, handed its payload already
//! typed, and the [`Registry`] of the handlers a process runs.

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use longhaul_jobs::{
    kind::{self, Kind},
    JobKind,
};

use crate::{
    context::JobContext,
    error::{JobError, JobResult},
};

/// Runs one kind of job.
///
/// Handlers must watch `ctx.cancel` at their await points: it trips on a
/// cancel request, on lease loss, on timeout and at the end of the shutdown
/// grace period.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The kind this handler runs.
    type Kind: Kind;
    /// Runs one attempt, with the payload read into the kind's type.
    async fn run(&self, ctx: &JobContext, payload: <Self::Kind as Kind>::Payload) -> JobResult;
}

/// A handler as the registry keeps it: it reads the job's payload into the
/// kind's type itself. Every [`Handler`] is one.
#[async_trait]
pub trait DynHandler: Send + Sync + 'static {
    fn kind(&self) -> JobKind;
    async fn run_job(&self, ctx: &JobContext) -> JobResult;
}

#[async_trait]
impl<H: Handler> DynHandler for H {
    fn kind(&self) -> JobKind {
        JobKind::of::<H::Kind>()
    }

    /// A payload that does not fit is a permanent error: it will not fit any
    /// better next time.
    async fn run_job(&self, ctx: &JobContext) -> JobResult {
        let payload = kind::parse::<H::Kind>(&ctx.job.payload)
            .map_err(|err| JobError::permanent(format!("invalid {} payload: {err}", ctx.job.kind)))?;
        self.run(ctx, payload).await
    }
}

/// The handlers this process can run, by kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<JobKind, Arc<dyn DynHandler>>,
}

impl Registry {
    pub fn register(&mut self, handler: impl DynHandler) {
        self.handlers.insert(handler.kind(), Arc::new(handler));
    }

    pub fn get(&self, kind: JobKind) -> Option<Arc<dyn DynHandler>> {
        self.handlers.get(&kind).cloned()
    }
}
