//! A change at an agency reaches the traveler: the refresh sweep finds it,
//! the courier makes it a notification in the traveler's language and the
//! zone of the airport, quiet hours hold what can wait, and the pusher
//! sends it through SNS mobile push (the real SDK against `moto_server`)
//! once per device, cleaning up endpoints whose token died.

use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use longhaul_agency_sim::{reservation_number, Sim, SimConfig};
use longhaul_jobs::{
    inbox::{NewDevice, NewNotification, NotificationType, Platform, ProfilePatch, QuietHours, NOTIFICATIONS_KEPT},
    notify::{event_types, push::DynPushService, LogNotifier, OutboxEvent, Publisher, SnsPush},
    testing::{aws_sdk_config_at, Backend, TestStore},
    travel::{ReservationFields, ReservationSource, ReservationStatus, ReservationType},
    JobKind, Lane, NewJob, Status,
};
use longhaul_workers::{
    agency::{build, config::from_json},
    courier::{push::Pusher, Courier},
    kinds::{RefreshSettings, ReservationRefresh},
    runtime::Services,
    Registry, Runtime, WorkerConfig,
};
use serde_json::{json, Value};
use uuid::Uuid;

longhaul_jobs::on_every_backend!(
    a_moved_flight_reaches_the_inbox_in_the_travelers_words_and_zone,
    quiet_hours_hold_what_can_wait_and_let_an_urgent_change_through,
    a_device_gets_one_push_per_change_and_a_dead_endpoint_is_cleaned_up,
    old_notifications_are_forgotten_with_their_pushes,
);

const PROVIDER: &str = "skyways";
const SAO_PAULO: &str = "America/Sao_Paulo";

async fn simulator() -> Sim {
    let config = SimConfig {
        providers: vec![PROVIDER.into()],
        reservations_per_provider: 10,
        latency: Duration::from_millis(1),
        ..SimConfig::steady(longhaul_agency_sim::start_of_today())
    };
    longhaul_agency_sim::start_local(config).await.expect("the simulator starts")
}

fn agencies(sim: &Sim) -> longhaul_workers::agency::Agencies {
    let config = json!({"providers": [{
        "name": PROVIDER, "aliases": ["SkyWays Airlines"], "base_url": sim.base_url(PROVIDER),
        "batch_path": "/reservations/batch", "max_batch": 100, "rate_per_sec": 1000.0, "concurrency": 4,
        "timeout_ms": 2000, "max_retries": 0,
    }]});
    build(&from_json(&config.to_string()).expect("config")).expect("agencies")
}

/// The refresh lane only; events are drained by the test (the courier
/// and pusher run as the runtime would run them, one pass at a time).
fn start(store: &TestStore, sim: &Sim) -> Runtime {
    let config = WorkerConfig {
        lanes: vec![(Lane::Refresh, 1)],
        poll_interval: Duration::from_millis(20),
        publisher: false,
        scheduler: false,
        ..WorkerConfig::default()
    };
    let mut registry = Registry::default();
    registry
        .register(ReservationRefresh::new(RefreshSettings { agencies: agencies(sim), ..RefreshSettings::default() }));
    Runtime::start_with(Services::embedded(store.store.clone()), registry, config)
}

/// The simulator's reservation `i` as ana's flight from São Paulo to Lisbon.
async fn seed(store: &TestStore, sim: &Sim, i: u64) -> Uuid {
    let r = sim.current(PROVIDER, i).expect("a simulated reservation");
    let fields = ReservationFields {
        kind: ReservationType::Flight,
        reservation_number: reservation_number(PROVIDER, i),
        provider: "SkyWays Airlines".into(),
        status: ReservationStatus::Confirmed,
        starts_at: r.starts_at,
        ends_at: r.ends_at,
        details: json!({}),
        city: Some("Lisbon".into()),
        country: Some("PT".into()),
        origin: Some("GRU".into()),
        destination: Some("LIS".into()),
        start_zone: None,
        end_zone: None,
    };
    let ids = store.insert_reservations("acme", "ana", ReservationSource::Email, &[fields]).await.expect("insert");
    ids[0]
}

