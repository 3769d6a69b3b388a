//! Metrics and traces, end to end: the `traceparent` of an API request
//! reaches the `job` span of the worker that runs the job (on the embedded
//! queue and on SQS), and `/metrics` of the API and of a worker show what
//! ran. The worker logs JSON, which the tests read back.

mod support;

use std::time::Duration;

use longhaul_jobs::{
    queue::{create_lane_queues, sqs_client},
    testing::{aws_endpoint_url, aws_sdk_config, Backend, TestStore},
    Lane,
};
use serde_json::{json, Value};
use support::{eventually, free_port, wait_ready, Launcher, Process};

/// The variables that make a process log JSON, with the worker's debug
/// events (a job's success is one) inside their `job` span.
const JSON_LOGS: [(&str, &str); 2] = [("LONGHAUL_LOG_FORMAT", "json"), ("LONGHAUL_LOG", "info,longhaul_workers=debug")];

/// `longhaul api` and `longhaul worker` as separate processes, the worker
/// serving its probes and metrics on a port of its own.
struct Deployment {
    launcher: Launcher,
    api: Process,
    worker: Process,
    url: String,
    worker_url: String,
    token: String,
}

async fn deploy(database_url: &str, env: &[(&str, String)]) -> Deployment {
    let mut launcher = Launcher::new(database_url);
    let token = launcher.token("acme", "ops", "admin").await;
    let key_file = launcher.signing_key_file();
    let api_listen = format!("127.0.0.1:{}", free_port());
    let worker_listen = format!("127.0.0.1:{}", free_port());
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("LONGHAUL_DEV_SIGNING_KEY_FILE", &key_file));
    // A short lease, so that a job of a few seconds sees its lease extended.
    env.push(("LONGHAUL_LEASE_SECS", "3"));
    env.push(("LONGHAUL_SWEEP_INTERVAL_SECS", "0"));
    env.extend(JSON_LOGS);
    let mut api = launcher.spawn(&["api", "--listen", &api_listen], &env);
    env.push(("LONGHAUL_WORKER_LISTEN", &worker_listen));
    let mut worker = launcher.spawn(&["worker", "--lanes", "default", "--concurrency", "4"], &env);
    let url = format!("http://{api_listen}");
    let worker_url = format!("http://{worker_listen}");
    wait_ready(&format!("{url}/readyz"), &mut api).await;
    wait_ready(&format!("{worker_url}/readyz"), &mut worker).await;
    Deployment { launcher, api, worker, url, worker_url, token }
}

/// A fresh sampled `traceparent`, and its trace id.
fn new_traceparent() -> (String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let parent_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
    (format!("00-{trace_id}-{parent_id}-01"), trace_id)
}

/// Submits a `noop` job under `traceparent` and waits for it to succeed;
/// returns its id.
async fn run_traced_job(url: &str, token: &str, traceparent: &str, payload: Value) -> String {
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{url}/v1/jobs"))
        .bearer_auth(token)
        .header("traceparent", traceparent)
        .json(&json!({ "kind": "noop", "payload": payload }))
        .send()
        .await
        .expect("submit");
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED, "{:?}", response.text().await);
    let job: Value = response.json().await.expect("a job");
    let id = job["id"].as_str().expect("a job id").to_owned();
    eventually(Duration::from_secs(60), &format!("job {id} to succeed"), || async {
        let job: Value = client
            .get(format!("{url}/v1/jobs/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|err| err.to_string())?
            .json()
            .await
            .map_err(|err| err.to_string())?;
        if job["status"] == "succeeded" {
            Ok(())
        } else {
            Err(job.to_string())
        }
    })
    .await;
    id
}

/// Waits for a JSON log line of `process` inside the `job` span of job `id`,
/// and returns that span.
async fn job_span(process: &Process, id: &str) -> Value {
    eventually(Duration::from_secs(30), &format!("a log line in the span of job {id}"), || async {
        process
            .log_tail(usize::MAX)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|line| line["span"].clone())
            .find(|span| span["name"] == "job" && span["job_id"] == id)
            .ok_or_else(|| process.log_tail(10))
    })
    .await
}

async fn metrics(url: &str) -> String {
    let response = reqwest::get(format!("{url}/metrics")).await.expect("GET /metrics");
    assert!(response.status().is_success(), "{url}/metrics answered {}", response.status());
    response.text().await.expect("the metrics")
}

/// Asserts that `metrics` has a sample of each series that starts with one
/// of `prefixes` (a name, and its labels up to any point).
fn assert_series(metrics: &str, prefixes: &[&str]) {
    for prefix in prefixes {
        assert!(metrics.lines().any(|line| line.starts_with(prefix)), "no `{prefix}…` in:\n{metrics}");
    }
}

/// What a worker's `/metrics` shows after a `noop` job ran on the default lane.
const WORKER_SERIES: &[&str] = &[
    r#"longhaul_jobs_total{kind="noop",status="succeeded"} "#,
    r#"longhaul_job_duration_seconds_bucket{kind="noop",le="0.005"} "#,
    r#"longhaul_job_duration_seconds_bucket{kind="noop",le="7200"} "#,
    r#"longhaul_job_duration_seconds_bucket{kind="noop",le="+Inf"} 1"#,
    r#"longhaul_job_duration_seconds_count{kind="noop"} 1"#,
    r#"longhaul_lease_extensions_total{lane="default"} "#,
    r#"longhaul_leases_lost_total{lane="default"} 0"#,
    r#"longhaul_queue_depth{lane="default"} 0"#,
    r#"longhaul_queue_oldest_age_seconds{lane="default"} "#,
    r#"longhaul_queue_in_flight{lane="default"} "#,
    r#"longhaul_queue_delayed{lane="video"} "#,
    r#"longhaul_queue_dead{lane="reports"} "#,
];

