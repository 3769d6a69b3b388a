//! The worker's presence: every few seconds each process records that it is
//! alive, the lanes it serves and the jobs it is running, for the
//! dashboard's workers page. A process that stops removes its row; one that
//! dies is simply not seen again.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use longhaul_jobs::{
    admin::{RunningJob, WorkerLane, WorkerPresence, LIVE_WITHIN},
    store::AttemptRef,
    DynStore, Job, Lane,
};
use tokio_util::sync::CancellationToken;

use super::WorkerConfig;

/// How often a worker reports itself, by default. The dashboard counts an
/// instance as live while it was seen within three of these.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

type Running = Mutex<HashMap<AttemptRef, RunningJob>>;

/// The jobs this process runs now, across its lanes; and what the last
/// report saw of every live worker: each lane's slots across them all.
#[derive(Default)]
pub(crate) struct Presence {
    running: Running,
    lane_slots: Mutex<HashMap<Lane, usize>>,
}

/// Holds a job's place in the presence report while its attempt runs.
pub(crate) struct Attending<'a> {
    running: &'a Running,
    attempt: AttemptRef,
}

fn lock(running: &Running) -> std::sync::MutexGuard<'_, HashMap<AttemptRef, RunningJob>> {
    // Inserts and removes are single calls: a poisoned map is still whole.
    running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Presence {
    /// Lists the job as running until the returned guard drops.
    pub(crate) fn attend(&self, job: &Job) -> Attending<'_> {
        let attempt = AttemptRef::of(job);
        let entry = RunningJob {
            id: job.id,
            kind: job.kind,
            lane: job.lane,
            tenant_id: job.tenant_id.clone(),
            attempt: job.attempts,
            started_at: Utc::now(),
        };
        lock(&self.running).insert(attempt, entry);
        Attending { running: &self.running, attempt }
    }

    /// The lane's running slots across every live worker process, as the
    /// last report saw them; `own` (this process's) until then, and never
    /// less.
    pub(crate) fn lane_slots(&self, lane: Lane, own: usize) -> usize {
        let slots = self.lane_slots.lock().map(|slots| slots.get(&lane).copied()).unwrap_or(None);
        slots.unwrap_or(0).max(own)
    }

    fn snapshot(&self) -> Vec<RunningJob> {
        let mut running: Vec<RunningJob> = lock(&self.running).values().cloned().collect();
        running.sort_by_key(|job| (job.started_at, job.id));
        running
    }
}

impl Drop for Attending<'_> {
    fn drop(&mut self) {
        lock(self.running).remove(&self.attempt);
    }
}

/// Reports this process every `presence_interval` until `stop` trips, then
/// removes its row. A failed report is logged and tried again next time.
pub(crate) async fn report_loop(
    store: DynStore,
    config: Arc<WorkerConfig>,
    presence: Arc<Presence>,
    stop: CancellationToken,
) {
    let started_at: DateTime<Utc> = Utc::now();
    let host = config.worker_id.rsplit_once('-').map_or(config.worker_id.as_str(), |(host, _)| host).to_owned();
    let lanes: Vec<WorkerLane> =
        config.lanes.iter().map(|&(lane, concurrency)| WorkerLane { lane, concurrency }).collect();
    loop {
        let report = WorkerPresence {
            id: config.worker_id.clone(),
            host: host.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            lanes: lanes.clone(),
            running: presence.snapshot(),
            started_at,
            seen_at: Utc::now(),
        };
        if let Err(err) = store.report_worker(&report).await {
            tracing::warn!(error = %err, "cannot report this worker's presence");
        }
        // Every live worker's slots per lane: a tenant's share of a lane is
        // a share of all of them, however many pods the autoscaler runs.
        match store.workers(LIVE_WITHIN).await {
            Ok(workers) => {
                let mut slots: HashMap<Lane, usize> = HashMap::new();
                for worker in &workers {
                    for lane in &worker.lanes {
                        *slots.entry(lane.lane).or_default() += lane.concurrency;
                    }
                }
                if let Ok(mut lane_slots) = presence.lane_slots.lock() {
                    *lane_slots = slots;
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot read the live workers' slots"),
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(config.presence_interval) => {}
        }
    }
    if let Err(err) = store.remove_worker(&config.worker_id).await {
        tracing::warn!(error = %err, "cannot remove this worker's presence");
    }
}
