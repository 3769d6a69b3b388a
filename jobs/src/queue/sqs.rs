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

use super::{Delivery, Queue, QueueError, RedriveReport, Result, Ticket};
use crate::{
    model::{Lane, Scope, Status},
    store::{AttemptRef, Completion, Delivered, Dispatch, DynStore, LeaseState, QueueMode, Undelivered},
};

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

/// How far above `max_receive_count` the queues' own redrive policy sits.
pub const REDRIVE_POLICY_MARGIN: u32 = 3;

/// Creates a queue and a dead-letter queue per lane, named
/// `{name_prefix}{lane}` and `{name_prefix}{lane}-dlq`, with a redrive policy
/// of `max_receive_count + REDRIVE_POLICY_MARGIN`, and returns their
/// configuration. For local
/// endpoints (tests, `longhaul bench`): production queues come from Terraform.
pub async fn create_lane_queues(client: &Client, name_prefix: &str, max_receive_count: u32) -> Result<SqsConfig> {
    let mut lanes = HashMap::new();
    for lane in Lane::ALL {
        count("create_queue");
        let dlq_url = client
            .create_queue()
            .queue_name(format!("{name_prefix}{lane}-dlq"))
            .send()
            .await
            .map_err(|err| backend_error("CreateQueue", err))?
            .queue_url
            .ok_or_else(|| QueueError::Backend("SQS CreateQueue returned no URL".into()))?;
        count("get_queue_attributes");
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|err| backend_error("GetQueueAttributes", err))?
            .attributes
            .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| QueueError::Backend("SQS returned no ARN for a dead-letter queue".into()))?;
        // A backstop above longhaul's own limit: longhaul dead-letters a
        // message itself at `max_receive_count`, with its job, so that the
        // job's status and the DLQ agree.
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receive_count + REDRIVE_POLICY_MARGIN,
        });
        count("create_queue");
        let url = client
            .create_queue()
            .queue_name(format!("{name_prefix}{lane}"))
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .map_err(|err| backend_error("CreateQueue", err))?
            .queue_url
            .ok_or_else(|| QueueError::Backend("SQS CreateQueue returned no URL".into()))?;
        lanes.insert(lane, SqsLane { url, dlq_url });
    }
    Ok(SqsConfig { lanes, max_receive_count, wait: LONG_POLL })
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

/// A received message, read.
struct Received {
    receipt: Arc<str>,
    delivered: Delivered,
    tenant_id: Option<String>,
    receives: u32,
}

/// Reads a message's attributes. `Err` carries the receipt of a message
/// that does not name a job.
fn read_message(message: &Message) -> std::result::Result<Received, Option<String>> {
    let receipt = message.receipt_handle().map(str::to_owned);
    let text =
        |name: &str| message.message_attributes().and_then(|attrs| attrs.get(name)).and_then(|v| v.string_value());
    let id = text("job_id").and_then(|id| Uuid::parse_str(id).ok());
    let generation = text("attempt").and_then(|attempt| attempt.parse::<i32>().ok());
    match (receipt, id, generation) {
        (Some(receipt), Some(id), Some(generation)) => Ok(Received {
            receipt: receipt.into(),
            delivered: Delivered { id, generation },
            tenant_id: text("tenant_id").map(str::to_owned),
            receives: message
                .attributes()
                .and_then(|attrs| attrs.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|count| count.parse().ok())
                .unwrap_or(1),
        }),
        (receipt, _, _) => Err(receipt),
    }
}

pub struct SqsQueue {
    store: DynStore,
    client: Client,
    config: SqsConfig,
    paused: Mutex<HashMap<Lane, (bool, Instant)>>,
}

impl SqsQueue {
    /// Queues on SQS for jobs in `store`, which must be in dispatch mode.
    pub fn new(store: DynStore, client: Client, config: SqsConfig) -> Result<SqsQueue> {
        if store.queue_mode() != QueueMode::Dispatch {
            return Err(QueueError::Config(
                "the SQS queue needs a PostgreSQL store opened in dispatch mode (LONGHAUL_QUEUE=sqs)".into(),
            ));
        }
        Ok(SqsQueue { store, client, config, paused: Mutex::new(HashMap::new()) })
    }

