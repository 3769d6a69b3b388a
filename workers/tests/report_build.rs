//! `report_build` through the real runtime, on both databases, with the
//! artifacts in a local object directory.

use std::{sync::Arc, time::Duration};

use longhaul_jobs::{
    model::{JobKind, NewJob, Scope, Status},
    notify::LogNotifier,
    objects::ObjectKey,
    queue::EmbeddedQueue,
    store::InsertOutcome,
    testing::{Backend, ObjectBackend, TestObjectStore, TestStore},
    travel::{sample_year, ReservationSource},
    Job, Lane,
};
use longhaul_workers::{runtime::Services, Registry, Runtime, WorkerConfig};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

longhaul_jobs::on_every_backend!(
    a_year_summary_writes_its_json_and_csv_as_artifacts,
    an_empty_year_is_a_valid_report_that_says_so,
    the_pdf_reads_back_with_its_key_figures_in_english_and_portuguese,
    an_unknown_report_fails_with_a_clear_reason,
);

struct Setup {
    store: TestStore,
    objects: TestObjectStore,
    runtime: Runtime,
}

async fn setup(backend: Backend) -> Setup {
    let store = TestStore::new(backend).await.expect("a store");
    let objects = TestObjectStore::new(ObjectBackend::File).await.expect("an object store");
    let services = Services {
        store: store.store.clone(),
        queue: Arc::new(EmbeddedQueue::new(store.store.clone())),
        notifier: Arc::new(LogNotifier),
        objects: Some(objects.store.clone()),
    };
    let config = WorkerConfig {
        lanes: vec![(Lane::Reports, 2)],
        poll_interval: Duration::from_millis(50),
        ..WorkerConfig::default()
    };
    let runtime = Runtime::start_with(services, Registry::with_defaults(), config);
    Setup { store, objects, runtime }
}

async fn load_sample(store: &TestStore, tenant: &str, user: &str) {
    let year = sample_year().expect("valid sample data");
    store.insert_reservations(tenant, user, ReservationSource::Manual, &year).await.expect("insert");
}

async fn run_report(setup: &Setup, user: &str, payload: Value) -> Job {
    let job =
        match setup.store.insert_job(NewJob::new("acme", user, JobKind::ReportBuild, payload)).await.expect("insert") {
            InsertOutcome::Created(job) => job,
            other => panic!("{other:?}"),
        };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = setup.store.get_job(&Scope::Platform, job.id).await.expect("get").expect("the job");
        if job.status.is_final() {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "the report never ended: {job:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn artifact_text(setup: &Setup, job: &Job, name: &str) -> String {
    let artifacts = setup.store.job_artifacts(&[job.id]).await.expect("artifacts");
    let artifact = artifacts.iter().find(|a| a.name == name).unwrap_or_else(|| panic!("no {name} in {artifacts:?}"));
    let path = artifact.object_key.strip_prefix("tenants/acme/").expect("under the tenant");
    let key = ObjectKey::new("acme", path).expect("a key");
    let mut reader = setup.objects.get(&key).await.expect("get").expect("the object exists");
    let mut text = String::new();
    reader.read_to_string(&mut text).await.expect("UTF-8");
    assert_eq!(artifact.size_bytes, text.len() as i64);
    text
}

async fn a_year_summary_writes_its_json_and_csv_as_artifacts(backend: Backend) {
    let setup = setup(backend).await;
    load_sample(&setup.store, "acme", "ana").await;
    load_sample(&setup.store, "acme", "bob").await;
    let job =
        run_report(&setup, "ana", json!({"report": "year_summary", "year": 2026, "formats": ["json", "csv"]})).await;
    assert_eq!(job.status, Status::Succeeded, "{:?}", job.error);
    assert_eq!(
        job.result.as_ref().map(|r| (r["reservations"].clone(), r["trips"].clone())),
        Some((json!(32), json!(6)))
    );

    let report: Value =
        serde_json::from_str(&artifact_text(&setup, &job, "year-summary-2026.json").await).expect("JSON");
    assert_eq!(report["empty"], false);
    assert_eq!(report["summary"]["hotel_nights"], 30);
    assert_eq!(report["summary"]["distance_km"], 89_694);
    assert_eq!(report["summary"]["busiest_month"], 5);

    let csv = artifact_text(&setup, &job, "year-summary-2026.csv").await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 34, "a header and ana's 33 reservations, not bob's");
    assert!(lines[0].starts_with("id,type,status,reservation_number,provider,starts_at"));
    assert!(lines[1].contains(",flight,confirmed,LA8180,LATAM Airlines,2026-02-12T22:30:00Z,"), "{}", lines[1]);
    assert!(lines[33].contains(",NH6312,ANA,"), "oldest first: {}", lines[33]);
    assert!(csv.contains(",cancelled,AR1241,"));

    // The same data gives the same bytes.
    let again =
        run_report(&setup, "ana", json!({"report": "year_summary", "year": 2026, "formats": ["json", "csv"]})).await;
    assert_eq!(artifact_text(&setup, &again, "year-summary-2026.csv").await, csv);
    setup.runtime.shutdown().await;
}

