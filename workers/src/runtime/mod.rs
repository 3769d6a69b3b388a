//! The worker runtime: lane pools, leases and heartbeats, retries, graceful
//! shutdown, and the scheduler.
//!
//! [`Runtime::start`] spawns one pool per lane plus the scheduler;
//! [`Runtime::shutdown`] stops receiving, lets in-flight jobs finish within the
//! grace period, releases the rest, and returns when everything has stopped.

mod pool;
mod presence;
mod retry;
mod scheduler;

use std::{collections::HashMap, sync::Arc, time::Duration};

use longhaul_jobs::{
    notify::{push::DynPushService, DynNotifier, LogNotifier, Publisher},
    objects::DynObjectStore,
    queue::{DynQueue, EmbeddedQueue},
    DynStore, JobKind, Lane,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use crate::context::{CancelReason, Cancellation, JobContext};
pub use presence::REPORT_INTERVAL;
pub use retry::RetryPolicy;

use crate::{
    courier::{push::Pusher, Courier},
    handler::Registry,
};

/// How a worker process runs. Every field has a production default; the CLI
/// fills them from flags and `LONGHAUL_*` variables.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this process in leases and logs (`locked_by`).
    pub worker_id: String,
    /// The lanes this process serves, with each one's concurrency.
    pub lanes: Vec<(Lane, usize)>,
    /// How long a claimed job is ours without a heartbeat.
    pub lease: Duration,
    /// How often running leases are extended. A third of the lease survives
    /// two missed beats.
    pub heartbeat: Duration,
    /// How often an idle lane looks for work when no wake-up arrives.
    pub poll_interval: Duration,
    /// Most jobs one claim takes (it never takes more than the free slots).
    pub claim_batch: usize,
    /// Claims in flight at once per lane. One is plenty for slow jobs; two
    /// overlap round trips on a lane of many short ones.
    pub claimers: usize,
    /// In-flight jobs get this long to finish at shutdown.
    pub shutdown_grace: Duration,
    /// A cancelled handler that ignores its token is dropped after this.
    pub cancel_grace: Duration,
    pub retry: RetryPolicy,
    /// How often the scheduler leader reaps expired leases.
    pub reap_interval: Duration,
    /// Finished jobs older than this are pruned (dead jobs are kept).
    pub retention: Duration,
    /// Whether this process takes part in scheduler leadership.
    pub scheduler: bool,
    /// Whether this process drains the event outbox. Any number may.
    pub publisher: bool,
    /// Whether this process runs the queue's background work: on SQS, the
    /// dispatcher that sends the dispatch outbox. Any number may.
    pub dispatcher: bool,
    /// Per-kind timeouts that replace the kind's default.
    pub timeouts: HashMap<JobKind, Duration>,
    /// How often the scheduler polls each connected inbox.
    pub mail_poll: longhaul_jobs::travel::mail::PollSchedule,
    /// The reservation sweep the scheduler plans; None (the default here;
    /// the binary's default is every 5 minutes): no sweeps.
    pub sweep: Option<SweepConfig>,
    /// How often this process records its presence (lanes, running jobs)
    /// for the dashboard's workers page.
    pub presence_interval: Duration,
    /// The largest share of a lane's running slots (across every live
    /// worker) that one tenant's jobs may hold at once, from 0 to 1; at
    /// least one slot. None (the default here; the binary's default is
    /// 0.5): no cap. The platform's own work (reserved tenants, such as
    /// sweep shards) is never capped.
    pub tenant_share: Option<f64>,
}

/// How the scheduler's leader sweeps the active reservations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepConfig {
    /// A sweep starts at every multiple of this since the epoch.
    pub interval: Duration,
    /// Active reservations per shard (one `reservation_refresh` job each),
    /// about.
    pub shard_size: u32,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig { interval: Duration::from_secs(5 * 60), shard_size: 10_000 }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        let lease = Duration::from_secs(30);
        WorkerConfig {
            worker_id: default_worker_id(),
            lanes: Lane::ALL.into_iter().map(|lane| (lane, lane.default_concurrency())).collect(),
            lease,
            heartbeat: lease / 3,
            poll_interval: Duration::from_secs(1),
            claim_batch: 1_000,
            claimers: 1,
            shutdown_grace: Duration::from_secs(25),
            cancel_grace: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            reap_interval: Duration::from_secs(5),
            retention: Duration::from_secs(14 * 24 * 60 * 60),
            scheduler: true,
            publisher: true,
            dispatcher: true,
            timeouts: HashMap::new(),
            mail_poll: longhaul_jobs::travel::mail::PollSchedule::default(),
            sweep: None,
            presence_interval: presence::REPORT_INTERVAL,
            tenant_share: None,
        }
    }
}

