//! One tenant's admin cannot see or change another tenant's anything.
//!
//! Tenant B (`globex`) has jobs in every state, an artifact, a paused lane
//! of its own, a running job on a worker, entries in the audit log and a
//! pending upload. Tenant A's admin (`acme`, with nothing of its own) then
//! calls every admin route of the API and every page and action of the
//! dashboard, with and without `?tenant=globex`. After each call, B's jobs,
//! pauses, whole-lane pauses, audit log and upload are exactly as they
//! were, and no answer names B or any of B's ids, or counts B's jobs in a
//! figure.
//!
//! The tables are complete by construction: every `/v1/admin` and
//! `/v1/uploads` (admins only) operation in `/openapi.json` and every route
//! the dashboard declares must have a row, so a new admin route fails here
//! until it is covered.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use http_body_util::BodyExt;
use longhaul_api::auth::Role;
use longhaul_jobs::{
    admin::{RunningJob, WorkerLane, WorkerPresence},
    JobKind, Lane, Scope,
};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::helpers::{noop, succeed_with_csv, year_report, TestApp, TestResponse};

const A: &str = "acme";
const B: &str = "globex";
const HOST: &str = "longhaul.test";
const ORIGIN: &str = "http://longhaul.test";

/// What B has, for the answers to be searched for.
struct Other {
    /// Strings no answer to A may contain: B's tenant id, user id, job and
    /// artifact ids.
    secrets: Vec<String>,
    queued: String,
    dead: Vec<String>,
    cancelled: String,
    succeeded: String,
    artifact: String,
    /// A pending upload of B's admin.
    upload: String,
}

