//! `bulk_import` through the real runtime: an admin's upload of
//! reservations or users, streamed, checked row by row, upserted in
//! batches, with a rejects file. On both databases; the upload on a local
//! object directory, and on S3 (moto) as a presigned PUT leaves it.

use std::{io::Write, time::Duration};

use longhaul_jobs::{
    imports::{ImportEntity, ImportMode, NewUpload, Upload, UploadPurpose, UploadStatus},
    kind::{BulkImport as ImportKind, BulkImportPayload},
    objects::ObjectKey,
    store::InsertOutcome,
    testing::{Backend, ObjectBackend, TestObjectStore, TestStore},
    travel::{ReservationFilter, ReservationSource},
    Job, Lane, NewJob, Scope, Status,
};
use longhaul_workers::{runtime::Services, Registry, Runtime, WorkerConfig};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

longhaul_jobs::on_every_backend!(
    good_rows_are_imported_and_every_bad_row_is_reported_with_its_number,
    importing_the_same_file_twice_changes_nothing_and_a_changed_row_is_one_update,
    users_are_upserted_from_json_lines_and_an_empty_cell_keeps_the_stored_value,
    a_file_that_cannot_be_imported_fails_its_job_with_the_reason,
);

struct Setup {
    store: TestStore,
    objects: TestObjectStore,
    _runtime: Runtime,
}

impl Setup {
    async fn new(backend: Backend, objects: ObjectBackend) -> Setup {
        let store = TestStore::new(backend).await.expect("a store");
        let objects = TestObjectStore::new(objects).await.expect("an object store");
        let services = Services::embedded(store.store.clone()).with_objects(objects.store.clone());
        let config = WorkerConfig {
            lanes: vec![(Lane::Data, 1)],
            poll_interval: Duration::from_millis(50),
            reap_interval: Duration::from_millis(200),
            scheduler: false,
            ..WorkerConfig::default()
        };
        let runtime = Runtime::start_with(services, Registry::with_defaults(), config);
        Setup { store, objects, _runtime: runtime }
    }

    /// An upload announced by an admin, with no bytes yet.
    async fn announce(&self, tenant: &str, content_type: &str) -> Upload {
        let upload = NewUpload {
            tenant_id: tenant.into(),
            user_id: "an-admin".into(),
            purpose: UploadPurpose::Import,
            content_type: content_type.into(),
            size_bytes: None,
        };
        self.store.insert_upload(upload).await.expect("an upload")
    }

    /// An upload of `bytes`, as the API leaves one: announced, stored, and
    /// (`through_api`) marked uploaded; a presigned PUT leaves it pending.
    async fn upload(&self, tenant: &str, content_type: &str, bytes: Vec<u8>, through_api: bool) -> Upload {
        let upload = self.announce(tenant, content_type).await;
        let size = bytes.len() as u64;
        self.objects.put_bytes(&upload.key().expect("a key"), bytes.into(), content_type).await.expect("stored");
        if through_api {
            self.store.mark_uploaded(upload.id, size).await.expect("marked");
        }
        upload
    }

    /// Imports `upload` as `entity`, and waits for the job's end.
    async fn import(&self, tenant: &str, upload: &Upload, entity: ImportEntity) -> Job {
        let payload = BulkImportPayload { upload_id: upload.id, entity, mode: ImportMode::Upsert };
        let job = NewJob::of::<ImportKind>(tenant, "an-admin", &payload).expect("a job");
        let InsertOutcome::Created(job) = self.store.insert_job(job).await.expect("insert") else {
            panic!("not created")
        };
        self.store.wait_for_end(job.id, Duration::from_secs(120)).await
    }

    /// The job's rejects file, as text.
    async fn rejects(&self, job: &Job) -> String {
        let artifacts = self.store.job_artifacts(&[job.id]).await.expect("artifacts");
        let artifact = artifacts.iter().find(|a| a.name == "rejects.csv").expect("a rejects.csv artifact");
        assert_eq!(artifact.content_type, "text/csv");
        let prefix = format!("tenants/{}/", job.tenant_id);
        let path = artifact.object_key.strip_prefix(&prefix).expect("under the tenant");
        let key = ObjectKey::new(&job.tenant_id, path).expect("a key");
        let mut reader = self.objects.get(&key).await.expect("get").expect("the rejects file");
        let mut text = String::new();
        reader.read_to_string(&mut text).await.expect("read");
        text
    }

