//! The queue contract, run against every queue backend: the embedded queue
//! on SQLite and on PostgreSQL, and SQS (on the local `moto_server`) over
//! PostgreSQL. Then what only SQS has: the dispatch outbox, duplicates,
//! poison messages and the shape of a message.

use std::time::Duration;

use chrono::Utc;
use longhaul_jobs::{
    queue::{ClaimRequest, Delivery},
    store::{Completion, InsertOutcome, Outcome},
    testing::{QueueBackend, TestQueue},
    Job, JobKind, Lane, NewJob, Scope, Status,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

longhaul_jobs::on_every_queue!(
    a_queued_job_is_delivered_once_and_acknowledged,
    a_receive_takes_no_more_than_asked,
    a_released_job_comes_back_at_once_without_spending_an_attempt,
    a_retry_comes_back_after_its_delay_as_the_next_attempt,
    a_cancelled_queued_job_is_never_delivered,
    a_dead_job_is_redriven_with_fresh_attempts,
    redrive_leaves_other_tenants_dead_jobs,
    heartbeats_extend_the_lease_and_report_cancels,
    a_lost_lease_fences_the_outcome_and_the_job_runs_again,
    a_paused_lane_delivers_nothing_until_resumed,
);

const LEASE: Duration = Duration::from_secs(30);
const LANE: Lane = Lane::Default;

async fn queue(backend: QueueBackend) -> TestQueue {
    TestQueue::new(backend).await.expect("a fresh test queue (are PostgreSQL and moto_server running?)")
}

fn noop(tenant: &str) -> NewJob {
    NewJob::new(tenant, "u1", JobKind::NOOP, json!({}))
}

async fn submit(queue: &TestQueue, job: NewJob) -> Job {
    let job = match queue.store.insert_job(job).await.expect("insert") {
        InsertOutcome::Created(job) => job,
        other => panic!("expected a new job, got {other:?}"),
    };
    queue.flush().await.expect("dispatch");
    job
}

/// Receives until `want` jobs came or a few receives came back empty.
async fn receive(queue: &TestQueue, max: usize, want: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    let mut empty = 0;
    while got.len() < want && empty < 3 {
        let batch = queue
            .queue
            .receive(
                &ClaimRequest::new(LANE, max.min(want - got.len()), LEASE, "test-worker"),
                &CancellationToken::new(),
            )
            .await
            .expect("receive");
        if batch.is_empty() {
            empty += 1;
        }
        got.extend(batch);
    }
    got
}

async fn nothing_more(queue: &TestQueue) {
    let extra = queue
        .queue
        .receive(&ClaimRequest::new(LANE, 10, LEASE, "test-worker"), &CancellationToken::new())
        .await
        .expect("receive");
    assert!(
        extra.is_empty(),
        "nothing else should be delivered, got {:?}",
        extra.iter().map(|d| d.job.id).collect::<Vec<_>>()
    );
}

async fn finish(queue: &TestQueue, delivery: &Delivery, outcome: Outcome) -> bool {
    let committed =
        queue.queue.complete(&[Completion { attempt: delivery.ticket.attempt, outcome }]).await.expect("complete");
    queue.queue.acknowledge(std::slice::from_ref(&delivery.ticket)).await.expect("acknowledge");
    queue.flush().await.expect("dispatch");
    !committed.is_empty()
}

async fn status(queue: &TestQueue, job: &Job) -> Job {
    queue.store.get_job(&Scope::Platform, job.id).await.expect("get").expect("the job exists")
}

async fn a_queued_job_is_delivered_once_and_acknowledged(backend: QueueBackend) {
    let queue = queue(backend).await;
    let job = submit(&queue, noop("t1")).await;
    let got = receive(&queue, 10, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.id, job.id);
    assert_eq!(got[0].job.status, Status::Running);
    assert_eq!(got[0].job.attempts, 1);
    assert!(finish(&queue, &got[0], Outcome::Succeeded { result: None, artifacts: Vec::new() }).await);
    nothing_more(&queue).await;
    assert_eq!(status(&queue, &job).await.status, Status::Succeeded);
}

async fn a_receive_takes_no_more_than_asked(backend: QueueBackend) {
    let queue = queue(backend).await;
    for _ in 0..25 {
        queue.store.insert_job(noop("t1")).await.expect("insert");
    }
    queue.flush().await.expect("dispatch");
    let first =
        queue.queue.receive(&ClaimRequest::new(LANE, 3, LEASE, "w"), &CancellationToken::new()).await.expect("receive");
    assert!(!first.is_empty() && first.len() <= 3, "asked for 3, got {}", first.len());
    let many = queue
        .queue
        .receive(&ClaimRequest::new(LANE, 100, LEASE, "w"), &CancellationToken::new())
        .await
        .expect("receive");
    assert!(many.len() <= queue.queue.max_receive(), "a receive returned {} jobs", many.len());
    let rest = receive(&queue, 100, 25 - first.len() - many.len()).await;
    let mut ids: Vec<_> = first.iter().chain(&many).chain(&rest).map(|d| d.job.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 25, "every job is delivered exactly once");
}

async fn a_released_job_comes_back_at_once_without_spending_an_attempt(backend: QueueBackend) {
    let queue = queue(backend).await;
    let job = submit(&queue, noop("t1")).await;
    let got = receive(&queue, 10, 1).await;
    assert_eq!(queue.queue.release(&[got[0].ticket.clone()]).await.expect("release"), 1);
    queue.flush().await.expect("dispatch");
    let again = receive(&queue, 10, 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].job.id, job.id);
    assert_eq!(again[0].job.attempts, 1, "a release gives the attempt back");
}

