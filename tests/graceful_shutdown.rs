//! Graceful shutdown of the real binary, as the spec describes it: on SIGTERM a
//! worker stops claiming, lets in-flight jobs finish within the grace period,
//! releases the rest for immediate redelivery without spending an attempt, and
//! exits 0. Nothing goes dead because of a deploy.

mod support;

use std::time::{Duration, Instant};

use longhaul_jobs::{testing::Backend, NewJob, Status};
use nix::sys::signal::Signal;
use support::{describe, noop_job, Launcher, TestDb, WorkerSettings};
use uuid::Uuid;

fn running(jobs: &[longhaul_jobs::Job]) -> Vec<Uuid> {
    jobs.iter().filter(|job| job.status == Status::Running).map(|job| job.id).collect()
}

longhaul_jobs::on_every_backend!(sigterm_lets_in_flight_jobs_finish_and_exits_zero);
async fn sigterm_lets_in_flight_jobs_finish_and_exits_zero(backend: Backend) {
    let db = TestDb::new(backend).await;
    let jobs: Vec<NewJob> = (0..6).map(|_| noop_job(1_500, 5)).collect();
    let ids: Vec<Uuid> = jobs.iter().map(|job| job.id).collect();
    db.insert(&jobs).await;
    let mut launcher = Launcher::new(db.url());
    let settings = WorkerSettings {
        concurrency: 3,
        shutdown_grace_secs: Some(10),
        poll_interval_ms: Some(100),
        // One tenant's six jobs, three at once: the whole lane is theirs.
        tenant_share: Some("off"),
        ..WorkerSettings::default()
    };

    let mut worker = launcher.spawn_worker(&settings);
    let claimed = db
        .wait_for_jobs(&ids, Duration::from_secs(30), "the worker to start 3 jobs", |jobs| running(jobs).len() >= 3)
        .await;
    let in_flight = running(&claimed);
    assert_eq!(in_flight.len(), 3, "a worker with 3 slots runs 3 jobs at once: {}", describe(&claimed));

    worker.signal(Signal::SIGTERM);
    let status = worker
        .wait_for_exit(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("the worker did not exit within 20 s of SIGTERM:\n{}", worker.log_tail(30)));
    assert!(status.success(), "the worker should exit 0 after SIGTERM, not {status}:\n{}", worker.log_tail(30));

    for job in db.jobs(&ids).await {
        if in_flight.contains(&job.id) {
            assert_eq!(
                (job.status, job.attempts),
                (Status::Succeeded, 1),
                "a job in flight at SIGTERM finishes within the grace period: {job:?}"
            );
        } else {
            assert_eq!(
                (job.status, job.attempts),
                (Status::Queued, 0),
                "a job not yet started when SIGTERM came is not claimed afterwards: {job:?}"
            );
        }
    }
    let commits = db.raw.commits().await;
    assert_eq!(commits.completions, 3, "{commits:?}");
}

longhaul_jobs::on_every_backend!(sigterm_releases_jobs_that_outlive_the_grace_period);
async fn sigterm_releases_jobs_that_outlive_the_grace_period(backend: Backend) {
    let db = TestDb::new(backend).await;
    let jobs: Vec<NewJob> = (0..2).map(|_| noop_job(60_000, 5)).collect();
    let ids: Vec<Uuid> = jobs.iter().map(|job| job.id).collect();
    db.insert(&jobs).await;
    let mut launcher = Launcher::new(db.url());
    let settings = WorkerSettings {
        concurrency: 2,
        shutdown_grace_secs: Some(1),
        poll_interval_ms: Some(100),
        tenant_share: Some("off"),
        ..WorkerSettings::default()
    };

    let mut worker = launcher.spawn_worker(&settings);
    db.wait_for_jobs(&ids, Duration::from_secs(30), "the worker to start both jobs", |jobs| running(jobs).len() == 2)
        .await;

    let signalled = Instant::now();
    worker.signal(Signal::SIGTERM);
    let status = worker.wait_for_exit(Duration::from_secs(10)).await.unwrap_or_else(|| {
        panic!("the worker did not exit within 10 s of SIGTERM, with a 1 s grace period:\n{}", worker.log_tail(30))
    });
    let took = signalled.elapsed();
    assert!(status.success(), "the worker should exit 0 after SIGTERM, not {status}:\n{}", worker.log_tail(30));
    assert!(took < Duration::from_secs(6), "a 1 s grace period, yet the worker took {took:?} to exit");

    let released = db.jobs(&ids).await;
    for job in &released {
        assert_eq!(
            (job.status, job.attempts),
            (Status::Queued, 0),
            "a job still running after the grace period goes back to the queue without spending an attempt: {job:?}"
        );
    }

    // Released for immediate redelivery: a fresh worker claims them at once.
    let _fresh = launcher.spawn_worker(&settings);
    db.wait_for_jobs(&ids, Duration::from_secs(30), "a fresh worker to claim the released jobs", |jobs| {
        jobs.iter().all(|job| job.status == Status::Running && job.attempts == 1)
    })
    .await;
}
