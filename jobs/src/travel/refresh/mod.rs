//! The reservation sweep's storage: the active set split into shards, the
//! sweeps and their shards, and the batched write of what agencies said.
//!
//! A reservation is *active* while it is confirmed and not `ended`. Its
//! `shard_key` is the last 16 bits of its id (random in UUIDv4 and v7), so
//! shard `i` of `n` is the key range [`shard_keys`]`(i, n)`: the same
//! reservations every sweep, and shards as even as the ids are random.
//!
//! The planner ([`RefreshStore::begin_sweep`]) records a sweep under the
//! unique start of its interval, so a restarted planner or a new leader
//! never starts the same sweep twice, and plans its shards, skipping any
//! whose key range a previous shard still queued or running covers. Each
//! `reservation_refresh` job reads its shard a page at a time
//! ([`RefreshStore::shard_page`], keyset pagination on `(shard_key, id)`)
//! and commits each page's findings in one transaction
//! ([`RefreshStore::commit_page`]): the reservations that changed (fields,
//! `version + 1`, history, a `reservation.changed` event, trips regrouped),
//! those whose trip ended, and the shard's tallies and staleness histogram.
//! An answer that matches the content hash we hold writes nothing, and a
//! 304 is never even read that far.

mod sql;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ReservationStatus;
use crate::store::{AttemptRef, Result, StoreError};

/// Shard keys run over `0..SHARD_KEYS`.
pub const SHARD_KEYS: u32 = 1 << 16;

/// The tenant and user of the jobs the sweep planner enqueues. A
/// `reservation_refresh` job of this tenant covers every tenant's
/// reservations; one an admin submits covers only the admin's tenant. Its
/// `_` prefix is reserved ([`crate::model::is_reserved_tenant`]): no token
/// can carry it, so no caller can act as it.
pub const SYSTEM_TENANT: &str = "_longhaul";
pub const SYSTEM_USER: &str = "sweep-planner";

/// The shard-key range `[lo, hi)` of shard `shard` of `shards`.
pub fn shard_keys(shard: u32, shards: u32) -> (i32, i32) {
    let shards = u64::from(shards.clamp(1, SHARD_KEYS));
    let shard = u64::from(shard).min(shards - 1);
    let at = |i: u64| i32::try_from(i * u64::from(SHARD_KEYS) / shards).unwrap_or(i32::MAX);
    (at(shard), at(shard + 1))
}

/// How many shards of at most `shard_size` active reservations cover
/// `active` of them (at least one; at most [`SHARD_KEYS`]).
pub fn shard_count(active: i64, shard_size: u32) -> u32 {
    let size = i64::from(shard_size.max(1));
    let count = (active.max(0) + size - 1) / size;
    u32::try_from(count.clamp(1, i64::from(SHARD_KEYS))).unwrap_or(SHARD_KEYS)
}

/// A sweep the planner started: its shards to enqueue, each with the job
/// id its shard row already names.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepStart {
    pub sweep_id: Uuid,
    /// Active reservations when it was planned.
    pub active: i64,
    pub shards: u32,
    /// `(shard, job id)` of each shard to enqueue now.
    pub enqueue: Vec<(u32, Uuid)>,
    /// Shards left out because a previous run of them is not over.
    pub skipped: u32,
}

impl SweepStart {
    /// The `reservation_refresh` jobs of the shards to enqueue, each under
    /// the id its shard row names, for the platform ([`SYSTEM_TENANT`]).
    pub fn jobs(&self) -> Vec<crate::NewJob> {
        self.enqueue
            .iter()
            .filter_map(|&(shard, job_id)| {
                let payload = crate::kind::ReservationRefreshPayload {
                    sweep_id: Some(self.sweep_id),
                    shard: Some(shard),
                    shards: Some(self.shards),
                };
                let mut job =
                    crate::NewJob::of::<crate::kind::ReservationRefresh>(SYSTEM_TENANT, SYSTEM_USER, &payload).ok()?;
                job.id = job_id;
                Some(job)
            })
            .collect()
    }
}

