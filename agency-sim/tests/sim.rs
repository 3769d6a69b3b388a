//! The simulator over real HTTP on a loopback port.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use longhaul_agency_sim::{initial, reservation_number, start_local, Sim, SimConfig, Stats};
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

fn config() -> SimConfig {
    SimConfig::steady(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).single().expect("a date"))
}

async fn sim(config: SimConfig) -> Sim {
    start_local(config).await.expect("the simulator starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(sim: &Sim, provider: &str, i: u64, etag: Option<&str>) -> reqwest::Response {
    let url = format!("{}/reservations/{}", sim.base_url(provider), reservation_number(provider, i));
    let mut request = client().get(url);
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    request.send().await.expect("the simulator answers")
}

async fn batch(sim: &Sim, provider: &str, items: Value) -> reqwest::Response {
    let url = format!("{}/reservations/batch", sim.base_url(provider));
    client().post(url).json(&json!({ "items": items })).send().await.expect("the simulator answers")
}

fn etag(response: &reqwest::Response) -> String {
    response.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).expect("an ETag").to_owned()
}

#[tokio::test]
async fn get_serves_the_initial_state_and_304_on_a_matching_etag() {
    let sim = sim(config()).await;
    let response = get(&sim, "skyways", 42, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), "\"1\"");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, initial(sim.config().anchor, "skyways", 42).to_wire());
    assert_eq!(body["reservation_number"], "SKYWAYS00000042");

    let response = get(&sim, "skyways", 42, Some("\"1\"")).await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(etag(&response), "\"1\"");
    assert!(response.bytes().await.expect("a body").is_empty());

    let response = get(&sim, "skyways", 42, Some("\"7\"")).await;
    assert_eq!(response.status(), StatusCode::OK);

    let stats = sim.stats().provider("skyways");
    assert_eq!((stats.requests, stats.items, stats.ok, stats.not_modified), (3, 3, 2, 1));
    assert_eq!(sim.stats().provider("grandhotels").requests, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_numbers_and_providers_are_404() {
    let sim = sim(config()).await;
    assert_eq!(get(&sim, "skyways", 1_000, None).await.status(), StatusCode::NOT_FOUND);
    let url = format!("{}/reservations/GRANDHOTELS00000001", sim.base_url("skyways"));
    assert_eq!(client().get(url).send().await.expect("answers").status(), StatusCode::NOT_FOUND);
    let url = format!("{}/reservations/NOPE00000001", sim.base_url("nope"));
    assert_eq!(client().get(url).send().await.expect("answers").status(), StatusCode::NOT_FOUND);
    let stats = sim.stats().provider("skyways");
    assert_eq!((stats.requests, stats.not_found), (2, 2));
}

#[tokio::test]
async fn batch_answers_every_item_in_order() {
    let sim = sim(config()).await;
    sim.change_now("grandhotels", 3).expect("a reservation");
    let response = batch(
        &sim,
        "grandhotels",
        json!([
            {"reservation_number": "GRANDHOTELS00000001", "etag": "\"1\""},
            {"reservation_number": "GRANDHOTELS00000002", "etag": null},
            {"reservation_number": "GRANDHOTELS00000003", "etag": "\"1\""},
            {"reservation_number": "GRANDHOTELS99999999", "etag": null},
            {"reservation_number": "GRANDHOTELS00000002"},
        ]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 5);
    assert_eq!(items[0], json!({"reservation_number": "GRANDHOTELS00000001", "status": 304}));
    assert_eq!(items[1]["status"], 200);
    assert_eq!(items[1]["etag"], "\"1\"");
    assert_eq!(items[1]["reservation"], initial(sim.config().anchor, "grandhotels", 2).to_wire());
    assert_eq!(items[2]["status"], 200);
    assert_eq!(items[2]["etag"], "\"2\"");
    assert_eq!(items[2]["reservation"], sim.current("grandhotels", 3).expect("a reservation").to_wire());
    assert_eq!(items[3], json!({"reservation_number": "GRANDHOTELS99999999", "status": 404}));
    assert_eq!(items[4]["status"], 200);

    let stats = sim.stats().provider("grandhotels");
    assert_eq!((stats.requests, stats.batch_requests, stats.items), (1, 1, 5));
    assert_eq!((stats.ok, stats.not_modified, stats.not_found), (3, 1, 1));
}

#[tokio::test]
async fn batch_refuses_more_than_max_batch_and_garbage() {
    let sim = sim(SimConfig { max_batch: 3, ..config() }).await;
    let items: Vec<Value> =
        (0..4).map(|i| json!({"reservation_number": reservation_number("skyways", i), "etag": null})).collect();
    assert_eq!(batch(&sim, "skyways", json!(items[..3])).await.status(), StatusCode::OK);
    assert_eq!(batch(&sim, "skyways", json!(items)).await.status(), StatusCode::BAD_REQUEST);
    let url = format!("{}/reservations/batch", sim.base_url("skyways"));
    let garbage = client().post(url).body("{\"items\": 5").send().await.expect("answers");
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn down_and_throttled_providers_fail_alone() {
    let sim = sim(config()).await;
    assert!(sim.set_down("skyways", true));
    assert!(!sim.set_down("nope", true));
    assert_eq!(get(&sim, "skyways", 1, None).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(batch(&sim, "skyways", json!([])).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&sim, "grandhotels", 1, None).await.status(), StatusCode::OK);
    sim.set_down("skyways", false);
    assert_eq!(get(&sim, "skyways", 1, None).await.status(), StatusCode::OK);

    sim.set_throttle("grandhotels", Some(7));
    let response = get(&sim, "grandhotels", 1, None).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("7"));
    sim.set_throttle("grandhotels", None);
    assert_eq!(get(&sim, "grandhotels", 1, None).await.status(), StatusCode::OK);

    let stats = sim.stats();
    assert_eq!(stats.provider("skyways").injected_5xx, 2);
    assert_eq!(stats.provider("grandhotels").injected_429, 1);
    assert_eq!(stats.provider("skyways").items, 1);
    assert_eq!(stats.total.requests, 6);
}

#[tokio::test]
async fn control_api_over_http() {
    let sim = sim(config()).await;
    let control = |path: &str| client().post(format!("http://{}/_sim/{path}", sim.addr())).send();
    assert_eq!(control("skyways/down").await.expect("answers").status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&sim, "skyways", 1, None).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(control("skyways/up").await.expect("answers").status(), StatusCode::NO_CONTENT);
    assert_eq!(control("skyways/throttle?retry_after=3").await.expect("answers").status(), StatusCode::NO_CONTENT);
    let response = get(&sim, "skyways", 1, None).await;
    assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("3"));
    assert_eq!(control("skyways/unthrottle").await.expect("answers").status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&sim, "skyways", 1, None).await.status(), StatusCode::OK);
    assert_eq!(control("nope/down").await.expect("answers").status(), StatusCode::NOT_FOUND);
    assert_eq!(control("skyways/explode").await.expect("answers").status(), StatusCode::NOT_FOUND);

    let stats: Stats = client()
        .get(format!("http://{}/_sim/stats", sim.addr()))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("stats as JSON");
    assert_eq!(stats, sim.stats());
    assert_eq!(stats.provider("skyways").requests, 3);
    assert_eq!(stats.provider("skyways").injected_429, 1);
}

