//! `longhaul bench --workload import`: a bulk import of reservations.
//!
//! A CSV file of `--rows` flights of `--import-users` users (about 120
//! bytes a row, every row valid) is written to disk, stored as an upload
//! on a local object directory, and loaded by the real `bulk_import` job
//! on a fresh database: rows per second from the job's start to its end,
//! and the process's peak resident memory (VmHWM) before and after, which
//! a streaming import keeps flat whatever the file's size. A second import
//! of the same file measures the path where every row is `unchanged`.

use std::{io::Write, time::Duration};

use anyhow::{bail, Context};
use longhaul_jobs::{
    imports::{ImportEntity, ImportMode, NewUpload, UploadPurpose},
    kind::{BulkImport as ImportKind, BulkImportPayload},
    store::InsertOutcome,
    DynStore, Job, Lane, NewJob, Scope, Status,
};
use longhaul_workers::Registry;
use serde_json::{json, Value};

use super::{one_slot_runtime, print_run, round3, Backend, BenchDb};
use crate::cli::BenchArgs;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.backend == Backend::Sqs {
        bail!("the import bench runs on a database (--backend postgres or sqlite)");
    }
    let rows = args.rows.max(1);
    let users = args.import_users.clamp(1, rows);
    let db = BenchDb::create(args).await?;
    let store = longhaul_jobs::connect(db.url()).await?;
    store.migrate().await?;

    let spool = tempfile::NamedTempFile::new()?;
    {
        let mut out = std::io::BufWriter::new(spool.as_file());
        writeln!(out, "user,type,reservation_number,provider,starts_at,ends_at,from,to")?;
        for n in 0..rows {
            // A user's rows are together, as an export of a travel agency's
            // bookings lists them; each user flies once a week.
            let (user, trip) = (n * users / rows, n % 50);
            let day = 1 + trip % 28;
            writeln!(
                out,
                "user-{user:06},flight,LH{n:08},TAP Air Portugal,2026-{:02}-{day:02}T10:00:00Z,\
                 2026-{:02}-{day:02}T12:30:00+01:00,LIS,OPO",
                1 + trip % 12,
                1 + trip % 12,
            )?;
        }
        out.flush()?;
    }
    let size = spool.as_file().metadata()?.len();

    let (runtime, objects_dir) = one_slot_runtime(&store, Lane::Data, Registry::with_defaults()).await?;
    let objects = longhaul_jobs::objects::connect(&format!("file://{}", objects_dir.path().display())).await?;
    let upload = store
        .insert_upload(NewUpload {
            tenant_id: "bench".into(),
            user_id: "admin".into(),
            purpose: UploadPurpose::Import,
            content_type: "text/csv".into(),
            size_bytes: None,
        })
        .await?;
    objects.put_file(&upload.key()?, spool.path(), "text/csv").await?;
    store.mark_uploaded(upload.id, size).await?;
    drop(spool);

    let rss_before = peak_rss()?;
    let first = import(&store, upload.id).await?;
    let rss_after = peak_rss()?;
    let again = import(&store, upload.id).await?;
    runtime.shutdown().await;
    drop(store);
    db.drop_db().await?;

    let (first_s, first_result) = figures(&first)?;
    let (again_s, again_result) = figures(&again)?;
    if first_result["inserted"].as_u64() != Some(rows as u64) {
        bail!("{rows} rows were written, but the import says {first_result}");
    }
    if again_result["unchanged"].as_u64() != Some(rows as u64) {
        bail!("the second import of the same file changed something: {again_result}");
    }
    let figures = json!({
        "peer": "longhaul",
        "workload": "bulk_import",
        "backend": args.backend,
        "rows": rows,
        "users": users,
        "file_bytes": size,
        "seconds": round3(first_s),
        "rows_per_s": round3(rows as f64 / first_s),
        "mb_per_s": round3(size as f64 / 1e6 / first_s),
        "again_seconds": round3(again_s),
        "again_rows_per_s": round3(rows as f64 / again_s),
        "peak_rss_mib_before": round3(rss_before as f64 / 1_048_576.0),
        "peak_rss_mib": round3(rss_after as f64 / 1_048_576.0),
    });
    let line = format!(
        "longhaul bulk import ({} rows, {:.0} MB of CSV, {} users, {}): {} rows/s ({} MB/s); again, all unchanged: \
         {} rows/s; peak RSS {} MiB (before the import: {} MiB)",
        rows,
        size as f64 / 1e6,
        users,
        args.backend,
        figures["rows_per_s"],
        figures["mb_per_s"],
        figures["again_rows_per_s"],
        figures["peak_rss_mib"],
        figures["peak_rss_mib_before"],
    );
    print_run(line, &figures);
    Ok(())
}

/// Submits an import of `upload` and waits for its end.
async fn import(store: &DynStore, upload: uuid::Uuid) -> anyhow::Result<Job> {
    let payload = BulkImportPayload { upload_id: upload, entity: ImportEntity::Reservations, mode: ImportMode::Upsert };
    let job = NewJob::of::<ImportKind>("bench", "admin", &payload)?;
    let InsertOutcome::Created(job) = store.insert_job(job).await? else { bail!("the import job was not created") };
    loop {
        let now = store.get_job(&Scope::Platform, job.id).await?.context("the import job vanished")?;
        if now.status.is_final() {
            if now.status != Status::Succeeded {
                bail!("the import failed: {}", now.error.unwrap_or_default());
            }
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Seconds from the job's start to its end, and its result.
fn figures(job: &Job) -> anyhow::Result<(f64, Value)> {
    let seconds = match (job.started_at, job.finished_at) {
        (Some(from), Some(to)) => (to - from).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => bail!("the import job has no start or end time"),
    };
    Ok((seconds.max(1e-6), job.result.clone().unwrap_or_default()))
}

/// This process's peak resident memory, in bytes (Linux).
fn peak_rss() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).context("no VmHWM in /proc/self/status")?;
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).context("an unreadable VmHWM")?;
    Ok(kib * 1024)
}