    async fn reservations(&self, tenant: &str, user: &str) -> Vec<longhaul_jobs::travel::Reservation> {
        let scope = Scope::User { tenant_id: tenant.into(), user_id: user.into() };
        let filter = ReservationFilter { oldest_first: true, limit: 100, ..ReservationFilter::default() };
        self.store.list_reservations(&scope, &filter).await.expect("list")
    }
}

fn result(job: &Job) -> &Value {
    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    job.result.as_ref().expect("a result")
}

/// Good rows, and one of every kind of bad row (the comment of each is its
/// row number: the header is row 1, and a blank line is no row).
fn reservations_csv() -> Vec<u8> {
    let mut file = Vec::new();
    let lines: Vec<Vec<u8>> = vec![
        b"user,type,reservation_number,provider,starts_at,ends_at,from,to,notes".to_vec(),
        // 2-4: good; the flight and the stay make one trip.
        b"ana,flight,TP1001,TAP Air Portugal,2026-05-01T10:00:00+01:00,2026-05-01T11:00:00+01:00,lis,OPO,x".to_vec(),
        b"ana,lodging,H-77,Hotel Infante,2026-05-01T15:00:00+01:00,2026-05-04T11:00:00+01:00,,,".to_vec(),
        b"bo,train,CP-9,\"Comboios de Portugal, CP\",2026-06-10T08:00:00Z,,,,".to_vec(),
        b"".to_vec(),
        // 5-19: one problem each.
        b",flight,X1,Air,2026-05-01T10:00:00Z,,LIS,OPO,".to_vec(),
        b"_scheduler,flight,X2,Air,2026-05-01T10:00:00Z,,LIS,OPO,".to_vec(),
        b"cy,boat,X3,Ferry,2026-05-01T10:00:00Z,,,,".to_vec(),
        b"cy,event,X4\x07,Venue,2026-05-01T10:00:00Z,,,,".to_vec(),
        format!("cy,event,X5,{},2026-05-01T10:00:00Z,,,,", "v".repeat(201)).into_bytes(),
        b"cy,event,X6,Venue,2026-05-01T10:00:00,,,,".to_vec(),
        b"cy,event,X7,Venue,tomorrow,,,,".to_vec(),
        b"cy,event,X8,Venue,1900-01-01T00:00:00Z,,,,".to_vec(),
        b"cy,event,X9,Venue,2026-05-02T10:00:00Z,2026-05-01T10:00:00Z,,,".to_vec(),
        b"cy,flight,X10,Air,2026-05-01T10:00:00Z,,LISB,OPO,".to_vec(),
        b"cy,flight,X11,Air,2026-05-01T10:00:00Z,,LIS,QQQ,".to_vec(),
        b"cy,flight,X12,Air,2026-05-01T10:00:00Z,,LIS,,".to_vec(),
        b"cy,event,X13,Venue".to_vec(),
        b"cy,event,X14,V\xFFnue,2026-05-01T10:00:00Z,,,,".to_vec(),
        format!("cy,event,X15,Venue,2026-05-01T10:00:00Z,,,,{}", "n".repeat(70_000)).into_bytes(),
        // 20: three problems, one row.
        b"dee,gig,X16,,nope,,,,".to_vec(),
        // 21: good, and after all the bad ones.
        b"ana,flight,TP1002,TAP Air Portugal,2026-05-04T12:00:00+01:00,2026-05-04T13:00:00+01:00,OPO,LIS,".to_vec(),
    ];
    for line in lines {
        file.extend(line);
        file.extend(b"\r\n");
    }
    file
}

const EXPECTED_REJECTS: &[(&str, &str)] = &[
    ("5", "user"),
    ("6", "user"),
    ("7", "type"),
    ("8", "reservation_number"),
    ("9", "provider"),
    ("10", "starts_at"),
    ("11", "starts_at"),
    ("12", "starts_at"),
    ("13", "ends_at"),
    ("14", "from"),
    ("15", "to"),
    ("16", "to"),
    ("17", "row"),
    ("18", "row"),
    ("19", "row"),
    ("20", "type"),
    ("20", "provider"),
    ("20", "starts_at"),
];

fn rejected_fields(rejects: &str) -> Vec<(String, String, String)> {
    let mut reader = csv::Reader::from_reader(rejects.as_bytes());
    assert_eq!(reader.headers().expect("a header").iter().collect::<Vec<_>>(), ["row", "field", "reason"]);
    reader
        .records()
        .map(|record| {
            let record = record.expect("a record");
            (record[0].to_owned(), record[1].to_owned(), record[2].to_owned())
        })
        .collect()
}

