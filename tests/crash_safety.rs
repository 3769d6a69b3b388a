//! Crash safety of the real binary: workers killed with SIGKILL in the middle
//! of jobs. A killed worker's jobs come back when their leases expire, and no
//! job is lost or completes twice.
//!
//! Commits are counted by a trigger in the test database (see
//! `support::RawDb::install_commit_counter`), independently of the code under
//! test.

mod support;

use std::{collections::HashSet, time::Duration};

use longhaul_jobs::{testing::Backend, NewJob, Status};
use rand::{rngs::StdRng, Rng, SeedableRng};
use support::{eventually, noop_job, unfinished, Launcher, TcpProxy, TestDb, WorkerSettings};
use uuid::Uuid;

/// Short leases, so that a killed worker's jobs come back within seconds.
fn short_lease_worker(concurrency: usize) -> WorkerSettings {
    WorkerSettings {
        concurrency,
        lease_secs: Some(2),
        heartbeat_secs: Some(1),
        poll_interval_ms: Some(100),
        reap_interval_secs: Some(1),
        ..WorkerSettings::default()
    }
}

longhaul_jobs::on_every_backend!(killed_worker_job_is_redelivered_and_completes_once);
async fn killed_worker_job_is_redelivered_and_completes_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let job = noop_job(3_000, 5);
    db.insert(std::slice::from_ref(&job)).await;
    let mut launcher = Launcher::new(db.url());
    let settings = short_lease_worker(1);

    let mut first = launcher.spawn_worker(&settings);
    db.wait_for_jobs(&[job.id], Duration::from_secs(30), "the first worker to start the job", |jobs| {
        jobs[0].status == Status::Running
    })
    .await;
    first.kill();
    let orphaned = db.job(job.id).await;
    assert_eq!(
        (orphaned.status, orphaned.attempts),
        (Status::Running, 1),
        "the job should still be running its first attempt when its worker dies: {orphaned:?}"
    );

    let _second = launcher.spawn_worker(&settings);
    let done = db
        .wait_for_jobs(&[job.id], Duration::from_secs(90), "the job to be redelivered and to end", |jobs| {
            jobs[0].status.is_final()
        })
        .await
        .remove(0);

    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 2, "one attempt died with its worker, the second succeeded: {done:?}");
    let commits = db.raw.commits().await;
    assert_eq!(commits.attempts, vec![2], "exactly one completion, by the second attempt: {commits:?}");
    assert_eq!(commits.rewrites_of_succeeded, 0, "the succeeded job was written again: {commits:?}");
}

longhaul_jobs::on_every_backend!(thousand_jobs_with_random_kills_none_lost_none_twice);
async fn thousand_jobs_with_random_kills_none_lost_none_twice(backend: Backend) {
    const JOBS: usize = 1_000;
    const WORKERS: usize = 3;
    const KILLING_FOR: Duration = Duration::from_secs(15);

    let seed: u64 = rand::random();
    println!("random seed: {seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let db = TestDb::new(backend).await;
    let jobs: Vec<NewJob> = (0..JOBS).map(|_| noop_job(rng.random_range(0..=40), 50)).collect();
    let ids: HashSet<Uuid> = jobs.iter().map(|job| job.id).collect();
    db.insert(&jobs).await;

    let mut launcher = Launcher::new(db.url());
    let settings = short_lease_worker(8);
    let mut workers: Vec<_> = (0..WORKERS).map(|_| launcher.spawn_worker(&settings)).collect();

    // Start the clock once work is under way, so that kills land mid-job
    // rather than while the workers are still starting.
    eventually(Duration::from_secs(30), "the workers to claim a first job", || async {
        let counts = db.raw.status_counts().await;
        if counts.get("queued").copied().unwrap_or(0) < JOBS as i64 {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await;

    let killing_since = std::time::Instant::now();
    let mut kills = 0;
    while killing_since.elapsed() < KILLING_FOR {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..=800))).await;
        if unfinished(&db.raw.status_counts().await) == 0 {
            break;
        }
        let victim = rng.random_range(0..workers.len());
        workers[victim].kill();
        workers[victim] = launcher.spawn_worker(&settings);
        kills += 1;
    }
    println!("killed {kills} workers with SIGKILL in {:.1} s", killing_since.elapsed().as_secs_f64());

    eventually(Duration::from_secs(180), "every job to end", || async {
        let counts = db.raw.status_counts().await;
        if unfinished(&counts) == 0 {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await;

    let all = db.all_jobs().await;
    let listed: HashSet<Uuid> = all.iter().map(|job| job.id).collect();
    assert_eq!(listed, ids, "the jobs in the database are not the jobs inserted");
    let not_succeeded: Vec<_> = all.iter().filter(|job| job.status != Status::Succeeded).collect();
    assert!(
        not_succeeded.is_empty(),
        "{} jobs did not succeed, for example: {:?}",
        not_succeeded.len(),
        not_succeeded.iter().take(3).collect::<Vec<_>>()
    );

    let commits = db.raw.commits().await;
    assert_eq!(
        commits.completions, JOBS as i64,
        "every job completes exactly once: {} completions",
        commits.completions
    );
    assert_eq!(commits.distinct_jobs, JOBS as i64, "every job completes exactly once");
    assert_eq!(commits.rewrites_of_succeeded, 0, "succeeded jobs were written again");

    let retried = all.iter().filter(|job| job.attempts > 1).count();
    println!("{retried} of {JOBS} jobs needed more than one attempt");
}

/// A worker rescheduled while PostgreSQL restarts waits for it, rather than
/// exiting (and crash-looping) through the outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_starts_while_the_database_is_away_waits_for_it() {
    let db = TestDb::new(Backend::Postgres).await;
    let job = noop_job(0, 5);
    db.insert(std::slice::from_ref(&job)).await;
    let mut url = reqwest::Url::parse(db.url()).expect("a database URL");
    let target = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5432));
    let mut proxy = TcpProxy::start(&target).await;
    proxy.stop().await;
    url.set_host(Some("127.0.0.1")).expect("a host");
    url.set_port(Some(proxy.port)).expect("a port");
    let mut launcher = Launcher::new(url.as_str());
    let mut worker = launcher.spawn_worker(&short_lease_worker(1));

    eventually(Duration::from_secs(30), "the worker to say it waits for the database", || async {
        if worker.log_tail(200).contains("does not answer yet") {
            Ok(())
        } else {
            Err(worker.log_tail(10))
        }
    })
    .await;
    assert!(worker.try_exit_status().is_none(), "the worker gave up:\n{}", worker.log_tail(30));

    proxy.resume().await;
    db.wait_for_jobs(&[job.id], Duration::from_secs(60), "the waiting worker to run the job", |jobs| {
        jobs[0].status == Status::Succeeded
    })
    .await;
    drop(worker);
}