/// A simulated reservation leaving more than two days from now.
fn far_flight(sim: &Sim) -> u64 {
    (0..10)
        .find(|&i| sim.current(PROVIDER, i).is_some_and(|r| r.starts_at > Utc::now() + chrono::Duration::days(2)))
        .expect("one of ten flights leaves after two days")
}

async fn refresh(store: &TestStore) {
    let job = NewJob::new("acme", "admin", JobKind::RESERVATION_REFRESH, json!({}));
    let id = job.id;
    store.insert_jobs(&[job]).await.expect("submit");
    let job = store.wait_for_end(id, Duration::from_secs(30)).await;
    assert_eq!(job.status, Status::Succeeded, "{:?}", job.error);
}

async fn portuguese_in_sao_paulo(store: &TestStore, quiet: Option<QuietHours>) {
    let patch = ProfilePatch {
        time_zone: Some(Some(SAO_PAULO.into())),
        locale: Some(Some("pt-BR".into())),
        quiet_hours: Some(quiet),
        ..ProfilePatch::default()
    };
    store.update_profile("acme", "ana", &patch).await.expect("profile");
}

/// "14:35" in São Paulo.
fn clock_in_sao_paulo(at: DateTime<Utc>) -> String {
    let zone: chrono_tz::Tz = SAO_PAULO.parse().expect("a zone");
    let local = at.with_timezone(&zone);
    format!("{:02}:{:02}", local.hour(), local.minute())
}

/// Drains the outbox once through the courier (in front of the log).
async fn drain(store: &TestStore, push: bool) -> usize {
    let publisher = Publisher {
        store: store.store.clone(),
        notifier: Courier::wrap(store.store.clone(), std::sync::Arc::new(LogNotifier), push),
        lease: Duration::from_secs(30),
        idle: Duration::from_millis(20),
    };
    let mut total = 0;
    loop {
        match publisher.drain_once().await.expect("the outbox drains") {
            0 => return total,
            count => total += count,
        }
    }
}

async fn a_moved_flight_reaches_the_inbox_in_the_travelers_words_and_zone(backend: Backend) {
    let sim = simulator().await;
    let store = TestStore::new(backend).await.expect("a fresh test database (is PostgreSQL running?)");
    let runtime = start(&store, &sim);
    let i = far_flight(&sim);
    let id = seed(&store, &sim, i).await;
    portuguese_in_sao_paulo(&store, None).await;
    refresh(&store).await;
    drain(&store, false).await;
    // The new trip is news; the sweep's baseline is not.
    let inbox = store.list_notifications("acme", "ana", None, false, 10).await.expect("inbox");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(inbox[0].kind.as_str(), "trip.ready");
    assert_eq!(inbox[0].title, "Sua viagem para Lisbon está pronta");
    assert!(inbox[0].body.starts_with("1 reserva, "), "{}", inbox[0].body);

    // The airline moves the flight 2 h 35 min later.
    let before = sim.current(PROVIDER, i).expect("current").starts_at;
    let moved = sim.move_now(PROVIDER, i, chrono::Duration::minutes(155)).expect("moved");
    refresh(&store).await;
    assert!(drain(&store, false).await >= 1);
    let inbox = store.list_notifications("acme", "ana", None, false, 10).await.expect("inbox");
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    let note = inbox.iter().find(|n| n.kind.as_str() == "reservation.changed").expect("the change");
    assert_eq!(note.kind.as_str(), "reservation.changed");
    assert!(!note.urgent, "it leaves in more than a day");
    assert_eq!(note.title, format!("Seu voo SkyWays Airlines {} GRU→LIS mudou", reservation_number(PROVIDER, i)));
    let (new, old) = (clock_in_sao_paulo(moved.starts_at), clock_in_sao_paulo(before));
    assert!(note.body.starts_with("Partida agora "), "{}", note.body);
    assert!(note.body.contains(&format!("{new} GRU (antes ")), "{} lacks {new}", note.body);
    assert!(note.body.contains(&format!("{old} GRU)")), "{} lacks {old}", note.body);
    assert!(note.body.contains("Chegada agora "), "{}", note.body);
    assert_eq!(note.data["reservation_id"], json!(id));
    assert!(note.data["changes"]["starts_at"].is_object(), "{}", note.data);
    // Nobody else hears of it.
    assert!(store.list_notifications("acme", "bob", None, false, 10).await.expect("inbox").is_empty());
    assert!(store.list_notifications("other", "ana", None, false, 10).await.expect("inbox").is_empty());
    runtime.shutdown().await;
}

