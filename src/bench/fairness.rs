//! `longhaul bench --workload fairness`: one tenant's backlog must not
//! starve another tenant.
//!
//! Tenant A has `--backlog-jobs` jobs queued in the `default` lane and the
//! lane is draining them (`--slots` slots, each job `--job-ms` long) when
//! tenant B submits `--late-jobs` jobs, one at a time, as a person would.
//! The run reports how far A's backlog had got when B's last job started
//! (the fairness tests require under a quarter), B's pickup (`started_at -
//! created_at`, as the database recorded them), and the most jobs A ran at
//! once against its cap (the binary's default share of the lane's slots).
//! On `--backend sqs` the jobs go through SQS queues of their own on the
//! local endpoint (`AWS_ENDPOINT_URL`).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use async_trait::async_trait;
use longhaul_jobs::{kind::NoopPayload, store::JobFilter, DynStore, JobKind, Lane, NewJob, Scope};
use longhaul_workers::{runtime::Services, Handler, JobContext, JobResult, Registry, Runtime, WorkerConfig};
use serde_json::{json, Value};

use super::{percentile, round3, Backend, BenchDb, SqsBench};
use crate::cli::BenchArgs;

const TENANT_A: &str = "tenant-a";
const TENANT_B: &str = "tenant-b";

/// What the handler saw: jobs running per tenant now and at most, A's
/// starts, and how many of A's had started when each of B's did.
#[derive(Default)]
struct Watch {
    running: Mutex<HashMap<String, usize>>,
    a_max_running: AtomicUsize,
    a_started: AtomicUsize,
    b_started: AtomicUsize,
    a_started_when_b_done: AtomicUsize,
}

/// The real `noop` handler (it sleeps `sleep_ms`), watched.
struct Watched {
    watch: Arc<Watch>,
}

#[async_trait]
impl Handler for Watched {
    type Kind = longhaul_jobs::kind::Noop;

    async fn run(&self, ctx: &JobContext, payload: NoopPayload) -> JobResult {
        let tenant = ctx.job.tenant_id.clone();
        let now_running = {
            let mut running = self.watch.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = running.entry(tenant.clone()).or_default();
            *count += 1;
            *count
        };
        if tenant == TENANT_A {
            self.watch.a_started.fetch_add(1, Ordering::SeqCst);
            self.watch.a_max_running.fetch_max(now_running, Ordering::SeqCst);
        } else {
            let a_started = self.watch.a_started.load(Ordering::SeqCst);
            self.watch.a_started_when_b_done.fetch_max(a_started, Ordering::SeqCst);
            self.watch.b_started.fetch_add(1, Ordering::SeqCst);
        }
        let result = Handler::run(&longhaul_workers::kinds::Noop, ctx, payload).await;
        let mut running = self.watch.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = running.get_mut(&tenant) {
            *count = count.saturating_sub(1);
        }
        result
    }
}

fn job(tenant: &str, job_ms: u64) -> NewJob {
    NewJob::new(tenant, "bench", JobKind::NOOP, json!({ "sleep_ms": job_ms }))
}

