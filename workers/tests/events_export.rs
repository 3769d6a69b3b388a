//! `events_export` through the real runtime: raw events of a closed hour go
//! to the data lake as Parquet, read back here with pyarrow (the test
//! command installs it, `LONGHAUL_TEST_PYTHON`), as a warehouse would read
//! them. On both databases, on a local object directory and on S3 (moto).

use std::{path::PathBuf, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use longhaul_jobs::{
    events::{admit, hour_of, Catalogue, EventBatch, EventIn},
    kind::{EventsExport as ExportKind, EventsExportPayload},
    objects::ObjectKey,
    store::InsertOutcome,
    testing::{Backend, ObjectBackend, TestObjectStore, TestStore},
    travel::mail::{Envelope, LocalKeys},
    Job, Lane, NewJob, Scope, Status,
};
use longhaul_workers::{
    kinds::{EventsErase, EventsExport, ExportSettings},
    lake::Pseudonymiser,
    runtime::Services,
    Registry, Runtime, WorkerConfig,
};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

longhaul_jobs::on_every_backend!(
    the_scheduler_exports_a_closed_hour_with_every_event_once_and_no_personal_data_in_clear,
    re_running_an_hour_replaces_its_files_and_duplicates_no_row,
    raw_events_leave_the_database_once_exported_and_older_than_the_window,
    a_deletion_request_takes_the_users_rows_out_of_the_lake_and_the_database,
    retention_removes_what_is_older_than_the_tenants_window_and_nothing_younger,
    a_funnel_report_reads_the_lake_and_matches_a_hand_count,
    an_erasure_records_what_the_files_hold_even_after_an_earlier_attempt_failed,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_the_bucket_holds_no_personal_data_in_clear() {
    let setup = Setup::new(Backend::Postgres, ObjectBackend::S3, false).await;
    let hour = hour_of(Utc::now()) - chrono::Duration::hours(3);
    ingest(&setup.store, "acme", hour, 40).await;
    let job = setup.export("acme", hour).await;
    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    let lake = setup.read_partition("acme", hour).await;
    assert_eq!(lake["rows"].as_array().map(Vec::len), Some(40));
    // Every object in the bucket, byte by byte.
    let bucket = setup.objects.bucket.clone().expect("an S3 bucket");
    let client = aws_sdk_s3::Client::new(&longhaul_jobs::testing::aws_sdk_config().await);
    let listed = client.list_objects_v2().bucket(&bucket).send().await.expect("list the bucket");
    let keys: Vec<String> = listed.contents().iter().filter_map(|object| object.key().map(str::to_owned)).collect();
    assert!(keys.iter().any(|key| key.ends_with("/_manifest.json")), "{keys:?}");
    assert!(keys.iter().any(|key| key.contains("lake/events/tenant=acme/date=")), "{keys:?}");
    for key in keys {
        let object = client.get_object().bucket(&bucket).key(&key).send().await.expect("get");
        let bytes = object.body.collect().await.expect("the body").into_bytes();
        for secret in secrets_of("acme") {
            assert!(!contains(&bytes, secret.as_bytes()), "`{secret}` is in s3://{bucket}/{key} in clear");
        }
    }
    assert_no_secrets_in(&lake, "acme");
}

struct Setup {
    store: TestStore,
    objects: TestObjectStore,
    secrets: Envelope,
    runtime: Option<Runtime>,
}

impl Setup {
    async fn new(backend: Backend, objects: ObjectBackend, scheduler: bool) -> Setup {
        Setup::with(backend, objects, scheduler, ExportSettings::default()).await
    }

    async fn with(backend: Backend, objects: ObjectBackend, scheduler: bool, settings: ExportSettings) -> Setup {
        let store = TestStore::new(backend).await.expect("a store");
        let objects = TestObjectStore::new(objects).await.expect("an object store");
        let keys = LocalKeys::parse(&LocalKeys::generate("test")).expect("keys");
        let secrets = Envelope::new(Arc::new(keys));
        let mut setup = Setup { store, objects, secrets, runtime: None };
        setup.start(scheduler, settings);
        setup
    }

    fn start(&mut self, scheduler: bool, settings: ExportSettings) {
        let services = Services::embedded(self.store.store.clone()).with_objects(self.objects.store.clone());
        let mut registry = Registry::with_defaults();
        registry.register(EventsExport::new(ExportSettings { secrets: Some(self.secrets.clone()), ..settings }));
        registry.register(EventsErase::new(Some(self.secrets.clone())).with_delay(Duration::ZERO));
        let config = WorkerConfig {
            lanes: vec![(Lane::Data, 2), (Lane::Reports, 1)],
            poll_interval: Duration::from_millis(50),
            reap_interval: Duration::from_millis(200),
            scheduler,
            ..WorkerConfig::default()
        };
        self.runtime = Some(Runtime::start_with(services, registry, config));
    }

    async fn restart(&mut self, settings: ExportSettings) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown().await;
        }
        self.start(false, settings);
    }

    /// Submits an export of `hour` as an admin would, and waits for its end.
    async fn export(&self, tenant: &str, hour: DateTime<Utc>) -> Job {
        self.run(NewJob::of::<ExportKind>(tenant, "an-admin", &EventsExportPayload { hour }).expect("a job")).await
    }

    /// Submits `job` now, and waits for its end.
    async fn run(&self, job: NewJob) -> Job {
        let InsertOutcome::Created(job) = self.store.insert_job(job).await.expect("insert") else {
            panic!("not created")
        };
        self.store.wait_for_end(job.id, Duration::from_secs(60)).await
    }

    /// The partition's files, fetched through the object store and read
    /// back with pyarrow: `{manifest, files: [{rows, row_groups,
    /// compression}], schema: {column: type}, rows: [{column: value}]}`.
    async fn read_partition(&self, tenant: &str, hour: DateTime<Utc>) -> Value {
        let partition = longhaul_workers::lake::partition_path(hour);
        let key = |name: &str| ObjectKey::lake("events", tenant, &format!("{partition}/{name}")).expect("a key");
        let manifest: Value = serde_json::from_slice(&self.fetch(&key("_manifest.json")).await).expect("JSON");
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut paths: Vec<PathBuf> = Vec::new();
        for file in manifest["files"].as_array().expect("files") {
            let name = file["name"].as_str().expect("a name");
            let path = dir.path().join(name);
            std::fs::write(&path, self.fetch(&key(name)).await).expect("write");
            paths.push(path);
        }
        let mut read = read_parquet(&paths);
        read["manifest"] = manifest;
        read
    }

    async fn fetch(&self, key: &ObjectKey) -> Vec<u8> {
        let mut reader = self.objects.get(key).await.expect("get").unwrap_or_else(|| panic!("no {key}"));
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await.expect("read");
        bytes
    }

    async fn has(&self, key: &ObjectKey) -> bool {
        self.objects.get(key).await.expect("get").is_some()
    }
}

