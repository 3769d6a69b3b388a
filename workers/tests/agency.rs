//! The HTTP JSON agency adapter against the real agency simulator, started
//! in-process on a loopback port for each test.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{TimeZone, Utc};
use longhaul_agency_sim::{reservation_number, start_local, Sim, SimConfig, SimReservation, SimStatus};
use longhaul_jobs::travel::ReservationStatus;
use longhaul_workers::agency::{
    breaker::BreakerState, config, Agency, AgencyError, AgencyReservation, Fetched, HttpJsonAgency, Lookup,
    ProviderConfig,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

fn sim_config() -> SimConfig {
    SimConfig::steady(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).single().expect("a date"))
}

async fn sim(config: SimConfig) -> Sim {
    start_local(config).await.expect("the simulator starts")
}

/// A provider at the simulator with fast retries and no effective rate
/// limit; `batch` chooses the batch endpoint over one GET per look-up.
fn provider(sim: &Sim, name: &str, batch: bool) -> ProviderConfig {
    let mut config = ProviderConfig::new(name, sim.base_url(name));
    config.batch_path = batch.then(|| "/reservations/batch".to_owned());
    config.rate_per_sec = 10_000.0;
    config.concurrency = 16;
    config.timeout_ms = 2_000;
    config.max_retries = 3;
    config.backoff_base_ms = 10;
    config.backoff_max_ms = 200;
    config
}

fn agency(config: &ProviderConfig) -> HttpJsonAgency {
    HttpJsonAgency::new(config, reqwest::Client::new()).expect("a valid provider")
}

fn lookup(provider: &str, i: u64, etag: Option<&str>) -> Lookup {
    Lookup { reservation_number: reservation_number(provider, i), etag: etag.map(str::to_owned) }
}

/// What the adapter should read from the simulator's reservation.
fn expected(reservation: &SimReservation) -> AgencyReservation {
    AgencyReservation {
        status: match reservation.status {
            SimStatus::Confirmed => ReservationStatus::Confirmed,
            SimStatus::Cancelled => ReservationStatus::Cancelled,
        },
        starts_at: reservation.starts_at,
        ends_at: reservation.ends_at,
        details: reservation.details.clone(),
        changed_at: Some(reservation.changed_at),
    }
}

fn current(sim: &Sim, provider: &str, i: u64) -> Fetched {
    let reservation = sim.current(provider, i).expect("a simulated reservation");
    Fetched::Current { etag: Some(reservation.etag()), reservation: expected(&reservation) }
}

#[tokio::test]
async fn a_conditional_get_gives_304_and_not_modified() {
    let sim = sim(sim_config()).await;
    let skyways = agency(&provider(&sim, "skyways", false));
    let fetched = skyways.fetch(&[lookup("skyways", 5, None)]).await.expect("an answer");
    assert_eq!(fetched, [current(&sim, "skyways", 5)]);
    let Fetched::Current { etag: Some(etag), .. } = &fetched[0] else { panic!("{fetched:?}") };
    assert_eq!(etag, "\"1\"");

    let fetched = skyways.fetch(&[lookup("skyways", 5, Some(etag))]).await.expect("an answer");
    assert_eq!(fetched, [Fetched::NotModified]);
    let fetched = skyways.fetch(&[lookup("skyways", 5, Some("\"0\""))]).await.expect("an answer");
    assert_eq!(fetched, [current(&sim, "skyways", 5)]);

    let stats = sim.stats().provider("skyways");
    assert_eq!((stats.requests, stats.batch_requests, stats.ok, stats.not_modified), (3, 0, 2, 1));
}

#[tokio::test]
async fn unknown_numbers_are_not_found() {
    let sim = sim(sim_config()).await;
    for batch in [false, true] {
        let skyways = agency(&provider(&sim, "skyways", batch));
        let lookups = [lookup("skyways", 1, None), lookup("skyways", 5_000, None), lookup("grandhotels", 1, None)];
        let fetched = skyways.fetch(&lookups).await.expect("an answer");
        assert_eq!(fetched, [current(&sim, "skyways", 1), Fetched::NotFound, Fetched::NotFound], "batch: {batch}");
    }
    assert_eq!(sim.stats().provider("skyways").not_found, 4);
}

