//! Notifications: events that leave longhaul (`job.succeeded`, `job.failed`,
//! `job.dead`, `reservation.changed`, `trip.ready`), and the pushes to travelers' phones
//! ([`push`]).
//!
//! Events are written to the outbox table in the same transaction as what
//! they announce, so an event is never sent for a change that did not
//! commit, nor lost for one that did. A [`Publisher`] drains the outbox to a
//! [`Notifier`]: SNS in production, the log on embedded defaults. Delivery is
//! at least once; consumers deduplicate on `event_id`.

pub mod push;
#[cfg(feature = "aws")]
mod sns;
#[cfg(feature = "aws")]
mod sns_push;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[cfg(feature = "aws")]
pub use sns::SnsNotifier;
#[cfg(feature = "aws")]
pub use sns_push::SnsPush;

use crate::store::DynJobStore;

/// The `event_type`s longhaul publishes, each with `event_type` and
/// `tenant_id` message attributes on SNS.
pub mod event_types {
    pub const JOB_SUCCEEDED: &str = "job.succeeded";
    /// An attempt failed and the job will be retried.
    pub const JOB_FAILED: &str = "job.failed";
    pub const JOB_DEAD: &str = "job.dead";
    /// A refresh found a reservation changed at its agency. Written by
    /// `reservation_refresh` through the same outbox.
    pub const RESERVATION_CHANGED: &str = "reservation.changed";
    /// A new trip that has not started yet: reservations were grouped into
    /// it for the first time. Written by every write that regroups trips
    /// (`travel::sql::regroup_users`), in its transaction.
    pub const TRIP_READY: &str = "trip.ready";
}

/// Events go out in batches of this many: SNS's PublishBatch limit.
pub const BATCH: usize = 10;

/// One event, as stored in the outbox and sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxEvent {
    /// Unique and stable across redeliveries: consumers deduplicate on it.
    pub id: i64,
    pub tenant_id: String,
    pub event_type: String,
    pub payload: Value,
}

#[derive(Debug, thiserror::Error)]
#[error("publishing events failed: {0}")]
pub struct NotifyError(pub String);

/// Where events go.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// `log` or `sns`.
    fn backend(&self) -> &'static str;

    /// Publishes up to [`BATCH`] events. Returns the ids of the events that
    /// were accepted; the others stay in the outbox and go out again later.
    async fn publish(&self, events: &[OutboxEvent]) -> Result<Vec<i64>, NotifyError>;
}

pub type DynNotifier = Arc<dyn Notifier>;

/// The embedded default: every event is a structured log line.
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    fn backend(&self) -> &'static str {
        "log"
    }

    async fn publish(&self, events: &[OutboxEvent]) -> Result<Vec<i64>, NotifyError> {
        for event in events {
            tracing::info!(
                target: "longhaul::events",
                event_id = event.id,
                event_type = %event.event_type,
                tenant = %event.tenant_id,
                payload = %event.payload,
                "event"
            );
        }
        Ok(events.iter().map(|event| event.id).collect())
    }
}

/// Drains the outbox to a notifier until stopped. Any number of publishers
/// may run (one per worker process): each claims its batches under a lease.
pub struct Publisher {
    pub store: DynJobStore,
    pub notifier: DynNotifier,
    /// How long a claimed batch is this publisher's before another may take it.
    pub lease: Duration,
    /// How long an idle publisher waits before looking again.
    pub idle: Duration,
}

impl Publisher {
    pub async fn run(self, stop: CancellationToken) {
        let wakeups = self.store.wakeups().clone();
        loop {
            let published = match self.drain_once().await {
                Ok(count) => count,
                Err(err) => {
                    tracing::warn!(error = %err, "publishing events failed; retrying");
                    0
                }
            };
            if published > 0 {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.idle) => {}
                _ = wakeups.outbox().notified() => {}
            }
        }
    }

    /// Publishes one batch; returns how many events went out.
    pub async fn drain_once(&self) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let events = self.store.claim_outbox(BATCH, self.lease).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let published = self.notifier.publish(&events).await?;
        self.store.delete_outbox(&published).await?;
        if published.len() < events.len() {
            tracing::warn!(
                failed = events.len() - published.len(),
                "some events were not accepted; they go out again when their lease lapses"
            );
        }
        Ok(published.len())
    }
}

/// The notifier `LONGHAUL_SNS_TOPIC_ARN` asks for: SNS when set, the log
/// otherwise.
pub async fn from_env() -> Result<DynNotifier, NotifyError> {
    match std::env::var("LONGHAUL_SNS_TOPIC_ARN").ok().filter(|arn| !arn.trim().is_empty()) {
        None => Ok(Arc::new(LogNotifier)),
        #[cfg(feature = "aws")]
        Some(topic_arn) => Ok(Arc::new(SnsNotifier::from_env(topic_arn.trim()).await)),
        #[cfg(not(feature = "aws"))]
        Some(_) => Err(NotifyError("this build of longhaul has no SNS support (the `aws` feature is off)".into())),
    }
}
