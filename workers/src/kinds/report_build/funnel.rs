//! The `funnel` report: of the users who did a funnel's first step in
//! `[from, to)`, how many went on to each later step, in order, within
//! `window_hours` of their first; overall and per platform.
//!
//! It reads the tenant's data lake, not the database: the partitions whose
//! hour may hold such events (events land in the hour they were received,
//! which is after they happened, by at most the time a phone was offline:
//! partitions up to [`LATE_ARRIVALS`] past the window are read), and of
//! each Parquet file only the four columns a funnel needs. A user's run
//! starts at their first first step in the span; each later step counts at
//! its first occurrence after the previous step's, up to the window's end.
//! A user is counted under the platform of the event that started their
//! run.

use std::collections::{BTreeMap, HashMap};

use longhaul_jobs::kind::FunnelRequest;
use serde::Serialize;

use crate::{
    error::JobError,
    lake::{part_names, read_steps, StepEvent, TenantLake},
    JobContext,
};

/// How long after an event happened it may still arrive (a phone offline):
/// partitions this far past the funnel's window are read too.
pub const LATE_ARRIVALS: chrono::Duration = chrono::Duration::days(7);

/// One step's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepFigures {
    pub step: String,
    pub users: u64,
    /// Of the users at the previous step, the share that got here (1 at the
    /// first step).
    pub conversion_from_previous: f64,
    /// Of the users at the first step, the share that got here.
    pub conversion_from_start: f64,
    /// Users at the previous step who did not get here.
    pub drop_off: u64,
}

/// A funnel, counted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Funnel {
    /// What was asked: steps, span and window.
    #[serde(flatten)]
    pub request: FunnelRequest,
    pub overall: Vec<StepFigures>,
    /// Per platform (`unknown` for events without one), by name.
    pub platforms: BTreeMap<String, Vec<StepFigures>>,
    /// Lake partitions and step events read.
    pub partitions_read: usize,
    pub events_read: usize,
}

/// Counts `events` into the funnel of `request`.
pub fn count(request: &FunnelRequest, events: Vec<StepEvent>) -> (Vec<u64>, BTreeMap<String, Vec<u64>>) {
    let steps = &request.steps;
    // Events name a step by the index of its name's first occurrence.
    let first_index: Vec<usize> =
        steps.iter().map(|step| steps.iter().position(|other| other == step).unwrap_or(0)).collect();
    let (from, to) = (request.from.timestamp_micros(), request.to.timestamp_micros());
    let window = i64::from(request.window_hours) * 3_600_000_000;
    let mut by_user: HashMap<String, Vec<StepEvent>> = HashMap::new();
    for event in events {
        by_user.entry(event.user.clone()).or_default().push(event);
    }
    let mut overall = vec![0u64; steps.len()];
    let mut platforms: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for events in by_user.values_mut() {
        events.sort_by_key(|event| event.at);
        let Some(start) = events.iter().find(|e| e.step == first_index[0] && e.at >= from && e.at < to) else {
            continue;
        };
        let (mut reached, mut at) = (1, start.at);
        for (k, wanted) in first_index.iter().enumerate().skip(1) {
            // A step repeated twice in a row needs a second event, later.
            let again = first_index[k - 1] == *wanted;
            let next = events
                .iter()
                .find(|e| e.step == *wanted && (e.at > at || (!again && e.at == at)) && e.at <= start.at + window);
            let Some(event) = next else { break };
            at = event.at;
            reached += 1;
        }
        let platform = start.platform.clone().unwrap_or_else(|| "unknown".to_owned());
        let per_platform = platforms.entry(platform).or_insert_with(|| vec![0; steps.len()]);
        for k in 0..reached {
            overall[k] += 1;
            per_platform[k] += 1;
        }
    }
    (overall, platforms)
}

/// Each step's users, conversions and drop-off.
pub fn figures(steps: &[String], users: &[u64]) -> Vec<StepFigures> {
    let share = |part: u64, whole: u64| if whole == 0 { 0.0 } else { part as f64 / whole as f64 };
    steps
        .iter()
        .zip(users)
        .enumerate()
        .map(|(k, (step, &here))| {
            let previous = if k == 0 { here } else { users[k - 1] };
            StepFigures {
                step: step.clone(),
                users: here,
                conversion_from_previous: if k == 0 { 1.0 } else { share(here, previous) },
                conversion_from_start: share(here, users[0]),
                drop_off: previous - here.min(previous),
            }
        })
        .collect()
}

