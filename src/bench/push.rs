//! `longhaul bench --workload push`: how many notifications per second one
//! worker's pusher sends through SNS mobile push.
//!
//! On a fresh PostgreSQL database, `--pushes` users each register one iOS
//! device and get one notification (recorded as the courier records them,
//! with a pending push per device). The real `Pusher` then sends them to a
//! platform application of the run's own on the local endpoint
//! (`AWS_ENDPOINT_URL`, a `moto_server`), as a worker does: a first round,
//! in which each push first makes its device's platform endpoint (two SNS
//! calls), and a second round of as many notifications to the same devices,
//! whose endpoints exist (one call). Notifications per second from the
//! first claim to the last push marked sent.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use longhaul_jobs::{
    inbox::{NewDevice, NewNotification, NotificationType, Platform},
    notify::{push::DynPushService, SnsPush},
    DynStore,
};
use longhaul_workers::courier::push::Pusher;
use serde_json::json;

use super::{db::aws_config_from_env, print_run, round3, Backend, BenchDb};
use crate::cli::BenchArgs;

const TENANT: &str = "bench";

/// Rows per store call while seeding.
const SEED_BATCH: usize = 1_000;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.backend != Backend::Postgres {
        bail!("the push bench runs on PostgreSQL (--backend postgres)");
    }
    let endpoint = crate::config::env("AWS_ENDPOINT_URL").context(
        "the push bench makes a platform application of its own, so it runs against a local endpoint: set \
         AWS_ENDPOINT_URL (for example to a moto_server)",
    )?;
    let pushes = args.pushes.max(1);
    let db = BenchDb::create(args).await?;
    let store = longhaul_jobs::connect(db.url()).await?;
    store.migrate().await?;
    let sdk_config = aws_config_from_env().await;
    let sns = aws_sdk_sns::Client::new(&sdk_config);
    let application = sns
        .create_platform_application()
        .name(format!("longhaul-bench-{}", std::process::id()))
        .platform("APNS")
        .attributes("PlatformCredential", "bench-key")
        .attributes("PlatformPrincipal", "bench-key-id")
        .send()
        .await
        .with_context(|| format!("cannot make a platform application at {endpoint}"))?
        .platform_application_arn()
        .context("SNS made a platform application without an ARN")?
        .to_owned();
    let service: DynPushService = std::sync::Arc::new(SnsPush::new(&sdk_config, Some(application), None));
    let pusher =
        Pusher { store: store.clone(), service, lease: Duration::from_secs(60), idle: Duration::from_millis(10) };

    let run_id = std::process::id();
    for n in 0..pushes {
        let device = NewDevice {
            tenant_id: TENANT.into(),
            user_id: format!("u{n}"),
            platform: Platform::Ios,
            token: format!("{run_id:08x}{n:056x}"),
            app_version: Some("1.0".into()),
        };
        store.register_device(device).await?;
    }
    let first = round(&store, &pusher, pushes, 0).await?;
    let again = round(&store, &pusher, pushes, pushes).await?;
    drop(store);
    db.drop_db().await?;

    let figures = json!({
        "workload": "push",
        "pushes": pushes,
        "first_round_s": round3(first),
        "first_round_per_s": round3(pushes as f64 / first),
        "second_round_s": round3(again),
        "second_round_per_s": round3(pushes as f64 / again),
    });
    print_run(
        format!(
            "longhaul push ({pushes} notifications, one device each, SNS mobile push at {endpoint}): \
             {:.1} notifications/s making each endpoint, {:.1} notifications/s to existing endpoints",
            pushes as f64 / first,
            pushes as f64 / again
        ),
        &figures,
    );
    Ok(())
}

/// Records one notification per user (events `offset..offset + pushes`),
/// then pushes until none is left; the seconds the pushing took.
async fn round(store: &DynStore, pusher: &Pusher, pushes: usize, offset: usize) -> anyhow::Result<f64> {
    let now = Utc::now();
    let all: Vec<NewNotification> = (0..pushes)
        .map(|n| NewNotification {
            tenant_id: TENANT.into(),
            user_id: format!("u{n}"),
            event_id: i64::try_from(offset + n).unwrap_or(i64::MAX),
            kind: NotificationType::ReservationChanged,
            title: "Your flight changed".into(),
            body: format!("Departure now Tue 8 Dec, 14:{:02} GRU (was Tue 8 Dec, 12:25 GRU).", n % 60),
            data: json!({"reservation_id": uuid::Uuid::now_v7()}),
            urgent: false,
            deliver_at: now,
        })
        .collect();
    for batch in all.chunks(SEED_BATCH) {
        store.record_notifications(batch, true).await?;
    }
    let started = Instant::now();
    let mut sent = 0;
    loop {
        let done = pusher.once().await?;
        if done == 0 {
            break;
        }
        sent += done;
    }
    let elapsed = started.elapsed().as_secs_f64();
    if sent < pushes {
        bail!("only {sent} of {pushes} pushes went out");
    }
    Ok(elapsed)
}
