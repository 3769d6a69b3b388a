//! The client commands: `token`, `submit` and `demo`. They talk to a running
//! API over HTTP, the way a mobile app or a script would.

use std::{collections::BTreeMap, path::Path, process::ExitCode, time::Duration};

use anyhow::{bail, Context};
use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, DurationRound, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use longhaul_api::auth;
use serde::Serialize;
use serde_json::{json, Value};

use crate::{
    cli::{ClientArgs, DemoArgs, SubmitArgs, TokenArgs},
    config,
    serve::{dev_key_path, DEV_ADMIN, DEV_TENANT},
};

pub fn token(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let data_dir = config::data_dir(&args.data_dir.data_dir);
    let key = auth::load_or_create_dev_key(&dev_key_path(&data_dir))?;
    let role: auth::Role = args.role.parse()?;
    let ttl = Duration::from_secs(args.ttl_hours.saturating_mul(3600));
    println!("{}", auth::mint_dev_token(&key, &args.tenant, &args.user, role, ttl)?);
    Ok(ExitCode::SUCCESS)
}

/// An HTTP client for the API, with the caller's token.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let base = config::env("LONGHAUL_URL").unwrap_or_else(|| args.url.clone());
        let token = match config::env("LONGHAUL_TOKEN").or_else(|| args.token.clone()) {
            Some(token) => token,
            None => {
                let data_dir = config::data_dir(&args.data_dir.data_dir);
                let key = auth::load_dev_key(&dev_key_path(&data_dir)).with_context(|| {
                    format!(
                        "no --token given and no dev key in {}; pass --token, set LONGHAUL_TOKEN, or point --data-dir at the one `longhaul up` uses",
                        data_dir.display()
                    )
                })?;
                auth::mint_dev_token(&key, DEV_TENANT, DEV_ADMIN, auth::Role::Admin, Duration::from_secs(3600))?
            }
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Client { http, base: base.trim_end_matches('/').to_owned(), token })
    }

    /// Sends a request, retrying connection errors and 5xx/429 with backoff:
    /// networks are flaky, and the idempotency key makes a retried POST safe.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let attempt = || async {
            let mut request = self.http.request(method.clone(), &url).bearer_auth(&self.token);
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            let response = request.send().await.map_err(|err| Failure::Transient(anyhow::anyhow!("{url}: {err}")))?;
            let status = response.status();
            let text = response.text().await.map_err(|err| Failure::Transient(err.into()))?;
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if status.is_success() {
                Ok(value)
            } else {
                let detail =
                    value.get("detail").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| value.to_string());
                let err = anyhow::anyhow!("{method} {path}: {status}: {detail}");
                if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    Err(Failure::Transient(err))
                } else {
                    Err(Failure::Final(err))
                }
            }
        };
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_times(5)
                    .with_jitter(),
            )
            .when(|failure| matches!(failure, Failure::Transient(_)))
            .await
            .map_err(Failure::into_inner)
    }

    /// PUTs `bytes` to an `upload_url`: a path is this API's own upload
    /// endpoint (send the token); a full URL is presigned and must go
    /// without it.
    async fn put_upload(&self, url: &str, content_type: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let request = if url.starts_with('/') {
            self.http.put(format!("{}{url}", self.base)).bearer_auth(&self.token)
        } else {
            self.http.put(url)
        };
        let response = request.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes).send().await?;
        if !response.status().is_success() {
            bail!("{}: {}", response.status(), response.text().await.unwrap_or_default());
        }
        Ok(())
    }

    async fn submit(&self, kind: &str, payload: &Value) -> anyhow::Result<Value> {
        let key = uuid::Uuid::new_v4().to_string();
        self.send(reqwest::Method::POST, "/v1/jobs", Some(&json!({"kind": kind, "payload": payload})), Some(&key)).await
    }

    async fn job(&self, id: &str) -> anyhow::Result<Value> {
        self.send(reqwest::Method::GET, &format!("/v1/jobs/{id}"), None, None).await
    }

    /// Polls the job until it ends, moving `bar` with its progress.
    async fn wait(&self, id: &str, bar: &ProgressBar) -> anyhow::Result<Value> {
        loop {
            let job = self.job(id).await?;
            let status = job["status"].as_str().unwrap_or("unknown").to_owned();
            bar.set_position(job["progress"].as_u64().unwrap_or(0));
            bar.set_message(status.clone());
            if matches!(status.as_str(), "succeeded" | "failed" | "dead" | "cancelled") {
                bar.finish_with_message(status);
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

enum Failure {
    Transient(anyhow::Error),
    Final(anyhow::Error),
}

impl Failure {
    fn into_inner(self) -> anyhow::Error {
        match self {
            Failure::Transient(err) | Failure::Final(err) => err,
        }
    }
}

fn progress_bar(label: &str, hidden: bool) -> ProgressBar {
    let bar = if hidden { ProgressBar::hidden() } else { ProgressBar::new(100) };
    let style = ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_owned());
    bar
}

fn read_payload(raw: &str) -> anyhow::Result<Value> {
    let text = match raw.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(Path::new(path)).with_context(|| format!("cannot read the payload file {path}"))?
        }
        None => raw.to_owned(),
    };
    serde_json::from_str(&text).context("the payload is not valid JSON")
}

