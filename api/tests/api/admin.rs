//! Queue figures and operations for admins.

use axum::http::StatusCode;
use std::time::Duration;

use longhaul_jobs::{
    store::{AttemptRef, Completion, Outcome},
    Lane, Scope, Status,
};
use serde_json::json;

use crate::helpers::{year_report, TestApp};

backend_tests! {
    async fn an_admin_sees_every_lane(backend) {
        let app = TestApp::new(backend).await;
        let queues = app.get("/v1/admin/queues", &app.admin("t1")).await;
        assert_eq!(queues.status, StatusCode::OK, "{}", queues.text());
        let lanes: Vec<String> = queues.json()["lanes"].as_array().expect("lanes").iter()
            .map(|lane| lane["lane"].as_str().expect("a lane name").to_owned()).collect();
        for lane in ["video", "reports", "email", "refresh", "data", "default"] {
            assert!(lanes.iter().any(|name| name == lane), "{lane} missing from {lanes:?}");
        }
    }

    async fn a_tenant_admin_pauses_and_resumes_only_their_tenants_jobs(backend) {
        let app = TestApp::new(backend).await;
        let admin = app.admin("t1");
        let paused = app.post("/v1/admin/lanes/video/pause", &admin, &json!({})).await;
        assert_eq!(paused.status, StatusCode::OK, "{}", paused.text());
        assert_eq!(paused.json(), json!({"lane": "video", "paused": true, "tenant": "t1"}));
        let video = |queues: serde_json::Value| {
            queues["lanes"].as_array().expect("lanes").iter().find(|lane| lane["lane"] == "video").expect("video").clone()
        };
        let mine = video(app.get("/v1/admin/queues", &admin).await.json());
        assert_eq!((mine["tenant_paused"].clone(), mine["paused"].clone()), (json!(true), json!(false)), "{mine}");
        let theirs = video(app.get("/v1/admin/queues", &app.admin("t2")).await.json());
        assert_eq!((theirs["tenant_paused"].clone(), theirs["paused"].clone()), (json!(false), json!(false)), "{theirs}");
        assert!(!app.store.lane_paused(Lane::Video).await.expect("paused"), "the lane runs on for everyone else");
        // Asking for another tenant changes nothing but the caller's own.
        let other = app.post("/v1/admin/lanes/video/resume?tenant=t2", &admin, &json!({})).await;
        assert_eq!(other.json(), json!({"lane": "video", "paused": false, "tenant": "t1"}));
        assert_eq!(video(app.get("/v1/admin/queues", &admin).await.json())["tenant_paused"], json!(false));
    }

    async fn only_the_platform_pauses_a_whole_lane(backend) {
        let app = TestApp::new(backend).await;
        let platform = app.platform();
        let paused = app.post("/v1/admin/lanes/video/pause", &platform, &json!({})).await;
        assert_eq!(paused.json(), json!({"lane": "video", "paused": true}));
        assert!(app.store.lane_paused(Lane::Video).await.expect("paused"));
        let queues = app.get("/v1/admin/queues", &platform).await.json();
        assert!(queues.get("tenant").is_none(), "{queues}");
        let video = queues["lanes"].as_array().expect("lanes").iter().find(|lane| lane["lane"] == "video").cloned();
        assert_eq!(video.expect("video")["paused"], json!(true));
        // A tenant's admin sees the platform's pause, and cannot lift it.
        app.post("/v1/admin/lanes/video/resume", &app.admin("t1"), &json!({})).await;
        assert!(app.store.lane_paused(Lane::Video).await.expect("paused"));
        // The platform may pause one tenant's jobs.
        let one = app.post("/v1/admin/lanes/email/pause?tenant=t2", &platform, &json!({})).await;
        assert_eq!(one.json(), json!({"lane": "email", "paused": true, "tenant": "t2"}));
        assert!(!app.store.lane_paused(Lane::Email).await.expect("paused"));
        app.post("/v1/admin/lanes/video/resume", &platform, &json!({})).await;
        assert!(!app.store.lane_paused(Lane::Video).await.expect("paused"));
    }

    async fn sweeps_are_listed_newest_first_for_admins_only(backend) {
        let app = TestApp::new(backend).await;
        let platform = app.platform();
        assert_eq!(app.get("/v1/admin/sweeps", &platform).await.json(), json!({"items": []}));
        let at = |minute: u32| chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 28, 10, minute, 0).unwrap();
        app.store.begin_sweep(at(0), 10_000).await.expect("sweep").expect("started");
        let newest = app.store.begin_sweep(at(5), 10_000).await.expect("sweep").expect("started");
        let sweeps = app.get("/v1/admin/sweeps?limit=5", &platform).await;
        assert_eq!(sweeps.status, StatusCode::OK, "{}", sweeps.text());
        let items = sweeps.json()["items"].as_array().expect("items").clone();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["id"], json!(newest.sweep_id));
        for field in ["started_at", "status", "shards", "enqueued", "skipped", "checked", "changed", "duration_seconds"] {
            assert!(items[0].get(field).is_some(), "{field} missing from {}", items[0]);
        }
        assert_eq!(items[0]["staleness"]["count"], json!(0));
        assert!(items[0]["staleness"].get("p99_seconds").is_some());
        assert_eq!(app.get("/v1/admin/sweeps?limit=1", &platform).await.json()["items"].as_array().map(Vec::len), Some(1));
        app.get("/v1/admin/sweeps", &app.user("t1", "u1")).await.problem(StatusCode::FORBIDDEN);

        // A tenant admin sees each sweep's part that is theirs: no
        // platform-wide figure.
        let tenant = app.get("/v1/admin/sweeps?limit=5", &app.admin("t1")).await.json();
        let items = tenant["items"].as_array().expect("items").clone();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["id"], json!(newest.sweep_id));
        for field in ["started_at", "status", "changed", "staleness"] {
            assert!(items[0].get(field).is_some(), "{field} missing from {}", items[0]);
        }
        for field in ["shards", "enqueued", "checked", "active", "not_modified", "failed", "error"] {
            assert!(items[0].get(field).is_none(), "{field} is the platform's, in {}", items[0]);
        }
        assert_eq!(items[0]["changed"], json!(0));
    }

    async fn an_unknown_lane_is_not_found(backend) {
        let app = TestApp::new(backend).await;
        app.post("/v1/admin/lanes/bitcoin/pause", &app.admin("t1"), &json!({})).await.problem(StatusCode::NOT_FOUND);
    }

    async fn an_admin_retries_a_cancelled_job(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let job = app.submit(&user, &year_report()).await;
        let id = job["id"].as_str().expect("id");
        let admin = app.admin("t1");
        // A queued job has nothing to retry.
        app.post(&format!("/v1/admin/jobs/{id}/retry"), &admin, &json!({})).await.problem(StatusCode::CONFLICT);
        app.post(&format!("/v1/jobs/{id}/cancel"), &user, &json!({})).await;
        app.post(&format!("/v1/admin/jobs/{id}/retry"), &user, &json!({})).await.problem(StatusCode::FORBIDDEN);
        app.post(&format!("/v1/admin/jobs/{id}/retry"), &app.admin("t2"), &json!({})).await.problem(StatusCode::NOT_FOUND);
        let retried = app.post(&format!("/v1/admin/jobs/{id}/retry"), &admin, &json!({})).await;
        assert_eq!(retried.status, StatusCode::OK, "{}", retried.text());
        assert_eq!(retried.json()["status"], "queued");
        let stored = app.store.get_job(&Scope::Platform, id.parse().expect("uuid")).await.expect("store").expect("job");
        assert_eq!(stored.status, longhaul_jobs::Status::Queued);
    }

    async fn the_admin_job_list_filters_by_status(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let job = app.submit(&user, &year_report()).await;
        app.submit(&user, &year_report()).await;
        app.post(&format!("/v1/jobs/{}/cancel", job["id"].as_str().expect("id")), &user, &json!({})).await;
        let cancelled = app.get("/v1/admin/jobs?status=cancelled", &app.admin("t1")).await.json();
        assert_eq!(cancelled["items"].as_array().expect("items").len(), 1);
        assert_eq!(cancelled["items"][0]["id"], job["id"]);
    }

    async fn a_redrive_requeues_only_the_tenants_dead_lane_jobs(backend) {
        let app = TestApp::new(backend).await;
        let mut ids = Vec::new();
        for tenant in ["t1", "t2"] {
            let job = app.submit(&app.user(tenant, "u1"), &year_report()).await;
            ids.push(job["id"].as_str().expect("id").parse::<uuid::Uuid>().expect("uuid"));
        }
        let claimed = app.store.claim(Lane::Reports, 10, Duration::from_secs(30), "w").await.expect("claim");
        let completions: Vec<Completion> = claimed
            .iter()
            .map(|job| Completion {
                attempt: AttemptRef::of(job),
                outcome: Outcome::Dead { error: "boom".into() },
            })
            .collect();
        assert_eq!(app.store.complete(&completions).await.expect("complete").len(), 2);

        app.post("/v1/admin/lanes/reports/redrive", &app.user("t1", "u1"), &json!({})).await.problem(StatusCode::FORBIDDEN);
        app.post("/v1/admin/lanes/bitcoin/redrive", &app.admin("t1"), &json!({})).await.problem(StatusCode::NOT_FOUND);
        let report = app.post("/v1/admin/lanes/reports/redrive", &app.admin("t1"), &json!({})).await;
        assert_eq!(report.status, StatusCode::OK, "{}", report.text());
        assert_eq!(report.json(), json!({"requeued": 1, "dropped": 0, "recovered": 0}));
        let filter = longhaul_jobs::store::JobFilter { limit: 10, ..Default::default() };
        let jobs = app.store.list_jobs(&Scope::Platform, &filter).await.expect("list");
        let status = |id: uuid::Uuid| jobs.iter().find(|job| job.id == id).map(|job| job.status);
        assert_eq!(status(ids[0]), Some(Status::Queued));
        assert_eq!(status(ids[1]), Some(Status::Dead), "another tenant's dead job stays dead");
    }
}

