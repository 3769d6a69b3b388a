//! A lane's pool: receives as many jobs as it has free slots, runs each
//! under a lease kept alive by one batched heartbeat, and commits outcomes
//! in batches. It works the same on every [`Queue`] backend.
//!
//! Three tasks cooperate per lane:
//! - the claim loop (this module's [`run_lane`]) owns the job tasks;
//! - the heartbeat extends every running lease at once, and trips the token
//!   of attempts that lost their lease, could not renew it before it runs
//!   out (the database is out of reach), or were asked to cancel;
//! - the committer drains finished attempts from a channel, commits them in
//!   one fenced statement per batch, and only then acknowledges them to the
//!   queue. A slot frees only after its commit, so the pool never holds more
//!   jobs than its concurrency.

use std::{
    collections::{HashMap, HashSet},
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::Duration,
};

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use futures::FutureExt;
use longhaul_jobs::{
    queue::{ClaimRequest, Delivery, DynQueue, Ticket},
    store::{AttemptRef, Completion, Outcome},
    DynStore, JobKind, Lane,
};
use tokio::{
    sync::{mpsc, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::WorkerConfig;
use crate::{
    context::{CancelReason, Cancellation, JobContext},
    error::JobError,
    handler::Registry,
};

/// Most outcomes committed in one statement.
const COMMIT_BATCH: usize = 1_000;

/// How long a claim waits for more free slots while the queue has a backlog.
const BACKLOG_WAIT: Duration = Duration::from_millis(5);

/// The longest wait between claims while the queue keeps failing (an
/// outage): the poll interval doubles with each failure up to this.
const MAX_CLAIM_BACKOFF: Duration = Duration::from_secs(5);

/// How long to wait after `failures` failed claims in a row: the poll
/// interval after the first, doubling up to [`MAX_CLAIM_BACKOFF`] (or the
/// poll interval, if that is longer).
fn claim_backoff(poll_interval: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    poll_interval.saturating_mul(1 << doublings).min(MAX_CLAIM_BACKOFF).max(poll_interval)
}

/// Attempts running in this pool. Keyed by attempt, not job: after a lease
/// loss the same job can run here again under a new generation while the
/// stale attempt is still winding down.
type InFlight = Arc<Mutex<HashMap<AttemptRef, Running>>>;

/// One attempt in flight.
struct Running {
    cancel: Cancellation,
    ticket: Ticket,
    /// When the lease runs out, by this process's clock: the moment the
    /// last renewal that held was asked for, plus the lease (the database's
    /// own deadline is no earlier), or, before any renewal, the moment the
    /// claim returned plus the lease (later than the database's by the
    /// claim's round trip, which the heartbeat's margin of a whole interval
    /// covers).
    lease_until: Instant,
}

/// A finished attempt on its way to the committer, holding its slot.
struct Finished {
    ticket: Ticket,
    /// None when the attempt lost its lease: nothing to commit, but its slot
    /// and its place in the heartbeat must still be given up.
    completion: Option<Completion>,
    /// For the metrics counted once the outcome commits.
    kind: JobKind,
    /// How long the attempt ran.
    elapsed: Duration,
    _slot: OwnedSemaphorePermit,
}

pub(super) struct Lanes {
    pub store: DynStore,
    pub objects: Option<longhaul_jobs::objects::DynObjectStore>,
    pub queue: DynQueue,
    pub registry: Registry,
    pub config: Arc<WorkerConfig>,
    /// What this process runs, for its presence report.
    pub presence: Arc<super::presence::Presence>,
}

fn lock(in_flight: &InFlight) -> std::sync::MutexGuard<'_, HashMap<AttemptRef, Running>> {
    // A poisoned map only means a panic elsewhere while it was held; the map
    // itself is still consistent (inserts and removes are single calls).
    in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs one lane until `stop` trips, then shuts it down gracefully: in-flight
/// jobs get `config.shutdown_grace` to finish, and whatever is still running
/// after that is released for immediate redelivery.
pub(super) async fn run_lane(lanes: Arc<Lanes>, lane: Lane, concurrency: usize, stop: CancellationToken) {
    let Lanes { store, queue, config, .. } = &*lanes;
    let slots = Arc::new(Semaphore::new(concurrency));
    let in_flight: InFlight = Arc::default();
    let (finished_tx, finished_rx) = mpsc::unbounded_channel::<Finished>();
    let (acknowledge_tx, acknowledge_rx) = mpsc::unbounded_channel::<Vec<Ticket>>();
    let acknowledger = tokio::spawn(acknowledge_loop(queue.clone(), acknowledge_rx));
    let committer = tokio::spawn(commit_loop(queue.clone(), in_flight.clone(), finished_rx, acknowledge_tx));
    let heartbeat_stop = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat_loop(
        queue.clone(),
        store.clone(),
        lane,
        in_flight.clone(),
        config.lease,
        config.heartbeat,
        heartbeat_stop.clone(),
    ));
    tracing::info!(%lane, concurrency, claimers = config.claimers, "lane started");
    let claim_loops = (0..config.claimers.max(1)).map(|_| {
        claim_loop(
            lanes.clone(),
            lane,
            concurrency,
            slots.clone(),
            in_flight.clone(),
            finished_tx.clone(),
            stop.clone(),
        )
    });
    let mut job_sets = futures::future::join_all(claim_loops).await;

    // Shutdown: stop receiving (done), let in-flight jobs finish within the
    // grace period, then release the rest.
    let in_flight_at_stop: usize = job_sets.iter().map(JoinSet::len).sum();
    tracing::info!(%lane, in_flight = in_flight_at_stop, grace_secs = config.shutdown_grace.as_secs_f64(), "lane stopping");
    let deadline = Instant::now() + config.shutdown_grace;
    let finished_in_grace = tokio::time::timeout_at(deadline, async {
        for jobs in &mut job_sets {
            while jobs.join_next().await.is_some() {}
        }
    })
    .await;
    if finished_in_grace.is_err() {
        for running in lock(&in_flight).values() {
            running.cancel.cancel(CancelReason::Shutdown);
        }
        // Cooperative handlers stop at once; others are dropped.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            for jobs in &mut job_sets {
                while jobs.join_next().await.is_some() {}
            }
        })
        .await;
        for jobs in &mut job_sets {
            jobs.abort_all();
            while jobs.join_next().await.is_some() {}
        }
    }
    // Every job task has ended: commit what finished, then release the rest.
    drop(finished_tx);
    let _ = committer.await;
    // The committer dropped its sender: this ends once the last batch is acknowledged.
    let _ = acknowledger.await;
    heartbeat_stop.cancel();
    let _ = heartbeat.await;
    let leftovers: Vec<Ticket> = lock(&in_flight).values().map(|running| running.ticket.clone()).collect();
    if !leftovers.is_empty() {
        match queue.release(&leftovers).await {
            Ok(released) => tracing::info!(%lane, released, "released unfinished jobs for immediate redelivery"),
            Err(err) => {
                tracing::error!(%lane, error = %err, "could not release unfinished jobs; their leases will expire and the reaper will requeue them")
            }
        }
    }
    tracing::info!(%lane, "lane stopped");
}