/// What the API's `/metrics` shows after a job was submitted and read back.
const API_SERIES: &[&str] = &[
    r#"longhaul_http_requests_total{method="POST",route="/v1/jobs",status="202"} 1"#,
    r#"longhaul_http_requests_total{method="GET",route="/v1/jobs/{id}",status="200"} "#,
    r#"longhaul_http_request_duration_seconds_bucket{method="POST",route="/v1/jobs",le="+Inf"} 1"#,
    r#"longhaul_http_request_duration_seconds_count{method="GET",route="/readyz"} "#,
    r#"longhaul_queue_depth{lane="default"} "#,
    r#"longhaul_queue_oldest_age_seconds{lane="email"} "#,
];

/// The end-to-end check of a deployment: one traced job, then the worker's
/// span and both processes' metrics.
async fn traced_job_and_metrics(deployment: &Deployment) {
    let (traceparent, trace_id) = new_traceparent();
    let id = run_traced_job(&deployment.url, &deployment.token, &traceparent, json!({ "sleep_ms": 2500 })).await;
    let span = job_span(&deployment.worker, &id).await;
    assert_eq!(span["trace_id"], trace_id.as_str(), "{span}");
    assert_eq!(span["traceparent"], traceparent.as_str(), "{span}");
    // The API's log lines of that request carry the same trace id.
    let api_logs = deployment.api.log_tail(usize::MAX);
    let joined = api_logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .any(|line| line["span"]["name"] == "request" && line["span"]["trace_id"] == trace_id.as_str());
    assert!(joined, "no API log line in a request span with trace_id {trace_id}:\n{}", deployment.api.log_tail(20));

    // The worker's probes.
    let health = reqwest::get(format!("{}/healthz", deployment.worker_url)).await.expect("healthz");
    assert!(health.status().is_success());
    let missing = reqwest::get(format!("{}/nothing", deployment.worker_url)).await.expect("a 404");
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);

    let worker = metrics(&deployment.worker_url).await;
    assert_series(&worker, WORKER_SERIES);
    assert!(worker.contains("# TYPE longhaul_job_duration_seconds histogram"), "{worker}");
    let api = metrics(&deployment.url).await;
    assert_series(&api, API_SERIES);
    assert!(api.contains("# TYPE longhaul_http_request_duration_seconds histogram"), "{api}");
    // The raw path of a request never becomes a label.
    assert!(!api.contains(&id), "a job id in a label:\n{api}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traceparent_reaches_the_worker_span_and_metrics_count_the_job_on_the_embedded_queue() {
    let store = TestStore::new(Backend::Postgres).await.expect("a test database");
    let deployment = deploy(&store.url, &[]).await;
    traced_job_and_metrics(&deployment).await;

    // SIGTERM: the worker stops being ready, and exits 0.
    let Deployment { launcher: _launcher, api: _api, mut worker, worker_url, .. } = deployment;
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    let status = worker.wait_for_exit(Duration::from_secs(30)).await.expect("the worker stops");
    assert!(status.success(), "{}", worker.log_tail(20));
    assert!(reqwest::get(format!("{worker_url}/healthz")).await.is_err(), "the probes stop with the worker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traceparent_reaches_the_worker_span_and_metrics_count_the_job_on_sqs() {
    let store = TestStore::new(Backend::Postgres).await.expect("a test database");
    let sqs = sqs_client(&aws_sdk_config().await);
    let name_prefix = format!("telemetry-{}-", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let queues = create_lane_queues(&sqs, &name_prefix, 5).await.expect("create the lane queues (is moto_server up?)");
    let url = &queues.lanes[&Lane::Default].url;
    let prefix = url.strip_suffix("default").expect("a queue URL ending in its lane").to_owned();
    let env = [
        ("AWS_ENDPOINT_URL", aws_endpoint_url()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("LONGHAUL_QUEUE", "sqs".to_owned()),
        ("LONGHAUL_SQS_QUEUE_PREFIX", prefix),
    ];
    let deployment = deploy(&store.url, &env).await;
    traced_job_and_metrics(&deployment).await;
    // The worker receives through SQS, and counts it.
    let worker = metrics(&deployment.worker_url).await;
    assert_series(&worker, &[r#"longhaul_sqs_requests_total{op="receive_message"} "#]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_shows_its_workers_metrics_and_traces_on_the_api() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let database = format!("sqlite://{}", dir.path().join("up.db").display());
    let mut launcher = Launcher::new(&database);
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}");
    let mut env = JSON_LOGS.to_vec();
    env.push(("LONGHAUL_LEASE_SECS", "3"));
    let mut up = launcher.spawn(&["up", "--listen", &listen], &env);
    wait_ready(&format!("{url}/readyz"), &mut up).await;
    let token = launcher.token("dev", "ops", "admin").await;

    let (traceparent, trace_id) = new_traceparent();
    let id = run_traced_job(&url, &token, &traceparent, json!({ "sleep_ms": 1500 })).await;
    let span = job_span(&up, &id).await;
    assert_eq!(span["trace_id"], trace_id.as_str(), "{span}");

    // One recorder: the workers' metrics are on the API's /metrics.
    let metrics = metrics(&url).await;
    assert_series(&metrics, WORKER_SERIES);
    assert_series(&metrics, API_SERIES);
}
