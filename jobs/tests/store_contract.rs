//! The store contract, run against every backend: SQLite and PostgreSQL.
//! Each behaviour is one test, generated once per backend.

use std::time::Duration;

use chrono::Utc;
use longhaul_jobs::{
    store::{AttemptRef, CancelOutcome, ClaimRequest, Completion, InsertOutcome, JobFilter, Outcome},
    testing::{Backend, TestStore},
    JobKind, Lane, NewJob, Scope, Status,
};
use serde_json::json;

longhaul_jobs::on_every_backend!(
    claims_honour_priority_then_run_at,
    delayed_jobs_wait_for_run_at,
    a_paused_lane_yields_nothing_until_resumed,
    concurrent_claimers_never_share_a_job,
    fencing_rejects_a_stale_attempt,
    fencing_rejects_an_expired_lease,
    the_fence_never_goes_back_after_a_retry_or_redrive,
    a_release_keeps_the_fence_moving,
    heartbeat_extends_leases_and_reports_cancels,
    reaper_requeues_expired_leases_and_kills_the_last_attempt,
    release_gives_the_attempt_back,
    idempotency_key_returns_the_same_job_or_a_conflict,
    reads_are_tenant_scoped,
    cancel_of_a_queued_job_is_immediate,
    retry_puts_a_dead_job_back,
    only_one_leader_at_a_time,
    errors_history_records_each_failed_attempt,
    lane_stats_count_depth_delay_flight_dead_and_throughput,
    pruning_keeps_recent_and_unfinished_jobs,
    outcomes_write_their_events_with_the_status,
    reaped_jobs_announce_failure_or_death,
    outbox_events_are_leased_and_come_back_if_unpublished,
    artifacts_are_recorded_only_with_a_committed_success,
    lane_history_counts_finished_and_dead_jobs_per_minute,
    the_delayed_filter_lists_only_jobs_not_due_yet,
    sessions_expire_and_end,
    a_claim_interleaves_a_late_tenant_with_an_earlier_backlog,
    a_redrive_interleaves_with_other_tenants_waiting_jobs,
    no_tenant_runs_more_than_its_cap_and_the_platform_has_none,
    claims_at_once_never_overshoot_a_cap_together,
    a_tenant_pause_holds_only_that_tenants_jobs,
    lane_stats_and_history_of_a_tenant_are_its_own,
    an_insert_wakes_its_lane_here_and_in_other_processes_on_postgres,
    a_cancel_request_wakes_the_heartbeats,
    an_event_wakes_the_publisher_which_drains_it_once,
);

const LEASE: Duration = Duration::from_secs(30);

async fn store(backend: Backend) -> TestStore {
    TestStore::new(backend).await.expect("a fresh test database (is PostgreSQL running?)")
}

fn noop(tenant: &str, user: &str) -> NewJob {
    NewJob::new(tenant, user, JobKind::NOOP, json!({}))
}

async fn insert(store: &TestStore, job: NewJob) -> longhaul_jobs::Job {
    match store.insert_job(job).await.expect("insert") {
        InsertOutcome::Created(job) => job,
        other => panic!("expected a new job, got {other:?}"),
    }
}

fn attempt(job: &longhaul_jobs::Job) -> AttemptRef {
    AttemptRef::of(job)
}

async fn claims_honour_priority_then_run_at(backend: Backend) {
    let store = store(backend).await;
    let earlier = Utc::now() - chrono::Duration::seconds(10);
    let mut low_old = noop("t", "u");
    low_old.run_at = earlier;
    let low_new = noop("t", "u");
    let mut high = noop("t", "u");
    high.priority = 5;
    let (low_old, low_new, high) =
        (insert(&store, low_old).await, insert(&store, low_new).await, insert(&store, high).await);

    let claimed = store.claim(Lane::Default, 1, LEASE, "w").await.expect("claim");
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![high.id]);
    let claimed = store.claim(Lane::Default, 5, LEASE, "w").await.expect("claim");
    let mut ids: Vec<_> = claimed.iter().map(|j| j.id).collect();
    ids.sort();
    let mut expected = vec![low_old.id, low_new.id];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(claimed.iter().all(|j| j.status == Status::Running && j.attempts == 1 && j.lease_until.is_some()));
    assert!(store.claim(Lane::Video, 5, LEASE, "w").await.expect("claim").is_empty());
}

async fn delayed_jobs_wait_for_run_at(backend: Backend) {
    let store = store(backend).await;
    let mut later = noop("t", "u");
    later.run_at = Utc::now() + chrono::Duration::milliseconds(400);
    insert(&store, later).await;
    assert!(store.claim(Lane::Default, 5, LEASE, "w").await.expect("claim").is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.claim(Lane::Default, 5, LEASE, "w").await.expect("claim").len(), 1);
}

async fn a_paused_lane_yields_nothing_until_resumed(backend: Backend) {
    let store = store(backend).await;
    insert(&store, noop("t", "u")).await;
    store.set_lane_paused(Lane::Default, true).await.expect("pause");
    assert!(store.claim(Lane::Default, 5, LEASE, "w").await.expect("claim").is_empty());
    let stats = store.lane_stats(&Scope::Platform).await.expect("stats");
    let default = stats.iter().find(|s| s.lane == Lane::Default).expect("default lane");
    assert!(default.paused);
    assert_eq!(default.depth, 1);
    store.set_lane_paused(Lane::Default, false).await.expect("resume");
    assert_eq!(store.claim(Lane::Default, 5, LEASE, "w").await.expect("claim").len(), 1);
}

