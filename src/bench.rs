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
    process::ExitCode,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use async_trait::async_trait;
use longhaul_jobs::{store::JobFilter, DynStore, JobKind, Lane, NewJob, Scope, Status};
use longhaul_workers::{kinds::JobResult, Handler, JobContext, Registry, Runtime, WorkerConfig};
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use crate::cli::BenchArgs;

/// The real `noop` handler, counted.
struct CountedNoop {
    runs: Arc<AtomicUsize>,
}

#[async_trait]
impl Handler for CountedNoop {
    fn kind(&self) -> JobKind {
        JobKind::Noop
    }
    async fn run(&self, ctx: &JobContext) -> JobResult {
        let result = longhaul_workers::kinds::Noop.run(ctx).await;
        self.runs.fetch_add(1, Ordering::Relaxed);
        result
    }
}

/// A database that exists for one run.
pub(crate) enum BenchDb {
    Postgres { admin_url: String, name: String, url: String },
    Sqlite { _dir: tempfile::TempDir, url: String },
}

impl BenchDb {
    pub(crate) async fn create(args: &BenchArgs) -> anyhow::Result<BenchDb> {
        match args.backend.as_str() {
            "postgres" => {
                let admin_url =
                    crate::config::env("LONGHAUL_BENCH_DATABASE_URL").unwrap_or_else(|| args.database_url.clone());
                let name = format!("longhaul_bench_{}", std::process::id());
                let url = create_postgres_database(&admin_url, &name).await?;
                Ok(BenchDb::Postgres { admin_url, name, url })
            }
            "sqlite" => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                Ok(BenchDb::Sqlite { _dir: dir, url })
            }
            "sqs" => bail!("the sqs bench runs on PostgreSQL; this is a bug in `longhaul bench`"),
            other => bail!("unknown backend `{other}`; expected sqlite, postgres or sqs"),
        }
    }

    pub(crate) fn url(&self) -> &str {
        match self {
            BenchDb::Postgres { url, .. } | BenchDb::Sqlite { url, .. } => url,
        }
    }

    async fn checkpoint(&self) -> anyhow::Result<()> {
        if let BenchDb::Postgres { url, .. } = self {
            let mut conn = PgConnection::connect(url).await?;
            conn.execute("CHECKPOINT").await?;
        }
        Ok(())
    }

    pub(crate) async fn drop_db(self) -> anyhow::Result<()> {
        if let BenchDb::Postgres { admin_url, name, .. } = self {
            drop_postgres_database(&admin_url, &name).await?;
        }
        Ok(())
    }
}

/// Creates the database `name` afresh (dropping one left by an earlier run)
/// on the server of `admin_url`, and returns its URL. For the bench and the
/// chaos harness, whose databases live for one run.
pub(crate) async fn create_postgres_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {}", longhaul_jobs::store::redact_url(admin_url)))?;
    admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await?;
    Ok(replace_database(admin_url, name))
}

/// Drops the database `name` on the server of `admin_url`, connections and all.
pub(crate) async fn drop_postgres_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(admin_url).await?;
    admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
    Ok(())
}

fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let start = base.find("://").map_or(0, |i| i + 3);
    let base = base[start..].find('/').map_or(base, |slash| &base[..start + slash]);
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// Busy and total jiffies of the whole machine, from /proc/stat.
pub(crate) fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().sum();
    let idle = values.get(3)? + values.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn noop_jobs(n: usize, tenant: &str) -> Vec<NewJob> {
    (0..n).map(|_| NewJob::new(tenant, "bench", JobKind::Noop, json!({}))).collect()
}

