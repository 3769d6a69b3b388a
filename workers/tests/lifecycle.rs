//! The job lifecycle through the real runtime, on SQLite and PostgreSQL.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_trait::async_trait;
use longhaul_jobs::{
    kind::NoopPayload,
    queue::{ClaimRequest, Delivery, EmbeddedQueue, Queue, QueueError, RedriveReport, Ticket},
    store::{AttemptRef, Completion, InsertOutcome, LeaseState},
    testing::{Backend, TestStore},
    Job, JobKind, Lane, NewJob, Scope, Status,
};
use longhaul_workers::{
    runtime::RetryPolicy, DynHandler, Handler, JobContext, JobError, JobResult, Registry, Runtime, WorkerConfig,
};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

longhaul_jobs::on_every_backend!(
    a_job_succeeds,
    a_failing_job_is_retried_with_backoff_then_succeeds,
    a_job_goes_dead_after_max_attempts,
    a_permanent_error_goes_dead_at_once,
    cancel_while_queued_never_runs,
    cancel_while_running_stops_the_handler,
    cancel_reaches_a_running_job_before_the_next_heartbeat,
    a_timeout_cancels_the_attempt_and_retries,
    a_worker_that_lost_its_lease_cannot_commit,
    a_worker_cut_off_from_the_database_stops_before_its_lease_runs_out,
    a_panicking_handler_fails_only_its_job,
    unimplemented_kinds_end_dead_with_a_clear_reason,
    a_worker_takes_no_more_jobs_than_its_free_slots,
    a_worker_reports_its_lanes_and_running_jobs_and_leaves_when_stopped,
);

fn test_config() -> WorkerConfig {
    WorkerConfig {
        lanes: vec![(Lane::Default, 4)],
        lease: Duration::from_secs(2),
        heartbeat: Duration::from_millis(300),
        poll_interval: Duration::from_millis(50),
        retry: RetryPolicy { base: Duration::from_millis(200), max: Duration::from_secs(2) },
        reap_interval: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(2),
        ..WorkerConfig::default()
    }
}

async fn store(backend: Backend) -> TestStore {
    TestStore::new(backend).await.expect("a fresh test database (is PostgreSQL running?)")
}

async fn submit(store: &TestStore, kind: JobKind, payload: Value, max_attempts: i32) -> Job {
    let mut job = NewJob::new("acme", "alice", kind, payload);
    job.max_attempts = max_attempts;
    match store.insert_job(job).await.expect("insert") {
        InsertOutcome::Created(job) => job,
        other => panic!("expected a new job, got {other:?}"),
    }
}

/// Polls until the job reaches a final status (or `want` when given).
async fn wait_for(store: &TestStore, id: uuid::Uuid, want: Option<Status>) -> Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = store.get_job(&Scope::Platform, id).await.expect("get").expect("job exists");
        let done = match want {
            Some(status) => job.status == status,
            None => job.status.is_final(),
        };
        if done {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "job never reached {want:?}: {job:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn a_job_succeeds(backend: Backend) {
    let store = store(backend).await;
    let runtime = Runtime::start(store.store.clone(), Registry::with_defaults(), test_config());
    let job = submit(&store, JobKind::NOOP, json!({"sleep_ms": 10}), 3).await;
    let job = wait_for(&store, job.id, None).await;
    assert_eq!((job.status, job.attempts, job.progress), (Status::Succeeded, 1, 100));
    assert!(job.started_at.is_some() && job.finished_at.is_some());
    runtime.shutdown().await;
}

async fn a_failing_job_is_retried_with_backoff_then_succeeds(backend: Backend) {
    let store = store(backend).await;
    let runtime = Runtime::start(store.store.clone(), Registry::with_defaults(), test_config());
    let job = submit(&store, JobKind::NOOP, json!({"fail_times": 2}), 5).await;
    let job = wait_for(&store, job.id, None).await;
    assert_eq!((job.status, job.attempts), (Status::Succeeded, 3));
    let history = job.errors.as_array().expect("errors is an array");
    assert_eq!(history.len(), 2, "one entry per failed attempt: {history:?}");
    runtime.shutdown().await;
}

