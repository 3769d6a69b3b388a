//! Events to SNS through the real SDK, against a local `moto_server`, read
//! back through an SNS → SQS subscription, as a subscriber would.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use longhaul_jobs::{
    notify::{Notifier, OutboxEvent, Publisher, SnsNotifier},
    store::{AttemptRef, Completion, InsertOutcome, Outcome},
    testing::{aws_sdk_config, Backend, TestStore},
    JobKind, Lane, NewJob,
};
use serde_json::{json, Value};

/// A topic with a queue subscribed to it.
struct Subscription {
    topic_arn: String,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
}

async fn subscription() -> Subscription {
    let config = aws_sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let name = format!("longhaul-test-{}", uuid::Uuid::new_v4().simple());
    let topic = sns.create_topic().name(&name).send().await.expect("create a topic (is moto_server running?)");
    let topic_arn = topic.topic_arn().expect("a topic ARN").to_owned();
    let queue = sqs.create_queue().queue_name(&name).send().await.expect("create a queue");
    let queue_url = queue.queue_url().expect("a queue URL").to_owned();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    let queue_arn = attributes
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("a queue ARN")
        .clone();
    sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(queue_arn).send().await.expect("subscribe");
    Subscription { topic_arn, queue_url, sqs }
}

/// Receives until `count` messages arrived (or 20 s passed); returns the
/// SNS envelopes.
async fn receive(subscription: &Subscription, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut messages = Vec::new();
    while messages.len() < count && tokio::time::Instant::now() < deadline {
        let received = subscription
            .sqs
            .receive_message()
            .queue_url(&subscription.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for message in received.messages() {
            messages.push(serde_json::from_str(message.body().unwrap_or("null")).expect("an SNS envelope"));
        }
    }
    messages
}

fn event(id: i64, event_type: &str) -> OutboxEvent {
    OutboxEvent { id, tenant_id: "acme".into(), event_type: event_type.into(), payload: json!({"job_id": id}) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_subscribers_with_their_type_and_tenant() {
    let subscription = subscription().await;
    let notifier = SnsNotifier::new(&aws_sdk_config().await, &subscription.topic_arn);
    let events: Vec<_> = (1..=10).map(|id| event(id, if id % 2 == 0 { "job.succeeded" } else { "job.dead" })).collect();
    let accepted = notifier.publish(&events).await.expect("publish");
    assert_eq!(accepted, (1..=10).collect::<Vec<_>>());

    let envelopes = receive(&subscription, 10).await;
    assert_eq!(envelopes.len(), 10);
    let mut by_id = BTreeMap::new();
    for envelope in &envelopes {
        let body: Value = serde_json::from_str(envelope["Message"].as_str().expect("a message")).expect("JSON");
        let attributes = &envelope["MessageAttributes"];
        assert_eq!(attributes["event_type"]["Value"], body["type"]);
        assert_eq!(attributes["tenant_id"]["Value"], json!("acme"));
        by_id.insert(body["event_id"].as_i64().expect("an event id"), body);
    }
    assert_eq!(by_id.keys().copied().collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    assert_eq!(by_id[&4]["type"], json!("job.succeeded"));
    assert_eq!(by_id[&4]["data"]["job_id"], json!(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_drains_the_outbox_to_sns_in_batches() {
    let subscription = subscription().await;
    let store = TestStore::new(Backend::Postgres).await.expect("a test database");
    // Twelve reports die: twelve job.dead events, two batches.
    for _ in 0..12 {
        let job = NewJob::new("acme", "u", JobKind::REPORT_BUILD, json!({"report": "year_summary", "year": 2026}));
        assert!(matches!(store.insert_job(job).await.expect("insert"), InsertOutcome::Created(_)));
    }
    let claimed = store.claim(Lane::Reports, 12, Duration::from_secs(30), "w").await.expect("claim");
    let deaths: Vec<_> = claimed
        .iter()
        .map(|job| Completion { attempt: AttemptRef::of(job), outcome: Outcome::Dead { error: "no such year".into() } })
        .collect();
    store.complete(&deaths).await.expect("complete");

    let publisher = Publisher {
        store: store.store.clone(),
        notifier: Arc::new(SnsNotifier::new(&aws_sdk_config().await, &subscription.topic_arn)),
        lease: Duration::from_secs(30),
        idle: Duration::from_millis(50),
    };
    assert_eq!(publisher.drain_once().await.expect("first batch"), 10);
    assert_eq!(publisher.drain_once().await.expect("second batch"), 2);
    assert_eq!(publisher.drain_once().await.expect("nothing left"), 0);

    let envelopes = receive(&subscription, 12).await;
    let mut job_ids: Vec<String> = envelopes
        .iter()
        .map(|envelope| {
            let body: Value = serde_json::from_str(envelope["Message"].as_str().expect("a message")).expect("JSON");
            assert_eq!(body["type"], json!("job.dead"));
            body["data"]["job_id"].as_str().expect("a job id").to_owned()
        })
        .collect();
    job_ids.sort();
    let mut expected: Vec<String> = claimed.iter().map(|job| job.id.to_string()).collect();
    expected.sort();
    assert_eq!(job_ids, expected, "every death announced exactly once");
}
