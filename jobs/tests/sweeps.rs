//! The reservation sweep's storage, on both databases: sweeps start once
//! per slot, running shards hold back their next run, a page's change is
//! written once (history and event included), ended trips leave the
//! active set, and the sweep report adds its shards up.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use longhaul_jobs::{
    store::{AttemptRef, InsertOutcome},
    testing::{Backend, TestStore},
    travel::{
        refresh::{content_hash, AgencyUpdate, PageWrite, ShardTally, SweepStart},
        ChangeOrigin, ReservationFields, ReservationSource, ReservationStatus, ReservationType,
    },
    JobKind, NewJob, Scope,
};
use serde_json::json;
use uuid::Uuid;

longhaul_jobs::on_every_backend!(
    a_slot_starts_one_sweep,
    running_shards_are_skipped_until_they_finish,
    a_change_is_written_once_with_its_history_and_event,
    an_answer_like_ours_only_records_the_agency_tags,
    ended_trips_leave_the_active_set_and_new_dates_bring_them_back,
    the_report_adds_up_shards_and_staleness,
    pages_walk_a_shard_in_key_order,
    a_run_that_lost_its_job_writes_nothing,
);

async fn store(backend: Backend) -> TestStore {
    TestStore::new(backend).await.expect("a fresh test database (is PostgreSQL running?)")
}

fn slot(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, minute, 0).unwrap()
}

fn flight(number: &str, starts_at: DateTime<Utc>) -> ReservationFields {
    ReservationFields {
        kind: ReservationType::Flight,
        reservation_number: number.into(),
        provider: "SkyWays".into(),
        status: ReservationStatus::Confirmed,
        starts_at,
        ends_at: Some(starts_at + chrono::Duration::hours(3)),
        details: json!({"flight": "SW100"}),
        city: Some("Lisbon".into()),
        country: Some("PT".into()),
        origin: Some("MAD".into()),
        destination: Some("LIS".into()),
        start_zone: None,
        end_zone: None,
    }
}

/// Now, to the second: the precision agencies and both databases keep.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

async fn seed(store: &TestStore, user: &str, count: usize, starts_at: DateTime<Utc>) -> Vec<Uuid> {
    let fields: Vec<_> = (0..count).map(|i| flight(&format!("PNR{i:04}"), starts_at)).collect();
    store.insert_reservations("acme", user, ReservationSource::Email, &fields).await.expect("insert")
}

/// A running attempt to write under, as a shard's job is: every sweep write
/// is fenced on one.
async fn running(store: &TestStore) -> AttemptRef {
    running_for(store, Duration::from_secs(30), 3).await
}

async fn running_for(store: &TestStore, lease: Duration, max_attempts: i32) -> AttemptRef {
    let mut job = NewJob::new("_platform", "sweeper", JobKind::NOOP, json!({}));
    job.max_attempts = max_attempts;
    let InsertOutcome::Created(job) = store.insert_job(job).await.expect("insert") else { panic!("a new job") };
    let claimed = store.claim(job.kind.lane(), 1, lease, "test").await.expect("claim");
    assert_eq!(claimed.len(), 1);
    AttemptRef::of(&claimed[0])
}

/// Enqueues a started sweep's shards, as the scheduler does.
async fn enqueue(store: &TestStore, start: &SweepStart) {
    store.insert_jobs(&start.jobs()).await.expect("insert jobs");
}

async fn all_items(store: &TestStore) -> Vec<longhaul_jobs::travel::refresh::ShardItem> {
    store.shard_page(None, (0, 65_536), None, 10_000).await.expect("page")
}