/// One active reservation of a shard, as much as a check needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardItem {
    pub id: Uuid,
    pub shard_key: i32,
    pub provider: String,
    pub reservation_number: String,
    pub etag: Option<String>,
    pub hash: Option<i64>,
    /// Its own end (or start, without an end) has passed: it leaves the
    /// active set once its trip is over too.
    pub past: bool,
}

/// What an agency says a reservation is now, to be written if it differs
/// from what we hold.
#[derive(Debug, Clone, PartialEq)]
pub struct AgencyUpdate {
    pub id: Uuid,
    pub etag: Option<String>,
    /// [`content_hash`] of the fields below.
    pub hash: i64,
    pub status: ReservationStatus,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// The agency's own data, kept as `details.agency`.
    pub details: Value,
    /// When the agency says the change happened.
    pub changed_at: Option<DateTime<Utc>>,
    /// When we saw it.
    pub detected_at: DateTime<Utc>,
}

/// Counts of one page's checks, added to its shard's row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ShardTally {
    /// Reservations looked up at their agency (answered, in any way).
    pub checked: u64,
    /// Answered 304.
    pub not_modified: u64,
    pub not_found: u64,
    /// Answered with what could not be read.
    pub invalid: u64,
    /// Not checked: their agency failed.
    pub failed: u64,
    /// Not checked: no agency is configured for their provider.
    pub no_agency: u64,
}

impl ShardTally {
    pub fn add(&mut self, other: &ShardTally) {
        self.checked += other.checked;
        self.not_modified += other.not_modified;
        self.not_found += other.not_found;
        self.invalid += other.invalid;
        self.failed += other.failed;
        self.no_agency += other.no_agency;
    }
}

/// One page's findings, committed together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageWrite {
    /// The sweep and shard the page belongs to, whose row is updated in the
    /// same transaction; none for a job outside a sweep.
    pub shard: Option<(Uuid, u32)>,
    /// Answers whose content hash differs from the one we hold.
    pub updates: Vec<AgencyUpdate>,
    /// Reservations whose own time has passed: each leaves the active set
    /// if its trip (if any) is over too.
    pub past: Vec<Uuid>,
    pub tally: ShardTally,
}

/// What a page's commit changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageOutcome {
    /// Reservations changed, each with its staleness (detected minus
    /// changed), if the agency said when it changed.
    pub changed: Vec<(Uuid, Option<chrono::Duration>)>,
    /// Answers that only set the ETag and hash we keep (the first check of
    /// a reservation, or a new ETag for the same content).
    pub baselined: u64,
    /// Answers another run had already written.
    pub already_applied: u64,
    /// Reservations that left the active set.
    pub ended: u64,
}

/// Staleness percentiles, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Staleness {
    /// Changes measured (those whose agency said when they happened).
    pub count: u64,
    pub p50_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
    pub max_seconds: Option<f64>,
}

/// A sweep, as `GET /v1/admin/sweeps` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SweepReport {
    pub id: Uuid,
    pub started_at: DateTime<Utc>,
    /// `running` until every enqueued shard has finished, then `finished`.
    pub status: String,
    /// Active reservations when it was planned.
    pub active: i64,
    pub shards: u32,
    pub enqueued: u32,
    /// Shards not started because their previous run was still going.
    pub skipped: u32,
    pub finished_shards: u32,
    /// Reservations checked at their agency.
    pub checked: i64,
    /// Of those, changed.
    pub changed: i64,
    pub not_modified: i64,
    pub not_found: i64,
    /// Answers that could not be read.
    pub invalid: i64,
    /// Not checked: their agency failed (down, circuit open, throttled out).
    pub failed: i64,
    /// Not checked: no agency is configured for their provider.
    pub no_agency: i64,
    /// Left the active set: their trip is over.
    pub ended: i64,
    /// From the sweep's start to its last shard's end, once it is finished.
    pub duration_seconds: Option<f64>,
    /// How long after it happened each change was detected.
    pub staleness: Staleness,
    /// The last error of a shard that failed, if any.
    pub error: Option<String>,
}

