//! The SQS queue: one queue and one dead-letter queue per lane.
//!
//! The job row stays the truth. A message carries only the job id, its
//! generation (the job's fencing `generation` when it was dispatched, in
//! the attribute named `attempt`), the tenant and the traceparent; the
//! payload stays in the database. A receive starts the named jobs in the
//! database, fenced on status and generation, so a
//! duplicate, stale or early message never runs anything. Messages are
//! deleted only after the outcome committed.
//!
//! Enqueue is transactional: the store writes a dispatch row in the same
//! statement that makes a job `queued` (or `dead`), and the [`Dispatcher`]
//! sends those rows with SendMessageBatch, ten at a time. A retry is a new
//! message (delayed by the backoff), not a redelivery of the old one, so a
//! message's receive count only grows when a worker loses it: that count,
//! against `max_receive_count`, catches poison messages, and the job goes
//! `dead` in the same step as its message goes to the dead-letter queue.
//!
//! Every request is counted in `longhaul_sqs_requests_total{op}`: SQS bills
//! per request, and batching is what keeps a job at about 0.3 of them.

mod dispatcher;
mod provision;
mod queue;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use aws_sdk_sqs::{
    config::{retry::RetryConfig, timeout::TimeoutConfig},
    error::DisplayErrorContext,
    types::{
        ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message, MessageAttributeValue,
        MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
    },
    Client,
};
use chrono::Utc;
use futures::{future::BoxFuture, stream, StreamExt};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{ClaimRequest, Delivery, Queue, QueueError, RedriveReport, Result, Ticket};
use crate::{
    model::{Lane, Scope, Status},
    store::{AttemptRef, Completion, Delivered, Dispatch, DynDispatchStore, LeaseState, Undelivered},
};

pub use dispatcher::Dispatcher;
pub use provision::{create_lane_queues, REDRIVE_POLICY_MARGIN};
pub use queue::SqsQueue;

/// SQS's batch limit, for every batch API.
const BATCH: usize = 10;
/// The longest long poll SQS allows.
const LONG_POLL: Duration = Duration::from_secs(20);
/// The longest message delay SQS allows. Dispatch rows due later wait in
/// the database.
const MAX_DELAY: Duration = Duration::from_secs(900);
/// The longest visibility timeout SQS allows.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
/// Dispatch rows claimed per round, and how long a dispatcher holds them.
const DISPATCH_ROUND: usize = 100;
/// Longer than the SDK's worst case for one send (4 attempts of 30 s), so
/// that two dispatchers never send the same row; rows that fail are given
/// back at once.
const DISPATCH_LEASE: Duration = Duration::from_secs(150);
/// Batch requests in flight at once, per call.
const PARALLEL_REQUESTS: usize = 8;
/// How long an admin redrive drains the dead-letter queue at most.
const REDRIVE_BUDGET: Duration = Duration::from_secs(20);
/// How long a lane's pause state is trusted before it is read again.
const PAUSE_TTL: Duration = Duration::from_secs(1);
/// How many times a message that reached the receive limit without starting
/// its job is sent afresh before it counts as poison: receives lost to
/// restarts and outages are not the job's fault.
pub const MAX_RESENDS: u32 = 3;

/// A lane's queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsLane {
    pub url: String,
    pub dlq_url: String,
}

#[derive(Debug, Clone)]
pub struct SqsConfig {
    pub lanes: HashMap<Lane, SqsLane>,
    /// Deliveries of one message, without its job finishing, before the job
    /// goes dead and the message to the dead-letter queue. Keep it equal to
    /// the `maxReceiveCount` of the queues' redrive policy.
    pub max_receive_count: u32,
    /// The long poll of a receive (at most 20 s).
    pub wait: Duration,
}

impl SqsConfig {
    /// Lane `L` at `{prefix}L`, its dead-letter queue at `{prefix}L-dlq`.
    pub fn from_prefix(prefix: &str, max_receive_count: u32) -> SqsConfig {
        let lanes = Lane::ALL
            .into_iter()
            .map(|lane| (lane, SqsLane { url: format!("{prefix}{lane}"), dlq_url: format!("{prefix}{lane}-dlq") }))
            .collect();
        SqsConfig { lanes, max_receive_count: max_receive_count.max(1), wait: LONG_POLL }
    }
}