    /// With the standard AWS configuration (`AWS_REGION`, the default
    /// credential chain, `AWS_ENDPOINT_URL`).
    pub async fn from_env(store: DynStore, config: SqsConfig) -> Result<SqsQueue> {
        SqsQueue::new(store, client(&load_sdk_config().await), config)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The dispatcher that sends this queue's dispatch outbox.
    pub fn dispatcher(&self) -> Dispatcher {
        Dispatcher { store: self.store.clone(), client: self.client.clone(), config: self.config.clone() }
    }

    fn lane(&self, lane: Lane) -> Result<&SqsLane> {
        self.config
            .lanes
            .get(&lane)
            .ok_or_else(|| QueueError::Config(format!("no SQS queue is configured for lane `{lane}`")))
    }

    async fn lane_paused(&self, lane: Lane) -> Result<bool> {
        let cached = self.paused.lock().ok().and_then(|map| map.get(&lane).copied());
        if let Some((paused, read_at)) = cached {
            if read_at.elapsed() < PAUSE_TTL {
                return Ok(paused);
            }
        }
        let paused = self.store.lane_paused(lane).await?;
        if let Ok(mut map) = self.paused.lock() {
            map.insert(lane, (paused, Instant::now()));
        }
        Ok(paused)
    }

    /// Deletes messages, ten per request, several requests at once. Entries
    /// SQS rejects are logged: their messages come back and are dropped as
    /// stale then.
    async fn delete(&self, url: &str, receipts: &[Arc<str>]) -> Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let requests = receipts.chunks(BATCH).map(|chunk| Box::pin(self.delete_batch(url, chunk)) as BoxFuture<'_, _>);
        in_parallel(requests.collect()).await.into_iter().collect::<Result<Vec<()>>>().map(drop)
    }

    async fn delete_batch(&self, url: &str, receipts: &[Arc<str>]) -> Result<()> {
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt.as_ref())
                    .build()
                    .map_err(|err| QueueError::Backend(format!("building a delete entry: {err}")))
            })
            .collect::<Result<Vec<_>>>()?;
        count("delete_message_batch");
        let out = self
            .client
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| backend_error("DeleteMessageBatch", err))?;
        for failed in out.failed() {
            tracing::debug!(code = failed.code(), message = failed.message(), "SQS did not delete a message");
        }
        Ok(())
    }

    /// Sets the visibility of messages, ten per request.
    async fn change_visibility(&self, url: &str, receipts: &[(Arc<str>, Duration)]) -> Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let requests =
            receipts.chunks(BATCH).map(|chunk| Box::pin(self.change_visibility_batch(url, chunk)) as BoxFuture<'_, _>);
        in_parallel(requests.collect()).await.into_iter().collect::<Result<Vec<()>>>().map(drop)
    }

    async fn change_visibility_batch(&self, url: &str, receipts: &[(Arc<str>, Duration)]) -> Result<()> {
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, (receipt, visibility))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt.as_ref())
                    .visibility_timeout(secs_i32((*visibility).min(MAX_VISIBILITY)))
                    .build()
                    .map_err(|err| QueueError::Backend(format!("building a visibility entry: {err}")))
            })
            .collect::<Result<Vec<_>>>()?;
        count("change_message_visibility_batch");
        let out = self
            .client
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| backend_error("ChangeMessageVisibilityBatch", err))?;
        for failed in out.failed() {
            tracing::debug!(code = failed.code(), message = failed.message(), "SQS did not change a visibility");
        }
        Ok(())
    }

    /// Receipts grouped by the lane queue they came from.
    fn by_lane<T>(&self, items: impl IntoIterator<Item = (Lane, T)>) -> Vec<(Lane, Vec<T>)> {
        let mut grouped: HashMap<Lane, Vec<T>> = HashMap::new();
        for (lane, item) in items {
            grouped.entry(lane).or_default().push(item);
        }
        grouped.into_iter().collect()
    }

    async fn receive_batch(&self, url: &str, max: usize, wait: Duration, visibility: Duration) -> Result<Vec<Message>> {
        count("receive_message");
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(i32::try_from(max.clamp(1, BATCH)).unwrap_or(1))
            .wait_time_seconds(secs_i32(wait.min(LONG_POLL)))
            .visibility_timeout(secs_i32(visibility.min(MAX_VISIBILITY)))
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|err| backend_error("ReceiveMessage", err))?;
        Ok(out.messages.unwrap_or_default())
    }
}