/// A `reservation.changed` event for a reservation, as the sweep writes it.
fn changed_event(event_id: i64, reservation: Uuid, from: DateTime<Utc>, to: DateTime<Utc>) -> OutboxEvent {
    OutboxEvent {
        id: event_id,
        tenant_id: "acme".into(),
        event_type: event_types::RESERVATION_CHANGED.into(),
        payload: json!({
            "reservation_id": reservation, "tenant_id": "acme", "user_id": "ana", "version": 2,
            "changes": {"starts_at": {"from": from, "to": to}},
        }),
    }
}

async fn flight(store: &TestStore, number: &str, starts_at: DateTime<Utc>) -> Uuid {
    let fields = ReservationFields {
        kind: ReservationType::Flight,
        reservation_number: number.into(),
        provider: "SkyWays Airlines".into(),
        status: ReservationStatus::Confirmed,
        starts_at,
        ends_at: Some(starts_at + chrono::Duration::hours(10)),
        details: json!({}),
        city: None,
        country: None,
        origin: Some("GRU".into()),
        destination: Some("LIS".into()),
        start_zone: None,
        end_zone: None,
    };
    store.insert_reservations("acme", "ana", ReservationSource::Email, &[fields]).await.expect("insert")[0]
}

async fn quiet_hours_hold_what_can_wait_and_let_an_urgent_change_through(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a fresh test database (is PostgreSQL running?)");
    // Quiet from an hour ago until two hours from now, São Paulo time.
    let zone: chrono_tz::Tz = SAO_PAULO.parse().expect("a zone");
    let local = Utc::now().with_timezone(&zone);
    let minute = u16::try_from(local.hour() * 60 + local.minute()).expect("a minute of the day");
    let quiet = QuietHours { start: (minute + 1440 - 60) % 1440, end: (minute + 120) % 1440 };
    portuguese_in_sao_paulo(&store, Some(quiet)).await;

    let now = Utc::now();
    let soon = flight(&store, "URG001", now + chrono::Duration::hours(5)).await;
    let later = flight(&store, "WAIT01", now + chrono::Duration::days(5)).await;
    let courier = Courier::wrap(store.store.clone(), std::sync::Arc::new(LogNotifier), false);
    let events = [
        changed_event(1, soon, now + chrono::Duration::hours(4), now + chrono::Duration::hours(5)),
        changed_event(2, later, now + chrono::Duration::days(4), now + chrono::Duration::days(5)),
    ];
    assert_eq!(courier.publish(&events).await.expect("published"), vec![1, 2]);

    let inbox = store.list_notifications("acme", "ana", None, false, 10).await.expect("inbox");
    assert_eq!(inbox.len(), 1, "only the urgent change comes through: {inbox:?}");
    assert!(inbox[0].urgent && inbox[0].title.contains("URG001"), "{:?}", inbox[0]);
    let held = store.held_notifications("acme", "ana").await.expect("held");
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(!held[0].urgent && held[0].title.contains("WAIT01"));
    // Held until the quiet hours end: two hours from now, to the minute.
    let release = held[0].deliver_at.with_timezone(&zone);
    assert_eq!(u16::try_from(release.hour() * 60 + release.minute()).ok(), Some(quiet.end));
    let wait = held[0].deliver_at - Utc::now();
    assert!(wait > chrono::Duration::minutes(115) && wait <= chrono::Duration::minutes(121), "{wait}");

    // A user who turned the type off hears nothing of it.
    let off = ProfilePatch {
        notifications: [(longhaul_jobs::inbox::NotificationType::ReservationChanged, false)].into(),
        ..ProfilePatch::default()
    };
    store.update_profile("acme", "ana", &off).await.expect("profile");
    courier.publish(&[changed_event(3, soon, now, now + chrono::Duration::hours(5))]).await.expect("published");
    assert_eq!(store.list_notifications("acme", "ana", None, false, 10).await.expect("inbox").len(), 1);
}