async fn concurrent_claimers_never_share_a_job(backend: Backend) {
    let store = store(backend).await;
    let jobs: Vec<_> = (0..400).map(|_| noop("t", "u")).collect();
    store.insert_jobs(&jobs).await.expect("bulk insert");
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = store.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim(Lane::Default, 7, LEASE, &format!("w{worker}")).await.expect("claim");
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|job| job.id));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("claimer"));
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(total, 400, "every job claimed");
    assert_eq!(all.len(), 400, "no job claimed twice");
}

async fn fencing_rejects_a_stale_attempt(backend: Backend) {
    let store = store(backend).await;
    insert(&store, noop("t", "u")).await;
    let first = store.claim(Lane::Default, 1, Duration::from_millis(200), "a").await.expect("claim").remove(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.reap_expired().await.expect("reap").requeued, 1);
    let second = store.claim(Lane::Default, 1, LEASE, "b").await.expect("claim").remove(0);
    assert_eq!(second.attempts, 2);
    let stale = Completion {
        attempt: attempt(&first),
        outcome: Outcome::Succeeded { result: Some(json!({"by": "a"})), artifacts: Vec::new() },
    };
    assert!(store.complete(&[stale]).await.expect("complete").is_empty(), "the stale attempt must not commit");
    let fresh = Completion {
        attempt: attempt(&second),
        outcome: Outcome::Succeeded { result: Some(json!({"by": "b"})), artifacts: Vec::new() },
    };
    assert_eq!(store.complete(&[fresh]).await.expect("complete").len(), 1);
    let job = store.get_job(&Scope::Platform, first.id).await.expect("get").expect("exists");
    assert_eq!(job.status, Status::Succeeded);
    assert_eq!(job.result, Some(json!({"by": "b"})));
}