#[tokio::test]
async fn a_batch_of_a_hundred_is_one_request() {
    let sim = sim(sim_config()).await;
    let hotels = agency(&provider(&sim, "grandhotels", true));
    assert_eq!(hotels.max_batch(), 100);
    let lookups: Vec<Lookup> = (0..100).map(|i| lookup("grandhotels", i, None)).collect();
    let fetched = hotels.fetch(&lookups).await.expect("an answer");
    let expected: Vec<Fetched> = (0..100).map(|i| current(&sim, "grandhotels", i)).collect();
    assert_eq!(fetched, expected);
    let stats = sim.stats().provider("grandhotels");
    assert_eq!((stats.requests, stats.batch_requests, stats.items), (1, 1, 100));

    // With the ETags just seen, the same batch is all 304s.
    let with_etags: Vec<Lookup> = (0..100).map(|i| lookup("grandhotels", i, Some("\"1\""))).collect();
    let fetched = hotels.fetch(&with_etags).await.expect("an answer");
    assert!(fetched.iter().all(|f| *f == Fetched::NotModified), "{fetched:?}");
    assert_eq!(sim.stats().provider("grandhotels").not_modified, 100);
}

#[tokio::test]
async fn more_than_max_batch_is_split_in_order() {
    let sim = sim(sim_config()).await;
    let mut config = provider(&sim, "skyways", true);
    config.max_batch = 40;
    let skyways = agency(&config);
    let lookups: Vec<Lookup> = (0..100).map(|i| lookup("skyways", i, None)).collect();
    let fetched = skyways.fetch(&lookups).await.expect("an answer");
    assert_eq!(fetched, (0..100).map(|i| current(&sim, "skyways", i)).collect::<Vec<_>>());
    assert_eq!(sim.stats().provider("skyways").batch_requests, 3);
}

#[tokio::test]
async fn a_change_is_seen_with_its_new_etag_and_changed_at() {
    let sim = sim(sim_config()).await;
    for batch in [false, true] {
        let skyways = agency(&provider(&sim, "skyways", batch));
        let i = if batch { 8 } else { 7 };
        let first = skyways.fetch(&[lookup("skyways", i, Some("\"1\""))]).await.expect("an answer");
        assert_eq!(first, [Fetched::NotModified]);
        let before = sim.current("skyways", i).expect("a reservation");
        let (version, changed_at) = sim.change_now("skyways", i).expect("a reservation");
        let fetched = skyways.fetch(&[lookup("skyways", i, Some("\"1\""))]).await.expect("an answer");
        let [Fetched::Current { etag, reservation }] = fetched.as_slice() else { panic!("{fetched:?}") };
        assert_eq!(etag.as_deref(), Some(format!("\"{version}\"").as_str()));
        assert_eq!(reservation.changed_at, Some(changed_at));
        assert_eq!(reservation, &expected(&sim.current("skyways", i).expect("a reservation")));
        assert_ne!(reservation, &expected(&before));
    }
}

#[tokio::test]
async fn retry_after_is_waited_for_then_the_request_succeeds() {
    let sim = sim(sim_config()).await;
    let mut config = provider(&sim, "skyways", false);
    config.backoff_max_ms = 2_000;
    let skyways = agency(&config);
    sim.set_throttle("skyways", Some(1));
    let control = sim.clone();
    let lift = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        control.set_throttle("skyways", None);
    });
    let started = Instant::now();
    let fetched = skyways.fetch(&[lookup("skyways", 1, None)]).await.expect("an answer after the wait");
    let elapsed = started.elapsed();
    lift.await.expect("the task finishes");
    assert_eq!(fetched, [current(&sim, "skyways", 1)]);
    // The backoff alone would have tried again after 10 to 20 ms, and again
    // well before a second had passed.
    assert!(elapsed >= Duration::from_millis(1_000), "retried after {elapsed:?}");
    assert!(elapsed < Duration::from_millis(2_500), "{elapsed:?}");
    let stats = sim.stats().provider("skyways");
    assert_eq!((stats.injected_429, stats.requests), (1, 2));
}

