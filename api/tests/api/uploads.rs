//! `/v1/uploads`: an admin announces a file for a bulk import, sends it,
//! and names it in a `bulk_import` job; on a local object directory and
//! through a real presigned S3 PUT.

use axum::{
    body::Body,
    http::{header, Method, StatusCode},
};
use longhaul_jobs::{imports::MAX_UPLOAD_BYTES, objects::ObjectKey, testing::ObjectBackend};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::helpers::{request, TestApp};

const CSV: &[u8] = b"user,type,reservation_number,provider,starts_at\nu1,flight,ABC123,TAP,2026-05-02T10:00:00Z\n";

/// Announces an upload that must be created; returns the answer.
async fn announce(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.post("/v1/uploads", token, &body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let created = response.json();
    let location = response.headers.get(header::LOCATION).and_then(|value| value.to_str().ok());
    assert_eq!(location.map(str::to_owned), Some(format!("/v1/uploads/{}", created["id"].as_str().expect("an id"))));
    created
}

fn id_of(created: &Value) -> String {
    created["id"].as_str().expect("an id").to_owned()
}

/// The stored bytes of tenant `tenant`'s upload `id`, if any.
async fn stored(app: &TestApp, tenant: &str, id: &str) -> Option<Vec<u8>> {
    let key = ObjectKey::new(tenant, &format!("uploads/{id}")).expect("a key");
    let mut reader = app.objects.get(&key).await.expect("get")?;
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).await.expect("readable");
    Some(bytes)
}