pub async fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let payload = read_payload(&args.payload)?;
    let client = Client::new(&args.client)?;
    let job = client.submit(&args.kind, &payload).await?;
    let id = job["id"].as_str().context("the API answered without a job id")?.to_owned();
    if !args.wait {
        println!("{}", serde_json::to_string_pretty(&job)?);
        return Ok(ExitCode::SUCCESS);
    }
    let bar = progress_bar(&args.kind, false);
    let job = client.wait(&id, &bar).await?;
    println!("{}", serde_json::to_string_pretty(&job)?);
    Ok(if job["status"] == "succeeded" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// One kind's line in `demo --json`.
#[derive(Debug, Serialize)]
struct DemoResult {
    job_id: String,
    status: String,
    artifacts: Vec<Value>,
    /// The job's result (a bulk import's counts), if any.
    #[serde(skip_serializing_if = "Value::is_null")]
    result: Value,
    /// `reservation_refresh`: what the simulator changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<Value>,
    /// `reservation_refresh`: seconds from the change at the agency to the
    /// notification in the demo user's inbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    notified_after_seconds: Option<f64>,
}

/// The jobs of the demo, by the name `demo --json` shows them under:
/// one of every kind this version runs, on the sample year, the sample
/// photos, the events the demo sent and the sample import file.
/// `events_export` runs first, on its own: the funnel reads what it wrote.
fn demo_jobs(hour: DateTime<Utc>, upload_id: &str) -> Vec<(&'static str, &'static str, Value)> {
    let day = hour - chrono::Duration::hours(23);
    let mut jobs = vec![
        ("noop", "noop", json!({"sleep_ms": 1500})),
        ("report_build", "report_build", json!({"report": "year_summary", "year": 2026})),
        (
            "funnel",
            "report_build",
            json!({
                "report": "funnel",
                "steps": ["search", "booking_started", "payment", "booking_confirmed"],
                "from": day,
                "to": hour + chrono::Duration::hours(1),
                "window_hours": 24,
            }),
        ),
        ("bulk_import", "bulk_import", json!({"upload_id": upload_id, "entity": "reservations", "mode": "upsert"})),
    ];
    if cfg!(feature = "video") {
        jobs.push((
            "video_compile",
            "video_compile",
            json!({"year": 2026, "aspect": "9:16", "name": "Demo traveller"}),
        ));
    }
    jobs
}

/// The sample file of `bulk_import`, built in (`assets/imports`).
const SAMPLE_IMPORT_CSV: &[u8] = include_bytes!("../assets/imports/reservations.csv");

/// A journey through the app, as the mobile app reports it: two searches,
/// a booking started, paid and confirmed, a boarding pass scanned.
fn sample_events(now: DateTime<Utc>) -> Value {
    let at = |minutes: i64| now - chrono::Duration::minutes(minutes);
    let session = "demo-session-1";
    let device = json!({"platform": "ios", "app_version": "4.2.0", "os_version": "18.1"});
    let events = [
        (40, "search", json!({"origin": "LIS", "destination": "GRU", "results": 14})),
        (38, "search", json!({"origin": "LIS", "destination": "GIG", "results": 9})),
        (
            35,
            "booking_started",
            json!({"booking_id": "LA8084", "provider": "LATAM Airlines", "value": 812.4, "currency": "EUR"}),
        ),
        (31, "payment", json!({"booking_id": "LA8084", "method": "card", "value": 812.4, "currency": "EUR"})),
        (
            30,
            "booking_confirmed",
            json!({"booking_id": "LA8084", "provider": "LATAM Airlines", "value": 812.4, "currency": "EUR"}),
        ),
        (5, "barcode_scanned", json!({"booking_id": "LA8084", "format": "aztec"})),
    ];
    let events: Vec<Value> = events
        .into_iter()
        .map(|(minutes, name, properties)| {
            json!({"name": name, "occurred_at": at(minutes), "properties": properties, "session_id": session,
                   "device": device})
        })
        .collect();
    json!({ "events": events })
}

/// Uploads the sample import file as an admin's upload (`POST
/// /v1/uploads`, then the file to its `upload_url`). Returns its id.
async fn upload_sample_import(client: &Client) -> anyhow::Result<String> {
    let body = json!({"content_type": "text/csv", "purpose": "import"});
    let upload = client.send(reqwest::Method::POST, "/v1/uploads", Some(&body), None).await?;
    let id = upload["id"].as_str().context("the API answered without an upload id")?.to_owned();
    let url = upload["upload_url"].as_str().context("the API answered without an upload_url")?;
    client.put_upload(url, "text/csv", SAMPLE_IMPORT_CSV.to_vec()).await.context("uploading the sample import")?;
    Ok(id)
}

/// The sample photos of `assets/photos`, built in: name, bytes.
const SAMPLE_PHOTOS: &[(&str, &[u8])] = &[
    ("01-new-york.jpg", include_bytes!("../assets/photos/01-new-york.jpg")),
    ("02-central-park.jpg", include_bytes!("../assets/photos/02-central-park.jpg")),
    ("03-lisbon.jpg", include_bytes!("../assets/photos/03-lisbon.jpg")),
    ("04-porto.jpg", include_bytes!("../assets/photos/04-porto.jpg")),
    ("05-rio-de-janeiro.jpg", include_bytes!("../assets/photos/05-rio-de-janeiro.jpg")),
    ("06-copacabana.png", include_bytes!("../assets/photos/06-copacabana.png")),
    ("07-buenos-aires.jpg", include_bytes!("../assets/photos/07-buenos-aires.jpg")),
    ("08-pampas.webp", include_bytes!("../assets/photos/08-pampas.webp")),
    ("09-madrid.jpg", include_bytes!("../assets/photos/09-madrid.jpg")),
    ("10-paris.jpg", include_bytes!("../assets/photos/10-paris.jpg")),
    ("11-tokyo.jpg", include_bytes!("../assets/photos/11-tokyo.jpg")),
    ("12-mount-fuji.jpg", include_bytes!("../assets/photos/12-mount-fuji.jpg")),
];
const SAMPLE_PHOTOS_JSON: &str = include_str!("../assets/photos/photos.json");

/// Uploads the sample photos through the media API, unless the caller has
/// photos already. Returns how many were added.
async fn load_sample_photos(client: &Client) -> anyhow::Result<usize> {
    let existing = client.send(reqwest::Method::GET, "/v1/media?limit=1", None, None).await?;
    if existing["items"].as_array().is_some_and(|items| !items.is_empty()) {
        return Ok(0);
    }
    let manifest: Vec<Value> =
        serde_json::from_str(SAMPLE_PHOTOS_JSON).context("assets/photos/photos.json is not valid JSON")?;
    for entry in &manifest {
        let file = entry["file"].as_str().context("a photo without a file name in photos.json")?;
        let bytes = SAMPLE_PHOTOS
            .iter()
            .find(|(name, _)| *name == file)
            .map(|(_, bytes)| *bytes)
            .with_context(|| format!("photos.json names {file}, which is not built in"))?;
        let body =
            json!({"content_type": entry["content_type"], "taken_at": entry["taken_at"], "caption": entry["caption"]});
        let media = client.send(reqwest::Method::POST, "/v1/media", Some(&body), None).await?;
        let upload = media["upload_url"].as_str().context("the API answered without an upload_url")?;
        let content_type = entry["content_type"].as_str().unwrap_or("application/octet-stream");
        client.put_upload(upload, content_type, bytes.to_vec()).await.with_context(|| format!("uploading {file}"))?;
    }
    Ok(manifest.len())
}

/// Loads the sample year into the caller's account, unless it already has
/// reservations (a second demo adds nothing). Returns how many were added.
async fn load_sample_reservations(client: &Client) -> anyhow::Result<usize> {
    let existing = client.send(reqwest::Method::GET, "/v1/reservations?limit=1", None, None).await?;
    if existing["items"].as_array().is_some_and(|items| !items.is_empty()) {
        return Ok(0);
    }
    let sample: Vec<Value> = serde_json::from_str(longhaul_jobs::travel::SAMPLE_YEAR_JSON)
        .context("the built-in sample reservations are not valid JSON")?;
    for reservation in &sample {
        client.send(reqwest::Method::POST, "/v1/reservations", Some(reservation), None).await?;
    }
    Ok(sample.len())
}

/// Waits for a demo job, prints how it ended (unless `--json`), and
/// records it under `name`. True if it succeeded.
async fn show_job(
    client: &Client,
    args: &DemoArgs,
    name: &str,
    id: String,
    results: &mut BTreeMap<String, DemoResult>,
) -> anyhow::Result<bool> {
    let bar = progress_bar(name, args.json);
    let job = client.wait(&id, &bar).await?;
    let status = job["status"].as_str().unwrap_or("unknown").to_owned();
    // Absolute URLs, so that they can be opened as printed.
    let artifacts: Vec<Value> = job["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|artifact| {
            json!({
                "id": artifact["id"],
                "name": artifact["name"],
                "content_type": artifact["content_type"],
                "url": format!("{}{}", client.base, artifact["url"].as_str().unwrap_or_default()),
            })
        })
        .collect();
    if !args.json {
        println!("{name}: {status} — job {}/v1/jobs/{id}", client.base);
        if let Some(error) = job["error"].as_str() {
            println!("  error: {error}");
        }
        if name == "bulk_import" {
            let result = &job["result"];
            println!(
                "  {} rows: {} imported, {} unchanged, {} rejected",
                result["rows"], result["imported"], result["unchanged"], result["rejected"]
            );
        }
        for artifact in &artifacts {
            println!(
                "  {}: {}",
                artifact["name"].as_str().unwrap_or("artifact"),
                artifact["url"].as_str().unwrap_or_default()
            );
        }
    }
    let ok = status == "succeeded";
    let result = job["result"].clone();
    let entry = DemoResult { job_id: id, status, artifacts, result, change: None, notified_after_seconds: None };
    results.insert(name.to_owned(), entry);
    Ok(ok)
}