async fn fencing_rejects_an_expired_lease(backend: Backend) {
    let store = store(backend).await;
    insert(&store, noop("t", "u")).await;
    let job = store.claim(Lane::Default, 1, Duration::from_millis(200), "a").await.expect("claim").remove(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Nobody reaped it yet, but the lease is gone: no commit, no heartbeat.
    let done =
        Completion { attempt: attempt(&job), outcome: Outcome::Succeeded { result: None, artifacts: Vec::new() } };
    assert!(store.complete(&[done]).await.expect("complete").is_empty());
    let beat = store.heartbeat(&[attempt(&job)], LEASE).await.expect("heartbeat");
    assert!(!beat[0].held);
}

/// A worker cut off from the database on attempt 1, whose job an admin then
/// retried (or redrove) so that a new run is at attempt 1 again, can neither
/// renew, report progress nor commit: the fence is the generation, which
/// every claim, retry and redrive moves on and nothing moves back.
async fn the_fence_never_goes_back_after_a_retry_or_redrive(backend: Backend) {
    let store = store(backend).await;
    for redrive in [false, true] {
        let mut once = noop("t", "u");
        once.max_attempts = 1;
        let job = insert(&store, once).await;
        let cut_off = store.claim(Lane::Default, 1, Duration::from_millis(200), "a").await.expect("claim").remove(0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(store.reap_expired().await.expect("reap").dead, 1);
        if redrive {
            let revived = store.redrive(&Scope::Platform, Lane::Default, Some(&[job.id])).await.expect("redrive");
            assert_eq!(revived, vec![job.id]);
        } else {
            store.retry_job(&Scope::Platform, job.id).await.expect("retry").expect("retried");
        }
        let again = store.claim(Lane::Default, 1, LEASE, "b").await.expect("claim").remove(0);
        assert_eq!((again.id, again.attempts, cut_off.attempts), (job.id, 1, 1), "same attempt number");
        assert!(
            again.generation > cut_off.generation,
            "the fence moved on: {} then {}",
            cut_off.generation,
            again.generation
        );

        let beat = store.heartbeat(&[attempt(&cut_off)], LEASE).await.expect("heartbeat");
        assert!(!beat[0].held, "the cut-off run must not renew the new run's lease");
        assert!(!store.set_progress(attempt(&cut_off), 40).await.expect("progress"));
        let stale = Completion {
            attempt: attempt(&cut_off),
            outcome: Outcome::Succeeded { result: Some(json!({"by": "a"})), artifacts: Vec::new() },
        };
        assert!(store.complete(&[stale]).await.expect("complete").is_empty(), "the cut-off run must not commit");
        let fresh = Completion {
            attempt: attempt(&again),
            outcome: Outcome::Succeeded { result: Some(json!({"by": "b"})), artifacts: Vec::new() },
        };
        assert_eq!(store.complete(&[fresh]).await.expect("complete"), vec![attempt(&again)]);
        let done = store.get_job(&Scope::Platform, job.id).await.expect("get").expect("exists");
        assert_eq!((done.status, done.result), (Status::Succeeded, Some(json!({"by": "b"}))));
    }
}

/// A release (shutdown) gives the attempt back but not the generation: the
/// released run cannot commit after the next one starts.
async fn a_release_keeps_the_fence_moving(backend: Backend) {
    let store = store(backend).await;
    insert(&store, noop("t", "u")).await;
    let first = store.claim(Lane::Default, 1, LEASE, "a").await.expect("claim").remove(0);
    assert_eq!(store.release(&[attempt(&first)]).await.expect("release"), 1);
    let second = store.claim(Lane::Default, 1, LEASE, "b").await.expect("claim").remove(0);
    assert_eq!(second.attempts, first.attempts, "a release spends no attempt");
    assert!(second.generation > first.generation);
    let stale =
        Completion { attempt: attempt(&first), outcome: Outcome::Succeeded { result: None, artifacts: Vec::new() } };
    assert!(store.complete(&[stale]).await.expect("complete").is_empty());
}

async fn heartbeat_extends_leases_and_reports_cancels(backend: Backend) {
    let store = store(backend).await;
    let created = insert(&store, noop("t", "u")).await;
    let job = store.claim(Lane::Default, 1, Duration::from_millis(500), "a").await.expect("claim").remove(0);
    let beat = store.heartbeat(&[attempt(&job)], LEASE).await.expect("heartbeat");
    assert!(beat[0].held && !beat[0].cancel_requested);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(store.reap_expired().await.expect("reap").requeued, 0, "the extended lease is alive");
    match store.cancel_job(&Scope::Platform, created.id).await.expect("cancel") {
        Some(CancelOutcome::Requested(job)) => assert_eq!(job.status, Status::Running),
        other => panic!("expected a cancel request, got {other:?}"),
    }
    let beat = store.heartbeat(&[attempt(&job)], LEASE).await.expect("heartbeat");
    assert!(beat[0].held && beat[0].cancel_requested);
}

async fn reaper_requeues_expired_leases_and_kills_the_last_attempt(backend: Backend) {
    let store = store(backend).await;
    let mut once = noop("t", "u");
    once.max_attempts = 1;
    let once = insert(&store, once).await;
    let twice = insert(&store, noop("t", "u")).await;
    let claimed = store.claim(Lane::Default, 2, Duration::from_millis(100), "a").await.expect("claim");
    assert_eq!(claimed.len(), 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = store.reap_expired().await.expect("reap");
    assert_eq!((report.requeued, report.dead), (1, 1));
    let once = store.get_job(&Scope::Platform, once.id).await.expect("get").expect("exists");
    assert_eq!(once.status, Status::Dead);
    assert!(once.error.as_deref().unwrap_or_default().contains("lease expired"));
    let twice = store.get_job(&Scope::Platform, twice.id).await.expect("get").expect("exists");
    assert_eq!((twice.status, twice.attempts), (Status::Queued, 1));
}

async fn release_gives_the_attempt_back(backend: Backend) {
    let store = store(backend).await;
    insert(&store, noop("t", "u")).await;
    let job = store.claim(Lane::Default, 1, LEASE, "a").await.expect("claim").remove(0);
    assert_eq!(store.release(&[attempt(&job)]).await.expect("release"), 1);
    let again = store.claim(Lane::Default, 1, LEASE, "b").await.expect("claim").remove(0);
    assert_eq!((again.id, again.attempts), (job.id, 1), "a release does not spend an attempt");
}

async fn idempotency_key_returns_the_same_job_or_a_conflict(backend: Backend) {
    let store = store(backend).await;
    let keyed = |hash: &str| {
        let mut job = noop("t", "u");
        job.idempotency_key = Some("key-1".into());
        job.request_hash = Some(hash.into());
        job
    };
    let first = insert(&store, keyed("h1")).await;
    match store.insert_job(keyed("h1")).await.expect("insert") {
        InsertOutcome::Existing(job) => assert_eq!(job.id, first.id),
        other => panic!("expected the existing job, got {other:?}"),
    }
    assert!(matches!(store.insert_job(keyed("h2")).await.expect("insert"), InsertOutcome::Conflict(_)));
    // The same key from another user is another job.
    let mut other_user = keyed("h1");
    other_user.user_id = "v".into();
    insert(&store, other_user).await;
}

async fn reads_are_tenant_scoped(backend: Backend) {
    let store = store(backend).await;
    let mine = insert(&store, noop("acme", "alice")).await;
    insert(&store, noop("acme", "bob")).await;
    insert(&store, noop("globex", "carol")).await;
    let alice = Scope::User { tenant_id: "acme".into(), user_id: "alice".into() };
    let bob = Scope::User { tenant_id: "acme".into(), user_id: "bob".into() };
    let acme = Scope::Tenant { tenant_id: "acme".into() };
    let globex = Scope::Tenant { tenant_id: "globex".into() };
    assert!(store.get_job(&alice, mine.id).await.expect("get").is_some());
    assert!(store.get_job(&bob, mine.id).await.expect("get").is_none());
    assert!(store.get_job(&acme, mine.id).await.expect("get").is_some());
    assert!(store.get_job(&globex, mine.id).await.expect("get").is_none());
    let filter = JobFilter { limit: 100, ..JobFilter::default() };
    assert_eq!(store.list_jobs(&alice, &filter).await.expect("list").len(), 1);
    assert_eq!(store.list_jobs(&acme, &filter).await.expect("list").len(), 2);
    assert_eq!(store.list_jobs(&Scope::Platform, &filter).await.expect("list").len(), 3);
    assert!(store.cancel_job(&globex, mine.id).await.expect("cancel").is_none());
}

async fn cancel_of_a_queued_job_is_immediate(backend: Backend) {
    let store = store(backend).await;
    let job = insert(&store, noop("t", "u")).await;
    match store.cancel_job(&Scope::Platform, job.id).await.expect("cancel") {
        Some(CancelOutcome::Cancelled(job)) => {
            assert_eq!(job.status, Status::Cancelled);
            assert!(job.finished_at.is_some());
        }
        other => panic!("expected a cancelled job, got {other:?}"),
    }
    assert!(store.claim(Lane::Default, 5, LEASE, "w").await.expect("claim").is_empty());
    assert!(matches!(
        store.cancel_job(&Scope::Platform, job.id).await.expect("cancel"),
        Some(CancelOutcome::AlreadyFinal(_))
    ));
}

async fn retry_puts_a_dead_job_back(backend: Backend) {
    let store = store(backend).await;
    insert(&store, noop("t", "u")).await;
    let job = store.claim(Lane::Default, 1, LEASE, "a").await.expect("claim").remove(0);
    let dead = Completion { attempt: attempt(&job), outcome: Outcome::Dead { error: "boom".into() } };
    assert_eq!(store.complete(&[dead]).await.expect("complete").len(), 1);
    let retried = store.retry_job(&Scope::Platform, job.id).await.expect("retry").expect("exists");
    assert_eq!((retried.status, retried.attempts), (Status::Queued, 0));
    assert_eq!(store.claim(Lane::Default, 1, LEASE, "a").await.expect("claim").len(), 1);
}

async fn only_one_leader_at_a_time(backend: Backend) {
    let store = store(backend).await;
    let ttl = Duration::from_millis(300);
    assert!(store.try_lead("scheduler", "a", ttl).await.expect("lead"));
    assert!(!store.try_lead("scheduler", "b", ttl).await.expect("lead"));
    assert!(store.try_lead("scheduler", "a", ttl).await.expect("renew"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.try_lead("scheduler", "b", ttl).await.expect("take over"));
    store.resign("scheduler", "b").await.expect("resign");
    assert!(store.try_lead("scheduler", "a", ttl).await.expect("lead again"));
}

async fn errors_history_records_each_failed_attempt(backend: Backend) {
    let store = store(backend).await;
    insert(&store, noop("t", "u")).await;
    let job = store.claim(Lane::Default, 1, LEASE, "a").await.expect("claim").remove(0);
    let retry =
        Completion { attempt: attempt(&job), outcome: Outcome::Retry { error: "first".into(), run_at: Utc::now() } };
    assert_eq!(store.complete(&[retry]).await.expect("complete").len(), 1);
    let job = store.claim(Lane::Default, 1, LEASE, "a").await.expect("claim").remove(0);
    assert_eq!(job.attempts, 2);
    let dead = Completion { attempt: attempt(&job), outcome: Outcome::Dead { error: "second".into() } };
    store.complete(&[dead]).await.expect("complete");
    let job = store.get_job(&Scope::Platform, job.id).await.expect("get").expect("exists");
    let history = job.errors.as_array().expect("an array");
    let messages: Vec<_> = history.iter().map(|e| (e["attempt"].as_i64(), e["error"].as_str())).collect();
    assert_eq!(messages, vec![(Some(1), Some("first")), (Some(2), Some("second"))]);
    assert_eq!(job.error.as_deref(), Some("second"));
}

async fn lane_stats_count_depth_delay_flight_dead_and_throughput(backend: Backend) {
    let store = store(backend).await;
    for _ in 0..4 {
        insert(&store, noop("t", "u")).await;
    }
    let mut later = noop("t", "u");
    later.run_at = Utc::now() + chrono::Duration::hours(1);
    insert(&store, later).await;
    let claimed = store.claim(Lane::Default, 3, LEASE, "w").await.expect("claim");
    let completions = vec![
        Completion {
            attempt: attempt(&claimed[0]),
            outcome: Outcome::Succeeded { result: None, artifacts: Vec::new() },
        },
        Completion { attempt: attempt(&claimed[1]), outcome: Outcome::Dead { error: "boom".into() } },
    ];
    assert_eq!(store.complete(&completions).await.expect("complete").len(), 2);
    let stats = store.lane_stats(&Scope::Platform).await.expect("stats");
    let lane = stats.iter().find(|s| s.lane == Lane::Default).expect("default lane");
    assert_eq!((lane.depth, lane.delayed, lane.in_flight, lane.dead), (1, 1, 1, 1));
    assert_eq!(lane.throughput_5m, 2, "a success and a death both finished");
    assert!(lane.oldest_age_seconds >= 0.0);
    let video = stats.iter().find(|s| s.lane == Lane::Video).expect("video lane");
    assert_eq!((video.depth, video.in_flight, video.dead, video.throughput_5m), (0, 0, 0, 0));
}

async fn pruning_keeps_recent_and_unfinished_jobs(backend: Backend) {
    let store = store(backend).await;
    insert(&store, noop("t", "u")).await;
    insert(&store, noop("t", "u")).await;
    let job = store.claim(Lane::Default, 1, LEASE, "w").await.expect("claim").remove(0);
    let done =
        Completion { attempt: attempt(&job), outcome: Outcome::Succeeded { result: None, artifacts: Vec::new() } };
    store.complete(&[done]).await.expect("complete");
    assert_eq!(store.prune_finished(Duration::from_secs(3600)).await.expect("prune"), 0, "too recent");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.prune_finished(Duration::from_millis(1)).await.expect("prune"), 1);
    let left = store.list_jobs(&Scope::Platform, &JobFilter { limit: 10, ..JobFilter::default() }).await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].status, Status::Queued);
}

fn report(tenant: &str) -> NewJob {
    NewJob::new(tenant, "u", JobKind::REPORT_BUILD, json!({"report": "year_summary", "year": 2026}))
}

async fn outcomes_write_their_events_with_the_status(backend: Backend) {
    let store = store(backend).await;
    let mut once = report("acme");
    once.max_attempts = 1;
    insert(&store, report("acme")).await;
    insert(&store, noop("acme", "u")).await;
    let claimed = store.claim(Lane::Reports, 1, LEASE, "w").await.expect("claim");
    let retry = Completion {
        attempt: attempt(&claimed[0]),
        outcome: Outcome::Retry { error: "agency timeout".into(), run_at: Utc::now() },
    };
    store.complete(&[retry]).await.expect("complete");
    let again = store.claim(Lane::Reports, 1, LEASE, "w").await.expect("claim");
    let success =
        Completion { attempt: attempt(&again[0]), outcome: Outcome::Succeeded { result: None, artifacts: Vec::new() } };
    // A noop job's outcome is not announced.
    let noop = store.claim(Lane::Default, 1, LEASE, "w").await.expect("claim");
    let noop_dead = Completion { attempt: attempt(&noop[0]), outcome: Outcome::Dead { error: "x".into() } };
    store.complete(&[success, noop_dead]).await.expect("complete");
    let dead_job = insert(&store, once).await;
    let dying = store.claim(Lane::Reports, 1, LEASE, "w").await.expect("claim");
    assert_eq!(dying[0].id, dead_job.id);
    let death = Completion { attempt: attempt(&dying[0]), outcome: Outcome::Dead { error: "bad year".into() } };
    store.complete(&[death]).await.expect("complete");

    let events = store.claim_outbox(10, LEASE).await.expect("claim events");
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, vec!["job.failed", "job.succeeded", "job.dead"]);
    let failed = &events[0].payload;
    assert_eq!(failed["job_id"], json!(claimed[0].id));
    assert_eq!((failed["kind"].as_str(), failed["status"].as_str()), (Some("report_build"), Some("queued")));
    assert_eq!((failed["attempt"].as_i64(), failed["error"].as_str()), (Some(1), Some("agency timeout")));
    assert_eq!((failed["tenant_id"].as_str(), failed["user_id"].as_str()), (Some("acme"), Some("u")));
    assert!(failed["at"].is_string());
    assert_eq!(events[2].payload["error"], json!("bad year"));
    assert!(events.iter().all(|e| e.tenant_id == "acme"));
    let mut keys: Vec<_> = failed.as_object().expect("an object").keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["at", "attempt", "error", "job_id", "kind", "status", "tenant_id", "user_id"]);
}

