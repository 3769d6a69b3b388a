//! `/v1/mail-accounts`: connecting an inbox, with its credential sealed and
//! never shown again.

use axum::http::StatusCode;
use longhaul_jobs::{model::Scope, store::AttemptRef, travel::mail::PollStart};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::TestApp;

fn account() -> Value {
    json!({
        "imap_host": "imap.inbox.example", "tls": "tls", "username": "traveller@inbox.example",
        "password": "correct horse battery staple",
        "allowed_senders": ["Airline.Example", "hotel.example."]
    })
}

backend_tests! {
    async fn a_user_connects_reads_and_deletes_an_inbox(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let created = app.post("/v1/mail-accounts", &user, &account()).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        let text = created.text();
        assert!(!text.contains("horse"), "the password never comes back: {text}");
        let created = created.json();
        assert_eq!(created["imap_port"], 993, "the TLS port by default");
        assert_eq!(created["auth"], "password");
        assert_eq!(created["dkim"], "if_present");
        assert_eq!(created["status"], "active");
        assert_eq!(created["allowed_senders"], json!(["airline.example", "hotel.example"]));
        let id = created["id"].as_str().expect("an id").to_owned();
        let path = format!("/v1/mail-accounts/{id}");

        assert_eq!(app.get(&path, &user).await.json(), created);
        let list = app.get("/v1/mail-accounts", &user).await.json();
        assert_eq!(list["items"], json!([created]));
        assert!(list["next_cursor"].is_null());

        // Sealed at rest: the stored bytes hold no trace of the password.
        let hold = AttemptRef { id: Uuid::now_v7(), generation: 1 };
        let start = app.store.begin_poll(id.parse().expect("uuid"), "t1", "u1", hold, std::time::Duration::from_secs(1)).await.expect("begin");
        let PollStart::Granted(grant) = start else { panic!("{start:?}") };
        assert!(!grant.secret.ciphertext.windows(5).any(|w| w == b"horse"));
        assert_eq!(grant.secret.key_id, "test");

        // Nobody else sees it.
        for stranger in [app.user("t1", "u2"), app.user("t2", "u1"), app.admin("t2")] {
            app.get(&path, &stranger).await.problem(StatusCode::NOT_FOUND);
            app.delete(&path, &stranger).await.problem(StatusCode::NOT_FOUND);
            app.post(&format!("{path}/poll"), &stranger, &json!({})).await.problem(StatusCode::NOT_FOUND);
            assert_eq!(app.get("/v1/mail-accounts", &stranger).await.json()["items"], json!([]));
        }

        // Poll now: a job for the owner.
        let poll = app.post(&format!("{path}/poll"), &user, &json!({})).await;
        assert_eq!(poll.status, StatusCode::ACCEPTED, "{}", poll.text());
        assert_eq!(poll.json()["kind"], "email_poll");
        // An admin of the tenant may poll it too; the job runs as its owner.
        let admin_poll = app.post("/v1/jobs", &app.admin("t1"), &json!({"kind": "email_poll", "payload": {"account_id": id}})).await;
        assert_eq!(admin_poll.status, StatusCode::ACCEPTED, "{}", admin_poll.text());
        let job_id: Uuid = admin_poll.json()["id"].as_str().expect("id").parse().expect("uuid");
        let job = app.store.get_job(&Scope::Platform, job_id).await.expect("get").expect("job");
        assert_eq!(job.user_id, "u1");
        // Someone else's account is not a payload anyone else may submit.
        let problem = app.post("/v1/jobs", &app.user("t1", "u2"), &json!({"kind": "email_poll", "payload": {"account_id": id}})).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "payload.account_id");

        // New credentials: still never shown.
        let changed = app.patch(&path, &user, &json!({"password": "new secret", "dkim": "required"})).await;
        assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
        assert_eq!(changed.json()["dkim"], "required");
        assert!(!changed.text().contains("new secret"));

        assert_eq!(app.delete(&path, &user).await.status, StatusCode::NO_CONTENT);
        app.get(&path, &user).await.problem(StatusCode::NOT_FOUND);
        let gone = app.store.begin_poll(id.parse().expect("uuid"), "t1", "u1", AttemptRef { id: Uuid::now_v7(), generation: 1 }, std::time::Duration::from_secs(1)).await.expect("begin");
        assert!(matches!(gone, PollStart::Gone), "its credential and sync state went with it");
    }

    async fn a_bad_account_is_a_422_naming_its_field(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let with = |change: Value| {
            let mut body = account();
            for (key, value) in change.as_object().expect("an object") {
                if value.is_null() {
                    body.as_object_mut().expect("object").remove(key);
                } else {
                    body[key] = value.clone();
                }
            }
            body
        };
        let oauth = json!({"token_url": "https://oauth.example/token", "client_id": "c", "refresh_token": "r"});
        for (change, field) in [
            (json!({"imap_host": "not a host"}), "imap_host"),
            (json!({"imap_port": 0}), "imap_port"),
            (json!({"username": " "}), "username"),
            (json!({"password": "line\r\nbreak"}), "password"),
            (json!({"password": null}), "password"),
            (json!({"oauth2": oauth}), "password"),
            (json!({"allowed_senders": []}), "allowed_senders"),
            (json!({"allowed_senders": ["a@airline.example"]}), "allowed_senders[0]"),
            (json!({"allowed_senders": ["airline"]}), "allowed_senders[0]"),
            (json!({"password": null, "oauth2": {"token_url": "http://oauth.example/token", "client_id": "c", "refresh_token": "r"}}), "oauth2.token_url"),
        ] {
            let problem = app.post("/v1/mail-accounts", &user, &with(change.clone())).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(problem["field"], field, "{change}: {problem}");
        }
        let problem = app.post("/v1/mail-accounts", &user, &with(json!({"tls": "ssl3"}))).await;
        assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", problem.text());
        // OAuth2 alone is fine.
        let created = app.post("/v1/mail-accounts", &user, &with(json!({"password": null, "oauth2": oauth}))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        assert_eq!(created.json()["auth"], "oauth2");
        assert!(!created.text().contains("refresh_token"));
    }
}
