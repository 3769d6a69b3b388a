//! Server-sent events follow a job until it ends.

use std::time::Duration;

use axum::{
    body::Body,
    http::{header, Method, StatusCode},
};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use crate::helpers::{request, year_report, TestApp};

/// The (event, data) pairs of an SSE body, keep-alive comments left out.
fn parse_events(body: &str) -> Vec<(String, serde_json::Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = Some(value.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
            Some((name?, serde_json::from_str(&data).expect("event data is JSON")))
        })
        .collect()
}

backend_tests! {
    async fn events_follow_a_job_until_it_ends(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let job = app.submit(&token, &year_report()).await;
        let id = job["id"].as_str().expect("id").to_owned();
        let request = request(Method::GET, &format!("/v1/jobs/{id}/events"), Some(&token)).body(Body::empty()).expect("a request");
        let response = app.router.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers().get(header::CONTENT_TYPE).expect("a content type"), "text/event-stream");
        let mut body = response.into_body();

        // The current state comes first, before anything changes.
        let first = tokio::time::timeout(Duration::from_secs(10), body.frame()).await.expect("a first event")
            .expect("the stream is open").expect("a frame").into_data().expect("data");
        let first = parse_events(&String::from_utf8_lossy(&first));
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].0.as_str(), first[0].1["status"].as_str()), ("status", Some("queued")));

        let cancelled = app.post(&format!("/v1/jobs/{id}/cancel"), &token, &json!({})).await;
        assert_eq!(cancelled.status, StatusCode::OK);
        // The stream ends by itself after the final status.
        let rest = tokio::time::timeout(Duration::from_secs(10), body.collect()).await.expect("the stream ends")
            .expect("a readable body").to_bytes();
        let rest = parse_events(&String::from_utf8_lossy(&rest));
        let statuses: Vec<(&str, &str)> = rest.iter().map(|(name, job)| (name.as_str(), job["status"].as_str().expect("status"))).collect();
        assert_eq!(statuses, [("status", "cancelled")]);
        assert_eq!(rest[0].1["id"], id.as_str());
    }

    async fn events_of_another_users_job_are_not_found(backend) {
        let app = TestApp::new(backend).await;
        let job = app.submit(&app.user("t1", "alice"), &year_report()).await;
        let path = format!("/v1/jobs/{}/events", job["id"].as_str().expect("id"));
        app.get(&path, &app.user("t1", "bob")).await.problem(StatusCode::NOT_FOUND);
    }
}