async fn an_empty_year_is_a_valid_report_that_says_so(backend: Backend) {
    let setup = setup(backend).await;
    load_sample(&setup.store, "acme", "ana").await;
    let job =
        run_report(&setup, "ana", json!({"report": "year_summary", "year": 2019, "formats": ["json", "csv"]})).await;
    assert_eq!(job.status, Status::Succeeded, "{:?}", job.error);
    let report: Value =
        serde_json::from_str(&artifact_text(&setup, &job, "year-summary-2019.json").await).expect("JSON");
    assert_eq!(report["empty"], true);
    assert_eq!(report["message"], "No reservations in 2019.");
    assert_eq!(report["summary"]["reservations"], 0);
    assert_eq!(artifact_text(&setup, &job, "year-summary-2019.csv").await.lines().count(), 1, "just the header");
    setup.runtime.shutdown().await;
}

async fn artifact_bytes(setup: &Setup, job: &Job, name: &str) -> Vec<u8> {
    let artifacts = setup.store.job_artifacts(&[job.id]).await.expect("artifacts");
    let artifact = artifacts.iter().find(|a| a.name == name).unwrap_or_else(|| panic!("no {name} in {artifacts:?}"));
    let key = ObjectKey::new("acme", artifact.object_key.strip_prefix("tenants/acme/").expect("under the tenant"))
        .expect("a key");
    let mut reader = setup.objects.get(&key).await.expect("get").expect("the object exists");
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).await.expect("bytes");
    bytes
}

/// The PDF's text, as poppler's `pdftotext` reads it (`scripts/test.sh`
/// installs poppler-utils).
fn pdf_text(pdf: &[u8]) -> String {
    let file = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(file.path(), pdf).expect("write the PDF");
    let output = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(file.path())
        .arg("-")
        .output()
        .expect("pdftotext runs (install poppler-utils)");
    assert!(output.status.success(), "pdftotext failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 text")
}

async fn the_pdf_reads_back_with_its_key_figures_in_english_and_portuguese(backend: Backend) {
    let setup = setup(backend).await;
    load_sample(&setup.store, "acme", "ana").await;
    // The default formats: pdf, csv and json.
    let english = run_report(&setup, "ana", json!({"report": "year_summary", "year": 2026})).await;
    assert_eq!(english.status, Status::Succeeded, "{:?}", english.error);
    let names: Vec<String> =
        setup.store.job_artifacts(&[english.id]).await.expect("artifacts").into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["year-summary-2026.pdf", "year-summary-2026.json", "year-summary-2026.csv"]);
    let pdf = artifact_bytes(&setup, &english, "year-summary-2026.pdf").await;
    assert!(pdf.starts_with(b"%PDF-"));
    // To look at it: LONGHAUL_KEEP_REPORT_PDF=/tmp/report.pdf cargo nextest run …
    if let Ok(path) = std::env::var("LONGHAUL_KEEP_REPORT_PDF") {
        let _ = std::fs::write(path, &pdf);
    }
    let text = pdf_text(&pdf);
    for expected in [
        "2026",
        "in travel",
        "Trips",
        "Hotel nights",
        "89,694 km",
        "New York, February 2026",
        "February 12, 2026",
        "Busiest month",
        "May",
        "Reservations by month",
        "Top airlines",
        "LATAM Airlines",
        "Aerolíneas Argentinas",
        "Hôtel Le Marais",
        "São Paulo",
        "Restaurants",
    ] {
        assert!(text.contains(expected), "`{expected}` missing from the PDF text:\n{text}");
    }

    let portuguese = run_report(
        &setup,
        "ana",
        json!({"report": "year_summary", "year": 2026, "locale": "pt-BR", "formats": ["pdf"]}),
    )
    .await;
    assert_eq!(portuguese.status, Status::Succeeded, "{:?}", portuguese.error);
    let text = pdf_text(&artifact_bytes(&setup, &portuguese, "year-summary-2026.pdf").await);
    for expected in
        ["em viagens", "Viagens", "Noites de hotel", "89.694 km", "12 de fevereiro de 2026", "maio", "Restaurantes"]
    {
        assert!(text.contains(expected), "`{expected}` missing from the Portuguese PDF:\n{text}");
    }

    // The same year gives the same bytes.
    let again = run_report(&setup, "ana", json!({"report": "year_summary", "year": 2026, "formats": ["pdf"]})).await;
    assert_eq!(artifact_bytes(&setup, &again, "year-summary-2026.pdf").await, pdf, "a reproducible PDF");

    // An empty year is a valid PDF that says so.
    let empty = run_report(&setup, "ana", json!({"report": "year_summary", "year": 2019, "formats": ["pdf"]})).await;
    let text = pdf_text(&artifact_bytes(&setup, &empty, "year-summary-2019.pdf").await);
    assert!(text.contains("No reservations this year."), "{text}");
    setup.runtime.shutdown().await;
}

async fn an_unknown_report_fails_with_a_clear_reason(backend: Backend) {
    let setup = setup(backend).await;
    let job = run_report(&setup, "ana", json!({"report": "vendor_analytics", "month": "2026-10"})).await;
    assert_eq!((job.status, job.attempts), (Status::Dead, 1));
    assert!(job.error.as_deref().unwrap_or_default().contains("not available"), "{:?}", job.error);
    assert!(setup.store.job_artifacts(&[job.id]).await.expect("artifacts").is_empty());
    setup.runtime.shutdown().await;
}
