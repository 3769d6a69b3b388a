//! A retried submission never creates a second job.

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::{year_report, TestApp};

backend_tests! {
    async fn the_same_key_and_body_return_the_same_job(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let first = app.post_with("/v1/jobs", &token, &year_report(), &[("Idempotency-Key", "k-1")]).await;
        assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
        let again = app.post_with("/v1/jobs", &token, &year_report(), &[("Idempotency-Key", "k-1")]).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text());
        assert_eq!(first.json()["id"], again.json()["id"]);
        assert_eq!(again.json()["idempotency_key"], "k-1");
    }

    async fn the_same_key_with_another_body_is_a_conflict(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let first = app.post_with("/v1/jobs", &token, &year_report(), &[("Idempotency-Key", "k-1")]).await;
        assert_eq!(first.status, StatusCode::ACCEPTED);
        let other = json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2025}});
        let conflict = app.post_with("/v1/jobs", &token, &other, &[("Idempotency-Key", "k-1")]).await;
        conflict.problem(StatusCode::CONFLICT);
    }

    async fn payload_key_order_does_not_make_a_different_request(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let a = json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026}});
        let b = json!({"payload": {"year": 2026, "report": "year_summary"}, "kind": "report_build", "priority": 0});
        let first = app.post_with("/v1/jobs", &token, &a, &[("Idempotency-Key", "k")]).await;
        let again = app.post_with("/v1/jobs", &token, &b, &[("Idempotency-Key", "k")]).await;
        assert_eq!((first.status, again.status), (StatusCode::ACCEPTED, StatusCode::OK), "{}", again.text());
    }

    async fn concurrent_duplicates_create_exactly_one_job(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let app = std::sync::Arc::new(app);
        let attempts = (0..20).map(|_| {
            let app = app.clone();
            let token = token.clone();
            tokio::spawn(async move {
                app.post_with("/v1/jobs", &token, &year_report(), &[("Idempotency-Key", "same")]).await
            })
        });
        let responses = futures::future::join_all(attempts).await;
        let mut created = 0;
        let mut ids = std::collections::HashSet::new();
        for response in responses {
            let response = response.expect("the request task finished");
            match response.status {
                StatusCode::ACCEPTED => created += 1,
                StatusCode::OK => {}
                other => panic!("unexpected {other}: {}", response.text()),
            }
            ids.insert(response.json()["id"].as_str().expect("an id").to_owned());
        }
        assert_eq!(created, 1);
        assert_eq!(ids.len(), 1, "{ids:?}");
        let list = app.get("/v1/jobs", &token).await.json();
        assert_eq!(list["items"].as_array().expect("items").len(), 1);
    }

    async fn the_same_key_from_another_user_is_their_own_job(backend) {
        let app = TestApp::new(backend).await;
        let alice = app.post_with("/v1/jobs", &app.user("t1", "alice"), &year_report(), &[("Idempotency-Key", "k")]).await;
        let bob = app.post_with("/v1/jobs", &app.user("t1", "bob"), &year_report(), &[("Idempotency-Key", "k")]).await;
        assert_eq!((alice.status, bob.status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
        assert_ne!(alice.json()["id"], bob.json()["id"]);
    }

    async fn without_a_key_every_submission_is_a_new_job(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let first = app.submit(&token, &year_report()).await;
        let second = app.submit(&token, &year_report()).await;
        assert_ne!(first["id"], second["id"]);
    }
}
