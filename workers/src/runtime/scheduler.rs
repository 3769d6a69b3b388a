//! The scheduler: one leader across every worker process, elected through a
//! lease row in the database, does the periodic work.
//!
//! It requeues jobs whose worker died (expired leases), prunes old finished
//! jobs, sweeps and notifications, enqueues the inbox polls that are due,
//! and plans a reservation sweep at the start of every sweep interval, and
//! once an hour an `events_export` job per tenant for each closed hour of
//! analytics events not yet in the lake, and once a day an
//! `events_retention` per tenant with a lake.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use longhaul_jobs::{
    events::hour_of,
    kind::{EmailPoll, EmailPollPayload, EventsExport, EventsExportPayload, EventsRetention, EventsRetentionPayload},
    model::SCHEDULER_USER,
    store::InsertOutcome,
    DynStore, NewJob,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{SweepConfig, WorkerConfig};

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
            let payload = EmailPollPayload { account_id: poll.account_id };
            NewJob::of::<EmailPoll>(poll.tenant_id.clone(), poll.user_id.clone(), &payload).ok()
        })
        .collect();
    store.insert_jobs(&jobs).await?;
    let next: Vec<_> = due.iter().map(|poll| (poll.account_id, config.mail_poll.next_delay(poll.idle_polls))).collect();
    store.schedule_mail_polls(&next).await?;
    tracing::info!(polls = due.len(), "enqueued due inbox polls");
    Ok(())
}

/// How long after an hour ends its export is planned: time for the API's
/// last inserts of the hour to commit, on every replica's clock.
const EXPORT_GRACE: chrono::Duration = chrono::Duration::minutes(5);

/// How many closed hours back the planner looks for hours not yet in the
/// lake: a leader that was down for up to two days catches up.
const EXPORT_LOOKBACK_HOURS: i64 = 48;

/// The last hour whose export may be planned at `now`.
fn last_closed_hour(now: DateTime<Utc>) -> DateTime<Utc> {
    hour_of(now - EXPORT_GRACE) - chrono::Duration::hours(1)
}

/// Submits an `events_export` for every tenant and closed hour of the last
/// two days that holds raw events and has no lake partition. Each job's
/// idempotency key names its hour, so planning twice (a new leader, a
/// restart) submits nothing twice, and an export that is queued or running
/// is not submitted again.
async fn plan_exports(store: &DynStore, now: DateTime<Utc>) -> longhaul_jobs::store::Result<u64> {
    let last = last_closed_hour(now);
    let mut submitted = 0;
    for back in (0..EXPORT_LOOKBACK_HOURS).rev() {
        let hour = last - chrono::Duration::hours(back);
        for tenant in store.unexported_tenants(hour).await? {
            let Ok(mut job) = NewJob::of::<EventsExport>(tenant, SCHEDULER_USER, &EventsExportPayload { hour }) else {
                continue;
            };
            job.idempotency_key = Some(format!("events_export:{}", hour.to_rfc3339()));
            if matches!(store.insert_job(job).await?, InsertOutcome::Created(_)) {
                submitted += 1;
            }
        }
    }
    if submitted > 0 {
        tracing::info!(submitted, "planned event exports");
    }
    Ok(submitted)
}

/// Submits, once a UTC day, an `events_retention` for every tenant with
/// partitions in the lake, keyed by the day so a new leader adds none.
async fn plan_retention(store: &DynStore, day: chrono::NaiveDate) -> longhaul_jobs::store::Result<u64> {
    let mut submitted = 0;
    for tenant in store.lake_tenants().await? {
        let Ok(mut job) = NewJob::of::<EventsRetention>(tenant, SCHEDULER_USER, &EventsRetentionPayload {}) else {
            continue;
        };
        job.idempotency_key = Some(format!("events_retention:{day}"));
        if matches!(store.insert_job(job).await?, InsertOutcome::Created(_)) {
            submitted += 1;
        }
    }
    if submitted > 0 {
        tracing::info!(submitted, %day, "planned event retention");
    }
    Ok(submitted)
}

/// The start of the sweep interval `now` falls in: sweeps start at every
/// multiple of the interval since the epoch.
fn sweep_slot(now: DateTime<Utc>, interval: Duration) -> DateTime<Utc> {
    let step = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
    let start = now.timestamp_millis().div_euclid(step) * step;
    DateTime::from_timestamp_millis(start).unwrap_or(now)
}