async fn good_rows_are_imported_and_every_bad_row_is_reported_with_its_number(backend: Backend) {
    let setup = Setup::new(backend, ObjectBackend::File).await;
    let upload = setup.upload("acme", "text/csv", reservations_csv(), true).await;
    let job = setup.import("acme", &upload, ImportEntity::Reservations).await;
    let outcome = result(&job);
    assert_eq!(outcome["rows"], 20, "{outcome}");
    assert_eq!(outcome["imported"], 4, "{outcome}");
    assert_eq!(outcome["inserted"], 4);
    assert_eq!(outcome["unchanged"], 0);
    assert_eq!(outcome["rejected"], 16);
    assert_eq!(outcome["ignored_columns"], json!(["notes"]));

    let rejects = rejected_fields(&setup.rejects(&job).await);
    let fields: Vec<(&str, &str)> = rejects.iter().map(|(row, field, _)| (row.as_str(), field.as_str())).collect();
    assert_eq!(fields, EXPECTED_REJECTS, "{rejects:#?}");
    let reason = |row: &str, field: &str| {
        rejects.iter().find(|r| r.0 == row && r.1 == field).map(|r| r.2.clone()).expect("a reason")
    };
    assert_eq!(reason("5", "user"), "is required");
    assert!(reason("7", "type").contains("`boat` is not a type; expected one of flight"), "{rejects:?}");
    assert!(reason("10", "starts_at").contains("has no UTC offset"), "{rejects:?}");
    assert!(reason("15", "to").contains("`QQQ` is not an airport"), "{rejects:?}");
    assert_eq!(reason("16", "to"), "is required for a flight");
    assert_eq!(reason("17", "row"), "has 4 cells, and the header 9");
    assert_eq!(reason("18", "row"), "is not UTF-8 text");
    assert_eq!(reason("19", "row"), "is longer than 64 KiB");

    // Stored as any reservation is: grouped into trips, in the sweep's
    // active set.
    let ana = setup.reservations("acme", "ana").await;
    assert_eq!(ana.len(), 3);
    assert!(ana.iter().all(|r| r.source == ReservationSource::Manual && r.version == 1));
    assert_eq!(ana[0].origin.as_deref(), Some("LIS"));
    assert_eq!(ana[0].city.as_deref(), Some("Porto"), "placed at its destination airport");
    assert!(ana[0].trip_id.is_some() && ana.iter().all(|r| r.trip_id == ana[0].trip_id), "{ana:#?}");
    let bo = setup.reservations("acme", "bo").await;
    assert_eq!(bo[0].provider, "Comboios de Portugal, CP");
    assert!(bo[0].trip_id.is_some());
    let active = setup.store.shard_page(Some("acme"), (0, 65_536), None, 100).await.expect("the active set");
    let numbers: std::collections::BTreeSet<&str> = active.iter().map(|r| r.reservation_number.as_str()).collect();
    assert_eq!(numbers, ["CP-9", "H-77", "TP1001", "TP1002"].into_iter().collect());
    // Nothing leaked to another tenant.
    assert!(setup.reservations("other", "ana").await.is_empty());
    let upload = setup.store.get_upload(&Scope::Platform, upload.id).await.expect("get").expect("the upload");
    assert_eq!(upload.status, UploadStatus::Uploaded);
}

