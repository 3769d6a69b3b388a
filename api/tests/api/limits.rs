//! What one caller may take: rate limits on writes (per user, per tenant),
//! open event streams, photos and inboxes. Each test sets small limits and a
//! short period, so that passing a limit takes a few requests and coming
//! back under it a second.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{
    body::Body,
    http::{header, Method, StatusCode},
};
use http_body_util::BodyExt;
use jsonwebtoken::{EncodingKey, Header};
use longhaul_api::limits::Limits;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::helpers::{request, year_report, TestApp, TestResponse};

/// Limits that stay out of the way except for the one a test sets.
fn generous() -> Limits {
    Limits {
        period: Duration::from_secs(1),
        jobs_per_user: 1_000,
        jobs_per_tenant: 1_000,
        writes_per_user: 1_000,
        writes_per_tenant: 1_000,
        streams_per_user: 100,
        media_per_user: 1_000,
        mail_accounts_per_user: 1_000,
    }
}

/// Asserts a 429 problem with a whole-seconds `Retry-After` of at least 1;
/// returns the seconds.
fn assert_rate_limited(response: &TestResponse) -> u64 {
    let problem = response.problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem["type"], "urn:longhaul:problem:rate-limited", "{problem}");
    let retry_after = response.headers.get(header::RETRY_AFTER).expect("a Retry-After header");
    let seconds: u64 = retry_after.to_str().expect("ASCII").parse().expect("whole seconds");
    assert!(seconds >= 1, "Retry-After: {seconds}");
    seconds
}

fn reservation(number: &str) -> Value {
    json!({
        "type": "lodging", "reservation_number": number, "provider": "Hotel Avenida",
        "starts_at": "2026-05-02T15:00:00Z", "ends_at": "2026-05-04T11:00:00Z", "city": "Lisbon", "country": "PT"
    })
}

fn inbox() -> Value {
    json!({
        "imap_host": "imap.example.com", "tls": "tls", "username": "ana@example.com", "password": "secret",
        "allowed_senders": ["airline.example"]
    })
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("a sane clock").as_secs()
}

/// Opens an event stream and returns its status, headers and (open) body.
async fn open_stream(app: &TestApp, path: &str, token: &str) -> (StatusCode, axum::http::HeaderMap, Body) {
    let request = request(Method::GET, path, Some(token)).body(Body::empty()).expect("a request");
    let response = app.router.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body)
}

