//! `/v1/media`: register a photo, upload it, list and delete it; on a local
//! object directory and through a real presigned S3 PUT.

use axum::http::StatusCode;
use longhaul_jobs::{media::MAX_MEDIA_BYTES, objects::ObjectKey, testing::ObjectBackend};
use serde_json::{json, Value};

use crate::helpers::TestApp;

/// A real 40×30 PNG.
fn png() -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 90]))
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encodes");
    bytes.into_inner()
}

async fn register(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.post("/v1/media", token, &body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    response.json()
}

backend_tests! {
    async fn a_photo_is_registered_uploaded_sniffed_and_deleted(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        // The client says JPEG; the bytes are a PNG, and the bytes win.
        let created = register(&app, &user, json!({"content_type": "image/jpeg", "taken_at": "2026-05-02T10:00:00Z", "caption": "Belém"})).await;
        let id = created["id"].as_str().expect("an id").to_owned();
        assert_eq!(created["status"], "pending");
        assert_eq!(created["upload_url"], format!("/v1/media/{id}/upload"));

        let uploaded = app.put_bytes(&format!("/v1/media/{id}/upload"), &user, png()).await;
        assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.text());
        let uploaded = uploaded.json();
        assert_eq!((uploaded["status"].clone(), uploaded["content_type"].clone()), (json!("ready"), json!("image/png")));
        assert_eq!((uploaded["declared_type"].clone(), uploaded["size_bytes"].clone()), (json!("image/jpeg"), json!(png().len())));
        assert_eq!((uploaded["width"].clone(), uploaded["height"].clone()), (json!(40), json!(30)));
        assert_eq!(uploaded["caption"], "Belém");
        // Once is enough.
        app.put_bytes(&format!("/v1/media/{id}/upload"), &user, png()).await.problem(StatusCode::CONFLICT);

        // The bytes are under the tenant's prefix.
        let key = ObjectKey::new("t1", &format!("media/{id}")).expect("a key");
        assert!(app.objects.get(&key).await.expect("get").is_some());

        let list = app.get("/v1/media", &user).await.json();
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(list["items"][0]["id"], id.as_str());

        assert_eq!(app.delete(&format!("/v1/media/{id}"), &user).await.status, StatusCode::NO_CONTENT);
        assert!(app.objects.get(&key).await.expect("get").is_none(), "the bytes go with it");
        app.get(&format!("/v1/media/{id}"), &user).await.problem(StatusCode::NOT_FOUND);
        assert_eq!(app.get("/v1/media", &user).await.json()["items"], json!([]));
    }

    async fn what_is_not_a_photo_is_refused_with_the_reason(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let problem = app.post("/v1/media", &user, &json!({"content_type": "image/gif"})).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "content_type");
        let problem = app.post("/v1/media", &user, &json!({"content_type": "image/png", "caption": "x".repeat(201)})).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["field"], "caption");

        // A script claiming to be a JPEG is rejected, and says why.
        let id = register(&app, &user, json!({"content_type": "image/jpeg"})).await["id"].as_str().expect("id").to_owned();
        let problem = app.put_bytes(&format!("/v1/media/{id}/upload"), &user, b"#!/bin/sh\nrm -rf /\n".to_vec()).await.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(problem["detail"].as_str().unwrap_or_default().contains("not a JPEG, PNG or WebP"), "{problem}");
        let media = app.get(&format!("/v1/media/{id}"), &user).await.json();
        assert_eq!(media["status"], "rejected");
        assert!(media["error"].as_str().unwrap_or_default().contains("not a JPEG"), "{media}");
        assert!(app.objects.get(&ObjectKey::new("t1", &format!("media/{id}")).expect("key")).await.expect("get").is_none());

        // Over the size limit: a 413, and the photo can still be uploaded.
        let id = register(&app, &user, json!({"content_type": "image/png"})).await["id"].as_str().expect("id").to_owned();
        let mut huge = png();
        huge.resize(usize::try_from(MAX_MEDIA_BYTES).expect("fits") + 1, 0);
        app.put_bytes(&format!("/v1/media/{id}/upload"), &user, huge).await.problem(StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(app.get(&format!("/v1/media/{id}"), &user).await.json()["status"], "pending");
        // A truncated PNG: the signature is right, the header is not all there.
        let truncated = app.put_bytes(&format!("/v1/media/{id}/upload"), &user, png()[..20].to_vec()).await.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(truncated["detail"].as_str().unwrap_or_default().contains("header cannot be read"), "{truncated}");
        let id = register(&app, &user, json!({"content_type": "image/png"})).await["id"].as_str().expect("id").to_owned();
        let empty = app.put_bytes(&format!("/v1/media/{id}/upload"), &user, Vec::new()).await.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(empty["detail"].as_str().unwrap_or_default().contains("empty"), "{empty}");
    }

    async fn nobody_sees_or_touches_another_users_photos(backend) {
        let app = TestApp::new(backend).await;
        let owner = app.user("t1", "u1");
        let id = register(&app, &owner, json!({"content_type": "image/png"})).await["id"].as_str().expect("id").to_owned();
        for stranger in [app.user("t1", "u2"), app.admin("t2"), app.user("t2", "u1")] {
            app.get(&format!("/v1/media/{id}"), &stranger).await.problem(StatusCode::NOT_FOUND);
            app.put_bytes(&format!("/v1/media/{id}/upload"), &stranger, png()).await.problem(StatusCode::NOT_FOUND);
            app.delete(&format!("/v1/media/{id}"), &stranger).await.problem(StatusCode::NOT_FOUND);
            assert_eq!(app.get("/v1/media", &stranger).await.json()["items"], json!([]));
        }
        let admin = app.admin("t1");
        assert_eq!(app.get("/v1/media", &admin).await.json()["items"][0]["id"], id.as_str(), "an admin sees the tenant's");
        assert_eq!(app.get(&format!("/v1/media/{id}"), &owner).await.json()["status"], "pending", "untouched");
    }

    async fn media_pages_cover_every_photo_once(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(register(&app, &user, json!({"content_type": "image/webp"})).await["id"].as_str().expect("id").to_owned());
        }
        let (mut seen, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let path = match &cursor { Some(c) => format!("/v1/media?limit=2&cursor={c}"), None => "/v1/media?limit=2".into() };
            let page = app.get(&path, &user).await.json();
            seen.extend(page["items"].as_array().expect("items").iter().map(|m| m["id"].as_str().expect("id").to_owned()));
            match page["next_cursor"].as_str() { Some(next) => cursor = Some(next.to_owned()), None => break }
        }
        ids.reverse();
        assert_eq!(seen, ids, "newest first, each once");
        app.get("/v1/media?cursor=nope", &user).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn on_s3_a_declared_size_gets_a_presigned_url_of_that_length_checked_when_read(backend) {
        let app = TestApp::with_objects(backend, ObjectBackend::S3).await;
        let user = app.user("t1", "u1");
        let http = reqwest::Client::new();
        let mut uploaded = Vec::new();
        for (bytes, declared) in [(png(), "image/png"), (b"plain text".to_vec(), "image/jpeg")] {
            let created = register(&app, &user, json!({"content_type": declared, "size_bytes": bytes.len()})).await;
            let url = created["upload_url"].as_str().expect("a URL").to_owned();
            assert!(url.starts_with("http") && url.contains("X-Amz-Signature"), "a presigned URL: {url}");
            // The length is part of the signature: S3 takes no other (moto
            // does not check signatures, so the URL is what is checked).
            let signed = url.split("X-Amz-SignedHeaders=").nth(1).and_then(|rest| rest.split('&').next()).unwrap_or_default();
            assert!(signed.contains("content-length"), "Content-Length is not signed: {url}");
            let put = http.put(&url).header("content-type", declared).body(bytes).send().await.expect("the PUT");
            assert!(put.status().is_success(), "{}", put.text().await.unwrap_or_default());
            uploaded.push(created["id"].as_str().expect("id").to_owned());
        }
        let good = app.get(&format!("/v1/media/{}", uploaded[0]), &user).await.json();
        assert_eq!((good["status"].clone(), good["content_type"].clone(), good["size_bytes"].clone()), (json!("ready"), json!("image/png"), json!(png().len())));
        assert_eq!(good["width"], 40);
        // A list answers with what is stored, and checks pending photos in
        // the background: the bad upload is rejected soon after.
        let first = app.get("/v1/media", &user).await.json();
        let listed = |list: &Value| list["items"].as_array().expect("items").iter().find(|m| m["id"] == uploaded[1].as_str()).expect("listed").clone();
        assert_eq!(listed(&first)["status"], "pending", "a list does not read photos inline");
        let mut status = Value::Null;
        for _ in 0..100 {
            let stored = app.store.get_media(&longhaul_jobs::Scope::Platform, uploaded[1].parse().expect("uuid")).await.expect("get").expect("media");
            status = json!(stored.status);
            if status == "rejected" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(status, "rejected");
        assert_eq!(listed(&app.get("/v1/media", &user).await.json())["status"], "rejected");
        let key = ObjectKey::new("t1", &format!("media/{}", uploaded[1])).expect("key");
        assert!(app.objects.get(&key).await.expect("get").is_none(), "a rejected upload's bytes are deleted");
        // A photo registered but never uploaded stays pending.
        let waiting = register(&app, &user, json!({"content_type": "image/png", "size_bytes": 10})).await;
        let id = waiting["id"].as_str().expect("id");
        assert_eq!(app.get(&format!("/v1/media/{id}"), &user).await.json()["status"], "pending");
    }

    async fn on_s3_without_a_declared_size_the_upload_goes_through_the_api(backend) {
        let app = TestApp::with_objects(backend, ObjectBackend::S3).await;
        let user = app.user("t1", "u1");
        let created = register(&app, &user, json!({"content_type": "image/png"})).await;
        let id = created["id"].as_str().expect("id");
        assert_eq!(created["upload_url"], format!("/v1/media/{id}/upload"));
        let uploaded = app.put_bytes(&format!("/v1/media/{id}/upload"), &user, png()).await;
        assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.text());
        assert_eq!(uploaded.json()["status"], "ready");
        for size in [0, MAX_MEDIA_BYTES + 1] {
            let problem = app.post("/v1/media", &user, &json!({"content_type": "image/png", "size_bytes": size})).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(problem["field"], "size_bytes");
        }
    }
}