async fn reaped_jobs_announce_failure_or_death(backend: Backend) {
    let store = store(backend).await;
    let mut last = report("acme");
    last.max_attempts = 1;
    insert(&store, last).await;
    insert(&store, report("acme")).await;
    store.claim(Lane::Reports, 2, Duration::from_millis(100), "w").await.expect("claim");
    tokio::time::sleep(Duration::from_millis(200)).await;
    store.reap_expired().await.expect("reap");
    let mut types: Vec<_> =
        store.claim_outbox(10, LEASE).await.expect("events").into_iter().map(|e| e.event_type).collect();
    types.sort();
    assert_eq!(types, vec!["job.dead", "job.failed"]);
}

async fn outbox_events_are_leased_and_come_back_if_unpublished(backend: Backend) {
    let store = store(backend).await;
    for _ in 0..3 {
        insert(&store, report("acme")).await;
    }
    let claimed = store.claim(Lane::Reports, 3, LEASE, "w").await.expect("claim");
    let done: Vec<_> = claimed
        .iter()
        .map(|job| Completion {
            attempt: attempt(job),
            outcome: Outcome::Succeeded { result: None, artifacts: Vec::new() },
        })
        .collect();
    store.complete(&done).await.expect("complete");
    let short = Duration::from_millis(200);
    let first = store.claim_outbox(2, short).await.expect("events");
    assert_eq!(first.len(), 2);
    let second = store.claim_outbox(10, short).await.expect("events");
    assert_eq!(second.len(), 1, "leased events are not handed out twice");
    assert!(second[0].id > first[1].id, "oldest first");
    assert_eq!(store.delete_outbox(&[first[0].id, second[0].id]).await.expect("delete"), 2);
    assert!(store.claim_outbox(10, short).await.expect("events").is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = store.claim_outbox(10, short).await.expect("events");
    assert_eq!(again.iter().map(|e| e.id).collect::<Vec<_>>(), vec![first[1].id], "an unpublished event comes back");
}

fn artifact(name: &str) -> longhaul_jobs::store::NewArtifact {
    longhaul_jobs::store::NewArtifact {
        id: uuid::Uuid::now_v7(),
        name: name.into(),
        content_type: "text/plain".into(),
        object_key: format!("tenants/acme/jobs/x/1/{name}"),
        size_bytes: 5,
    }
}

async fn artifacts_are_recorded_only_with_a_committed_success(backend: Backend) {
    let store = store(backend).await;
    let job = insert(&store, noop("acme", "u1")).await;
    let other = insert(&store, noop("acme", "u1")).await;
    let claimed = store.claim(Lane::Default, 2, LEASE, "w").await.expect("claim");
    assert_eq!(claimed.len(), 2);
    let first = claimed.iter().find(|c| c.id == job.id).expect("the first job");
    let second = claimed.iter().find(|c| c.id == other.id).expect("the second job");
    let stale = AttemptRef { id: second.id, generation: second.generation + 1 };
    let done = store
        .complete(&[
            Completion {
                attempt: attempt(first),
                outcome: Outcome::Succeeded { result: None, artifacts: vec![artifact("a.txt"), artifact("b.csv")] },
            },
            // Fenced off: its artifact must not appear.
            Completion {
                attempt: stale,
                outcome: Outcome::Succeeded { result: None, artifacts: vec![artifact("c.txt")] },
            },
        ])
        .await
        .expect("complete");
    assert_eq!(done, vec![attempt(first)]);
    let listed = store.job_artifacts(&[job.id, other.id]).await.expect("artifacts");
    let names: Vec<_> = listed.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["a.txt", "b.csv"]);
    assert!(listed
        .iter()
        .all(|a| a.job_id == job.id && a.tenant_id == "acme" && a.user_id == "u1" && a.size_bytes == 5));
    let id = listed[0].id;
    let mine = Scope::User { tenant_id: "acme".into(), user_id: "u1".into() };
    assert!(store.get_artifact(&mine, id).await.expect("get").is_some());
    for stranger in
        [Scope::User { tenant_id: "acme".into(), user_id: "u2".into() }, Scope::Tenant { tenant_id: "other".into() }]
    {
        assert!(store.get_artifact(&stranger, id).await.expect("get").is_none(), "{stranger:?}");
    }
}

