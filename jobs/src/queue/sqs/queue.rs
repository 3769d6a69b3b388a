//! [`SqsQueue`]: the [`Queue`] port on SQS: receive, start in the
//! database, extend, acknowledge, pause, redrive.

use super::*;

struct Received {
    receipt: Arc<str>,
    delivered: Delivered,
    tenant_id: Option<String>,
    traceparent: Option<String>,
    receives: u32,
    /// How many times this message was sent afresh at the receive limit.
    resends: u32,
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
            traceparent: text("traceparent").map(str::to_owned),
            resends: text("resends").and_then(|count| count.parse().ok()).unwrap_or(0),
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
    store: DynDispatchStore,
    client: Client,
    config: SqsConfig,
    paused: Mutex<HashMap<Lane, (bool, Instant)>>,
}

impl SqsQueue {
    /// Queues on SQS for the jobs of a store with a dispatch outbox
    /// ([`connect_dispatch`](crate::store::connect_dispatch)).
    pub fn new(store: DynDispatchStore, client: Client, config: SqsConfig) -> SqsQueue {
        SqsQueue { store, client, config, paused: Mutex::new(HashMap::new()) }
    }

    /// With the standard AWS configuration (`AWS_REGION`, the default
    /// credential chain, `AWS_ENDPOINT_URL`).
    pub async fn from_env(store: DynDispatchStore, config: SqsConfig) -> SqsQueue {
        SqsQueue::new(store, client(&load_sdk_config().await), config)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends a copy of a message that reached the receive limit, with its
    /// `resends` counted up, so that SQS counts its receives from zero. The
    /// old one is deleted only once the copy is in; a copy that cannot be
    /// sent leaves the old message to come back and try again.
    async fn send_afresh(&self, url: &str, received: &Received) -> bool {
        let Delivered { id, generation } = received.delivered;
        let tenant_id = received.tenant_id.as_deref().unwrap_or_default();
        let envelope = Envelope {
            job_id: id,
            generation,
            tenant_id,
            traceparent: received.traceparent.as_deref(),
            resends: received.resends + 1,
        };
        let attributes = match envelope.attributes() {
            Ok(attributes) => attributes,
            Err(err) => {
                tracing::warn!(job_id = %id, %err, "cannot send a message afresh");
                return false;
            }
        };
        let send = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(envelope.body())
            .message_group_id(message_group_id(tenant_id))
            .set_message_attributes(Some(attributes));
        count("send_message");
        match send.send().await {
            Ok(_) => {
                tracing::warn!(
                    job_id = %id,
                    receives = received.receives,
                    resends = received.resends + 1,
                    "a message reached the receive limit without starting its job (its receives were lost to \
                     restarts or an outage); sent afresh"
                );
                true
            }
            Err(err) => {
                tracing::warn!(job_id = %id, err = %aws_sdk_sqs::error::DisplayErrorContext(err), "cannot send a message afresh; it will come back");
                false
            }
        }
    }

    /// The dispatcher that sends this queue's dispatch outbox.
    pub fn dispatcher(&self) -> Dispatcher {
        Dispatcher::new(self.store.clone(), self.client.clone(), self.config.clone())
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

    async fn receive(&self, request: &ClaimRequest<'_>, stop: &CancellationToken) -> Result<Vec<Delivery>> {
        let ClaimRequest { lane, max, lease, .. } = *request;
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
        let mut best: HashMap<Uuid, Received> = HashMap::new();
        let mut order: Vec<Uuid> = Vec::new();
        for message in &messages {
            match read_message(message) {
                Ok(received) => {
                    let id = received.delivered.id;
                    match best.get_mut(&id) {
                        None => {
                            order.push(id);
                            receipts.entry(id).or_default().push(received.receipt.clone());
                            best.insert(id, received);
                        }
                        Some(kept) if received.delivered.generation == kept.delivered.generation => {
                            kept.receives = kept.receives.max(received.receives);
                            kept.resends = kept.resends.max(received.resends);
                            receipts.entry(id).or_default().push(received.receipt);
                        }
                        Some(kept) if received.delivered.generation > kept.delivered.generation => {
                            to_delete.extend(receipts.insert(id, vec![received.receipt.clone()]).into_iter().flatten());
                            *kept = received;
                        }
                        Some(_) => to_delete.push(received.receipt),
                    }
                }
                Err(receipt) => {
                    tracing::error!(%lane, message_id = message.message_id(), "dropping an SQS message that names no job");
                    to_delete.extend(receipt.map(Into::into));
                }
            }
        }
        // A message at the receive limit whose job it never started lost
        // its receives on the way: to workers killed or stopped before the
        // start committed, or to a database that was away. It is sent
        // afresh, a few times ([`MAX_RESENDS`]), before it counts as poison.
        let mut fresh = Vec::new();
        let mut poison = Vec::new();
        for received in order.iter().filter_map(|id| best.get(id)) {
            if received.receives < self.config.max_receive_count {
                fresh.push(received.delivered);
            } else if received.resends < MAX_RESENDS {
                if self.send_afresh(&url, received).await {
                    to_delete.extend(receipts.get(&received.delivered.id).into_iter().flatten().cloned());
                }
            } else {
                poison.push(received.delivered);
            }
        }
        let mut others = Vec::new();
        if !poison.is_empty() {
            let receives = self.config.max_receive_count * (MAX_RESENDS + 1);
            let dead = self.store.dead_letter_delivered(&poison, receives).await?;
            for job_id in &dead.killed {
                tracing::error!(%lane, %job_id, receives, "poison message: the job is dead and goes to the dead-letter queue");
                to_delete.extend(receipts.get(job_id).into_iter().flatten().cloned());
            }
            others.extend(dead.others);
        }
        let started = self.store.start_delivered(request, &fresh).await?;
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