/// Starts the sweep of `slot` unless one was started already (by this
/// leader before a restart, or by another), and enqueues its shards. The
/// sweep and its shard rows commit first, naming each shard's job: a crash
/// before the jobs are in leaves shards that hold nothing back, never a
/// shard that runs twice.
async fn plan_sweep(store: &DynStore, sweep: SweepConfig, slot: DateTime<Utc>) -> longhaul_jobs::store::Result<()> {
    let Some(start) = store.begin_sweep(slot, sweep.shard_size).await? else {
        return Ok(());
    };
    let jobs = start.jobs();
    for chunk in jobs.chunks(1_000) {
        store.insert_jobs(chunk).await?;
    }
    tracing::info!(
        sweep_id = %start.sweep_id,
        active = start.active,
        shards = start.shards,
        enqueued = start.enqueue.len(),
        skipped = start.skipped,
        "started a reservation sweep"
    );
    metrics::counter!("longhaul_sweep_shards_total", "outcome" => "enqueued").increment(start.enqueue.len() as u64);
    metrics::counter!("longhaul_sweep_shards_total", "outcome" => "skipped").increment(u64::from(start.skipped));
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
    let mut planned: Option<DateTime<Utc>> = None;
    let mut exports_planned: Option<DateTime<Utc>> = None;
    let mut retention_planned: Option<chrono::NaiveDate> = None;
    loop {
        // Besides its ticks, the scheduler wakes just after each sweep
        // interval begins, so every sweep starts on time and a shard is
        // checked at the same point of each interval.
        let next_sweep = config.sweep.map(|sweep| {
            let now = Utc::now();
            let next = sweep_slot(now, sweep.interval) + chrono::Duration::from_std(sweep.interval).unwrap_or_default();
            (next - now).to_std().unwrap_or_default() + Duration::from_millis(5)
        });
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
            _ = async {
                match next_sweep {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            } => {}
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
        if let Some(sweep) = config.sweep {
            let slot = sweep_slot(Utc::now(), sweep.interval);
            if planned != Some(slot) {
                match plan_sweep(&store, sweep, slot).await {
                    Ok(()) => planned = Some(slot),
                    Err(err) => tracing::warn!(error = %err, "planning the reservation sweep failed"),
                }
            }
        }
        let closed = last_closed_hour(Utc::now());
        if exports_planned != Some(closed) {
            match plan_exports(&store, Utc::now()).await {
                Ok(_) => exports_planned = Some(closed),
                Err(err) => tracing::warn!(error = %err, "planning the event exports failed"),
            }
        }
        let today = Utc::now().date_naive();
        if retention_planned != Some(today) {
            match plan_retention(&store, today).await {
                Ok(_) => retention_planned = Some(today),
                Err(err) => tracing::warn!(error = %err, "planning the event retention failed"),
            }
        }
        if Instant::now() >= next_prune {
            next_prune = Instant::now() + PRUNE_EVERY;
            match store.prune_finished(config.retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned old finished jobs"),
                Err(err) => tracing::warn!(error = %err, "pruning finished jobs failed"),
            }
            let before = Utc::now() - chrono::Duration::from_std(config.retention).unwrap_or(chrono::Duration::MAX);
            match store.prune_sweeps(before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned old sweeps"),
                Err(err) => tracing::warn!(error = %err, "pruning old sweeps failed"),
            }
            match store.prune_event_batches(Utc::now() - longhaul_jobs::events::BATCH_KEYS_KEPT).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "forgot old event batch keys"),
                Err(err) => tracing::warn!(error = %err, "pruning event batch keys failed"),
            }
            match store.prune_notifications(Utc::now() - longhaul_jobs::inbox::NOTIFICATIONS_KEPT).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "forgot old notifications"),
                Err(err) => tracing::warn!(error = %err, "pruning old notifications failed"),
            }
        }
    }
    if leading {
        if let Err(err) = store.resign(LEADER_LEASE, &config.worker_id).await {
            tracing::warn!(error = %err, "could not resign the scheduler lease; it will expire");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_start_at_multiples_of_the_interval() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let five = Duration::from_secs(300);
        assert_eq!(sweep_slot(at("2026-11-28T10:04:59.999Z"), five), at("2026-11-28T10:00:00Z"));
        assert_eq!(sweep_slot(at("2026-11-28T10:05:00Z"), five), at("2026-11-28T10:05:00Z"));
        assert_eq!(sweep_slot(at("2026-11-28T10:07:30Z"), Duration::from_secs(3600)), at("2026-11-28T10:00:00Z"));
    }

    #[test]
    fn an_hour_is_exported_once_it_ended_and_its_grace_passed() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(last_closed_hour(at("2026-12-05T09:04:59Z")), at("2026-12-05T07:00:00Z"));
        assert_eq!(last_closed_hour(at("2026-12-05T09:05:00Z")), at("2026-12-05T08:00:00Z"));
    }
}
