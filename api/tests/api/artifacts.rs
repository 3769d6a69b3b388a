//! Artifacts: listed on their succeeded job, downloadable by who may see it.

use axum::http::{header, StatusCode};
use serde_json::json;

use crate::helpers::{succeed_with_csv, year_report, TestApp};

backend_tests! {
    async fn a_succeeded_jobs_artifacts_are_listed_and_downloadable_by_who_may_see_it(backend) {
        let app = TestApp::new(backend).await;
        let owner = app.user("t1", "u1");
        let job = app.submit(&owner, &year_report()).await;
        assert_eq!(job["artifacts"], json!([]));
        let artifact = succeed_with_csv(&app, "t1").await;

        let id = job["id"].as_str().expect("id");
        let read = app.get(&format!("/v1/jobs/{id}"), &owner).await.json();
        let url = format!("/v1/artifacts/{}", artifact.id);
        assert_eq!(read["artifacts"], json!([{
            "id": artifact.id, "name": "year-2026.csv", "content_type": "text/csv", "size_bytes": 16, "url": url,
        }]));
        let listed = app.get("/v1/jobs", &owner).await.json();
        assert_eq!(listed["items"][0]["artifacts"][0]["id"], json!(artifact.id));

        let download = app.get(&url, &owner).await;
        assert_eq!(download.status, StatusCode::OK, "{}", download.text());
        assert_eq!(download.text(), "month,trips\n1,2\n");
        assert_eq!(download.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("text/csv"));
        assert_eq!(
            download.headers.get(header::CONTENT_DISPOSITION).and_then(|v| v.to_str().ok()),
            Some("attachment; filename=\"year-2026.csv\"")
        );
        assert_eq!(app.get(&url, &app.admin("t1")).await.status, StatusCode::OK, "an admin of the tenant");
        for stranger in [app.user("t1", "u2"), app.admin("t2")] {
            app.get(&url, &stranger).await.problem(StatusCode::NOT_FOUND);
        }
        app.get("/v1/artifacts/not-an-id", &owner).await.problem(StatusCode::NOT_FOUND);
    }
}
