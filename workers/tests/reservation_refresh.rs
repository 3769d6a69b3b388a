//! `reservation_refresh` through the real runtime, against the agency
//! simulator on loopback: a change is detected once and announced once, a
//! 304 writes nothing, a provider that is down opens its circuit while the
//! others carry on (its shard is retried later), a 429 is waited out, and
//! sweep planners racing or failing over never run a sweep twice.

use std::time::{Duration, Instant};

use chrono::Utc;
use longhaul_agency_sim::{reservation_number, Sim, SimConfig};
use longhaul_jobs::{
    store::JobFilter,
    testing::{Backend, TestStore},
    travel::{refresh::SYSTEM_TENANT, ReservationFields, ReservationSource, ReservationStatus, ReservationType},
    Job, JobKind, Lane, NewJob, Scope, Status,
};
use longhaul_workers::{
    agency::{build, config::from_json},
    kinds::{RefreshSettings, ReservationRefresh},
    runtime::{RetryPolicy, Services, SweepConfig},
    Registry, Runtime, WorkerConfig,
};
use serde_json::{json, Value};
use uuid::Uuid;

longhaul_jobs::on_every_backend!(
    a_change_is_detected_once_and_announced_once,
    a_304_writes_nothing,
    a_provider_down_opens_its_circuit_while_the_others_carry_on,
    a_429_is_waited_out,
);

async fn simulator(providers: &[&str], per_provider: u64) -> Sim {
    let config = SimConfig {
        providers: providers.iter().map(|p| p.to_string()).collect(),
        reservations_per_provider: per_provider,
        latency: Duration::from_millis(1),
        ..SimConfig::steady(longhaul_agency_sim::start_of_today())
    };
    longhaul_agency_sim::start_local(config).await.expect("the simulator starts")
}

/// The agencies config: every provider on the simulator, with a breaker
/// that opens after two failed requests for a second, no retries, and
/// one-item batches (so a page makes many requests).
fn agencies(sim: &Sim, providers: &[&str], extra: Value) -> longhaul_workers::agency::Agencies {
    let providers: Vec<Value> = providers
        .iter()
        .map(|name| {
            let mut provider = json!({
                "name": name,
                "aliases": [format!("{name} Airlines")],
                "base_url": sim.base_url(name),
                "batch_path": "/reservations/batch",
                "max_batch": 1,
                "rate_per_sec": 1000.0,
                "concurrency": 4,
                "timeout_ms": 2000,
                "max_retries": 0,
                "breaker": {"failure_threshold": 2, "open_secs": 1},
            });
            if let (Some(provider), Some(extra)) = (provider.as_object_mut(), extra.as_object()) {
                provider.extend(extra.clone());
            }
            provider
        })
        .collect();
    build(&from_json(&json!({ "providers": providers }).to_string()).expect("config")).expect("agencies")
}

struct Setup {
    store: TestStore,
    runtime: Runtime,
}

async fn setup(backend: Backend, sim: &Sim, providers: &[&str], extra: Value) -> Setup {
    let store = TestStore::new(backend).await.expect("a fresh test database (is PostgreSQL running?)");
    let runtime = start(&store, agencies(sim, providers, extra), None, "worker-a");
    Setup { store, runtime }
}

fn start(
    store: &TestStore,
    agencies: longhaul_workers::agency::Agencies,
    sweep: Option<SweepConfig>,
    worker_id: &str,
) -> Runtime {
    let services = Services::embedded(store.store.clone());
    let config = WorkerConfig {
        worker_id: worker_id.into(),
        lanes: vec![(Lane::Refresh, 2)],
        poll_interval: Duration::from_millis(20),
        reap_interval: Duration::from_millis(100),
        retry: RetryPolicy { base: Duration::from_millis(1500), max: Duration::from_millis(1500) },
        // The tests read the outbox themselves.
        publisher: false,
        scheduler: sweep.is_some(),
        sweep,
        ..WorkerConfig::default()
    };
    let mut registry = Registry::default();
    registry.register(ReservationRefresh::new(RefreshSettings { agencies, ..RefreshSettings::default() }));
    Runtime::start_with(services, registry, config)
}

