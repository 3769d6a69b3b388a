//! `reservation_refresh`: check one shard of the active reservations at
//! their agencies, and write what changed.
//!
//! The shard is read a page at a time (keyset pagination on
//! `(shard_key, id)`). Each page's reservations are grouped by agency and
//! looked up in batches, every agency and batch at once (each adapter keeps
//! its own rate limit, concurrency cap and circuit breaker). An answer whose
//! content hash matches the one we hold is nothing new; a 304 is not even
//! that. The rest, the reservations whose trip is over, and the page's
//! tallies commit in one transaction per page (`commit_page`).
//!
//! An agency that fails (down, circuit open, throttled past its retries)
//! costs only its own reservations: the others are checked and written, and
//! the job then fails with a retryable error naming it, so the runtime tries
//! the shard again later (the rest of it answers 304 then).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::Utc;
use futures::{stream, StreamExt};
use longhaul_jobs::{
    kind::{self, ReservationRefreshPayload},
    travel::refresh::{content_hash, shard_keys, AgencyUpdate, PageWrite, ShardItem, ShardTally, SYSTEM_TENANT},
};
use serde::Serialize;

use crate::{
    agency::{Agencies, Agency, AgencyError, Fetched, Lookup},
    runtime::JobContext,
};
use crate::{Handler, JobError, JobResult};

/// How a refresh runs.
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    /// The agencies, by the provider names reservations carry.
    pub agencies: Agencies,
    /// Reservations read and committed together.
    pub page_size: u32,
    /// Agency requests one job keeps in flight at most, across agencies
    /// (each agency's own cap applies within it).
    pub fetch_concurrency: usize,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        RefreshSettings { agencies: Agencies::default(), page_size: 1_000, fetch_concurrency: 32 }
    }
}

/// The `reservation_refresh` handler.
pub struct ReservationRefresh {
    settings: Arc<RefreshSettings>,
}

impl ReservationRefresh {
    pub fn new(settings: RefreshSettings) -> Self {
        ReservationRefresh { settings: Arc::new(settings) }
    }
}

/// The job's result: counts of what it checked and found.
#[derive(Debug, Default, Serialize)]
struct Summary {
    /// What the agencies answered, page after page.
    #[serde(flatten)]
    checks: ShardTally,
    /// Of those checked, changed (written, with history and an event).
    changed: u64,
    /// Answered with what we already had (or first seen: recorded).
    unchanged: u64,
    /// Left the active set: their trip is over.
    ended: u64,
    pages: u64,
}

#[async_trait]
impl Handler for ReservationRefresh {
    type Kind = kind::ReservationRefresh;