#[tokio::test]
async fn a_retry_after_beyond_the_longest_wait_fails_at_once() {
    let sim = sim(sim_config()).await;
    let skyways = agency(&provider(&sim, "skyways", true));
    sim.set_throttle("skyways", Some(3_600));
    let started = Instant::now();
    let err = skyways.fetch(&[lookup("skyways", 1, None)]).await.expect_err("throttled for an hour");
    assert!(started.elapsed() < Duration::from_millis(500));
    let AgencyError::Unavailable { provider, reason } = &err else { panic!("{err:?}") };
    assert_eq!(provider, "skyways");
    assert!(reason.contains("429") && reason.contains("3600 s"), "{reason}");
    assert_eq!(sim.stats().provider("skyways").requests, 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_the_provider_is_back() {
    let sim = sim(sim_config()).await;
    let mut config = provider(&sim, "skyways", true);
    config.max_retries = 10;
    config.backoff_base_ms = 50;
    let skyways = agency(&config);
    sim.set_down("skyways", true);
    let control = sim.clone();
    let revive = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        control.set_down("skyways", false);
    });
    let fetched = skyways.fetch(&[lookup("skyways", 2, None)]).await.expect("an answer once it is back");
    revive.await.expect("the task finishes");
    assert_eq!(fetched, [current(&sim, "skyways", 2)]);
    let stats = sim.stats().provider("skyways");
    assert!(stats.injected_5xx >= 2, "{stats:?}");
    assert_eq!(stats.requests, stats.injected_5xx + 1);
    assert_eq!(skyways.breaker_state(), BreakerState::Closed { failures: 0 });
}

#[tokio::test]
async fn random_server_errors_are_absorbed_by_retries() {
    let sim = sim(SimConfig { error_rate: 0.3, ..sim_config() }).await;
    let mut config = provider(&sim, "skyways", false);
    config.max_retries = 8;
    let skyways = agency(&config);
    let lookups: Vec<Lookup> = (0..50).map(|i| lookup("skyways", i, None)).collect();
    let fetched = skyways.fetch(&lookups).await.expect("every look-up answered in the end");
    assert_eq!(fetched, (0..50).map(|i| current(&sim, "skyways", i)).collect::<Vec<_>>());
    let stats = sim.stats().provider("skyways");
    assert!(stats.injected_5xx > 0, "{stats:?}");
    assert_eq!(stats.ok, 50);
}

#[tokio::test]
async fn the_circuit_opens_fails_fast_and_a_probe_closes_it() {
    let sim = sim(sim_config()).await;
    let mut config = provider(&sim, "skyways", true);
    config.max_retries = 1;
    config.breaker.failure_threshold = 3;
    config.breaker.open_secs = 1;
    let skyways = agency(&config);
    let hotels = agency(&provider(&sim, "grandhotels", true));
    let one = [lookup("skyways", 1, None)];
    sim.set_down("skyways", true);

    for _ in 0..3 {
        let err = skyways.fetch(&one).await.expect_err("the provider is down");
        let AgencyError::Unavailable { reason, .. } = &err else { panic!("{err:?}") };
        assert!(reason.contains("503") && reason.contains("after 2 tries"), "{reason}");
    }
    assert_eq!(skyways.breaker_state(), BreakerState::Open);
    let sent = sim.stats().provider("skyways").requests;
    assert_eq!(sent, 6);

    // Open: refused without a request.
    let started = Instant::now();
    for _ in 0..5 {
        let err = skyways.fetch(&one).await.expect_err("the circuit is open");
        assert!(
            matches!(err, AgencyError::CircuitOpen { ref provider, retry_after_secs: 1 } if provider == "skyways"),
            "{err:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(sim.stats().provider("skyways").requests, sent);

    // Another provider is not affected.
    let fetched = hotels.fetch(&[lookup("grandhotels", 1, None)]).await.expect("grandhotels answers");
    assert_eq!(fetched, [current(&sim, "grandhotels", 1)]);

    // A probe into a provider still down opens it again.
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(skyways.breaker_state(), BreakerState::HalfOpen);
    assert!(matches!(skyways.fetch(&one).await, Err(AgencyError::Unavailable { .. })));
    assert!(matches!(skyways.fetch(&one).await, Err(AgencyError::CircuitOpen { .. })));
    assert_eq!(sim.stats().provider("skyways").requests, sent + 2);

    // Once it is back, the next probe closes the circuit.
    sim.set_down("skyways", false);
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    let fetched = skyways.fetch(&one).await.expect("the probe succeeds");
    assert_eq!(fetched, [current(&sim, "skyways", 1)]);
    assert_eq!(skyways.breaker_state(), BreakerState::Closed { failures: 0 });
    skyways.fetch(&one).await.expect("closed again");
    assert_eq!(sim.stats().provider("skyways").requests, sent + 4);
}

#[tokio::test]
async fn the_concurrency_cap_holds_under_many_fetches() {
    let sim = sim(SimConfig { latency: Duration::from_millis(30), ..sim_config() }).await;
    let mut config = provider(&sim, "skyways", false);
    config.concurrency = 4;
    let skyways = Arc::new(agency(&config));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let skyways = Arc::clone(&skyways);
            tokio::spawn(async move { skyways.fetch(&[lookup("skyways", i, None)]).await })
        })
        .collect();
    for task in tasks {
        let fetched = task.await.expect("the task finishes").expect("an answer");
        assert!(matches!(fetched.as_slice(), [Fetched::Current { .. }]), "{fetched:?}");
    }
    let stats = sim.stats().provider("skyways");
    assert_eq!(stats.requests, 50);
    assert_eq!(stats.max_in_flight, 4, "{stats:?}");
}

