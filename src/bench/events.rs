//! `longhaul bench --workload events`: analytics events in and out.
//!
//! **Ingest**: the real API (router and HTTP server, in this process) on a
//! fresh database; `--clients` HTTP/1.1 clients send `--events` events in
//! batches of `--batch` through `POST /v1/events`, each batch with its own
//! `Idempotency-Key`, spread over 1,000 users of 10 tenants. Rate limits are
//! lifted: the bench measures the path to the database, not the limiter.
//! Every event is counted back in the database.
//!
//! **Export**: one tenant's closed hour of `--events` events (stored
//! through the same port the API uses, in batches of 10,000) exported by
//! the real `events_export` job to Parquet on a local object directory:
//! events per second from the job's start to its end, and bytes per event
//! in the lake.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use longhaul_api::{auth, ApiConfig};
use longhaul_jobs::{
    events::{admit, hour_of, Catalogue, EventBatch, EventIn},
    kind::{EventsExport as ExportKind, EventsExportPayload},
    store::InsertOutcome,
    travel::mail::{Envelope, LocalKeys},
    DynStore, Lane, NewJob, Scope, Status,
};
use longhaul_workers::{
    kinds::{EventsExport, ExportSettings},
    Registry,
};
use serde_json::{json, Value};

use super::{one_slot_runtime, percentile, print_run, round3, Backend, BenchDb};
use crate::cli::BenchArgs;

const TENANTS: usize = 10;
const USERS: usize = 1_000;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.backend == Backend::Sqs {
        bail!("the events bench runs on a database (--backend postgres or sqlite)");
    }
    let ingest = ingest_bench(args).await?;
    print_run(ingest_line(&ingest), &ingest);
    let export = export_bench(args).await?;
    print_run(export_line(&export), &export);
    Ok(())
}

fn ingest_line(figures: &Value) -> String {
    format!(
        "longhaul events ingest ({} events in batches of {}, {} clients, {}): {} events/s, \
         request p50 {} ms, p99 {} ms, max {} ms",
        figures["events"],
        figures["batch"],
        figures["clients"],
        figures["backend"].as_str().unwrap_or_default(),
        figures["events_per_s"],
        figures["request_p50_ms"],
        figures["request_p99_ms"],
        figures["request_max_ms"],
    )
}

fn export_line(figures: &Value) -> String {
    format!(
        "longhaul events export ({} events of one tenant's hour, {}): {} events/s, {} files, {} bytes/event",
        figures["events"],
        figures["backend"].as_str().unwrap_or_default(),
        figures["events_per_s"],
        figures["files"],
        figures["bytes_per_event"],
    )
}

/// A batch of `size` events as an app sends them: a funnel's steps, with a
/// session, a device and, at payment, an email (personal data).
fn batch_body(serial: usize, size: usize, now: DateTime<Utc>) -> Value {
    let events: Vec<Value> = (0..size)
        .map(|n| {
            let step = (serial + n) % 4;
            let properties = match step {
                0 => json!({"query": format!("LIS-{}", n % 50), "origin": "LIS", "destination": "GRU", "results": n % 40}),
                1 => json!({"booking_id": format!("b{serial}-{n}"), "provider": "TAP", "value": 412.5, "currency": "EUR"}),
                2 => json!({"booking_id": format!("b{serial}-{n}"), "method": "card", "value": 412.5, "currency": "EUR",
                            "email": format!("traveler{}@example.com", serial % USERS)}),
                _ => json!({"booking_id": format!("b{serial}-{n}"), "provider": "TAP", "value": 412.5, "currency": "EUR"}),
            };
            let name = ["search", "booking_started", "payment", "booking_confirmed"][step];
            json!({
                "name": name,
                "occurred_at": now - chrono::Duration::seconds((n % 600) as i64),
                "properties": properties,
                "session_id": format!("s-{serial}"),
                "device": {"platform": if serial.is_multiple_of(2) { "ios" } else { "android" }, "app_version": "4.2.0"},
            })
        })
        .collect();
    json!({ "events": events })
}

