//! The embedded queue: the store's own rows. A claim is the receive, the
//! row's lease is the receipt.

use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{Delivery, Queue, RedriveReport, Result, Ticket};
use crate::{
    model::{Lane, Scope},
    store::{AttemptRef, ClaimRequest, Completion, DynJobStore, LeaseState},
};

pub struct EmbeddedQueue {
    store: DynJobStore,
}

impl EmbeddedQueue {
    pub fn new(store: DynJobStore) -> EmbeddedQueue {
        EmbeddedQueue { store }
    }
}

fn attempts(tickets: &[Ticket]) -> Vec<AttemptRef> {
    tickets.iter().map(|ticket| ticket.attempt).collect()
}

#[async_trait]
impl Queue for EmbeddedQueue {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn max_receive(&self) -> usize {
        usize::MAX
    }

    /// One claim statement: quick, and never abandoned halfway.
    async fn receive(&self, request: &ClaimRequest<'_>, _stop: &CancellationToken) -> Result<Vec<Delivery>> {
        let claimed = self.store.claim_within(request).await?;
        Ok(claimed
            .into_iter()
            .map(|job| {
                let ticket = Ticket::embedded(AttemptRef::of(&job), job.lane);
                Delivery { job, ticket }
            })
            .collect())
    }

    async fn idle(&self, lane: Lane, poll: Duration) {
        let wakeups = self.store.wakeups();
        match wakeups.lane(lane) {
            Some(notify) => {
                let _ = tokio::time::timeout(poll, notify.notified()).await;
            }
            None => tokio::time::sleep(poll).await,
        }
    }

    async fn heartbeat(&self, tickets: &[Ticket], lease: Duration) -> Result<Vec<LeaseState>> {
        Ok(self.store.heartbeat(&attempts(tickets), lease).await?)
    }

    async fn complete(&self, completions: &[Completion]) -> Result<Vec<AttemptRef>> {
        Ok(self.store.complete(completions).await?)
    }

    async fn acknowledge(&self, _tickets: &[Ticket]) -> Result<()> {
        Ok(())
    }

    async fn release(&self, tickets: &[Ticket]) -> Result<u64> {
        Ok(self.store.release(&attempts(tickets)).await?)
    }

    async fn redrive(&self, scope: &Scope, lane: Lane) -> Result<RedriveReport> {
        let requeued = self.store.redrive(scope, lane, None).await?;
        Ok(RedriveReport { requeued: requeued.len() as u64, ..RedriveReport::default() })
    }

    async fn ping(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }
}