impl WorkerConfig {
    pub fn timeout_for(&self, kind: JobKind) -> Duration {
        self.timeouts.get(&kind).copied().unwrap_or_else(|| kind.timeout())
    }

    /// The most running jobs one tenant may have in a lane of `lane_slots`
    /// slots: its share, rounded up, and at least one.
    pub fn tenant_cap(&self, lane_slots: usize) -> Option<u32> {
        self.tenant_share.map(|share| {
            let cap = (share.clamp(0.0, 1.0) * lane_slots as f64).ceil();
            u32::try_from(cap as u64).unwrap_or(u32::MAX).max(1)
        })
    }
}

/// `hostname-pid`: unique per process, and readable in the dashboard.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The ports a runtime works through.
pub struct Services {
    pub store: DynStore,
    pub queue: DynQueue,
    pub notifier: DynNotifier,
    pub objects: Option<DynObjectStore>,
    /// Pushes to travelers' phones (SNS mobile push); none keeps their
    /// notifications in the in-app inbox only.
    pub push: Option<DynPushService>,
}

impl Services {
    /// The embedded defaults over `store`: the queue in the store itself,
    /// events to the log, and no object store.
    pub fn embedded(store: DynStore) -> Services {
        let queue: DynQueue = Arc::new(EmbeddedQueue::new(store.clone()));
        Services { store, queue, notifier: Arc::new(LogNotifier), objects: None, push: None }
    }

    pub fn with_queue(self, queue: DynQueue) -> Services {
        Services { queue, ..self }
    }

    pub fn with_notifier(self, notifier: DynNotifier) -> Services {
        Services { notifier, ..self }
    }

    pub fn with_objects(self, objects: DynObjectStore) -> Services {
        Services { objects: Some(objects), ..self }
    }

    pub fn with_push(self, push: DynPushService) -> Services {
        Services { push: Some(push), ..self }
    }
}

/// Running lane pools and the scheduler.
pub struct Runtime {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Runtime {
    /// Starts the pools and the scheduler, with events going to the log.
    pub fn start(store: DynStore, registry: Registry, config: WorkerConfig) -> Runtime {
        Runtime::start_with_notifier(store, Arc::new(LogNotifier), registry, config)
    }

    /// Starts the pools and the scheduler on the embedded queue, with events
    /// going to `notifier`.
    pub fn start_with_notifier(
        store: DynStore,
        notifier: DynNotifier,
        registry: Registry,
        config: WorkerConfig,
    ) -> Runtime {
        Runtime::start_with(Services::embedded(store).with_notifier(notifier), registry, config)
    }

    /// Starts the pools on the services' queue, the queue's background work
    /// (the SQS dispatcher), the event publisher and the scheduler.
    pub fn start_with(services: Services, registry: Registry, config: WorkerConfig) -> Runtime {
        let Services { store, queue, notifier, objects, push } = services;
        let config = Arc::new(config);
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let presence = Arc::new(presence::Presence::default());
        let lanes = Arc::new(pool::Lanes {
            store: store.clone(),
            objects,
            queue: queue.clone(),
            registry,
            config: config.clone(),
            presence: presence.clone(),
        });
        if !config.lanes.is_empty() {
            tasks.spawn(presence::report_loop(store.clone(), config.clone(), presence, stop.clone()));
        }
        for (lane, concurrency) in config.lanes.iter().copied() {
            tasks.spawn(pool::run_lane(lanes.clone(), lane, concurrency.max(1), stop.clone()));
        }
        if config.dispatcher {
            let stop = stop.clone();
            tasks.spawn(async move { queue.run_background(stop).await });
        }
        if config.publisher {
            // Travelers' notifications are made from the events on their
            // way out (see `courier`).
            let notifier = Courier::wrap(store.clone(), notifier, push.is_some());
            let publisher =
                Publisher { store: store.clone(), notifier, lease: config.lease, idle: config.poll_interval };
            tasks.spawn(publisher.run(stop.clone()));
            if let Some(service) = push {
                let pusher = Pusher { store: store.clone(), service, lease: config.lease, idle: config.poll_interval };
                tasks.spawn(pusher.run(stop.clone()));
            }
        }
        if config.scheduler {
            tasks.spawn(scheduler::run(store, config.clone(), stop.clone()));
        }
        Runtime { stop, tasks }
    }

    /// Stops receiving, lets in-flight jobs finish within the grace period,
    /// releases the rest for immediate redelivery, and waits for it all.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(err) = joined {
                tracing::error!(error = %err, "a worker task ended abnormally");
            }
        }
    }
}