async fn importing_the_same_file_twice_changes_nothing_and_a_changed_row_is_one_update(backend: Backend) {
    let setup = Setup::new(backend, ObjectBackend::File).await;
    let upload = setup.upload("acme", "text/csv", reservations_csv(), true).await;
    let first = setup.import("acme", &upload, ImportEntity::Reservations).await;
    assert_eq!(result(&first)["imported"], 4);
    let before = setup.reservations("acme", "ana").await;

    // The same upload again, and the same bytes uploaded again.
    for again in [upload.clone(), setup.upload("acme", "text/csv", reservations_csv(), true).await] {
        let job = setup.import("acme", &again, ImportEntity::Reservations).await;
        let outcome = result(&job);
        assert_eq!((outcome["imported"].as_u64(), outcome["unchanged"].as_u64()), (Some(0), Some(4)), "{outcome}");
        assert_eq!(outcome["rejected"], 16);
        assert_eq!(setup.reservations("acme", "ana").await, before, "a second import changed nothing");
    }
    for reservation in &before {
        let scope = Scope::Tenant { tenant_id: "acme".into() };
        let history = setup.store.reservation_changes(&scope, reservation.id).await.expect("history");
        assert_eq!(history.map(|h| h.len()), Some(0));
    }

    // One flight moved, and an empty `ends_at` keeps what is stored.
    let moved = "user,type,reservation_number,provider,starts_at,ends_at,from,to\n\
                 ana,flight,TP1001,TAP Air Portugal,2026-05-01T12:00:00+01:00,,LIS,OPO\n\
                 ana,lodging,H-77,Hotel Infante,2026-05-01T15:00:00+01:00,2026-05-04T11:00:00+01:00,,\n";
    let upload = setup.upload("acme", "text/csv; charset=utf-8", moved.as_bytes().to_vec(), true).await;
    let job = setup.import("acme", &upload, ImportEntity::Reservations).await;
    let outcome = result(&job);
    assert_eq!((outcome["updated"].as_u64(), outcome["unchanged"].as_u64()), (Some(1), Some(1)), "{outcome}");
    let after = setup.reservations("acme", "ana").await;
    let flight = after.iter().find(|r| r.reservation_number == "TP1001").expect("the flight");
    assert_eq!(flight.starts_at.to_rfc3339(), "2026-05-01T11:00:00+00:00");
    assert_eq!(flight.ends_at, before[0].ends_at, "an empty cell keeps the stored value");
    assert_eq!(flight.version, 2);
    let scope = Scope::Tenant { tenant_id: "acme".into() };
    let history = setup.store.reservation_changes(&scope, flight.id).await.expect("history").expect("seen");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].changes["starts_at"]["to"], "2026-05-01T11:00:00Z");
}

async fn users_are_upserted_from_json_lines_and_an_empty_cell_keeps_the_stored_value(backend: Backend) {
    let setup = Setup::new(backend, ObjectBackend::File).await;
    let lines = [
        r#"{"user": "ana", "email": "Ana@Example.COM", "name": "Ana Souza", "time_zone": "America/Sao_Paulo", "locale": "pt_br"}"#,
        r#"{"user": "bo", "email": "bo@example.org", "role": "ignored"}"#,
        r#"{"user": "cy", "email": "not-an-address", "time_zone": "Mars/Olympus"}"#,
        "",
        r#"{"user": "dee", "email": "dee@example.org", "name": {"first": "Dee"}}"#,
        r#"not json"#,
        r#"{"user": 42, "email": "n42@example.org", "locale": "en"}"#,
    ];
    let upload = setup.upload("acme", "application/x-ndjson", lines.join("\n").into_bytes(), true).await;
    let job = setup.import("acme", &upload, ImportEntity::Users).await;
    let outcome = result(&job);
    assert_eq!(outcome["rows"], 6, "{outcome}");
    assert_eq!((outcome["inserted"].as_u64(), outcome["rejected"].as_u64()), (Some(3), Some(3)), "{outcome}");
    let rejects = rejected_fields(&setup.rejects(&job).await);
    let fields: Vec<(&str, &str)> = rejects.iter().map(|(row, field, _)| (row.as_str(), field.as_str())).collect();
    assert_eq!(fields, [("3", "email"), ("3", "time_zone"), ("5", "row"), ("6", "row")], "{rejects:#?}");

    let ana = setup.store.get_user_profile("acme", "ana").await.expect("get").expect("ana");
    assert_eq!(ana.email.as_deref(), Some("Ana@example.com"));
    assert_eq!((ana.time_zone.as_deref(), ana.locale.as_deref()), (Some("America/Sao_Paulo"), Some("pt-BR")));
    assert!(setup.store.get_user_profile("acme", "42").await.expect("get").is_some());
    assert!(setup.store.get_user_profile("other", "ana").await.expect("get").is_none());

    // Again: nothing changes. Then a row without a name keeps Ana's.
    let again = setup.import("acme", &upload, ImportEntity::Users).await;
    assert_eq!((result(&again)["imported"].as_u64(), result(&again)["unchanged"].as_u64()), (Some(0), Some(3)));
    let update = r#"{"user": "ana", "email": "ana@example.com", "name": ""}"#;
    let upload = setup.upload("acme", "application/x-ndjson", update.as_bytes().to_vec(), true).await;
    let job = setup.import("acme", &upload, ImportEntity::Users).await;
    assert_eq!(result(&job)["updated"], 1);
    let ana = setup.store.get_user_profile("acme", "ana").await.expect("get").expect("ana");
    assert_eq!((ana.email.as_deref(), ana.name.as_deref()), (Some("ana@example.com"), Some("Ana Souza")));
}

