//! Every mistake a client can make is a problem document with the right status.

use axum::{
    body::Body,
    http::{header, Method, StatusCode},
};
use serde_json::json;

use crate::helpers::{request, TestApp};

fn raw_post(token: &str, content_type: &str, body: impl Into<Body>) -> axum::http::Request<Body> {
    request(Method::POST, "/v1/jobs", Some(token))
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .expect("a request")
}

backend_tests! {
    async fn malformed_json_is_a_bad_request(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let problem = app.send(raw_post(&token, "application/json", "{\"kind\": ")).await.problem(StatusCode::BAD_REQUEST);
        assert!(problem["detail"].as_str().expect("detail").contains("line 1"), "{problem}");
    }

    async fn an_unknown_kind_is_unprocessable_naming_kind(backend) {
        let app = TestApp::new(backend).await;
        let response = app.post("/v1/jobs", &app.user("t1", "u1"), &json!({"kind": "mine_bitcoin", "payload": {}})).await;
        let problem = response.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "kind");
    }

    async fn an_invalid_payload_is_unprocessable_naming_the_field(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let missing_year = json!({"kind": "report_build", "payload": {"report": "year_summary"}});
        let problem = app.post("/v1/jobs", &token, &missing_year).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "payload.year");
        let bad_aspect = json!({"kind": "video_compile", "payload": {"year": 2026, "aspect": "4:3"}});
        let problem = app.post("/v1/jobs", &token, &bad_aspect).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "payload.aspect");
    }

    async fn a_mistyped_or_unknown_field_is_unprocessable_naming_it(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let wrong_type = json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026}, "priority": "high"});
        let problem = app.post("/v1/jobs", &token, &wrong_type).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "priority");
        let typo = json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026}, "priorty": 1});
        let problem = app.post("/v1/jobs", &token, &typo).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "priorty");
        let problem = app.post("/v1/jobs", &token, &json!({"payload": {}})).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "kind");
        let bad_time = json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026}, "run_at": "tomorrow"});
        let problem = app.post("/v1/jobs", &token, &bad_time).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "run_at");
    }

    async fn a_priority_out_of_range_is_unprocessable(backend) {
        let app = TestApp::new(backend).await;
        let body = json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026}, "priority": 11});
        let problem = app.post("/v1/jobs", &app.user("t1", "u1"), &body).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "priority");
    }

    async fn only_the_platform_may_raise_a_jobs_priority(backend) {
        let app = TestApp::new(backend).await;
        let body = |priority: i16| json!({"kind": "noop", "payload": {}, "priority": priority});
        for token in [app.user("t1", "u1"), app.admin("t1")] {
            let report = json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026}, "priority": 1});
            let problem = app.post("/v1/jobs", &token, &report).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(problem["field"], "priority");
            assert!(problem["detail"].as_str().expect("detail").contains("every other tenant"), "{problem}");
        }
        let lower = app.post("/v1/jobs", &app.admin("t1"), &body(-5)).await;
        assert_eq!(lower.status, StatusCode::ACCEPTED, "{}", lower.text());
        let higher = app.post("/v1/jobs", &app.platform(), &body(10)).await;
        assert_eq!(higher.status, StatusCode::ACCEPTED, "{}", higher.text());
        assert_eq!(higher.json()["priority"], 10);
    }

    async fn run_at_is_bounded_by_now_and_a_horizon(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let at = |offset: chrono::Duration| {
            json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026}, "run_at": chrono::Utc::now() + offset})
        };
        for offset in [chrono::Duration::minutes(-10), chrono::Duration::days(400)] {
            let problem = app.post("/v1/jobs", &token, &at(offset)).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(problem["field"], "run_at", "{offset}: {problem}");
        }
        // A phone's clock a little behind: that means now, not the past.
        let skewed = app.post("/v1/jobs", &token, &at(chrono::Duration::seconds(-30))).await;
        assert_eq!(skewed.status, StatusCode::ACCEPTED, "{}", skewed.text());
        let run_at: chrono::DateTime<chrono::Utc> = skewed.json()["run_at"].as_str().expect("run_at").parse().expect("a time");
        assert!(run_at > chrono::Utc::now() - chrono::Duration::seconds(10), "{run_at}");
        let later = app.post("/v1/jobs", &token, &at(chrono::Duration::days(30))).await;
        assert_eq!(later.status, StatusCode::ACCEPTED, "{}", later.text());
    }

    async fn a_payload_cannot_name_a_sweep(backend) {
        let app = TestApp::new(backend).await;
        let body = json!({"kind": "reservation_refresh", "payload": {"sweep_id": uuid::Uuid::new_v4(), "shard": 0, "shards": 1}});
        let problem = app.post("/v1/jobs", &app.admin("t1"), &body).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "payload.sweep_id");
        let own = app.post("/v1/jobs", &app.admin("t1"), &json!({"kind": "reservation_refresh", "payload": {"shard": 0, "shards": 1}})).await;
        assert_eq!(own.status, StatusCode::ACCEPTED, "{}", own.text());
        assert_eq!(own.json()["tenant_id"], "t1");
    }

    async fn an_oversize_body_is_payload_too_large(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let huge = json!({"kind": "noop", "payload": {"padding": "x".repeat(300 * 1024)}}).to_string();
        app.send(raw_post(&token, "application/json", huge.clone())).await.problem(StatusCode::PAYLOAD_TOO_LARGE);
        // Without a Content-Length, the limit is enforced while reading.
        let chunks = futures::stream::iter(huge.into_bytes().chunks(8192).map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec())).collect::<Vec<_>>());
        let streamed = raw_post(&token, "application/json", Body::from_stream(chunks));
        app.send(streamed).await.problem(StatusCode::PAYLOAD_TOO_LARGE);
    }

    async fn a_wrong_content_type_is_unsupported(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let body = json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026}}).to_string();
        app.send(raw_post(&token, "text/plain", body.clone())).await.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let no_type = request(Method::POST, "/v1/jobs", Some(&token)).body(Body::from(body.clone())).expect("a request");
        app.send(no_type).await.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let with_charset = app.send(raw_post(&token, "application/json; charset=utf-8", body)).await;
        assert_eq!(with_charset.status, StatusCode::ACCEPTED, "{}", with_charset.text());
    }

    async fn an_unknown_route_is_a_not_found_problem(backend) {
        let app = TestApp::new(backend).await;
        app.get("/v1/nothing-here", &app.user("t1", "u1")).await.problem(StatusCode::NOT_FOUND);
    }

    async fn a_wrong_method_is_a_method_not_allowed_problem(backend) {
        let app = TestApp::new(backend).await;
        let response = app.send(request(Method::DELETE, "/v1/jobs", None).body(Body::empty()).expect("a request")).await;
        response.problem(StatusCode::METHOD_NOT_ALLOWED);
        assert!(response.headers.contains_key(header::ALLOW));
    }

    async fn a_malformed_job_id_is_not_found(backend) {
        let app = TestApp::new(backend).await;
        app.get("/v1/jobs/not-a-uuid", &app.user("t1", "u1")).await.problem(StatusCode::NOT_FOUND);
    }

    async fn an_invalid_list_filter_is_unprocessable_naming_it(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        for (query, field) in [("status=sleeping", "status"), ("kind=nope", "kind"), ("cursor=%%%", "cursor"), ("limit=0", "limit")] {
            let problem = app.get(&format!("/v1/jobs?{query}"), &token).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(problem["field"], field, "{query}");
        }
    }
}
