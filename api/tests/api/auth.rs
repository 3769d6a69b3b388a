//! Who may do what: tokens, roles, tenants.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{
    body::Body,
    http::{header, Method, StatusCode},
};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::helpers::{noop, request, year_report, TestApp};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("a sane clock").as_secs()
}

fn sign(key: &[u8], claims: serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(key)).expect("a signed token")
}

backend_tests! {
    async fn a_request_without_a_token_is_unauthorized(backend) {
        let app = TestApp::new(backend).await;
        let response = app.send(request(Method::GET, "/v1/jobs", None).body(Body::empty()).expect("a request")).await;
        response.problem(StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers.get(header::WWW_AUTHENTICATE).expect("a challenge"), "Bearer");
    }

    async fn a_token_with_a_bad_signature_is_unauthorized(backend) {
        let app = TestApp::new(backend).await;
        let forged = sign(&[7u8; 32], json!({"sub": "u1", "tenant_id": "t1", "role": "platform", "exp": now() + 600}));
        app.get("/v1/jobs", &forged).await.problem(StatusCode::UNAUTHORIZED);
        app.get("/v1/jobs", "not-a-jwt").await.problem(StatusCode::UNAUTHORIZED);
    }

    async fn an_expired_token_is_unauthorized(backend) {
        let app = TestApp::new(backend).await;
        let expired = sign(&app.dev_key, json!({"sub": "u1", "tenant_id": "t1", "role": "user", "exp": now() - 600}));
        let problem = app.get("/v1/jobs", &expired).await.problem(StatusCode::UNAUTHORIZED);
        assert!(problem["detail"].as_str().expect("a detail").contains("expired"), "{problem}");
    }

    async fn a_token_that_is_not_valid_yet_is_unauthorized(backend) {
        let app = TestApp::new(backend).await;
        let early = sign(&app.dev_key, json!({"sub": "u1", "tenant_id": "t1", "role": "user", "nbf": now() + 600, "exp": now() + 1200}));
        let problem = app.get("/v1/jobs", &early).await.problem(StatusCode::UNAUTHORIZED);
        assert!(problem["detail"].as_str().expect("a detail").contains("not valid yet"), "{problem}");
        let now_valid = sign(&app.dev_key, json!({"sub": "u1", "tenant_id": "t1", "role": "user", "nbf": now() - 1, "exp": now() + 600}));
        assert_eq!(app.get("/v1/jobs", &now_valid).await.status, StatusCode::OK);
    }

    async fn a_token_naming_a_reserved_or_malformed_tenant_is_unauthorized(backend) {
        let app = TestApp::new(backend).await;
        // The sweep's own tenant: a token naming it would act for every tenant.
        let system = sign(&app.dev_key, json!({"sub": "sweep-planner", "tenant_id": "_longhaul", "role": "platform", "exp": now() + 600}));
        let problem = app.get("/v1/admin/jobs", &system).await.problem(StatusCode::UNAUTHORIZED);
        assert!(problem["detail"].as_str().expect("a detail").contains("reserved"), "{problem}");
        app.post("/v1/jobs", &system, &year_report()).await.problem(StatusCode::UNAUTHORIZED);
        for tenant in ["_any", "t1\n", "", " t1"] {
            let token = sign(&app.dev_key, json!({"sub": "u1", "tenant_id": tenant, "role": "user", "exp": now() + 600}));
            app.get("/v1/jobs", &token).await.problem(StatusCode::UNAUTHORIZED);
        }
    }

    async fn a_token_with_an_unknown_token_use_is_unauthorized(backend) {
        let app = TestApp::new(backend).await;
        let refresh = sign(&app.dev_key, json!({"sub": "u1", "tenant_id": "t1", "token_use": "refresh", "exp": now() + 600}));
        app.get("/v1/jobs", &refresh).await.problem(StatusCode::UNAUTHORIZED);
        let id = sign(&app.dev_key, json!({"sub": "u1", "tenant_id": "t1", "token_use": "id", "exp": now() + 600}));
        assert_eq!(app.get("/v1/jobs", &id).await.status, StatusCode::OK);
    }

    async fn a_token_without_tenant_or_expiry_is_unauthorized(backend) {
        let app = TestApp::new(backend).await;
        let no_tenant = sign(&app.dev_key, json!({"sub": "u1", "exp": now() + 600}));
        app.get("/v1/jobs", &no_tenant).await.problem(StatusCode::UNAUTHORIZED);
        let no_expiry = sign(&app.dev_key, json!({"sub": "u1", "tenant_id": "t1"}));
        app.get("/v1/jobs", &no_expiry).await.problem(StatusCode::UNAUTHORIZED);
    }

    async fn a_user_cannot_see_another_users_job(backend) {
        let app = TestApp::new(backend).await;
        let job = app.submit(&app.user("t1", "alice"), &year_report()).await;
        let path = format!("/v1/jobs/{}", job["id"].as_str().expect("an id"));
        let bob = app.user("t1", "bob");
        app.get(&path, &bob).await.problem(StatusCode::NOT_FOUND);
        app.post(&format!("{path}/cancel"), &bob, &json!({})).await.problem(StatusCode::NOT_FOUND);
        let list = app.get("/v1/jobs", &bob).await.json();
        assert_eq!(list["items"], json!([]));
    }

    async fn another_tenants_job_is_not_found(backend) {
        let app = TestApp::new(backend).await;
        let job = app.submit(&app.user("t1", "alice"), &year_report()).await;
        let path = format!("/v1/jobs/{}", job["id"].as_str().expect("an id"));
        app.get(&path, &app.admin("t2")).await.problem(StatusCode::NOT_FOUND);
        app.get(&path, &app.user("t2", "alice")).await.problem(StatusCode::NOT_FOUND);
    }

    async fn an_admin_sees_every_job_of_the_tenant(backend) {
        let app = TestApp::new(backend).await;
        let alice = app.submit(&app.user("t1", "alice"), &year_report()).await;
        let bob = app.submit(&app.user("t1", "bob"), &year_report()).await;
        app.submit(&app.user("t2", "carol"), &year_report()).await;
        let admin = app.admin("t1");
        let list = app.get("/v1/jobs", &admin).await.json();
        let ids: Vec<&str> = list["items"].as_array().expect("items").iter().map(|job| job["id"].as_str().expect("id")).collect();
        assert_eq!(ids.len(), 2, "{list}");
        assert!(ids.contains(&alice["id"].as_str().expect("id")) && ids.contains(&bob["id"].as_str().expect("id")));
        let read = app.get(&format!("/v1/jobs/{}", alice["id"].as_str().expect("id")), &admin).await;
        assert_eq!(read.status, StatusCode::OK);
    }

    async fn the_platform_role_sees_every_tenant_or_one(backend) {
        let app = TestApp::new(backend).await;
        app.submit(&app.user("t1", "alice"), &year_report()).await;
        app.submit(&app.user("t2", "carol"), &year_report()).await;
        let platform = app.token("ops", "root", longhaul_api::auth::Role::Platform);
        let all = app.get("/v1/jobs", &platform).await.json();
        assert_eq!(all["items"].as_array().expect("items").len(), 2);
        let one = app.get("/v1/jobs?tenant=t2", &platform).await.json();
        assert_eq!(one["items"].as_array().expect("items").len(), 1);
        assert_eq!(one["items"][0]["tenant_id"], "t2");
    }

    async fn a_user_cannot_submit_an_admin_only_kind(backend) {
        let app = TestApp::new(backend).await;
        app.post("/v1/jobs", &app.user("t1", "u1"), &noop()).await.problem(StatusCode::FORBIDDEN);
    }

    async fn a_report_without_a_locale_is_written_in_the_users(backend) {
        let app = TestApp::new(backend).await;
        let year = json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026}});
        let locale_of = |job: &serde_json::Value| job["payload"]["locale"].clone();
        // The token's `locale` claim first.
        let brazilian = sign(&app.dev_key, json!({"sub": "u1", "tenant_id": "t1", "locale": "pt_BR", "exp": now() + 600}));
        let job = app.post_with("/v1/jobs", &brazilian, &year, &[("Accept-Language", "en")]).await;
        assert_eq!(locale_of(&job.json()), "pt-BR");
        // Else the best language of Accept-Language that longhaul has.
        let user = app.user("t1", "u2");
        for (header, want) in [
            ("fr-CA, fr;q=0.9, pt;q=0.8, en;q=0.7", json!("pt-BR")),
            ("de, en-GB;q=0.5, pt-BR;q=0.4", json!("en")),
            ("en;q=0, pt-PT", json!("pt-BR")),
            ("fr, de;q=0.5", json!(null)),
            (";;;q=x, ,", json!(null)),
        ] {
            let job = app.post_with("/v1/jobs", &user, &year, &[("Accept-Language", header)]).await;
            assert_eq!(job.status, StatusCode::ACCEPTED, "{}", job.text());
            assert_eq!(locale_of(&job.json()), want, "Accept-Language: {header}");
        }
        // The payload's own locale always wins.
        let english = json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026, "locale": "en"}});
        assert_eq!(locale_of(&app.submit(&brazilian, &english).await), "en");
        // A retry is the same request, whatever language the phone has now.
        let first = app.post_with("/v1/jobs", &user, &year, &[("Idempotency-Key", "k"), ("Accept-Language", "pt-BR")]).await;
        let again = app.post_with("/v1/jobs", &user, &year, &[("Idempotency-Key", "k"), ("Accept-Language", "en")]).await;
        assert_eq!((first.status, again.status), (StatusCode::ACCEPTED, StatusCode::OK), "{}", again.text());
        assert_eq!(first.json()["id"], again.json()["id"]);
    }

    async fn a_video_without_a_name_shows_the_tokens_and_bad_music_is_refused(backend) {
        let app = TestApp::new(backend).await;
        let video = json!({"kind": "video_compile", "payload": {"year": 2026, "aspect": "9:16"}});
        let named = sign(&app.dev_key, json!({"sub": "u1", "tenant_id": "t1", "name": " Ana Souza ", "exp": now() + 600}));
        assert_eq!(app.submit(&named, &video).await["payload"]["name"], "Ana Souza");
        let own = json!({"kind": "video_compile", "payload": {"year": 2026, "aspect": "9:16", "name": "Ana"}});
        assert_eq!(app.submit(&named, &own).await["payload"]["name"], "Ana");
        assert_eq!(app.submit(&app.user("t1", "u2"), &video).await["payload"].get("name"), None);
        let jazz = json!({"kind": "video_compile", "payload": {"year": 2026, "aspect": "9:16", "music": "jazz"}});
        let problem = app.post("/v1/jobs", &named, &jazz).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(problem.to_string().contains("daybreak"), "{problem}");
    }

    async fn vendor_analytics_is_for_admins_and_the_year_summary_for_everyone(backend) {
        let app = TestApp::new(backend).await;
        let vendors = json!({"kind": "report_build", "payload": {"report": "vendor_analytics", "month": "2026-10"}});
        let problem = app.post("/v1/jobs", &app.user("t1", "u1"), &vendors).await.problem(StatusCode::FORBIDDEN);
        assert!(problem["detail"].as_str().unwrap_or_default().contains("whole tenant"), "{problem}");
        assert_eq!(app.submit(&app.admin("t1"), &vendors).await["kind"], "report_build");
        let year = json!({"kind": "report_build", "payload": {"report": "year_summary", "year": 2026}});
        assert_eq!(app.submit(&app.user("t1", "u1"), &year).await["status"], "queued");
    }

    async fn an_admin_can_submit_noop(backend) {
        let app = TestApp::new(backend).await;
        let job = app.submit(&app.admin("t1"), &noop()).await;
        assert_eq!(job["kind"], "noop");
        assert_eq!(job["lane"], "default");
    }

    async fn a_user_cannot_use_admin_endpoints(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        app.get("/v1/admin/queues", &user).await.problem(StatusCode::FORBIDDEN);
        app.get("/v1/admin/jobs", &user).await.problem(StatusCode::FORBIDDEN);
        app.post("/v1/admin/lanes/video/pause", &user, &json!({})).await.problem(StatusCode::FORBIDDEN);
    }
}
