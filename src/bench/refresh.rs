//! `longhaul bench --workload refresh`: the reservation sweep on PostgreSQL
//! against the agency simulator.
//!
//! It seeds `--reservations` active reservations (default 1,000,000) spread
//! over `--providers` simulated agencies, exactly as the simulator first
//! describes them (ETag and content hash included, as after an earlier
//! sweep). The simulator runs as a child process (`longhaul agency-sim`) on
//! loopback, changing `--change-fraction` of them per `--interval-secs`,
//! each change stamped with when it happened. Then the real runtime runs:
//! the scheduler plans a sweep every interval, and `--concurrency` shard
//! jobs run at once in this process.
//!
//! For each sweep it reports the wall time from plan to last shard, this
//! process's CPU time (user + system, from getrusage: the workers and the
//! planner; the simulator and PostgreSQL are other processes, reported
//! apart from the machine's /proc/stat) per 1M checks, and the staleness
//! percentiles the sweep recorded. The first sweep after the start covers a
//! partial interval; the next ones are the steady state.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use longhaul_jobs::{
    travel::refresh::{content_hash, SweepReport},
    Lane,
};
use longhaul_workers::{
    agency::{build, config::from_json},
    kinds::{RefreshSettings, ReservationRefresh},
    runtime::SweepConfig,
    Registry, Runtime, WorkerConfig,
};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use super::{round3, Backend, BenchDb};
use crate::cli::BenchArgs;