/// A sweep as one tenant's admin sees it: when it ran, and what it found of
/// that tenant's reservations. Sweeps cover every tenant at once, so the
/// platform's figures (shards, everything checked) are not part of it; the
/// tenant's are read from its reservations' history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TenantSweep {
    pub id: Uuid,
    pub started_at: DateTime<Utc>,
    /// `running` until every enqueued shard has finished, then `finished`.
    pub status: String,
    /// From the sweep's start to its last shard's end, once it is finished.
    pub duration_seconds: Option<f64>,
    /// The tenant's reservations whose change at their agency was recorded
    /// while this sweep ran (until the next one started).
    pub changed: i64,
    /// How long after it happened each of those changes was detected.
    pub staleness: Staleness,
}

impl TenantSweep {
    /// `finished_shards` of `enqueued` done, the last at `last_finished`.
    pub(crate) fn new(
        id: Uuid,
        started_at: DateTime<Utc>,
        shards: (i64, i64, Option<DateTime<Utc>>),
        changed: i64,
        staleness: Staleness,
    ) -> TenantSweep {
        let (enqueued, finished_shards, last_finished) = shards;
        let finished = finished_shards >= enqueued;
        TenantSweep {
            id,
            started_at,
            status: if finished { "finished" } else { "running" }.into(),
            duration_seconds: finished
                .then(|| last_finished.map(|end| (end - started_at).num_milliseconds() as f64 / 1000.0))
                .flatten(),
            changed,
            staleness,
        }
    }
}

/// Staleness percentiles of a set of measurements, in seconds (nearest
/// rank, as PostgreSQL's `percentile_disc`).
pub(crate) fn staleness_of(mut seconds: Vec<f64>) -> Staleness {
    seconds.sort_by(f64::total_cmp);
    let at = |p: f64| -> Option<f64> {
        let last = seconds.len().checked_sub(1)?;
        let rank = ((p * seconds.len() as f64).ceil() as usize).saturating_sub(1).min(last);
        seconds.get(rank).copied()
    };
    Staleness {
        count: seconds.len() as u64,
        p50_seconds: at(0.5),
        p90_seconds: at(0.9),
        p99_seconds: at(0.99),
        max_seconds: seconds.last().copied(),
    }
}

/// The sweep's storage, on both databases.
#[async_trait]
pub trait RefreshStore: Send + Sync {
    /// Starts the sweep of the interval beginning at `slot`, unless one was
    /// started for it already (None): records it, counts the active set,
    /// splits it into shards of about `shard_size`, and records a shard row
    /// (with a fresh job id) for each shard whose previous run is over. The
    /// caller then enqueues those jobs; a shard row whose job never came is
    /// not running, so it holds nothing back.
    async fn begin_sweep(&self, slot: DateTime<Utc>, shard_size: u32) -> Result<Option<SweepStart>>;

    /// Up to `limit` active reservations with shard keys in `keys`, after
    /// `after` (`(shard_key, id)` of the last one of the previous page), in
    /// key order; only `tenant_id`'s when given.
    async fn shard_page(
        &self,
        tenant_id: Option<&str>,
        keys: (i32, i32),
        after: Option<(i32, Uuid)>,
        limit: u32,
    ) -> Result<Vec<ShardItem>>;

    /// Writes one page's findings in one transaction (see [`PageWrite`]).
    /// An update is applied only if the reservation still holds another
    /// hash: a second run of the same page writes nothing twice.
    ///
    /// Fenced like a job's commit: the page is written only while `attempt`
    /// still holds its job (running, at its generation, with a live lease),
    /// and the job row stays locked until the page commits. `None` when the
    /// attempt lost its job: nothing was written.
    async fn commit_page(&self, attempt: AttemptRef, page: &PageWrite) -> Result<Option<PageOutcome>>;

    /// Marks a shard started (its first attempt's start stays). A retry
    /// (`retry`) checks the whole shard again, so the counts of what was
    /// checked start over; what was changed or ended stays counted, since
    /// each of those was written once. Fenced on `attempt`, like
    /// [`RefreshStore::commit_page`]: false when it lost its job.
    async fn start_shard(&self, attempt: AttemptRef, sweep_id: Uuid, shard: u32, retry: bool) -> Result<bool>;