async fn a_slot_starts_one_sweep(backend: Backend) {
    let store = store(backend).await;
    seed(&store, "ana", 3, Utc::now() + chrono::Duration::days(10)).await;
    let first = store.begin_sweep(slot(0), 10).await.expect("begin").expect("a new sweep");
    assert_eq!((first.active, first.shards, first.enqueue.len(), first.skipped), (3, 1, 1, 0));
    // A restarted planner, or a new leader, in the same slot.
    assert_eq!(store.begin_sweep(slot(0), 10).await.expect("begin"), None);
    if backend == Backend::Postgres {
        // Two leaders racing for one slot: exactly one starts it.
        let (a, b) = tokio::join!(store.begin_sweep(slot(5), 10), store.begin_sweep(slot(5), 10));
        let started = [a.expect("a"), b.expect("b")].into_iter().flatten().count();
        assert_eq!(started, 1);
    }
    assert_eq!(store.sweeps(10).await.expect("sweeps").len(), if backend == Backend::Postgres { 2 } else { 1 });
}

async fn running_shards_are_skipped_until_they_finish(backend: Backend) {
    let store = store(backend).await;
    seed(&store, "ana", 40, Utc::now() + chrono::Duration::days(10)).await;
    let first = store.begin_sweep(slot(0), 10).await.expect("begin").expect("sweep");
    assert_eq!((first.shards, first.enqueue.len()), (4, 4));
    enqueue(&store, &first).await;

    // Every shard's job is still queued: the next sweep starts none.
    let second = store.begin_sweep(slot(5), 10).await.expect("begin").expect("sweep");
    assert_eq!((second.enqueue.len(), second.skipped), (0, 4));

    // One shard finishes; another's job is cancelled (so it never will).
    let attempt = running(&store).await;
    assert!(store.finish_shard(attempt, first.sweep_id, first.enqueue[0].0, None).await.expect("finish"));
    let cancelled = first.enqueue[1].1;
    store.cancel_job(&Scope::Platform, cancelled).await.expect("cancel").expect("found");
    let third = store.begin_sweep(slot(10), 10).await.expect("begin").expect("sweep");
    let shards: Vec<u32> = third.enqueue.iter().map(|(shard, _)| *shard).collect();
    assert_eq!((shards, third.skipped), (vec![0, 1], 2));

    let reports = store.sweeps(10).await.expect("sweeps");
    assert_eq!(reports.len(), 3);
    let first_report = reports.iter().find(|r| r.id == first.sweep_id).expect("the first sweep");
    assert_eq!((first_report.enqueued, first_report.finished_shards), (4, 2));
    assert!(first_report.error.as_deref().unwrap_or_default().contains("cancelled"), "{:?}", first_report.error);
    assert_eq!(first_report.status, "running");
    assert_eq!(reports.iter().find(|r| r.id == second.sweep_id).map(|r| r.skipped), Some(4));
}

fn update(id: Uuid, starts_at: DateTime<Utc>, gate: &str, changed_at: DateTime<Utc>) -> AgencyUpdate {
    let ends_at = Some(starts_at + chrono::Duration::hours(3));
    let details = json!({"gate": gate});
    AgencyUpdate {
        id,
        etag: Some(format!("\"{gate}\"")),
        hash: content_hash(ReservationStatus::Confirmed, starts_at, ends_at, &details),
        status: ReservationStatus::Confirmed,
        starts_at,
        ends_at,
        details,
        changed_at: Some(changed_at),
        detected_at: changed_at + chrono::Duration::seconds(42),
    }
}