async fn a_retry_comes_back_after_its_delay_as_the_next_attempt(backend: QueueBackend) {
    let queue = queue(backend).await;
    let job = submit(&queue, noop("t1")).await;
    let got = receive(&queue, 10, 1).await;
    let run_at = Utc::now() + chrono::Duration::seconds(3);
    assert!(finish(&queue, &got[0], Outcome::Retry { error: "flaky".into(), run_at }).await);
    nothing_more(&queue).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    queue.flush().await.expect("dispatch");
    let again = receive(&queue, 10, 1).await;
    assert_eq!(again.len(), 1, "the retry is delivered once it is due");
    assert_eq!(again[0].job.id, job.id);
    assert_eq!(again[0].job.attempts, 2);
    assert!(Utc::now() >= run_at);
}

async fn a_cancelled_queued_job_is_never_delivered(backend: QueueBackend) {
    let queue = queue(backend).await;
    let job = submit(&queue, noop("t1")).await;
    queue.store.cancel_job(&Scope::Platform, job.id).await.expect("cancel");
    nothing_more(&queue).await;
    // On SQS the message was received and dropped, not hidden: still nothing.
    nothing_more(&queue).await;
    assert_eq!(status(&queue, &job).await.status, Status::Cancelled);
}

/// Messages waiting in a lane's dead-letter queue (SQS), or None.
async fn dead_letters(queue: &TestQueue) -> Option<i64> {
    let (client, config) = queue.sqs.as_ref()?;
    let out = client
        .get_queue_attributes()
        .queue_url(&config.lanes[&LANE].dlq_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("queue attributes");
    let count = out
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .expect("a message count");
    Some(count)
}

async fn kill(queue: &TestQueue, tenant: &str) -> Job {
    let mut job = noop(tenant);
    job.max_attempts = 1;
    let job = submit(queue, job).await;
    let got = receive(queue, 10, 1).await;
    assert_eq!(got[0].job.id, job.id);
    assert!(finish(queue, &got[0], Outcome::Dead { error: "boom".into() }).await);
    assert_eq!(status(queue, &job).await.status, Status::Dead);
    job
}

async fn a_dead_job_is_redriven_with_fresh_attempts(backend: QueueBackend) {
    let queue = queue(backend).await;
    let job = kill(&queue, "t1").await;
    if let Some(count) = dead_letters(&queue).await {
        assert_eq!(count, 1, "the dead job's message is in the dead-letter queue");
    }
    let report = queue.queue.redrive(&Scope::Tenant { tenant_id: "t1".into() }, LANE).await.expect("redrive");
    assert_eq!(report.requeued, 1);
    queue.flush().await.expect("dispatch");
    let again = receive(&queue, 10, 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].job.id, job.id);
    assert_eq!(again[0].job.attempts, 1, "a redriven job starts over");
    if let Some(count) = dead_letters(&queue).await {
        assert_eq!(count, 0, "the redrive drained the dead-letter queue");
    }
}