/// Seeds reservations `0..count` of `provider` as the simulator first
/// describes them, for `acme`'s user `ana`, as if found in email.
async fn seed(store: &TestStore, sim: &Sim, provider: &str, count: u64) -> Vec<Uuid> {
    let fields: Vec<ReservationFields> = (0..count)
        .map(|i| {
            let r = sim.current(provider, i).expect("a simulated reservation");
            ReservationFields {
                kind: ReservationType::Flight,
                reservation_number: reservation_number(provider, i),
                provider: format!("{provider} Airlines"),
                status: ReservationStatus::Confirmed,
                starts_at: r.starts_at,
                ends_at: r.ends_at,
                details: json!({"flight": format!("{provider}{i}")}),
                city: None,
                country: None,
                origin: None,
                destination: None,
                start_zone: None,
                end_zone: None,
            }
        })
        .collect();
    store.insert_reservations("acme", "ana", ReservationSource::Email, &fields).await.expect("insert")
}

/// Submits a refresh of every active reservation of `acme` and waits for
/// it to end.
async fn refresh(store: &TestStore) -> Job {
    let job = NewJob::new("acme", "admin", JobKind::RESERVATION_REFRESH, json!({}));
    let id = job.id;
    store.insert_jobs(&[job]).await.expect("submit");
    wait_for(store, id, Duration::from_secs(30)).await
}

async fn wait_for(store: &TestStore, id: Uuid, limit: Duration) -> Job {
    let deadline = Instant::now() + limit;
    loop {
        let job = store.get_job(&Scope::Platform, id).await.expect("get").expect("the job");
        if matches!(job.status, Status::Succeeded | Status::Dead | Status::Cancelled) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still {:?} after {limit:?}: {:?}", job.status, job.error);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn changed_events(store: &TestStore) -> Vec<Value> {
    let events = store.claim_outbox(1000, Duration::from_secs(60)).await.expect("outbox");
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    store.delete_outbox(&ids).await.expect("delete");
    events.into_iter().filter(|e| e.event_type == "reservation.changed").map(|e| e.payload).collect()
}

fn result(job: &Job, field: &str) -> u64 {
    job.result
        .as_ref()
        .and_then(|r| r.get(field))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no `{field}` in the result of job {}: {:?} ({:?})", job.id, job.result, job.error))
}

async fn a_change_is_detected_once_and_announced_once(backend: Backend) {
    let sim = simulator(&["skyways"], 10).await;
    let setup = setup(backend, &sim, &["skyways"], json!({"max_batch": 100})).await;
    let ids = seed(&setup.store, &sim, "skyways", 10).await;

    // The first check records the agency's tags and data: nothing to announce.
    let first = refresh(&setup.store).await;
    assert_eq!(first.status, Status::Succeeded, "{:?}", first.error);
    assert_eq!((result(&first, "checked"), result(&first, "changed")), (10, 0));
    assert!(changed_events(&setup.store).await.is_empty());

    // The agency moves reservation 3.
    sim.change_now("skyways", 3).expect("a change");
    let second = refresh(&setup.store).await;
    assert_eq!((result(&second, "changed"), result(&second, "not_modified")), (1, 9), "{:?}", second.result);
    let events = changed_events(&setup.store).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reservation_id"], json!(ids[3]));
    assert_eq!(events[0]["version"], json!(2));
    let now = sim.current("skyways", 3).expect("current");
    let scope = Scope::Platform;
    let reservation = setup.store.get_reservation(&scope, ids[3]).await.unwrap().unwrap();
    assert_eq!(reservation.starts_at, now.starts_at);
    let history = setup.store.reservation_changes(&scope, ids[3]).await.unwrap().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].source, ReservationSource::Agency);
    let changed_at = history[0].changed_at.map(|at| at.timestamp_millis());
    assert_eq!(changed_at, Some(now.changed_at.timestamp_millis()), "the agency's own stamp");

    // Checked again: found once, announced once.
    let third = refresh(&setup.store).await;
    assert_eq!((result(&third, "changed"), result(&third, "not_modified")), (0, 10));
    assert!(changed_events(&setup.store).await.is_empty());
    assert_eq!(setup.store.reservation_changes(&scope, ids[3]).await.unwrap().unwrap().len(), 1);
    setup.runtime.shutdown().await;
}

