//! `longhaul bench`: the queue benchmark, shipped with the product (like
//! `river bench`), measured the way `shared/bench-peers` measures the peers.
//!
//! One run: a fresh database; N no-op jobs bulk-inserted (timed: enqueue
//! jobs/s); on PostgreSQL a CHECKPOINT (not timed); then the drain, timed from
//! the moment the real worker runtime starts until the database shows nothing
//! pending, checked only after the handler has run N times. Job rows are kept:
//! the status API needs them. Then pickup latency: jobs trickled in while the
//! workers idle, `started_at - created_at` as recorded by the database.
//!
//! `--backend sqs` measures cost instead: the jobs go through the SQS queue on
//! a local endpoint (`AWS_ENDPOINT_URL`, queues of its own), and the run
//! reports SQS requests per job, by operation, from
//! `longhaul_sqs_requests_total`.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use async_trait::async_trait;
use longhaul_jobs::{kind::NoopPayload, store::JobFilter, DynStore, JobKind, Lane, NewJob, Scope, Status};
use longhaul_workers::{Handler, JobContext, JobResult, Registry, Runtime, WorkerConfig};
use serde_json::json;

use super::{cpu_times, percentile, round3, Backend, BenchDb, SqsBench};
use crate::cli::BenchArgs;

/// The real `noop` handler, counted.
struct CountedNoop {
    runs: Arc<AtomicUsize>,
}

#[async_trait]
impl Handler for CountedNoop {
    type Kind = longhaul_jobs::kind::Noop;
    async fn run(&self, ctx: &JobContext, payload: NoopPayload) -> JobResult {
        let result = Handler::run(&longhaul_workers::kinds::Noop, ctx, payload).await;
        self.runs.fetch_add(1, Ordering::Relaxed);
        result
    }
}

fn noop_jobs(n: usize, tenant: &str) -> Vec<NewJob> {
    (0..n).map(|_| NewJob::new(tenant, "bench", JobKind::NOOP, json!({}))).collect()
}

/// `n` no-op jobs of `tenants` tenants in turn (`bench` alone for one).
fn tenants_noop_jobs(n: usize, tenants: usize) -> Vec<NewJob> {
    if tenants <= 1 {
        return noop_jobs(n, "bench");
    }
    let names: Vec<String> = (0..tenants).map(|i| format!("bench-{i}")).collect();
    (0..n).map(|i| NewJob::new(&names[i % tenants], "bench", JobKind::NOOP, json!({}))).collect()
}

fn runtime_config(concurrency: usize, claim_batch: usize) -> WorkerConfig {
    WorkerConfig {
        lanes: vec![(Lane::Default, concurrency)],
        claim_batch: claim_batch.max(1),
        claimers: 2,
        scheduler: false,
        publisher: false,
        poll_interval: Duration::from_millis(100),
        ..WorkerConfig::default()
    }
}

async fn pending(store: &DynStore) -> anyhow::Result<i64> {
    let stats = store.lane_stats(&Scope::Platform).await?;
    Ok(stats.iter().filter(|s| s.lane == Lane::Default).map(|s| s.depth + s.in_flight + s.delayed).sum())
}