/// Polls `done` every 5 ms until it holds, for at most `limit`.
async fn wait_until(limit: Duration, what: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            bail!("gave up after {} s waiting for {what}", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

async fn one_run(args: &BenchArgs, run: usize) -> anyhow::Result<Value> {
    let (db, store, queue) = match args.backend {
        Backend::Sqs => {
            let SqsBench { db, store, queue, .. } = SqsBench::create(args, run).await?;
            (db, store, Some(queue))
        }
        _ => {
            let db = BenchDb::create(args).await?;
            let store = longhaul_jobs::connect(db.url()).await?;
            store.migrate().await?;
            (db, store, None)
        }
    };
    let result = measure(args, &store, queue).await;
    drop(store);
    db.drop_db().await?;
    result
}

async fn measure(
    args: &BenchArgs,
    store: &DynStore,
    queue: Option<longhaul_jobs::queue::DynQueue>,
) -> anyhow::Result<Value> {
    let backlog: Vec<NewJob> = (0..args.backlog_jobs).map(|_| job(TENANT_A, args.job_ms)).collect();
    for chunk in backlog.chunks(10_000) {
        store.insert_jobs(chunk).await?;
    }

    let watch = Arc::new(Watch::default());
    let mut registry = Registry::default();
    registry.register(Watched { watch: watch.clone() });
    let config = WorkerConfig {
        lanes: vec![(Lane::Default, args.slots.max(1))],
        scheduler: false,
        publisher: false,
        dispatcher: queue.is_some(),
        // On SQS, receive loops side by side (`--sqs-receivers`), as in the
        // SQS bench: each long-polls for up to 10 messages.
        claimers: if queue.is_some() { args.sqs_receivers.max(1) } else { 1 },
        poll_interval: Duration::from_millis(100),
        tenant_share: Some(crate::config::DEFAULT_TENANT_SHARE),
        ..WorkerConfig::default()
    };
    let tenant_cap = config.tenant_cap(args.slots.max(1));
    let services = match queue {
        Some(queue) => Services::embedded(store.clone()).with_queue(queue),
        None => Services::embedded(store.clone()),
    };
    let runtime = Runtime::start_with(services, registry, config);

    // B arrives while A's backlog drains, not before it started.
    let warm = (args.backlog_jobs / 20).clamp(1, 1_000);
    let measured = async {
        wait_until(Duration::from_secs(600), "tenant A's backlog to start draining", || {
            watch.a_started.load(Ordering::SeqCst) >= warm
        })
        .await?;
        for _ in 0..args.late_jobs {
            store.insert_job(job(TENANT_B, args.job_ms)).await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        wait_until(Duration::from_secs(600), "tenant B's jobs to start", || {
            watch.b_started.load(Ordering::SeqCst) >= args.late_jobs
        })
        .await
    }
    .await;
    runtime.shutdown().await;
    measured?;

    let late = store
        .list_jobs(
            &Scope::Tenant { tenant_id: TENANT_B.into() },
            &JobFilter { limit: u32::try_from(args.late_jobs).unwrap_or(u32::MAX).max(1), ..JobFilter::default() },
        )
        .await?;
    let mut pickup_ms: Vec<f64> = late
        .iter()
        .filter_map(|job| {
            job.started_at.map(|started| (started - job.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        })
        .collect();
    if pickup_ms.len() < args.late_jobs {
        bail!("only {} of tenant B's {} jobs recorded a start", pickup_ms.len(), args.late_jobs);
    }
    pickup_ms.sort_by(f64::total_cmp);
    let a_done = watch.a_started_when_b_done.load(Ordering::SeqCst);
    let cap = tenant_cap.context("the fairness bench runs with a tenant cap")?;
    Ok(json!({
        "peer": "longhaul",
        "workload": "fairness",
        "version": env!("CARGO_PKG_VERSION"),
        "backend": args.backend,
        "backlog_jobs": args.backlog_jobs,
        "late_jobs": args.late_jobs,
        "slots": args.slots,
        "job_ms": args.job_ms,
        "tenant_cap": cap,
        "a_started_when_b_done": a_done,
        "a_done_pct_when_b_done": round3(100.0 * a_done as f64 / args.backlog_jobs.max(1) as f64),
        "a_max_running": watch.a_max_running.load(Ordering::SeqCst),
        "b_pickup_p50_ms": round3(percentile(&pickup_ms, 50.0)),
        "b_pickup_p99_ms": round3(percentile(&pickup_ms, 99.0)),
        "b_pickup_max_ms": round3(pickup_ms.last().copied().unwrap_or(0.0)),
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    for run in 1..=args.runs.max(1) {
        let result = one_run(args, run).await?;
        eprintln!(
            "longhaul fairness {} run {run}: tenant B's {} jobs all started when tenant A had started {} of \
             its {} ({}%); B's pickup p50 {} ms, p99 {} ms; A ran at most {} at once (cap {} of {} slots)",
            args.backend,
            result["late_jobs"],
            result["a_started_when_b_done"],
            result["backlog_jobs"],
            result["a_done_pct_when_b_done"],
            result["b_pickup_p50_ms"],
            result["b_pickup_p99_ms"],
            result["a_max_running"],
            result["tenant_cap"],
            result["slots"],
        );
        println!("{result}");
    }
    Ok(())
}
