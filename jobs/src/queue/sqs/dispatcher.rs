//! [`Dispatcher`]: sends the dispatch outbox's rows as SQS messages, ten
//! to a batch.

use super::*;

/// Sends the dispatch outbox to SQS. Every worker process runs one; they
/// share the rows through leases, so a dead dispatcher's rows go out with
/// the next.
pub struct Dispatcher {
    store: DynDispatchStore,
    client: Client,
    config: SqsConfig,
}

impl Dispatcher {
    pub fn new(store: DynDispatchStore, client: Client, config: SqsConfig) -> Dispatcher {
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
            let envelope = Envelope {
                job_id: row.job_id,
                generation: row.generation,
                tenant_id: &row.tenant_id,
                traceparent: row.traceparent.as_deref(),
                resends: 0,
            };
            let entry = SendMessageBatchRequestEntry::builder()
                .id(row.id.to_string())
                .message_body(envelope.body())
                .delay_seconds(if row.dead_letter { 0 } else { secs_i32(delay) })
                // Fair queues: a tenant with a flood of jobs does not hold
                // up the others.
                .message_group_id(message_group_id(&row.tenant_id))
                .set_message_attributes(Some(envelope.attributes()?));
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