#[tokio::test]
async fn the_rate_limit_holds() {
    let sim = sim(sim_config()).await;
    let mut config = provider(&sim, "skyways", false);
    config.rate_per_sec = 20.0;
    config.burst = Some(5);
    let skyways = agency(&config);
    let lookups: Vec<Lookup> = (0..30).map(|i| lookup("skyways", i, None)).collect();
    let started = Instant::now();
    let fetched = skyways.fetch(&lookups).await.expect("an answer");
    let elapsed = started.elapsed();
    assert_eq!(fetched.len(), 30);
    // 5 at once, then 25 at 20 per second: 1.25 s.
    assert!(elapsed >= Duration::from_millis(1_200), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(3_000), "{elapsed:?}");
    assert_eq!(sim.stats().provider("skyways").requests, 30);
}

#[tokio::test]
async fn a_provider_slower_than_the_timeout_is_unavailable() {
    let sim = sim(SimConfig { latency: Duration::from_millis(600), ..sim_config() }).await;
    let mut config = provider(&sim, "skyways", true);
    config.timeout_ms = 100;
    config.max_retries = 1;
    let skyways = agency(&config);
    let started = Instant::now();
    let err = skyways.fetch(&[lookup("skyways", 1, None)]).await.expect_err("too slow");
    let elapsed = started.elapsed();
    let AgencyError::Unavailable { reason, .. } = &err else { panic!("{err:?}") };
    assert!(reason.contains("timed out after 100 ms") && reason.contains("after 2 tries"), "{reason}");
    assert!(elapsed >= Duration::from_millis(200) && elapsed < Duration::from_millis(550), "{elapsed:?}");
    assert_eq!(sim.stats().provider("skyways").requests, 2);
}

#[tokio::test]
async fn a_malformed_item_is_invalid_alone() {
    let sim = sim(sim_config()).await;
    assert!(sim.set_malformed("skyways", 3, true));
    for batch in [true, false] {
        let skyways = agency(&provider(&sim, "skyways", batch));
        let lookups: Vec<Lookup> = (1..=5).map(|i| lookup("skyways", i, None)).collect();
        let fetched = skyways.fetch(&lookups).await.expect("an answer");
        for (i, fetched) in (1..=5).zip(&fetched) {
            if i == 3 {
                assert!(matches!(fetched, Fetched::Invalid(reason) if reason.contains("starts_at")), "{fetched:?}");
            } else {
                assert_eq!(fetched, &current(&sim, "skyways", i), "batch: {batch}");
            }
        }
    }
}

