//! `longhaul bench --workload year-summary`: one user's year report.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use longhaul_jobs::{DynStore, JobKind, Lane, NewJob, Scope, Status};
use longhaul_workers::Registry;
use serde_json::json;

use super::{one_slot_runtime, percentile, print_run, round3, BenchDb};
use crate::cli::BenchArgs;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let result = year_summary_bench(args).await?;
    let line = format!(
        "longhaul year_summary ({} reservations, {}, pdf+json+csv): submit to success p50 {} ms, p95 {} ms; handler p50 {} ms",
        result["reservations"], args.backend, result["submit_to_success_p50_ms"], result["submit_to_success_p95_ms"], result["handler_p50_ms"],
    );
    print_run(line, &result);
    Ok(())
}

/// Timings of one report job, built `runs` times by the real runtime (one
/// `reports` slot) into a local object directory.
pub(super) struct ReportTimings {
    /// Submit to success, sorted.
    pub total_ms: Vec<f64>,
    /// The handler's own time (started to finished), sorted.
    pub handler_ms: Vec<f64>,
    /// The last run's result.
    pub result: serde_json::Value,
}

pub(super) async fn time_reports(
    store: &DynStore,
    (tenant, user): (&str, &str),
    payload: &serde_json::Value,
    runs: usize,
) -> anyhow::Result<ReportTimings> {
    let (runtime, _objects) = one_slot_runtime(store, Lane::Reports, Registry::with_defaults()).await?;
    let mut timings = ReportTimings { total_ms: Vec::new(), handler_ms: Vec::new(), result: json!(null) };
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let job = match store.insert_job(NewJob::new(tenant, user, JobKind::REPORT_BUILD, payload.clone())).await? {
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
