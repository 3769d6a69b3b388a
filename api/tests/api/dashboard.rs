//! The dashboard over HTTP: sign-in, the session cookie, CSRF and origin
//! checks, every page, and the actions. The browser tests (tests/browser.rs)
//! drive the same pages in Chromium.

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use longhaul_api::auth::Role;
use longhaul_jobs::{
    store::{AttemptRef, Completion, Outcome},
    Lane, Scope, Status,
};
use std::time::Duration;

use crate::helpers::{succeed_with_csv, year_report, TestApp, TestResponse};

const HOST: &str = "longhaul.test";

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> TestResponse {
    let mut builder = Request::builder().method(Method::GET).uri(path).header(header::HOST, HOST);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    app.send(builder.body(Body::empty()).expect("request")).await
}

async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    form: &[(&str, &str)],
) -> TestResponse {
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    if let Some(origin) = origin {
        builder = builder.header(header::ORIGIN, origin);
    }
    app.send(builder.body(Body::from(body)).expect("request")).await
}

fn location(response: &TestResponse) -> String {
    response.headers.get(header::LOCATION).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned()
}

/// Signs in with `token`; returns the `name=value` of the session cookie.
async fn sign_in(app: &TestApp, token: &str) -> String {
    let response = post_form(
        app,
        "/admin/login",
        None,
        Some("http://longhaul.test"),
        &[("token", token), ("next", "/admin/dead")],
    )
    .await;
    assert_eq!(response.status, StatusCode::SEE_OTHER, "{}", response.text());
    assert_eq!(location(&response), "/admin/dead");
    let cookie =
        response.headers.get(header::SET_COOKIE).and_then(|value| value.to_str().ok()).expect("a cookie").to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{attribute} missing from {cookie}");
    }
    cookie.split(';').next().expect("name=value").to_owned()
}

/// The CSRF token a page's forms carry.
fn csrf(page: &TestResponse) -> String {
    let text = page.text();
    let start = text.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    text[start..].split('"').next().expect("a value").to_owned()
}

async fn dead_jobs(app: &TestApp, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(app.submit(&app.user("t1", "u1"), &year_report()).await["id"].as_str().expect("id").to_owned());
    }
    let claimed = app.store.claim(Lane::Reports, count, Duration::from_secs(30), "w").await.expect("claim");
    let completions: Vec<Completion> = claimed
        .iter()
        .map(|job| Completion {
            attempt: AttemptRef::of(job),
            outcome: Outcome::Dead { error: "agency answered <b>500</b>".into() },
        })
        .collect();
    app.store.complete(&completions).await.expect("complete");
    ids
}

async fn status(app: &TestApp, id: &str) -> Option<Status> {
    app.store.get_job(&Scope::Platform, id.parse().expect("uuid")).await.expect("store").map(|job| job.status)
}