/// Reads a stream to its end (within 10 s) and returns its text.
async fn read_to_end(body: Body) -> String {
    let bytes = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the stream ends within 10 s")
        .expect("a readable body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

backend_tests! {
    async fn job_submissions_past_a_users_limit_are_429_with_retry_after_and_served_again_after_it(backend) {
        let app = TestApp::with_config(backend, |config| {
            config.limits = Limits { jobs_per_user: 2, ..generous() };
        })
        .await;
        let alice = app.user("t1", "alice");
        app.submit(&alice, &year_report()).await;
        app.submit(&alice, &year_report()).await;
        let refused = app.post("/v1/jobs", &alice, &year_report()).await;
        let wait = assert_rate_limited(&refused);
        let problem = refused.json();
        assert!(problem["detail"].as_str().is_some_and(|detail| detail.contains("job submissions") && detail.contains("this user")), "{problem}");
        assert_eq!(problem["instance"], "/v1/jobs");

        // The limit is Alice's: another user of her tenant, her reads, and a
        // bad token (still a 401, not a 429) are not affected.
        app.submit(&app.user("t1", "bob"), &year_report()).await;
        assert_eq!(app.get("/v1/jobs", &alice).await.status, StatusCode::OK);
        app.post("/v1/jobs", "not-a-jwt", &year_report()).await.problem(StatusCode::UNAUTHORIZED);

        tokio::time::sleep(Duration::from_secs(wait)).await;
        app.submit(&alice, &year_report()).await;
    }

    async fn a_tenants_writes_are_limited_across_its_users_and_other_tenants_are_not(backend) {
        let app = TestApp::with_config(backend, |config| {
            config.limits = Limits { writes_per_tenant: 3, ..generous() };
        })
        .await;
        for (n, user) in ["u1", "u2", "u3"].iter().enumerate() {
            let created = app.post("/v1/reservations", &app.user("t1", user), &reservation(&format!("R{n}"))).await;
            assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        }
        let refused = app.post("/v1/reservations", &app.user("t1", "u4"), &reservation("R4")).await;
        let wait = assert_rate_limited(&refused);
        assert!(refused.json()["detail"].as_str().is_some_and(|detail| detail.contains("tenant")), "{}", refused.text());
        // Job submissions are a class of their own, and other tenants have their own budget.
        app.submit(&app.user("t1", "u4"), &year_report()).await;
        let elsewhere = app.post("/v1/reservations", &app.user("t2", "u1"), &reservation("R5")).await;
        assert_eq!(elsewhere.status, StatusCode::CREATED, "{}", elsewhere.text());

        tokio::time::sleep(Duration::from_secs(wait)).await;
        let later = app.post("/v1/reservations", &app.user("t1", "u4"), &reservation("R6")).await;
        assert_eq!(later.status, StatusCode::CREATED, "{}", later.text());
    }

    async fn every_kind_of_write_counts_and_a_zero_turns_a_limit_off(backend) {
        let app = TestApp::with_config(backend, |config| {
            config.limits = Limits { writes_per_user: 2, jobs_per_user: 0, period: Duration::from_secs(60), ..generous() };
        })
        .await;
        let admin = app.admin("t1");
        // A pause and a resume: the admin's two writes of the minute.
        assert_eq!(app.post("/v1/admin/lanes/email/pause", &admin, &json!({})).await.status, StatusCode::OK);
        assert_eq!(app.post("/v1/admin/lanes/email/resume", &admin, &json!({})).await.status, StatusCode::OK);
        assert_rate_limited(&app.post("/v1/admin/lanes/email/pause", &admin, &json!({})).await);
        assert_rate_limited(&app.delete("/v1/media/00000000-0000-0000-0000-000000000000", &admin).await);
        // Jobs per user is 0: off.
        for _ in 0..5 {
            app.submit(&admin, &json!({"kind": "noop", "payload": {"sleep_ms": 0}})).await;
        }
    }

    async fn a_user_past_the_stream_cap_gets_429_and_a_closed_stream_frees_its_slot(backend) {
        let app = TestApp::with_config(backend, |config| {
            config.limits = Limits { streams_per_user: 2, ..generous() };
        })
        .await;
        let admin = app.admin("t1");
        let job = app.submit(&admin, &year_report()).await;
        let events = format!("/v1/jobs/{}/events", job["id"].as_str().expect("id"));
        let (status, _, first) = open_stream(&app, &events, &admin).await;
        assert_eq!(status, StatusCode::OK);
        // The dashboard's live stream counts towards the same cap.
        let (status, _, live) = open_stream(&app, "/admin/live", &admin).await;
        assert_eq!(status, StatusCode::OK);

        let (status, headers, body) = open_stream(&app, &events, &admin).await;
        let refused = TestResponse { status, headers, body: body.collect().await.expect("a body").to_bytes().to_vec() };
        assert_rate_limited(&refused);
        let (status, _, _) = open_stream(&app, "/admin/live", &admin).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        // Another user's streams are theirs.
        let (status, _, _other) = open_stream(&app, "/admin/live", &app.token("t1", "ops-2", longhaul_api::auth::Role::Admin)).await;
        assert_eq!(status, StatusCode::OK);

        drop(first);
        let (status, _, _again) = open_stream(&app, &events, &admin).await;
        assert_eq!(status, StatusCode::OK, "a closed stream gives its slot back");
        drop(live);
    }

    async fn a_job_stream_ends_with_an_expired_event_when_its_token_expires(backend) {
        let app = TestApp::new(backend).await;
        let lasting = app.user("t1", "u1");
        let job = app.submit(&lasting, &year_report()).await;
        let events = format!("/v1/jobs/{}/events", job["id"].as_str().expect("id"));
        let claims = json!({"sub": "u1", "tenant_id": "t1", "role": "user", "exp": now() + 2});
        let short = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(&app.dev_key)).expect("a token");
        let (status, _, body) = open_stream(&app, &events, &short).await;
        assert_eq!(status, StatusCode::OK);
        // The job is still queued: only the token's expiry ends the stream.
        let text = read_to_end(body).await;
        assert!(text.contains("event: status"), "{text}");
        let last = text.trim_end().rsplit("\n\n").next().expect("a last event");
        assert!(last.starts_with("event: expired"), "{text}");
        assert!(last.contains("\"status\":401"), "{last}");
    }

    async fn the_dashboards_live_stream_ends_when_its_token_expires(backend) {
        let app = TestApp::new(backend).await;
        let claims = json!({"sub": "ops", "tenant_id": "t1", "role": "admin", "exp": now() + 2});
        let short = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(&app.dev_key)).expect("a token");
        let (status, _, body) = open_stream(&app, "/admin/live", &short).await;
        assert_eq!(status, StatusCode::OK);
        let text = read_to_end(body).await;
        assert!(text.contains("event: lanes") || text.contains("event: history"), "{text}");
        assert!(text.trim_end().rsplit("\n\n").next().is_some_and(|last| last.starts_with("event: expired")), "{text}");
    }

    async fn photos_past_a_users_quota_are_a_409_that_names_the_limit(backend) {
        let app = TestApp::with_config(backend, |config| {
            config.limits = Limits { media_per_user: 2, ..generous() };
        })
        .await;
        let user = app.user("t1", "u1");
        let photo = json!({"content_type": "image/jpeg"});
        let first = app.post("/v1/media", &user, &photo).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
        assert_eq!(app.post("/v1/media", &user, &photo).await.status, StatusCode::CREATED);
        let problem = app.post("/v1/media", &user, &photo).await.problem(StatusCode::CONFLICT);
        assert_eq!(problem["type"], "urn:longhaul:problem:quota-exceeded", "{problem}");
        assert_eq!(problem["limit"], 2, "{problem}");
        assert!(problem["detail"].as_str().is_some_and(|detail| detail.contains("2 photos")), "{problem}");
        // Another user has their own quota; deleting one makes room.
        assert_eq!(app.post("/v1/media", &app.user("t1", "u2"), &photo).await.status, StatusCode::CREATED);
        let id = first.json()["id"].as_str().expect("id").to_owned();
        assert_eq!(app.delete(&format!("/v1/media/{id}"), &user).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.post("/v1/media", &user, &photo).await.status, StatusCode::CREATED);
    }

    async fn inboxes_past_a_users_quota_are_a_409_that_names_the_limit(backend) {
        let app = TestApp::with_config(backend, |config| {
            config.limits = Limits { mail_accounts_per_user: 1, ..generous() };
        })
        .await;
        let user = app.user("t1", "u1");
        let first = app.post("/v1/mail-accounts", &user, &inbox()).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
        let problem = app.post("/v1/mail-accounts", &user, &inbox()).await.problem(StatusCode::CONFLICT);
        assert_eq!(problem["type"], "urn:longhaul:problem:quota-exceeded", "{problem}");
        assert_eq!(problem["limit"], 1, "{problem}");
        let second_user = app.post("/v1/mail-accounts", &app.user("t1", "u2"), &inbox()).await;
        assert_eq!(second_user.status, StatusCode::CREATED, "{}", second_user.text());
        let id = first.json()["id"].as_str().expect("id").to_owned();
        assert_eq!(app.delete(&format!("/v1/mail-accounts/{id}"), &user).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.post("/v1/mail-accounts", &user, &inbox()).await.status, StatusCode::CREATED);
    }
}