/// `n` no-op jobs of `tenants` tenants in turn (`bench` alone for one).
fn tenants_noop_jobs(n: usize, tenants: usize) -> Vec<NewJob> {
    if tenants <= 1 {
        return noop_jobs(n, "bench");
    }
    let names: Vec<String> = (0..tenants).map(|i| format!("bench-{i}")).collect();
    (0..n).map(|i| NewJob::new(&names[i % tenants], "bench", JobKind::Noop, json!({}))).collect()
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

pub(crate) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// SQS requests counted so far in this process, by operation.
fn sqs_requests(render: &(dyn Fn() -> String + Send + Sync)) -> std::collections::BTreeMap<String, f64> {
    let mut counts = std::collections::BTreeMap::new();
    for line in render().lines() {
        let Some(rest) = line.strip_prefix("longhaul_sqs_requests_total{op=\"") else { continue };
        let Some((op, value)) = rest.split_once("\"}") else { continue };
        if let Ok(value) = value.trim().parse::<f64>() {
            counts.insert(op.to_owned(), value);
        }
    }
    counts
}

/// A fresh PostgreSQL database in dispatch mode and SQS queues of their own
/// on the local endpoint (`AWS_ENDPOINT_URL`), for one run of an SQS bench.
pub(crate) struct SqsBench {
    pub db: BenchDb,
    pub store: DynStore,
    pub queue: longhaul_jobs::queue::DynQueue,
}

impl SqsBench {
    pub(crate) async fn create(args: &BenchArgs, run: usize) -> anyhow::Result<SqsBench> {
        use longhaul_jobs::{
            queue::{create_lane_queues, sqs_client, SqsQueue},
            store::QueueMode,
        };
        let endpoint = crate::config::env("AWS_ENDPOINT_URL").context(
            "the sqs bench creates queues of its own, so it runs against a local endpoint: set AWS_ENDPOINT_URL \
             (for example to a moto_server)",
        )?;
        let postgres = BenchArgs { backend: "postgres".into(), ..args.clone() };
        let db = BenchDb::create(&postgres).await?;
        let store = longhaul_jobs::store::connect_with(db.url(), QueueMode::Dispatch).await?;
        store.migrate().await?;
        let sdk_config = aws_config_from_env().await;
        let client = sqs_client(&sdk_config);
        let prefix = format!("bench-{}-{}-{run}-", args.workload, std::process::id());
        let config = create_lane_queues(&client, &prefix, crate::config::DEFAULT_MAX_RECEIVE_COUNT)
            .await
            .with_context(|| format!("cannot create the bench queues at {endpoint}"))?;
        let queue: longhaul_jobs::queue::DynQueue = Arc::new(SqsQueue::new(store.clone(), client, config)?);
        Ok(SqsBench { db, store, queue })
    }
}

/// One SQS cost run at steady state: N no-op jobs fed in a steady flow (100
/// at a time, with at most `--sqs-backlog` waiting), dispatched, received,
/// run and acknowledged by the real runtime. Requests are counted from the
/// runtime's start until every job succeeded and the outbox is empty. (A
/// bounded backlog is also what keeps moto_server, whose receive slows down
/// with the depth of a queue, from being the thing measured.)
async fn one_sqs_run(args: &BenchArgs, run: usize) -> anyhow::Result<serde_json::Value> {
    let render = crate::telemetry::metrics().context("cannot record metrics in this process")?;
    let SqsBench { db, store, queue } = SqsBench::create(args, run).await?;

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
    let services = longhaul_workers::runtime::Services {
        store: store.clone(),
        queue,
        notifier: Arc::new(longhaul_jobs::notify::LogNotifier),
        objects: None,
    };
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
    while runs.load(Ordering::Relaxed) < args.jobs || pending(&store).await? > 0 || store.dispatch_backlog().await? > 0
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

/// The standard AWS configuration, through the jobs crate's SDK.
pub(crate) async fn aws_config_from_env() -> longhaul_jobs::queue::SdkConfig {
    longhaul_jobs::queue::load_sdk_config().await
}

/// Timings of one report job, built `runs` times by the real runtime (one
/// `reports` slot) into a local object directory.
struct ReportTimings {
    /// Submit to success, sorted.
    total_ms: Vec<f64>,
    /// The handler's own time (started to finished), sorted.
    handler_ms: Vec<f64>,
    /// The last run's result.
    result: serde_json::Value,
}

async fn time_reports(
    store: &DynStore,
    (tenant, user): (&str, &str),
    payload: &serde_json::Value,
    runs: usize,
) -> anyhow::Result<ReportTimings> {
    let objects_dir = tempfile::tempdir()?;
    let objects = longhaul_jobs::objects::connect(&format!("file://{}", objects_dir.path().display())).await?;
    let services = longhaul_workers::runtime::Services {
        store: store.clone(),
        queue: Arc::new(longhaul_jobs::queue::EmbeddedQueue::new(store.clone())),
        notifier: Arc::new(longhaul_jobs::notify::LogNotifier),
        objects: Some(objects),
    };
    let config = WorkerConfig {
        lanes: vec![(Lane::Reports, 1)],
        scheduler: false,
        publisher: false,
        poll_interval: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let runtime = Runtime::start_with(services, Registry::with_defaults(), config);
    let mut timings = ReportTimings { total_ms: Vec::new(), handler_ms: Vec::new(), result: json!(null) };
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let job = match store.insert_job(NewJob::new(tenant, user, JobKind::ReportBuild, payload.clone())).await? {
            longhaul_jobs::store::InsertOutcome::Created(job) => job,
            other => bail!("the report job was not created: {other:?}"),
        };
        let done = loop {
            let now = store.get_job(&Scope::Platform, job.id).await?.context("the report job vanished")?;
            if now.status.is_final() {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        timings.total_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        if done.status != Status::Succeeded {
            bail!("the report failed: {}", done.error.unwrap_or_default());
        }
        if let (Some(from), Some(to)) = (done.started_at, done.finished_at) {
            timings.handler_ms.push((to - from).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
        timings.result = done.result.unwrap_or_default();
    }
    runtime.shutdown().await;
    timings.total_ms.sort_by(f64::total_cmp);
    timings.handler_ms.sort_by(f64::total_cmp);
    Ok(timings)
}

/// The year report of one user with `--reservations` reservations (the
/// sample year, repeated two hours later each time), built `--runs` times,
/// in all three formats. Reports the time from submit to success, and the
/// handler's own time.
async fn year_summary_bench(args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    use longhaul_jobs::travel::ReservationSource;
    let count = args.reservations.unwrap_or(5_000);
    let db = BenchDb::create(args).await?;
    let store = longhaul_jobs::connect(db.url()).await?;
    store.migrate().await?;
    let sample = longhaul_jobs::travel::sample_year()?;
    let reservations: Vec<_> = (0..count)
        .map(|i| {
            let mut fields = sample[i % sample.len()].clone();
            let shift = chrono::Duration::hours(2 * (i / sample.len()) as i64);
            fields.reservation_number = format!("{}-{i}", fields.reservation_number);
            fields.starts_at += shift;
            fields.ends_at = fields.ends_at.map(|t| t + shift);
            fields
        })
        .collect();
    store.insert_reservations("bench", "traveller", ReservationSource::Manual, &reservations).await?;
    let payload = json!({"report": "year_summary", "year": 2026, "formats": ["pdf", "json", "csv"]});
    let timings = time_reports(&store, ("bench", "traveller"), &payload, args.runs).await?;
    drop(store);
    db.drop_db().await?;
    Ok(json!({
        "peer": "longhaul",
        "workload": "year_summary",
        "backend": args.backend,
        "reservations": count,
        "formats": ["pdf", "json", "csv"],
        "runs": args.runs.max(1),
        "submit_to_success_p50_ms": round3(percentile(&timings.total_ms, 50.0)),
        "submit_to_success_p95_ms": round3(percentile(&timings.total_ms, 95.0)),
        "handler_p50_ms": round3(percentile(&timings.handler_ms, 50.0)),
        "handler_p95_ms": round3(percentile(&timings.handler_ms, 95.0)),
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

/// One tenant's October 2026 with `--reservations` reservations (default
/// 1,000,000) across `--vendors` vendors, written straight into PostgreSQL
/// with `generate_series`: 2% cancelled; a tenth changed once by their
/// agency, a hundredth twice, and a hundredth edited by their users (which
/// do not count), with each reservation's count of vendor changes set from
/// that history. Beside them, noise the report must skip: another tenant's
/// October and the tenant's September, a tenth of the month each. Then the
/// admin's `vendor_analytics` report is built `--runs` times in all three
/// formats; the figures are checked against the seed.
async fn vendor_analytics_bench(args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    if args.backend != "postgres" {
        bail!("the vendor-analytics bench runs on PostgreSQL (--backend postgres)");
    }
    let count = args.reservations.unwrap_or(1_000_000);
    let vendors = args.vendors.max(1);
    let db = BenchDb::create(args).await?;
    let store = longhaul_jobs::connect(db.url()).await?;
    store.migrate().await?;
    let seeding = Instant::now();
    let mut conn = PgConnection::connect(db.url()).await?;
    let seed = |tenant: &'static str, month: &'static str, rows: usize| {
        format!(
            "INSERT INTO reservations (id, tenant_id, user_id, type, reservation_number, provider, status, \
               starts_at, source, city, country) \
             SELECT gen_random_uuid(), '{tenant}', 'user-' || (g % 20000), \
               (ARRAY['flight', 'lodging', 'rental_car', 'train', 'bus', 'event', 'food'])[1 + (g % {vendors}) % 7], \
               'R' || g, 'Vendor ' || lpad((g % {vendors})::text, 5, '0'), \
               CASE WHEN g % 50 = 0 THEN 'cancelled' ELSE 'confirmed' END, \
               timestamptz '{month}-01 00:00:00+00' + (g % 2592000) * interval '1 second', 'agency', 'Lisbon', 'PT' \
             FROM generate_series(0, {rows} - 1) AS g"
        )
    };
    conn.execute(seed("bench", "2026-10", count).as_str()).await?;
    conn.execute(seed("bench", "2026-09", count / 10).as_str()).await?;
    conn.execute(seed("other", "2026-10", count / 10).as_str()).await?;
    conn.execute(
        "INSERT INTO reservation_changes (tenant_id, reservation_id, source, changes, changed_at, detected_at) \
         SELECT r.tenant_id, r.id, c.source, '{\"starts_at\": {}}', r.starts_at - interval '1 day', \
           r.starts_at - interval '23 hours' \
         FROM reservations r \
         CROSS JOIN LATERAL (VALUES \
           ('agency', substr(r.reservation_number, 2)::int8 % 10 = 0), \
           ('agency', substr(r.reservation_number, 2)::int8 % 100 = 0), \
           ('manual', substr(r.reservation_number, 2)::int8 % 100 = 5)) AS c(source, applies) \
         WHERE c.applies",
    )
    .await?;
    // What `update_reservation` keeps beside the history, in one statement here.
    conn.execute(
        "UPDATE reservations r SET vendor_changes = c.n \
         FROM (SELECT reservation_id, count(*) AS n FROM reservation_changes \
               WHERE source IN ('agency', 'email') GROUP BY reservation_id) AS c \
         WHERE r.id = c.reservation_id",
    )
    .await?;
    conn.execute("VACUUM ANALYZE reservations").await?;
    conn.execute("VACUUM ANALYZE reservation_changes").await?;
    let seed_s = seeding.elapsed().as_secs_f64();
    let expected = |every: usize| count.div_ceil(every) as i64;

    // The query alone, then the whole job.
    let mut query_ms = Vec::new();
    let mut figures = None;
    for _ in 0..args.runs.max(1) {
        let started = Instant::now();
        figures = Some(store.vendor_analytics("bench", "2026-10").await?);
        query_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    query_ms.sort_by(f64::total_cmp);
    let figures = figures.context("no run")?;
    let want = (count as i64, expected(50), expected(10), expected(10) + expected(100));
    let got = (figures.reservations, figures.cancelled, figures.changed, figures.changes);
    if got != want {
        bail!("the report counted (reservations, cancelled, changed, changes) = {got:?}, but the seed has {want:?}");
    }
    let payload = json!({"report": "vendor_analytics", "month": "2026-10", "formats": ["pdf", "json", "csv"]});
    let timings = time_reports(&store, ("bench", "admin"), &payload, args.runs).await?;
    drop(store);
    db.drop_db().await?;
    Ok(json!({
        "peer": "longhaul",
        "workload": "vendor_analytics",
        "backend": args.backend,
        "reservations": count,
        "vendor_rows": figures.rows.len(),
        "changes": figures.changes,
        "formats": ["pdf", "json", "csv"],
        "runs": args.runs.max(1),
        "seed_s": round3(seed_s),
        "query_p50_ms": round3(percentile(&query_ms, 50.0)),
        "submit_to_success_p50_ms": round3(percentile(&timings.total_ms, 50.0)),
        "submit_to_success_max_ms": round3(timings.total_ms.last().copied().unwrap_or(0.0)),
        "handler_p50_ms": round3(percentile(&timings.handler_ms, 50.0)),
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.workload.as_str() {
        "queue" => {}
        "year-summary" => {
            let result = year_summary_bench(&args).await?;
            eprintln!(
                "longhaul year_summary ({} reservations, {}, pdf+json+csv): submit to success p50 {} ms, p95 {} ms; handler p50 {} ms",
                result["reservations"], args.backend, result["submit_to_success_p50_ms"], result["submit_to_success_p95_ms"], result["handler_p50_ms"],
            );
            println!("{result}");
            return Ok(ExitCode::SUCCESS);
        }
        "vendor-analytics" => {
            let result = vendor_analytics_bench(&args).await?;
            eprintln!(
                "longhaul vendor_analytics ({} reservations in the month, {} vendor rows, {}, pdf+json+csv): \
                 query p50 {} ms; submit to success p50 {} ms, max {} ms (seeded in {} s)",
                result["reservations"],
                result["vendor_rows"],
                args.backend,
                result["query_p50_ms"],
                result["submit_to_success_p50_ms"],
                result["submit_to_success_max_ms"],
                result["seed_s"],
            );
            println!("{result}");
            return Ok(ExitCode::SUCCESS);
        }
        "fairness" => {
            for run in 1..=args.runs.max(1) {
                let result = crate::bench_fairness::run(&args, run).await?;
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
            return Ok(ExitCode::SUCCESS);
        }
        "refresh" => {
            let result = crate::bench_refresh::run(&args).await?;
            println!("{result}");
            return Ok(ExitCode::SUCCESS);
        }
        "email" => {
            let result = crate::bench_email::run(&args).await?;
            eprintln!(
                "longhaul email: parse+extract {} messages/s ({} µs/message, {} MiB/s) over {} messages; idle poll: {}",
                result["parse_extract_messages_per_s"],
                result["parse_extract_us_per_message"],
                result["parse_extract_mib_per_s"],
                result["corpus_messages"],
                result["imap"]["idle_poll"]["imap_commands"],
            );
            println!("{result}");
            return Ok(ExitCode::SUCCESS);
        }
        #[cfg(not(feature = "video"))]
        "video" => bail!("this longhaul was built without the `video` feature"),
        #[cfg(feature = "video")]
        "video" => {
            let result = crate::bench_video::run(&args).await?;
            eprintln!(
                "longhaul video ({} photos, {}, {} fps, {} frames): longhaul {} s, ffmpeg CLI {} s, ratio {}; peak RSS longhaul {} MiB, ffmpeg CLI {} MiB",
                result["photos"],
                result["aspect"],
                result["fps"],
                result["frames"],
                result["longhaul_s"],
                result["ffmpeg_cli_s"],
                result["ratio"],
                result["longhaul_peak_rss_mib"],
                result["ffmpeg_cli_peak_rss_mib"],
            );
            println!("{result}");
            return Ok(ExitCode::SUCCESS);
        }
        other => {
            bail!("unknown workload `{other}`; expected queue, year-summary, vendor-analytics, video, email, refresh or fairness")
        }
    }
    if args.backend == "sqs" {
        for run in 1..=args.runs.max(1) {
            let result = one_sqs_run(&args, run).await?;
            eprintln!(
                "longhaul sqs run {run}: {} SQS requests per job ({} jobs, drain {} jobs/s): {}",
                result["sqs_requests_per_job"],
                args.jobs,
                result["drain_jobs_per_s"],
                result["sqs_requests_per_job_by_op"],
            );
            println!("{result}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    for run in 1..=args.runs.max(1) {
        let result = one_run(&args, run).await?;
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
    Ok(ExitCode::SUCCESS)
}
