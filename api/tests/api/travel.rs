//! Reservations and trips: a user's own, grouped by time.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::TestApp;

fn flight(day: u32) -> Value {
    json!({
        "type": "flight", "reservation_number": "ABC123", "provider": "TAP Air Portugal",
        "starts_at": format!("2026-05-{day:02}T09:00:00Z"), "ends_at": format!("2026-05-{day:02}T11:30:00Z"),
        "origin": "gru", "destination": "LIS", "city": "Lisbon", "country": "pt",
        "details": {"@type": "FlightReservation"}
    })
}

fn stay(from: u32, to: u32, city: &str) -> Value {
    json!({
        "type": "lodging", "reservation_number": format!("H-{from}"), "provider": "Hotel Avenida",
        "starts_at": format!("2026-05-{from:02}T15:00:00Z"), "ends_at": format!("2026-05-{to:02}T11:00:00Z"),
        "city": city, "country": "PT"
    })
}

async fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app.post("/v1/reservations", token, body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    response.json()
}

backend_tests! {
    async fn a_user_adds_reads_changes_and_deletes_a_reservation(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let created = create(&app, &user, &flight(1)).await;
        assert_eq!(created["type"], "flight");
        assert_eq!(created["source"], "manual");
        assert_eq!(created["status"], "confirmed");
        assert_eq!((created["origin"].clone(), created["country"].clone()), (json!("GRU"), json!("PT")), "codes are upper-cased");
        assert!(created["trip_id"].is_string(), "it joins a trip at once: {created}");
        assert!(created.get("tenant_id").is_none() && created.get("user_id").is_none());
        let id = created["id"].as_str().expect("an id");

        let read = app.get(&format!("/v1/reservations/{id}"), &user).await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.json(), created);
        let list = app.get("/v1/reservations", &user).await.json();
        assert_eq!(list["items"].as_array().expect("items").len(), 1);
        assert!(list["next_cursor"].is_null());

        let cancelled = app.patch(&format!("/v1/reservations/{id}"), &user, &json!({"status": "cancelled"})).await;
        assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text());
        let cancelled = cancelled.json();
        assert_eq!(cancelled["status"], "cancelled");
        assert_eq!(cancelled["provider"], "TAP Air Portugal", "other fields stay");
        assert!(cancelled["trip_id"].is_null(), "a cancelled reservation is in no trip");
        assert_eq!(app.get("/v1/trips", &user).await.json()["items"], json!([]));

        // The history has the change, once, as the user's own.
        let again = app.patch(&format!("/v1/reservations/{id}"), &user, &json!({"status": "cancelled"})).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text());
        let history = app.get(&format!("/v1/reservations/{id}/changes"), &user).await;
        assert_eq!(history.status, StatusCode::OK, "{}", history.text());
        let history = history.json();
        assert_eq!(history["items"].as_array().map(Vec::len), Some(1), "{history}");
        assert_eq!(history["items"][0]["source"], "manual");
        assert_eq!(history["items"][0]["changes"], json!({"status": {"from": "confirmed", "to": "cancelled"}}));
        assert!(history["next_cursor"].is_null());

        assert_eq!(app.delete(&format!("/v1/reservations/{id}"), &user).await.status, StatusCode::NO_CONTENT);
        app.get(&format!("/v1/reservations/{id}"), &user).await.problem(StatusCode::NOT_FOUND);
        app.delete(&format!("/v1/reservations/{id}"), &user).await.problem(StatusCode::NOT_FOUND);
    }

    async fn reservations_close_in_time_share_a_trip(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let outbound = create(&app, &user, &flight(1)).await;
        let hotel = create(&app, &user, &stay(1, 6, "Lisbon")).await;
        let side_trip = create(&app, &user, &stay(7, 8, "Lisbon")).await;
        let later = create(&app, &user, &stay(20, 22, "Madrid")).await;
        let trip = outbound["trip_id"].clone();
        let refreshed = |r: &Value| {
            let id = r["id"].as_str().expect("id").to_owned();
            let app = &app;
            let user = user.clone();
            async move { app.get(&format!("/v1/reservations/{id}"), &user).await.json() }
        };
        assert_eq!(refreshed(&hotel).await["trip_id"], trip);
        assert_eq!(refreshed(&side_trip).await["trip_id"], trip, "a day after the stay ends: the same trip");
        assert_eq!(refreshed(&outbound).await["trip_id"], trip, "the trip keeps its id as it grows");
        assert_ne!(refreshed(&later).await["trip_id"], trip);

        let trips = app.get("/v1/trips", &user).await.json();
        let items = trips["items"].as_array().expect("items");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["name"], "Madrid, May 2026", "latest first");
        assert_eq!(items[1]["name"], "Lisbon, May 2026");
        assert_eq!(items[1]["reservation_count"], 3);
        assert_eq!(items[1]["starts_at"], "2026-05-01T09:00:00Z");
        assert_eq!(items[1]["ends_at"], "2026-05-08T11:00:00Z");

        let in_trip = app.get(&format!("/v1/reservations?trip_id={}", trip.as_str().expect("a trip id")), &user).await.json();
        assert_eq!(in_trip["items"].as_array().expect("items").len(), 3);
        let hotels = app.get("/v1/reservations?type=lodging", &user).await.json();
        assert_eq!(hotels["items"].as_array().expect("items").len(), 3);

        // Right after, but somewhere the trip did not go: another trip.
        let porto = create(&app, &user, &stay(9, 10, "Porto")).await;
        assert_ne!(porto["trip_id"], trip, "{porto}");
    }

    async fn a_reservation_moved_to_another_trip_stays_there(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let lisbon = create(&app, &user, &stay(1, 4, "Lisbon")).await;
        let madrid = create(&app, &user, &stay(20, 22, "Madrid")).await;
        let dinner = create(&app, &user, &stay(2, 3, "Lisbon")).await;
        assert_eq!(dinner["trip_id"], lisbon["trip_id"]);
        let path = format!("/v1/reservations/{}", dinner["id"].as_str().expect("id"));

        let moved = app.patch(&path, &user, &json!({"trip_id": madrid["trip_id"]})).await;
        assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
        let moved = moved.json();
        assert_eq!((moved["trip_id"].clone(), moved["trip_pinned"].clone()), (madrid["trip_id"].clone(), json!(true)));
        // Later writes regroup the user's trips; the choice sticks.
        create(&app, &user, &stay(3, 5, "Lisbon")).await;
        let edited = app.patch(&path, &user, &json!({"provider": "Hotel Central"})).await.json();
        assert_eq!(edited["trip_id"], madrid["trip_id"], "{edited}");
        let madrid_trip = app.get("/v1/trips", &user).await.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|t| t["id"] == madrid["trip_id"])
            .cloned()
            .expect("the Madrid trip");
        assert_eq!(madrid_trip["reservation_count"], 2);
        assert_eq!(madrid_trip["starts_at"], "2026-05-02T15:00:00Z", "the trip spans what was moved in");

        // Back to automatic grouping.
        let back = app.patch(&path, &user, &json!({"trip_id": null})).await.json();
        assert_eq!((back["trip_id"].clone(), back["trip_pinned"].clone()), (lisbon["trip_id"].clone(), json!(false)));

        // Only the owner's own trips.
        let stranger = app.user("t1", "u2");
        let theirs = create(&app, &stranger, &stay(1, 2, "Rome")).await;
        let problem = app.patch(&path, &user, &json!({"trip_id": theirs["trip_id"]})).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "trip_id");
        let problem = app.patch(&path, &user, &json!({"trip_id": "not-a-uuid"})).await;
        assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", problem.text());
    }

    async fn nobody_sees_another_users_reservations(backend) {
        let app = TestApp::new(backend).await;
        let owner = app.user("t1", "u1");
        let id = create(&app, &owner, &flight(1)).await["id"].as_str().expect("id").to_owned();
        let path = format!("/v1/reservations/{id}");
        for stranger in [app.user("t1", "u2"), app.admin("t2"), app.user("t2", "u1")] {
            app.get(&path, &stranger).await.problem(StatusCode::NOT_FOUND);
            app.patch(&path, &stranger, &json!({"provider": "x"})).await.problem(StatusCode::NOT_FOUND);
            app.get(&format!("{path}/changes"), &stranger).await.problem(StatusCode::NOT_FOUND);
            app.delete(&path, &stranger).await.problem(StatusCode::NOT_FOUND);
            assert_eq!(app.get("/v1/reservations", &stranger).await.json()["items"], json!([]));
            assert_eq!(app.get("/v1/trips", &stranger).await.json()["items"], json!([]));
        }
        let admin = app.admin("t1");
        assert_eq!(app.get(&path, &admin).await.status, StatusCode::OK, "an admin sees the tenant's");
        assert_eq!(app.get(&path, &owner).await.json()["provider"], "TAP Air Portugal", "untouched");
    }

    async fn a_bad_reservation_is_a_422_naming_its_field(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let with = |change: Value| {
            let mut body = flight(1);
            for (key, value) in change.as_object().expect("an object") {
                body[key] = value.clone();
            }
            body
        };
        for (change, field) in [
            (json!({"type": "zeppelin"}), "type"),
            (json!({"provider": "  "}), "provider"),
            (json!({"reservation_number": ""}), "reservation_number"),
            (json!({"ends_at": "2026-04-30T00:00:00Z"}), "ends_at"),
            (json!({"country": "Portugal"}), "country"),
            (json!({"origin": "LISB"}), "origin"),
            (json!({"details": [1, 2]}), "details"),
            (json!({"starts_at": "tomorrow"}), "starts_at"),
        ] {
            let problem = app.post("/v1/reservations", &user, &with(change.clone())).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(problem["field"], field, "{change}: {problem}");
        }
        app.post("/v1/reservations", &user, &with(json!({"colour": "red"}))).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        let id = create(&app, &user, &flight(1)).await["id"].as_str().expect("id").to_owned();
        let problem = app.patch(&format!("/v1/reservations/{id}"), &user, &json!({"ends_at": "2026-01-01T00:00:00Z"})).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "ends_at");
        app.get("/v1/reservations?type=zeppelin", &user).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        app.get("/v1/reservations?cursor=nope", &user).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        app.get("/v1/reservations/not-a-uuid", &user).await.problem(StatusCode::NOT_FOUND);
    }

    async fn reservation_pages_cover_every_item_once(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        for day in [3, 1, 5, 2, 4] {
            create(&app, &user, &flight(day)).await;
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let path = match &cursor {
                Some(cursor) => format!("/v1/reservations?limit=2&cursor={cursor}"),
                None => "/v1/reservations?limit=2".to_owned(),
            };
            let page = app.get(&path, &user).await.json();
            for item in page["items"].as_array().expect("items") {
                seen.push(item["starts_at"].as_str().expect("starts_at").to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let days: Vec<&str> = seen.iter().map(|s| &s[8..10]).collect();
        assert_eq!(days, ["05", "04", "03", "02", "01"], "latest first, each once");
    }
}