/// Makes the reports-lane jobs of `ids` dead, as a worker would.
async fn kill(app: &TestApp, count: usize) {
    let claimed = app.store.claim(Lane::Reports, count, Duration::from_secs(30), "w").await.expect("claim");
    let completions: Vec<Completion> = claimed
        .iter()
        .map(|job| Completion {
            attempt: AttemptRef::of(job),
            outcome: Outcome::Dead { error: "the agency said no".into() },
        })
        .collect();
    assert_eq!(app.store.complete(&completions).await.expect("complete").len(), count);
}

backend_tests! {
    async fn every_admin_action_is_in_the_audit_log_with_who_and_from_where(backend) {
        let app = TestApp::new(backend).await;
        let job = app.submit(&app.user("t1", "u1"), &year_report()).await;
        let id = job["id"].as_str().expect("id").to_owned();
        kill(&app, 1).await;
        let admin = app.admin("t1");
        let from = [("x-forwarded-for", "203.0.113.7"), ("user-agent", "ops-script/1.0")];
        let retried = app.post_with(&format!("/v1/admin/jobs/{id}/retry"), &admin, &json!({}), &from).await;
        assert_eq!(retried.status, StatusCode::OK, "{}", retried.text());
        app.post("/v1/admin/lanes/email/pause", &admin, &json!({})).await;
        app.post("/v1/admin/lanes/email/resume", &admin, &json!({})).await;
        app.post("/v1/admin/lanes/reports/redrive", &admin, &json!({})).await;
        // Reads are not actions.
        app.get("/v1/admin/queues", &admin).await;

        let log = app.get("/v1/admin/audit", &admin).await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.text());
        let items = log.json()["items"].as_array().expect("items").clone();
        let actions: Vec<&str> = items.iter().map(|entry| entry["action"].as_str().expect("action")).collect();
        assert_eq!(actions, ["lane.redrive", "lane.resume", "lane.pause", "job.retry"], "newest first");
        let retry = &items[3];
        assert_eq!(retry["target"], json!(id));
        assert_eq!(retry["actor"], "admin");
        assert_eq!(retry["tenant_id"], "t1");
        assert_eq!(retry["role"], "admin");
        assert_eq!(retry["subject_tenant"], "t1");
        assert_eq!(retry["source_ip"], "203.0.113.7 (forwarded)");
        assert_eq!(retry["user_agent"], "ops-script/1.0");
        assert_eq!(retry["detail"]["kind"], "report_build");
        assert!(retry["at"].as_str().is_some_and(|at| at.starts_with("20")), "{retry}");
        assert_eq!(items[0]["detail"], json!({"requeued": 0, "dropped": 0, "recovered": 0}));

        // Paged, and another tenant's admin sees none of it; users see nothing.
        let page = app.get("/v1/admin/audit?limit=3", &admin).await.json();
        assert_eq!(page["items"].as_array().map(Vec::len), Some(3));
        let before = page["next_before"].as_i64().expect("a next page");
        let rest = app.get(&format!("/v1/admin/audit?before={before}"), &admin).await.json();
        assert_eq!(rest["items"][0]["action"], "job.retry");
        assert_eq!(rest["next_before"], json!(null));
        assert_eq!(app.get("/v1/admin/audit", &app.admin("t2")).await.json()["items"], json!([]));
        app.get("/v1/admin/audit", &app.user("t1", "u1")).await.problem(StatusCode::FORBIDDEN);
        let platform = app.token("ops", "root", longhaul_api::auth::Role::Platform);
        assert_eq!(app.get("/v1/admin/audit", &platform).await.json()["items"].as_array().map(Vec::len), Some(4));
    }

    async fn a_platform_operators_action_on_a_tenants_job_shows_in_that_tenants_log(backend) {
        let app = TestApp::new(backend).await;
        let job = app.submit(&app.user("t1", "u1"), &year_report()).await;
        kill(&app, 1).await;
        let platform = app.token("ops", "root", longhaul_api::auth::Role::Platform);
        let id = job["id"].as_str().expect("id");
        assert_eq!(app.post(&format!("/v1/admin/jobs/{id}/retry"), &platform, &json!({})).await.status, StatusCode::OK);
        let items = app.get("/v1/admin/audit", &app.admin("t1")).await.json()["items"].clone();
        assert_eq!(items[0]["action"], "job.retry");
        assert_eq!(items[0]["tenant_id"], "ops");
        assert_eq!(app.get("/v1/admin/audit", &app.admin("t2")).await.json()["items"], json!([]));
    }

    async fn an_admin_deletes_a_dead_job_but_not_a_queued_one(backend) {
        let app = TestApp::new(backend).await;
        let user = app.user("t1", "u1");
        let dead = app.submit(&user, &year_report()).await;
        kill(&app, 1).await;
        let queued = app.submit(&user, &year_report()).await;
        let admin = app.admin("t1");
        let path = |job: &serde_json::Value| format!("/v1/admin/jobs/{}", job["id"].as_str().expect("id"));
        app.delete(&path(&queued), &admin).await.problem(StatusCode::CONFLICT);
        app.delete(&path(&dead), &user).await.problem(StatusCode::FORBIDDEN);
        app.delete(&path(&dead), &app.admin("t2")).await.problem(StatusCode::NOT_FOUND);
        let deleted = app.delete(&path(&dead), &admin).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
        app.get(&format!("/v1/jobs/{}", dead["id"].as_str().expect("id")), &admin).await.problem(StatusCode::NOT_FOUND);
        let queues = app.get("/v1/admin/queues", &admin).await.json();
        let reports = queues["lanes"].as_array().expect("lanes").iter().find(|lane| lane["lane"] == "reports").cloned();
        assert_eq!(reports.expect("reports")["dead"], 0, "the queue row went with it");
        assert_eq!(app.get(&path(&queued).replace("/admin", ""), &admin).await.status, StatusCode::OK);
        let log = app.get("/v1/admin/audit", &admin).await.json();
        assert_eq!(log["items"][0]["action"], "job.delete");
        assert_eq!(log["items"][0]["detail"]["status"], "dead");
        // An admin's cancel through the jobs API is an admin action too; a
        // user's own is not.
        app.post(&format!("/v1/jobs/{}/cancel", queued["id"].as_str().expect("id")), &admin, &json!({})).await;
        let other = app.submit(&user, &year_report()).await;
        app.post(&format!("/v1/jobs/{}/cancel", other["id"].as_str().expect("id")), &user, &json!({})).await;
        let log = app.get("/v1/admin/audit", &admin).await.json();
        assert_eq!(log["items"][0]["action"], "job.cancel");
        assert_eq!(log["items"][0]["target"], queued["id"]);
        assert_eq!(log["items"][1]["action"], "job.delete");
    }

    async fn live_workers_are_listed_with_their_tenants_running_jobs_only(backend) {
        use longhaul_jobs::admin::{RunningJob, WorkerLane, WorkerPresence};
        let app = TestApp::new(backend).await;
        let now = chrono::Utc::now();
        let running = |tenant: &str| RunningJob {
            id: uuid::Uuid::now_v7(),
            kind: longhaul_jobs::JobKind::NOOP,
            lane: Lane::Default,
            tenant_id: tenant.to_owned(),
            attempt: 1,
            started_at: now,
        };
        let worker = |id: &str, seen_at| WorkerPresence {
            id: id.to_owned(),
            host: "pod-a".to_owned(),
            version: "0.1.0".to_owned(),
            lanes: vec![WorkerLane { lane: Lane::Default, concurrency: 64 }],
            running: vec![running("t1"), running("t2")],
            started_at: now - chrono::Duration::minutes(5),
            seen_at,
        };
        app.store.report_worker(&worker("pod-a-1", now)).await.expect("report");
        app.store.report_worker(&worker("pod-b-1", now - chrono::Duration::minutes(2))).await.expect("report");
        let listed = app.get("/v1/admin/workers", &app.admin("t1")).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());
        let items = listed.json()["items"].as_array().expect("items").clone();
        assert_eq!(items.len(), 1, "the instance not seen for 2 minutes is gone: {items:?}");
        assert_eq!(items[0]["id"], "pod-a-1");
        assert_eq!(items[0]["lanes"], json!([{"lane": "default", "concurrency": 64}]));
        assert_eq!(items[0]["running"].as_array().map(Vec::len), Some(1));
        assert_eq!(items[0]["running"][0]["tenant_id"], "t1");
        let platform = app.token("ops", "root", longhaul_api::auth::Role::Platform);
        assert_eq!(app.get("/v1/admin/workers", &platform).await.json()["items"][0]["running"].as_array().map(Vec::len), Some(2));
        app.store.remove_worker("pod-a-1").await.expect("remove");
        assert_eq!(app.get("/v1/admin/workers", &platform).await.json()["items"], json!([]));
    }
}
