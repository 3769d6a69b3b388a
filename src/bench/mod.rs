//! `longhaul bench`: the benchmarks, shipped with the product (like `river
//! bench`) and measured the way `shared/bench-peers` measures the peers. One
//! module per workload; each prints a line for people on stderr and its
//! figures as one JSON object per run on stdout.

mod db;
mod email;
mod events;
mod fairness;
mod import;
mod push;
mod queue;
mod refresh;
mod vendor_analytics;
#[cfg(feature = "video")]
mod video;
mod year_summary;

use std::{fmt, process::ExitCode};

use clap::ValueEnum;
use serde::Serialize;

use crate::cli::BenchArgs;

pub(crate) use db::{create_postgres_database, drop_postgres_database};
use db::{BenchDb, SqsBench};

/// What `longhaul bench` measures (`--workload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// No-op jobs through the queue: enqueue and drain rates, pickup latency;
    /// on `--backend sqs`, SQS requests per job.
    Queue,
    /// The year report of one user with `--reservations` reservations.
    YearSummary,
    /// A tenant's month of `--reservations` reservations (PostgreSQL only).
    VendorAnalytics,
    /// A film of `--photos` photos against the same film made by the ffmpeg CLI.
    Video,
    /// Parse-and-extract throughput over a corpus; with `--imap`, the
    /// commands of an idle poll.
    Email,
    /// Reservation sweeps against the agency simulator (PostgreSQL only).
    Refresh,
    /// A late tenant's pickup while another tenant's backlog drains.
    Fairness,
    /// Analytics events: `--events` through `POST /v1/events` in batches of
    /// `--batch`, then one tenant's hour of them exported to Parquet.
    Events,
    /// A bulk import of a `--rows`-row CSV of reservations: rows/s, and the
    /// process's peak RSS.
    Import,
    /// `--pushes` notifications through the pusher to SNS mobile push on a
    /// local endpoint (`AWS_ENDPOINT_URL`): notifications/s, with each
    /// device's endpoint made on its first push, then with endpoints made.
    Push,
}

/// Where a bench keeps its jobs (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
    /// Jobs dispatched through SQS queues on a local `AWS_ENDPOINT_URL`, on PostgreSQL.
    Sqs,
}

/// The name on the command line, for messages and queue names.
fn name_of(value: &impl ValueEnum) -> String {
    value.to_possible_value().map(|value| value.get_name().to_owned()).unwrap_or_default()
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&name_of(self))
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&name_of(self))
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.workload {
        Workload::Queue => queue::run(&args).await?,
        Workload::YearSummary => year_summary::run(&args).await?,
        Workload::VendorAnalytics => vendor_analytics::run(&args).await?,
        Workload::Email => email::run(&args).await?,
        Workload::Refresh => refresh::run(&args).await?,
        Workload::Fairness => fairness::run(&args).await?,
        Workload::Events => events::run(&args).await?,
        Workload::Import => import::run(&args).await?,
        Workload::Push => push::run(&args).await?,
        #[cfg(feature = "video")]
        Workload::Video => video::run(&args).await?,
        #[cfg(not(feature = "video"))]
        Workload::Video => anyhow::bail!("this longhaul was built without the `video` feature"),
    }
    Ok(ExitCode::SUCCESS)
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

/// The real worker runtime with one slot of `lane` and nothing else (no
/// scheduler, no publisher), its objects in a temporary directory, which
/// lives as long as the runtime is needed.
pub(crate) async fn one_slot_runtime(
    store: &longhaul_jobs::DynStore,
    lane: longhaul_jobs::Lane,
    registry: longhaul_workers::Registry,
) -> anyhow::Result<(longhaul_workers::Runtime, tempfile::TempDir)> {
    let objects_dir = tempfile::tempdir()?;
    let objects = longhaul_jobs::objects::connect(&format!("file://{}", objects_dir.path().display())).await?;
    let services = longhaul_workers::runtime::Services::embedded(store.clone()).with_objects(objects);
    let config = longhaul_workers::WorkerConfig {
        lanes: vec![(lane, 1)],
        scheduler: false,
        publisher: false,
        poll_interval: std::time::Duration::from_millis(100),
        ..longhaul_workers::WorkerConfig::default()
    };
    Ok((longhaul_workers::Runtime::start_with(services, registry, config), objects_dir))
}

/// Prints a run: its line for people on stderr, its figures as one JSON
/// object on stdout.
pub(crate) fn print_run(line: String, figures: &serde_json::Value) {
    eprintln!("{line}");
    println!("{figures}");
}

pub(crate) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}