async fn one_run(args: &BenchArgs, run: usize) -> anyhow::Result<serde_json::Value> {
    let db = BenchDb::create(args).await?;
    let store = longhaul_jobs::connect(db.url()).await?;
    store.migrate().await?;

    // Enqueue, timed on its own.
    if args.tenant_share.is_some_and(|share| !(share > 0.0 && share <= 1.0)) {
        bail!("--tenant-share must be above 0 and at most 1");
    }
    let jobs = tenants_noop_jobs(args.jobs, args.tenants);
    let started = Instant::now();
    for chunk in jobs.chunks(args.insert_batch.max(1)) {
        store.insert_jobs(chunk).await?;
    }
    let enqueue_s = started.elapsed().as_secs_f64();
    drop(jobs);
    db.checkpoint().await?;

    // Drain, timed from the runtime's start to an empty queue.
    let runs = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::default();
    registry.register(CountedNoop { runs: runs.clone() });
    let cpu_before = cpu_times();
    let started = Instant::now();
    let config = WorkerConfig { tenant_share: args.tenant_share, ..runtime_config(args.concurrency, args.claim_batch) };
    let runtime = Runtime::start(store.clone(), registry, config);
    while runs.load(Ordering::Relaxed) < args.jobs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while pending(&store).await? > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_s = started.elapsed().as_secs_f64();
    let cpu_busy_pct = match (cpu_before, cpu_times()) {
        (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
            100.0 * (busy1 - busy0) as f64 / (total1 - total0) as f64
        }
        _ => f64::NAN,
    };
    let succeeded = store
        .list_jobs(&Scope::Platform, &JobFilter { status: Some(Status::Succeeded), limit: 1, ..JobFilter::default() })
        .await?
        .len();
    if succeeded == 0 && args.jobs > 0 {
        bail!("the drain finished without a succeeded job row");
    }

    // Pickup latency: a trickle of small batches into an idle, running pool.
    let batch = 5;
    for _ in 0..args.latency_jobs.div_ceil(batch) {
        store.insert_jobs(&noop_jobs(batch, "latency")).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let target = args.jobs + args.latency_jobs.div_ceil(batch) * batch;
    let deadline = Instant::now() + Duration::from_secs(60);
    while runs.load(Ordering::Relaxed) < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    runtime.shutdown().await;
    let scope = Scope::Tenant { tenant_id: "latency".into() };
    let finished = store
        .list_jobs(&scope, &JobFilter { limit: u32::try_from(target).unwrap_or(u32::MAX), ..JobFilter::default() })
        .await?;
    let mut pickup_ms: Vec<f64> = finished
        .iter()
        .filter_map(|job| {
            job.started_at.map(|started| (started - job.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        })
        .collect();
    pickup_ms.sort_by(f64::total_cmp);
    drop(store);
    db.drop_db().await?;

    Ok(json!({
        "peer": "longhaul",
        "version": env!("CARGO_PKG_VERSION"),
        "backend": args.backend,
        "config": queue_config_name(args),
        "run": run,
        "n": args.jobs,
        "enqueue_batch": args.insert_batch,
        "concurrency": args.concurrency,
        "claim_batch": args.claim_batch,
        "tenants": args.tenants.max(1),
        "tenant_share": args.tenant_share,
        "enqueue_s": round3(enqueue_s),
        "enqueue_jobs_per_s": (args.jobs as f64 / enqueue_s).round(),
        "drain_s": round3(drain_s),
        "drain_jobs_per_s": (args.jobs as f64 / drain_s).round(),
        "drain_machine_cpu_busy_pct": (cpu_busy_pct * 10.0).round() / 10.0,
        "pickup_samples": pickup_ms.len(),
        "pickup_p50_ms": round3(percentile(&pickup_ms, 50.0)),
        "pickup_p99_ms": round3(percentile(&pickup_ms, 99.0)),
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

/// `c4000-b1000-postgres`, with `-t8-s0.5` for 8 tenants at a share of half.
fn queue_config_name(args: &BenchArgs) -> String {
    let mut name = format!("c{}-b{}-{}", args.concurrency, args.claim_batch, args.backend);
    if args.tenants > 1 {
        name.push_str(&format!("-t{}", args.tenants));
    }
    if let Some(share) = args.tenant_share {
        name.push_str(&format!("-s{share}"));
    }
    name
}

/// SQS requests counted so far in this process, by operation.
fn sqs_requests(render: &(dyn Fn() -> String + Send + Sync)) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for line in render().lines() {
        let Some(rest) = line.strip_prefix("longhaul_sqs_requests_total{op=\"") else { continue };
        let Some((op, value)) = rest.split_once("\"}") else { continue };
        if let Ok(value) = value.trim().parse::<f64>() {
            counts.insert(op.to_owned(), value);
        }
    }
    counts
}

/// One SQS cost run at steady state: N no-op jobs fed in a steady flow (100
/// at a time, with at most `--sqs-backlog` waiting), dispatched, received,
/// run and acknowledged by the real runtime. Requests are counted from the
/// runtime's start until every job succeeded and the outbox is empty. (A
/// bounded backlog is also what keeps moto_server, whose receive slows down
/// with the depth of a queue, from being the thing measured.)
async fn one_sqs_run(args: &BenchArgs, run: usize) -> anyhow::Result<serde_json::Value> {
    let render = crate::telemetry::metrics().context("cannot record metrics in this process")?;
    let SqsBench { db, store, outbox, queue } = SqsBench::create(args, run).await?;

    let runs = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::default();
    registry.register(CountedNoop { runs: runs.clone() });
    let before = sqs_requests(render.as_ref());
    let started = Instant::now();
    let config = WorkerConfig {
        claimers: args.sqs_receivers.max(1),
        dispatcher: true,
        ..runtime_config(args.concurrency, args.claim_batch)
    };
    let services = longhaul_workers::runtime::Services::embedded(store.clone()).with_queue(queue);
    let runtime = Runtime::start_with(services, registry, config);
    let deadline = Instant::now() + Duration::from_secs(1_800);
    let mut fed = 0;
    while fed < args.jobs {
        if fed - runs.load(Ordering::Relaxed).min(fed) < args.sqs_backlog.max(100) {
            let chunk = (args.jobs - fed).min(100);
            store.insert_jobs(&noop_jobs(chunk, "bench")).await?;
            fed += chunk;
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if Instant::now() > deadline {
            bail!(
                "the SQS drain did not finish within 30 minutes ({} of {} jobs ran)",
                runs.load(Ordering::Relaxed),
                args.jobs
            );
        }
    }
    while runs.load(Ordering::Relaxed) < args.jobs || pending(&store).await? > 0 || outbox.dispatch_backlog().await? > 0
    {
        if Instant::now() > deadline {
            bail!(
                "the SQS drain did not finish within 30 minutes ({} of {} jobs ran)",
                runs.load(Ordering::Relaxed),
                args.jobs
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_s = started.elapsed().as_secs_f64();
    let after = sqs_requests(render.as_ref());
    runtime.shutdown().await;
    drop(store);
    db.drop_db().await?;

    let per_job: serde_json::Map<String, serde_json::Value> = after
        .iter()
        .filter(|(op, _)| !op.starts_with("create_queue"))
        .map(|(op, total)| {
            let requests = total - before.get(op).copied().unwrap_or(0.0);
            (op.clone(), json!(round3(requests / args.jobs.max(1) as f64)))
        })
        .collect();
    let requests: f64 = after
        .iter()
        .filter(|(op, _)| !op.starts_with("create_queue"))
        .map(|(op, total)| total - before.get(op).copied().unwrap_or(0.0))
        .sum();
    Ok(json!({
        "peer": "longhaul",
        "version": env!("CARGO_PKG_VERSION"),
        "backend": "sqs",
        "config": format!("c{}-r{}-backlog{}-sqs", args.concurrency, args.sqs_receivers, args.sqs_backlog),
        "run": run,
        "n": args.jobs,
        "drain_s": round3(drain_s),
        "drain_jobs_per_s": (args.jobs as f64 / drain_s).round(),
        "sqs_requests": requests,
        "sqs_requests_per_job": round3(requests / args.jobs.max(1) as f64),
        "sqs_requests_per_job_by_op": per_job,
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.backend == Backend::Sqs {
        for run in 1..=args.runs.max(1) {
            let result = one_sqs_run(args, run).await?;
            eprintln!(
                "longhaul sqs run {run}: {} SQS requests per job ({} jobs, drain {} jobs/s): {}",
                result["sqs_requests_per_job"],
                args.jobs,
                result["drain_jobs_per_s"],
                result["sqs_requests_per_job_by_op"],
            );
            println!("{result}");
        }
        return Ok(());
    }
    for run in 1..=args.runs.max(1) {
        let result = one_run(args, run).await?;
        eprintln!(
            "longhaul {} run {run}: enqueue {} jobs/s, drain {} jobs/s ({} jobs, {}% CPU), pickup p50 {} ms, p99 {} ms",
            args.backend,
            result["enqueue_jobs_per_s"],
            result["drain_jobs_per_s"],
            args.jobs,
            result["drain_machine_cpu_busy_pct"],
            result["pickup_p50_ms"],
            result["pickup_p99_ms"],
        );
        println!("{result}");
    }
    Ok(())
}