/// Receives jobs into free slots and spawns them, until `stop` trips. Returns
/// the attempts still running, for the lane's shutdown to wait on. A lane
/// runs `config.claimers` of these side by side, so that one claim's round
/// trip overlaps the next on a busy lane.
async fn claim_loop(
    lanes: Arc<Lanes>,
    lane: Lane,
    concurrency: usize,
    slots: Arc<Semaphore>,
    in_flight: InFlight,
    finished_tx: mpsc::UnboundedSender<Finished>,
    stop: CancellationToken,
) -> JoinSet<()> {
    let Lanes { queue, config, .. } = &*lanes;
    let mut jobs = JoinSet::new();
    let max_batch = config.claim_batch.min(queue.max_receive()).max(1);
    // The smallest claim worth a round trip while the queue has a backlog.
    let min_batch = (max_batch / 4).min(concurrency / (2 * config.claimers.max(1))).max(1);
    let mut backlog = false;
    let mut failures: u32 = 0;
    loop {
        while jobs.try_join_next().is_some() {}
        // Wait for at least one free slot, then take every other free one.
        let first = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let mut permits = vec![first];
        while permits.len() < max_batch {
            match slots.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        // Under a backlog, a claim of a handful of jobs costs nearly what a
        // claim of hundreds does. Give the committer a moment to free more
        // slots rather than spend a round trip on a sliver.
        if backlog && permits.len() < min_batch {
            let deadline = Instant::now() + BACKLOG_WAIT;
            while permits.len() < min_batch {
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permits.push(permit),
                        Err(_) => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
        // Not raced against `stop`: a receive that started jobs must hand
        // them over. The queue ends its own wait for work on `stop`.
        let tenant_cap = config.tenant_cap(lanes.presence.lane_slots(lane, concurrency));
        // The leases start after this (on SQS, after a long poll): counting
        // from the receive's end errs by one round trip, which the heartbeat
        // margin (a whole interval) covers.
        let request = ClaimRequest::new(lane, permits.len(), config.lease, &config.worker_id).capped(tenant_cap);
        let received = queue.receive(&request, &stop).await;
        let claimed = match received {
            Ok(claimed) => {
                failures = 0;
                claimed
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                let backoff = claim_backoff(config.poll_interval, failures);
                tracing::warn!(
                    %lane,
                    error = %err,
                    failures,
                    retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    "claim failed; retrying"
                );
                drop(permits);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        let leased_at = Instant::now();
        let got_all = claimed.len() == permits.len();
        let idle = claimed.is_empty();
        backlog = got_all;
        for delivery in claimed {
            let Some(slot) = permits.pop() else { break };
            let cancel = Cancellation::default();
            let running = Running {
                cancel: cancel.clone(),
                ticket: delivery.ticket.clone(),
                lease_until: leased_at + config.lease,
            };
            lock(&in_flight).insert(delivery.ticket.attempt, running);
            jobs.spawn(run_attempt(lanes.clone(), delivery, cancel, slot, finished_tx.clone()));
        }
        drop(permits);
        if idle {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = queue.idle(lane, config.poll_interval) => {}
            }
        } else if !got_all {
            // A partial batch means the queue is drained for now; a short
            // pause keeps a trickle of jobs from costing one claim per job.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    jobs
}

/// Runs one attempt and hands its outcome to the committer.
async fn run_attempt(
    lanes: Arc<Lanes>,
    Delivery { job, ticket }: Delivery,
    cancel: Cancellation,
    slot: OwnedSemaphorePermit,
    finished: mpsc::UnboundedSender<Finished>,
) {
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        kind = %job.kind,
        tenant = %job.tenant_id,
        attempt = job.attempts,
        traceparent = job.traceparent.as_deref().unwrap_or(""),
        trace_id = tracing::field::Empty,
    );
    // The trace the job's request started: logs join on `trace_id`, and
    // with `otlp` the span is exported as part of that trace.
    if let Some(traceparent) = job.traceparent.as_deref() {
        if let Some(trace_id) = longhaul_jobs::model::trace_id(traceparent) {
            span.record("trace_id", trace_id);
        }
        #[cfg(feature = "otlp")]
        join_trace(&span, traceparent);
    }
    async move {
        let _attending = lanes.presence.attend(&job);
        let attempt = AttemptRef::of(&job);
        let kind = job.kind;
        let timeout = lanes.config.timeout_for(kind);
        let (max_attempts, attempts) = (job.max_attempts, job.attempts);
        let started = Instant::now();
        let mut artifacts = Vec::new();
        let result = match lanes.registry.get(kind) {
            None => Err(JobError::permanent(format!("this worker has no handler for `{kind}`"))),
            Some(handler) => {
                let ctx = JobContext {
                    job,
                    cancel: cancel.token().clone(),
                    store: lanes.store.clone(),
                    objects: lanes.objects.clone(),
                    artifacts: Default::default(),
                };
                let run = AssertUnwindSafe(handler.run_job(&ctx)).catch_unwind();
                let result = tokio::select! {
                    outcome = run => outcome.unwrap_or_else(|panic| Err(JobError::retryable(format!(
                        "the handler panicked: {}", panic_message(&panic)
                    )))),
                    _ = tokio::time::sleep(timeout) => {
                        cancel.cancel(CancelReason::Timeout);
                        Err(JobError::retryable(format!("timed out after {}s", timeout.as_secs())))
                    }
                    // A handler that ignores its token is given a moment, then dropped.
                    _ = async { cancel.token().cancelled().await; tokio::time::sleep(lanes.config.cancel_grace).await } => {
                        Err(JobError::Cancelled)
                    }
                };
                artifacts = ctx.take_artifacts();
                result
            }
        };
        let outcome = match (cancel.reason(), result) {
            // Whatever the handler says, nothing it does can commit.
            (Some(CancelReason::LeaseLost), _) => {
                tracing::warn!("lease lost; dropping this attempt's outcome");
                let elapsed = started.elapsed();
                let _ = finished.send(Finished { ticket, completion: None, kind, elapsed, _slot: slot });
                return;
            }
            // Released by the lane after the grace period.
            (Some(CancelReason::Shutdown), _) => return,
            (Some(CancelReason::Requested), Err(_)) => Outcome::Cancelled { reason: "cancelled by request".into() },
            (_, Ok(result)) => Outcome::Succeeded { result, artifacts },
            (_, Err(JobError::Cancelled)) => Outcome::Cancelled { reason: "cancelled by request".into() },
            (_, Err(JobError::Permanent(error))) => Outcome::Dead { error },
            (_, Err(JobError::Retryable(error) | JobError::RetryLater { message: error, .. }))
                if attempts >= max_attempts =>
            {
                Outcome::Dead { error: format!("{error} (gave up after {attempts} attempts)") }
            }
            (_, Err(JobError::RetryLater { message: error, after })) => {
                let delay = lanes.config.retry.delay(attempts).max(after);
                let run_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                Outcome::Retry { error, run_at }
            }
            (_, Err(JobError::Retryable(error))) => {
                let delay = lanes.config.retry.delay(attempts);
                let run_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                Outcome::Retry { error, run_at }
            }
        };
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        match &outcome {
            Outcome::Succeeded { .. } => tracing::debug!(elapsed_ms, "job succeeded"),
            Outcome::Retry { error, run_at } => tracing::warn!(elapsed_ms, %error, %run_at, "job failed; will retry"),
            Outcome::Dead { error } => tracing::error!(elapsed_ms, %error, "job is dead"),
            Outcome::Cancelled { .. } => tracing::info!(elapsed_ms, "job cancelled"),
        }
        // The committer is only gone if the lane is shutting down, in which
        // case this attempt is released instead.
        let completion = Some(Completion { attempt, outcome });
        let _ = finished.send(Finished { ticket, completion, kind, elapsed, _slot: slot });
    }
    .instrument(span)
    .await
}

/// Makes `span` a child of the remote span `traceparent` names, in
/// OpenTelemetry, so that the exported job span joins its request's trace.
/// Does nothing when no OpenTelemetry layer is installed or the value is
/// malformed.
#[cfg(feature = "otlp")]
fn join_trace(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    // Fails only without an OpenTelemetry layer: then there is nothing to join.
    let _ = span.set_parent(parent);
}

/// `longhaul_jobs_total{status}`: what a committed outcome did to its job.
fn outcome_status(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded { .. } => "succeeded",
        Outcome::Retry { .. } => "retried",
        Outcome::Dead { .. } => "dead",
        Outcome::Cancelled { .. } => "cancelled",
    }
}

/// Counts the outcomes that committed: `longhaul_jobs_total{kind,status}`,
/// and each attempt's run time in `longhaul_job_duration_seconds{kind}`.
fn count_committed(batch: &[Finished], committed: &[AttemptRef]) {
    let committed: HashSet<&AttemptRef> = committed.iter().collect();
    for finished in batch {
        let Some(completion) = &finished.completion else { continue };
        if !committed.contains(&completion.attempt) {
            continue;
        }
        let kind = finished.kind.as_str();
        metrics::counter!("longhaul_jobs_total", "kind" => kind, "status" => outcome_status(&completion.outcome))
            .increment(1);
        metrics::histogram!("longhaul_job_duration_seconds", "kind" => kind).record(finished.elapsed.as_secs_f64());
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Commits finished attempts in batches: whatever has arrived by the time the
/// previous commit returns goes in the next statement. Then hands them to the
/// acknowledger: never before the commit, so a crash in between means a
/// redelivery, which the fence turns away.
async fn commit_loop(
    queue: DynQueue,
    in_flight: InFlight,
    mut finished: mpsc::UnboundedReceiver<Finished>,
    acknowledged: mpsc::UnboundedSender<Vec<Ticket>>,
) {
    let mut batch = Vec::with_capacity(COMMIT_BATCH);
    while finished.recv_many(&mut batch, COMMIT_BATCH).await > 0 {
        let completions: Vec<Completion> = batch.iter().filter_map(|f| f.completion.clone()).collect();
        let commit = || async { queue.complete(&completions).await };
        match commit
            .retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(50)).with_max_times(5))
            .notify(|err, after| tracing::warn!(error = %err, retry_in_ms = after.as_millis() as u64, "commit failed; retrying"))
            .await
        {
            Ok(committed) => {
                count_committed(&batch, &committed);
                if committed.len() < completions.len() {
                    tracing::warn!(
                        rejected = completions.len() - committed.len(),
                        "some outcomes were fenced off: their lease had expired or another attempt owns the job"
                    );
                }
                // Acknowledged only once committed, or fenced off: then the
                // job is another attempt's, and this message is stale.
                let _ = acknowledged.send(batch.iter().map(|f| f.ticket.clone()).collect());
            }
            Err(err) => tracing::error!(
                error = %err,
                jobs = completions.len(),
                "could not commit outcomes; their leases will expire and the jobs will run again"
            ),
        }
        let mut running = lock(&in_flight);
        for done in &batch {
            running.remove(&done.ticket.attempt);
        }
        drop(running);
        // Dropping the batch frees the slots.
        batch.clear();
    }
}

/// Acknowledges committed attempts to the queue (SQS: DeleteMessageBatch),
/// beside the committer rather than in its way: a slot frees at its commit,
/// and queue round trips overlap the next commits.
async fn acknowledge_loop(queue: DynQueue, mut committed: mpsc::UnboundedReceiver<Vec<Ticket>>) {
    let mut batches = Vec::new();
    while committed.recv_many(&mut batches, 100).await > 0 {
        let tickets: Vec<Ticket> = batches.drain(..).flatten().collect();
        let acknowledge = || async { queue.acknowledge(&tickets).await };
        if let Err(err) = acknowledge
            .retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(50)).with_max_times(3))
            .await
        {
            tracing::warn!(error = %err, jobs = tickets.len(), "could not acknowledge finished jobs; their messages will come back and be dropped as stale");
        }
    }
}

/// Extends every lease of the pool in one statement, and trips the token of
/// attempts that lost their lease or were asked to cancel. When the
/// database cannot be reached, an attempt whose lease would run out before
/// the next heartbeat could renew it is stopped too: by then another worker
/// may have it, and its calls out (IMAP, agencies) must not overlap. Counts
/// both in `longhaul_lease_extensions_total{lane}` and
/// `longhaul_leases_lost_total{lane}`.
async fn heartbeat_loop(
    queue: DynQueue,
    store: DynStore,
    lane: Lane,
    in_flight: InFlight,
    lease: Duration,
    every: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wakeups = store.wakeups().clone();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
            // A cancel request somewhere: look now rather than at the next tick.
            _ = wakeups.cancels().notified() => {}
        }
        let tickets: Vec<Ticket> = lock(&in_flight).values().map(|running| running.ticket.clone()).collect();
        if tickets.is_empty() {
            continue;
        }
        let asked = Instant::now();
        // A renewal that takes longer than the time left is no renewal.
        let renewal = tokio::time::timeout(every.max(Duration::from_millis(100)), queue.heartbeat(&tickets, lease));
        let (mut extended, mut lost) = (0, 0);
        match renewal.await {
            Ok(Ok(states)) => {
                let mut running = lock(&in_flight);
                for state in states {
                    let Some(attempt) = running.get_mut(&state.attempt) else { continue };
                    if !state.held {
                        tracing::warn!(job_id = %state.attempt.id, generation = state.attempt.generation, "lease lost; stopping the attempt");
                        attempt.cancel.cancel(CancelReason::LeaseLost);
                        lost += 1;
                        continue;
                    }
                    attempt.lease_until = asked + lease;
                    extended += 1;
                    if state.cancel_requested {
                        attempt.cancel.cancel(CancelReason::Requested);
                    }
                }
            }
            failed => {
                let error = match failed {
                    Ok(Err(err)) => err.to_string(),
                    _ => format!("no answer within {} ms", every.as_millis()),
                };
                tracing::warn!(%error, "heartbeat failed; stopping attempts whose lease runs out before the next one");
                let horizon = Instant::now() + every;
                for (attempt, running) in lock(&in_flight).iter() {
                    if running.lease_until <= horizon && running.cancel.reason().is_none() {
                        tracing::warn!(job_id = %attempt.id, generation = attempt.generation, "lease cannot be renewed in time; stopping the attempt");
                        running.cancel.cancel(CancelReason::LeaseLost);
                        lost += 1;
                    }
                }
            }
        }
        metrics::counter!("longhaul_lease_extensions_total", "lane" => lane.as_str()).increment(extended);
        metrics::counter!("longhaul_leases_lost_total", "lane" => lane.as_str()).increment(lost);
    }
}

#[cfg(all(test, feature = "otlp"))]
mod otlp_tests {
    use super::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn with_otlp_the_job_span_is_a_child_of_its_traceparent() {
        use opentelemetry::trace::{TraceContextExt, TracerProvider};
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        use tracing_subscriber::layer::SubscriberExt;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("job");
            join_trace(&span, TRACEPARENT);
            let context = span.context();
            let parent = context.span();
            assert_eq!(parent.span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_back_off_while_the_queue_keeps_failing() {
        let poll = Duration::from_millis(100);
        let waits: Vec<u128> = (1..=8).map(|failures| claim_backoff(poll, failures).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
        assert_eq!(claim_backoff(poll, u32::MAX), MAX_CLAIM_BACKOFF);
        // A poll interval longer than the cap is never shortened.
        assert_eq!(claim_backoff(Duration::from_secs(30), 3), Duration::from_secs(30));
    }
}