    /// Marks a shard finished, with the error that ended it, if any. A
    /// finished shard no longer holds back the next sweep's. Fenced on
    /// `attempt`: false when it lost its job.
    async fn finish_shard(&self, attempt: AttemptRef, sweep_id: Uuid, shard: u32, error: Option<&str>) -> Result<bool>;

    /// The latest `limit` sweeps, newest first.
    async fn sweeps(&self, limit: u32) -> Result<Vec<SweepReport>>;

    /// The latest `limit` sweeps, newest first, as `tenant_id`'s admin sees
    /// them (see [`TenantSweep`]).
    async fn tenant_sweeps(&self, tenant_id: &str, limit: u32) -> Result<Vec<TenantSweep>>;

    /// Deletes sweeps that started before `before`. Returns how many.
    async fn prune_sweeps(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// The content hash of what an agency says: its fields, with object keys
/// in a canonical order, so the same content always hashes the same however
/// its JSON was laid out.
pub fn content_hash(
    status: ReservationStatus,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    details: &Value,
) -> i64 {
    let mut hasher = Sha256::new();
    hasher.update(status.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(starts_at.timestamp_micros().to_le_bytes());
    hasher.update(ends_at.map_or(i64::MIN, |t| t.timestamp_micros()).to_le_bytes());
    canonical(details, &mut hasher);
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

fn canonical(value: &Value, hasher: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for key in keys {
                hasher.update(key.as_bytes());
                hasher.update([0]);
                if let Some(item) = map.get(key) {
                    canonical(item, hasher);
                }
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            items.iter().for_each(|item| canonical(item, hasher));
            hasher.update(b"]");
        }
        other => {
            hasher.update(other.to_string().as_bytes());
            hasher.update([0]);
        }
    }
}

/// A shard's staleness histogram, in milliseconds, as its row stores it.
pub(crate) struct StalenessHistogram(hdrhistogram::Histogram<u64>);

impl StalenessHistogram {
    pub(crate) fn new() -> Result<Self> {
        // Two significant digits: 1 % resolution, a few KB serialised.
        hdrhistogram::Histogram::new(2)
            .map(|mut histogram| {
                histogram.auto(true);
                StalenessHistogram(histogram)
            })
            .map_err(|err| StoreError::Corrupt(format!("staleness histogram: {err}")))
    }

    /// The histogram a row holds, or an empty one.
    pub(crate) fn decode(text: Option<&str>) -> Result<Self> {
        use base64::Engine as _;
        let Some(text) = text.filter(|t| !t.is_empty()) else { return Self::new() };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|err| StoreError::Corrupt(format!("staleness histogram: {err}")))?;
        let histogram: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|err| StoreError::Corrupt(format!("staleness histogram: {err:?}")))?;
        let mut histogram = histogram;
        histogram.auto(true);
        Ok(StalenessHistogram(histogram))
    }

    pub(crate) fn encode(&self) -> Result<String> {
        use base64::Engine as _;
        use hdrhistogram::serialization::Serializer as _;
        let mut bytes = Vec::new();
        hdrhistogram::serialization::V2Serializer::new()
            .serialize(&self.0, &mut bytes)
            .map_err(|err| StoreError::Corrupt(format!("staleness histogram: {err:?}")))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(crate) fn record(&mut self, staleness: chrono::Duration) {
        let millis = u64::try_from(staleness.num_milliseconds()).unwrap_or(0);
        // `auto` resizes; a value it still cannot take is dropped, not fatal.
        let _ = self.0.record(millis);
    }

    pub(crate) fn merge(&mut self, other: &StalenessHistogram) {
        let _ = self.0.add(&other.0);
    }

    pub(crate) fn summary(&self) -> Staleness {
        let count = self.0.len();
        let at = |q: f64| (count > 0).then(|| self.0.value_at_quantile(q) as f64 / 1000.0);
        Staleness {
            count,
            p50_seconds: at(0.5),
            p90_seconds: at(0.9),
            p99_seconds: at(0.99),
            max_seconds: (count > 0).then(|| self.0.max() as f64 / 1000.0),
        }
    }
}

/// The reservation's `details` with the agency's data put under `agency`.
fn with_agency_details(details: &Value, agency: &Value) -> Value {
    let mut details = match details {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    details.insert("agency".into(), agency.clone());
    Value::Object(details)
}

/// What a page's commit does with one agency answer.
pub(crate) enum Decision {
    /// The row already holds this answer's hash: another run wrote it.
    AlreadyApplied,
    /// Nothing to announce: keep the agency's ETag, hash and data
    /// (`details`) only. Either nothing differs, or this is the agency's
    /// first answer and all it adds is its own data under `details.agency`:
    /// what we knew, now with the agency's tags.
    Baseline { details: Value },
    /// A change: the new fields, what differs, and whether the owner's trips
    /// must be regrouped (its status or times moved).
    Change { fields: Box<super::ReservationFields>, diff: serde_json::Map<String, Value>, regroup: bool },
}

/// Compares an agency's answer with the reservation as held (`before`,
/// with the hash of the last answer written, if any).
pub(crate) fn decide(before: &super::Reservation, held_hash: Option<i64>, update: &AgencyUpdate) -> Decision {
    if held_hash == Some(update.hash) {
        return Decision::AlreadyApplied;
    }
    let old = before.fields();
    let mut new = old.clone();
    new.status = update.status;
    new.starts_at = update.starts_at;
    new.ends_at = update.ends_at;
    new.details = with_agency_details(&old.details, &update.details);
    let diff = new.changes_from(&old);
    if diff.is_empty() || (held_hash.is_none() && diff.keys().all(|field| field == "details")) {
        return Decision::Baseline { details: new.details };
    }
    let regroup = new.status != old.status || new.starts_at != old.starts_at || new.ends_at != old.ends_at;
    Decision::Change { fields: Box::new(new), diff, regroup }
}

/// A shard row's staleness histogram (`held`) with the staleness of a
/// page's changes added, serialised; None when the page measured none.
pub(crate) fn merged_staleness(
    held: Option<&str>,
    changed: &[(Uuid, Option<chrono::Duration>)],
) -> Result<Option<String>> {
    let measured: Vec<chrono::Duration> = changed.iter().filter_map(|(_, staleness)| *staleness).collect();
    if measured.is_empty() {
        return Ok(None);
    }
    let mut histogram = StalenessHistogram::decode(held)?;
    for staleness in measured {
        histogram.record(staleness);
    }
    histogram.encode().map(Some)
}

/// The `reservation.changed` event's payload.
#[allow(clippy::too_many_arguments)]
pub(crate) fn changed_event(
    id: Uuid,
    tenant_id: &str,
    user_id: &str,
    version: i64,
    changes: &Value,
    changed_at: Option<DateTime<Utc>>,
    detected_at: DateTime<Utc>,
) -> Value {
    serde_json::json!({
        "reservation_id": id, "tenant_id": tenant_id, "user_id": user_id, "version": version,
        "source": "agency", "changes": changes, "changed_at": changed_at, "detected_at": detected_at,
    })
}

/// Adds up a sweep's shard rows into its report.
pub(crate) struct SweepTotals {
    pub finished_shards: u32,
    pub checked: i64,
    pub changed: i64,
    pub not_modified: i64,
    pub not_found: i64,
    pub invalid: i64,
    pub failed: i64,
    pub no_agency: i64,
    pub ended: i64,
    pub last_finished: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub staleness: StalenessHistogram,
}

impl SweepTotals {
    pub(crate) fn new() -> Result<Self> {
        Ok(SweepTotals {
            finished_shards: 0,
            checked: 0,
            changed: 0,
            not_modified: 0,
            not_found: 0,
            invalid: 0,
            failed: 0,
            no_agency: 0,
            ended: 0,
            last_finished: None,
            error: None,
            staleness: StalenessHistogram::new()?,
        })
    }

    /// Adds one shard row: its counts (checked, changed, not modified, not
    /// found, invalid, failed, no agency, ended), when it finished, its
    /// error and its staleness histogram.
    pub(crate) fn add(
        &mut self,
        counts: [i64; 8],
        finished_at: Option<DateTime<Utc>>,
        error: Option<String>,
        staleness: Option<&str>,
    ) -> Result<()> {
        let [checked, changed, not_modified, not_found, invalid, failed, no_agency, ended] = counts;
        self.checked += checked;
        self.changed += changed;
        self.not_modified += not_modified;
        self.not_found += not_found;
        self.invalid += invalid;
        self.failed += failed;
        self.no_agency += no_agency;
        self.ended += ended;
        if let Some(at) = finished_at {
            self.finished_shards += 1;
            self.last_finished = self.last_finished.max(Some(at));
        }
        if error.is_some() {
            self.error = error;
        }
        if staleness.is_some() {
            self.staleness.merge(&StalenessHistogram::decode(staleness)?);
        }
        Ok(())
    }

    /// The report of a sweep with these totals; `planned` is its shards,
    /// enqueued and skipped.
    pub(crate) fn report(self, id: Uuid, started_at: DateTime<Utc>, active: i64, planned: [i32; 3]) -> SweepReport {
        let count = |n: i32| u32::try_from(n).unwrap_or(0);
        let [shards, enqueued, skipped] = planned.map(count);
        let finished = self.finished_shards >= enqueued;
        SweepReport {
            id,
            started_at,
            status: if finished { "finished" } else { "running" }.into(),
            active,
            shards,
            enqueued,
            skipped,
            finished_shards: self.finished_shards,
            checked: self.checked,
            changed: self.changed,
            not_modified: self.not_modified,
            not_found: self.not_found,
            invalid: self.invalid,
            failed: self.failed,
            no_agency: self.no_agency,
            ended: self.ended,
            duration_seconds: finished
                .then(|| self.last_finished.map(|end| (end - started_at).num_milliseconds() as f64 / 1000.0))
                .flatten(),
            staleness: self.staleness.summary(),
            error: self.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn shards_cover_the_key_space_without_gaps() {
        for shards in [1, 2, 3, 7, 100, 65_536] {
            let mut next = 0;
            for shard in 0..shards {
                let (lo, hi) = shard_keys(shard, shards);
                assert_eq!(lo, next, "shard {shard} of {shards}");
                assert!(hi > lo);
                next = hi;
            }
            assert_eq!(next, SHARD_KEYS as i32);
        }
        assert_eq!(shard_count(0, 10_000), 1);
        assert_eq!(shard_count(10_000, 10_000), 1);
        assert_eq!(shard_count(10_001, 10_000), 2);
        assert_eq!(shard_count(1_000_000_000, 1), SHARD_KEYS);
    }

    #[test]
    fn the_hash_ignores_key_order_and_sees_every_field() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let a: Value = serde_json::from_str(r#"{"gate":"A1","seat":{"row":12,"col":"C"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"seat":{"col":"C","row":12},"gate":"A1"}"#).unwrap();
        let base = content_hash(ReservationStatus::Confirmed, at, None, &a);
        assert_eq!(base, content_hash(ReservationStatus::Confirmed, at, None, &b));
        assert_ne!(base, content_hash(ReservationStatus::Cancelled, at, None, &a));
        assert_ne!(base, content_hash(ReservationStatus::Confirmed, at + chrono::Duration::minutes(1), None, &a));
        assert_ne!(base, content_hash(ReservationStatus::Confirmed, at, Some(at), &a));
        assert_ne!(base, content_hash(ReservationStatus::Confirmed, at, None, &serde_json::json!({"gate": "A2"})));
    }

    #[test]
    fn histograms_round_trip_and_merge() {
        let mut one = StalenessHistogram::new().unwrap();
        for seconds in 1..=100 {
            one.record(chrono::Duration::seconds(seconds));
        }
        let text = one.encode().unwrap();
        let mut two = StalenessHistogram::decode(Some(&text)).unwrap();
        two.merge(&StalenessHistogram::decode(Some(&text)).unwrap());
        let summary = two.summary();
        assert_eq!(summary.count, 200);
        let p50 = summary.p50_seconds.unwrap();
        assert!((49.0..=51.0).contains(&p50), "{p50}");
        let p99 = summary.p99_seconds.unwrap();
        assert!((98.0..=100.5).contains(&p99), "{p99}");
        assert_eq!(StalenessHistogram::decode(None).unwrap().summary(), Staleness::default());
    }
}