/// The personal data the events of `tenant` carry, which must never reach
/// the lake in clear.
fn secrets_of(tenant: &str) -> Vec<String> {
    vec![
        format!("traveler-0@{tenant}.example"),
        format!("P{tenant}0001"),
        format!("+351{tenant}"),
        format!("{tenant}-user-0"),
        "198.51.100.7".to_owned(),
    ]
}

/// `count` events of `tenant`, received in `hour`, from three users: a
/// funnel of searches, bookings started and confirmed, with personal data.
async fn ingest(store: &TestStore, tenant: &str, hour: DateTime<Utc>, count: usize) -> Vec<uuid::Uuid> {
    let received_at = hour + chrono::Duration::minutes(30);
    let mut ids = Vec::new();
    for user in 0..3 {
        let events: Vec<EventIn> = (0..count)
            .filter(|n| n % 3 == user)
            .map(|n| {
                let body = match n % 4 {
                    0 => json!({"name": "search", "properties": {"query": format!("q{n}"), "results": n}}),
                    1 => {
                        json!({"name": "booking_started", "properties": {"booking_id": format!("b{n}"), "value": 10.5}})
                    }
                    2 => json!({"name": "booking_confirmed", "properties": {
                        "booking_id": format!("b{n}"), "email": format!("traveler-{user}@{tenant}.example"),
                        "passport_number": format!("P{tenant}000{}", user + 1), "phone": format!("+351{tenant}"),
                    }}),
                    _ => json!({"name": "cart_item_added", "properties": {"item_id": "seat", "quantity": 2,
                        "ip_address": "198.51.100.7"}}),
                };
                let mut event = body;
                event["occurred_at"] = json!(received_at - chrono::Duration::seconds(n as i64));
                event["device"] = json!({"platform": if user == 0 { "ios" } else { "android" }});
                serde_json::from_value(event).expect("an event")
            })
            .collect();
        let admitted = admit(&Catalogue::default_catalogue(), events, received_at).expect("admitted");
        ids.extend(admitted.iter().map(|event| event.id));
        let batch = EventBatch {
            tenant_id: tenant.into(),
            user_id: format!("{tenant}-user-{user}"),
            idempotency_key: None,
            request_hash: String::new(),
            received_at,
            events: admitted,
        };
        store.store_events(batch).await.expect("stored");
    }
    ids
}