async fn a_change_is_written_once_with_its_history_and_event(backend: Backend) {
    let store = store(backend).await;
    let starts = now() + chrono::Duration::days(10);
    let ids = seed(&store, "ana", 1, starts).await;
    let start = store.begin_sweep(slot(0), 10).await.expect("begin").expect("sweep");
    let later = starts + chrono::Duration::minutes(45);
    let page = PageWrite {
        shard: Some((start.sweep_id, 0)),
        updates: vec![update(ids[0], later, "B7", Utc::now() - chrono::Duration::seconds(60))],
        past: vec![],
        tally: ShardTally { checked: 1, ..ShardTally::default() },
    };
    let attempt = running(&store).await;
    let outcome = store.commit_page(attempt, &page).await.expect("commit").expect("held");
    assert_eq!(outcome.changed.len(), 1);
    assert_eq!(outcome.changed[0].1, Some(chrono::Duration::seconds(42)));

    let scope = Scope::Platform;
    let reservation = store.get_reservation(&scope, ids[0]).await.expect("get").expect("found");
    assert_eq!(reservation.starts_at, later);
    assert_eq!(reservation.details["agency"], json!({"gate": "B7"}));
    assert_eq!(reservation.details["flight"], json!("SW100"), "the email's data stays");
    assert_eq!(reservation.version, 2);
    let checked = reservation.checked_at.expect("checked_at").timestamp_millis();
    assert_eq!(checked, page.updates[0].detected_at.timestamp_millis());
    let history = store.reservation_changes(&scope, ids[0]).await.expect("history").expect("found");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].source, ReservationSource::Agency);
    assert!(history[0].changes.get("starts_at").is_some(), "{}", history[0].changes);
    let item = &all_items(&store).await[0];
    assert_eq!(item.hash, Some(page.updates[0].hash));
    assert_eq!(item.etag.as_deref(), Some("\"B7\""));

    // The same page again (a retry of the shard): nothing new.
    assert!(store.start_shard(attempt, start.sweep_id, 0, true).await.expect("restart"));
    let again = store.commit_page(attempt, &page).await.expect("commit").expect("held");
    assert_eq!((again.changed.len(), again.already_applied), (0, 1));
    assert_eq!(store.reservation_changes(&scope, ids[0]).await.unwrap().unwrap().len(), 1);
    let events = store.claim_outbox(100, Duration::from_secs(30)).await.expect("outbox");
    let changed: Vec<_> = events.iter().filter(|e| e.event_type == "reservation.changed").collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].payload["reservation_id"], json!(ids[0]));
    assert_eq!(changed[0].payload["version"], json!(2));
    assert_eq!(changed[0].tenant_id, "acme");

    // A later edit by hand bumps the version again.
    let mut fields = reservation.fields();
    fields.city = Some("Porto".into());
    let edited = store.update_reservation(&scope, ids[0], fields, ChangeOrigin::MANUAL).await.expect("update");
    assert_eq!(edited.map(|r| r.version), Some(3));
    // The retry checked it again (counted once); the first run changed it.
    let report = &store.sweeps(1).await.expect("sweeps")[0];
    assert_eq!((report.checked, report.changed), (1, 1));
}

async fn an_answer_like_ours_only_records_the_agency_tags(backend: Backend) {
    let store = store(backend).await;
    let starts = now() + chrono::Duration::days(10);
    let ids = seed(&store, "ana", 1, starts).await;
    let scope = Scope::Platform;
    let before = store.get_reservation(&scope, ids[0]).await.unwrap().unwrap();
    // What the agency says is what we have, `details.agency` included.
    let mut first = update(ids[0], starts, "A1", Utc::now());
    first.details = json!({"gate": "A1"});
    let seeded = PageWrite { updates: vec![first.clone()], ..PageWrite::default() };
    // The agency's first answer only adds its own data: recorded, not a
    // change to announce.
    let attempt = running(&store).await;
    let outcome = store.commit_page(attempt, &seeded).await.expect("commit").expect("held");
    assert_eq!((outcome.changed.len(), outcome.baselined), (0, 1));
    let after = store.get_reservation(&scope, ids[0]).await.unwrap().unwrap();
    assert_eq!(after.details["agency"], json!({"gate": "A1"}));
    assert_eq!(after.details["flight"], before.details["flight"]);
    // The next sweep hears the same content under a new ETag.
    let mut same = first.clone();
    same.etag = Some("\"A1-again\"".into());
    same.hash = first.hash ^ 1; // a hash we do not hold, same fields
    let outcome =
        store.commit_page(attempt, &PageWrite { updates: vec![same], ..PageWrite::default() }).await.unwrap().unwrap();
    assert_eq!((outcome.changed.len(), outcome.baselined), (0, 1));
    let history = store.reservation_changes(&scope, ids[0]).await.unwrap().unwrap();
    assert!(history.is_empty(), "{history:?}");
    assert_eq!(all_items(&store).await[0].etag.as_deref(), Some("\"A1-again\""));
}

