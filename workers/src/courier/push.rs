//! The pusher: sends due pushes (one notification to one device) through
//! the push service, and deletes the endpoints of devices that are gone.
//!
//! Pushes are claimed under a lease (`InboxStore::claim_pushes`), so any
//! number of worker processes may push; a push is marked sent as soon as
//! the service takes it, and the (notification, device) key makes it once
//! per device however often its event was drained. The one window left is
//! a process that dies between the service's answer and the mark: its
//! lease lapses and that push goes again (at least once, never lost).
//!
//! - A device without an endpoint gets one first (kept on its row).
//! - The service says the endpoint is disabled (the token is dead): the
//!   device is disabled, its pending pushes dropped, its endpoint deleted.
//! - The endpoint no longer exists: it is forgotten and made again on the
//!   next try.
//! - A refusal that will not change (no application for the platform, a
//!   token the service cannot take) drops the push; anything else is tried
//!   again with backoff, [`MAX_ATTEMPTS`] times in all.

use std::time::Duration;

use futures::{stream, StreamExt};
use longhaul_jobs::{
    database::DynStore,
    inbox::{PushDelivery, PushOutcome},
    notify::push::{DynPushService, PushError, PushMessage},
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Tries of one push before it is dropped.
pub const MAX_ATTEMPTS: i32 = 8;

/// Pushes sent at once by one process: the service is remote, and each
/// push is one round trip.
const IN_FLIGHT: usize = 16;

/// Pushes claimed at once.
const BATCH: u32 = 64;

/// Gone endpoints deleted per pass.
const GONE_BATCH: u32 = 50;

pub struct Pusher {
    pub store: DynStore,
    pub service: DynPushService,
    /// How long a claimed push is this process's before another may take it.
    pub lease: Duration,
    /// How long an idle pusher waits before looking again.
    pub idle: Duration,
}

/// The wait before try `attempts + 1`: 5 s doubling, at most 10 minutes.
fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.clamp(1, 8) - 1).unwrap_or(0);
    Duration::from_secs(5 * 2u64.pow(exponent)).min(Duration::from_secs(600))
}

impl Pusher {
    pub async fn run(self, stop: CancellationToken) {
        loop {
            let busy = match self.once().await {
                Ok(count) => count > 0,
                Err(err) => {
                    tracing::warn!(error = %err, "pushing failed; retrying");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.idle) => {}
            }
        }
    }

    /// One pass: due pushes, then gone endpoints. Returns how much it did.
    pub async fn once(&self) -> Result<usize, longhaul_jobs::StoreError> {
        let pushes = self.store.claim_pushes(BATCH, self.lease).await?;
        let count = pushes.len();
        let results: Vec<Result<(), longhaul_jobs::StoreError>> = stream::iter(pushes)
            .map(|push| async move {
                let span = tracing::info_span!(
                    "push",
                    notification_id = %push.notification_id,
                    device_id = %push.device_id,
                    tenant = %push.tenant_id,
                    kind = push.kind.as_str(),
                    attempt = push.attempts
                );
                async {
                    let outcome = self.deliver(&push).await?;
                    match &outcome {
                        PushOutcome::Sent { .. } => tracing::debug!("pushed"),
                        PushOutcome::Retry { error, after } => {
                            tracing::warn!(error = %error, retry_in_s = after.as_secs(), "push failed; will retry")
                        }
                        PushOutcome::Dropped { error } => tracing::warn!(error = %error, "push dropped"),
                    }
                    self.store.finish_push(push.notification_id, push.device_id, &outcome).await
                }
                .instrument(span)
                .await
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        let gone = self.delete_gone_endpoints().await?;
        Ok(count + gone)
    }

    /// Sends one push; what became of it. Store errors are returned (the
    /// lease lapses and the push goes again).
    async fn deliver(&self, push: &PushDelivery) -> Result<PushOutcome, longhaul_jobs::StoreError> {
        let endpoint = match &push.endpoint_arn {
            Some(endpoint) => endpoint.clone(),
            None => {
                let user_data = format!("{}/{}", push.tenant_id, push.user_id);
                match self.service.endpoint(push.platform, &push.token, &user_data).await {
                    Ok(endpoint) => {
                        self.store.set_device_endpoint(push.device_id, Some(&endpoint)).await?;
                        endpoint
                    }
                    Err(err) => return self.failed(push, err).await,
                }
            }
        };
        match self.service.send(&endpoint, &PushMessage::of(push)).await {
            Ok(message_id) => Ok(PushOutcome::Sent { message_id }),
            Err(err) => self.failed(push, err).await,
        }
    }

    async fn failed(&self, push: &PushDelivery, err: PushError) -> Result<PushOutcome, longhaul_jobs::StoreError> {
        Ok(match err {
            PushError::Disabled(_) => {
                // The token is dead: no more pushes to it, and its endpoint
                // goes (deleted by `delete_gone_endpoints`).
                self.store.disable_device(push.device_id).await?;
                PushOutcome::Dropped { error: err.to_string() }
            }
            PushError::NoEndpoint(_) => {
                self.store.set_device_endpoint(push.device_id, None).await?;
                PushOutcome::Retry { error: err.to_string(), after: Duration::ZERO }
            }
            PushError::Refused(_) => PushOutcome::Dropped { error: err.to_string() },
            PushError::Failed(_) if push.attempts >= MAX_ATTEMPTS => {
                PushOutcome::Dropped { error: format!("{err} (after {} attempts)", push.attempts) }
            }
            PushError::Failed(_) => PushOutcome::Retry { error: err.to_string(), after: backoff(push.attempts) },
        })
    }

    /// Deletes, at the push service, the endpoints of devices that were
    /// removed, replaced or disabled. One that fails stays for the next pass.
    async fn delete_gone_endpoints(&self) -> Result<usize, longhaul_jobs::StoreError> {
        let gone = self.store.gone_endpoints(GONE_BATCH).await?;
        let mut deleted = Vec::new();
        for endpoint in gone {
            match self.service.delete_endpoint(&endpoint).await {
                Ok(()) => deleted.push(endpoint),
                Err(err) => tracing::warn!(endpoint = %endpoint, error = %err, "deleting an endpoint failed"),
            }
        }
        self.store.forget_gone_endpoints(&deleted).await?;
        Ok(deleted.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_5_seconds_to_10_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(8), Duration::from_secs(600));
        assert_eq!(backoff(100), Duration::from_secs(600));
    }
}