fn read_parquet(paths: &[PathBuf]) -> Value {
    const SCRIPT: &str = r#"
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
files, tables = [], []
for path in sys.argv[1:]:
    f = pq.ParquetFile(path)
    t = f.read()
    tables.append(t)
    meta = f.metadata
    files.append({"rows": t.num_rows, "row_groups": meta.num_row_groups,
                  "compression": meta.row_group(0).column(0).compression if meta.num_row_groups else None})
table = pa.concat_tables(tables) if tables else None
print(json.dumps({
    "files": files,
    "schema": {f.name: str(f.type) for f in table.schema} if table is not None else {},
    "rows": table.to_pylist() if table is not None else [],
}, default=str))
"#;
    let python = std::env::var("LONGHAUL_TEST_PYTHON").expect(
        "LONGHAUL_TEST_PYTHON names a python with pyarrow (scripts/test.sh installs one); the lake is read back with it",
    );
    let output = std::process::Command::new(python).arg("-c").arg(SCRIPT).args(paths).output().expect("run python");
    assert!(output.status.success(), "pyarrow failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON from the reader")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn assert_no_secrets_in(lake: &Value, tenant: &str) {
    let text = lake.to_string();
    for secret in secrets_of(tenant) {
        assert!(!text.contains(&secret), "`{secret}` reached the lake in clear");
    }
}

async fn the_scheduler_exports_a_closed_hour_with_every_event_once_and_no_personal_data_in_clear(backend: Backend) {
    let setup = Setup::new(backend, ObjectBackend::File, false).await;
    let hour = hour_of(Utc::now()) - chrono::Duration::hours(2);
    let ids = ingest(&setup.store, "acme", hour, 60).await;
    ingest(&setup.store, "globex", hour, 9).await;
    // The current hour is not closed: nothing of it is planned.
    ingest(&setup.store, "acme", hour_of(Utc::now()), 5).await;
    let mut setup = setup;
    setup.restart_with_scheduler().await;

    let exports = wait_for_exports(&setup.store, 2).await;
    for job in &exports {
        assert_eq!(job.status, Status::Succeeded, "{job:?}");
        assert_eq!(job.payload, json!({"hour": hour}));
    }
    let mut tenants: Vec<&str> = exports.iter().map(|job| job.tenant_id.as_str()).collect();
    tenants.sort_unstable();
    assert_eq!(tenants, ["acme", "globex"]);

    let lake = setup.read_partition("acme", hour).await;
    let rows = lake["rows"].as_array().expect("rows");
    let mut exported: Vec<String> = rows.iter().map(|row| row["event_id"].as_str().expect("id").to_owned()).collect();
    exported.sort();
    let mut expected: Vec<String> = ids.iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(exported, expected, "every event of the hour once, and nothing else");
    assert_eq!(lake["manifest"]["events"], 60);
    assert_eq!(lake["files"][0]["compression"], "SNAPPY");

    // Typed columns.
    let schema = &lake["schema"];
    assert_eq!(schema["occurred_at"], "timestamp[us, tz=UTC]");
    assert_eq!(schema["results"], "int64");
    assert_eq!(schema["value"], "double");
    assert_eq!(schema["quantity"], "int64");
    assert_eq!(schema["email"], "string");
    assert!(schema.get("passport_number").is_none(), "a dropped property has no column: {schema}");

    // Personal data: pseudonymised under the tenant's key, the same person
    // the same pseudonym, and never in clear.
    assert_no_secrets_in(&lake, "acme");
    let sealed = setup.store.lake_key("acme").await.expect("read").expect("the tenant has a key");
    let key = setup.secrets.open(&sealed, b"lake-key:acme").await.expect("the key opens");
    let pseudonyms = Pseudonymiser::new(&key);
    let user0 = pseudonyms.pseudonym("acme-user-0");
    let of_user0: Vec<&Value> = rows.iter().filter(|row| row["user_id"] == user0.as_str()).collect();
    assert_eq!(of_user0.len(), 20, "user 0 sent every third event");
    let email = pseudonyms.pseudonym("traveler-0@acme.example");
    assert!(of_user0.iter().any(|row| row["email"] == email.as_str()), "the email joins on its pseudonym");
    let ip = pseudonyms.pseudonym("198.51.100.7");
    assert!(rows.iter().any(|row| row["extra"].as_str().is_some_and(|extra| extra.contains(&ip))));
    assert!(of_user0.iter().all(|row| row["device_platform"] == "ios"));

    // Another tenant's lake is its own, under its own key.
    let globex = setup.read_partition("globex", hour).await;
    assert_eq!(globex["rows"].as_array().map(Vec::len), Some(9));
    assert_no_secrets_in(&globex, "globex");
    assert!(!globex.to_string().contains(&user0));
}

impl Setup {
    async fn restart_with_scheduler(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown().await;
        }
        self.start(true, ExportSettings::default());
    }
}