async fn ended_trips_leave_the_active_set_and_new_dates_bring_them_back(backend: Backend) {
    let store = store(backend).await;
    let past = seed(&store, "ana", 1, Utc::now() - chrono::Duration::days(30)).await[0];
    // A trip still going: a flight three days ago, a stay until next week.
    let gone = Utc::now() - chrono::Duration::days(3);
    let mut stay = flight("STAY1", gone + chrono::Duration::hours(5));
    stay.kind = ReservationType::Lodging;
    stay.ends_at = Some(Utc::now() + chrono::Duration::days(7));
    let trip = store
        .insert_reservations("acme", "bea", ReservationSource::Email, &[flight("OUT1", gone), stay])
        .await
        .expect("insert");
    let page = PageWrite { past: vec![past, trip[0]], ..PageWrite::default() };
    let outcome = store.commit_page(running(&store).await, &page).await.expect("commit").expect("held");
    assert_eq!(outcome.ended, 1, "only the reservation whose trip is over");
    let active: Vec<Uuid> = all_items(&store).await.iter().map(|item| item.id).collect();
    assert!(!active.contains(&past));
    assert!(active.contains(&trip[0]) && active.contains(&trip[1]));

    // Its owner moves it into the future: it is active again.
    let scope = Scope::Platform;
    let mut fields = store.get_reservation(&scope, past).await.unwrap().unwrap().fields();
    fields.starts_at = Utc::now() + chrono::Duration::days(5);
    fields.ends_at = Some(fields.starts_at + chrono::Duration::hours(2));
    store.update_reservation(&scope, past, fields, ChangeOrigin::MANUAL).await.expect("update");
    assert!(all_items(&store).await.iter().any(|item| item.id == past));
}

async fn the_report_adds_up_shards_and_staleness(backend: Backend) {
    let store = store(backend).await;
    let starts = now() + chrono::Duration::days(10);
    let ids = seed(&store, "ana", 20, starts).await;
    let start = store.begin_sweep(slot(0), 10).await.expect("begin").expect("sweep");
    assert_eq!(start.shards, 2);
    let now = Utc::now();
    let attempt = running(&store).await;
    for (shard, chunk) in ids.chunks(10).enumerate() {
        let updates = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut u = update(*id, starts + chrono::Duration::minutes(30), "C3", now);
                u.detected_at = now + chrono::Duration::seconds(10 * (shard as i64 * 10 + i as i64 + 1));
                u
            })
            .collect();
        let tally = ShardTally { checked: 12, not_modified: 2, ..ShardTally::default() };
        let page = PageWrite { shard: Some((start.sweep_id, shard as u32)), updates, past: vec![], tally };
        store.commit_page(attempt, &page).await.expect("commit").expect("held");
        assert!(store.finish_shard(attempt, start.sweep_id, shard as u32, None).await.expect("finish"));
    }
    let report = &store.sweeps(5).await.expect("sweeps")[0];
    assert_eq!(report.status, "finished");
    assert_eq!((report.checked, report.changed, report.not_modified), (24, 20, 4));
    assert!(report.duration_seconds.is_some());
    // Staleness 10 s, 20 s, … 200 s.
    let staleness = report.staleness;
    assert_eq!(staleness.count, 20);
    let p50 = staleness.p50_seconds.unwrap();
    assert!((99.0..=101.0).contains(&p50), "{staleness:?}");
    let max = staleness.max_seconds.unwrap();
    assert!((199.0..=201.0).contains(&max), "{staleness:?}");
    assert_eq!(store.prune_sweeps(Utc::now() + chrono::Duration::seconds(1)).await.expect("prune"), 1);
    assert!(store.sweeps(5).await.expect("sweeps").is_empty());
}

