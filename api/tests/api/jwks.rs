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
    configured_app(backend, AuthConfig::default()).await
}

/// The issuer and app clients of [`checked_app`].
const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_test";
const APP_CLIENT: &str = "app-ios";

/// An app that also checks the issuer and the audience (two app clients),
/// and accepts dev tokens signed with `[5; 32]`.
async fn checked_app(backend: longhaul_jobs::testing::Backend) -> TestApp {
    let auth = AuthConfig {
        issuer: Some(ISSUER.to_owned()),
        audiences: vec![APP_CLIENT.to_owned(), "app-android".to_owned()],
        dev_key: Some(vec![5; 32]),
        ..AuthConfig::default()
    };
    configured_app(backend, auth).await.0
}

/// An app verifying tokens with the test JWKS, and `auth`'s other settings.
async fn configured_app(backend: longhaul_jobs::testing::Backend, auth: AuthConfig) -> (TestApp, Arc<AtomicUsize>) {
    let (jwks_url, fetches) = serve_jwks().await;
    let store = TestStore::new(backend).await.expect("a fresh test store");
    let config = ApiConfig { auth: AuthConfig { jwks_url: Some(jwks_url), ..auth }, ..ApiConfig::default() };
    let router = router(store.store.clone(), config).expect("the router builds");
    (TestApp { router, store, objects: file_objects().await, dev_key: vec![0; 32] }, fetches)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("a sane clock").as_secs()
}

/// A Cognito id token for `checked_app`, with `extra` claims over the defaults.
fn id_token(extra: Value) -> String {
    let mut claims = json!({
        "sub": "u1", "custom:tenant_id": "acme", "token_use": "id", "aud": APP_CLIENT, "iss": ISSUER, "exp": exp(),
    });
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        for (name, value) in extra {
            if value.is_null() {
                claims.remove(name);
            } else {
                claims.insert(name.clone(), value.clone());
            }
        }
    }
    cognito_token("test-key-1", claims)
}

/// Asserts a 401 whose detail mentions `says`.
async fn refused(app: &TestApp, token: &str, says: &str) {
    let problem = app.get("/v1/jobs", token).await.problem(StatusCode::UNAUTHORIZED);
    assert!(problem["detail"].as_str().is_some_and(|detail| detail.contains(says)), "expected `{says}`: {problem}");
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
        let config = ApiConfig { auth: AuthConfig { jwks_url: Some(jwks_url), ..AuthConfig::default() }, ..ApiConfig::default() };
        let router = router(store.store.clone(), config).expect("the router builds");
        let app = TestApp { router, store, objects: file_objects().await, dev_key: vec![0; 32] };
        let token = cognito_token("test-key-1", json!({"sub": "u", "custom:tenant_id": "t", "exp": exp()}));
        app.get("/v1/jobs", &token).await.problem(StatusCode::SERVICE_UNAVAILABLE);
        // Within the refetch interval, the answer stays "unavailable", not "unknown key".
        app.get("/v1/jobs", &token).await.problem(StatusCode::SERVICE_UNAVAILABLE);
    }

    async fn a_token_from_another_issuer_or_without_one_is_unauthorized(backend) {
        let app = checked_app(backend).await;
        assert_eq!(app.get("/v1/jobs", &id_token(json!({}))).await.status, StatusCode::OK);
        refused(&app, &id_token(json!({"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_other"})), "issuer").await;
        refused(&app, &id_token(json!({"iss": null})), "`iss`").await;
    }

    async fn a_token_for_another_audience_is_unauthorized(backend) {
        let app = checked_app(backend).await;
        // Either configured app client will do; any of an array's.
        assert_eq!(app.get("/v1/jobs", &id_token(json!({"aud": "app-android"}))).await.status, StatusCode::OK);
        assert_eq!(app.get("/v1/jobs", &id_token(json!({"aud": ["other", APP_CLIENT]}))).await.status, StatusCode::OK);
        refused(&app, &id_token(json!({"aud": "someone-elses-app"})), "audience").await;
        refused(&app, &id_token(json!({"aud": null})), "`aud`").await;
    }

    async fn access_tokens_are_checked_on_client_id_and_id_tokens_on_aud(backend) {
        let app = checked_app(backend).await;
        let access = id_token(json!({"token_use": "access", "aud": null, "client_id": APP_CLIENT}));
        assert_eq!(app.get("/v1/jobs", &access).await.status, StatusCode::OK);
        refused(&app, &id_token(json!({"token_use": "access", "aud": null, "client_id": "someone-elses-app"})), "app client").await;
        // An access token does not name its client in `aud`, nor an id token in `client_id`.
        refused(&app, &id_token(json!({"token_use": "access"})), "`client_id`").await;
        refused(&app, &id_token(json!({"aud": null, "client_id": APP_CLIENT})), "`aud`").await;
        // Refresh tokens, or anything else, are not for the API.
        refused(&app, &id_token(json!({"token_use": "refresh"})), "token_use").await;
    }

    async fn a_token_that_is_not_valid_yet_is_unauthorized(backend) {
        let app = checked_app(backend).await;
        refused(&app, &id_token(json!({"nbf": now() + 600})), "not valid yet").await;
        // Within the leeway for clocks that differ, it is accepted.
        assert_eq!(app.get("/v1/jobs", &id_token(json!({"nbf": now() + 5}))).await.status, StatusCode::OK);
    }

    async fn a_token_naming_a_reserved_tenant_is_unauthorized(backend) {
        let app = checked_app(backend).await;
        refused(&app, &id_token(json!({"custom:tenant_id": "_longhaul", "cognito:groups": ["platform"]})), "reserved").await;
        refused(&app, &id_token(json!({"custom:tenant_id": "t".repeat(129)})), "longer").await;
    }

    async fn dev_tokens_keep_working_when_issuer_and_audience_are_set(backend) {
        // The issuer and app clients are the identity provider's; a dev token
        // answers to the dev key, which could write any claim anyway.
        let app = checked_app(backend).await;
        let dev = longhaul_api::auth::mint_dev_token(&[5; 32], "acme", "u1", longhaul_api::auth::Role::User, Duration::from_secs(60))
            .expect("a dev token");
        assert_eq!(app.get("/v1/jobs", &dev).await.status, StatusCode::OK);
    }
}