#[async_trait]
impl Queue for SqsQueue {
    fn backend(&self) -> &'static str {
        "sqs"
    }

    fn max_receive(&self) -> usize {
        BATCH
    }

    async fn receive(
        &self,
        lane: Lane,
        max: usize,
        lease: Duration,
        worker_id: &str,
        tenant_cap: Option<u32>,
        stop: &CancellationToken,
    ) -> Result<Vec<Delivery>> {
        let url = self.lane(lane)?.url.clone();
        if self.lane_paused(lane).await? {
            // A paused lane leaves its messages alone: receiving them would
            // only count deliveries towards the dead-letter queue.
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(self.config.wait.min(Duration::from_secs(2))) => {}
            }
            return Ok(Vec::new());
        }
        // Only the long poll gives way to a stop. Once messages are here,
        // the jobs they start must reach the caller, or they would sit
        // `running` under a lease nobody renews.
        let messages = tokio::select! {
            _ = stop.cancelled() => return Ok(Vec::new()),
            messages = self.receive_batch(&url, max, self.config.wait, lease) => messages?,
        };
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let mut to_delete: Vec<Arc<str>> = Vec::new();
        let mut postpone: Vec<(Arc<str>, Duration)> = Vec::new();
        // One message per job goes on: the one of the highest generation.
        // A batch may hold two copies of one message (SQS delivers at least
        // once), and also messages of two generations of one job: a stale
        // one that came back after its visibility ran out (its worker was
        // stopped or killed) beside the one sent when the job was queued
        // again. The lower generation is stale for certain (a job's
        // generation only grows), so it is deleted here; deciding on it
        // instead would drop every copy, the current message's too.
        let mut receipts: HashMap<Uuid, Vec<Arc<str>>> = HashMap::new();
        let mut best: HashMap<Uuid, (Delivered, u32)> = HashMap::new();
        let mut order: Vec<Uuid> = Vec::new();
        for message in &messages {
            match read_message(message) {
                Ok(received) => {
                    let Received { receipt, delivered, receives, .. } = received;
                    match best.get_mut(&delivered.id) {
                        None => {
                            order.push(delivered.id);
                            best.insert(delivered.id, (delivered, receives));
                            receipts.entry(delivered.id).or_default().push(receipt);
                        }
                        Some((kept, count)) if delivered.generation == kept.generation => {
                            *count = (*count).max(receives);
                            receipts.entry(delivered.id).or_default().push(receipt);
                        }
                        Some((kept, count)) if delivered.generation > kept.generation => {
                            (*kept, *count) = (delivered, receives);
                            to_delete.extend(receipts.insert(delivered.id, vec![receipt]).into_iter().flatten());
                        }
                        Some(_) => to_delete.push(receipt),
                    }
                }
                Err(receipt) => {
                    tracing::error!(%lane, message_id = message.message_id(), "dropping an SQS message that names no job");
                    to_delete.extend(receipt.map(Into::into));
                }
            }
        }
        let mut fresh = Vec::new();
        let mut poison = Vec::new();
        for (delivered, receives) in order.iter().filter_map(|id| best.get(id)) {
            if *receives >= self.config.max_receive_count {
                poison.push(*delivered);
            } else {
                fresh.push(*delivered);
            }
        }
        let mut others = Vec::new();
        if !poison.is_empty() {
            let dead = self.store.dead_letter_delivered(&poison, self.config.max_receive_count).await?;
            for job_id in &dead.killed {
                tracing::error!(%lane, %job_id, receives = self.config.max_receive_count, "poison message: the job is dead and goes to the dead-letter queue");
                to_delete.extend(receipts.get(job_id).into_iter().flatten().cloned());
            }
            others.extend(dead.others);
        }
        let started = self.store.start_delivered(lane, &fresh, lease, worker_id, tenant_cap).await?;
        others.extend(started.others);
        for other in others {
            match other {
                Undelivered::Drop { id, why } => {
                    tracing::debug!(%lane, job_id = %id, why, "dropping a stale message");
                    to_delete.extend(receipts.get(&id).into_iter().flatten().cloned());
                }
                Undelivered::Postpone { id, after } => {
                    let mut copies = receipts.get(&id).into_iter().flatten().cloned();
                    postpone.extend(copies.next().map(|receipt| (receipt, after)));
                    to_delete.extend(copies);
                }
            }
        }
        let deliveries: Vec<Delivery> = started
            .jobs
            .into_iter()
            .map(|job| {
                let mut copies = receipts.get(&job.id).into_iter().flatten().cloned();
                let receipt = copies.next();
                to_delete.extend(copies);
                let ticket = Ticket { attempt: AttemptRef::of(&job), lane, receipt };
                Delivery { job, ticket }
            })
            .collect();
        // The jobs are started: whatever happens to the housekeeping below,
        // they go to the caller. A message left undeleted comes back and is
        // dropped then.
        if let Err(err) = self.delete(&url, &to_delete).await {
            tracing::warn!(%lane, error = %err, "could not delete stale messages; they will be dropped when they come back");
        }
        if let Err(err) = self.change_visibility(&url, &postpone).await {
            tracing::warn!(%lane, error = %err, "could not postpone early messages; they will be postponed when they come back");
        }
        Ok(deliveries)
    }

    async fn idle(&self, _lane: Lane, _poll: Duration) {}

    async fn heartbeat(&self, tickets: &[Ticket], lease: Duration) -> Result<Vec<LeaseState>> {
        let attempts: Vec<AttemptRef> = tickets.iter().map(|ticket| ticket.attempt).collect();
        let states = self.store.heartbeat(&attempts, lease).await?;
        let held: HashSet<AttemptRef> = states.iter().filter(|s| s.held).map(|s| s.attempt).collect();
        let extend = tickets
            .iter()
            .filter(|ticket| held.contains(&ticket.attempt))
            .filter_map(|ticket| ticket.receipt.clone().map(|receipt| (ticket.lane, (receipt, lease))));
        for (lane, receipts) in self.by_lane(extend) {
            let url = &self.lane(lane)?.url;
            if let Err(err) = self.change_visibility(url, &receipts).await {
                // The database lease still holds; a message that reappears
                // meanwhile is dropped as a duplicate of a running job.
                tracing::warn!(%lane, error = %err, "could not extend message visibility");
            }
        }
        Ok(states)
    }

    async fn complete(&self, completions: &[Completion]) -> Result<Vec<AttemptRef>> {
        Ok(self.store.complete(completions).await?)
    }

    async fn acknowledge(&self, tickets: &[Ticket]) -> Result<()> {
        let receipts = tickets.iter().filter_map(|ticket| ticket.receipt.clone().map(|receipt| (ticket.lane, receipt)));
        for (lane, receipts) in self.by_lane(receipts) {
            self.delete(&self.lane(lane)?.url, &receipts).await?;
        }
        Ok(())
    }

    /// Released jobs are due now, with a fresh message each from the
    /// dispatch outbox; the messages they were received with are deleted.
    async fn release(&self, tickets: &[Ticket]) -> Result<u64> {
        let attempts: Vec<AttemptRef> = tickets.iter().map(|ticket| ticket.attempt).collect();
        let released = self.store.release(&attempts).await?;
        // The store wrote each released job a fresh dispatch row, sent at
        // once: the old messages go. (Made visible again instead, they would
        // count a deploy towards the poison limit.) One left behind is
        // dropped as a duplicate when it comes back.
        self.acknowledge(tickets).await?;
        Ok(released)
    }

    /// Requeues every dead job `scope` sees (through the dispatch outbox, in
    /// the same transaction), then drains the dead-letter queue of the
    /// messages of the jobs that are no longer dead. Messages of other
    /// tenants, and of jobs that died meanwhile, stay.
    async fn redrive(&self, scope: &Scope, lane: Lane) -> Result<RedriveReport> {
        let dlq_url = self.lane(lane)?.dlq_url.clone();
        let requeued: HashSet<Uuid> = self.store.redrive(scope, lane, None).await?.into_iter().collect();
        let tenant = match scope {
            Scope::Platform => None,
            Scope::Tenant { tenant_id } | Scope::User { tenant_id, .. } => Some(tenant_id.as_str()),
        };
        let mut report = RedriveReport { requeued: requeued.len() as u64, ..RedriveReport::default() };
        let mut kept: Vec<(Arc<str>, Duration)> = Vec::new();
        // Kept messages stay hidden while the drain lasts, so it ends; the
        // budget bounds it anyway (one HTTP request runs it).
        let deadline = Instant::now() + REDRIVE_BUDGET;
        while Instant::now() < deadline {
            let messages = self.receive_batch(&dlq_url, BATCH, Duration::from_secs(1), REDRIVE_BUDGET * 2).await?;
            if messages.is_empty() {
                break;
            }
            let mut drop = Vec::new();
            let mut lost = Vec::new();
            for message in &messages {
                let Ok(received) = read_message(message) else {
                    kept.extend(message.receipt_handle().map(|r| (Arc::<str>::from(r), Duration::ZERO)));
                    continue;
                };
                let id = received.delivered.id;
                let in_scope = tenant.is_none() || received.tenant_id.as_deref() == tenant;
                if !in_scope {
                    kept.push((received.receipt, Duration::ZERO));
                } else if requeued.contains(&id) {
                    drop.push(received.receipt);
                } else {
                    match self.store.get_job(scope, id).await?.map(|job| job.status) {
                        // It died again meanwhile: its message belongs here.
                        Some(Status::Dead) => kept.push((received.receipt, Duration::ZERO)),
                        // Waiting, but its message is here: SQS moved it
                        // (its own redrive policy, or retention). Send it again.
                        Some(Status::Queued) => {
                            lost.push(id);
                            drop.push(received.receipt);
                        }
                        _ => {
                            report.dropped += 1;
                            drop.push(received.receipt);
                        }
                    }
                }
            }
            if !lost.is_empty() {
                report.recovered += self.store.redispatch(&lost).await?.len() as u64;
            }
            self.delete(&dlq_url, &drop).await?;
        }
        self.change_visibility(&dlq_url, &kept).await?;
        tracing::info!(%lane, requeued = report.requeued, recovered = report.recovered, dropped = report.dropped, kept = kept.len(), "dead-letter queue redriven");
        Ok(report)
    }

    async fn ping(&self) -> Result<()> {
        for lane in self.config.lanes.values() {
            count("get_queue_attributes");
            self.client
                .get_queue_attributes()
                .queue_url(&lane.url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|err| {
                    let refused = crate::aws::refused(&err);
                    let err = backend_error("GetQueueAttributes", err);
                    if refused {
                        QueueError::Config(err.to_string())
                    } else {
                        err
                    }
                })?;
        }
        Ok(())
    }

    async fn run_background(&self, stop: CancellationToken) {
        self.dispatcher().run(stop).await;
    }
}