async fn pages_walk_a_shard_in_key_order(backend: Backend) {
    let store = store(backend).await;
    let ids = seed(&store, "ana", 25, Utc::now() + chrono::Duration::days(1)).await;
    // Another tenant's reservation: in the platform's pages, not acme's.
    store
        .insert_reservations("other", "oli", ReservationSource::Manual, &[flight("X1", Utc::now())])
        .await
        .expect("insert");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.shard_page(Some("acme"), (0, 65_536), after, 7).await.expect("page");
        let Some(last) = page.last() else { break };
        after = Some((last.shard_key, last.id));
        seen.extend(page.iter().map(|item| (item.shard_key, item.id)));
    }
    assert_eq!(seen.len(), 25);
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "in key order, no repeats");
    let mut expected = ids.clone();
    expected.sort();
    let mut got: Vec<Uuid> = seen.iter().map(|(_, id)| *id).collect();
    got.sort();
    assert_eq!(got, expected);
    // Two halves of the key space split the same set.
    let low = store.shard_page(None, (0, 32_768), None, 100).await.unwrap();
    let high = store.shard_page(None, (32_768, 65_536), None, 100).await.unwrap();
    assert_eq!(low.len() + high.len(), 26);
    assert!(low.iter().all(|item| item.shard_key < 32_768) && high.iter().all(|item| item.shard_key >= 32_768));
}

/// A shard run cut off from its job (its lease ran out and another worker
/// took the job, or an admin retried it) writes nothing: not a page, not
/// the shard's start or finish. Its writes are fenced on its generation,
/// which only ever grows, so even a retried job back at the same attempt
/// count does not let it through.
async fn a_run_that_lost_its_job_writes_nothing(backend: Backend) {
    let store = store(backend).await;
    let starts = now() + chrono::Duration::days(10);
    let ids = seed(&store, "ana", 1, starts).await;
    let start = store.begin_sweep(slot(0), 10).await.expect("begin").expect("sweep");
    // The stale run's worker is cut off from the database: its lease runs
    // out and the job, on its last attempt, goes dead. An admin retries it,
    // and it starts again at attempt 1, as the stale run was.
    let stale = running_for(&store, Duration::from_millis(200), 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.reap_expired().await.expect("reap").dead, 1);
    let scope = Scope::Platform;
    store.retry_job(&scope, stale.id).await.expect("retry").expect("retried");
    let claimed = store.claim(JobKind::NOOP.lane(), 1, Duration::from_secs(30), "other").await.expect("claim");
    assert_eq!((claimed.len(), claimed[0].attempts), (1, 1));
    let current = AttemptRef::of(&claimed[0]);
    assert!(current.generation > stale.generation, "{current:?} after {stale:?}");

    let page = PageWrite {
        shard: Some((start.sweep_id, 0)),
        updates: vec![update(ids[0], starts + chrono::Duration::hours(1), "D4", Utc::now())],
        past: vec![],
        tally: ShardTally { checked: 1, ..ShardTally::default() },
    };
    assert!(!store.start_shard(stale, start.sweep_id, 0, false).await.expect("start"));
    assert_eq!(store.commit_page(stale, &page).await.expect("commit"), None);
    assert!(!store.finish_shard(stale, start.sweep_id, 0, Some("late")).await.expect("finish"));
    assert!(!store.set_progress(stale, 50).await.expect("progress"));
    let reservation = store.get_reservation(&scope, ids[0]).await.expect("get").expect("found");
    assert_eq!((reservation.version, reservation.starts_at), (1, starts), "the stale page wrote nothing");
    let report = &store.sweeps(1).await.expect("sweeps")[0];
    assert_eq!((report.checked, report.finished_shards), (0, 0));

    // The current run writes.
    let outcome = store.commit_page(current, &page).await.expect("commit").expect("held");
    assert_eq!(outcome.changed.len(), 1);
    assert!(store.finish_shard(current, start.sweep_id, 0, None).await.expect("finish"));
}