/// Reads the lake's partitions that may hold the funnel's events, and
/// counts them.
pub async fn build(ctx: &JobContext, request: &FunnelRequest) -> Result<Funnel, JobError> {
    let tenant = &ctx.job.tenant_id;
    let window = chrono::Duration::hours(i64::from(request.window_hours));
    let until = request.to + window;
    // Received no earlier than an hour before they happened (a phone's clock
    // may run ahead that much), and at most LATE_ARRIVALS after.
    let first_hour = longhaul_jobs::events::hour_of(request.from - chrono::Duration::hours(1));
    let last_hour = until + LATE_ARRIVALS;
    let partitions: Vec<_> = ctx
        .store
        .lake_partitions(tenant, Some(last_hour))
        .await?
        .into_iter()
        .filter(|partition| partition.hour >= first_hour)
        .collect();
    let lake = TenantLake::new(ctx.objects()?.clone(), tenant);
    let spool = tempfile::tempdir().map_err(|err| JobError::retryable(format!("cannot make a spool: {err}")))?;
    let mut events = Vec::new();
    for (n, partition) in partitions.iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        for name in part_names(&partition.manifest) {
            let key = lake.key(partition.hour, &name)?;
            let path = spool.path().join("part.parquet");
            if !lake.download(&key, &path).await? {
                continue;
            }
            let (steps, from, until) =
                (request.steps.clone(), request.from.timestamp_micros(), until.timestamp_micros());
            let read = tokio::task::spawn_blocking(move || read_steps(&path, &steps, from, until))
                .await
                .map_err(|err| JobError::retryable(format!("the Parquet reader stopped: {err}")))?
                .map_err(|err| JobError::permanent(format!("{key}: {}", err.0)))?;
            events.extend(read);
        }
        ctx.set_progress(i16::try_from((n + 1) * 80 / partitions.len()).unwrap_or(80)).await;
    }
    let events_read = events.len();
    let (overall, platforms) = count(request, events);
    Ok(Funnel {
        request: request.clone(),
        overall: figures(&request.steps, &overall),
        platforms: platforms.into_iter().map(|(name, users)| (name, figures(&request.steps, &users))).collect(),
        partitions_read: partitions.len(),
        events_read,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    fn at(minutes: i64) -> i64 {
        let base: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().expect("time");
        (base + chrono::Duration::minutes(minutes)).timestamp_micros()
    }

    fn event(user: &str, step: usize, minutes: i64, platform: &str) -> StepEvent {
        StepEvent { user: user.into(), step, at: at(minutes), platform: Some(platform.into()) }
    }

    fn request(steps: &[&str]) -> FunnelRequest {
        FunnelRequest {
            steps: steps.iter().map(|s| (*s).to_owned()).collect(),
            from: "2026-11-01T00:00:00Z".parse().expect("time"),
            to: "2026-11-02T00:00:00Z".parse().expect("time"),
            window_hours: 2,
        }
    }

    /// Worked by hand: steps search(0) → booking_started(1) → payment(2).
    /// - ana (ios): search, started, paid, in order within 2 h: all three.
    /// - bo (ios): search, then paid before starting, then started: two
    ///   (payment must come after booking_started).
    /// - cy (android): search, started 3 h later (outside the window): one.
    /// - di (android): started and paid, never searched: not in the funnel.
    /// - ed (android): searched the day before the span, then in it at
    ///   23:30, started at 00:30 the next day (within 2 h of the start,
    ///   after `to`): two.
    #[test]
    fn a_hand_worked_funnel() {
        let request = request(&["search", "booking_started", "payment"]);
        let events = vec![
            event("ana", 0, 10, "ios"),
            event("ana", 1, 20, "ios"),
            event("ana", 2, 30, "ios"),
            event("bo", 0, 10, "ios"),
            event("bo", 2, 15, "ios"),
            event("bo", 1, 20, "ios"),
            event("cy", 0, 10, "android"),
            event("cy", 1, 200, "android"),
            event("di", 1, 10, "android"),
            event("di", 2, 20, "android"),
            event("ed", 0, -600, "android"),
            event("ed", 0, 1410, "android"),
            event("ed", 1, 1470, "android"),
        ];
        let (overall, platforms) = count(&request, events);
        assert_eq!(overall, [4, 3, 1]);
        assert_eq!(platforms["ios"], [2, 2, 1]);
        assert_eq!(platforms["android"], [2, 1, 0]);
        let figures = figures(&request.steps, &overall);
        assert_eq!(figures[1].drop_off, 1);
        assert_eq!(figures[1].conversion_from_previous, 0.75);
        assert_eq!(figures[2].conversion_from_previous, 1.0 / 3.0);
        assert_eq!(figures[2].conversion_from_start, 0.25);
        assert_eq!(figures[2].drop_off, 2);
    }

    #[test]
    fn a_repeated_step_needs_a_second_occurrence() {
        let request = request(&["search", "search"]);
        let (once, _) = count(&request, vec![event("ana", 0, 10, "ios")]);
        assert_eq!(once, [1, 0]);
        let (twice, _) = count(&request, vec![event("ana", 0, 10, "ios"), event("ana", 0, 20, "ios")]);
        assert_eq!(twice, [1, 1]);
    }
}
