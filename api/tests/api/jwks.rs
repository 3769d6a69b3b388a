//! Production tokens: RS256, verified against the identity provider's JWKS.
//!
//! The key pair under `fixtures/` is a throwaway generated for these tests
//! only (see `fixtures/README.md`); the JWKS is served by a local server.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{http::StatusCode, routing::get, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use longhaul_api::{auth::AuthConfig, router, ApiConfig};
use longhaul_jobs::testing::TestStore;
use serde_json::{json, Value};

use crate::helpers::{year_report, TestApp};

const TEST_PRIVATE_KEY: &str = include_str!("fixtures/test-rsa-key.pem");
const TEST_JWKS: &str = include_str!("fixtures/test-jwks.json");

/// Serves the test JWKS on a free loopback port; returns its URL and a counter of fetches.
async fn serve_jwks() -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { ([("content-type", "application/json")], TEST_JWKS) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/.well-known/jwks.json"), fetches)
}

fn cognito_token(kid: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(TEST_PRIVATE_KEY.as_bytes()).expect("the test key parses");
    jsonwebtoken::encode(&header, &claims, &key).expect("a signed token")
}

fn exp() -> u64 {
    (SystemTime::now() + Duration::from_secs(600)).duration_since(UNIX_EPOCH).expect("a sane clock").as_secs()
}

async fn file_objects() -> longhaul_jobs::testing::TestObjectStore {
    longhaul_jobs::testing::TestObjectStore::new(longhaul_jobs::testing::ObjectBackend::File)
        .await
        .expect("an object store")
}

/// An app that accepts only JWKS-verified tokens, like production.
async fn production_app(backend: longhaul_jobs::testing::Backend) -> (TestApp, Arc<AtomicUsize>) {
    let (jwks_url, fetches) = serve_jwks().await;
    let store = TestStore::new(backend).await.expect("a fresh test store");
    let config = ApiConfig { auth: AuthConfig { dev_key: None, jwks_url: Some(jwks_url) }, ..ApiConfig::default() };
    let router = router(store.store.clone(), config).expect("the router builds");
    (TestApp { router, store, objects: file_objects().await, dev_key: vec![0; 32] }, fetches)
}

backend_tests! {
    async fn a_cognito_token_verified_by_jwks_is_accepted(backend) {
        let (app, fetches) = production_app(backend).await;
        let admin = cognito_token("test-key-1", json!({
            "sub": "a1b2c3", "custom:tenant_id": "acme", "cognito:groups": ["staff", "admin"],
            "token_use": "id", "aud": "some-app-client", "exp": exp(),
        }));
        let queues = app.get("/v1/admin/queues", &admin).await;
        assert_eq!(queues.status, StatusCode::OK, "{}", queues.text());
        let user = cognito_token("test-key-1", json!({"sub": "u9", "custom:tenant_id": "acme", "exp": exp()}));
        let job = app.submit(&user, &year_report()).await;
        assert_eq!((job["tenant_id"].as_str(), job["user_id"].as_str()), (Some("acme"), Some("u9")));
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "keys are cached");
    }

    async fn an_unknown_kid_is_unauthorized_and_refetches_at_most_once(backend) {
        let (app, fetches) = production_app(backend).await;
        for _ in 0..3 {
            let token = cognito_token("rotated-away", json!({"sub": "u", "custom:tenant_id": "t", "exp": exp()}));
            app.get("/v1/jobs", &token).await.problem(StatusCode::UNAUTHORIZED);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "refetches are rate-limited");
        // The key marked for encryption is not a signing key.
        let token = cognito_token("test-enc-key", json!({"sub": "u", "custom:tenant_id": "t", "exp": exp()}));
        app.get("/v1/jobs", &token).await.problem(StatusCode::UNAUTHORIZED);
    }

    async fn dev_tokens_are_refused_without_a_dev_key(backend) {
        let (app, _) = production_app(backend).await;
        let dev = longhaul_api::auth::mint_dev_token(&[9; 32], "t", "u", longhaul_api::auth::Role::Platform, Duration::from_secs(60))
            .expect("a dev token");
        app.get("/v1/jobs", &dev).await.problem(StatusCode::UNAUTHORIZED);
    }

    async fn an_unreachable_jwks_is_unavailable_not_unauthorized(backend) {
        // A port that was free a moment ago: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let address = listener.local_addr().expect("an address");
        drop(listener);
        let store = TestStore::new(backend).await.expect("a fresh test store");
        let jwks_url = format!("http://{address}/jwks.json");
        let config = ApiConfig { auth: AuthConfig { dev_key: None, jwks_url: Some(jwks_url) }, ..ApiConfig::default() };
        let router = router(store.store.clone(), config).expect("the router builds");
        let app = TestApp { router, store, objects: file_objects().await, dev_key: vec![0; 32] };
        let token = cognito_token("test-key-1", json!({"sub": "u", "custom:tenant_id": "t", "exp": exp()}));
        app.get("/v1/jobs", &token).await.problem(StatusCode::SERVICE_UNAVAILABLE);
        // Within the refetch interval, the answer stays "unavailable", not "unknown key".
        app.get("/v1/jobs", &token).await.problem(StatusCode::SERVICE_UNAVAILABLE);
    }
}
