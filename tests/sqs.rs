//! Production's shape, end to end: `longhaul api` and `longhaul worker` as
//! separate processes on PostgreSQL, with SQS, S3 and SNS on the local
//! `moto_server`, reached through the real AWS SDK clients.

mod support;

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use longhaul_jobs::{
    queue::{create_lane_queues, sqs_client, SqsConfig},
    testing::{aws_endpoint_url, aws_sdk_config, Backend, TestStore},
    Lane,
};
use serde_json::{json, Value};
use support::{eventually, free_port, Launcher, Process, TcpProxy};

/// Fresh queues for every lane on the local endpoint; returns the URL
/// prefix `LONGHAUL_SQS_QUEUE_PREFIX` takes, and the queues.
async fn lane_queues(client: &aws_sdk_sqs::Client) -> (String, SqsConfig) {
    let name_prefix = format!("e2e-{}-", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let config =
        create_lane_queues(client, &name_prefix, 5).await.expect("create the lane queues (is moto_server up?)");
    let url = &config.lanes[&Lane::Default].url;
    let prefix = url.strip_suffix("default").expect("a queue URL ending in its lane").to_owned();
    (prefix, config)
}

/// The variables of a process on the local AWS endpoint.
fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("LONGHAUL_QUEUE", "sqs".to_owned()),
    ]
}