async fn ingest_bench(args: &BenchArgs) -> anyhow::Result<Value> {
    let total = args.events;
    let batch = args.batch.clamp(1, longhaul_jobs::events::MAX_BATCH);
    let batches = total.div_ceil(batch);
    let db = BenchDb::create(args).await?;
    let store = longhaul_jobs::connect(db.url()).await?;
    store.migrate().await?;

    let key: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    let lifted = longhaul_api::limits::Limits {
        writes_per_user: u32::MAX,
        writes_per_tenant: u32::MAX,
        ..longhaul_api::limits::Limits::default()
    };
    let config = ApiConfig {
        auth: auth::AuthConfig { dev_key: Some(key.clone()), ..auth::AuthConfig::default() },
        limits: lifted,
        ..ApiConfig::default()
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let router = longhaul_api::router(store.clone(), config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/events", listener.local_addr()?);
    let server = tokio::spawn(longhaul_api::server::serve(
        listener,
        router,
        longhaul_api::server::HttpTimeouts::default(),
        stop.clone(),
    ));
    let tokens: Vec<String> = (0..USERS)
        .map(|user| {
            let tenant = format!("tenant-{}", user % TENANTS);
            auth::mint_dev_token(&key, &tenant, &format!("user-{user}"), auth::Role::User, Duration::from_secs(3600))
        })
        .collect::<anyhow::Result<_>>()?;
    let tokens = Arc::new(tokens);
    // The bodies are made before the clock starts: the bench times the API.
    let now = Utc::now();
    let bodies: Arc<Vec<String>> =
        Arc::new((0..batches).map(|serial| batch_body(serial, batch, now).to_string()).collect());

    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.clients).build()?;
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..args.clients.max(1) {
        let (next, bodies, tokens, http, url) =
            (next.clone(), bodies.clone(), tokens.clone(), http.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let serial = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(serial) else { break };
                let sent = Instant::now();
                let response = http
                    .post(&url)
                    .bearer_auth(&tokens[serial % tokens.len()])
                    .header("content-type", "application/json")
                    .header("idempotency-key", format!("batch-{serial}"))
                    .body(body.clone())
                    .send()
                    .await?;
                let status = response.status();
                if status != reqwest::StatusCode::ACCEPTED {
                    bail!("batch {serial} answered {status}: {}", response.text().await.unwrap_or_default());
                }
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    stop.cancel();
    let _ = server.await;

    let mut stored = 0;
    for hour in [hour_of(now) - chrono::Duration::hours(1), hour_of(now), hour_of(now) + chrono::Duration::hours(1)] {
        for tenant in 0..TENANTS {
            stored += count_events(&store, &format!("tenant-{tenant}"), hour).await?;
        }
    }
    if stored != batches * batch {
        bail!("{} events were sent, but the database holds {stored}", batches * batch);
    }
    drop(store);
    db.drop_db().await?;
    Ok(json!({
        "peer": "longhaul",
        "workload": "events_ingest",
        "backend": args.backend,
        "events": batches * batch,
        "batch": batch,
        "clients": args.clients.max(1),
        "seconds": round3(elapsed),
        "events_per_s": round3((batches * batch) as f64 / elapsed),
        "requests_per_s": round3(batches as f64 / elapsed),
        "request_p50_ms": round3(percentile(&latencies, 50.0)),
        "request_p99_ms": round3(percentile(&latencies, 99.0)),
        "request_max_ms": round3(latencies.last().copied().unwrap_or(0.0)),
    }))
}

/// Events of a tenant's hour, counted a page at a time through the port.
async fn count_events(store: &DynStore, tenant: &str, hour: DateTime<Utc>) -> anyhow::Result<usize> {
    let (mut count, mut after) = (0, None);
    loop {
        let page = store.events_page(tenant, hour, after, 50_000).await?;
        let Some(last) = page.last() else { return Ok(count) };
        after = Some(last.id);
        count += page.len();
    }
}

async fn export_bench(args: &BenchArgs) -> anyhow::Result<Value> {
    let total = args.events;
    let db = BenchDb::create(args).await?;
    let store = longhaul_jobs::connect(db.url()).await?;
    store.migrate().await?;
    let hour = hour_of(Utc::now()) - chrono::Duration::hours(2);
    let received_at = hour + chrono::Duration::minutes(30);
    let seeding = Instant::now();
    let catalogue = Catalogue::default_catalogue();
    let batches = total.div_ceil(100);
    for serial in 0..batches {
        let body = batch_body(serial, 100, received_at);
        let events: Vec<EventIn> = serde_json::from_value(body["events"].clone())?;
        let admitted = admit(&catalogue, events, received_at).map_err(|err| anyhow::anyhow!("{err}"))?;
        let batch = EventBatch {
            tenant_id: "bench".into(),
            user_id: format!("user-{}", serial % USERS),
            idempotency_key: None,
            request_hash: String::new(),
            received_at,
            events: admitted,
        };
        store.store_events(batch).await?;
    }
    let seed_s = seeding.elapsed().as_secs_f64();
    db.checkpoint().await?;

    let keys = LocalKeys::parse(&LocalKeys::generate("bench"))?;
    let mut registry = Registry::with_defaults();
    registry.register(EventsExport::new(ExportSettings {
        secrets: Some(Envelope::new(Arc::new(keys))),
        ..ExportSettings::default()
    }));
    let (runtime, _objects) = one_slot_runtime(&store, Lane::Data, registry).await?;
    let job = NewJob::of::<ExportKind>("bench", "admin", &EventsExportPayload { hour })?;
    let InsertOutcome::Created(job) = store.insert_job(job).await? else { bail!("the export job was not created") };
    let done = loop {
        let now = store.get_job(&Scope::Platform, job.id).await?.context("the export job vanished")?;
        if now.status.is_final() {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    runtime.shutdown().await;
    if done.status != Status::Succeeded {
        bail!("the export failed: {}", done.error.unwrap_or_default());
    }
    let result = done.result.unwrap_or_default();
    let events = result["events"].as_u64().unwrap_or(0);
    if events as usize != batches * 100 {
        bail!("{} events were seeded, but the export wrote {events}", batches * 100);
    }
    let seconds = match (done.started_at, done.finished_at) {
        (Some(from), Some(to)) => (to - from).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => bail!("the export job has no start or end time"),
    };
    let bytes = result["bytes"].as_u64().unwrap_or(0);
    drop(store);
    db.drop_db().await?;
    Ok(json!({
        "peer": "longhaul",
        "workload": "events_export",
        "backend": args.backend,
        "events": events,
        "files": result["files"],
        "seed_s": round3(seed_s),
        "seconds": round3(seconds),
        "events_per_s": round3(events as f64 / seconds),
        "bytes": bytes,
        "bytes_per_event": round3(bytes as f64 / events as f64),
    }))
}