#[tokio::test]
async fn a_move_over_http_is_a_known_change_the_next_lookup_serves() {
    let sim = sim(config()).await;
    let before = initial(sim.config().anchor, "skyways", 4);
    let number = reservation_number("skyways", 4);
    let url = |path: &str| format!("http://{}/_sim/skyways/reservations/{path}", sim.addr());
    let moved = client().post(url(&format!("{number}/move?minutes=95"))).send().await.expect("answers");
    assert_eq!(moved.status(), StatusCode::OK);
    let moved: Value = moved.json().await.expect("the reservation");
    let starts: chrono::DateTime<Utc> = moved["starts_at"].as_str().and_then(|s| s.parse().ok()).expect("a date");
    assert_eq!(starts, before.starts_at + chrono::Duration::minutes(95));
    let served: Value = get(&sim, "skyways", 4, None).await.json().await.expect("JSON");
    assert_eq!(served, moved, "the next lookup serves the move");
    assert_eq!(sim.current("skyways", 4).map(|r| r.version), Some(2));
    for (path, status) in [
        (format!("{number}/move?minutes=0"), StatusCode::UNPROCESSABLE_ENTITY),
        (format!("{number}/move?minutes=999999999"), StatusCode::UNPROCESSABLE_ENTITY),
        (format!("{number}/move"), StatusCode::BAD_REQUEST),
        ("SKYWAYS99999999/move?minutes=5".to_owned(), StatusCode::NOT_FOUND),
    ] {
        assert_eq!(client().post(url(&path)).send().await.expect("answers").status(), status, "{path}");
    }
    let unknown = client().post(format!("http://{}/_sim/nope/reservations/NOPE00000001/move?minutes=5", sim.addr()));
    assert_eq!(unknown.send().await.expect("answers").status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn error_and_throttle_rates_inject_roughly_their_share() {
    let sim = sim(SimConfig { error_rate: 0.2, throttle_rate: 0.3, retry_after_secs: 2, ..config() }).await;
    let mut by_status = std::collections::HashMap::new();
    for i in 0..400 {
        *by_status.entry(get(&sim, "skyways", i, None).await.status()).or_insert(0) += 1;
    }
    let count = |status| by_status.get(&status).copied().unwrap_or(0);
    assert!((40..=130).contains(&count(StatusCode::SERVICE_UNAVAILABLE)), "{by_status:?}");
    assert!((80..=170).contains(&count(StatusCode::TOO_MANY_REQUESTS)), "{by_status:?}");
    let stats = sim.stats().provider("skyways");
    assert_eq!(stats.injected_5xx, count(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(stats.injected_429, count(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(stats.ok, count(StatusCode::OK));
}

#[tokio::test]
async fn change_now_moves_the_version_and_changed_at() {
    let sim = sim(config()).await;
    let before = Utc::now();
    let (version, changed_at) = sim.change_now("skyways", 5).expect("a reservation");
    assert_eq!(version, 2);
    assert!(changed_at >= before - chrono::Duration::milliseconds(1) && changed_at <= Utc::now());
    let current = sim.current("skyways", 5).expect("a reservation");
    assert_eq!((current.version, current.changed_at), (version, changed_at));
    assert_ne!(current, initial(sim.config().anchor, "skyways", 5));

    let response = get(&sim, "skyways", 5, Some("\"1\"")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), "\"2\"");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, current.to_wire());
    let seen: chrono::DateTime<Utc> = body["changed_at"].as_str().and_then(|s| s.parse().ok()).expect("a date");
    assert_eq!(seen, changed_at);
    assert_eq!(get(&sim, "skyways", 5, Some("\"2\"")).await.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(sim.current("skyways", 6).map(|r| r.version), Some(1));
    assert_eq!(sim.change_now("skyways", 1_000), None);
    assert_eq!(sim.change_now("nope", 1), None);
    assert_eq!(sim.stats().total.changes, 1);
}

#[tokio::test]
async fn changes_come_at_the_configured_rate() {
    // 2,000 reservations, a quarter of them per second: 500 changes a second.
    let sim = sim(SimConfig { change_fraction: 0.25, period: Duration::from_secs(1), ..config() }).await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let stats = sim.stats();
    let elapsed = started.elapsed().as_secs_f64();
    let expected = 500.0 * elapsed;
    let changes = stats.total.changes as f64;
    assert!(changes > expected * 0.75 && changes < expected * 1.1, "{changes} changes in {elapsed:.2} s");
    // Both providers change, and what changed is served.
    assert!(stats.provider("skyways").changes > 100 && stats.provider("grandhotels").changes > 100, "{stats:?}");
    let changed = (0..1_000).filter(|&i| sim.current("skyways", i).is_some_and(|r| r.version > 1)).count();
    assert!(changed > 100, "{changed}");
    sim.shutdown().await;
    let after = sim.stats().total.changes;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.stats().total.changes, after, "changes stop at shutdown");
}

#[tokio::test]
async fn malformed_reservations_break_their_own_item_only() {
    let sim = sim(config()).await;
    assert!(sim.set_malformed("skyways", 2, true));
    let response = batch(
        &sim,
        "skyways",
        json!([{"reservation_number": "SKYWAYS00000001"}, {"reservation_number": "SKYWAYS00000002"}]),
    )
    .await;
    let body: Value = response.json().await.expect("JSON");
    assert!(body["items"][0]["reservation"]["starts_at"]
        .as_str()
        .is_some_and(|s| s.parse::<chrono::DateTime<Utc>>().is_ok()));
    assert!(body["items"][1]["reservation"]["starts_at"]
        .as_str()
        .is_some_and(|s| s.parse::<chrono::DateTime<Utc>>().is_err()));
    assert!(sim.set_malformed("skyways", 2, false));
    let body: Value = get(&sim, "skyways", 2, None).await.json().await.expect("JSON");
    assert_eq!(body, initial(sim.config().anchor, "skyways", 2).to_wire());
}

#[tokio::test]
async fn latency_applies_and_concurrency_is_measured() {
    let sim = sim(SimConfig { latency: Duration::from_millis(150), ..config() }).await;
    let started = Instant::now();
    let requests = (0..8).map(|i| {
        let sim = sim.clone();
        async move { get(&sim, "skyways", i, None).await.status() }
    });
    let statuses = futures_join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(150) && elapsed < Duration::from_millis(1_200), "{elapsed:?}");
    let stats = sim.stats();
    assert_eq!(stats.provider("skyways").max_in_flight, 8);
    assert_eq!(stats.total.max_in_flight, 8);
}

/// Runs the futures as tasks at once and returns their outputs in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.expect("the task finishes"));
    }
    outputs
}

#[tokio::test]
async fn a_hundred_thousand_lookups_in_batches() {
    let sim = sim(SimConfig { reservations_per_provider: 100_000, change_fraction: 0.01, ..config() }).await;
    let started = Instant::now();
    let tasks = (0..4u64).map(|worker| {
        let sim = sim.clone();
        async move {
            let client = client();
            for chunk in (worker * 250..(worker + 1) * 250).map(|b| b * 100) {
                let items: Vec<Value> = (chunk..chunk + 100)
                    .map(|i| json!({"reservation_number": reservation_number("grandhotels", i), "etag": "\"1\""}))
                    .collect();
                let url = format!("{}/reservations/batch", sim.base_url("grandhotels"));
                let response = client.post(url).json(&json!({ "items": items })).send().await.expect("answers");
                assert_eq!(response.status(), StatusCode::OK);
                let body: Value = response.json().await.expect("JSON");
                assert_eq!(body["items"].as_array().map(Vec::len), Some(100));
            }
        }
    });
    futures_join_all(tasks).await;
    let stats = sim.stats().provider("grandhotels");
    assert_eq!((stats.batch_requests, stats.items), (1_000, 100_000));
    assert_eq!(stats.ok + stats.not_modified, 100_000);
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
}