async fn redrive_leaves_other_tenants_dead_jobs(backend: QueueBackend) {
    let queue = queue(backend).await;
    let mine = kill(&queue, "t1").await;
    let theirs = kill(&queue, "t2").await;
    let report = queue.queue.redrive(&Scope::Tenant { tenant_id: "t1".into() }, LANE).await.expect("redrive");
    assert_eq!(report.requeued, 1);
    assert_eq!(status(&queue, &mine).await.status, Status::Queued);
    assert_eq!(status(&queue, &theirs).await.status, Status::Dead);
    if let Some(count) = dead_letters(&queue).await {
        assert_eq!(count, 1, "the other tenant's message stays in the dead-letter queue");
    }
}

async fn heartbeats_extend_the_lease_and_report_cancels(backend: QueueBackend) {
    let queue = queue(backend).await;
    let job = submit(&queue, noop("t1")).await;
    let got = receive(&queue, 10, 1).await;
    let states = queue.queue.heartbeat(&[got[0].ticket.clone()], LEASE).await.expect("heartbeat");
    assert!(states[0].held && !states[0].cancel_requested);
    queue.store.cancel_job(&Scope::Platform, job.id).await.expect("cancel");
    let states = queue.queue.heartbeat(&[got[0].ticket.clone()], LEASE).await.expect("heartbeat");
    assert!(states[0].held && states[0].cancel_requested);
}

async fn a_lost_lease_fences_the_outcome_and_the_job_runs_again(backend: QueueBackend) {
    let queue = queue(backend).await;
    let job = submit(&queue, noop("t1")).await;
    let got = queue
        .queue
        .receive(&ClaimRequest::new(LANE, 10, Duration::from_secs(1), "crashed-worker"), &CancellationToken::new())
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let reaped = queue.store.reap_expired().await.expect("reap");
    assert_eq!(reaped.requeued, 1);
    assert!(
        !finish(&queue, &got[0], Outcome::Succeeded { result: None, artifacts: Vec::new() }).await,
        "an outcome after the lease expired is fenced off"
    );
    let again = receive(&queue, 10, 1).await;
    assert_eq!(again.len(), 1, "the reaped job is delivered again");
    assert_eq!(again[0].job.id, job.id);
    assert_eq!(again[0].job.attempts, 2);
}

async fn a_paused_lane_delivers_nothing_until_resumed(backend: QueueBackend) {
    let queue = queue(backend).await;
    queue.store.set_lane_paused(LANE, true).await.expect("pause");
    let job = submit(&queue, noop("t1")).await;
    nothing_more(&queue).await;
    queue.store.set_lane_paused(LANE, false).await.expect("resume");
    // The SQS backend trusts a lane's pause state for a second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let got = receive(&queue, 10, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.id, job.id);
}

// ---------------------------------------------------------------------------
// SQS only.

