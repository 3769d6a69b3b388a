//! `POST /v1/events` and `/v1/admin/event-catalogue`: analytics events are
//! checked against the tenant's catalogue and stored before the 202.

use axum::http::StatusCode;
use chrono::Utc;
use longhaul_jobs::events::hour_of;
use serde_json::{json, Value};

use crate::helpers::TestApp;

fn events(names: &[&str]) -> Value {
    let now = Utc::now();
    json!({"events": names.iter().map(|name| json!({
        "name": name, "occurred_at": now, "properties": {}, "session_id": "s-1", "device": {"platform": "ios"}
    })).collect::<Vec<_>>()})
}

async fn stored(app: &TestApp, tenant: &str) -> usize {
    app.store.events_page(tenant, hour_of(Utc::now()), None, 1_000).await.expect("page").len()
}

backend_tests! {
    async fn a_batch_is_stored_before_the_202(backend) {
        let app = TestApp::new(backend).await;
        let body = json!({"events": [
            {"name": "search", "occurred_at": Utc::now(), "properties": {"query": "lisbon", "results": 3}},
            {"name": "booking_started", "occurred_at": Utc::now(), "properties": {"booking_id": "b1", "value": 99.5}},
        ]});
        let response = app.post("/v1/events", &app.user("t1", "u1"), &body).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
        assert_eq!(response.json(), json!({"accepted": 2, "unknown": 0, "replayed": false}));
        let events = app.store.events_page("t1", hour_of(Utc::now()), None, 10).await.expect("page");
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|event| event.user_id == "u1"));
        assert_eq!(stored(&app, "t2").await, 0);
    }

    async fn an_unknown_event_is_a_422_that_names_it_and_stores_nothing(backend) {
        let app = TestApp::new(backend).await;
        let response = app.post("/v1/events", &app.user("t1", "u1"), &events(&["search", "wishlist_opened"])).await;
        let problem = response.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "events[1].name", "{problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("wishlist_opened")), "{problem}");
        assert_eq!(stored(&app, "t1").await, 0, "the batch is all or nothing");
    }

    async fn a_tenant_that_accepts_unknown_events_keeps_them_apart(backend) {
        let app = TestApp::new(backend).await;
        let admin = app.admin("t1");
        let mut catalogue = app.get("/v1/admin/event-catalogue", &admin).await.json();
        catalogue["unknown_events"] = json!("accept");
        let put = app.put("/v1/admin/event-catalogue", &admin, &catalogue).await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.text());
        let response = app.post("/v1/events", &app.user("t1", "u1"), &events(&["search", "wishlist_opened"])).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
        assert_eq!(response.json()["unknown"], 1);
        // Another tenant's catalogue is still the default.
        let other = app.post("/v1/events", &app.user("t2", "u1"), &events(&["wishlist_opened"])).await;
        other.problem(StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn a_retried_batch_lands_once_and_a_reused_key_is_a_conflict(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let body = events(&["search", "payment"]);
        let key = [("Idempotency-Key", "batch-1")];
        let first = app.post_with("/v1/events", &token, &body, &key).await;
        assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
        let retry = app.post_with("/v1/events", &token, &body, &key).await;
        assert_eq!(retry.status, StatusCode::ACCEPTED, "{}", retry.text());
        assert_eq!(retry.json(), json!({"accepted": 2, "unknown": 0, "replayed": true}));
        assert_eq!(stored(&app, "t1").await, 2);
        let other = app.post_with("/v1/events", &token, &events(&["search"]), &key).await;
        other.problem(StatusCode::CONFLICT);
    }

    async fn bad_events_are_422s_that_name_the_field(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let now = Utc::now();
        for (body, field) in [
            (json!({"events": []}), "events"),
            (json!({"events": [{"name": "search"}]}), "events[0]"),
            (json!({"events": [{"name": "search", "occurred_at": now, "properties": {"results": "many"}}]}), "events[0].properties.results"),
            (json!({"events": [{"name": "search", "occurred_at": now, "properties": {"q": [1]}}]}), "events[0].properties.q"),
            (json!({"events": [{"name": "search", "occurred_at": now, "device": {"colour": "red"}}]}), "events[0].device"),
            (json!({"events": [{"name": "search", "occurred_at": "2001-01-01T00:00:00Z"}]}), "events[0].occurred_at"),
        ] {
            let problem = app.post("/v1/events", &token, &body).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert!(problem["field"].as_str().is_some_and(|f| f.starts_with(field)), "{field}: {problem}");
        }
        let many = events(&["search"; 501]);
        let problem = app.post("/v1/events", &token, &many).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "events");
    }

    async fn only_admins_read_and_change_the_catalogue_and_every_change_is_audited(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        app.get("/v1/admin/event-catalogue", &user).await.problem(StatusCode::FORBIDDEN);
        let admin = app.admin("t1");
        let catalogue = app.get("/v1/admin/event-catalogue", &admin).await.json();
        for name in ["search", "booking_started", "payment", "booking_confirmed", "barcode_scanned", "cart_item_added"] {
            assert!(catalogue["events"].get(name).is_some(), "{name} is in the default catalogue: {catalogue}");
        }
        assert_eq!(catalogue["events"]["booking_confirmed"]["properties"]["email"]["pii"], "pseudonymise");
        app.put("/v1/admin/event-catalogue", &user, &catalogue).await.problem(StatusCode::FORBIDDEN);

        let mut changed = catalogue.clone();
        changed["events"]["app_opened"] = json!({"properties": {"referrer": {"type": "string", "pii": "none"}}});
        let put = app.put("/v1/admin/event-catalogue", &admin, &changed).await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.text());
        assert_eq!(app.get("/v1/admin/event-catalogue", &admin).await.json(), changed);
        assert_eq!(app.get("/v1/admin/event-catalogue", &app.admin("t2")).await.json(), catalogue, "t2 keeps the default");
        let ok = app.post("/v1/events", &user, &events(&["app_opened"])).await;
        assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.text());
        let log = app.get("/v1/admin/audit", &admin).await.json();
        assert_eq!(log["items"][0]["action"], "event_catalogue.put", "{log}");
    }

    async fn a_catalogue_that_would_leak_personal_data_or_clash_is_refused(backend) {
        let app = TestApp::new(backend).await;
        let admin = app.admin("t1");
        let catalogue = app.get("/v1/admin/event-catalogue", &admin).await.json();
        let mut clear = catalogue.clone();
        clear["events"]["search"]["properties"]["email"] = json!({"type": "string", "pii": "none"});
        let problem = app.put("/v1/admin/event-catalogue", &admin, &clear).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "events.search.properties.email.pii");
        let mut clash = catalogue.clone();
        clash["events"]["search"]["properties"]["value"] = json!({"type": "string"});
        let problem = app.put("/v1/admin/event-catalogue", &admin, &clash).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "events.search.properties.value.type");
        let mut typo = catalogue;
        typo["events"]["search"]["properties"]["query"] = json!({"type": "text"});
        app.put("/v1/admin/event-catalogue", &admin, &typo).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.get("/v1/admin/event-catalogue", &admin).await.json()["events"]["search"]["properties"]["query"]["type"], "string");
    }

    async fn a_user_deletes_their_events_and_the_lake_rewrite_is_queued(backend) {
        let app = TestApp::new(backend).await;
        let alice = app.user("t1", "alice");
        for token in [&alice, &app.user("t1", "bob")] {
            let response = app.post("/v1/events", token, &events(&["search", "payment"])).await;
            assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
        }
        let response = app.delete("/v1/me/events", &alice).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
        let deletion = response.json();
        assert_eq!((deletion["user_id"].clone(), deletion["raw_deleted"].clone()), (json!("alice"), json!(2)));
        let left = app.store.events_page("t1", hour_of(Utc::now()), None, 100).await.expect("page");
        assert_eq!(left.iter().map(|event| event.user_id.as_str()).collect::<Vec<_>>(), ["bob", "bob"]);
        // The rewrite is the platform's job in the tenant, due once exports
        // that read the rows have ended.
        let id = deletion["erase_job_id"].as_str().expect("a job id").parse().expect("a uuid");
        let job = app.store.get_job(&longhaul_jobs::Scope::Platform, id).await.expect("get").expect("the job");
        assert_eq!((job.kind.as_str(), job.tenant_id.as_str(), job.user_id.as_str()), ("events_erase", "t1", "_scheduler"));
        assert!(job.run_at > Utc::now() + chrono::Duration::minutes(30), "{job:?}");
        assert_eq!(app.store.pending_event_deletions("t1").await.expect("read").len(), 1);
    }

    async fn an_admin_deletes_a_users_events_in_their_own_tenant_only(backend) {
        let app = TestApp::new(backend).await;
        for tenant in ["t1", "t2"] {
            let response = app.post("/v1/events", &app.user(tenant, "carol"), &events(&["search"])).await;
            assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
        }
        app.delete("/v1/admin/users/carol/events", &app.user("t1", "u1")).await.problem(StatusCode::FORBIDDEN);
        // A tenant admin naming another tenant still acts on their own.
        let response = app.delete("/v1/admin/users/carol/events?tenant=t2", &app.admin("t1")).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
        assert_eq!(stored(&app, "t1").await, 0);
        assert_eq!(stored(&app, "t2").await, 1, "t2's events are not t1's admin's to delete");
        let log = app.get("/v1/admin/audit", &app.admin("t1")).await.json();
        assert_eq!(log["items"][0]["action"], "events.delete_user", "{log}");
        assert_eq!(log["items"][0]["target"], "carol");
        app.delete("/v1/admin/users/_scheduler/events", &app.admin("t1")).await.problem(StatusCode::NOT_FOUND);
    }

    async fn a_funnel_is_for_admins_and_checked_at_submission(backend) {
        let app = TestApp::new(backend).await;
        let funnel = json!({"kind": "report_build", "payload": {"report": "funnel",
            "steps": ["search", "booking_started", "payment"],
            "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "window_hours": 24}});
        app.post("/v1/jobs", &app.user("t1", "u1"), &funnel).await.problem(StatusCode::FORBIDDEN);
        let job = app.submit(&app.admin("t1"), &funnel).await;
        assert_eq!(job["payload"]["steps"], json!(["search", "booking_started", "payment"]));
        let mut one_step = funnel.clone();
        one_step["payload"]["steps"] = json!(["search"]);
        let problem = app.post("/v1/jobs", &app.admin("t1"), &one_step).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "payload.steps");
        let mut backwards = funnel;
        backwards["payload"]["to"] = json!("2026-10-01T00:00:00Z");
        let problem = app.post("/v1/jobs", &app.admin("t1"), &backwards).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "payload.to");
    }
}
