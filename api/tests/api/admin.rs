//! Queue figures and operations for admins.

use axum::http::StatusCode;
use std::time::Duration;

use longhaul_jobs::{
    store::{AttemptRef, Completion, Outcome},
    Lane, Scope, Status,
};
use serde_json::json;

use crate::helpers::{year_report, TestApp};

backend_tests! {
    async fn an_admin_sees_every_lane(backend) {
        let app = TestApp::new(backend).await;
        let queues = app.get("/v1/admin/queues", &app.admin("t1")).await;
        assert_eq!(queues.status, StatusCode::OK, "{}", queues.text());
        let lanes: Vec<String> = queues.json()["lanes"].as_array().expect("lanes").iter()
            .map(|lane| lane["lane"].as_str().expect("a lane name").to_owned()).collect();
        for lane in ["video", "reports", "email", "refresh", "default"] {
            assert!(lanes.iter().any(|name| name == lane), "{lane} missing from {lanes:?}");
        }
    }

    async fn pausing_and_resuming_a_lane_shows_in_the_queues(backend) {
        let app = TestApp::new(backend).await;
        let admin = app.admin("t1");
        let paused = app.post("/v1/admin/lanes/video/pause", &admin, &json!({})).await;
        assert_eq!(paused.status, StatusCode::OK, "{}", paused.text());
        assert_eq!(paused.json(), json!({"lane": "video", "paused": true}));
        let is_paused = |queues: serde_json::Value| {
            queues["lanes"].as_array().expect("lanes").iter().find(|lane| lane["lane"] == "video").expect("video")["paused"].clone()
        };
        assert_eq!(is_paused(app.get("/v1/admin/queues", &admin).await.json()), json!(true));
        app.post("/v1/admin/lanes/video/resume", &admin, &json!({})).await;
        assert_eq!(is_paused(app.get("/v1/admin/queues", &admin).await.json()), json!(false));
    }

    async fn sweeps_are_listed_newest_first_for_admins_only(backend) {
        let app = TestApp::new(backend).await;
        let admin = app.admin("t1");
        assert_eq!(app.get("/v1/admin/sweeps", &admin).await.json(), json!({"items": []}));
        let at = |minute: u32| chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 28, 10, minute, 0).unwrap();
        app.store.begin_sweep(at(0), 10_000).await.expect("sweep").expect("started");
        let newest = app.store.begin_sweep(at(5), 10_000).await.expect("sweep").expect("started");
        let sweeps = app.get("/v1/admin/sweeps?limit=5", &admin).await;
        assert_eq!(sweeps.status, StatusCode::OK, "{}", sweeps.text());
        let items = sweeps.json()["items"].as_array().expect("items").clone();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["id"], json!(newest.sweep_id));
        for field in ["started_at", "status", "shards", "enqueued", "skipped", "checked", "changed", "duration_seconds"] {
            assert!(items[0].get(field).is_some(), "{field} missing from {}", items[0]);
        }
        assert_eq!(items[0]["staleness"]["count"], json!(0));
        assert!(items[0]["staleness"].get("p99_seconds").is_some());
        assert_eq!(app.get("/v1/admin/sweeps?limit=1", &admin).await.json()["items"].as_array().map(Vec::len), Some(1));
        app.get("/v1/admin/sweeps", &app.user("t1", "u1")).await.problem(StatusCode::FORBIDDEN);
    }

    async fn an_unknown_lane_is_not_found(backend) {
        let app = TestApp::new(backend).await;
        app.post("/v1/admin/lanes/bitcoin/pause", &app.admin("t1"), &json!({})).await.problem(StatusCode::NOT_FOUND);
    }

    async fn an_admin_retries_a_cancelled_job(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let job = app.submit(&user, &year_report()).await;
        let id = job["id"].as_str().expect("id");
        let admin = app.admin("t1");
        // A queued job has nothing to retry.
        app.post(&format!("/v1/admin/jobs/{id}/retry"), &admin, &json!({})).await.problem(StatusCode::CONFLICT);
        app.post(&format!("/v1/jobs/{id}/cancel"), &user, &json!({})).await;
        app.post(&format!("/v1/admin/jobs/{id}/retry"), &user, &json!({})).await.problem(StatusCode::FORBIDDEN);
        app.post(&format!("/v1/admin/jobs/{id}/retry"), &app.admin("t2"), &json!({})).await.problem(StatusCode::NOT_FOUND);
        let retried = app.post(&format!("/v1/admin/jobs/{id}/retry"), &admin, &json!({})).await;
        assert_eq!(retried.status, StatusCode::OK, "{}", retried.text());
        assert_eq!(retried.json()["status"], "queued");
        let stored = app.store.get_job(&Scope::Platform, id.parse().expect("uuid")).await.expect("store").expect("job");
        assert_eq!(stored.status, longhaul_jobs::Status::Queued);
    }

    async fn the_admin_job_list_filters_by_status(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let job = app.submit(&user, &year_report()).await;
        app.submit(&user, &year_report()).await;
        app.post(&format!("/v1/jobs/{}/cancel", job["id"].as_str().expect("id")), &user, &json!({})).await;
        let cancelled = app.get("/v1/admin/jobs?status=cancelled", &app.admin("t1")).await.json();
        assert_eq!(cancelled["items"].as_array().expect("items").len(), 1);
        assert_eq!(cancelled["items"][0]["id"], job["id"]);
    }

    async fn a_redrive_requeues_only_the_tenants_dead_lane_jobs(backend) {
        let app = TestApp::new(backend).await;
        let mut ids = Vec::new();
        for tenant in ["t1", "t2"] {
            let job = app.submit(&app.user(tenant, "u1"), &year_report()).await;
            ids.push(job["id"].as_str().expect("id").parse::<uuid::Uuid>().expect("uuid"));
        }
        let claimed = app.store.claim(Lane::Reports, 10, Duration::from_secs(30), "w").await.expect("claim");
        let completions: Vec<Completion> = claimed
            .iter()
            .map(|job| Completion {
                attempt: AttemptRef { id: job.id, attempt: job.attempts },
                outcome: Outcome::Dead { error: "boom".into() },
            })
            .collect();
        assert_eq!(app.store.complete(&completions).await.expect("complete").len(), 2);

        app.post("/v1/admin/lanes/reports/redrive", &app.user("t1", "u1"), &json!({})).await.problem(StatusCode::FORBIDDEN);
        app.post("/v1/admin/lanes/bitcoin/redrive", &app.admin("t1"), &json!({})).await.problem(StatusCode::NOT_FOUND);
        let report = app.post("/v1/admin/lanes/reports/redrive", &app.admin("t1"), &json!({})).await;
        assert_eq!(report.status, StatusCode::OK, "{}", report.text());
        assert_eq!(report.json(), json!({"requeued": 1, "dropped": 0, "recovered": 0}));
        let filter = longhaul_jobs::store::JobFilter { limit: 10, ..Default::default() };
        let jobs = app.store.list_jobs(&Scope::Platform, &filter).await.expect("list");
        let status = |id: uuid::Uuid| jobs.iter().find(|job| job.id == id).map(|job| job.status);
        assert_eq!(status(ids[0]), Some(Status::Queued));
        assert_eq!(status(ids[1]), Some(Status::Dead), "another tenant's dead job stays dead");
    }
}