async fn lane_history_counts_finished_and_dead_jobs_per_minute(backend: Backend) {
    let store = store(backend).await;
    for _ in 0..3 {
        insert(&store, noop("t1", "u1")).await;
    }
    let claimed = store.claim(Lane::Default, 3, LEASE, "w").await.expect("claim");
    let outcomes = [
        Outcome::Succeeded { result: None, artifacts: Vec::new() },
        Outcome::Dead { error: "boom".into() },
        Outcome::Retry { error: "again".into(), run_at: Utc::now() + chrono::Duration::hours(1) },
    ];
    let completions: Vec<Completion> =
        claimed.iter().zip(outcomes).map(|(job, outcome)| Completion { attempt: attempt(job), outcome }).collect();
    assert_eq!(store.complete(&completions).await.expect("complete").len(), 3);
    let history = store.lane_history(&Scope::Platform, 60).await.expect("history");
    assert_eq!(history.len(), 1, "one lane-minute: {history:?}");
    assert_eq!(history[0].lane, Lane::Default);
    assert_eq!((history[0].finished, history[0].failed), (2, 1), "the retry has not finished");
    assert!(Utc::now() - history[0].minute < chrono::Duration::minutes(2));
}

async fn the_delayed_filter_lists_only_jobs_not_due_yet(backend: Backend) {
    let store = store(backend).await;
    let due = insert(&store, noop("t1", "u1")).await;
    let mut later = noop("t1", "u1");
    later.run_at = Utc::now() + chrono::Duration::hours(1);
    let later = insert(&store, later).await;
    let filter = JobFilter { delayed: true, limit: 10, ..JobFilter::default() };
    let listed: Vec<_> =
        store.list_jobs(&Scope::Platform, &filter).await.expect("list").iter().map(|job| job.id).collect();
    assert_eq!(listed, [later.id]);
    assert_ne!(due.id, later.id);
}