/// The simulated airline the demo's flight is on: the simulator's name for
/// it, and the name reservations carry.
const DEMO_AIRLINE: (&str, &str) = ("latam", "LATAM Airlines");

/// How far the simulated airline moves the demo's flight.
const DEMO_MOVE_MINUTES: i64 = 95;

/// The longest the demo waits for the notification of its change.
const NOTIFICATION_PATIENCE: Duration = Duration::from_secs(120);

/// The refresh sweep end to end, on the simulator `up` runs: the demo user
/// gets a flight of the simulated LATAM (unless they have it), a refresh
/// records the agency's view of it, the simulated airline moves it, and
/// another refresh finds the change; the demo then waits for the
/// notification in the user's inbox and says what they see and after how
/// long. True if it all worked (or there is no simulator to ask).
async fn demo_change(
    client: &Client,
    args: &DemoArgs,
    results: &mut BTreeMap<String, DemoResult>,
) -> anyhow::Result<bool> {
    let data_dir = config::data_dir(&args.client.data_dir.data_dir);
    let Some(simulator) = crate::simulator::SimulatorFile::read(&data_dir)? else {
        if !args.json {
            println!(
                "reservation_refresh: skipped: no agency simulator in {} (`up` runs one unless LONGHAUL_AGENCIES_FILE is set)",
                data_dir.display()
            );
        }
        return Ok(true);
    };
    let sim = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let (airline, provider) = DEMO_AIRLINE;
    // The first of the airline's flights leaving two days from now or later
    // (so that the change is not urgent, and will not have flown by the
    // time the demo is done).
    let mut flight = None;
    for i in 0..100 {
        let number = longhaul_agency_sim::reservation_number(airline, i);
        let url = format!("{}/{airline}/reservations/{number}", simulator.url);
        let found = simulator_json(sim.get(&url), || format!("asking the agency simulator at {url}")).await?;
        let starts_at = found["starts_at"].as_str().and_then(|at| at.parse::<DateTime<Utc>>().ok());
        if starts_at.is_some_and(|at| at > Utc::now() + chrono::Duration::days(2)) {
            flight = Some((number, found));
            break;
        }
    }
    let (number, current) = flight.context("the simulated airline has no flight two days ahead")?;
    let id = match own_reservation(client, &number).await? {
        Some(id) => id,
        None => {
            let body = json!({
                "type": "flight", "reservation_number": number, "provider": provider,
                "starts_at": current["starts_at"], "ends_at": current["ends_at"],
                "origin": "GRU", "destination": "LIS", "city": "Lisbon", "country": "PT",
                "details": {"@type": "FlightReservation", "reservationNumber": number},
            });
            let created = client.send(reqwest::Method::POST, "/v1/reservations", Some(&body), None).await?;
            created["id"].as_str().context("the API answered without a reservation id")?.to_owned()
        }
    };
    // The agency's view of it, recorded before anything changes.
    let baseline = client.submit("reservation_refresh", &json!({})).await.context("submitting reservation_refresh")?;
    let baseline_id = baseline["id"].as_str().context("the API answered without a job id")?;
    client.wait(baseline_id, &progress_bar("reservation_refresh (baseline)", args.json)).await?;

    let url = format!("{}/_sim/{airline}/reservations/{number}/move?minutes={DEMO_MOVE_MINUTES}", simulator.url);
    let moved = simulator_json(sim.post(&url), || format!("asking the agency simulator to move {number}")).await?;
    let changed_at = moved["changed_at"]
        .as_str()
        .and_then(|at| at.parse::<DateTime<Utc>>().ok())
        .context("the simulator answered a move without `changed_at`")?;
    let job = client.submit("reservation_refresh", &json!({})).await.context("submitting reservation_refresh")?;
    let job_id = job["id"].as_str().context("the API answered without a job id")?.to_owned();
    let mut ok = show_job(client, args, "reservation_refresh", job_id, results).await?;

    let notification = wait_for_notification(client, &id, changed_at).await?;
    let change = json!({
        "reservation_id": id, "reservation_number": number, "provider": provider,
        "starts_at": {"from": current["starts_at"], "to": moved["starts_at"]},
        "changed_at": changed_at,
    });
    let seconds = notification.as_ref().and_then(|(_, at)| (*at - changed_at).to_std().ok()).map(|d| d.as_secs_f64());
    if !args.json {
        println!(
            "  the airline moved {provider} {number} by {DEMO_MOVE_MINUTES} minutes at {}",
            changed_at.format("%H:%M:%S UTC")
        );
        match (&notification, seconds) {
            (Some((note, _)), Some(seconds)) => {
                println!(
                    "  the traveler sees: {} — {}",
                    note["title"].as_str().unwrap_or_default(),
                    note["body"].as_str().unwrap_or_default()
                );
                println!(
                    "  {seconds:.1} s from the change at the agency to the inbox: {}/v1/me/notifications",
                    client.base
                );
            }
            _ => println!("  no notification reached the inbox within {} s", NOTIFICATION_PATIENCE.as_secs()),
        }
    }
    ok &= seconds.is_some();
    if let Some(entry) = results.get_mut("reservation_refresh") {
        entry.change = Some(change);
        entry.notified_after_seconds = seconds;
    }
    Ok(ok)
}