async fn a_304_writes_nothing(backend: Backend) {
    let sim = simulator(&["skyways"], 5).await;
    let setup = setup(backend, &sim, &["skyways"], json!({"batch_path": null})).await;
    let ids = seed(&setup.store, &sim, "skyways", 5).await;
    assert_eq!(refresh(&setup.store).await.status, Status::Succeeded);
    let scope = Scope::Platform;
    let mut before = Vec::new();
    for id in &ids {
        before.push(setup.store.get_reservation(&scope, *id).await.unwrap().unwrap());
    }
    let served = sim.stats().total.not_modified;
    let again = refresh(&setup.store).await;
    assert_eq!(result(&again, "not_modified"), 5, "{:?}", again.result);
    assert_eq!(sim.stats().total.not_modified - served, 5, "five conditional GETs answered 304");
    for (id, before) in ids.iter().zip(before) {
        let after = setup.store.get_reservation(&scope, *id).await.unwrap().unwrap();
        assert_eq!(after, before, "a 304 changes nothing, not even updated_at");
        assert!(setup.store.reservation_changes(&scope, *id).await.unwrap().unwrap().is_empty());
    }
    assert!(changed_events(&setup.store).await.is_empty());
    setup.runtime.shutdown().await;
}

async fn a_provider_down_opens_its_circuit_while_the_others_carry_on(backend: Backend) {
    let sim = simulator(&["skyways", "railco"], 6).await;
    // One request at a time, so the count of requests that reach the
    // provider before its circuit opens is exact.
    let setup = setup(backend, &sim, &["skyways", "railco"], json!({"concurrency": 1})).await;
    let sky = seed(&setup.store, &sim, "skyways", 6).await;
    let rail = seed(&setup.store, &sim, "railco", 6).await;
    assert_eq!(refresh(&setup.store).await.status, Status::Succeeded);

    sim.change_now("skyways", 1).expect("change");
    sim.change_now("railco", 2).expect("change");
    sim.set_down("skyways", true);
    let requests_before = sim.stats().providers["skyways"].requests;
    let job = NewJob::new("acme", "admin", JobKind::RESERVATION_REFRESH, json!({}));
    let id = job.id;
    setup.store.insert_jobs(&[job]).await.expect("submit");

    // The first attempt: RailCo's change is written; SkyWays fails, and
    // after two failed requests its circuit stops the other four.
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let job = setup.store.get_job(&Scope::Platform, id).await.unwrap().unwrap();
        if job.status == Status::Queued && job.attempts == 1 {
            break job;
        }
        assert!(Instant::now() < deadline, "the first attempt did not fail: {job:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let error = first.error.clone().unwrap_or_default();
    assert!(error.contains("skyways") && error.contains("circuit"), "{error}");
    assert!(!error.contains("railco"), "{error}");
    assert_eq!(sim.stats().providers["skyways"].requests - requests_before, 2, "the open circuit sent nothing more");
    let scope = Scope::Platform;
    assert_eq!(setup.store.reservation_changes(&scope, rail[2]).await.unwrap().unwrap().len(), 1);
    assert!(setup.store.reservation_changes(&scope, sky[1]).await.unwrap().unwrap().is_empty());

    // SkyWays comes back; the retry (after the breaker's second) finds its change.
    sim.set_down("skyways", false);
    let done = wait_for(&setup.store, id, Duration::from_secs(30)).await;
    assert_eq!((done.status, done.attempts), (Status::Succeeded, 2), "{:?}", done.error);
    assert_eq!(setup.store.reservation_changes(&scope, sky[1]).await.unwrap().unwrap().len(), 1);
    assert_eq!(setup.store.reservation_changes(&scope, rail[2]).await.unwrap().unwrap().len(), 1, "not twice");
    let events = changed_events(&setup.store).await;
    assert_eq!(events.len(), 2, "{events:?}");
    setup.runtime.shutdown().await;
}

async fn a_429_is_waited_out(backend: Backend) {
    let sim = simulator(&["skyways"], 3).await;
    let setup = setup(backend, &sim, &["skyways"], json!({"max_retries": 3, "max_batch": 100})).await;
    seed(&setup.store, &sim, "skyways", 3).await;
    sim.set_throttle("skyways", Some(1));
    let sim_handle = sim.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sim_handle.set_throttle("skyways", None);
    });
    let started = Instant::now();
    let job = refresh(&setup.store).await;
    assert_eq!(job.status, Status::Succeeded, "{:?}", job.error);
    assert_eq!(result(&job, "checked"), 3);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured ({:?})", started.elapsed());
    assert!(sim.stats().providers["skyways"].injected_429 >= 1);
    setup.runtime.shutdown().await;
}