/// A test database, fresh lane queues, and the environment of processes
/// that reach the local AWS endpoint through a proxy the test can stop.
async fn behind_a_proxy() -> (TestStore, TcpProxy, Vec<(&'static str, String)>) {
    let store = TestStore::new(Backend::Postgres).await.expect("a test database");
    let (prefix, _) = lane_queues(&sqs_client(&aws_sdk_config().await)).await;
    let target = aws_endpoint_url().trim_start_matches("http://").trim_end_matches('/').to_owned();
    let proxy = TcpProxy::start(&target).await;
    let mut env = aws_env(&proxy.url());
    env.push(("LONGHAUL_SQS_QUEUE_PREFIX", prefix));
    (store, proxy, env)
}

struct Deployment {
    launcher: Launcher,
    api: Process,
    worker: Process,
    url: String,
    token: String,
}

/// `longhaul api` and `longhaul worker` (lanes default and reports) with `env`.
async fn deploy(store: &TestStore, env: &[(&'static str, String)]) -> Deployment {
    deploy_with(store, env, &[]).await
}

/// As [`deploy`], with extra variables for the worker only.
async fn deploy_with(store: &TestStore, env: &[(&'static str, String)], worker_env: &[(&str, &str)]) -> Deployment {
    let mut launcher = Launcher::new(&store.url);
    let token = launcher.token("acme", "ops", "admin").await;
    let key_file = launcher.signing_key_file();
    let url = format!("http://127.0.0.1:{}", free_port());
    let listen = url.trim_start_matches("http://").to_owned();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("LONGHAUL_DEV_SIGNING_KEY_FILE", &key_file));
    env.push(("LONGHAUL_LEASE_SECS", "5"));
    env.push(("LONGHAUL_RETRY_BASE_MS", "100"));
    let mut api = launcher.spawn(&["api", "--listen", &listen], &env);
    env.extend_from_slice(worker_env);
    let worker = launcher.spawn(&["worker", "--lanes", "default,reports", "--concurrency", "8"], &env);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await {
            if response.status().is_success() {
                break;
            }
        }
        assert!(api.try_exit_status().is_none(), "api exited early:\n{}", api.log_tail(30));
        assert!(Instant::now() < deadline, "api never became ready:\n{}", api.log_tail(30));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Deployment { launcher, api, worker, url, token }
}

impl Deployment {
    async fn submit(&self, payload: Value) -> String {
        self.submit_kind("noop", payload).await
    }

    async fn submit_kind(&self, kind: &str, payload: Value) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/jobs", self.url))
            .bearer_auth(&self.token)
            .json(&json!({ "kind": kind, "payload": payload }))
            .send()
            .await
            .expect("submit");
        assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED, "{:?}", response.text().await);
        let job: Value = response.json().await.expect("a job");
        job["id"].as_str().expect("a job id").to_owned()
    }

    async fn job(&self, id: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}/v1/jobs/{id}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("get a job")
            .json()
            .await
            .expect("a job")
    }

    async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        eventually(Duration::from_secs(60), &format!("job {id} to be {status}"), || async {
            let job = self.job(id).await;
            if job["status"] == status {
                Ok(job)
            } else {
                Err(format!("{job}"))
            }
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_worker_run_jobs_through_sqs_s3_and_sns() {
    let store = TestStore::new(Backend::Postgres).await.expect("a test database");
    let sdk = aws_sdk_config().await;
    let sqs = sqs_client(&sdk);
    let (prefix, queues) = lane_queues(&sqs).await;

    // The bucket, and a topic whose events land on a queue we can read.
    let bucket = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    s3.create_bucket().bucket(&bucket).send().await.expect("create a bucket");
    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic = sns.create_topic().name(format!("{bucket}-events")).send().await.expect("a topic");
    let topic_arn = topic.topic_arn().expect("a topic ARN").to_owned();
    let events = sqs.create_queue().queue_name(format!("{bucket}-events")).send().await.expect("an events queue");
    let events_url = events.queue_url().expect("a queue URL").to_owned();
    let events_arn = sqs
        .get_queue_attributes()
        .queue_url(&events_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("a queue ARN");
    sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(&events_arn).send().await.expect("subscribe");

    let mut env = aws_env(&aws_endpoint_url());
    env.push(("LONGHAUL_SQS_QUEUE_PREFIX", prefix));
    env.push(("LONGHAUL_OBJECT_STORE", format!("s3://{bucket}/artifacts")));
    env.push(("LONGHAUL_SNS_TOPIC_ARN", topic_arn));
    let deployment = deploy(&store, &env).await;

    // A job runs, and its artifact lands in the bucket.
    let id = deployment.submit(json!({ "artifact": "hello from a worker" })).await;
    let job = deployment.wait_for_status(&id, "succeeded").await;
    assert_eq!(job["attempts"], 1);
    let key = job["result"]["artifact"]["key"].as_str().expect("the artifact's key").to_owned();
    let object = s3.get_object().bucket(&bucket).key(format!("artifacts/{key}")).send().await.expect("the artifact");
    assert_eq!(object.server_side_encryption().map(|e| e.as_str()), Some("AES256"));
    let body = object.body.collect().await.expect("the artifact's bytes").into_bytes();
    assert_eq!(&body[..], b"hello from a worker");
    // Listed on the job, and downloadable through a presigned URL.
    let artifact = &job["artifacts"][0];
    assert_eq!(artifact["name"], "noop.txt", "{job}");
    let no_redirects =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client");
    let redirect = no_redirects
        .get(format!("{}{}", deployment.url, artifact["url"].as_str().expect("a URL")))
        .bearer_auth(&deployment.token)
        .send()
        .await
        .expect("the artifact route");
    assert_eq!(redirect.status(), reqwest::StatusCode::FOUND);
    let location = redirect.headers()["location"].to_str().expect("a URL").to_owned();
    assert!(location.contains("X-Amz-Signature"), "{location}");
    let presigned = reqwest::get(&location).await.expect("the presigned URL").text().await.expect("the file");
    assert_eq!(presigned, "hello from a worker");

    // Outcomes are announced through SNS (noop, a diagnostic, is not): a
    // report's final status arrives through the SNS → SQS subscription.
    let id = deployment.submit_kind("report_build", json!({ "report": "year_summary", "year": 2026 })).await;
    let final_status = eventually(Duration::from_secs(60), "the report to end", || async {
        let job = deployment.job(&id).await;
        match job["status"].as_str() {
            Some(status @ ("succeeded" | "dead")) => Ok(status.to_owned()),
            _ => Err(format!("{job}")),
        }
    })
    .await;
    let event = eventually(Duration::from_secs(30), "the job.succeeded event", || async {
        let out = sqs
            .receive_message()
            .queue_url(&events_url)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        for message in out.messages() {
            let envelope: Value =
                serde_json::from_str(message.body().unwrap_or_default()).map_err(|e| e.to_string())?;
            let event: Value =
                serde_json::from_str(envelope["Message"].as_str().unwrap_or_default()).map_err(|e| e.to_string())?;
            if event["data"]["job_id"] == id.as_str() {
                return Ok((envelope, event));
            }
        }
        Err("no event yet".to_owned())
    })
    .await;
    assert_eq!(event.0["MessageAttributes"]["event_type"]["Value"], format!("job.{final_status}"), "{}", event.0);
    assert_eq!(event.0["MessageAttributes"]["tenant_id"]["Value"], "acme");

    // A job that fails for good is dead, and its message is in the lane's
    // dead-letter queue; a redrive puts it back in line and drains the DLQ.
    let dead = deployment.submit(json!({ "fail_permanently": true })).await;
    deployment.wait_for_status(&dead, "dead").await;
    let dlq = &queues.lanes[&Lane::Default].dlq_url;
    let depth = || async {
        let out = sqs
            .get_queue_attributes()
            .queue_url(dlq)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let depth: i64 = out
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1);
        Ok::<i64, String>(depth)
    };
    eventually(Duration::from_secs(30), "the dead job's message in the DLQ", || async {
        match depth().await? {
            1 => Ok(()),
            other => Err(format!("{other} messages")),
        }
    })
    .await;
    // Paused, so that the redriven job waits instead of dying again at once.
    let admin = |path: &str| {
        reqwest::Client::new()
            .post(format!("{}/v1/admin/lanes/default/{path}", deployment.url))
            .bearer_auth(&deployment.token)
            .send()
    };
    assert!(admin("pause").await.expect("pause").status().is_success());
    let redrive: Value = reqwest::Client::new()
        .post(format!("{}/v1/admin/lanes/default/redrive", deployment.url))
        .bearer_auth(&deployment.token)
        .send()
        .await
        .expect("redrive")
        .json()
        .await
        .expect("a report");
    assert_eq!(redrive["requeued"], 1, "{redrive}");
    assert_eq!(depth().await.expect("the DLQ depth"), 0, "the redrive drained the DLQ");
    let redriven = deployment.job(&dead).await;
    assert_eq!(redriven["status"], "queued", "{redriven}");
    assert_eq!(redriven["attempts"], 0, "{redriven}");
    assert!(admin("resume").await.expect("resume").status().is_success());
    deployment.wait_for_status(&dead, "dead").await;

    // The API counts its SQS requests.
    let metrics =
        reqwest::get(format!("{}/metrics", deployment.url)).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("longhaul_sqs_requests_total{op=\"receive_message\"}"), "{metrics}");
    drop(deployment.worker);
    drop(deployment.api);
    drop(deployment.launcher);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_submitted_while_sqs_is_away_wait_in_the_outbox_and_all_run_when_it_returns() {
    let (store, mut proxy, env) = behind_a_proxy().await;
    let deployment = deploy(&store, &env).await;

    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(deployment.submit(json!({})).await);
    }
    for id in &ids {
        deployment.wait_for_status(id, "succeeded").await;
    }

    // The endpoint goes away. The API still takes jobs; they wait in the
    // dispatch outbox, and readiness says the queue is down.
    proxy.stop().await;
    let mut during = Vec::new();
    for _ in 0..30 {
        during.push(deployment.submit(json!({})).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, outbox) = longhaul_jobs::database::connect_dispatch(&store.url).await.expect("the outbox");
    assert_eq!(outbox.dispatch_backlog().await.expect("the outbox"), 30, "every job waits for its message");
    for id in &during {
        assert_eq!(deployment.job(id).await["status"], "queued");
    }
    let ready = reqwest::get(format!("{}/readyz", deployment.url)).await.expect("readyz");
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);

    // It comes back: every job is sent, runs once, and none is lost.
    proxy.resume().await;
    for id in &during {
        let job = deployment.wait_for_status(id, "succeeded").await;
        assert_eq!(job["attempts"], 1, "{job}");
    }
    assert_eq!(outbox.dispatch_backlog().await.expect("the outbox"), 0);
    drop(deployment);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_starts_while_sqs_is_away_waits_for_it_and_a_wrong_queue_stops_it_at_once() {
    let (store, mut proxy, env) = behind_a_proxy().await;
    let mut deployment = deploy(&store, &env).await;
    deployment.worker.kill();

    // SQS goes away; a worker starts (a pod rescheduled mid-outage). It
    // waits for the queue instead of exiting, and the API takes a job.
    proxy.stop().await;
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut late = deployment.launcher.spawn(&["worker", "--lanes", "default", "--concurrency", "2"], &env_refs);
    let id = deployment.submit(json!({})).await;
    eventually(Duration::from_secs(30), "the late worker to say it waits for SQS", || async {
        if late.log_tail(200).contains("does not answer yet") {
            Ok(())
        } else {
            Err(late.log_tail(10))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(late.try_exit_status().is_none(), "the worker gave up during the outage:\n{}", late.log_tail(30));

    // SQS comes back: the waiting worker, the only one, runs the job.
    proxy.resume().await;
    let job = deployment.wait_for_status(&id, "succeeded").await;
    assert_eq!(job["attempts"], 1, "{job}");

    // Queues that SQS says do not exist are a configuration error: no wait.
    let missing = format!("{}/000000000000/longhaul-missing-", aws_endpoint_url().trim_end_matches('/'));
    let mut wrong: Vec<(&str, &str)> =
        env_refs.iter().copied().filter(|(k, _)| *k != "LONGHAUL_SQS_QUEUE_PREFIX").collect();
    wrong.push(("LONGHAUL_SQS_QUEUE_PREFIX", &missing));
    let mut misconfigured = deployment.launcher.spawn(&["worker", "--lanes", "default"], &wrong);
    let status = misconfigured.wait_for_exit(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|status| !status.success()), "{}", misconfigured.log_tail(30));
    assert!(misconfigured.log_tail(50).contains("do not answer"), "{}", misconfigured.log_tail(30));
    drop(late);
    drop(deployment);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_upload_rides_out_a_short_s3_outage_without_spending_an_attempt() {
    let store = TestStore::new(Backend::Postgres).await.expect("a test database");
    let sdk = aws_sdk_config().await;
    let (prefix, _) = lane_queues(&sqs_client(&sdk)).await;
    let bucket = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    s3.create_bucket().bucket(&bucket).send().await.expect("create a bucket");
    // S3 alone goes through the proxy; SQS stays up.
    let target = aws_endpoint_url().trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut proxy = TcpProxy::start(&target).await;
    let mut env = aws_env(&aws_endpoint_url());
    env.push(("LONGHAUL_SQS_QUEUE_PREFIX", prefix));
    env.push(("AWS_ENDPOINT_URL_S3", proxy.url()));
    env.push(("LONGHAUL_OBJECT_STORE", format!("s3://{bucket}/outage")));
    let deployment = deploy(&store, &env).await;

    proxy.stop().await;
    let id = deployment.submit(json!({"artifact": "written after the outage"})).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(deployment.job(&id).await["status"], "running", "the upload waits for S3 inside its attempt");
    proxy.resume().await;
    let job = deployment.wait_for_status(&id, "succeeded").await;
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(job["artifacts"].as_array().map(Vec::len), Some(1), "{job}");
    drop(deployment);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_releases_running_jobs_to_the_next_worker_without_spending_an_attempt() {
    let store = TestStore::new(Backend::Postgres).await.expect("a test database");
    let sqs = sqs_client(&aws_sdk_config().await);
    let (prefix, _) = lane_queues(&sqs).await;
    let mut env = aws_env(&aws_endpoint_url());
    env.push(("LONGHAUL_SQS_QUEUE_PREFIX", prefix));
    let mut deployment = deploy_with(&store, &env, &[("LONGHAUL_SHUTDOWN_GRACE_SECS", "1")]).await;

    let id = deployment.submit(json!({ "sleep_ms": 4000 })).await;
    deployment.wait_for_status(&id, "running").await;
    deployment.worker.signal(nix::sys::signal::Signal::SIGTERM);
    let status = deployment.worker.wait_for_exit(Duration::from_secs(20)).await.expect("the worker stops");
    assert!(status.success(), "the worker exits 0 on SIGTERM:\n{}", deployment.worker.log_tail(20));
    let released = deployment.job(&id).await;
    assert_eq!(released["status"], "queued", "{released}");
    assert_eq!(released["attempts"], 0, "a release gives the attempt back: {released}");

    // The next worker (the deploy's new pod) takes it over and finishes it.
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _next = deployment.launcher.spawn(&["worker", "--lanes", "default"], &env);
    let done = deployment.wait_for_status(&id, "succeeded").await;
    assert_eq!(done["attempts"], 1, "{done}");
    assert!(done["error"].is_null(), "nothing failed: {done}");
}