backend_tests! {
    async fn without_a_session_pages_go_to_sign_in_and_come_back(backend) {
        let app = TestApp::new(backend).await;
        let response = get(&app, "/admin/jobs?status=dead", None).await;
        assert_eq!(response.status, StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/admin/login?next=%2Fadmin%2Fjobs%3Fstatus%3Ddead");
        let login = get(&app, "/admin/login?next=%2Fadmin%2Fjobs", None).await;
        assert_eq!(login.status, StatusCode::OK);
        assert!(login.text().contains("name=\"next\" value=\"/admin/jobs\""), "{}", login.text());
        // A POST without a session is refused outright.
        let post = post_form(&app, "/admin/lanes/video/pause", None, None, &[]).await;
        assert_eq!(post.status, StatusCode::SEE_OTHER);
        assert!(!app.store.lane_paused(Lane::Video).await.expect("paused"));
    }

    async fn a_user_token_opens_nothing(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let login = post_form(&app, "/admin/login", None, None, &[("token", &user)]).await;
        assert_eq!(login.status, StatusCode::FORBIDDEN);
        assert!(login.headers.get(header::SET_COOKIE).is_none());
        assert!(login.text().contains("belongs to a user"), "{}", login.text());
        let bearer = app.get("/admin", &user).await;
        assert_eq!(bearer.status, StatusCode::FORBIDDEN);
        assert!(bearer.text().contains("belongs to a user"));
        let garbage = post_form(&app, "/admin/login", None, None, &[("token", "not-a-jwt")]).await;
        assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
        assert!(garbage.text().contains("The token was refused"), "{}", garbage.text());
        // An admin's bearer token works, for scripts.
        assert_eq!(app.get("/admin", &app.admin("t1")).await.status, StatusCode::OK);
    }

    async fn a_session_opens_every_page_with_our_own_assets_only(backend) {
        let app = TestApp::new(backend).await;
        let ids = dead_jobs(&app, 1).await;
        let cookie = sign_in(&app, &app.admin("t1")).await;
        for path in ["/admin", "/admin/jobs", "/admin/jobs?status=dead&kind=report_build&lane=reports", "/admin/dead",
                     "/admin/scheduled", "/admin/sweeps", "/admin/workers", "/admin/audit", &format!("/admin/jobs/{}", ids[0])] {
            let page = get(&app, path, Some(&cookie)).await;
            assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text());
            let csp = page.headers.get(header::CONTENT_SECURITY_POLICY).and_then(|value| value.to_str().ok()).unwrap_or_default();
            assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
            let text = page.text();
            assert!(!text.contains("src=\"http") && !text.contains("href=\"http"), "{path} loads something from elsewhere");
            assert!(text.contains("/admin/assets/admin.js") && text.contains("/admin/assets/admin.css"));
        }
        let job = get(&app, &format!("/admin/jobs/{}", ids[0]), Some(&cookie)).await.text();
        assert!(job.contains("agency answered &lt;b&gt;500&lt;/b&gt;"), "errors are escaped: {job}");
        assert!(job.contains("id=\"job-attempt-history\"") && job.contains("id=\"job-timeline\""));
        assert!(job.contains("&quot;year_summary&quot;") || job.contains("\"year_summary\""), "the payload is shown");
        let bad = get(&app, "/admin/jobs?status=sleeping", Some(&cookie)).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(get(&app, "/admin/jobs/not-a-job", Some(&cookie)).await.status, StatusCode::NOT_FOUND);
        for (asset, content_type) in [("admin.js", "text/javascript"), ("admin.css", "text/css")] {
            let response = get(&app, &format!("/admin/assets/{asset}"), None).await;
            assert_eq!(response.status, StatusCode::OK);
            assert!(response.headers[header::CONTENT_TYPE].to_str().expect("type").starts_with(content_type));
        }
    }

    async fn posts_need_the_sessions_csrf_token_and_our_origin(backend) {
        let app = TestApp::new(backend).await;
        let cookie = sign_in(&app, &app.admin("t1")).await;
        let page = get(&app, "/admin", Some(&cookie)).await;
        let token = csrf(&page);
        let missing = post_form(&app, "/admin/lanes/video/pause", Some(&cookie), None, &[]).await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN);
        let wrong = post_form(&app, "/admin/lanes/video/pause", Some(&cookie), None, &[("csrf", "guess")]).await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN);
        let cross = post_form(&app, "/admin/lanes/video/pause", Some(&cookie), Some("https://evil.example"), &[("csrf", &token)]).await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN);
        let tenant_paused = || async {
            let stats = app.store.lane_stats(&Scope::Tenant { tenant_id: "t1".into() }).await.expect("stats");
            stats.iter().find(|lane| lane.lane == Lane::Video).and_then(|lane| lane.tenant_paused) == Some(true)
        };
        assert!(!tenant_paused().await, "nothing refused took effect");

        // A tenant admin's button pauses the tenant's own jobs, not the lane.
        let paused = post_form(&app, "/admin/lanes/video/pause", Some(&cookie), Some("http://longhaul.test"), &[("csrf", &token)]).await;
        assert_eq!(paused.status, StatusCode::SEE_OTHER, "{}", paused.text());
        assert!(location(&paused).starts_with("/admin?done="));
        assert!(tenant_paused().await);
        assert!(!app.store.lane_paused(Lane::Video).await.expect("paused"), "other tenants' jobs run on");
        let overview = get(&app, &location(&paused), Some(&cookie)).await.text();
        assert!(overview.contains("Paused your tenant") && overview.contains("id=\"resume-video\""), "{overview}");
        assert!(overview.contains("paused (tenant)"), "{overview}");
        let resumed = post_form(&app, "/admin/lanes/video/resume", Some(&cookie), None, &[("csrf", &token)]).await;
        assert_eq!(resumed.status, StatusCode::SEE_OTHER);
        assert!(!tenant_paused().await);

        let log = app.get("/v1/admin/audit", &app.admin("t1")).await.json();
        let actions: Vec<&str> = log["items"].as_array().expect("items").iter().map(|entry| entry["action"].as_str().expect("action")).collect();
        assert_eq!(actions, ["lane.resume", "lane.pause", "session.login"]);
    }

    async fn dead_jobs_are_retried_and_deleted_one_at_a_time_or_in_bulk(backend) {
        let app = TestApp::new(backend).await;
        let ids = dead_jobs(&app, 4).await;
        let cookie = sign_in(&app, &app.admin("t1")).await;
        let page = get(&app, "/admin/dead", Some(&cookie)).await;
        for id in &ids {
            assert!(page.text().contains(&format!("id=\"retry-{id}\"")), "{id} is listed");
        }
        let token = csrf(&page);
        let one = post_form(&app, &format!("/admin/jobs/{}/retry", ids[0]), Some(&cookie), None, &[("csrf", &token), ("back", "/admin/dead")]).await;
        assert_eq!(one.status, StatusCode::SEE_OTHER, "{}", one.text());
        assert!(location(&one).starts_with("/admin/dead?done="));
        assert_eq!(status(&app, &ids[0]).await, Some(Status::Queued));
        let bulk = post_form(&app, "/admin/dead", Some(&cookie), None,
            &[("csrf", &token), ("action", "retry"), ("ids", &ids[1]), ("ids", &ids[2])]).await;
        assert_eq!(bulk.status, StatusCode::SEE_OTHER);
        assert!(location(&bulk).contains("2%20job") || location(&bulk).contains("2+job"), "{}", location(&bulk));
        assert_eq!(status(&app, &ids[1]).await, Some(Status::Queued));
        assert_eq!(status(&app, &ids[2]).await, Some(Status::Queued));
        // Delete in bulk: the dead one goes, the queued one is left alone.
        let delete = post_form(&app, "/admin/dead", Some(&cookie), None,
            &[("csrf", &token), ("action", "delete"), ("ids", &ids[3]), ("ids", &ids[0])]).await;
        assert_eq!(delete.status, StatusCode::SEE_OTHER);
        assert_eq!(status(&app, &ids[3]).await, None);
        assert_eq!(status(&app, &ids[0]).await, Some(Status::Queued));
        let log = app.get("/v1/admin/audit?limit=10", &app.admin("t1")).await.json();
        let actions: Vec<&str> = log["items"].as_array().expect("items").iter().map(|entry| entry["action"].as_str().expect("action")).collect();
        assert_eq!(actions, ["job.delete", "job.retry", "job.retry", "job.retry", "session.login"]);
    }

    async fn a_job_pages_artifacts_download_with_the_session(backend) {
        let app = TestApp::new(backend).await;
        let job = app.submit(&app.user("t1", "u1"), &year_report()).await;
        let artifact = succeed_with_csv(&app, "t1").await;
        let cookie = sign_in(&app, &app.admin("t1")).await;
        let page = get(&app, &format!("/admin/jobs/{}", job["id"].as_str().expect("id")), Some(&cookie)).await.text();
        let link = format!("/admin/artifacts/{}", artifact.id);
        assert!(page.contains(&format!("href=\"{link}\"")), "{page}");
        let download = get(&app, &link, Some(&cookie)).await;
        assert_eq!(download.status, StatusCode::OK, "{}", download.text());
        assert_eq!(download.text(), "month,trips\n1,2\n");
        let other = sign_in(&app, &app.admin("t2")).await;
        assert_eq!(get(&app, &link, Some(&other)).await.status, StatusCode::NOT_FOUND, "another tenant's admin");
        assert_eq!(get(&app, &link, None).await.status, StatusCode::SEE_OTHER);
    }

    async fn signing_out_ends_the_session_everywhere(backend) {
        let app = TestApp::new(backend).await;
        let cookie = sign_in(&app, &app.token("ops", "root", Role::Platform)).await;
        let page = get(&app, "/admin", Some(&cookie)).await;
        assert!(page.text().contains("root · ops · platform"), "{}", page.text());
        let out = post_form(&app, "/admin/logout", Some(&cookie), None, &[("csrf", &csrf(&page))]).await;
        assert_eq!(out.status, StatusCode::SEE_OTHER);
        assert!(out.headers[header::SET_COOKIE].to_str().expect("cookie").contains("Max-Age=0"));
        assert_eq!(get(&app, "/admin", Some(&cookie)).await.status, StatusCode::SEE_OTHER, "the old cookie opens nothing");
        let stale = get(&app, "/admin", Some("longhaul_admin=forged")).await;
        assert_eq!(stale.status, StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn the_live_stream_sends_lane_figures() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let app = TestApp::new(longhaul_jobs::testing::Backend::Sqlite).await;
    let request = Request::builder()
        .uri("/admin/live")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin("t1")))
        .body(Body::empty())
        .expect("request");
    let response = app.router.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE].to_str().expect("type").starts_with("text/event-stream"));
    let mut body = response.into_body();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(seen.contains("event: history") && seen.contains("event: lanes")) {
        let frame = tokio::time::timeout_at(deadline, body.frame()).await.expect("events within 10 s");
        let frame = frame.expect("a frame").expect("readable");
        if let Some(data) = frame.data_ref() {
            seen.push_str(&String::from_utf8_lossy(data));
        }
    }
    assert!(seen.contains("\"lane\":\"video\""), "{seen}");
}