#[tokio::test]
async fn agencies_built_from_config_route_by_name_and_alias() {
    let sim = sim(sim_config()).await;
    let json = format!(
        r#"{{"providers": [
            {{"name": "skyways", "aliases": ["Skyways Airlines"], "base_url": "{}", "batch_path": "/reservations/batch"}},
            {{"name": "grandhotels", "base_url": "{}", "max_batch": 20}}
        ]}}"#,
        sim.base_url("skyways"),
        sim.base_url("grandhotels"),
    );
    let agencies = longhaul_workers::agency::build(&config::from_json(&json).expect("a config")).expect("agencies");
    let skyways = agencies.for_provider(" skyways airlines").expect("routed by alias");
    let fetched = skyways.fetch(&[lookup("skyways", 9, None)]).await.expect("an answer");
    assert_eq!(fetched, [current(&sim, "skyways", 9)]);
    let hotels = agencies.for_provider("GrandHotels").expect("routed by name");
    assert_eq!(hotels.max_batch(), 20);
    let fetched = hotels.fetch(&[lookup("grandhotels", 9, None)]).await.expect("an answer");
    assert_eq!(fetched, [current(&sim, "grandhotels", 9)]);
    let stats = sim.stats();
    assert_eq!(stats.provider("skyways").batch_requests, 1);
    assert_eq!(stats.provider("grandhotels").batch_requests, 0);
}

/// The value of the counter or gauge `name` with exactly `labels`, if
/// recorded.
fn metric(
    snapshot: &[(metrics_util::CompositeKey, Option<metrics::Unit>, Option<metrics::SharedString>, DebugValue)],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    snapshot.iter().find_map(|(key, _, _, value)| {
        let key = key.key();
        let found: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
        let matches = key.name() == name && found.len() == labels.len() && labels.iter().all(|l| found.contains(l));
        match value {
            DebugValue::Counter(count) if matches => Some(*count as f64),
            DebugValue::Gauge(level) if matches => Some(level.into_inner()),
            _ => None,
        }
    })
}

#[test]
fn requests_and_the_circuit_are_measured() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            let sim = sim(sim_config()).await;
            let mut config = provider(&sim, "skyways", false);
            config.max_retries = 1;
            config.breaker.failure_threshold = 1;
            let skyways = agency(&config);
            skyways.fetch(&[lookup("skyways", 1, None)]).await.expect("an answer");
            skyways.fetch(&[lookup("skyways", 1, Some("\"1\""))]).await.expect("an answer");
            sim.set_throttle("skyways", Some(0));
            skyways.fetch(&[lookup("skyways", 1, None)]).await.expect_err("throttled");
            skyways.fetch(&[lookup("skyways", 1, None)]).await.expect_err("open");
            sim.shutdown().await;
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let requests = |outcome: &str| {
        metric(&snapshot, "longhaul_agency_requests_total", &[("provider", "skyways"), ("outcome", outcome)])
    };
    assert_eq!(requests("ok"), Some(1.0));
    assert_eq!(requests("not_modified"), Some(1.0));
    assert_eq!(requests("throttled"), Some(2.0));
    assert_eq!(requests("circuit_open"), Some(1.0));
    assert_eq!(requests("error"), None);
    assert_eq!(metric(&snapshot, "longhaul_agency_circuit_open", &[("provider", "skyways")]), Some(1.0));
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.local_addr().expect("an address").port()
    };
    let mut config = ProviderConfig::new("gone", format!("http://127.0.0.1:{port}/gone"));
    config.max_retries = 2;
    config.backoff_base_ms = 10;
    config.backoff_max_ms = 50;
    let gone = agency(&config);
    let err = gone.fetch(&[lookup("gone", 1, None)]).await.expect_err("nothing listens");
    let AgencyError::Unavailable { provider, reason } = &err else { panic!("{err:?}") };
    assert_eq!(provider, "gone");
    assert!(reason.starts_with("connection failed") && reason.contains("after 3 tries"), "{reason}");
    assert!(!reason.contains("GONE00000001"), "the URL stays out of the reason: {reason}");
}

