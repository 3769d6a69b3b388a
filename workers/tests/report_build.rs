//! `report_build` through the real runtime, on both databases, with the
//! artifacts in a local object directory.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use longhaul_jobs::{
    inbox::ProfilePatch,
    model::{NewJob, Scope, Status},
    objects::ObjectKey,
    store::InsertOutcome,
    testing::{Backend, ObjectBackend, TestObjectStore, TestStore},
    travel::{
        sample_year, ChangeOrigin, NewReservation, ReservationFields, ReservationSource, ReservationStatus,
        ReservationType,
    },
    Job, JobKind, Lane,
};
use longhaul_workers::{runtime::Services, Registry, Runtime, WorkerConfig};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

longhaul_jobs::on_every_backend!(
    a_year_summary_writes_its_json_and_csv_as_artifacts,
    an_empty_year_is_a_valid_report_that_says_so,
    the_pdf_reads_back_with_its_key_figures_in_english_and_portuguese,
    a_year_is_the_owners_in_their_zone_and_times_are_where_they_happen,
    vendor_analytics_counts_the_tenants_month_in_every_format,
    a_long_vendor_list_runs_over_pages_and_says_what_it_left_out,
    a_user_cannot_read_the_tenants_vendors_through_the_worker_either,
);

struct Setup {
    store: TestStore,
    objects: TestObjectStore,
    runtime: Runtime,
}

