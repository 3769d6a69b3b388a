//! The kinds whose handlers have not landed yet. A job of such a kind ends
//! `dead` with a clear reason; it never reports a fake success.

use async_trait::async_trait;
use longhaul_jobs::JobKind;

use super::{Handler, JobError, JobResult};
use crate::runtime::JobContext;

pub struct NotImplemented(pub JobKind);

#[async_trait]
impl Handler for NotImplemented {
    fn kind(&self) -> JobKind {
        self.0
    }

    async fn run(&self, _ctx: &JobContext) -> JobResult {
        Err(JobError::permanent(format!(
            "the `{}` job kind is not implemented yet in this version of longhaul",
            self.0
        )))
    }
}
