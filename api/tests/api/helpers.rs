//! A test app: the real router on a fresh store, and a small HTTP client for it.

use std::time::Duration;

use axum::{
    body::Body,
    http::{header, HeaderMap, Method, Request, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use longhaul_api::{
    auth::{mint_dev_token, AuthConfig, Role},
    router, ApiConfig,
};
use longhaul_jobs::{
    testing::{Backend, ObjectBackend, TestObjectStore, TestStore},
    travel::mail::{Envelope, LocalKeys},
};
use serde_json::Value;
use tower::ServiceExt;

pub struct TestApp {
    pub router: Router,
    pub store: TestStore,
    /// Where artifacts are (a temporary directory).
    pub objects: TestObjectStore,
    pub dev_key: Vec<u8>,
}

impl TestApp {
    /// The API on a fresh store, accepting dev tokens signed with a random key.
    pub async fn new(backend: Backend) -> TestApp {
        TestApp::with_objects(backend, ObjectBackend::File).await
    }

    /// The API with objects in a directory, or in a bucket of its own on
    /// the local S3.
    pub async fn with_objects(backend: Backend, objects: ObjectBackend) -> TestApp {
        TestApp::configured(backend, objects, |_| {}).await
    }

    /// The API as [`TestApp::new`] makes it, with `tweak` applied to its
    /// configuration first (limits, timeouts).
    pub async fn with_config(backend: Backend, tweak: impl FnOnce(&mut ApiConfig)) -> TestApp {
        TestApp::configured(backend, ObjectBackend::File, tweak).await
    }

    async fn configured(backend: Backend, objects: ObjectBackend, tweak: impl FnOnce(&mut ApiConfig)) -> TestApp {
        let store = TestStore::new(backend).await.expect("a fresh test store");
        let objects = TestObjectStore::new(objects).await.expect("a fresh object store");
        let dev_key = rand::random::<[u8; 32]>().to_vec();
        let mut config = ApiConfig {
            auth: AuthConfig { dev_key: Some(dev_key.clone()), ..AuthConfig::default() },
            sse_poll_interval: Duration::from_millis(50),
            objects: Some(objects.store.clone()),
            secrets: Some(Envelope::new(std::sync::Arc::new(
                LocalKeys::parse(&LocalKeys::generate("test")).expect("test keys"),
            ))),
            ..ApiConfig::default()
        };
        tweak(&mut config);
        let router = router(store.store.clone(), config).expect("the router builds");
        TestApp { router, store, objects, dev_key }
    }

    pub fn token(&self, tenant: &str, user: &str, role: Role) -> String {
        mint_dev_token(&self.dev_key, tenant, user, role, Duration::from_secs(600)).expect("a dev token")
    }

    pub fn user(&self, tenant: &str, user: &str) -> String {
        self.token(tenant, user, Role::User)
    }

    pub fn admin(&self, tenant: &str) -> String {
        self.token(tenant, "admin", Role::Admin)
    }

    /// An operator of the whole platform (their own tenant is `ops`).
    pub fn platform(&self) -> String {
        self.token("ops", "operator", Role::Platform)
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("the body is readable").to_bytes().to_vec();
        TestResponse { status, headers, body }
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.send(request(Method::GET, path, Some(token)).body(Body::empty()).expect("a request")).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> TestResponse {
        self.post_with(path, token, body, &[]).await
    }

    pub async fn post_with(&self, path: &str, token: &str, body: &Value, headers: &[(&str, &str)]) -> TestResponse {
        let mut builder = request(Method::POST, path, Some(token)).header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.send(builder.body(Body::from(body.to_string())).expect("a request")).await
    }

    /// PUTs raw bytes, as a phone uploads a photo.
    pub async fn put_bytes(&self, path: &str, token: &str, bytes: Vec<u8>) -> TestResponse {
        let builder = request(Method::PUT, path, Some(token)).header(header::CONTENT_TYPE, "application/octet-stream");
        self.send(builder.body(Body::from(bytes)).expect("a request")).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> TestResponse {
        self.send_json(Method::PATCH, path, token, body).await
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> TestResponse {
        self.send_json(Method::PUT, path, token, body).await
    }

    async fn send_json(&self, method: Method, path: &str, token: &str, body: &Value) -> TestResponse {
        let builder = request(method, path, Some(token)).header(header::CONTENT_TYPE, "application/json");
        self.send(builder.body(Body::from(body.to_string())).expect("a request")).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> TestResponse {
        self.send(request(Method::DELETE, path, Some(token)).body(Body::empty()).expect("a request")).await
    }

    /// Submits a job that must be created, and returns it.
    pub async fn submit(&self, token: &str, body: &Value) -> Value {
        let response = self.post("/v1/jobs", token, body).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
        response.json()
    }
}

pub fn request(method: Method, path: &str, token: Option<&str>) -> axum::http::request::Builder {
    let builder = Request::builder().method(method).uri(path);
    match token {
        Some(token) => builder.header(header::AUTHORIZATION, format!("Bearer {token}")),
        None => builder,
    }
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.text()))
    }

    /// Asserts an RFC 9457 problem with `status`, and returns it.
    pub fn problem(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        let content_type = self.headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok());
        assert_eq!(content_type, Some("application/problem+json"), "{}", self.text());
        let problem = self.json();
        assert_eq!(problem["status"], status.as_u16(), "{problem}");
        assert!(problem["type"].is_string() && problem["title"].is_string(), "{problem}");
        problem
    }
}

/// A job body that any user may submit.
pub fn year_report() -> Value {
    serde_json::json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026}})
}

pub fn noop() -> Value {
    serde_json::json!({"kind": "noop", "payload": {"sleep_ms": 0}})
}

/// Finishes the reports job the store hands out next with one CSV artifact
/// (`month,trips\n1,2\n`, 16 bytes) in the tenant's object store, as a
/// worker would; returns the artifact.
pub async fn succeed_with_csv(app: &TestApp, tenant: &str) -> longhaul_jobs::store::NewArtifact {
    use longhaul_jobs::{
        objects::ObjectKey,
        store::{AttemptRef, Completion, NewArtifact, Outcome},
        Lane,
    };
    let claimed = app.store.claim(Lane::Reports, 1, Duration::from_secs(30), "w").await.expect("claim");
    let key = ObjectKey::new(tenant, &format!("jobs/{}/1/year-2026.csv", claimed[0].id)).expect("a key");
    app.objects.put_bytes(&key, "month,trips\n1,2\n".into(), "text/csv").await.expect("put");
    let artifact = NewArtifact {
        id: uuid::Uuid::now_v7(),
        name: "year-2026.csv".into(),
        content_type: "text/csv".into(),
        object_key: key.as_str().to_owned(),
        size_bytes: 16,
    };
    let attempt = AttemptRef::of(&claimed[0]);
    let outcome = Outcome::Succeeded { result: None, artifacts: vec![artifact.clone()] };
    app.store.complete(&[Completion { attempt, outcome }]).await.expect("complete");
    artifact
}
