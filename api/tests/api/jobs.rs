//! Submitting, reading, listing and cancelling jobs.

use std::collections::HashSet;

use axum::http::{header, StatusCode};
use longhaul_jobs::Scope;
use serde_json::json;

use crate::helpers::{year_report, TestApp};

backend_tests! {
    async fn a_submitted_job_reads_back_with_the_contract_fields(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let created = app.post_with("/v1/jobs", &token, &year_report(), &[("traceparent", traceparent)]).await;
        assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text());
        let id = created.json()["id"].as_str().expect("an id").to_owned();
        assert_eq!(created.headers.get(header::LOCATION).expect("a location"), &format!("/v1/jobs/{id}"));

        let job = app.get(&format!("/v1/jobs/{id}"), &token).await.json();
        for field in ["id", "kind", "lane", "status", "progress", "attempts", "max_attempts", "created_at", "started_at",
                      "finished_at", "error", "result", "artifacts", "tenant_id", "user_id", "payload", "run_at", "priority"] {
            assert!(job.get(field).is_some(), "missing `{field}` in {job}");
        }
        assert_eq!(job["status"], "queued");
        assert_eq!(job["lane"], "reports");
        assert_eq!(job["progress"], 0);
        assert_eq!(job["artifacts"], json!([]));
        assert_eq!((job["tenant_id"].as_str(), job["user_id"].as_str()), (Some("t1"), Some("u1")));
        assert!(job.get("request_hash").is_none() && job.get("locked_by").is_none(), "internals leak: {job}");

        let stored = app.store.get_job(&Scope::Platform, id.parse().expect("a uuid")).await.expect("store").expect("the job");
        assert_eq!(stored.traceparent.as_deref(), Some(traceparent));
    }

    async fn a_job_without_traceparent_gets_one(backend) {
        let app = TestApp::new(backend).await;
        let job = app.submit(&app.user("t1", "u1"), &year_report()).await;
        let stored = app.store.get_job(&Scope::Platform, job["id"].as_str().expect("id").parse().expect("uuid")).await.expect("store").expect("job");
        let traceparent = stored.traceparent.expect("a generated traceparent");
        assert!(traceparent.starts_with("00-") && traceparent.len() == 55, "{traceparent}");
    }

    async fn listing_with_a_cursor_returns_every_job_exactly_once(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let mut submitted = HashSet::new();
        for _ in 0..7 {
            submitted.insert(app.submit(&token, &year_report()).await["id"].as_str().expect("id").to_owned());
        }
        let mut seen = Vec::new();
        let mut path = "/v1/jobs?limit=3".to_owned();
        let mut pages = 0;
        loop {
            let page = app.get(&path, &token).await.json();
            pages += 1;
            let items = page["items"].as_array().expect("items");
            assert!(items.len() <= 3);
            seen.extend(items.iter().map(|job| job["id"].as_str().expect("id").to_owned()));
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/v1/jobs?limit=3&cursor={cursor}"),
                None => break,
            }
            assert!(pages < 10, "pagination does not end");
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), 7, "{seen:?}");
        assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), submitted);
        let mut newest_first = seen.clone();
        newest_first.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, newest_first, "ids are UUIDv7, so newest first is descending");
    }

    async fn listing_filters_by_status_and_kind(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let report = app.submit(&token, &year_report()).await;
        let video = app.submit(&token, &json!({"kind": "video_compile", "payload": {"year": 2026, "aspect": "9:16"}})).await;
        app.post(&format!("/v1/jobs/{}/cancel", video["id"].as_str().expect("id")), &token, &json!({})).await;

        let videos = app.get("/v1/jobs?kind=video_compile", &token).await.json();
        assert_eq!(videos["items"].as_array().expect("items").len(), 1);
        assert_eq!(videos["items"][0]["id"], video["id"]);
        let queued = app.get("/v1/jobs?status=queued&kind=&cursor=", &token).await.json();
        assert_eq!(queued["items"].as_array().expect("items").len(), 1);
        assert_eq!(queued["items"][0]["id"], report["id"]);
        assert_eq!(queued["next_cursor"], json!(null));
    }

    async fn cancelling_a_queued_job_cancels_it(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let job = app.submit(&token, &year_report()).await;
        let path = format!("/v1/jobs/{}", job["id"].as_str().expect("id"));
        let cancelled = app.post(&format!("{path}/cancel"), &token, &json!({})).await;
        assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text());
        assert_eq!(cancelled.json()["status"], "cancelled");
        assert_eq!(app.get(&path, &token).await.json()["status"], "cancelled");
        // Cancelling what has ended is a conflict, not a silent success.
        app.post(&format!("{path}/cancel"), &token, &json!({})).await.problem(StatusCode::CONFLICT);
    }

    async fn a_running_job_is_asked_to_stop(backend) {
        let app = TestApp::new(backend).await;
        let token = app.admin("t1");
        let job = app.submit(&token, &json!({"kind": "noop", "payload": {}})).await;
        let claimed = app.store.claim(longhaul_jobs::Lane::Default, 1, std::time::Duration::from_secs(60), "test-worker").await.expect("claim");
        assert_eq!(claimed.len(), 1);
        let response = app.post(&format!("/v1/jobs/{}/cancel", job["id"].as_str().expect("id")), &token, &json!({})).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
        let body = response.json();
        assert_eq!(body["status"], "running");
        assert!(body["cancel_requested_at"].is_string(), "{body}");
    }
}