async fn sessions_expire_and_end(backend: Backend) {
    use longhaul_jobs::admin::Session;
    let store = store(backend).await;
    let now = Utc::now();
    let session = |expires_at| Session {
        tenant_id: "t1".into(),
        user_id: "ana".into(),
        role: "admin".into(),
        csrf: "token".into(),
        created_at: now,
        expires_at,
    };
    store.create_session("live", &session(now + chrono::Duration::hours(1))).await.expect("create");
    store.create_session("old", &session(now - chrono::Duration::seconds(1))).await.expect("create");
    let live = store.session("live").await.expect("read").expect("a live session");
    assert_eq!((live.user_id.as_str(), live.csrf.as_str()), ("ana", "token"));
    assert_eq!(store.session("old").await.expect("read"), None, "expired");
    assert_eq!(store.session("nope").await.expect("read"), None);
    store.delete_session("live").await.expect("delete");
    assert_eq!(store.session("live").await.expect("read"), None, "signed out");
}

async fn a_claim_interleaves_a_late_tenant_with_an_earlier_backlog(backend: Backend) {
    let store = store(backend).await;
    let backlog: Vec<NewJob> = (0..500).map(|_| noop("a", "u")).collect();
    store.insert_jobs(&backlog).await.expect("backlog");
    // A's first jobs are taken; then B arrives, one job at a time.
    assert_eq!(store.claim(Lane::Default, 50, LEASE, "w").await.expect("claim").len(), 50);
    let mut late = Vec::new();
    for _ in 0..5 {
        late.push(insert(&store, noop("b", "u")).await.id);
    }
    // B's jobs come at the front of the lane, between A's, not behind 450 of them.
    let next = store.claim(Lane::Default, 10, LEASE, "w").await.expect("claim");
    let taken: Vec<_> = next.iter().map(|job| job.id).collect();
    for id in &late {
        assert!(
            taken.contains(id),
            "B's job {id} is not among the next 10 claimed: {:?}",
            next.iter().map(|j| &j.tenant_id).collect::<Vec<_>>()
        );
    }
    // A chain of one tenant: its own jobs keep their order.
    let a_ids: Vec<_> = next.iter().filter(|job| job.tenant_id == "a").map(|job| job.id).collect();
    let mut sorted = a_ids.clone();
    sorted.sort();
    assert_eq!(a_ids, sorted, "a tenant's own jobs stay first in, first out");
    // Priority still comes first, whoever submitted.
    let urgent = insert(&store, NewJob { priority: 5, ..noop("a", "u") }).await;
    assert_eq!(store.claim(Lane::Default, 1, LEASE, "w").await.expect("claim")[0].id, urgent.id);
}

