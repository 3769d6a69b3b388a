//! The scheduler: one leader across every worker process, elected through a
//! lease row in the database, does the periodic work.
//!
//! It requeues jobs whose worker died (expired leases), prunes old finished
//! jobs, and enqueues the inbox polls that are due. The reservation sweep
//! planner joins it in its issue.

use std::{sync::Arc, time::Duration};

use longhaul_jobs::{model::EmailPollPayload, DynStore, JobKind, NewJob};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::WorkerConfig;

const LEADER_LEASE: &str = "scheduler";

/// How often old finished jobs are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

/// Most inbox polls enqueued per tick.
const POLLS_PER_TICK: u32 = 1_000;

/// Enqueues a poll for every connected inbox whose time has come, then
/// sets each one's next poll (jittered; later for inboxes that stay idle).
/// Jobs first: a crash between the two steps enqueues a poll twice, and
/// the account's hold makes the second one a no-op, where the other order
/// would lose one.
async fn enqueue_due_polls(store: &DynStore, config: &WorkerConfig) -> longhaul_jobs::store::Result<()> {
    let due = store.due_mail_polls(POLLS_PER_TICK).await?;
    if due.is_empty() {
        return Ok(());
    }
    let jobs: Vec<NewJob> = due
        .iter()
        .filter_map(|poll| {
            let payload = serde_json::to_value(EmailPollPayload { account_id: poll.account_id.to_string() }).ok()?;
            Some(NewJob::new(poll.tenant_id.clone(), poll.user_id.clone(), JobKind::EmailPoll, payload))
        })
        .collect();
    store.insert_jobs(&jobs).await?;
    let next: Vec<_> = due.iter().map(|poll| (poll.account_id, config.mail_poll.next_delay(poll.idle_polls))).collect();
    store.schedule_mail_polls(&next).await?;
    tracing::info!(polls = due.len(), "enqueued due inbox polls");
    Ok(())
}

pub(super) async fn run(store: DynStore, config: Arc<WorkerConfig>, stop: CancellationToken) {
    // Long enough to ride out a slow tick; short enough that a dead leader's
    // successor takes over within a few reap intervals.
    let ttl = (config.reap_interval * 3).max(Duration::from_secs(3));
    let mut ticker = tokio::time::interval(config.reap_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    let mut next_prune = Instant::now() + PRUNE_EVERY;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        match store.try_lead(LEADER_LEASE, &config.worker_id, ttl).await {
            Ok(now_leading) => {
                if now_leading != leading {
                    tracing::info!(worker_id = %config.worker_id, leading = now_leading, "scheduler leadership changed");
                }
                leading = now_leading;
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not renew the scheduler lease");
                leading = false;
            }
        }
        if !leading {
            continue;
        }
        match store.reap_expired().await {
            Ok(report) if report.requeued + report.dead > 0 => {
                tracing::warn!(requeued = report.requeued, dead = report.dead, "reaped jobs whose lease expired");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "reaping expired leases failed"),
        }
        if let Err(err) = enqueue_due_polls(&store, &config).await {
            tracing::warn!(error = %err, "enqueueing due inbox polls failed");
        }
        if Instant::now() >= next_prune {
            next_prune = Instant::now() + PRUNE_EVERY;
            match store.prune_finished(config.retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned old finished jobs"),
                Err(err) => tracing::warn!(error = %err, "pruning finished jobs failed"),
            }
        }
    }
    if leading {
        if let Err(err) = store.resign(LEADER_LEASE, &config.worker_id).await {
            tracing::warn!(error = %err, "could not resign the scheduler lease; it will expire");
        }
    }
}