/// A platform application for APNs of this test's own, on moto.
async fn platform_application(sns: &aws_sdk_sns::Client) -> String {
    let created = sns
        .create_platform_application()
        .name(format!("longhaul-test-{}", Uuid::now_v7().simple()))
        .platform("APNS")
        .attributes("PlatformCredential", "test-key")
        .attributes("PlatformPrincipal", "test-cert")
        .send()
        .await
        .expect("a platform application (is moto_server running?)");
    created.platform_application_arn().expect("an ARN").to_owned()
}

/// A `moto_server` of this test's own (`LONGHAUL_TEST_MOTO_SERVER`, which
/// the test command sets, else `moto_server` on the PATH): the messages an
/// endpoint received are read from `/moto-api/data.json`, which fails on the
/// shared server once other tests have deleted buckets that held keys.
struct OwnMoto {
    child: std::process::Child,
    url: String,
}

impl OwnMoto {
    async fn start() -> OwnMoto {
        let program = std::env::var("LONGHAUL_TEST_MOTO_SERVER").unwrap_or_else(|_| "moto_server".to_owned());
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = std::process::Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {program} (set LONGHAUL_TEST_MOTO_SERVER): {err}"));
        let moto = OwnMoto { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{}/moto-api/data.json", moto.url)).await.is_err() {
            assert!(Instant::now() < deadline, "{program} did not answer on port {port} within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages moto holds for the endpoint of `token`: its ARN and them.
async fn endpoint_messages(moto: &OwnMoto, token: &str) -> Option<(String, Vec<Value>)> {
    let url = format!("{}/moto-api/data.json", moto.url);
    let data: Value = reqwest::get(&url).await.expect("moto's data").json().await.expect("JSON");
    let endpoints = data["sns"]["PlatformEndpoint"].as_array()?;
    let endpoint = endpoints.iter().find(|endpoint| endpoint["token"] == token)?;
    let messages: Vec<Value> =
        endpoint["messages"].as_object().map(|m| m.values().cloned().collect()).unwrap_or_default();
    let messages = messages
        .into_iter()
        .map(|message: Value| serde_json::from_str(message.as_str().unwrap_or_default()).unwrap_or(message))
        .collect();
    Some((endpoint["arn"].as_str()?.to_owned(), messages))
}

fn anas_iphone(token: &str, app_version: &str) -> NewDevice {
    NewDevice {
        tenant_id: "acme".into(),
        user_id: "ana".into(),
        platform: Platform::Ios,
        token: token.into(),
        app_version: Some(app_version.into()),
    }
}

async fn a_device_gets_one_push_per_change_and_a_dead_endpoint_is_cleaned_up(backend: Backend) {
    let sim = simulator().await;
    let store = TestStore::new(backend).await.expect("a fresh test database (is PostgreSQL running?)");
    let moto = OwnMoto::start().await;
    let sdk = aws_sdk_config_at(&moto.url).await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let application = platform_application(&sns).await;
    let service: DynPushService = std::sync::Arc::new(SnsPush::new(&sdk, Some(application.clone()), None));
    let pusher =
        Pusher { store: store.store.clone(), service, lease: Duration::from_secs(30), idle: Duration::from_millis(20) };
    let runtime = start(&store, &sim);
    let i = far_flight(&sim);
    seed(&store, &sim, i).await;
    portuguese_in_sao_paulo(&store, None).await;
    // The new trip's notification is made before the phone is registered.
    drain(&store, true).await;
    let token = format!("{:064x}", Uuid::now_v7().as_u128());
    let (device, _) = store.register_device(anas_iphone(&token, "4.1.0")).await.expect("a device");
    refresh(&store).await;
    drain(&store, true).await;

    // The flight moves; the device's endpoint is made and gets one message
    // with the new time at GRU, in São Paulo's zone.
    let moved = sim.move_now(PROVIDER, i, chrono::Duration::minutes(95)).expect("moved");
    refresh(&store).await;
    // The publisher dies after the courier recorded the batch, before it
    // deleted it: the same events come again when its lease lapses.
    let events = store.claim_outbox(100, Duration::from_millis(200)).await.expect("claimed");
    assert!(!events.is_empty());
    let courier = Courier::wrap(store.store.clone(), std::sync::Arc::new(LogNotifier), true);
    courier.publish(&events).await.expect("recorded");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(drain(&store, true).await >= events.len(), "the events went out again");
    pusher.once().await.expect("a push pass");
    pusher.once().await.expect("another pass");
    let (endpoint, messages) = endpoint_messages(&moto, &token).await.expect("the device's endpoint");
    assert_eq!(messages.len(), 1, "one message, however often the event was drained: {messages:?}");
    let apns: Value = serde_json::from_str(messages[0]["APNS"].as_str().unwrap_or_default()).expect("an APNs payload");
    let body = apns["aps"]["alert"]["body"].as_str().unwrap_or_default();
    assert!(body.contains(&format!("{} GRU", clock_in_sao_paulo(moved.starts_at))), "{body}");
    assert!(apns["aps"]["alert"]["title"].as_str().unwrap_or_default().starts_with("Seu voo"), "{apns}");
    assert_eq!(apns["data"]["type"], "reservation.changed");
    let listed = store.list_devices("acme", "ana").await.expect("devices");
    assert_eq!(listed.first().and_then(|d| d.endpoint_arn.clone()), Some(endpoint.clone()));

    // The app is removed from the phone: APNs disables the endpoint. The
    // next change drops the push, disables the device and deletes the
    // endpoint.
    sns.set_endpoint_attributes()
        .endpoint_arn(&endpoint)
        .attributes("Enabled", "false")
        .send()
        .await
        .expect("disabled");
    sim.move_now(PROVIDER, i, chrono::Duration::minutes(30)).expect("moved again");
    refresh(&store).await;
    drain(&store, true).await;
    pusher.once().await.expect("a push pass");
    let listed = store.list_devices("acme", "ana").await.expect("devices");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].disabled_at.is_some() && listed[0].endpoint_arn.is_none(), "{:?}", listed[0]);
    let endpoints = sns
        .list_endpoints_by_platform_application()
        .platform_application_arn(&application)
        .send()
        .await
        .expect("endpoints");
    assert!(
        endpoints.endpoints().iter().all(|e| e.endpoint_arn() != Some(endpoint.as_str())),
        "the dead endpoint is deleted"
    );
    assert!(store.claim_pushes(10, Duration::from_secs(1)).await.expect("pushes").is_empty(), "nothing left to push");

    // The app comes back and registers its token again: pushes resume on a
    // new endpoint.
    let (again, created) = store.register_device(anas_iphone(&token, "4.2.0")).await.expect("registered again");
    assert_eq!((again.id, created, again.disabled_at), (device.id, false, None));
    sim.move_now(PROVIDER, i, chrono::Duration::minutes(-20)).expect("moved back");
    refresh(&store).await;
    drain(&store, true).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        pusher.once().await.expect("a push pass");
        if let Some((_, messages)) = endpoint_messages(&moto, &token).await.filter(|(_, m)| !m.is_empty()) {
            assert_eq!(messages.len(), 1, "{messages:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no push after the token came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runtime.shutdown().await;
}

async fn old_notifications_are_forgotten_with_their_pushes(backend: Backend) {
    let store = TestStore::new(backend).await.expect("a fresh test database (is PostgreSQL running?)");
    store.register_device(anas_iphone("a-token", "4.1.0")).await.expect("a device");
    let note = |event_id: i64, age_days: i64| NewNotification {
        tenant_id: "acme".into(),
        user_id: "ana".into(),
        event_id,
        kind: NotificationType::TripReady,
        title: format!("{age_days} days old"),
        body: String::new(),
        data: json!({}),
        urgent: false,
        deliver_at: Utc::now() - chrono::Duration::days(age_days),
    };
    let kept = longhaul_jobs::inbox::NOTIFICATIONS_KEPT.num_days();
    store.record_notifications(&[note(1, kept + 1), note(2, kept - 1)], true).await.expect("recorded");
    assert_eq!(store.prune_notifications(Utc::now() - NOTIFICATIONS_KEPT).await.expect("pruned"), 1);
    let inbox = store.list_notifications("acme", "ana", None, false, 10).await.expect("inbox");
    let titles: Vec<&str> = inbox.iter().map(|n| n.title.as_str()).collect();
    assert_eq!(titles, [format!("{} days old", kept - 1)]);
    // The old one's push went with it; the other's is still due.
    let pushes = store.claim_pushes(10, Duration::from_secs(1)).await.expect("pushes");
    assert_eq!(pushes.len(), 1, "{pushes:?}");
}