async fn a_job_goes_dead_after_max_attempts(backend: Backend) {
    let store = store(backend).await;
    let runtime = Runtime::start(store.store.clone(), Registry::with_defaults(), test_config());
    let job = submit(&store, JobKind::NOOP, json!({"fail_times": 10}), 3).await;
    let job = wait_for(&store, job.id, None).await;
    assert_eq!((job.status, job.attempts), (Status::Dead, 3));
    assert!(job.error.as_deref().unwrap_or_default().contains("gave up after 3 attempts"), "{:?}", job.error);
    runtime.shutdown().await;
}

async fn a_permanent_error_goes_dead_at_once(backend: Backend) {
    let store = store(backend).await;
    let runtime = Runtime::start(store.store.clone(), Registry::with_defaults(), test_config());
    let job = submit(&store, JobKind::NOOP, json!({"fail_permanently": true}), 5).await;
    let job = wait_for(&store, job.id, None).await;
    assert_eq!((job.status, job.attempts), (Status::Dead, 1));
    runtime.shutdown().await;
}

async fn cancel_while_queued_never_runs(backend: Backend) {
    let store = store(backend).await;
    store.set_lane_paused(Lane::Default, true).await.expect("pause");
    let runtime = Runtime::start(store.store.clone(), Registry::with_defaults(), test_config());
    let job = submit(&store, JobKind::NOOP, json!({}), 3).await;
    store.cancel_job(&Scope::Platform, job.id).await.expect("cancel");
    store.set_lane_paused(Lane::Default, false).await.expect("resume");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = wait_for(&store, job.id, None).await;
    assert_eq!((job.status, job.attempts), (Status::Cancelled, 0));
    runtime.shutdown().await;
}

async fn cancel_while_running_stops_the_handler(backend: Backend) {
    let store = store(backend).await;
    let runtime = Runtime::start(store.store.clone(), Registry::with_defaults(), test_config());
    let job = submit(&store, JobKind::NOOP, json!({"sleep_ms": 60_000}), 3).await;
    wait_for(&store, job.id, Some(Status::Running)).await;
    let asked = tokio::time::Instant::now();
    store.cancel_job(&Scope::Platform, job.id).await.expect("cancel");
    let job = wait_for(&store, job.id, None).await;
    assert_eq!(job.status, Status::Cancelled);
    assert!(asked.elapsed() < Duration::from_secs(3), "took {:?}", asked.elapsed());
    runtime.shutdown().await;
}

async fn cancel_reaches_a_running_job_before_the_next_heartbeat(backend: Backend) {
    let store = store(backend).await;
    let config = WorkerConfig { lease: Duration::from_secs(60), heartbeat: Duration::from_secs(20), ..test_config() };
    let runtime = Runtime::start(store.store.clone(), Registry::with_defaults(), config);
    let job = submit(&store, JobKind::NOOP, json!({"sleep_ms": 60_000}), 3).await;
    wait_for(&store, job.id, Some(Status::Running)).await;
    // Let the first heartbeat tick (which fires at once) pass.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = tokio::time::Instant::now();
    store.cancel_job(&Scope::Platform, job.id).await.expect("cancel");
    let job = wait_for(&store, job.id, None).await;
    assert_eq!(job.status, Status::Cancelled);
    assert!(asked.elapsed() < Duration::from_secs(2), "took {:?} with a 20 s heartbeat", asked.elapsed());
    runtime.shutdown().await;
}

/// Sleeps without looking at its token: only the runtime can stop it.
struct Stubborn {
    runs: Arc<AtomicUsize>,
}

#[async_trait]
impl Handler for Stubborn {
    type Kind = longhaul_jobs::kind::Noop;
    async fn run(&self, _ctx: &JobContext, _payload: NoopPayload) -> JobResult {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(Some(json!("finished")))
    }
}