    async fn run(&self, ctx: &JobContext, payload: ReservationRefreshPayload) -> JobResult {
        let (shard, shards) = payload.shard_of().map_err(|err| JobError::permanent(err.to_string()))?;
        let keys = shard_keys(shard, shards);
        // The planner's shards cover every tenant; an admin's refresh only
        // the admin's own.
        let tenant = (ctx.job.tenant_id != SYSTEM_TENANT).then_some(ctx.job.tenant_id.as_str());
        let sweep = payload.sweep_id.map(|id| (id, shard));
        // Every write below is fenced on this attempt: once another worker
        // has the job, this one writes nothing more and stops.
        let attempt = ctx.attempt();
        if let Some((sweep_id, shard)) = sweep {
            if !ctx.store.start_shard(attempt, sweep_id, shard, ctx.job.attempts > 1).await? {
                return Err(lease_lost());
            }
        }

        let started = Instant::now();
        let mut summary = Summary::default();
        let mut failures: HashMap<String, Failure> = HashMap::new();
        let mut after = None;
        loop {
            if ctx.cancel.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            let items = ctx.store.shard_page(tenant, keys, after, self.settings.page_size).await?;
            let Some(last) = items.last() else { break };
            after = Some((last.shard_key, last.id));
            let progress = (i64::from(last.shard_key) - i64::from(keys.0)) * 100 / i64::from(keys.1 - keys.0).max(1);

            let mut page = tokio::select! {
                page = self.check_page(&items, &mut failures) => page,
                () = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
            };
            page.shard = sweep;
            let Some(outcome) = ctx.store.commit_page(attempt, &page).await? else {
                return Err(lease_lost());
            };
            for staleness in outcome.changed.iter().filter_map(|(_, staleness)| *staleness) {
                metrics::histogram!("longhaul_sweep_staleness_seconds")
                    .record(staleness.num_milliseconds().max(0) as f64 / 1000.0);
            }
            let tally = page.tally;
            summary.checks.add(&tally);
            summary.changed += outcome.changed.len() as u64;
            summary.ended += outcome.ended;
            summary.unchanged += tally
                .checked
                .saturating_sub(tally.not_modified + tally.not_found + tally.invalid + outcome.changed.len() as u64);
            summary.pages += 1;
            for (name, value) in [
                ("changed", outcome.changed.len() as u64),
                ("not_modified", tally.not_modified),
                ("not_found", tally.not_found),
                ("invalid", tally.invalid),
                ("failed", tally.failed),
                ("no_agency", tally.no_agency),
            ] {
                metrics::counter!("longhaul_refresh_checks_total", "outcome" => name).increment(value);
            }
            ctx.set_progress(i16::try_from(progress.clamp(0, 99)).unwrap_or(99)).await;
            if (items.len() as u32) < self.settings.page_size {
                break;
            }
        }
        tracing::info!(
            checked = summary.checks.checked,
            changed = summary.changed,
            not_modified = summary.checks.not_modified,
            failed = summary.checks.failed,
            ended = summary.ended,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "refreshed shard {shard} of {shards}"
        );
        if !failures.is_empty() {
            let mut failed: Vec<_> = failures.into_iter().collect();
            failed.sort_by(|a, b| a.0.cmp(&b.0));
            let reasons: Vec<String> = failed
                .iter()
                .map(|(name, failure)| {
                    format!("{name} ({} reservations unchecked): {}", failure.unchecked, failure.reasons.join("; "))
                })
                .collect();
            let message = format!(
                "checked {} of the shard's reservations; agencies failed: {}",
                summary.checks.checked,
                reasons.join(" | ")
            );
            // Not before an open circuit lets requests through again.
            return Err(match failed.iter().filter_map(|(_, failure)| failure.wait).max() {
                Some(after) => JobError::RetryLater { message, after },
                None => JobError::Retryable(message),
            });
        }
        if let Some((sweep_id, shard)) = sweep {
            if !ctx.store.finish_shard(attempt, sweep_id, shard, None).await? {
                return Err(lease_lost());
            }
        }
        serde_json::to_value(&summary).map(Some).map_err(|err| JobError::permanent(err.to_string()))
    }
}

/// The attempt no longer holds its job (its lease ran out, or an admin
/// retried it): another run has the shard now. This outcome's commit is
/// fenced off too, so the reason is only logged.
fn lease_lost() -> JobError {
    JobError::retryable("this attempt lost its lease; another run of the job has the shard")
}