async fn a_file_that_cannot_be_imported_fails_its_job_with_the_reason(backend: Backend) {
    let setup = Setup::new(backend, ObjectBackend::File).await;
    let upload = setup.upload("acme", "text/csv", b"user,kind,number\nana,flight,1\n".to_vec(), true).await;
    let job = setup.import("acme", &upload, ImportEntity::Reservations).await;
    assert_eq!(job.status, Status::Dead, "{job:?}");
    let error = job.error.clone().unwrap_or_default();
    assert!(
        error.contains("the header lacks the columns `type`, `reservation_number`, `provider`, `starts_at`"),
        "{error}"
    );
    assert_eq!(job.attempts, 1, "a bad file is not retried");

    // Another tenant's upload is no upload at all.
    let theirs = setup.upload("other", "text/csv", reservations_csv(), true).await;
    let job = setup.import("acme", &theirs, ImportEntity::Reservations).await;
    assert_eq!(job.status, Status::Dead);
    assert!(job.error.unwrap_or_default().contains("no upload"));
    assert!(setup.reservations("acme", "ana").await.is_empty());

    // Announced, never uploaded.
    let empty = setup.announce("acme", "text/csv").await;
    let job = setup.import("acme", &empty, ImportEntity::Users).await;
    assert!(job.error.unwrap_or_default().contains("has no file yet"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_a_file_put_straight_to_the_bucket_imports_and_the_upload_is_marked_uploaded() {
    let setup = Setup::new(Backend::Postgres, ObjectBackend::S3).await;
    let upload = setup.upload("acme", "text/csv", reservations_csv(), false).await;
    assert_eq!(upload.status, UploadStatus::Pending);
    let job = setup.import("acme", &upload, ImportEntity::Reservations).await;
    assert_eq!(result(&job)["imported"], 4);
    assert_eq!(rejected_fields(&setup.rejects(&job).await).len(), EXPECTED_REJECTS.len());
    let upload = setup.store.get_upload(&Scope::Platform, upload.id).await.expect("get").expect("the upload");
    assert_eq!(upload.status, UploadStatus::Uploaded);
    assert_eq!(upload.size_bytes, Some(reservations_csv().len() as i64));
}

/// The peak resident memory of this process (nextest runs each test in a
/// process of its own), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).expect("VmHWM");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gb_file_imports_with_bounded_memory() {
    const ROWS: u64 = 100_000;
    let setup = Setup::new(Backend::Postgres, ObjectBackend::File).await;
    // 100,000 reservations of 1,000 users, each row padded to ~10.5 KB by a
    // column the import ignores: 1 GB of CSV, written to disk in a stream.
    let mut spool = tempfile::NamedTempFile::new().expect("a spool");
    {
        let mut out = std::io::BufWriter::new(spool.as_file_mut());
        writeln!(out, "user,type,reservation_number,provider,starts_at,ends_at,from,to,notes").expect("write");
        let padding = "p".repeat(10_400);
        for n in 0..ROWS {
            let day = 1 + n % 28;
            writeln!(
                out,
                "user-{:04},flight,BIG{n:07},TAP Air Portugal,2026-03-{day:02}T10:00:00Z,2026-03-{day:02}T12:00:00Z,LIS,OPO,{padding}",
                n / 100
            )
            .expect("write");
        }
        out.flush().expect("flush");
    }
    let size = spool.as_file().metadata().expect("metadata").len();
    assert!(size >= 1_000_000_000, "{size} bytes");
    let upload = setup.announce("acme", "text/csv").await;
    setup.objects.put_file(&upload.key().expect("a key"), spool.path(), "text/csv").await.expect("stored");
    drop(spool);
    setup.store.mark_uploaded(upload.id, size).await.expect("marked");

    let before = peak_rss();
    let job = setup.import("acme", &upload, ImportEntity::Reservations).await;
    let outcome = result(&job);
    assert_eq!((outcome["inserted"].as_u64(), outcome["rejected"].as_u64()), (Some(ROWS), Some(0)), "{outcome}");
    assert_eq!(outcome["bytes"].as_u64(), Some(size));
    let grown = peak_rss().saturating_sub(before);
    // A chunk, a row and a batch: a few MB. Reading the file whole would be
    // a gigabyte.
    assert!(grown < 128 * 1024 * 1024, "the peak RSS grew by {} MiB for a {} MB file", grown >> 20, size / 1_000_000);
    let progress = setup.store.get_job(&Scope::Platform, job.id).await.expect("get").expect("job").progress;
    assert_eq!(progress, 100);
}