async fn a_timeout_cancels_the_attempt_and_retries(backend: Backend) {
    let store = store(backend).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::default();
    registry.register(Stubborn { runs: runs.clone() });
    let mut config = test_config();
    config.timeouts.insert(JobKind::NOOP, Duration::from_millis(300));
    let runtime = Runtime::start(store.store.clone(), registry, config);
    let job = submit(&store, JobKind::NOOP, json!({}), 2).await;
    let job = wait_for(&store, job.id, None).await;
    assert_eq!((job.status, job.attempts), (Status::Dead, 2));
    assert!(job.error.as_deref().unwrap_or_default().contains("timed out"), "{:?}", job.error);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    runtime.shutdown().await;
}

/// Blocks its thread so the heartbeat of this process cannot keep the lease.
struct LeaseLoser;

#[async_trait]
impl Handler for LeaseLoser {
    type Kind = longhaul_jobs::kind::Noop;
    async fn run(&self, ctx: &JobContext, _payload: NoopPayload) -> JobResult {
        if ctx.job.attempts == 1 {
            // Outlive the lease while another "worker" (the reaper plus a
            // second claim below) takes over.
            tokio::time::sleep(Duration::from_secs(4)).await;
            return Ok(Some(json!("stale")));
        }
        Ok(Some(json!("fresh")))
    }
}

async fn a_worker_that_lost_its_lease_cannot_commit(backend: Backend) {
    let store = store(backend).await;
    let mut registry = Registry::default();
    registry.register(LeaseLoser);
    // A heartbeat slower than the lease: the lease is lost mid-run.
    let config = WorkerConfig {
        lease: Duration::from_millis(500),
        heartbeat: Duration::from_secs(30),
        cancel_grace: Duration::from_secs(10),
        ..test_config()
    };
    let runtime = Runtime::start(store.store.clone(), registry, config);
    let job = submit(&store, JobKind::NOOP, json!({}), 5).await;
    let job = wait_for(&store, job.id, None).await;
    assert_eq!(job.status, Status::Succeeded);
    assert_eq!(job.result, Some(json!("fresh")), "only the attempt that holds the lease commits");
    assert!(job.attempts >= 2);
    runtime.shutdown().await;
}

/// The real embedded queue, whose heartbeats can be cut off from the
/// database (as a worker on the wrong side of a network partition is):
/// while `cut` is set, every heartbeat fails.
struct CutOff {
    inner: EmbeddedQueue,
    cut: AtomicBool,
}

#[async_trait]
impl Queue for CutOff {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn max_receive(&self) -> usize {
        self.inner.max_receive()
    }
    async fn receive(&self, request: &ClaimRequest<'_>, stop: &CancellationToken) -> Result<Vec<Delivery>, QueueError> {
        self.inner.receive(request, stop).await
    }
    async fn idle(&self, lane: Lane, poll: Duration) {
        self.inner.idle(lane, poll).await
    }
    async fn heartbeat(&self, tickets: &[Ticket], lease: Duration) -> Result<Vec<LeaseState>, QueueError> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(QueueError::Backend("connection refused (cut off by the test)".into()));
        }
        self.inner.heartbeat(tickets, lease).await
    }
    async fn complete(&self, completions: &[Completion]) -> Result<Vec<AttemptRef>, QueueError> {
        self.inner.complete(completions).await
    }
    async fn acknowledge(&self, tickets: &[Ticket]) -> Result<(), QueueError> {
        self.inner.acknowledge(tickets).await
    }
    async fn release(&self, tickets: &[Ticket]) -> Result<u64, QueueError> {
        self.inner.release(tickets).await
    }
    async fn redrive(&self, scope: &Scope, lane: Lane) -> Result<RedriveReport, QueueError> {
        self.inner.redrive(scope, lane).await
    }
    async fn ping(&self) -> Result<(), QueueError> {
        self.inner.ping().await
    }
}