impl ReservationRefresh {
    /// Looks up one page's reservations at their agencies, and sorts the
    /// answers into what the page commits.
    async fn check_page(&self, items: &[ShardItem], failures: &mut HashMap<String, Failure>) -> PageWrite {
        let mut tally = ShardTally::default();
        // By agency, as indexes into `items`, then in batches of the
        // agency's size, each with its owned look-ups.
        let mut by_agency: HashMap<String, (Arc<dyn Agency>, Vec<usize>)> = HashMap::new();
        for (index, item) in items.iter().enumerate() {
            match self.settings.agencies.for_provider(&item.provider) {
                None => tally.no_agency += 1,
                Some(agency) => by_agency
                    .entry(agency.name().to_owned())
                    .or_insert_with(|| (Arc::clone(agency), Vec::new()))
                    .1
                    .push(index),
            }
        }
        let mut batches: Vec<Batch> = Vec::new();
        for (agency, indexes) in by_agency.into_values() {
            for chunk in indexes.chunks(agency.max_batch().max(1)) {
                let lookups = chunk
                    .iter()
                    .map(|&i| Lookup {
                        reservation_number: items[i].reservation_number.clone(),
                        etag: items[i].etag.clone(),
                    })
                    .collect();
                batches.push((Arc::clone(&agency), chunk.to_vec(), lookups));
            }
        }
        let fetches: Vec<_> =
            batches.into_iter().map(|(agency, chunk, lookups)| fetch(agency, chunk, lookups)).collect();
        let answers: Vec<Answer> =
            stream::iter(fetches).buffer_unordered(self.settings.fetch_concurrency.max(1)).collect().await;

        let detected_at = Utc::now();
        let mut updates = Vec::new();
        for (agency, chunk, answer) in answers {
            let fetched = match answer {
                Ok(fetched) if fetched.len() == chunk.len() => fetched,
                Ok(fetched) => {
                    let reason = format!("answered {} items for {} lookups", fetched.len(), chunk.len());
                    let err = AgencyError::BadResponse { provider: agency.name().to_owned(), reason };
                    note_failure(failures, agency.name(), chunk.len(), &err);
                    tally.failed += chunk.len() as u64;
                    continue;
                }
                Err(err) => {
                    note_failure(failures, agency.name(), chunk.len(), &err);
                    tally.failed += chunk.len() as u64;
                    continue;
                }
            };
            for (item, fetched) in chunk.into_iter().map(|i| &items[i]).zip(fetched) {
                tally.checked += 1;
                match fetched {
                    Fetched::NotModified => tally.not_modified += 1,
                    Fetched::NotFound => tally.not_found += 1,
                    Fetched::Invalid(reason) => {
                        tally.invalid += 1;
                        tracing::warn!(reservation = %item.id, agency = agency.name(), %reason, "unreadable agency answer");
                    }
                    Fetched::Current { etag, reservation } => {
                        if reservation.ends_at.is_some_and(|ends_at| ends_at < reservation.starts_at) {
                            tally.invalid += 1;
                            tracing::warn!(
                                reservation = %item.id,
                                agency = agency.name(),
                                "agency answer ends before it starts"
                            );
                            continue;
                        }
                        // Both databases keep milliseconds at least; an
                        // agency's nanoseconds would read back as a change.
                        let starts_at = to_millis(reservation.starts_at);
                        let ends_at = reservation.ends_at.map(to_millis);
                        let hash = content_hash(reservation.status, starts_at, ends_at, &reservation.details);
                        if item.hash == Some(hash) {
                            continue;
                        }
                        updates.push(AgencyUpdate {
                            id: item.id,
                            etag,
                            hash,
                            status: reservation.status,
                            starts_at,
                            ends_at,
                            details: reservation.details,
                            changed_at: reservation.changed_at.map(to_millis),
                            detected_at,
                        });
                    }
                }
            }
        }
        let past = items.iter().filter(|item| item.past).map(|item| item.id).collect();
        PageWrite { shard: None, updates, past, tally }
    }
}

/// One batch to look up: the agency, the page indexes, their look-ups.
type Batch = (Arc<dyn Agency>, Vec<usize>, Vec<Lookup>);

/// One batch's answer, with the agency and the page indexes it was for.
type Answer = (Arc<dyn Agency>, Vec<usize>, Result<Vec<Fetched>, AgencyError>);

async fn fetch(agency: Arc<dyn Agency>, chunk: Vec<usize>, lookups: Vec<Lookup>) -> Answer {
    let answer = agency.fetch(&lookups).await;
    (agency, chunk, answer)
}

fn to_millis(at: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

/// What went wrong with one agency during a shard.
#[derive(Default)]
struct Failure {
    /// Reservations it left unchecked.
    unchecked: u64,
    /// Each distinct reason once, a few at most.
    reasons: Vec<String>,
    /// The longest its circuit said to wait.
    wait: Option<Duration>,
}

fn note_failure(failures: &mut HashMap<String, Failure>, agency: &str, count: usize, err: &AgencyError) {
    let entry = failures.entry(agency.to_owned()).or_default();
    entry.unchecked += count as u64;
    let reason = err.to_string();
    if entry.reasons.len() < 3 && !entry.reasons.contains(&reason) {
        entry.reasons.push(reason);
    }
    if let AgencyError::CircuitOpen { retry_after_secs, .. } = err {
        entry.wait = entry.wait.max(Some(Duration::from_secs(*retry_after_secs)));
    }
}