mod sqs {
    use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};

    use super::*;

    async fn sqs_queue() -> TestQueue {
        queue(QueueBackend::Sqs).await
    }

    fn lane_url(queue: &TestQueue) -> String {
        queue.sqs.as_ref().expect("an SQS test queue").1.lanes[&LANE].url.clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_queued_job_has_a_dispatch_row_until_its_message_is_sent() {
        let queue = sqs_queue().await;
        for _ in 0..3 {
            queue.store.insert_job(noop("t1")).await.expect("insert");
        }
        queue.store.insert_jobs(&[noop("t1"), noop("t2")]).await.expect("insert many");
        let outbox = queue.store.dispatch.clone().expect("a dispatch store");
        assert_eq!(outbox.dispatch_backlog().await.expect("backlog"), 5, "written with the jobs");
        assert_eq!(queue.flush().await.expect("dispatch"), 5);
        assert_eq!(outbox.dispatch_backlog().await.expect("backlog"), 0, "deleted once sent");
        assert_eq!(receive(&queue, 10, 5).await.len(), 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_are_small_and_carry_job_id_attempt_tenant_and_traceparent() {
        let queue = sqs_queue().await;
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut job = noop("tenant-a");
        job.traceparent = Some(traceparent.into());
        let job = submit(&queue, job).await;
        let (client, _) = queue.sqs.as_ref().expect("sqs");
        let out = client
            .receive_message()
            .queue_url(lane_url(&queue))
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        let message = &out.messages()[0];
        let attribute = |name: &str| {
            message.message_attributes().and_then(|a| a.get(name)).and_then(|v| v.string_value()).map(str::to_owned)
        };
        assert_eq!(attribute("job_id"), Some(job.id.to_string()));
        assert_eq!(attribute("attempt"), Some("0".into()));
        assert_eq!(attribute("tenant_id"), Some("tenant-a".into()));
        assert_eq!(attribute("traceparent"), Some(traceparent.into()));
        let group = message.attributes().and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId)).cloned();
        assert_eq!(group, Some("tenant-a".into()), "tenants are fair-queued by message group");
        assert!(message.body().unwrap_or_default().len() < 128, "the payload stays in the database");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_duplicate_message_runs_the_job_once() {
        let queue = sqs_queue().await;
        let job = submit(&queue, noop("t1")).await;
        let (client, _) = queue.sqs.as_ref().expect("sqs");
        let text = |v: String| {
            MessageAttributeValue::builder().data_type("String").string_value(v).build().expect("attribute")
        };
        client
            .send_message()
            .queue_url(lane_url(&queue))
            .message_body("{}")
            .message_attributes("job_id", text(job.id.to_string()))
            .message_attributes(
                "attempt",
                MessageAttributeValue::builder().data_type("Number").string_value("0").build().expect("attribute"),
            )
            .send()
            .await
            .expect("send a duplicate");
        let got = receive(&queue, 10, 2).await;
        assert_eq!(got.len(), 1, "two messages, one run");
        assert!(finish(&queue, &got[0], Outcome::Succeeded { result: None, artifacts: Vec::new() }).await);
        nothing_more(&queue).await;
    }

    /// A worker takes a job and stops (SIGSTOP, a pause) past its lease; the
    /// reaper queues the job again with a message of the next generation.
    /// The first message comes back too, once its visibility runs out, and
    /// both arrive in one batch: the stale one is dropped, and the current
    /// one still starts the job (found by `longhaul chaos` on SQS, where
    /// dropping every copy lost the job).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_message_beside_the_current_one_in_a_batch_does_not_lose_the_job() {
        let queue = sqs_queue().await;
        let job = submit(&queue, noop("t1")).await;
        let stopped = queue
            .queue
            .receive(&ClaimRequest::new(LANE, 1, Duration::from_secs(1), "stopped-worker"), &CancellationToken::new())
            .await
            .expect("receive");
        assert_eq!(stopped.len(), 1);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(queue.store.reap_expired().await.expect("reap").requeued, 1);
        queue.flush().await.expect("dispatch the next generation's message");
        // Both messages in one batch (moto delivers in order: the stale one first).
        let got = queue
            .queue
            .receive(&ClaimRequest::new(LANE, 10, LEASE, "test-worker"), &CancellationToken::new())
            .await
            .expect("receive");
        assert_eq!(got.len(), 1, "the job must start from its current message");
        assert_eq!((got[0].job.id, got[0].job.attempts), (job.id, 2));
        assert!(finish(&queue, &got[0], Outcome::Succeeded { result: None, artifacts: Vec::new() }).await);
        nothing_more(&queue).await;
        assert_eq!(status(&queue, &job).await.status, Status::Succeeded);
    }

    /// Receives the lane's one message straight from SQS, one time short of
    /// the receive limit, and lets it go each time: workers that took it
    /// and died before starting its job.
    async fn lose_receives_up_to_the_limit(queue: &TestQueue, context: &str) {
        let (client, config) = queue.sqs.as_ref().expect("sqs");
        for _ in 1..config.max_receive_count {
            let out = client
                .receive_message()
                .queue_url(lane_url(queue))
                .wait_time_seconds(1)
                .visibility_timeout(0)
                .send()
                .await
                .expect("receive");
            assert_eq!(out.messages().len(), 1, "{context}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_delivered_too_often_kills_its_job_and_goes_to_the_dead_letter_queue() {
        let queue = sqs_queue().await;
        let job = submit(&queue, noop("t1")).await;
        // Workers that took the message and died before starting the job,
        // round after round: each time the message reaches the receive
        // limit it is sent afresh, until it has been sent afresh
        // SQS_MAX_RESENDS times; then it is poison.
        for round in 0..=longhaul_jobs::queue::SQS_MAX_RESENDS {
            lose_receives_up_to_the_limit(&queue, &format!("round {round}")).await;
            nothing_more(&queue).await;
            let now = status(&queue, &job).await;
            if round < longhaul_jobs::queue::SQS_MAX_RESENDS {
                assert_eq!(now.status, Status::Queued, "lost receives are not the job's fault (round {round})");
            }
        }
        let dead = status(&queue, &job).await;
        assert_eq!(dead.status, Status::Dead);
        assert!(dead.error.as_deref().unwrap_or_default().contains("poison"), "{:?}", dead.error);
        queue.flush().await.expect("dispatch");
        assert_eq!(dead_letters(&queue).await, Some(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_whose_receives_were_lost_is_sent_afresh_and_its_job_runs() {
        let queue = sqs_queue().await;
        let job = submit(&queue, noop("t1")).await;
        lose_receives_up_to_the_limit(&queue, "the only round").await;
        // At the limit: sent afresh, not started, not killed.
        nothing_more(&queue).await;
        assert_eq!(status(&queue, &job).await.status, Status::Queued);
        // The copy starts the job once, at its first attempt.
        let got = receive(&queue, 10, 1).await;
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].job.id, got[0].job.attempts), (job.id, 1));
        assert!(finish(&queue, &got[0], Outcome::Succeeded { result: None, artifacts: Vec::new() }).await);
        nothing_more(&queue).await;
        assert_eq!(status(&queue, &job).await.status, Status::Succeeded);
        assert_eq!(dead_letters(&queue).await, Some(0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redrive_sends_again_a_queued_job_whose_message_landed_in_the_dead_letter_queue() {
        let queue = sqs_queue().await;
        let job = submit(&queue, noop("t1")).await;
        let (client, config) = queue.sqs.as_ref().expect("sqs");
        // SQS moves the message on its own (its redrive policy, or retention).
        let out = client
            .receive_message()
            .queue_url(lane_url(&queue))
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        let message = &out.messages()[0];
        let mut send =
            client.send_message().queue_url(&config.lanes[&LANE].dlq_url).message_body(message.body().unwrap_or("{}"));
        for (name, value) in message.message_attributes().expect("attributes") {
            send = send.message_attributes(name, value.clone());
        }
        send.send().await.expect("send to the DLQ");
        client
            .delete_message()
            .queue_url(lane_url(&queue))
            .receipt_handle(message.receipt_handle().expect("receipt"))
            .send()
            .await
            .expect("delete");
        nothing_more(&queue).await;

        let report = queue.queue.redrive(&Scope::Tenant { tenant_id: "t1".into() }, LANE).await.expect("redrive");
        assert_eq!((report.requeued, report.recovered), (0, 1), "{report:?}");
        queue.flush().await.expect("dispatch");
        let got = receive(&queue, 10, 1).await;
        assert_eq!(got.len(), 1, "the job is delivered again");
        assert_eq!(got[0].job.id, job.id);
        assert_eq!(dead_letters(&queue).await, Some(0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_process_with_another_queue_mode_than_the_database_refuses_to_start() {
        use longhaul_jobs::store::QueueMode;
        let queue = sqs_queue().await;
        queue.store.check_queue_mode(QueueMode::Dispatch, false).await.expect("the first process records sqs");
        queue.store.check_queue_mode(QueueMode::Dispatch, false).await.expect("the same mode is fine");
        let err = queue.store.check_queue_mode(QueueMode::Embedded, false).await.expect_err("a mismatch");
        assert!(err.to_string().contains("LONGHAUL_QUEUE=sqs"), "{err}");
        queue.store.check_queue_mode(QueueMode::Embedded, true).await.expect("`migrate` switches it");
        assert!(queue.store.check_queue_mode(QueueMode::Dispatch, false).await.is_err());
    }
}