/// The simulator, stopped when dropped.
struct Simulator {
    child: Child,
    url: String,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Simulator {
    fn start(args: &BenchArgs, providers: &[String], per_provider: u64, anchor: DateTime<Utc>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the longhaul binary to run the simulator")?;
        let mut child = Command::new(exe)
            .args(["agency-sim", "--listen", "127.0.0.1:0", "--providers", &providers.join(",")])
            .args(["--reservations", &per_provider.to_string()])
            .args(["--change-fraction", &args.change_fraction.to_string()])
            .args(["--period-secs", &args.interval_secs.to_string()])
            .args(["--latency-ms", &args.latency_ms.to_string(), "--jitter-ms", &args.latency_ms.to_string()])
            .args(["--anchor", &anchor.to_rfc3339()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the agency simulator")?;
        let stdout = child.stdout.take().context("the simulator's stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).context("reading the simulator's address")?;
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            bail!("the simulator did not say where it listens (it printed `{}`)", line.trim());
        };
        Ok(Simulator { url: url.to_owned(), child })
    }

    /// CPU seconds the simulator has used, from /proc.
    fn cpu_seconds(&self) -> f64 {
        proc_cpu_seconds(self.child.id()).unwrap_or(0.0)
    }
}

fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// This process's CPU seconds, user and system.
fn own_cpu_seconds() -> f64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|usage| {
            let time = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            time(usage.user_time()) + time(usage.system_time())
        })
        .unwrap_or(0.0)
}

/// Seeds the reservations as the simulator first describes them.
async fn seed(
    url: &str,
    providers: &[String],
    per_provider: u64,
    users: u64,
    anchor: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    const CHUNK: u64 = 10_000;
    for (p, provider) in providers.iter().enumerate() {
        let mut start = 0;
        while start < per_provider {
            let end = (start + CHUNK).min(per_provider);
            let mut ids = Vec::new();
            let mut user_ids = Vec::new();
            let mut numbers = Vec::new();
            let mut statuses = Vec::new();
            let mut starts = Vec::new();
            let mut ends = Vec::new();
            let mut details = Vec::new();
            let mut etags = Vec::new();
            let mut hashes = Vec::new();
            for i in start..end {
                let r = longhaul_agency_sim::initial(anchor, provider, i);
                let status = r.status.as_str().parse().map_err(|err: String| anyhow::anyhow!(err))?;
                ids.push(Uuid::new_v4());
                user_ids.push(format!("u{}", (i * providers.len() as u64 + p as u64) % users));
                hashes.push(content_hash(status, r.starts_at, r.ends_at, &r.details));
                etags.push(r.etag());
                numbers.push(r.reservation_number);
                statuses.push(r.status.as_str().to_owned());
                starts.push(r.starts_at);
                ends.push(r.ends_at);
                details.push(json!({ "agency": r.details }));
            }
            sqlx::query(
                "INSERT INTO reservations (id, tenant_id, user_id, type, reservation_number, provider, status, \
                   starts_at, ends_at, source, details, agency_etag, agency_hash) \
                 SELECT id, 'bench', user_id, 'flight', number, $10, status, starts_at, ends_at, 'agency', \
                   details, etag, hash \
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], \
                             $6::timestamptz[], $7::jsonb[], $8::text[], $9::int8[]) \
                   AS s(id, user_id, number, status, starts_at, ends_at, details, etag, hash)",
            )
            .bind(&ids)
            .bind(&user_ids)
            .bind(&numbers)
            .bind(&statuses)
            .bind(&starts)
            .bind(&ends)
            .bind(&details)
            .bind(&etags)
            .bind(&hashes)
            .bind(provider)
            .execute(&mut conn)
            .await?;
            start = end;
        }
    }
    conn.execute("VACUUM ANALYZE reservations").await?;
    conn.execute("CHECKPOINT").await?;
    Ok(())
}

/// A sweep the bench saw start: its id, this process's and the simulator's
/// CPU seconds then, and the machine's busy and total jiffies.
type Started = (Uuid, f64, f64, Option<(u64, u64)>);

/// One sweep as the bench saw it.
struct Measured {
    report: SweepReport,
    worker_cpu_s: f64,
    simulator_cpu_s: f64,
    machine_busy_s: f64,
}

async fn measure(args: &BenchArgs) -> anyhow::Result<Value> {
    if args.backend != Backend::Postgres {
        bail!("the refresh bench runs on PostgreSQL (--backend postgres)");
    }
    let total = args.reservations.unwrap_or(1_000_000) as u64;
    let provider_count = args.providers.max(1);
    let providers: Vec<String> = (1..=provider_count).map(|i| format!("agency{i}")).collect();
    let per_provider = total.div_ceil(provider_count as u64);
    let anchor = Utc::now();
    let interval = Duration::from_secs(args.interval_secs.max(10));

    let db = BenchDb::create(args).await?;
    let store = longhaul_jobs::connect(db.url()).await?;
    store.migrate().await?;
    let simulator = Simulator::start(args, &providers, per_provider, anchor)?;
    eprintln!("seeding {} reservations over {} agencies…", per_provider * provider_count as u64, provider_count);
    let seeding = Instant::now();
    seed(db.url(), &providers, per_provider, (total / 10).max(1), anchor).await?;
    let seed_s = seeding.elapsed().as_secs_f64();

    let agencies = json!({
        "providers": providers.iter().map(|name| json!({
            "name": name,
            "base_url": format!("{}/{name}", simulator.url),
            "batch_path": "/reservations/batch",
            "max_batch": 100,
            "rate_per_sec": 100_000.0,
            "concurrency": 16,
            "timeout_ms": 10_000,
        })).collect::<Vec<_>>()
    });
    let agencies = build(&from_json(&agencies.to_string())?)?;
    let mut registry = Registry::default();
    registry.register(ReservationRefresh::new(RefreshSettings { agencies, ..RefreshSettings::default() }));
    let config = WorkerConfig {
        lanes: vec![(Lane::Refresh, args.shard_jobs.clamp(1, 64))],
        reap_interval: Duration::from_millis(250),
        sweep: Some(SweepConfig { interval, shard_size: args.shard_size.max(1) }),
        ..WorkerConfig::default()
    };
    let runtime = Runtime::start(store.clone(), registry, config);

    let mut measured: Vec<Measured> = Vec::new();
    let mut current: Option<Started> = None;
    let deadline = Instant::now() + interval * (args.sweeps as u32 + 1) + Duration::from_secs(120);
    while measured.len() < args.sweeps.max(1) {
        if Instant::now() > deadline {
            bail!("the sweeps did not finish in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Newest first. The one measured is looked for among the last few:
        // a sweep started just before a boundary is still running when the
        // next one starts (which then skips the shards still in flight).
        let recent = store.sweeps(8).await?;
        match &current {
            None => {
                if let Some(latest) = recent.first().filter(|s| !measured.iter().any(|m| m.report.id == s.id)) {
                    current = Some((latest.id, own_cpu_seconds(), simulator.cpu_seconds(), super::cpu_times()));
                }
            }
            Some((id, cpu, sim_cpu, machine)) => {
                let Some(latest) = recent.into_iter().find(|s| s.id == *id && s.status == "finished") else {
                    continue;
                };
                let machine_busy_s = match (machine, super::cpu_times()) {
                    (Some((busy0, _)), Some((busy1, _))) => (busy1 - busy0) as f64 / 100.0,
                    _ => 0.0,
                };
                let m = Measured {
                    worker_cpu_s: own_cpu_seconds() - cpu,
                    simulator_cpu_s: simulator.cpu_seconds() - sim_cpu,
                    machine_busy_s,
                    report: latest,
                };
                eprintln!(
                    "sweep {}: {} checked, {} changed in {:.1} s; worker {:.2} CPU-s ({:.2} per 1M checks); staleness p50 {:?} s, p99 {:?} s",
                    measured.len() + 1,
                    m.report.checked,
                    m.report.changed,
                    m.report.duration_seconds.unwrap_or(0.0),
                    m.worker_cpu_s,
                    per_million(m.worker_cpu_s, m.report.checked),
                    m.report.staleness.p50_seconds,
                    m.report.staleness.p99_seconds,
                );
                measured.push(m);
                current = None;
            }
        }
    }
    let (notified, detected) = notification_latency(db.url()).await?;
    eprintln!(
        "change at the agency → notification in the inbox: {} notifications, p50 {} s, p99 {} s, max {} s",
        notified["count"], notified["p50_s"], notified["p99_s"], notified["max_s"]
    );
    eprintln!(
        "detected by the sweep → notification in the inbox: p50 {} s, p99 {} s, max {} s",
        detected["p50_s"], detected["p99_s"], detected["max_s"]
    );
    runtime.shutdown().await;
    drop(simulator);
    drop(store);
    db.drop_db().await?;

    let sweeps: Vec<Value> = measured
        .iter()
        .map(|m| {
            json!({
                "shards": m.report.shards,
                "checked": m.report.checked,
                "changed": m.report.changed,
                "not_modified": m.report.not_modified,
                "failed": m.report.failed,
                "wall_s": m.report.duration_seconds,
                "worker_cpu_s": round3(m.worker_cpu_s),
                "worker_cpu_s_per_1m_checks": round3(per_million(m.worker_cpu_s, m.report.checked)),
                "simulator_cpu_s": round3(m.simulator_cpu_s),
                "postgres_and_rest_cpu_s": round3((m.machine_busy_s - m.worker_cpu_s - m.simulator_cpu_s).max(0.0)),
                "staleness_count": m.report.staleness.count,
                "staleness_p50_s": m.report.staleness.p50_seconds,
                "staleness_p99_s": m.report.staleness.p99_seconds,
                "staleness_max_s": m.report.staleness.max_seconds,
            })
        })
        .collect();
    Ok(json!({
        "workload": "refresh",
        "reservations": per_provider * provider_count as u64,
        "agencies": provider_count,
        "change_fraction_per_interval": args.change_fraction,
        "interval_s": interval.as_secs(),
        "shard_size": args.shard_size,
        "concurrent_shards": args.shard_jobs.clamp(1, 64),
        "simulated_latency_ms": args.latency_ms,
        "seed_s": round3(seed_s),
        "sweeps": sweeps,
        "change_to_inbox": notified,
        "detected_to_inbox": detected,
        "cores": std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        "at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

/// How long changes took to reach their travelers' inboxes: from the
/// agency's stamp on the change (`changed_at`), and from the sweep's
/// detecting it (`detected_at`: the publisher and courier alone), to the
/// notification's creation, once the outbox has drained (the publisher's
/// courier makes the notifications, in the same runtime as the sweep).
/// Count, p50, p99 and max seconds of each, by PostgreSQL.
async fn notification_latency(url: &str) -> anyhow::Result<(Value, Value)> {
    let pool = sqlx::PgPool::connect(url).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await?;
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{left} events were still in the outbox after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let since = |stamp: &str| {
        let pool = &pool;
        let sql = format!(
            "SELECT count(*), percentile_disc(0.5) WITHIN GROUP (ORDER BY s), \
               percentile_disc(0.99) WITHIN GROUP (ORDER BY s), max(s) \
             FROM (SELECT extract(epoch FROM created_at - (data->>'{stamp}')::timestamptz)::float8 AS s \
                   FROM notifications WHERE type = 'reservation.changed' AND data->>'{stamp}' IS NOT NULL) AS x"
        );
        async move {
            let row: (i64, Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(&sql).fetch_one(pool).await?;
            anyhow::Ok(
                json!({"count": row.0, "p50_s": row.1.map(round3), "p99_s": row.2.map(round3), "max_s": row.3.map(round3)}),
            )
        }
    };
    let (changed, detected) = (since("changed_at").await?, since("detected_at").await?);
    pool.close().await;
    Ok((changed, detected))
}

fn per_million(cpu_s: f64, checks: i64) -> f64 {
    if checks <= 0 {
        return 0.0;
    }
    cpu_s * 1_000_000.0 / checks as f64
}

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let result = measure(args).await?;
    println!("{result}");
    Ok(())
}