/// Two workers' schedulers, one leading at a time, plan a sweep every
/// second; the leader then stops and the other takes over. Every sweep is
/// started once, each of its shards enqueued once, and no shard runs
/// while its previous run is unfinished.
#[tokio::test]
async fn sweeps_run_once_across_planners_and_failover() {
    let sim = simulator(&["skyways"], 40).await;
    let store = TestStore::new(Backend::Postgres).await.expect("a fresh test database (is PostgreSQL running?)");
    seed(&store, &sim, "skyways", 40).await;
    let sweep = Some(SweepConfig { interval: Duration::from_secs(1), shard_size: 10 });
    let a = start(&store, agencies(&sim, &["skyways"], json!({"max_batch": 100})), sweep, "worker-a");
    let b = start(&store, agencies(&sim, &["skyways"], json!({"max_batch": 100})), sweep, "worker-b");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    a.shutdown().await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    b.shutdown().await;

    let sweeps = store.sweeps(100).await.expect("sweeps");
    assert!(sweeps.len() >= 4, "a sweep a second, through the failover: {}", sweeps.len());
    let filter = JobFilter { kind: Some(JobKind::RESERVATION_REFRESH), limit: 1000, ..JobFilter::default() };
    let jobs = store.list_jobs(&Scope::Platform, &filter).await.expect("jobs");
    let mut shards: Vec<(String, u64)> = jobs
        .iter()
        .filter(|job| job.tenant_id == SYSTEM_TENANT)
        .map(|job| (job.payload["sweep_id"].to_string(), job.payload["shard"].as_u64().unwrap_or(u64::MAX)))
        .collect();
    let total = shards.len();
    shards.sort();
    shards.dedup();
    assert_eq!(shards.len(), total, "no shard of a sweep was enqueued twice");
    let enqueued: u32 = sweeps.iter().map(|s| s.enqueued).sum();
    assert_eq!(enqueued as usize, total);
    for sweep in &sweeps {
        assert_eq!(sweep.enqueued + sweep.skipped, sweep.shards, "{sweep:?}");
    }
    // Each shard's runs never overlapped: one ended before the next began.
    let mut runs: Vec<(u64, chrono::DateTime<Utc>, chrono::DateTime<Utc>)> = jobs
        .iter()
        .filter(|job| job.status == Status::Succeeded)
        .filter_map(|job| Some((job.payload["shard"].as_u64()?, job.started_at?, job.finished_at?)))
        .collect();
    runs.sort();
    for pair in runs.windows(2) {
        if pair[0].0 == pair[1].0 {
            assert!(pair[0].2 <= pair[1].1, "shard {} ran twice at once: {pair:?}", pair[0].0);
        }
    }
}