/// Sends the dispatch outbox to SQS. Every worker process runs one; they
/// share the rows through leases, so a dead dispatcher's rows go out with
/// the next.
pub struct Dispatcher {
    store: DynStore,
    client: Client,
    config: SqsConfig,
}

impl Dispatcher {
    pub fn new(store: DynStore, client: Client, config: SqsConfig) -> Dispatcher {
        Dispatcher { store, client, config }
    }

    /// Sends until `stop` trips. Failures back off (up to 5 s) and retry;
    /// while SQS is away, the outbox grows and nothing is lost.
    pub async fn run(&self, stop: CancellationToken) {
        let wakeups = self.store.wakeups().clone();
        let mut backoff = Duration::from_millis(100);
        loop {
            if stop.is_cancelled() {
                return;
            }
            match self.dispatch_once().await {
                Ok(sent) if sent >= DISPATCH_ROUND => continue,
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = wakeups.dispatch().notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "dispatch failed; the jobs wait in the outbox");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One round: claims due rows, sends them in batches of ten, deletes the
    /// rows that went out. Returns how many were sent.
    pub async fn dispatch_once(&self) -> Result<usize> {
        let rows = self.store.claim_dispatch(DISPATCH_ROUND, MAX_DELAY, DISPATCH_LEASE).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut groups: HashMap<(Lane, bool), Vec<&Dispatch>> = HashMap::new();
        for row in &rows {
            groups.entry((row.lane, row.dead_letter)).or_default().push(row);
        }
        let mut batches = Vec::new();
        for ((lane, dead_letter), rows) in &groups {
            let lane = self
                .config
                .lanes
                .get(lane)
                .ok_or_else(|| QueueError::Config(format!("no SQS queue is configured for lane `{lane}`")))?;
            let url = if *dead_letter { &lane.dlq_url } else { &lane.url };
            for chunk in rows.chunks(BATCH) {
                batches.push((url.as_str(), chunk));
            }
        }
        let requests = batches.into_iter().map(|(url, chunk)| Box::pin(self.send(url, chunk)) as BoxFuture<'_, _>);
        let results = in_parallel(requests.collect()).await;
        let mut sent = Vec::with_capacity(rows.len());
        let mut first_error = None;
        for result in results {
            match result {
                Ok(ids) => sent.extend(ids),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        self.store.delete_dispatch(&sent).await?;
        let sent: HashSet<i64> = sent.into_iter().collect();
        let unsent: Vec<i64> = rows.iter().map(|row| row.id).filter(|id| !sent.contains(id)).collect();
        self.store.release_dispatch(&unsent).await?;
        match first_error {
            Some(err) => Err(err),
            None => Ok(rows.len() - unsent.len()),
        }
    }

    /// Sends one batch; returns the dispatch ids SQS accepted.
    async fn send(&self, url: &str, rows: &[&Dispatch]) -> Result<Vec<i64>> {
        let now = Utc::now();
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let delay = (row.send_at - now).to_std().unwrap_or_default().min(MAX_DELAY);
            let body = serde_json::json!({ "job_id": row.job_id, "attempt": row.generation }).to_string();
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(row.id.to_string())
                .message_body(body)
                .delay_seconds(if row.dead_letter { 0 } else { secs_i32(delay) })
                // Fair queues: a tenant with a flood of jobs does not hold
                // up the others.
                .message_group_id(message_group_id(&row.tenant_id))
                .message_attributes("job_id", attribute("String", row.job_id.to_string())?)
                .message_attributes("attempt", attribute("Number", row.generation.to_string())?)
                .message_attributes("tenant_id", attribute("String", row.tenant_id.clone())?);
            if let Some(traceparent) = &row.traceparent {
                entry = entry.message_attributes("traceparent", attribute("String", traceparent.clone())?);
            }
            entries.push(entry.build().map_err(|err| QueueError::Backend(format!("building a message: {err}")))?);
        }
        count("send_message_batch");
        let out = self
            .client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| backend_error("SendMessageBatch", err))?;
        for failed in out.failed() {
            tracing::warn!(
                dispatch_id = failed.id(),
                code = failed.code(),
                message = failed.message(),
                "SQS refused a message; it will be sent again"
            );
        }
        Ok(out.successful().iter().filter_map(|ok| ok.id().parse().ok()).collect())
    }
}

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