/// Calls out (as an IMAP poll or an agency check does) until cancelled,
/// noting when each run began and ended.
struct CallsOut {
    runs: Arc<Mutex<Vec<Run>>>,
}

/// One run of a job: its attempt, when it began and when it ended.
type Run = (i32, Instant, Option<Instant>);

#[async_trait]
impl Handler for CallsOut {
    type Kind = longhaul_jobs::kind::Noop;
    async fn run(&self, ctx: &JobContext, _payload: NoopPayload) -> JobResult {
        let index = {
            let mut runs = self.runs.lock().expect("runs");
            runs.push((ctx.job.attempts, Instant::now(), None));
            runs.len() - 1
        };
        if ctx.job.attempts == 1 {
            // Ignores nothing: stops as soon as its token trips.
            ctx.cancel.cancelled().await;
        }
        self.runs.lock().expect("runs")[index].2 = Some(Instant::now());
        Ok(Some(json!({ "attempt": ctx.job.attempts })))
    }
}

/// A worker whose heartbeats cannot reach the database stops its attempt
/// before the lease runs out, rather than running on while another worker
/// takes the job: the two runs never overlap, and only the second commits.
async fn a_worker_cut_off_from_the_database_stops_before_its_lease_runs_out(backend: Backend) {
    let store = store(backend).await;
    let runs = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::default();
    registry.register(CallsOut { runs: runs.clone() });
    let queue = Arc::new(CutOff { inner: EmbeddedQueue::new(store.store.clone()), cut: AtomicBool::new(false) });
    let services = longhaul_workers::runtime::Services::embedded(store.store.clone()).with_queue(queue.clone());
    let config = WorkerConfig { cancel_grace: Duration::from_secs(30), ..test_config() };
    let lease = config.lease;
    let runtime = Runtime::start_with(services, registry, config);
    let job = submit(&store, JobKind::NOOP, json!({}), 5).await;
    wait_for(&store, job.id, Some(Status::Running)).await;
    queue.cut.store(true, Ordering::SeqCst);
    let cut_at = Instant::now();
    let job = wait_for(&store, job.id, None).await;
    queue.cut.store(false, Ordering::SeqCst);
    runtime.shutdown().await;

    assert_eq!((job.status, job.result), (Status::Succeeded, Some(json!({"attempt": 2}))));
    let runs = runs.lock().expect("runs").clone();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (first, second) = (runs[0], runs[1]);
    let stopped = first.2.expect("the cut-off run stopped");
    assert!(stopped < second.1, "the runs overlapped: {runs:?}");
    assert!(stopped - cut_at < lease, "stopped {:?} after the cut, with a lease of {lease:?}", stopped - cut_at);
}

struct Panics;

#[async_trait]
impl DynHandler for Panics {
    fn kind(&self) -> JobKind {
        JobKind::NOOP
    }
    async fn run_job(&self, ctx: &JobContext) -> JobResult {
        if ctx.job.payload["panic"].as_bool() == Some(true) {
            panic!("a bug in a handler");
        }
        Ok(None)
    }
}

async fn a_panicking_handler_fails_only_its_job(backend: Backend) {
    let store = store(backend).await;
    let mut registry = Registry::default();
    registry.register(Panics);
    let runtime = Runtime::start(store.store.clone(), registry, test_config());
    let bad = submit(&store, JobKind::NOOP, json!({"panic": true}), 1).await;
    let good = submit(&store, JobKind::NOOP, json!({}), 1).await;
    let bad = wait_for(&store, bad.id, None).await;
    assert_eq!(bad.status, Status::Dead);
    assert!(bad.error.as_deref().unwrap_or_default().contains("panicked"), "{:?}", bad.error);
    assert_eq!(wait_for(&store, good.id, None).await.status, Status::Succeeded);
    runtime.shutdown().await;
}