/// Gives B jobs in every state, an artifact, its own pause of the email
/// lane, a running job on a live worker and audit entries; the platform
/// pauses the whole video lane.
async fn populate(app: &TestApp) -> Other {
    let user = app.user(B, "b-user");
    // Test jobs (`noop`) are for admins.
    let b_admin = app.token(B, "b-admin", Role::Admin);
    let mut secrets = vec![B.to_owned(), "b-user".to_owned(), "b-admin".to_owned()];
    let submit = |token: &str, body: Value| {
        let token = token.to_owned();
        async move { app.submit(&token, &body).await["id"].as_str().expect("an id").to_owned() }
    };

    // Two dead reports, then a succeeded one with an artifact.
    let dead = vec![submit(&user, year_report()).await, submit(&user, year_report()).await];
    let claimed = app.store.claim(Lane::Reports, 2, Duration::from_secs(30), "w").await.expect("claim");
    let completions: Vec<_> = claimed
        .iter()
        .map(|job| longhaul_jobs::store::Completion {
            attempt: longhaul_jobs::store::AttemptRef::of(job),
            outcome: longhaul_jobs::store::Outcome::Dead { error: "the agency said no".into() },
        })
        .collect();
    app.store.complete(&completions).await.expect("complete");
    let succeeded = submit(&user, year_report()).await;
    let artifact = succeed_with_csv(app, B).await.id.to_string();

    let queued = submit(&b_admin, noop()).await;
    let delayed = submit(
        &b_admin,
        json!({"kind": "noop", "payload": {"sleep_ms": 0},
        "run_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}),
    )
    .await;
    let cancelled = submit(&b_admin, noop()).await;
    let announced = app.post("/v1/uploads", &b_admin, &json!({"content_type": "text/csv", "purpose": "import"})).await;
    assert_eq!(announced.status, StatusCode::CREATED, "{}", announced.text());
    let upload = announced.json()["id"].as_str().expect("an upload id").to_owned();
    let response = app.post(&format!("/v1/jobs/{cancelled}/cancel"), &b_admin, &json!({})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());

    // B's own event catalogue, whose event names are B's.
    let mut catalogue = app.get("/v1/admin/event-catalogue", &b_admin).await.json();
    catalogue["events"]["b_secret_event"] = json!({"properties": {}});
    let response = app.put("/v1/admin/event-catalogue", &b_admin, &catalogue).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    secrets.push("b_secret_event".to_owned());
    let now = chrono::Utc::now();
    let batch = json!({"events": [{"name": "b_secret_event", "occurred_at": now}]});
    let response = app.post("/v1/events", &user, &batch).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());

    // B's admin acts (an audit entry), the platform pauses B's email jobs
    // and the whole video lane.
    let response = app.post("/v1/admin/lanes/default/pause", &b_admin, &json!({})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let response = app.post("/v1/admin/lanes/default/resume", &b_admin, &json!({})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let platform = app.platform();
    let response = app.post(&format!("/v1/admin/lanes/email/pause?tenant={B}"), &platform, &json!({})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let response = app.post("/v1/admin/lanes/video/pause", &platform, &json!({})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());

    // A worker runs one of B's jobs.
    let running = uuid::Uuid::now_v7();
    let now = chrono::Utc::now();
    let worker = WorkerPresence {
        id: "pod-shared-1".to_owned(),
        host: "pod-shared".to_owned(),
        version: "0.1.0".to_owned(),
        lanes: vec![WorkerLane { lane: Lane::Default, concurrency: 8 }],
        running: vec![RunningJob {
            id: running,
            kind: JobKind::NOOP,
            lane: Lane::Default,
            tenant_id: B.to_owned(),
            attempt: 1,
            started_at: now,
        }],
        started_at: now,
        seen_at: now,
    };
    app.store.report_worker(&worker).await.expect("report");

    secrets.extend([queued.clone(), delayed, cancelled.clone(), succeeded.clone(), artifact.clone(), upload.clone()]);
    secrets.extend(dead.iter().cloned());
    secrets.push(running.to_string());
    Other { secrets, queued, dead, cancelled, succeeded, artifact, upload }
}

/// Everything of B's that an action could change, as the platform sees it.
async fn snapshot(app: &TestApp, other: &Other) -> Value {
    let platform = app.platform();
    let upload = app.get(&format!("/v1/uploads/{}", other.upload), &platform).await;
    assert_eq!(upload.status, StatusCode::OK, "{}", upload.text());
    let jobs = app.get(&format!("/v1/admin/jobs?tenant={B}&limit=200"), &platform).await;
    assert_eq!(jobs.status, StatusCode::OK, "{}", jobs.text());
    let mut queues = app.get(&format!("/v1/admin/queues?tenant={B}"), &platform).await.json();
    // The age of the oldest waiting job grows by itself.
    for lane in queues["lanes"].as_array_mut().expect("lanes") {
        lane["oldest_age_seconds"] = Value::Null;
    }
    let audit = app.store.audit_log(&Scope::Tenant { tenant_id: B.into() }, None, 1_000).await.expect("audit");
    let mut whole_lanes = Vec::new();
    for lane in Lane::ALL {
        whole_lanes.push(json!({"lane": lane, "paused": app.store.lane_paused(lane).await.expect("paused")}));
    }
    let catalogue = app.get(&format!("/v1/admin/event-catalogue?tenant={B}"), &platform).await.json();
    // B's raw events (of this hour, or the last if the test spans an hour's end).
    let hour = longhaul_jobs::events::hour_of(chrono::Utc::now());
    let mut events = Vec::new();
    for hour in [hour - chrono::Duration::hours(1), hour] {
        events.extend(app.store.events_page(B, hour, None, 100).await.expect("events").into_iter().map(|e| e.id));
    }
    let deletions = app.store.pending_event_deletions(B).await.expect("deletions").len();
    json!({
        "catalogue": catalogue,
        "events": events,
        "deletions": deletions,
        "jobs": jobs.json()["items"],
        "queues": queues,
        "audit": serde_json::to_value(audit).expect("audit as JSON"),
        "whole_lanes": whole_lanes,
        "upload": upload.json(),
    })
}

/// No answer to A names anything of B's, beyond echoing an id that A put
/// in the request itself (`no job <id>`).
fn assert_nothing_of(other: &Other, what: &str, text: &str) {
    for secret in other.secrets.iter().filter(|secret| secret.as_str() == B || !what.contains(secret.as_str())) {
        assert!(!text.contains(secret.as_str()), "{what} shows `{secret}`, which is the other tenant's: {text}");
    }
}

/// Every figure in `value` is zero: A has no jobs, so any count is B's.
fn assert_all_zero(what: &str, value: &Value) {
    match value {
        Value::Number(number) => assert_eq!(number.as_f64(), Some(0.0), "{what} counts the other tenant's jobs"),
        Value::Array(items) => items.iter().for_each(|item| assert_all_zero(what, item)),
        Value::Object(fields) => {
            fields.iter().for_each(|(key, field)| assert_all_zero(&format!("{what}.{key}"), field))
        }
        _ => {}
    }
}

/// One row of a table: a route, called as this concrete request, and the
/// statuses it may answer with.
struct Row {
    method: Method,
    template: &'static str,
    path: String,
    expect: &'static [StatusCode],
}

fn row(method: Method, template: &'static str, path: impl Into<String>, expect: &'static [StatusCode]) -> Row {
    Row { method, template, path: path.into(), expect }
}

const OK: &[StatusCode] = &[StatusCode::OK];
const CREATED: &[StatusCode] = &[StatusCode::CREATED];
const ACCEPTED: &[StatusCode] = &[StatusCode::ACCEPTED];
const NOT_FOUND: &[StatusCode] = &[StatusCode::NOT_FOUND];
const SEE_OTHER: &[StatusCode] = &[StatusCode::SEE_OTHER];
const GONE_ELSEWHERE: &[StatusCode] = &[StatusCode::NOT_FOUND, StatusCode::CONFLICT];

/// Every `/v1/admin` and `/v1/uploads` operation, as A's admin calls it
/// against B.
fn api_rows(other: &Other) -> Vec<Row> {
    let mut rows = vec![
        row(Method::GET, "/v1/admin/queues", "/v1/admin/queues", OK),
        row(Method::GET, "/v1/admin/queues", format!("/v1/admin/queues?tenant={B}"), OK),
        row(Method::GET, "/v1/admin/sweeps", "/v1/admin/sweeps", OK),
        row(Method::GET, "/v1/admin/sweeps", format!("/v1/admin/sweeps?tenant={B}"), OK),
        row(Method::GET, "/v1/admin/jobs", "/v1/admin/jobs?limit=200", OK),
        row(Method::GET, "/v1/admin/jobs", format!("/v1/admin/jobs?tenant={B}&status=dead"), OK),
        row(Method::GET, "/v1/admin/audit", "/v1/admin/audit?limit=500", OK),
        row(Method::GET, "/v1/admin/workers", "/v1/admin/workers", OK),
        row(Method::GET, "/v1/admin/event-catalogue", "/v1/admin/event-catalogue", OK),
        row(Method::GET, "/v1/admin/event-catalogue", format!("/v1/admin/event-catalogue?tenant={B}"), OK),
        row(Method::PUT, "/v1/admin/event-catalogue", format!("/v1/admin/event-catalogue?tenant={B}"), OK),
        row(
            Method::DELETE,
            "/v1/admin/users/{user}/events",
            format!("/v1/admin/users/b-user/events?tenant={B}"),
            ACCEPTED,
        ),
        // A's own upload, which must not be B's.
        row(Method::POST, "/v1/uploads", "/v1/uploads", CREATED),
        row(Method::GET, "/v1/uploads/{id}", format!("/v1/uploads/{}", other.upload), NOT_FOUND),
        row(Method::PUT, "/v1/uploads/{id}/upload", format!("/v1/uploads/{}/upload", other.upload), NOT_FOUND),
    ];
    for id in [&other.dead[0], &other.cancelled, &other.succeeded, &other.queued] {
        rows.push(row(Method::POST, "/v1/admin/jobs/{id}/retry", format!("/v1/admin/jobs/{id}/retry"), NOT_FOUND));
        rows.push(row(Method::DELETE, "/v1/admin/jobs/{id}", format!("/v1/admin/jobs/{id}"), NOT_FOUND));
    }
    for lane in Lane::ALL {
        for (action, template) in [
            ("pause", "/v1/admin/lanes/{lane}/pause"),
            ("resume", "/v1/admin/lanes/{lane}/resume"),
            ("redrive", "/v1/admin/lanes/{lane}/redrive"),
        ] {
            rows.push(row(Method::POST, template, format!("/v1/admin/lanes/{lane}/{action}"), OK));
            rows.push(row(Method::POST, template, format!("/v1/admin/lanes/{lane}/{action}?tenant={B}"), OK));
        }
    }
    rows
}

/// The `(method, path)` of every `/v1/admin` and `/v1/uploads` operation
/// the API documents.
async fn documented_admin_operations(app: &TestApp) -> BTreeSet<(String, String)> {
    let spec = app.get("/openapi.json", &app.platform()).await.json();
    let mut operations = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        if !(path.starts_with("/v1/admin") || path.starts_with("/v1/uploads")) {
            continue;
        }
        for method in item.as_object().expect("a path item").keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

backend_tests! {
    async fn a_tenant_admin_sees_and_changes_nothing_of_another_tenant_through_the_api(backend) {
        let app = TestApp::new(backend).await;
        let other = populate(&app).await;
        let admin = app.admin(A);
        let rows = api_rows(&other);

        let covered: BTreeSet<(String, String)> =
            rows.iter().map(|row| (row.method.to_string(), row.template.to_owned())).collect();
        assert_eq!(covered, documented_admin_operations(&app).await, "every /v1/admin and /v1/uploads operation has a row here");

        let before = snapshot(&app, &other).await;
        for row in &rows {
            let request = crate::helpers::request(row.method.clone(), &row.path, Some(&admin))
                .header(header::CONTENT_TYPE, "application/json");
            let body = match row.method {
                Method::POST if row.template == "/v1/uploads" => Body::from(r#"{"content_type": "text/csv", "purpose": "import"}"#),
                Method::POST => Body::from("{}"),
                // A whole catalogue, which would replace B's were it scoped
                // wrong (and, as a file, B's upload).
                Method::PUT => Body::from(r#"{"events": {"a_event": {}}}"#),
                _ => Body::empty(),
            };
            let response = app.send(request.body(body).expect("a request")).await;
            let what = format!("{} {}", row.method, row.path);
            assert!(row.expect.contains(&response.status), "{what} answered {}: {}", response.status, response.text());
            assert_nothing_of(&other, &what, &response.text());
            if row.template == "/v1/admin/queues" {
                let mut lanes = response.json()["lanes"].clone();
                for lane in lanes.as_array_mut().expect("lanes") {
                    // Whether a lane is paused is not a figure.
                    for flag in ["paused", "tenant_paused", "lane"] {
                        lane[flag] = Value::Null;
                    }
                }
                assert_all_zero(&what, &lanes);
            }
            assert_eq!(snapshot(&app, &other).await, before, "{what} changed the other tenant's state");
        }
    }

    async fn a_tenant_admin_sees_and_changes_nothing_of_another_tenant_through_the_dashboard(backend) {
        let app = TestApp::new(backend).await;
        let other = populate(&app).await;
        let cookie = sign_in(&app, &app.admin(A)).await;
        let csrf = csrf_of(&get(&app, "/admin", &cookie).await);

        // Pages.
        let mut pages = vec![
            ("/admin", "/admin".to_owned(), OK),
            ("/admin/", "/admin/".to_owned(), OK),
            ("/admin/jobs", "/admin/jobs".to_owned(), OK),
            ("/admin/jobs", format!("/admin/jobs?tenant={B}&status=dead"), OK),
            ("/admin/dead", "/admin/dead".to_owned(), OK),
            ("/admin/scheduled", "/admin/scheduled".to_owned(), OK),
            ("/admin/sweeps", "/admin/sweeps".to_owned(), OK),
            ("/admin/workers", "/admin/workers".to_owned(), OK),
            ("/admin/audit", "/admin/audit".to_owned(), OK),
            ("/admin/artifacts/{id}", format!("/admin/artifacts/{}", other.artifact), NOT_FOUND),
        ];
        for id in [&other.dead[0], &other.cancelled, &other.succeeded, &other.queued] {
            pages.push(("/admin/jobs/{id}", format!("/admin/jobs/{id}"), NOT_FOUND));
        }
        // Actions.
        let mut actions = Vec::new();
        for id in [&other.dead[0], &other.cancelled, &other.succeeded, &other.queued] {
            for action in ["retry", "delete", "cancel"] {
                actions.push(("/admin/jobs/{id}/{action}", format!("/admin/jobs/{id}/{action}"), vec![], GONE_ELSEWHERE));
            }
        }
        for action in ["retry", "delete"] {
            let form: Vec<(&str, String)> = other.dead.iter().map(|id| ("ids", id.clone())).chain([("action", action.to_owned())]).collect();
            actions.push(("/admin/dead", "/admin/dead".to_owned(), form, SEE_OTHER));
        }
        for lane in Lane::ALL {
            for action in ["pause", "resume", "redrive"] {
                actions.push(("/admin/lanes/{lane}/{action}", format!("/admin/lanes/{lane}/{action}"), vec![], SEE_OTHER));
            }
        }

        // Every route the dashboard declares has a row (sign-in, sign-out
        // and the static assets hold nothing of a tenant's).
        let mut covered: BTreeSet<&str> = pages.iter().map(|(template, ..)| *template).collect();
        covered.extend(actions.iter().map(|(template, ..)| *template));
        covered.extend(["/admin/login", "/admin/logout", "/admin/assets/{name}", "/admin/live"]);
        let declared: BTreeSet<&str> = include_str!("../../src/dashboard/mod.rs")
            .split(".route(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert_eq!(covered, declared, "every dashboard route has a row here");

        let before = snapshot(&app, &other).await;
        for (_, path, expect) in &pages {
            let response = get(&app, path, &cookie).await;
            assert!(expect.contains(&response.status), "GET {path} answered {}: {}", response.status, response.text());
            assert_nothing_of(&other, &format!("GET {path}"), &response.text());
            assert_eq!(snapshot(&app, &other).await, before, "GET {path} changed the other tenant's state");
        }
        for (_, path, form, expect) in &actions {
            let mut fields: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
            fields.extend(form.iter().map(|(name, value)| (*name, value.as_str())));
            let response = post_form(&app, path, &cookie, &fields).await;
            assert!(expect.contains(&response.status), "POST {path} answered {}: {}", response.status, response.text());
            assert_eq!(snapshot(&app, &other).await, before, "POST {path} {form:?} changed the other tenant's state");
        }

        // The live figures: the history and the lanes, A's only.
        let request = Request::builder()
            .uri("/admin/live")
            .header(header::HOST, HOST)
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .expect("request");
        let response = app.router.clone().oneshot(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !(seen.contains("event: history") && seen.contains("event: lanes")) {
            let frame = tokio::time::timeout_at(deadline, body.frame()).await.expect("events within 15 s");
            if let Some(data) = frame.expect("a frame").expect("readable").data_ref() {
                seen.push_str(&String::from_utf8_lossy(data));
            }
        }
        assert_nothing_of(&other, "/admin/live", &seen);
        for line in seen.lines().filter_map(|line| line.strip_prefix("data:")) {
            let mut figures: Value = serde_json::from_str(line.trim()).expect("JSON data");
            strip_labels(&mut figures);
            assert_all_zero("/admin/live", &figures);
        }
    }
}

/// Drops what is a label or a flag rather than a count: lane names, times
/// and whether a lane is paused.
fn strip_labels(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(strip_labels),
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                if matches!(key.as_str(), "paused" | "tenant_paused" | "minute" | "at" | "lane") {
                    *field = Value::Null;
                } else {
                    strip_labels(field);
                }
            }
        }
        _ => {}
    }
}

async fn get(app: &TestApp, path: &str, cookie: &str) -> TestResponse {
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, HOST)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("request");
    app.send(request).await
}

async fn post_form(app: &TestApp, path: &str, cookie: &str, form: &[(&str, &str)]) -> TestResponse {
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("request");
    app.send(request).await
}

/// Signs in with `token`; returns the `name=value` of the session cookie.
async fn sign_in(app: &TestApp, token: &str) -> String {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("token", token), ("next", "/admin")])
        .finish();
    let request = Request::builder()
        .method(Method::POST)
        .uri("/admin/login")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("request");
    let response = app.send(request).await;
    assert_eq!(response.status, StatusCode::SEE_OTHER, "{}", response.text());
    let cookie = response.headers.get(header::SET_COOKIE).and_then(|value| value.to_str().ok()).expect("a cookie");
    cookie.split(';').next().expect("name=value").to_owned()
}

fn csrf_of(page: &TestResponse) -> String {
    let text = page.text();
    let marker = "name=\"csrf\" value=\"";
    let start = text.find(marker).expect("a csrf field") + marker.len();
    text[start..].split('"').next().expect("a value").to_owned()
}
