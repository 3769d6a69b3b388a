//! The scheduler: one leader across every worker process, elected through a
//! lease row in the database, does the periodic work.
//!
//! Today that is housekeeping: requeueing jobs whose worker died (expired
//! leases) and pruning old finished jobs. The reservation sweep planner and
//! due inbox polls join it in their issues.

use std::{sync::Arc, time::Duration};

use longhaul_jobs::DynStore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::WorkerConfig;

const LEADER_LEASE: &str = "scheduler";

/// How often old finished jobs are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

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