backend_tests! {
    async fn an_admin_announces_a_csv_sends_it_through_the_api_and_sees_it_uploaded(backend) {
        let app = TestApp::new(backend).await;
        let admin = app.admin("t1");
        let created = announce(&app, &admin, json!({"content_type": "text/csv; charset=utf-8", "purpose": "import"})).await;
        let id = id_of(&created);
        assert_eq!(created["upload_url"], format!("/v1/uploads/{id}/upload"));
        assert_eq!((created["status"].clone(), created["purpose"].clone()), (json!("pending"), json!("import")));
        assert_eq!((created["user_id"].clone(), created["content_type"].clone()), (json!("admin"), json!("text/csv; charset=utf-8")));
        assert!(created["upload_expires_at"].is_string() && created["created_at"].is_string(), "{created}");
        assert!(created["uploaded_at"].is_null() && created.get("tenant_id").is_none(), "{created}");

        let uploaded = app.put_bytes(&format!("/v1/uploads/{id}/upload"), &admin, CSV.to_vec()).await;
        assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.text());
        let uploaded = uploaded.json();
        assert_eq!((uploaded["status"].clone(), uploaded["size_bytes"].clone()), (json!("uploaded"), json!(CSV.len())));

        let read = app.get(&format!("/v1/uploads/{id}"), &admin).await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.text());
        let read = read.json();
        assert_eq!((read["id"].clone(), read["status"].clone(), read["size_bytes"].clone()), (json!(id), json!("uploaded"), json!(CSV.len())));
        assert!(read["uploaded_at"].is_string(), "{read}");
        // The bytes are under the tenant's prefix.
        assert_eq!(stored(&app, "t1", &id).await.as_deref(), Some(CSV));
        // A platform operator sees any tenant's.
        assert_eq!(app.get(&format!("/v1/uploads/{id}"), &app.platform()).await.json()["status"], "uploaded");

        // Once is enough.
        let again = app.put_bytes(&format!("/v1/uploads/{id}/upload"), &admin, b"user\nu2\n".to_vec()).await.problem(StatusCode::CONFLICT);
        assert!(again["detail"].as_str().unwrap_or_default().contains("uploaded"), "{again}");
        assert_eq!(stored(&app, "t1", &id).await.as_deref(), Some(CSV), "the first file stays");

        // JSON Lines, and a platform operator's own upload.
        let platform = app.platform();
        let lines = announce(&app, &platform, json!({"content_type": "application/x-ndjson", "purpose": "import"})).await;
        let lines_id = id_of(&lines);
        let sent = app.put_bytes(&format!("/v1/uploads/{lines_id}/upload"), &platform, b"{\"user\":\"u1\"}\n".to_vec()).await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.text());
        assert!(stored(&app, "ops", &lines_id).await.is_some());
    }

    async fn only_admins_announce_read_and_send_uploads(backend) {
        let app = TestApp::new(backend).await;
        let admin = app.admin("t1");
        let id = id_of(&announce(&app, &admin, json!({"content_type": "text/csv", "purpose": "import"})).await);
        let user = app.user("t1", "u1");
        let refused = app.post("/v1/uploads", &user, &json!({"content_type": "text/csv", "purpose": "import"})).await.problem(StatusCode::FORBIDDEN);
        assert!(refused["detail"].as_str().unwrap_or_default().contains("admin"), "{refused}");
        app.get(&format!("/v1/uploads/{id}"), &user).await.problem(StatusCode::FORBIDDEN);
        app.put_bytes(&format!("/v1/uploads/{id}/upload"), &user, CSV.to_vec()).await.problem(StatusCode::FORBIDDEN);
        // Without a token at all: 401.
        let anonymous = app.send(request(Method::GET, &format!("/v1/uploads/{id}"), None).body(Body::empty()).expect("a request")).await;
        anonymous.problem(StatusCode::UNAUTHORIZED);
        assert_eq!(app.get(&format!("/v1/uploads/{id}"), &admin).await.json()["status"], "pending", "untouched");
        assert!(stored(&app, "t1", &id).await.is_none());
    }

    async fn a_bad_field_is_a_422_naming_it(backend) {
        let app = TestApp::new(backend).await;
        let admin = app.admin("t1");
        let field_of = |body: Value| {
            let app = &app;
            let admin = admin.clone();
            async move { app.post("/v1/uploads", &admin, &body).await.problem(StatusCode::UNPROCESSABLE_ENTITY)["field"].clone() }
        };
        for content_type in ["image/png", "text/plain", "application/json", "", "text/csv\u{1}", "text/csvx"] {
            let problem = app.post("/v1/uploads", &admin, &json!({"content_type": content_type, "purpose": "import"})).await.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(problem["field"], "content_type", "{content_type:?}");
            assert!(problem["detail"].as_str().unwrap_or_default().contains("text/csv, application/x-ndjson"), "{problem}");
        }
        assert_eq!(field_of(json!({"content_type": "x".repeat(256), "purpose": "import"})).await, "content_type");
        assert_eq!(field_of(json!({"content_type": "text/csv", "purpose": "export"})).await, "purpose");
        assert_eq!(field_of(json!({"content_type": "text/csv", "purpose": 1})).await, "purpose");
        assert_eq!(field_of(json!({"content_type": "text/csv"})).await, "purpose");
        assert_eq!(field_of(json!({"purpose": "import"})).await, "content_type");
        assert_eq!(field_of(json!({"content_type": "text/csv", "purpose": "import", "name": "x"})).await, "name");
        for size in [json!(0), json!(MAX_UPLOAD_BYTES + 1), json!(-1), json!(1.5)] {
            assert_eq!(field_of(json!({"content_type": "text/csv", "purpose": "import", "size_bytes": size})).await, "size_bytes");
        }
        // Any case, surrounding whitespace and parameters are fine.
        let created = announce(&app, &admin, json!({"content_type": " Application/JSONL;charset=UTF-8 ", "purpose": "import", "size_bytes": MAX_UPLOAD_BYTES})).await;
        assert_eq!(created["content_type"], "Application/JSONL;charset=UTF-8");
        assert_eq!(created["size_bytes"], MAX_UPLOAD_BYTES, "as declared until the file comes");
    }

    async fn another_tenants_admin_finds_no_upload(backend) {
        let app = TestApp::new(backend).await;
        let owner = app.admin("t1");
        let id = id_of(&announce(&app, &owner, json!({"content_type": "text/csv", "purpose": "import"})).await);
        for stranger in [app.admin("t2"), app.token("t2", "boss", longhaul_api::auth::Role::Admin)] {
            app.get(&format!("/v1/uploads/{id}"), &stranger).await.problem(StatusCode::NOT_FOUND);
            app.put_bytes(&format!("/v1/uploads/{id}/upload"), &stranger, CSV.to_vec()).await.problem(StatusCode::NOT_FOUND);
        }
        // The platform reads any tenant's, but sends only its own tenant's files.
        app.put_bytes(&format!("/v1/uploads/{id}/upload"), &app.platform(), CSV.to_vec()).await.problem(StatusCode::NOT_FOUND);
        for missing in ["00000000-0000-0000-0000-000000000000", "not-a-uuid"] {
            app.get(&format!("/v1/uploads/{missing}"), &owner).await.problem(StatusCode::NOT_FOUND);
            app.put_bytes(&format!("/v1/uploads/{missing}/upload"), &owner, CSV.to_vec()).await.problem(StatusCode::NOT_FOUND);
        }
        assert_eq!(app.get(&format!("/v1/uploads/{id}"), &owner).await.json()["status"], "pending", "untouched");
        assert!(stored(&app, "t1", &id).await.is_none() && stored(&app, "t2", &id).await.is_none());
    }

    async fn what_is_not_a_text_file_is_refused_and_the_upload_waits_for_a_better_one(backend) {
        let app = TestApp::new(backend).await;
        let admin = app.admin("t1");
        let id = id_of(&announce(&app, &admin, json!({"content_type": "text/csv", "purpose": "import"})).await);
        let path = format!("/v1/uploads/{id}/upload");
        // UTF-16, as a spreadsheet may save it.
        let utf16: Vec<u8> = "user,email\n".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let problem = app.put_bytes(&path, &admin, utf16).await.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(problem["detail"].as_str().unwrap_or_default().contains("not text"), "{problem}");
        let empty = app.put_bytes(&path, &admin, Vec::new()).await.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(empty["detail"].as_str().unwrap_or_default().contains("empty"), "{empty}");
        // A declared length over 4 GiB is refused before a byte is read.
        let request = request(Method::PUT, &path, Some(&admin))
            .header(header::CONTENT_TYPE, "text/csv")
            .header(header::CONTENT_LENGTH, (MAX_UPLOAD_BYTES + 1).to_string())
            .body(Body::from(CSV))
            .expect("a request");
        app.send(request).await.problem(StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(app.get(&format!("/v1/uploads/{id}"), &admin).await.json()["status"], "pending");
        assert!(stored(&app, "t1", &id).await.is_none());

        // A NUL byte past the start is the job's to find, row by row.
        let mut late = CSV.to_vec();
        late.resize(10 * 1024, b'\n');
        late.extend_from_slice(b"u2,flight,\0,TAP,2026-05-02T10:00:00Z\n");
        let uploaded = app.put_bytes(&path, &admin, late.clone()).await;
        assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.text());
        assert_eq!(uploaded.json()["size_bytes"], late.len());
    }

    async fn a_file_many_times_the_json_body_limit_goes_through(backend) {
        let app = TestApp::new(backend).await;
        let admin = app.admin("t1");
        let id = id_of(&announce(&app, &admin, json!({"content_type": "text/csv", "purpose": "import"})).await);
        // 3 MiB: over the JSON body limit (256 KiB) and axum's own default (2 MiB).
        let mut file = b"user,email\n".to_vec();
        while file.len() < 3 * 1024 * 1024 {
            file.extend_from_slice(format!("u{},u{}@example.com\n", file.len(), file.len()).as_bytes());
        }
        let uploaded = app.put_bytes(&format!("/v1/uploads/{id}/upload"), &admin, file.clone()).await;
        assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.text());
        assert_eq!(uploaded.json()["size_bytes"], file.len());
        assert_eq!(stored(&app, "t1", &id).await.map(|bytes| bytes.len()), Some(file.len()));
    }

    async fn a_bulk_import_job_is_for_admins_only(backend) {
        let app = TestApp::new(backend).await;
        let admin = app.admin("t1");
        let id = id_of(&announce(&app, &admin, json!({"content_type": "text/csv", "purpose": "import"})).await);
        assert_eq!(app.put_bytes(&format!("/v1/uploads/{id}/upload"), &admin, CSV.to_vec()).await.status, StatusCode::OK);
        let job = json!({"kind": "bulk_import", "payload": {"upload_id": id, "entity": "reservations", "mode": "upsert"}});
        let submitted = app.submit(&admin, &job).await;
        assert_eq!((submitted["kind"].clone(), submitted["status"].clone()), (json!("bulk_import"), json!("queued")));
        assert_eq!(submitted["payload"]["upload_id"], id.as_str(), "{submitted}");
        let refused = app.post("/v1/jobs", &app.user("t1", "u1"), &job).await.problem(StatusCode::FORBIDDEN);
        assert!(refused["detail"].as_str().unwrap_or_default().contains("bulk_import"), "{refused}");
    }

    async fn on_s3_a_declared_size_gets_a_presigned_put_of_that_length(backend) {
        let app = TestApp::with_objects(backend, ObjectBackend::S3).await;
        let admin = app.admin("t1");
        let created = announce(&app, &admin, json!({"content_type": "text/csv", "purpose": "import", "size_bytes": CSV.len()})).await;
        let id = id_of(&created);
        let url = created["upload_url"].as_str().expect("a URL").to_owned();
        assert!(url.starts_with("http") && url.contains("X-Amz-Signature"), "a presigned URL: {url}");
        // The length is part of the signature: S3 takes no other (moto
        // does not check signatures, so the URL is what is checked).
        let signed = url.split("X-Amz-SignedHeaders=").nth(1).and_then(|rest| rest.split('&').next()).unwrap_or_default();
        assert!(signed.contains("content-length"), "Content-Length is not signed: {url}");
        assert_eq!(created["size_bytes"], CSV.len());
        let put = reqwest::Client::new().put(&url).header("content-type", "text/csv").body(CSV.to_vec()).send().await.expect("the PUT");
        assert!(put.status().is_success(), "{}", put.text().await.unwrap_or_default());
        assert_eq!(stored(&app, "t1", &id).await.as_deref(), Some(CSV), "the bytes are under the tenant's prefix");
        // Pending until a job finds the file.
        assert_eq!(app.get(&format!("/v1/uploads/{id}"), &admin).await.json()["status"], "pending");
    }

    async fn on_s3_without_a_declared_size_the_file_goes_through_the_api(backend) {
        let app = TestApp::with_objects(backend, ObjectBackend::S3).await;
        let admin = app.admin("t1");
        let created = announce(&app, &admin, json!({"content_type": "text/csv", "purpose": "import"})).await;
        let id = id_of(&created);
        assert_eq!(created["upload_url"], format!("/v1/uploads/{id}/upload"));
        let uploaded = app.put_bytes(&format!("/v1/uploads/{id}/upload"), &admin, CSV.to_vec()).await;
        assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.text());
        assert_eq!(uploaded.json()["status"], "uploaded");
        assert_eq!(stored(&app, "t1", &id).await.as_deref(), Some(CSV));
    }
}
