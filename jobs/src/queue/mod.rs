//! The Queue port: how a worker receives jobs, keeps them, and lets them go.
//!
//! The database row is always the truth about a job; a queue only decides
//! who runs what next. Two backends:
//! - [`EmbeddedQueue`]: the store is the queue (rows claimed with `SKIP
//!   LOCKED` on PostgreSQL, one writer on SQLite).
//! - [`SqsQueue`] (feature `aws`): one SQS queue and one dead-letter queue per
//!   lane. A message is only a wake-up naming a job and its generation; the
//!   worker still fences the job in the database before it runs it, so a
//!   duplicate, stale or early message can never run a job twice.

mod embedded;
#[cfg(feature = "aws")]
mod sqs;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

#[cfg(feature = "aws")]
pub use aws_config::SdkConfig;
pub use embedded::EmbeddedQueue;
#[cfg(feature = "aws")]
pub use sqs::{
    client as sqs_client, create_lane_queues, load_sdk_config, Dispatcher, SqsConfig, SqsLane, SqsQueue,
    MAX_RESENDS as SQS_MAX_RESENDS, REDRIVE_POLICY_MARGIN,
};

pub use crate::store::ClaimRequest;
use crate::{
    model::{Job, Lane, Scope},
    store::{AttemptRef, Completion, LeaseState, StoreError},
};

pub type DynQueue = Arc<dyn Queue>;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue service failed (after the SDK's own retries).
    #[error("{0}")]
    Backend(String),
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// What a worker holds for a received job: the attempt it started, and for
/// SQS the receipt that acknowledges the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub attempt: AttemptRef,
    pub lane: Lane,
    pub(crate) receipt: Option<Arc<str>>,
}

impl Ticket {
    /// A ticket of the embedded queue, where the lease is the whole receipt.
    pub fn embedded(attempt: AttemptRef, lane: Lane) -> Ticket {
        Ticket { attempt, lane, receipt: None }
    }
}

/// A received job, already `running` at `job.attempts` under a lease.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub job: Job,
    pub ticket: Ticket,
}

/// What an admin redrive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RedriveReport {
    /// Dead jobs put back in their queue with fresh attempts.
    pub requeued: u64,
    /// Dead-letter messages dropped because their job was no longer dead
    /// (retried by hand, or pruned).
    pub dropped: u64,
    /// Queued jobs whose message had ended up in the dead-letter queue
    /// (moved by SQS itself), sent to their queue again.
    pub recovered: u64,
}

#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// `embedded` or `sqs`.
    fn backend(&self) -> &'static str;

    /// The most jobs one receive can return (SQS: 10).
    fn max_receive(&self) -> usize;

    /// Receives what `request` asks for and starts it: each job comes back
    /// `running`, with `attempts + 1` and the request's lease. May wait for
    /// work first (SQS long-polls); returns empty when there is none.
    /// `stop` may end a wait for work, never a receive that has started
    /// jobs: those are always returned. No tenant ends up with more than
    /// the request's `tenant_cap` running jobs in the lane (reserved tenants
    /// excepted).
    async fn receive(&self, request: &ClaimRequest<'_>, stop: &CancellationToken) -> Result<Vec<Delivery>>;

    /// Waits, after an empty receive, until work may have arrived: a wake-up,
    /// or `poll` at most. SQS returns at once, because its receive waited.
    async fn idle(&self, lane: Lane, poll: Duration);

    /// Extends the leases of running jobs, and reports which are still held
    /// and which were asked to cancel.
    async fn heartbeat(&self, tickets: &[Ticket], lease: Duration) -> Result<Vec<LeaseState>>;

    /// Commits outcomes, fenced (see [`crate::Store::complete`]). Returns the
    /// attempts that committed.
    async fn complete(&self, completions: &[Completion]) -> Result<Vec<AttemptRef>>;

    /// Acknowledges finished jobs, after their outcomes committed (or were
    /// fenced off). Nothing to do on the embedded queue.
    async fn acknowledge(&self, tickets: &[Ticket]) -> Result<()>;

    /// Gives running jobs back for immediate redelivery, without spending an
    /// attempt (used at shutdown).
    async fn release(&self, tickets: &[Ticket]) -> Result<u64>;

    /// Puts the dead jobs of `lane` that `scope` sees back in their queue.
    async fn redrive(&self, scope: &Scope, lane: Lane) -> Result<RedriveReport>;

    /// A cheap round trip to every queue this process uses, for readiness.
    /// [`QueueError::Config`] when the queue service answered that a queue
    /// is wrong (missing, forbidden); [`QueueError::Backend`] when it did
    /// not answer, which may pass.
    async fn ping(&self) -> Result<()>;

    /// Background work the queue needs in worker processes (the SQS
    /// dispatcher), until `stop` trips.
    async fn run_background(&self, stop: CancellationToken) {
        let _ = stop;
    }
}
