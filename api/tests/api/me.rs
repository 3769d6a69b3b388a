//! `/v1/me`: a user's profile, push devices and in-app inbox, each the
//! caller's own.

use std::time::Duration;

use axum::{
    body::Body,
    http::{header, Method, StatusCode},
};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use longhaul_jobs::inbox::{NewNotification, NotificationType};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::helpers::{request, TestApp};

/// Records a notification for (tenant, user) as the courier does.
async fn notify(app: &TestApp, tenant: &str, user: &str, event_id: i64, title: &str, delay: chrono::Duration) {
    notify_at(app, tenant, user, event_id, title, Utc::now() + delay).await;
}

/// Records a notification that reaches the inbox at `deliver_at`.
async fn notify_at(app: &TestApp, tenant: &str, user: &str, event_id: i64, title: &str, deliver_at: DateTime<Utc>) {
    let notification = NewNotification {
        tenant_id: tenant.into(),
        user_id: user.into(),
        event_id,
        kind: NotificationType::ReservationChanged,
        title: title.into(),
        body: format!("{title}: the body"),
        data: json!({"reservation_id": "r1"}),
        urgent: false,
        deliver_at,
    };
    app.store.store.record_notifications(&[notification], false).await.expect("recorded");
}

fn titles(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

backend_tests! {
    async fn a_profile_starts_with_defaults_and_a_patch_changes_only_what_it_names(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let me = app.get("/v1/me", &token).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.text());
        assert_eq!(me.json(), json!({
            "user_id": "u1", "email": null, "name": null, "time_zone": null, "locale": null,
            "notifications": {"reservation.changed": true, "trip.ready": true, "report.ready": true, "video.ready": true},
            "quiet_hours": null,
        }));

        let patched = app.patch("/v1/me", &token, &json!({
            "time_zone": "America/Sao_Paulo", "locale": "pt_br",
            "notifications": {"video.ready": false},
            "quiet_hours": {"start": "22:00", "end": "07:00"},
        })).await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
        let patched = patched.json();
        assert_eq!((patched["time_zone"].clone(), patched["locale"].clone()), (json!("America/Sao_Paulo"), json!("pt-BR")));
        assert_eq!(patched["notifications"]["video.ready"], json!(false));
        assert_eq!(patched["notifications"]["reservation.changed"], json!(true));
        assert_eq!(patched["quiet_hours"], json!({"start": "22:00", "end": "07:00"}));
        assert_eq!(app.get("/v1/me", &token).await.json(), patched, "stored as answered");

        // One field changes; the others stay. `null` clears.
        let again = app.patch("/v1/me", &token, &json!({"quiet_hours": null, "notifications": {"video.ready": true}})).await.json();
        assert_eq!((again["time_zone"].clone(), again["quiet_hours"].clone()), (json!("America/Sao_Paulo"), Value::Null));
        assert_eq!(again["notifications"]["video.ready"], json!(true));

        // Another user of the tenant, and the same user id in another tenant, are someone else.
        assert_eq!(app.get("/v1/me", &app.user("t1", "u2")).await.json()["time_zone"], Value::Null);
        assert_eq!(app.get("/v1/me", &app.user("t2", "u1")).await.json()["time_zone"], Value::Null);
        // An admin's /v1/me is their own.
        assert_eq!(app.get("/v1/me", &app.admin("t1")).await.json()["user_id"], "admin");
    }

    async fn bad_profile_fields_are_422s_that_name_them(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let cases = [
            (json!({"time_zone": "Mars/Olympus_Mons"}), "time_zone"),
            (json!({"time_zone": "x".repeat(100)}), "time_zone"),
            (json!({"time_zone": " Europe/Lisbon"}), "time_zone"),
            (json!({"locale": "portuguese please"}), "locale"),
            (json!({"notifications": {"spam.daily": true}}), "notifications"),
            (json!({"quiet_hours": {"start": "25:00", "end": "07:00"}}), "quiet_hours.start"),
            (json!({"quiet_hours": {"start": "22:00", "end": "7"}}), "quiet_hours.end"),
        ];
        for (body, field) in cases {
            let problem = app.patch("/v1/me", &token, &body).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert!(problem["field"].as_str().unwrap_or_default().starts_with(field), "{body} → {problem}");
        }
        // Unknown fields, and the wrong types, are 422s too; nothing was stored.
        app.patch("/v1/me", &token, &json!({"email": "me@example.com"})).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        app.patch("/v1/me", &token, &json!({"notifications": {"video.ready": "no"}})).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        // Objects only: serde would read a struct from an array of its fields.
        assert_eq!(app.patch("/v1/me", &token, &json!([null, null])).await.problem(StatusCode::UNPROCESSABLE_ENTITY)["field"], "body");
        for body in [json!({"notifications": [null, null]}), json!({"quiet_hours": ["22:00", "07:00"]}), json!({"notifications": true})] {
            let problem = app.patch("/v1/me", &token, &body).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert!(problem["field"].as_str().is_some_and(|field| field == "notifications" || field == "quiet_hours"), "{body} → {problem}");
        }
        assert_eq!(app.get("/v1/me", &token).await.json()["time_zone"], Value::Null);
    }

    async fn a_token_registered_twice_is_one_device_and_each_user_sees_only_their_own(backend) {
        let app = TestApp::new(backend).await;
        let (alice, bob) = (app.user("t1", "alice"), app.user("t1", "bob"));
        let token = "a".repeat(64);
        let first = app.post("/v1/me/devices", &alice, &json!({"platform": "ios", "token": token, "app_version": "3.2.0"})).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
        let first = first.json();
        assert_eq!((first["platform"].clone(), first["app_version"].clone()), (json!("ios"), json!("3.2.0")));
        assert!(first["disabled_at"].is_null() && first.get("endpoint_arn").is_none() && first.get("tenant_id").is_none(), "{first}");

        let again = app.post("/v1/me/devices", &alice, &json!({"platform": "ios", "token": token, "app_version": "3.3.0"})).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text());
        let again = again.json();
        assert_eq!((again["id"].clone(), again["app_version"].clone()), (first["id"].clone(), json!("3.3.0")));
        let mine = app.get("/v1/me/devices", &alice).await.json();
        assert_eq!(mine["items"].as_array().map(Vec::len), Some(1), "{mine}");

        // The same token in another tenant is another device.
        let elsewhere = app.post("/v1/me/devices", &app.user("t2", "alice"), &json!({"platform": "ios", "token": token})).await;
        assert_eq!(elsewhere.status, StatusCode::CREATED);
        assert_ne!(elsewhere.json()["id"], first["id"]);

        // Bob signs in on Alice's phone: the device is his now, under a new
        // id, and Alice's id names nothing.
        let moved = app.post("/v1/me/devices", &bob, &json!({"platform": "ios", "token": token})).await;
        assert_eq!(moved.status, StatusCode::CREATED, "{}", moved.text());
        let moved = moved.json();
        assert_ne!(moved["id"], first["id"]);
        assert_eq!(app.get("/v1/me/devices", &alice).await.json()["items"], json!([]));
        let first_id = first["id"].as_str().expect("an id");
        app.delete(&format!("/v1/me/devices/{first_id}"), &alice).await.problem(StatusCode::NOT_FOUND);

        // Nobody else deletes Bob's device; Bob does.
        let path = format!("/v1/me/devices/{}", moved["id"].as_str().expect("an id"));
        app.delete(&path, &alice).await.problem(StatusCode::NOT_FOUND);
        app.delete(&path, &app.admin("t1")).await.problem(StatusCode::NOT_FOUND);
        app.delete(&path, &app.user("t2", "bob")).await.problem(StatusCode::NOT_FOUND);
        app.delete(&path, &app.admin("t2")).await.problem(StatusCode::NOT_FOUND);
        app.delete(&path, &app.platform()).await.problem(StatusCode::NOT_FOUND);
        app.delete("/v1/me/devices/not-an-id", &bob).await.problem(StatusCode::NOT_FOUND);
        assert_eq!(app.delete(&path, &bob).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get("/v1/me/devices", &bob).await.json()["items"], json!([]));
    }

    async fn bad_devices_are_422s_and_a_user_keeps_at_most_twenty(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        for (body, field) in [
            (json!({"platform": "ios", "token": ""}), Some("token")),
            (json!({"platform": "ios", "token": "has spaces in it"}), Some("token")),
            (json!({"platform": "ios", "token": "x".repeat(4097)}), Some("token")),
            (json!({"platform": "ios", "token": "abc", "app_version": "v".repeat(65)}), Some("app_version")),
            (json!({"platform": "windows", "token": "abc"}), None),
            (json!({"token": "abc"}), None),
        ] {
            let problem = app.post("/v1/me/devices", &token, &body).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
            if let Some(field) = field {
                assert_eq!(problem["field"], field, "{body} → {problem}");
            }
        }
        for n in 0..22 {
            let created = app.post("/v1/me/devices", &token, &json!({"platform": "android", "token": format!("fcm:{n}")})).await;
            assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        }
        let devices = app.get("/v1/me/devices", &token).await.json();
        let tokens: Vec<&str> = devices["items"].as_array().expect("items").iter().filter_map(|d| d["token"].as_str()).collect();
        assert_eq!(tokens.len(), 20, "{tokens:?}");
        assert_eq!(tokens[0], "fcm:21", "most recent first");
        assert!(!tokens.contains(&"fcm:0") && !tokens.contains(&"fcm:1"), "the two oldest are forgotten: {tokens:?}");
    }

    async fn the_inbox_lists_a_users_own_notifications_newest_first_once_each(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        notify(&app, "t1", "u1", 1, "first", chrono::Duration::seconds(-30)).await;
        notify(&app, "t1", "u1", 2, "second", chrono::Duration::seconds(-20)).await;
        notify(&app, "t1", "u1", 3, "third", chrono::Duration::seconds(-10)).await;
        // The same event drained again: still one notification.
        notify(&app, "t1", "u1", 3, "third again", chrono::Duration::seconds(-5)).await;
        // Held by quiet hours: not in the inbox yet.
        notify(&app, "t1", "u1", 4, "tomorrow", chrono::Duration::hours(8)).await;
        // Someone else's.
        notify(&app, "t1", "u2", 5, "not yours", chrono::Duration::seconds(-10)).await;
        notify(&app, "t2", "u1", 6, "not your tenant", chrono::Duration::seconds(-10)).await;

        let inbox = app.get("/v1/me/notifications", &token).await;
        assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.text());
        let inbox = inbox.json();
        assert_eq!(titles(&inbox), ["third", "second", "first"]);
        let item = &inbox["items"][0];
        for field in ["id", "type", "title", "body", "data", "created_at", "read_at"] {
            assert!(item.get(field).is_some(), "`{field}` missing from {item}");
        }
        assert_eq!((item["type"].clone(), item["read_at"].clone()), (json!("reservation.changed"), Value::Null));

        let page = app.get("/v1/me/notifications?limit=2", &token).await.json();
        assert_eq!(titles(&page), ["third", "second"]);
        let cursor = page["next_cursor"].as_str().expect("a next page");
        let rest = app.get(&format!("/v1/me/notifications?limit=2&cursor={cursor}"), &token).await.json();
        assert_eq!((titles(&rest), rest["next_cursor"].clone()), (vec!["first".to_owned()], Value::Null));

        // Read once; reading again keeps the first time; nobody else reads it.
        let id = item["id"].as_str().expect("an id");
        let read = app.post(&format!("/v1/me/notifications/{id}/read"), &token, &json!({})).await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.text());
        let read_at = read.json()["read_at"].clone();
        assert!(read_at.is_string());
        assert_eq!(app.post(&format!("/v1/me/notifications/{id}/read"), &token, &json!({})).await.json()["read_at"], read_at);
        app.post(&format!("/v1/me/notifications/{id}/read"), &app.user("t1", "u2"), &json!({})).await.problem(StatusCode::NOT_FOUND);
        app.post(&format!("/v1/me/notifications/{id}/read"), &app.admin("t1"), &json!({})).await.problem(StatusCode::NOT_FOUND);
        app.post(&format!("/v1/me/notifications/{id}/read"), &app.admin("t2"), &json!({})).await.problem(StatusCode::NOT_FOUND);
        assert_eq!(titles(&app.get("/v1/me/notifications", &app.admin("t2")).await.json()), Vec::<String>::new());
        assert_eq!(titles(&app.get("/v1/me/notifications?unread=true", &token).await.json()), ["second", "first"]);
        assert_eq!(titles(&app.get("/v1/me/notifications", &app.user("t2", "u1")).await.json()), ["not your tenant"]);
    }

    async fn the_inbox_is_live_over_sse_and_resumes_after_the_last_event_id(backend) {
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        notify(&app, "t1", "u1", 1, "before", chrono::Duration::seconds(-1)).await;
        let open = |last: Option<String>| {
            let mut builder = request(Method::GET, "/v1/me/notifications", Some(&token)).header(header::ACCEPT, "text/event-stream");
            if let Some(last) = last {
                builder = builder.header("last-event-id", last);
            }
            app.router.clone().oneshot(builder.body(Body::empty()).expect("a request"))
        };
        let response = open(None).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers().get(header::CONTENT_TYPE).expect("a content type"), "text/event-stream");
        let mut body = response.into_body();

        // What was there before the stream opened is not sent again; what
        // comes after is, once.
        notify(&app, "t1", "u2", 2, "not yours", chrono::Duration::zero()).await;
        notify(&app, "t1", "u1", 3, "live", chrono::Duration::zero()).await;
        let event = next_event(&mut body).await;
        assert_eq!((event.0.as_deref(), event.1["title"].as_str()), (Some("notification"), Some("live")));
        let live_id = event.2.clone().expect("an event id");
        assert_eq!(Some(live_id.as_str()), event.1["id"].as_str());
        notify(&app, "t1", "u1", 4, "later", chrono::Duration::zero()).await;
        assert_eq!(next_event(&mut body).await.1["title"], "later");
        drop(body);

        // Reconnecting after `live` sends `later` (and not `live` again).
        let mut resumed = open(Some(live_id)).await.expect("infallible").into_body();
        assert_eq!(next_event(&mut resumed).await.1["title"], "later");
        notify(&app, "t1", "u1", 5, "last", chrono::Duration::zero()).await;
        assert_eq!(next_event(&mut resumed).await.1["title"], "last");
    }

    async fn resuming_after_one_of_several_that_arrived_together_sends_the_rest(backend) {
        // The courier records a batch of notifications with one time; the
        // stream sends them in id order, so a client that saw only the first
        // gets the others on reconnecting, and not the first again.
        let app = TestApp::new(backend).await;
        let token = app.user("t1", "u1");
        let at = Utc::now() - chrono::Duration::seconds(2);
        for (event_id, title) in [(1, "one"), (2, "two"), (3, "three")] {
            notify_at(&app, "t1", "u1", event_id, title, at).await;
        }
        let inbox = app.get("/v1/me/notifications", &token).await.json();
        let mut together: Vec<(String, String)> = inbox["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|n| (n["id"].as_str().unwrap_or_default().to_owned(), n["title"].as_str().unwrap_or_default().to_owned()))
            .collect();
        together.sort();
        assert_eq!(together.len(), 3, "{inbox}");
        let request = request(Method::GET, "/v1/me/notifications", Some(&token))
            .header(header::ACCEPT, "text/event-stream")
            .header("last-event-id", together[0].0.as_str());
        let mut resumed = app.router.clone().oneshot(request.body(Body::empty()).expect("a request")).await.expect("infallible").into_body();
        for (id, title) in &together[1..] {
            let event = next_event(&mut resumed).await;
            assert_eq!((event.2.as_deref(), event.1["title"].as_str()), (Some(id.as_str()), Some(title.as_str())));
        }
    }
}

/// The next SSE event: (name, data, id), keep-alive comments skipped; within
/// 30 s in all (the stream's keep-alives must not keep a missing event
/// waited for).
async fn next_event(body: &mut Body) -> (Option<String>, Value, Option<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    loop {
        if let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut name, mut data, mut id) = (None, String::new(), None);
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = Some(value.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                } else if let Some(value) = line.strip_prefix("id:") {
                    id = Some(value.trim().to_owned());
                }
            }
            if data.is_empty() {
                continue;
            }
            return (name, serde_json::from_str(&data).expect("event data is JSON"), id);
        }
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("an event within 30 s")
            .expect("the stream is open")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
}
