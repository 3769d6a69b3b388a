//! The kinds whose handlers have not landed yet, or were left out of this
//! build (`video_compile` without the `video` feature). A job of such a kind
//! ends `dead` with a clear reason; it never reports a fake success.

use async_trait::async_trait;
use longhaul_jobs::JobKind;

use crate::{context::JobContext, error::JobError, handler::DynHandler, JobResult};

pub struct NotImplemented(pub JobKind);

#[async_trait]
impl DynHandler for NotImplemented {
    fn kind(&self) -> JobKind {
        self.0
    }

    async fn run_job(&self, _ctx: &JobContext) -> JobResult {
        if self.0 == JobKind::VIDEO_COMPILE {
            return Err(JobError::permanent(
                "this worker was built without the `video` feature (libav); run video jobs on a worker built with it",
            ));
        }
        Err(JobError::permanent(format!(
            "the `{}` job kind is not implemented yet in this version of longhaul",
            self.0
        )))
    }
}