/// The simulator's JSON answer to `request`; `what` says what was asked,
/// for the error.
async fn simulator_json(request: reqwest::RequestBuilder, what: impl Fn() -> String) -> anyhow::Result<Value> {
    let response = request
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("{} (is `longhaul up` running, with its simulator?)", what()))?;
    response.json().await.with_context(what)
}

/// The id of the caller's reservation with this number, if they have one.
async fn own_reservation(client: &Client, number: &str) -> anyhow::Result<Option<String>> {
    let mut cursor = String::new();
    loop {
        let page = client
            .send(reqwest::Method::GET, &format!("/v1/reservations?type=flight&limit=200&cursor={cursor}"), None, None)
            .await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if let Some(found) = items.iter().find(|r| r["reservation_number"] == number) {
            return Ok(found["id"].as_str().map(str::to_owned));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return Ok(None),
        }
    }
}

/// Waits for the notification of a change to reservation `id` made at
/// `changed_at` to reach the caller's inbox: it, and when it arrived.
async fn wait_for_notification(
    client: &Client,
    id: &str,
    changed_at: DateTime<Utc>,
) -> anyhow::Result<Option<(Value, DateTime<Utc>)>> {
    let deadline = std::time::Instant::now() + NOTIFICATION_PATIENCE;
    while std::time::Instant::now() < deadline {
        let inbox = client.send(reqwest::Method::GET, "/v1/me/notifications?limit=50", None, None).await?;
        let found = inbox["items"].as_array().into_iter().flatten().find_map(|note| {
            let at = note["created_at"].as_str()?.parse::<DateTime<Utc>>().ok()?;
            (note["type"] == "reservation.changed" && note["data"]["reservation_id"] == id && at >= changed_at)
                .then(|| (note.clone(), at))
        });
        if found.is_some() {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(None)
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let loaded = load_sample_reservations(&client).await.context("loading the sample reservations")?;
    let photos = if cfg!(feature = "video") {
        load_sample_photos(&client).await.context("uploading the sample photos")?
    } else {
        0
    };
    if !args.json {
        if loaded > 0 {
            let trips = client.send(reqwest::Method::GET, "/v1/trips", None, None).await?;
            let trips = trips["items"].as_array().map_or(0, Vec::len);
            println!("loaded {loaded} sample reservations ({trips} trips): {}/v1/reservations", client.base);
        } else {
            println!("sample reservations already loaded: {}/v1/reservations", client.base);
        }
        if photos > 0 {
            println!("uploaded {photos} sample photos: {}/v1/media", client.base);
        }
    }
    // The app's events, stored now, in this hour's partition: the
    // scheduler's leader exports it 5 minutes after it ends. The demo
    // exports the last closed hour (an hour is exported once it has ended,
    // so that it is whole), and builds the funnel of the lake as it is.
    let now = Utc::now();
    let sent = client
        .send(reqwest::Method::POST, "/v1/events", Some(&sample_events(now)), Some(&uuid::Uuid::new_v4().to_string()))
        .await
        .context("sending the sample events")?;
    let hour = now.duration_trunc(chrono::Duration::hours(1)).context("the clock is out of range")?;
    let upload_id = upload_sample_import(&client).await?;
    if !args.json {
        println!(
            "sent {} sample events: {}/v1/events (in the lake once their hour ends: the scheduler exports it at {})",
            sent["accepted"],
            client.base,
            (hour + chrono::Duration::minutes(65)).format("%H:%M UTC")
        );
        println!(
            "uploaded the sample import file (assets/imports/reservations.csv): {}/v1/uploads/{upload_id}",
            client.base
        );
    }
    let mut results = BTreeMap::new();
    let mut all_ok = true;
    let closed = hour - chrono::Duration::hours(1);
    let export = client.submit("events_export", &json!({"hour": closed})).await.context("submitting events_export")?;
    let export_id = export["id"].as_str().context("the API answered without a job id")?.to_owned();
    all_ok &= show_job(&client, &args, "events_export", export_id, &mut results).await?;
    let mut submitted = Vec::new();
    for (name, kind, payload) in demo_jobs(hour, &upload_id) {
        let job = client.submit(kind, &payload).await.with_context(|| format!("submitting {name}"))?;
        let id = job["id"].as_str().context("the API answered without a job id")?.to_owned();
        submitted.push((name, id));
    }
    for (name, id) in submitted {
        all_ok &= show_job(&client, &args, name, id, &mut results).await?;
    }
    all_ok &= demo_change(&client, &args, &mut results).await.context("the refresh demo")?;
    if args.json {
        println!("{}", serde_json::to_string(&results)?);
    }
    if !all_ok {
        bail!("not every demo job succeeded");
    }
    Ok(ExitCode::SUCCESS)
}