async fn a_redrive_interleaves_with_other_tenants_waiting_jobs(backend: Backend) {
    let store = store(backend).await;
    let mut dead = Vec::new();
    for _ in 0..20 {
        let job = insert(&store, noop("a", "u")).await;
        dead.push(job);
    }
    let claimed = store.claim(Lane::Default, 20, LEASE, "w").await.expect("claim");
    let completions: Vec<Completion> = claimed
        .iter()
        .map(|job| Completion { attempt: attempt(job), outcome: Outcome::Dead { error: "boom".into() } })
        .collect();
    assert_eq!(store.complete(&completions).await.expect("complete").len(), 20);
    let waiting = insert(&store, noop("b", "u")).await;
    assert_eq!(store.redrive(&Scope::Platform, Lane::Default, None).await.expect("redrive").len(), 20);
    let next = store.claim(Lane::Default, 3, LEASE, "w").await.expect("claim");
    assert!(next.iter().any(|job| job.id == waiting.id), "B's waiting job is not behind A's 20 redriven ones");
}

async fn no_tenant_runs_more_than_its_cap_and_the_platform_has_none(backend: Backend) {
    let store = store(backend).await;
    let jobs: Vec<NewJob> = (0..10).map(|_| noop("a", "u")).chain((0..2).map(|_| noop("b", "u"))).collect();
    store.insert_jobs(&jobs).await.expect("insert");
    let capped = ClaimRequest::new(Lane::Default, 10, LEASE, "w").capped(Some(3));
    let first = store.claim_within(&capped).await.expect("claim");
    let count = |tenant: &str, jobs: &[longhaul_jobs::Job]| jobs.iter().filter(|job| job.tenant_id == tenant).count();
    assert_eq!((count("a", &first), count("b", &first)), (3, 2), "A gets its cap, B the rest");
    assert!(store.claim_within(&capped).await.expect("claim").is_empty(), "A is at its cap");
    // One of A's ends: one more of A's may start.
    let done = first.iter().find(|job| job.tenant_id == "a").expect("one of A's");
    let success =
        Completion { attempt: attempt(done), outcome: Outcome::Succeeded { result: None, artifacts: vec![] } };
    store.complete(&[success]).await.expect("complete");
    let more = store.claim_within(&capped).await.expect("claim");
    assert_eq!(count("a", &more), 1);
    // The platform's own work (a reserved tenant) is never capped.
    let sweep: Vec<NewJob> = (0..6).map(|_| noop("_longhaul", "system")).collect();
    store.insert_jobs(&sweep).await.expect("insert");
    let system = store.claim_within(&capped).await.expect("claim");
    assert_eq!(count("_longhaul", &system), 6);
}

/// Claims side by side (claim loops, workers) each count the running jobs;
/// together they must still start no more than the cap.
async fn claims_at_once_never_overshoot_a_cap_together(backend: Backend) {
    let store = store(backend).await;
    let jobs: Vec<NewJob> = (0..200).map(|_| noop("a", "u")).collect();
    store.insert_jobs(&jobs).await.expect("insert");
    for round in 1..=3u32 {
        let request = ClaimRequest::new(Lane::Default, 4, LEASE, "w").capped(Some(10 * round));
        let claims = (0..16).map(|_| store.claim_within(&request));
        let started: usize =
            futures::future::join_all(claims).await.into_iter().map(|claimed| claimed.expect("claim").len()).sum();
        let running = store.lane_stats(&Scope::Platform).await.expect("stats");
        let in_flight = running.iter().find(|lane| lane.lane == Lane::Default).map_or(0, |lane| lane.in_flight);
        assert_eq!(in_flight, i64::from(10 * round), "round {round}: {started} started; the cap is {}", 10 * round);
    }
}

async fn a_tenant_pause_holds_only_that_tenants_jobs(backend: Backend) {
    let store = store(backend).await;
    let paused = insert(&store, noop("a", "u")).await;
    let other = insert(&store, noop("b", "u")).await;
    store.set_tenant_lane_paused("a", Lane::Default, true, "admin").await.expect("pause");
    let claimed = store.claim(Lane::Default, 10, LEASE, "w").await.expect("claim");
    assert_eq!(claimed.iter().map(|job| job.id).collect::<Vec<_>>(), vec![other.id]);
    assert!(!store.lane_paused(Lane::Default).await.expect("paused"), "the lane itself runs");
    store.set_tenant_lane_paused("a", Lane::Default, false, "admin").await.expect("resume");
    assert_eq!(store.claim(Lane::Default, 10, LEASE, "w").await.expect("claim")[0].id, paused.id);
}