/// How a hostile agency answers every request.
#[derive(Clone, Copy)]
enum Hostile {
    /// This head, then body bytes until the client hangs up.
    Endless(&'static str),
    /// A 200 whose JSON body is nested `depth` arrays deep.
    Nested(usize),
    /// This head, then a byte of body every 50 ms, never done.
    Dribble(&'static str),
    /// A redirect to `location`.
    Redirect(&'static str),
}

/// An agency on a loopback port that answers as `how` says; also returns
/// how many requests it took.
async fn hostile_agency(how: Hostile) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                match how {
                    Hostile::Endless(head) => {
                        let block = vec![b'['; 64 * 1024];
                        if socket.write_all(head.as_bytes()).await.is_ok() {
                            while socket.write_all(&block).await.is_ok() {}
                        }
                    }
                    Hostile::Nested(depth) => {
                        let body = "[".repeat(depth) + &"]".repeat(depth);
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        let _ = socket.write_all((head + &body).as_bytes()).await;
                    }
                    Hostile::Dribble(head) => {
                        if socket.write_all(head.as_bytes()).await.is_ok() {
                            while socket.write_all(b" ").await.is_ok() {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                    Hostile::Redirect(location) => {
                        let head = format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
                        let _ = socket.write_all(head.as_bytes()).await;
                    }
                }
            });
        }
    });
    (url, requests)
}

/// The agency at `base_url`, as the workers build it from their
/// configuration: quick to give up, no retries.
fn configured(base_url: &str, batch: bool, timeout_ms: u64) -> Arc<dyn Agency> {
    let batch_path = if batch { r#", "batch_path": "/batch""# } else { "" };
    let json = format!(
        r#"{{"providers": [{{"name": "hostile", "base_url": "{base_url}", "timeout_ms": {timeout_ms}, "max_retries": 0{batch_path}}}]}}"#
    );
    let agencies = longhaul_workers::agency::build(&config::from_json(&json).expect("a config")).expect("agencies");
    Arc::clone(agencies.for_provider("hostile").expect("the agency"))
}

#[tokio::test]
async fn an_answer_over_the_size_cap_is_refused_while_it_streams() {
    for head in [
        // No length: the cap stops the read.
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        // A length over the cap: nothing is read.
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n",
    ] {
        let (url, _) = hostile_agency(Hostile::Endless(head)).await;
        for batch in [false, true] {
            let started = Instant::now();
            let err = configured(&url, batch, 30_000).fetch(&[lookup("x", 1, None)]).await.expect_err("too large");
            let AgencyError::BadResponse { reason, .. } = &err else { panic!("{err:?}") };
            assert!(reason.contains("larger than 16 MiB"), "{reason}");
            assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        }
    }
}

#[tokio::test]
async fn a_body_that_dribbles_past_the_timeout_is_given_up_on() {
    let (url, _) = hostile_agency(Hostile::Dribble(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
    ))
    .await;
    let started = Instant::now();
    let err = configured(&url, false, 300).fetch(&[lookup("x", 1, None)]).await.expect_err("too slow");
    let AgencyError::Unavailable { reason, .. } = &err else { panic!("{err:?}") };
    assert!(reason.contains("timed out after 300 ms"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_deeply_nested_answer_is_unreadable_not_a_crash() {
    let (url, _) = hostile_agency(Hostile::Nested(100_000)).await;
    let fetched = configured(&url, false, 30_000).fetch(&[lookup("x", 1, None)]).await.expect("an answer");
    assert!(
        matches!(&fetched[..], [Fetched::Invalid(reason)] if reason.contains("recursion limit exceeded")),
        "{fetched:?}"
    );
    let err = configured(&url, true, 30_000).fetch(&[lookup("x", 1, None)]).await.expect_err("unreadable");
    let AgencyError::BadResponse { reason, .. } = &err else { panic!("{err:?}") };
    assert!(reason.contains("recursion limit exceeded"), "{reason}");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let (target, reached) = hostile_agency(Hostile::Nested(1)).await;
    let location: &'static str = Box::leak(format!("{target}/elsewhere").into_boxed_str());
    let (url, _) = hostile_agency(Hostile::Redirect(location)).await;
    let err = configured(&url, false, 30_000).fetch(&[lookup("x", 1, None)]).await.expect_err("a redirect");
    let AgencyError::BadResponse { reason, .. } = &err else { panic!("{err:?}") };
    assert!(reason.contains("302"), "{reason}");
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "the redirect's target was never asked");
}
