//! `noop`: sleeps, then succeeds. Health checks and queue benchmarks use it,
//! its test switches (`fail_times`, `fail_permanently`) exercise retries, and
//! `artifact` writes a small object, to check a worker's object store.

use std::time::Duration;

use async_trait::async_trait;
use longhaul_jobs::kind::{self, NoopPayload};

use crate::{context::JobContext, error::JobError, handler::Handler, JobResult};

pub struct Noop;

#[async_trait]
impl Handler for Noop {
    type Kind = kind::Noop;

    async fn run(&self, ctx: &JobContext, payload: NoopPayload) -> JobResult {
        if payload.fail_permanently {
            return Err(JobError::permanent("noop asked to fail permanently"));
        }
        if u32::try_from(ctx.job.attempts).unwrap_or(u32::MAX) <= payload.fail_times {
            return Err(JobError::retryable(format!(
                "noop asked to fail {} time(s); this was attempt {}",
                payload.fail_times, ctx.job.attempts
            )));
        }
        if payload.sleep_ms > 0 {
            // Sleep in slices so that progress moves and a cancel is seen quickly.
            let total = Duration::from_millis(payload.sleep_ms);
            let slices: u32 = if payload.sleep_ms >= 1_000 { 10 } else { 1 };
            for slice in 1..=slices {
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
                    _ = tokio::time::sleep(total / slices) => {}
                }
                if slices > 1 {
                    ctx.set_progress((slice * 100 / slices) as i16).await;
                }
            }
        }
        if let Some(text) = payload.artifact {
            let bytes = text.len();
            let key = ctx.put_artifact_bytes("noop.txt", "text/plain; charset=utf-8", text.into_bytes().into()).await?;
            return Ok(Some(serde_json::json!({ "artifact": { "key": key.as_str(), "bytes": bytes } })));
        }
        Ok(None)
    }
}