/// The fair-queueing group of a tenant: its id, when SQS accepts it as a
/// `MessageGroupId` (1–128 characters of ASCII letters, digits and
/// punctuation), or else a digest of it, so that no tenant id can make its
/// messages unsendable.
fn message_group_id(tenant_id: &str) -> String {
    let fits = !tenant_id.is_empty()
        && tenant_id.len() <= 128
        && tenant_id.bytes().all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    if fits {
        tenant_id.to_owned()
    } else {
        use sha2::Digest;
        format!("tenant-{}", hex::encode(&sha2::Sha256::digest(tenant_id.as_bytes())[..16]))
    }
}

/// Runs batch requests, [`PARALLEL_REQUESTS`] at a time.
async fn in_parallel<T>(requests: Vec<BoxFuture<'_, Result<T>>>) -> Vec<Result<T>> {
    stream::iter(requests).buffer_unordered(PARALLEL_REQUESTS).collect().await
}

/// Counts one SQS request in `longhaul_sqs_requests_total{op}`.
fn count(op: &'static str) {
    metrics::counter!("longhaul_sqs_requests_total", "op" => op).increment(1);
}

fn backend_error(op: &str, err: impl std::error::Error + Send + Sync + 'static) -> QueueError {
    QueueError::Backend(format!("SQS {op} failed: {}", DisplayErrorContext(err)))
}

/// The standard AWS configuration (`AWS_REGION`, the default credential
/// chain, `AWS_ENDPOINT_URL`).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// An SQS client for `sdk_config`, with bounded retries and timeouts that
/// fit a 20 s long poll.
pub fn client(sdk_config: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_sqs::config::Builder::from(sdk_config)
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(LONG_POLL + Duration::from_secs(10))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

fn secs_i32(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs() + u64::from(duration.subsec_nanos() > 0)).unwrap_or(i32::MAX)
}

fn attribute(data_type: &str, value: impl Into<String>) -> Result<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(|err| QueueError::Backend(format!("building a message attribute: {err}")))
}

/// What a message says: the job, its generation when the message was sent
/// (in the attribute `attempt`), the tenant, the trace, and how many times
/// the message was sent afresh at the receive limit. The body repeats the
/// job and generation for people reading a queue.
struct Envelope<'a> {
    job_id: Uuid,
    generation: i32,
    tenant_id: &'a str,
    traceparent: Option<&'a str>,
    resends: u32,
}

impl Envelope<'_> {
    fn body(&self) -> String {
        serde_json::json!({ "job_id": self.job_id, "attempt": self.generation }).to_string()
    }

    fn attributes(&self) -> Result<HashMap<String, MessageAttributeValue>> {
        let mut attributes = HashMap::from([
            ("job_id".to_owned(), attribute("String", self.job_id.to_string())?),
            ("attempt".to_owned(), attribute("Number", self.generation.to_string())?),
            ("tenant_id".to_owned(), attribute("String", self.tenant_id)?),
        ]);
        if let Some(traceparent) = self.traceparent {
            attributes.insert("traceparent".to_owned(), attribute("String", traceparent)?);
        }
        if self.resends > 0 {
            attributes.insert("resends".to_owned(), attribute("Number", self.resends.to_string())?);
        }
        Ok(attributes)
    }
}

/// A received message, read.
#[cfg(test)]
mod tests {
    use super::message_group_id;

    #[test]
    fn a_tenant_id_that_sqs_accepts_is_its_own_message_group() {
        assert_eq!(message_group_id("acme-corp_42"), "acme-corp_42");
        assert_eq!(message_group_id("a.b/c:d"), "a.b/c:d");
    }

    #[test]
    fn any_other_tenant_id_becomes_a_stable_digest_sqs_accepts() {
        for tenant in ["", "with space", "café", &"x".repeat(129)] {
            let group = message_group_id(tenant);
            assert!(group.starts_with("tenant-") && group.len() <= 128, "{group}");
            assert!(group.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{group}");
            assert_eq!(group, message_group_id(tenant), "the same tenant, the same group");
        }
        assert_ne!(message_group_id("with space"), message_group_id("café"));
    }
}