/// Waits until `count` export jobs exist and all have ended.
async fn wait_for_exports(store: &TestStore, count: usize) -> Vec<Job> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let filter = longhaul_jobs::store::JobFilter {
            kind: Some(longhaul_jobs::JobKind::EVENTS_EXPORT),
            limit: 100,
            ..Default::default()
        };
        let jobs = store.list_jobs(&Scope::Platform, &filter).await.expect("list");
        if jobs.len() >= count && jobs.iter().all(|job| job.status.is_final()) {
            return jobs;
        }
        assert!(tokio::time::Instant::now() < deadline, "the exports never ended: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn re_running_an_hour_replaces_its_files_and_duplicates_no_row(backend: Backend) {
    let small_parts = ExportSettings { rows_per_file: 20, page_rows: 7, ..ExportSettings::default() };
    let mut setup = Setup::with(backend, ObjectBackend::File, false, small_parts).await;
    let hour = hour_of(Utc::now()) - chrono::Duration::hours(5);
    ingest(&setup.store, "acme", hour, 50).await;
    let first = setup.export("acme", hour).await;
    assert_eq!(first.status, Status::Succeeded, "{first:?}");
    let before = setup.read_partition("acme", hour).await;
    assert_eq!(before["files"].as_array().map(Vec::len), Some(3), "50 rows in parts of at most 21");

    // Again, with one part for everything: the same rows, and the parts it
    // no longer needs are gone.
    setup.restart(ExportSettings::default()).await;
    let second = setup.export("acme", hour).await;
    assert_eq!(second.status, Status::Succeeded, "{second:?}");
    let after = setup.read_partition("acme", hour).await;
    assert_eq!(after["files"].as_array().map(Vec::len), Some(1));
    let ids = |lake: &Value| {
        let mut ids: Vec<String> =
            lake["rows"].as_array().expect("rows").iter().map(|row| row["event_id"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&before), ids(&after));
    assert_eq!(ids(&after).len(), 50);
    let partition = longhaul_workers::lake::partition_path(hour);
    for stale in ["part-1.parquet", "part-2.parquet"] {
        let key = ObjectKey::lake("events", "acme", &format!("{partition}/{stale}")).expect("key");
        assert!(!setup.has(&key).await, "{stale} was left behind");
    }
    assert_eq!(second.result.as_ref().map(|r| r["events"].clone()), Some(json!(50)));
}

async fn raw_events_leave_the_database_once_exported_and_older_than_the_window(backend: Backend) {
    let window = ExportSettings { raw_retention: Duration::from_secs(4 * 3600), ..ExportSettings::default() };
    let setup = Setup::with(backend, ObjectBackend::File, false, window).await;
    let old = hour_of(Utc::now()) - chrono::Duration::hours(6);
    let recent = hour_of(Utc::now()) - chrono::Duration::hours(2);
    let unexported = hour_of(Utc::now()) - chrono::Duration::hours(8);
    ingest(&setup.store, "acme", old, 12).await;
    ingest(&setup.store, "acme", recent, 12).await;
    ingest(&setup.store, "acme", unexported, 12).await;
    let deleted = |job: &Job| job.result.as_ref().map(|result| result["raw_events_deleted"].clone());
    let first = setup.export("acme", old).await;
    assert_eq!(first.status, Status::Succeeded);
    assert_eq!(deleted(&first), Some(json!(12)), "its own hour, once in the lake: {first:?}");
    let second = setup.export("acme", recent).await;
    assert_eq!(second.status, Status::Succeeded);
    assert_eq!(deleted(&second), Some(json!(0)), "{second:?}");
    let left = |hour| setup.store.events_page("acme", hour, None, 100);
    assert_eq!(left(old).await.expect("page").len(), 0, "exported and older than the window");
    assert_eq!(left(recent).await.expect("page").len(), 12, "exported, but within the window");
    assert_eq!(left(unexported).await.expect("page").len(), 12, "older than the window, but not in the lake yet");
    // The lake still holds the old hour.
    assert_eq!(setup.read_partition("acme", old).await["rows"].as_array().map(Vec::len), Some(12));
    assert_eq!(setup.store.unexported_tenants(unexported).await.expect("read"), ["acme"]);
    assert!(setup.store.unexported_tenants(old).await.expect("read").is_empty());
}

async fn a_deletion_request_takes_the_users_rows_out_of_the_lake_and_the_database(backend: Backend) {
    let settings = ExportSettings { rows_per_file: 25, page_rows: 10, ..ExportSettings::default() };
    let setup = Setup::with(backend, ObjectBackend::File, false, settings).await;
    let hours = [hour_of(Utc::now()) - chrono::Duration::hours(3), hour_of(Utc::now()) - chrono::Duration::hours(2)];
    for hour in hours {
        ingest(&setup.store, "acme", hour, 60).await;
        assert_eq!(setup.export("acme", hour).await.status, Status::Succeeded);
    }
    ingest(&setup.store, "globex", hours[0], 6).await;
    assert_eq!(setup.export("globex", hours[0]).await.status, Status::Succeeded);
    // Later events of the user, not in the lake yet.
    ingest(&setup.store, "acme", hour_of(Utc::now()), 6).await;

    let request = setup.store.request_event_deletion("acme", "acme-user-1", "acme-user-1").await.expect("request");
    assert_eq!(request.raw_deleted, 60 / 3 * 2 + 2, "every raw event of theirs, exported or not");
    let job = setup.run(erase_job(request.id)).await;
    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    let result = job.result.expect("a result");
    assert_eq!((result["requests"].clone(), result["rows_removed"].clone()), (json!(1), json!(40)), "{result}");
    assert!(setup.store.pending_event_deletions("acme").await.expect("read").is_empty());

    let sealed = setup.store.lake_key("acme").await.expect("read").expect("a key");
    let pseudonyms = Pseudonymiser::new(&setup.secrets.open(&sealed, b"lake-key:acme").await.expect("the key"));
    let gone = pseudonyms.pseudonym("acme-user-1");
    for hour in hours {
        let lake = setup.read_partition("acme", hour).await;
        let rows = lake["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 40, "the other two users' rows stay");
        assert!(rows.iter().all(|row| row["user_id"] != gone.as_str()), "the user's rows are gone");
        assert_eq!(lake["manifest"]["events"], 40);
        let listed: u64 =
            lake["manifest"]["files"].as_array().expect("files").iter().filter_map(|f| f["rows"].as_u64()).sum();
        assert_eq!(listed, 40, "the manifest counts what the files hold: {}", lake["manifest"]);
        assert_eq!(setup.store.lake_partition("acme", hour).await.expect("read").expect("recorded").events, 40);
    }
    let left = setup.store.events_page("acme", hour_of(Utc::now()), None, 100).await.expect("page");
    assert!(left.iter().all(|event| event.user_id != "acme-user-1"));
    assert_eq!(left.len(), 4);
    // Another tenant's lake is untouched.
    assert_eq!(setup.read_partition("globex", hours[0]).await["rows"].as_array().map(Vec::len), Some(6));
}

async fn retention_removes_what_is_older_than_the_tenants_window_and_nothing_younger(backend: Backend) {
    let setup = Setup::new(backend, ObjectBackend::File, false).await;
    let mut catalogue = Catalogue::default_catalogue();
    catalogue.retention_days = 1;
    setup.store.put_event_catalogue("acme", &catalogue, "an-admin").await.expect("put");
    let old = hour_of(Utc::now()) - chrono::Duration::hours(30);
    let young = hour_of(Utc::now()) - chrono::Duration::hours(20);
    for hour in [old, young] {
        ingest(&setup.store, "acme", hour, 9).await;
        assert_eq!(setup.export("acme", hour).await.status, Status::Succeeded);
        // globex keeps the default two years.
        ingest(&setup.store, "globex", hour, 3).await;
        assert_eq!(setup.export("globex", hour).await.status, Status::Succeeded);
    }
    let stale = hour_of(Utc::now()) - chrono::Duration::hours(40);
    ingest(&setup.store, "acme", stale, 6).await; // never exported

    let retention = NewJob::of::<longhaul_jobs::kind::EventsRetention>(
        "acme",
        longhaul_jobs::model::SCHEDULER_USER,
        &longhaul_jobs::kind::EventsRetentionPayload {},
    )
    .expect("a job");
    let job = setup.run(retention).await;
    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    let result = job.result.expect("a result");
    assert_eq!(result["partitions"], 1, "{result}");
    assert_eq!(result["lake_events"], 9, "{result}");
    assert_eq!(result["raw_events"], 9 + 6, "the old hour's raw rows and the never exported ones: {result}");

    let partition = longhaul_workers::lake::partition_path(old);
    for name in ["part-0.parquet", "_manifest.json"] {
        let key = ObjectKey::lake("events", "acme", &format!("{partition}/{name}")).expect("key");
        assert!(!setup.has(&key).await, "{name} of the expired hour is still there");
    }
    assert!(setup.store.lake_partition("acme", old).await.expect("read").is_none());
    assert_eq!(setup.read_partition("acme", young).await["rows"].as_array().map(Vec::len), Some(9));
    assert_eq!(setup.store.events_page("acme", young, None, 100).await.expect("page").len(), 9);
    assert_eq!(setup.read_partition("globex", old).await["rows"].as_array().map(Vec::len), Some(3));

    let audit = setup.store.audit_log(&Scope::Tenant { tenant_id: "acme".into() }, None, 10).await.expect("audit");
    assert_eq!(audit[0].action, "events.retention");
    assert_eq!(audit[0].detail["partitions"], 1);
}

/// Stores `events` (name, minutes after `hour`) of one user on one platform,
/// received late in `hour`.
async fn store_as(store: &TestStore, user: &str, platform: &str, hour: DateTime<Utc>, events: &[(&str, i64)]) {
    let received_at = hour + chrono::Duration::minutes(59);
    let events: Vec<EventIn> = events
        .iter()
        .map(|(name, minutes)| {
            serde_json::from_value(json!({
                "name": name,
                "occurred_at": hour + chrono::Duration::minutes(*minutes),
                "device": {"platform": platform},
            }))
            .expect("an event")
        })
        .collect();
    let batch = EventBatch {
        tenant_id: "acme".into(),
        user_id: user.into(),
        idempotency_key: None,
        request_hash: String::new(),
        received_at,
        events: admit(&Catalogue::default_catalogue(), events, received_at).expect("admitted"),
    };
    store.store_events(batch).await.expect("stored");
}

/// The same people as the unit test's hand-worked funnel, through the lake:
/// search → booking_started → payment, within an hour of the search.
/// - ana (ios): all three, in order: 3 steps.
/// - bo (ios): search, paid, then started: 2 (payment must follow).
/// - cy (android): searched 100 minutes before starting (a phone offline,
///   its events arriving together): 1.
/// - di (android): started and paid, never searched: not in the funnel.
/// - ed (android): search, then started: 2.
async fn a_funnel_report_reads_the_lake_and_matches_a_hand_count(backend: Backend) {
    let setup = Setup::new(backend, ObjectBackend::File, false).await;
    let hour = hour_of(Utc::now()) - chrono::Duration::hours(3);
    store_as(&setup.store, "ana", "ios", hour, &[("search", 1), ("booking_started", 5), ("payment", 9)]).await;
    store_as(&setup.store, "bo", "ios", hour, &[("search", 1), ("payment", 2), ("booking_started", 3)]).await;
    store_as(&setup.store, "cy", "android", hour, &[("search", -100), ("booking_started", 10)]).await;
    store_as(&setup.store, "di", "android", hour, &[("booking_started", 10), ("payment", 20)]).await;
    store_as(&setup.store, "ed", "android", hour, &[("search", 20), ("booking_started", 30), ("cart_item_added", 35)])
        .await;
    assert_eq!(setup.export("acme", hour).await.status, Status::Succeeded);

    let payload = json!({
        "report": "funnel", "steps": ["search", "booking_started", "payment"],
        "from": hour - chrono::Duration::hours(3), "to": hour + chrono::Duration::hours(1), "window_hours": 1,
        "locale": "pt-BR",
    });
    let job = setup.run(NewJob::new("acme", "an-admin", longhaul_jobs::JobKind::REPORT_BUILD, payload)).await;
    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    let result = job.result.clone().expect("a result");
    assert_eq!(result["users"], json!([4, 3, 1]), "{result}");
    assert_eq!(result["partitions_read"], 1);

    let artifacts = setup.store.job_artifacts(&[job.id]).await.expect("artifacts");
    let file = |suffix: &str| {
        let artifact = artifacts.iter().find(|a| a.name.ends_with(suffix)).unwrap_or_else(|| panic!("no {suffix}"));
        let path = artifact.object_key.strip_prefix("tenants/acme/").expect("the tenant's").to_owned();
        ObjectKey::new("acme", &path).expect("a key")
    };
    let document: Value = serde_json::from_slice(&setup.fetch(&file(".json")).await).expect("JSON");
    let funnel = &document["funnel"];
    let users =
        |figures: &Value| figures.as_array().expect("steps").iter().map(|s| s["users"].clone()).collect::<Vec<_>>();
    assert_eq!(users(&funnel["overall"]), [json!(4), json!(3), json!(1)]);
    assert_eq!(users(&funnel["platforms"]["ios"]), [json!(2), json!(2), json!(1)]);
    assert_eq!(users(&funnel["platforms"]["android"]), [json!(2), json!(1), json!(0)]);
    assert_eq!(funnel["overall"][1]["conversion_from_previous"], 0.75);
    assert_eq!(funnel["overall"][2]["drop_off"], 2);

    let csv = String::from_utf8(setup.fetch(&file(".csv")).await).expect("UTF-8");
    assert!(csv.starts_with("platform,step_index,step,users,conversion_from_previous,conversion_from_start,drop_off"));
    assert!(csv.contains("all,1,booking_started,3,0.7500,0.7500,1"), "{csv}");
    assert!(csv.contains("android,2,payment,0,0.0000,0.0000,1"), "{csv}");

    let dir = tempfile::tempdir().expect("a temp dir");
    let pdf = dir.path().join("funnel.pdf");
    std::fs::write(&pdf, setup.fetch(&file(".pdf")).await).expect("write");
    let text = std::process::Command::new("pdftotext").arg(&pdf).arg("-").output().expect("pdftotext runs");
    let text = String::from_utf8_lossy(&text.stdout);
    for expected in ["Funil", "Todas as plataformas", "ios", "android", "75,0% da etapa anterior", "4 usuários"] {
        assert!(text.contains(expected), "`{expected}` is not in the PDF: {text}");
    }
}

/// An attempt that rewrote a file and then failed leaves the record
/// claiming the old count; the next pass finds nothing of the user left to
/// remove, and still records what the files hold.
async fn an_erasure_records_what_the_files_hold_even_after_an_earlier_attempt_failed(backend: Backend) {
    let setup = Setup::new(backend, ObjectBackend::File, false).await;
    let hour = hour_of(Utc::now()) - chrono::Duration::hours(4);
    ingest(&setup.store, "acme", hour, 30).await;
    assert_eq!(setup.export("acme", hour).await.status, Status::Succeeded);
    let mut stale = setup.store.lake_partition("acme", hour).await.expect("read").expect("recorded");
    stale.events = 999;
    stale.manifest["events"] = json!(999);
    setup.store.record_lake_partition(&stale).await.expect("record");

    let request = setup.store.request_event_deletion("acme", "nobody", "nobody").await.expect("request");
    let job = setup.run(erase_job(request.id)).await;
    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    assert_eq!(setup.store.lake_partition("acme", hour).await.expect("read").expect("recorded").events, 30);
    assert_eq!(setup.read_partition("acme", hour).await["manifest"]["events"], 30);
}

/// The erasure the API queues with a deletion request of acme's.
fn erase_job(request_id: uuid::Uuid) -> NewJob {
    let payload = longhaul_jobs::kind::EventsErasePayload { request_id };
    NewJob::of::<longhaul_jobs::kind::EventsErase>("acme", longhaul_jobs::model::SCHEDULER_USER, &payload)
        .expect("a job")
}