async fn setup(backend: Backend) -> Setup {
    let store = TestStore::new(backend).await.expect("a store");
    let objects = TestObjectStore::new(ObjectBackend::File).await.expect("an object store");
    let services = Services::embedded(store.store.clone()).with_objects(objects.store.clone());
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
    let job = match setup
        .store
        .insert_job(NewJob::new("acme", user, JobKind::REPORT_BUILD, payload))
        .await
        .expect("insert")
    {
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
    // Times as the ticket says them, in the airports' zones.
    assert!(
        lines[1]
            .contains(",flight,confirmed,LA8180,LATAM Airlines,2026-02-12T19:30:00-03:00,2026-02-13T05:05:00-05:00,"),
        "{}",
        lines[1]
    );
    assert!(lines[1].ends_with(",America/Sao_Paulo,America/New_York"), "{}", lines[1]);
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

/// acme's October: TAP (three legs, one moved by the agency, one cancelled)
/// and a Hilton stay; and globex's, which acme's report never shows.
/// A red-eye over the date line that leaves on New Year's Day and lands the
/// day before, a dinner at 23:30 on New Year's Eve, and a New York stay
/// across the night clocks go back: what each zone makes of them.
async fn a_year_is_the_owners_in_their_zone_and_times_are_where_they_happen(backend: Backend) {
    let setup = setup(backend).await;
    let booking = |value: Value| -> ReservationFields {
        let new: NewReservation = serde_json::from_value(value).expect("a reservation");
        new.validate().expect("valid")
    };
    let year = [
        // 00:30 on 1 January 2027 in Auckland (NZDT, +13) is 11:30 UTC on
        // 31 December 2026; it lands in Honolulu at 10:35 on 31 December.
        // Its year is the traveler's, not Auckland's: 2026.
        booking(json!({"type": "flight", "reservation_number": "NZ8", "provider": "Air New Zealand",
            "starts_at": "2026-12-31T11:30:00Z", "ends_at": "2026-12-31T20:35:00Z",
            "origin": "AKL", "destination": "HNL"})),
        // 23:30 on New Year's Eve in São Paulo is 02:30 UTC on 1 January.
        booking(json!({"type": "food", "reservation_number": "R1", "provider": "Bar do Zé",
            "starts_at": "2027-01-01T02:30:00Z", "city": "São Paulo", "country": "BR"})),
        // In at 21:00 EDT on 31 October (01:00 UTC on 1 November), out at
        // 11:00 EST on 2 November: two nights, one in UTC dates.
        booking(json!({"type": "lodging", "reservation_number": "H1", "provider": "Hotel Hudson",
            "starts_at": "2026-11-01T01:00:00Z", "ends_at": "2026-11-02T16:00:00Z",
            "city": "New York", "country": "US"})),
    ];
    for user in ["ana", "bob"] {
        setup.store.insert_reservations("acme", user, ReservationSource::Manual, &year).await.expect("insert");
    }
    let patch = ProfilePatch {
        time_zone: Some(Some("America/Sao_Paulo".into())),
        locale: Some(Some("pt-BR".into())),
        ..ProfilePatch::default()
    };
    setup.store.update_profile("acme", "ana", &patch).await.expect("a profile");

    let report = |user: &'static str| {
        let setup = &setup;
        async move {
            let job = run_report(setup, user, json!({"report": "year_summary", "year": 2026})).await;
            assert_eq!(job.status, Status::Succeeded, "{:?}", job.error);
            let json: Value =
                serde_json::from_str(&artifact_text(setup, &job, "year-summary-2026.json").await).expect("JSON");
            let csv = artifact_text(setup, &job, "year-summary-2026.csv").await;
            let pdf = pdf_text(&artifact_bytes(setup, &job, "year-summary-2026.pdf").await);
            (json["summary"].clone(), csv, pdf)
        }
    };

    // Ana lives in São Paulo: all three are her 2026, the stay in October.
    let (summary, csv, pdf) = report("ana").await;
    assert_eq!(summary["time_zone"], "America/Sao_Paulo");
    assert_eq!(summary["reservations"], 3);
    assert_eq!(summary["hotel_nights"], 2, "nights between the stay's own dates");
    let mut months = vec![0; 12];
    (months[9], months[11]) = (1, 2);
    assert_eq!(summary["by_month"], json!(months));
    // Each time as the ticket says it, with the zone's offset.
    let row = |csv: &str, number: &str| {
        csv.lines().find(|line| line.contains(&format!(",{number},"))).map(str::to_owned).unwrap_or_default()
    };
    assert!(
        row(&csv, "NZ8").contains(",2027-01-01T00:30:00+13:00,2026-12-31T10:35:00-10:00,"),
        "the red-eye lands the day before it leaves: {csv}"
    );
    assert!(row(&csv, "NZ8").ends_with(",Pacific/Auckland,Pacific/Honolulu"), "{csv}");
    assert!(row(&csv, "R1").contains(",2026-12-31T23:30:00-03:00,,"), "{csv}");
    assert!(row(&csv, "H1").contains(",2026-10-31T21:00:00-04:00,2026-11-02T11:00:00-05:00,"), "{csv}");
    // Her profile's language, with no locale in the payload.
    assert!(pdf.contains("Noites de hotel"), "{pdf}");

    // Bob has no zone (UTC): New Year's Eve's dinner is 2027's, the stay
    // starts in November, and it is still two nights.
    let (summary, csv, pdf) = report("bob").await;
    assert_eq!(summary["time_zone"], "UTC");
    assert_eq!(summary["reservations"], 2);
    assert_eq!(summary["hotel_nights"], 2);
    let mut months = vec![0; 12];
    (months[10], months[11]) = (1, 1);
    assert_eq!(summary["by_month"], json!(months));
    assert!(row(&csv, "R1").is_empty(), "{csv}");
    assert!(pdf.contains("Hotel nights"), "{pdf}");
    setup.runtime.shutdown().await;
}

async fn load_october(store: &TestStore) {
    let fields = |provider: &str, kind: ReservationType, number: &str, day: u32| ReservationFields {
        kind,
        reservation_number: number.into(),
        provider: provider.into(),
        status: ReservationStatus::Confirmed,
        starts_at: Utc.with_ymd_and_hms(2026, 10, day, 9, 0, 0).single().expect("a date"),
        ends_at: None,
        details: json!({}),
        city: Some("Lisbon".into()),
        country: Some("PT".into()),
        origin: None,
        destination: None,
        start_zone: None,
        end_zone: None,
    };
    let mut cancelled = fields("TAP Air Portugal", ReservationType::Flight, "TP3", 20);
    cancelled.status = ReservationStatus::Cancelled;
    let ids = store
        .insert_reservations(
            "acme",
            "ana",
            ReservationSource::Email,
            &[
                fields("TAP Air Portugal", ReservationType::Flight, "TP1", 3),
                fields("TAP Air Portugal", ReservationType::Flight, "TP2", 10),
                cancelled,
                fields("Hilton", ReservationType::Lodging, "H-1", 3),
            ],
        )
        .await
        .expect("insert");
    let scope = Scope::User { tenant_id: "acme".into(), user_id: "ana".into() };
    let first = store.get_reservation(&scope, ids[0]).await.expect("get").expect("there");
    let mut moved = first.fields();
    moved.starts_at += chrono::Duration::hours(2);
    let origin = ChangeOrigin { source: ReservationSource::Agency, changed_at: None };
    store.update_reservation(&scope, first.id, moved, origin).await.expect("update").expect("there");
    store
        .insert_reservation(
            "globex",
            "ana",
            ReservationSource::Email,
            fields("Globex Air", ReservationType::Flight, "G1", 3),
        )
        .await
        .expect("insert");
}

async fn vendor_analytics_counts_the_tenants_month_in_every_format(backend: Backend) {
    let setup = setup(backend).await;
    load_october(&setup.store).await;
    let job = run_report(&setup, "root", json!({"report": "vendor_analytics", "month": "2026-10"})).await;
    assert_eq!(job.status, Status::Succeeded, "{:?}", job.error);
    let result = job.result.clone().expect("a result");
    assert_eq!((result["vendors"].clone(), result["reservations"].clone()), (json!(2), json!(4)));

    let report: Value =
        serde_json::from_str(&artifact_text(&setup, &job, "vendor-analytics-2026-10.json").await).expect("JSON");
    assert_eq!((report["empty"].clone(), report["tenant_id"].clone()), (json!(false), json!("acme")));
    assert_eq!(
        report["analytics"]["rows"],
        json!([
            {"vendor": "TAP Air Portugal", "type": "flight", "reservations": 3, "cancelled": 1, "changed": 1, "changes": 1},
            {"vendor": "Hilton", "type": "lodging", "reservations": 1, "cancelled": 0, "changed": 0, "changes": 0},
        ])
    );
    let csv = artifact_text(&setup, &job, "vendor-analytics-2026-10.csv").await;
    assert_eq!(
        csv,
        "vendor,type,reservations,cancelled,changed,changes\nTAP Air Portugal,flight,3,1,1,1\nHilton,lodging,1,0,0,0\n"
    );

    let pdf = artifact_bytes(&setup, &job, "vendor-analytics-2026-10.pdf").await;
    // To look at it: LONGHAUL_KEEP_VENDOR_PDF=/tmp/vendors.pdf cargo nextest run …
    if let Ok(path) = std::env::var("LONGHAUL_KEEP_VENDOR_PDF") {
        let _ = std::fs::write(path, &pdf);
    }
    let text = pdf_text(&pdf);
    for expected in ["October 2026", "Vendor analytics", "acme", "TAP Air Portugal", "Hilton", "Stays", "1 · 25.0%"] {
        assert!(text.contains(expected), "`{expected}` missing from the PDF:\n{text}");
    }
    assert!(!text.contains("Globex"), "another tenant's vendor in the PDF:\n{text}");
    let again =
        run_report(&setup, "root", json!({"report": "vendor_analytics", "month": "2026-10", "formats": ["pdf"]})).await;
    assert_eq!(artifact_bytes(&setup, &again, "vendor-analytics-2026-10.pdf").await, pdf, "a reproducible PDF");

    let portuguese = run_report(
        &setup,
        "root",
        json!({"report": "vendor_analytics", "month": "2026-10", "locale": "pt-BR", "formats": ["pdf"]}),
    )
    .await;
    let text = pdf_text(&artifact_bytes(&setup, &portuguese, "vendor-analytics-2026-10.pdf").await);
    for expected in ["outubro de 2026", "Análise de fornecedores", "Hospedagens", "Fornecedor", "1 · 25,0%"] {
        assert!(text.contains(expected), "`{expected}` missing from the Portuguese PDF:\n{text}");
    }

    let empty = run_report(&setup, "root", json!({"report": "vendor_analytics", "month": "2026-07"})).await;
    assert_eq!(empty.status, Status::Succeeded, "{:?}", empty.error);
    let text = pdf_text(&artifact_bytes(&setup, &empty, "vendor-analytics-2026-07.pdf").await);
    assert!(text.contains("No reservations this month."), "{text}");
    let csv = artifact_text(&setup, &empty, "vendor-analytics-2026-07.csv").await;
    assert_eq!(csv, "vendor,type,reservations,cancelled,changed,changes\n");
    setup.runtime.shutdown().await;
}

async fn a_long_vendor_list_runs_over_pages_and_says_what_it_left_out(backend: Backend) {
    let setup = setup(backend).await;
    let many: Vec<ReservationFields> = (0..1_050)
        .map(|i| ReservationFields {
            kind: ReservationType::Food,
            reservation_number: format!("R{i}"),
            provider: format!("Restaurant {i:04} with a name far too long for its column in the table"),
            status: ReservationStatus::Confirmed,
            starts_at: Utc.with_ymd_and_hms(2026, 10, 1 + i % 28, 20, 0, 0).single().expect("a date"),
            ends_at: None,
            details: json!({}),
            city: None,
            country: None,
            origin: None,
            destination: None,
            start_zone: None,
            end_zone: None,
        })
        .collect();
    setup.store.insert_reservations("acme", "ana", ReservationSource::Manual, &many).await.expect("insert");
    let job = run_report(&setup, "root", json!({"report": "vendor_analytics", "month": "2026-10"})).await;
    assert_eq!(job.status, Status::Succeeded, "{:?}", job.error);
    let pdf = artifact_bytes(&setup, &job, "vendor-analytics-2026-10.pdf").await;
    if let Ok(path) = std::env::var("LONGHAUL_KEEP_LONG_VENDOR_PDF") {
        let _ = std::fs::write(path, &pdf);
    }
    let text = pdf_text(&pdf);
    assert!(text.contains("… and 50 more rows, in the CSV and JSON files."), "{text}");
    assert!(text.contains("Restaurant 0000 with a name"), "{text}");
    assert!(!text.contains("far too long for its column in the table"), "long names are cut");
    // The title page, then 1,000 rows at 41 a page: 25 pages.
    assert!(text.contains("· page 26") && !text.contains("· page 27"), "{text}");
    let csv = artifact_text(&setup, &job, "vendor-analytics-2026-10.csv").await;
    assert_eq!(csv.lines().count(), 1 + 1_050, "the CSV has every vendor");
    setup.runtime.shutdown().await;
}

async fn a_user_cannot_read_the_tenants_vendors_through_the_worker_either(backend: Backend) {
    // The API refuses `vendor_analytics` to users (403, tested there); a job
    // that got in anyway still counts only its own tenant.
    let setup = setup(backend).await;
    load_october(&setup.store).await;
    let job =
        run_report(&setup, "ana", json!({"report": "vendor_analytics", "month": "2026-10", "formats": ["json"]})).await;
    let report: Value =
        serde_json::from_str(&artifact_text(&setup, &job, "vendor-analytics-2026-10.json").await).expect("JSON");
    assert_eq!(report["analytics"]["reservations"], 4);
    assert!(!report.to_string().contains("Globex"));
    setup.runtime.shutdown().await;
}
