//! Probes and the OpenAPI document.

use axum::{
    body::Body,
    http::{Method, StatusCode},
};

use crate::helpers::{request, TestApp};

backend_tests! {
    async fn healthz_and_readyz_answer_without_a_token(backend) {
        let app = TestApp::new(backend).await;
        let health = app.send(request(Method::GET, "/healthz", None).body(Body::empty()).expect("a request")).await;
        assert_eq!((health.status, health.json()), (StatusCode::OK, serde_json::json!({"status": "ok"})));
        let ready = app.send(request(Method::GET, "/readyz", None).body(Body::empty()).expect("a request")).await;
        assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    }

    async fn openapi_json_is_an_openapi_3_1_document_of_the_api(backend) {
        let app = TestApp::new(backend).await;
        let response = app.send(request(Method::GET, "/openapi.json", None).body(Body::empty()).expect("a request")).await;
        assert_eq!(response.status, StatusCode::OK);
        let document = response.json();
        assert!(document["openapi"].as_str().expect("an openapi version").starts_with("3.1"), "{}", document["openapi"]);
        for path in ["/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/cancel", "/v1/jobs/{id}/events", "/v1/admin/queues",
                     "/v1/admin/lanes/{lane}/pause", "/v1/admin/jobs/{id}/retry", "/v1/uploads", "/v1/uploads/{id}",
                     "/v1/uploads/{id}/upload", "/healthz", "/readyz"] {
            assert!(document["paths"].get(path).is_some(), "{path} is not documented");
        }
        assert!(document["components"]["schemas"].get("Problem").is_some());
        assert!(document["components"]["securitySchemes"].get("bearer").is_some());
    }

    async fn openapi_lists_400_401_408_415_429_and_503_where_they_can_happen(backend) {
        let app = TestApp::new(backend).await;
        let document = app.send(request(Method::GET, "/openapi.json", None).body(Body::empty()).expect("a request")).await.json();
        let responses = |path: &str, method: &str| document["paths"][path][method]["responses"].clone();
        let submit = responses("/v1/jobs", "post");
        for status in ["401", "408", "429"] {
            assert!(submit.get(status).is_some(), "POST /v1/jobs lacks {status}: {submit}");
        }
        assert!(submit["429"]["headers"].get("Retry-After").is_some(), "{submit}");
        for (path, method) in [("/v1/media/{id}/upload", "put"), ("/v1/uploads/{id}/upload", "put"),
                               ("/v1/uploads", "post"), ("/v1/reservations/{id}", "patch"),
                               ("/v1/mail-accounts/{id}", "delete"), ("/v1/admin/lanes/{lane}/redrive", "post"),
                               ("/v1/jobs/{id}/events", "get")] {
            assert!(responses(path, method).get("429").is_some(), "{method} {path} lacks 429");
        }
        let list = responses("/v1/jobs", "get");
        assert!(list.get("401").is_some() && list.get("429").is_none(), "{list}");
        assert!(responses("/healthz", "get").get("401").is_none(), "no token, no 401");
        assert!(responses("/v1/media", "post").get("409").is_some(), "the photo quota");
        // An import file's PUT answers each of these, and says so.
        let upload = responses("/v1/uploads/{id}/upload", "put");
        for status in ["200", "400", "401", "403", "404", "408", "409", "413", "415", "429", "503"] {
            assert!(upload.get(status).is_some(), "PUT /v1/uploads/{{id}}/upload lacks {status}: {upload}");
        }
        for status in ["201", "400", "401", "403", "408", "413", "415", "422", "429", "503"] {
            assert!(responses("/v1/uploads", "post").get(status).is_some(), "POST /v1/uploads lacks {status}");
        }
        // Behind a token the database may be out of reach: 503 with Retry-After.
        assert!(list["503"]["headers"].get("Retry-After").is_some(), "{list}");
        assert!(responses("/healthz", "get").get("503").is_none(), "{}", responses("/healthz", "get"));
        // A JSON body may be no JSON at all (400) or not JSON by its type (415).
        for (path, method) in [("/v1/jobs", "post"), ("/v1/reservations/{id}", "patch"), ("/v1/mail-accounts", "post")] {
            for status in ["400", "415"] {
                assert!(responses(path, method).get(status).is_some(), "{method} {path} lacks {status}");
            }
        }
        // A query parameter may not parse.
        assert!(list.get("400").is_some(), "{list}");
        assert!(responses("/v1/jobs/{id}", "get").get("400").is_none(), "no body, no query: no 400");
    }

    async fn every_error_answer_is_a_described_problem_document(backend) {
        let app = TestApp::new(backend).await;
        let document = app.send(request(Method::GET, "/openapi.json", None).body(Body::empty()).expect("a request")).await.json();
        let mut errors = 0;
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("operations") {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    if !(status.starts_with('4') || status.starts_with('5')) {
                        continue;
                    }
                    errors += 1;
                    let at = format!("{method} {path} {status}");
                    let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/Problem", "{at}: {response}");
                    let description = response["description"].as_str().unwrap_or_default();
                    assert!(!description.is_empty(), "{at} says nothing of what went wrong");
                }
            }
        }
        assert!(errors > 100, "only {errors} error answers documented");
    }
}

/// Readiness fails with a 503 problem when a dependency does not answer.
#[tokio::test]
async fn readyz_is_unavailable_when_a_check_fails() {
    struct Down;
    #[async_trait::async_trait]
    impl longhaul_api::ReadinessCheck for Down {
        fn name(&self) -> &str {
            "queue"
        }
        async fn check(&self) -> anyhow::Result<()> {
            anyhow::bail!("connection refused")
        }
    }
    let store = longhaul_jobs::testing::TestStore::new(longhaul_jobs::testing::Backend::Sqlite).await.expect("a store");
    let config = longhaul_api::ApiConfig {
        auth: longhaul_api::auth::AuthConfig { dev_key: Some(vec![1; 32]), ..Default::default() },
        readiness: vec![std::sync::Arc::new(Down)],
        ..Default::default()
    };
    let router = longhaul_api::router(store.store.clone(), config).expect("the router builds");
    let response = tower::ServiceExt::oneshot(
        router,
        request(Method::GET, "/readyz", None).body(Body::empty()).expect("a request"),
    )
    .await
    .expect("infallible");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}

#[test]
fn a_router_without_any_way_to_verify_tokens_is_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let store = runtime
        .block_on(longhaul_jobs::testing::TestStore::new(longhaul_jobs::testing::Backend::Sqlite))
        .expect("a store");
    assert!(longhaul_api::router(store.store.clone(), longhaul_api::ApiConfig::default()).is_err());
}