async fn unimplemented_kinds_end_dead_with_a_clear_reason(backend: Backend) {
    let store = store(backend).await;
    let config = WorkerConfig { lanes: vec![(Lane::Refresh, 1)], ..test_config() };
    // A kind left out of a build (video_compile without the `video`
    // feature) is registered as `NotImplemented`.
    let mut registry = Registry::with_defaults();
    registry.register(longhaul_workers::kinds::NotImplemented(JobKind::RESERVATION_REFRESH));
    let runtime = Runtime::start(store.store.clone(), registry, config);
    let job = submit(&store, JobKind::RESERVATION_REFRESH, json!({}), 3).await;
    let job = wait_for(&store, job.id, None).await;
    assert_eq!((job.status, job.attempts), (Status::Dead, 1));
    assert!(job.error.as_deref().unwrap_or_default().contains("not implemented yet"), "{:?}", job.error);
    runtime.shutdown().await;
}

/// Counts how many attempts run at once.
struct Gauge {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

#[async_trait]
impl Handler for Gauge {
    type Kind = longhaul_jobs::kind::Noop;
    async fn run(&self, _ctx: &JobContext, _payload: NoopPayload) -> JobResult {
        let running = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(running, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(None)
    }
}

async fn a_worker_takes_no_more_jobs_than_its_free_slots(backend: Backend) {
    let store = store(backend).await;
    let jobs: Vec<_> = (0..60).map(|_| NewJob::new("acme", "alice", JobKind::NOOP, json!({}))).collect();
    store.insert_jobs(&jobs).await.expect("insert");
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut registry = Registry::default();
    registry.register(Gauge { now, peak: peak.clone() });
    let config = WorkerConfig { lanes: vec![(Lane::Default, 3)], ..test_config() };
    let runtime = Runtime::start(store.store.clone(), registry, config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = store.lane_stats(&longhaul_jobs::Scope::Platform).await.expect("stats");
        let lane = stats.iter().find(|s| s.lane == Lane::Default).expect("default lane");
        assert!(lane.in_flight <= 3, "{} running with 3 slots", lane.in_flight);
        if lane.depth == 0 && lane.in_flight == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the lane never drained");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    runtime.shutdown().await;
}

async fn a_worker_reports_its_lanes_and_running_jobs_and_leaves_when_stopped(backend: Backend) {
    let store = store(backend).await;
    let job = submit(&store, JobKind::NOOP, json!({"sleep_ms": 4_000}), 1).await;
    let mut registry = Registry::default();
    registry.register(longhaul_workers::kinds::Noop);
    let config = WorkerConfig {
        worker_id: "pod-7-42".into(),
        lanes: vec![(Lane::Default, 2)],
        presence_interval: Duration::from_millis(200),
        ..test_config()
    };
    let runtime = Runtime::start(store.store.clone(), registry, config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let workers = store.workers(Duration::from_secs(15)).await.expect("workers");
        if let Some(worker) = workers.into_iter().find(|worker| !worker.running.is_empty()) {
            break worker;
        }
        assert!(tokio::time::Instant::now() < deadline, "the worker never reported its running job");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(seen.id, "pod-7-42");
    assert_eq!(seen.host, "pod-7");
    assert_eq!(seen.lanes, [longhaul_jobs::admin::WorkerLane { lane: Lane::Default, concurrency: 2 }]);
    assert_eq!(seen.running.len(), 1);
    assert_eq!((seen.running[0].id, seen.running[0].kind, seen.running[0].attempt), (job.id, JobKind::NOOP, 1));
    assert_eq!(seen.running[0].tenant_id, "acme");
    runtime.shutdown().await;
    assert_eq!(store.workers(Duration::from_secs(15)).await.expect("workers"), [], "a stopped worker leaves");
}

#[test]
fn job_error_constructors_keep_the_message() {
    assert_eq!(JobError::retryable("later").to_string(), "later");
    assert_eq!(JobError::permanent("never").to_string(), "never");
}