async fn lane_stats_and_history_of_a_tenant_are_its_own(backend: Backend) {
    let store = store(backend).await;
    store.insert_jobs(&[noop("a", "u"), noop("a", "u"), noop("b", "u")]).await.expect("insert");
    let running = store.claim(Lane::Default, 1, LEASE, "w").await.expect("claim");
    let success =
        Completion { attempt: attempt(&running[0]), outcome: Outcome::Succeeded { result: None, artifacts: vec![] } };
    store.complete(&[success]).await.expect("complete");
    store.set_tenant_lane_paused("b", Lane::Default, true, "admin").await.expect("pause");
    let lane = |stats: Vec<longhaul_jobs::store::LaneStats>| {
        stats.into_iter().find(|lane| lane.lane == Lane::Default).expect("the default lane")
    };
    let tenant = |id: &str| Scope::Tenant { tenant_id: id.into() };
    let a = lane(store.lane_stats(&tenant("a")).await.expect("stats"));
    let b = lane(store.lane_stats(&tenant("b")).await.expect("stats"));
    let all = lane(store.lane_stats(&Scope::Platform).await.expect("stats"));
    assert_eq!((a.depth, a.throughput_5m, a.tenant_paused), (1, 1, Some(false)), "{a:?}");
    assert_eq!((b.depth, b.throughput_5m, b.tenant_paused), (1, 0, Some(true)), "{b:?}");
    assert_eq!((all.depth, all.throughput_5m, all.tenant_paused), (2, 1, None), "{all:?}");
    let finished =
        |history: Vec<longhaul_jobs::admin::LaneMinute>| history.iter().map(|minute| minute.finished).sum::<i64>();
    assert_eq!(finished(store.lane_history(&tenant("a"), 60).await.expect("history")), 1);
    assert_eq!(finished(store.lane_history(&tenant("b"), 60).await.expect("history")), 0);
    assert_eq!(finished(store.lane_history(&Scope::Platform, 60).await.expect("history")), 1);
}

/// How long a wake-up may take: a NOTIFY's round trip, with room for a busy
/// machine. Idle pools poll once a second without one, so a test that waits
/// less than that sees the wake-up, not the poll.
const WAKE: Duration = Duration::from_millis(900);

/// The notifier of inserts: a lane pool waiting in this process wakes at
/// once. On PostgreSQL, so does one in another process (LISTEN/NOTIFY); on
/// SQLite, whose processes share no channel, the other polls.
async fn an_insert_wakes_its_lane_here_and_in_other_processes_on_postgres(backend: Backend) {
    let store = store(backend).await;
    let other = longhaul_jobs::database::connect(&store.url).await.expect("a second process's store");
    let here = store.wakeups().lane(Lane::Default).expect("the default lane").notified();
    insert(&store, noop("t", "u")).await;
    tokio::time::timeout(WAKE, here).await.expect("the insert woke this process's pool");
    if backend == Backend::Postgres {
        let there = other.wakeups().lane(Lane::Reports).expect("the reports lane");
        let mut woken = false;
        for _ in 0..20 {
            // The listener may still be connecting: each insert is a fresh chance.
            insert(&store, report("acme")).await;
            if tokio::time::timeout(Duration::from_millis(250), there.notified()).await.is_ok() {
                woken = true;
                break;
            }
        }
        assert!(woken, "an insert in one process wakes the lane in another");
    }
}

/// A cancel request of a running job wakes the heartbeats, so that the
/// worker hears of it in a round trip rather than a heartbeat period.
async fn a_cancel_request_wakes_the_heartbeats(backend: Backend) {
    let store = store(backend).await;
    let created = insert(&store, noop("t", "u")).await;
    store.claim(Lane::Default, 1, LEASE, "w").await.expect("claim");
    let woken = store.wakeups().cancels().notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    assert!(matches!(
        store.cancel_job(&Scope::Platform, created.id).await.expect("cancel"),
        Some(CancelOutcome::Requested(_))
    ));
    tokio::time::timeout(WAKE, woken).await.expect("the cancel request woke the heartbeats");
}

/// An outcome that announces itself wakes the publisher, which sends each
/// event once through the notifier and leaves the outbox empty.
async fn an_event_wakes_the_publisher_which_drains_it_once(backend: Backend) {
    use longhaul_jobs::notify::{LogNotifier, Publisher};
    let store = store(backend).await;
    let outbox = store.wakeups().outbox().notified();
    insert(&store, report("acme")).await;
    let job = store.claim(Lane::Reports, 1, LEASE, "w").await.expect("claim").remove(0);
    let done =
        Completion { attempt: attempt(&job), outcome: Outcome::Succeeded { result: None, artifacts: Vec::new() } };
    store.complete(&[done]).await.expect("complete");
    tokio::time::timeout(WAKE, outbox).await.expect("the event woke the publisher");
    let publisher = Publisher {
        store: store.store.clone(),
        notifier: std::sync::Arc::new(LogNotifier),
        lease: LEASE,
        idle: Duration::from_secs(1),
    };
    assert_eq!(publisher.drain_once().await.expect("publish"), 1, "the one event went out");
    assert_eq!(publisher.drain_once().await.expect("publish"), 0, "and only once");
    assert!(store.claim_outbox(10, Duration::from_millis(1)).await.expect("events").is_empty());
}
