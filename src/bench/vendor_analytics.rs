//! `longhaul bench --workload vendor-analytics`: a tenant's month of
//! vendor figures, on PostgreSQL.

use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use super::{percentile, round3, year_summary::time_reports, Backend, BenchDb};
use crate::cli::BenchArgs;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let result = vendor_analytics_bench(args).await?;
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
    Ok(())
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
    if args.backend != Backend::Postgres {
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
