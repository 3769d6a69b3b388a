//! The dispatch port: what an external queue (SQS) needs of the store.
//!
//! In dispatch mode every transition of a job to `queued` (and to `dead`)
//! also writes a row to the dispatch outbox, in the same transaction; the
//! dispatcher sends the rows as messages, and a receive starts the jobs its
//! messages name. Only PostgreSQL keeps an outbox, so only it implements
//! [`DispatchStore`], and [`crate::database::connect_dispatch`] is the one
//! way to open one:
//! the SQS queue takes a [`DynDispatchStore`], so a queue on a store that
//! cannot feed it does not compile.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ClaimRequest, Claimed, JobStore, Result};
use crate::model::Lane;

/// A store with a dispatch outbox.
#[async_trait]
pub trait DispatchStore: JobStore {
    /// Starts the jobs that delivered messages name, the way
    /// [`JobStore::claim_within`] would claim them for `request` (its lane,
    /// lease, worker and tenant cap; the messages stand for its `max`), if
    /// each is queued, due, and at the message's generation. Says what to do
    /// with the other messages.
    ///
    /// A message whose tenant is at the cap (and whose job is due) is sent
    /// again later as a fresh message, and this one is to be dropped.
    async fn start_delivered(&self, request: &ClaimRequest<'_>, messages: &[Delivered]) -> Result<Started>;

    /// Moves queued jobs whose messages were delivered `receives` times
    /// without finishing to `dead`, and dispatches them to the dead-letter
    /// queue; says what to do with the messages of the others.
    async fn dead_letter_delivered(&self, messages: &[Delivered], receives: u32) -> Result<DeadLettered>;

    /// Leases up to `max` dispatch rows that are due within `horizon` and
    /// that nobody holds, oldest first.
    async fn claim_dispatch(&self, max: usize, horizon: Duration, lease: Duration) -> Result<Vec<Dispatch>>;

    /// Writes a fresh dispatch row for each of these jobs that is `queued`
    /// (its message was lost, say to a dead-letter queue). Returns their ids.
    async fn redispatch(&self, ids: &[Uuid]) -> Result<Vec<Uuid>>;

    /// Gives up the lease of dispatch rows that could not be sent, so that
    /// the next round tries them at once.
    async fn release_dispatch(&self, ids: &[i64]) -> Result<u64>;

    /// Removes dispatch rows whose messages were sent.
    async fn delete_dispatch(&self, ids: &[i64]) -> Result<u64>;

    /// Dispatch rows not yet sent, for tests and benches.
    async fn dispatch_backlog(&self) -> Result<i64>;
}

pub type DynDispatchStore = Arc<dyn DispatchStore>;

/// A message an external queue delivered: it names a job, and the job's
/// `generation` when the message was dispatched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub id: Uuid,
    pub generation: i32,
}

/// What to do with a delivered message that did not start its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undelivered {
    /// The message is stale: its job is gone, finished, running under another
    /// message, or was dispatched again since. Delete it.
    Drop { id: Uuid, why: &'static str },
    /// The message is current but early (or its job is busy): hide it for this long.
    Postpone { id: Uuid, after: Duration },
}

/// What [`DispatchStore::start_delivered`] did with a batch of messages.
#[derive(Debug, Default)]
pub struct Started {
    /// Now `running` at `attempts + 1` and a new generation, leased to the caller.
    pub jobs: Vec<Claimed>,
    pub others: Vec<Undelivered>,
}

/// What [`DispatchStore::dead_letter_delivered`] did with a batch of messages.
#[derive(Debug, Default)]
pub struct DeadLettered {
    /// Now `dead`, with a dispatch row for the dead-letter queue.
    pub killed: Vec<Uuid>,
    pub others: Vec<Undelivered>,
}

/// A job's message waiting in the dispatch outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub id: i64,
    pub job_id: Uuid,
    pub lane: Lane,
    pub tenant_id: String,
    pub generation: i32,
    /// Bound for the lane's dead-letter queue.
    pub dead_letter: bool,
    pub send_at: DateTime<Utc>,
    pub traceparent: Option<String>,
}
