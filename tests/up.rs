//! `longhaul up` as a user meets it: it starts on embedded defaults, serves
//! the demo, and stops cleanly on SIGTERM even with an event stream open.

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use support::{free_port, wait_ready, Launcher};

/// Submits a job; returns it as the API answered.
async fn submit(client: &reqwest::Client, url: &str, token: &str, body: Value) -> Value {
    let response = client.post(format!("{url}/v1/jobs")).bearer_auth(token).json(&body).send().await.expect("submit");
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    response.json().await.expect("a job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_demo_and_stops_cleanly_with_an_event_stream_open() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let database = format!("sqlite://{}", dir.path().join("up.db").display());
    let mut launcher = Launcher::new(&database);
    let url = format!("http://127.0.0.1:{}", free_port());
    let listen = url.trim_start_matches("http://").to_owned();
    let mut up = launcher.spawn(&["up", "--listen", &listen], &[("LONGHAUL_SHUTDOWN_GRACE_SECS", "1")]);
    wait_ready(&format!("{url}/readyz"), &mut up).await;

    // The demo, as the README's first command runs it.
    let data_dir = launcher.data_dir();
    let data_dir = data_dir.to_str().expect("a UTF-8 path");
    let (status, output) =
        launcher.run(&["demo", "--url", &url, "--data-dir", data_dir, "--json"], Duration::from_secs(300)).await;
    assert!(status.success(), "demo failed:\n{output}");
    let json_line = output.lines().find(|line| line.starts_with('{')).expect("demo printed JSON");
    let demo: Value = serde_json::from_str(json_line).expect("valid JSON");
    assert_eq!(demo["noop"]["status"], "succeeded", "{demo}");
    assert!(demo["noop"]["job_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(demo["noop"]["artifacts"].is_array());
    let report = &demo["report_build"];
    assert_eq!(report["status"], "succeeded", "{demo}");
    let names: Vec<&str> =
        report["artifacts"].as_array().expect("artifacts").iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["year-summary-2026.pdf", "year-summary-2026.json", "year-summary-2026.csv"], "{demo}");
    assert!(report["artifacts"][0]["url"].as_str().is_some_and(|u| u.starts_with(&format!("{url}/v1/artifacts/"))));
    // The year video of the sample photos, which the demo uploaded.
    let video = &demo["video_compile"];
    assert_eq!(video["status"], "succeeded", "{demo}");
    let names: Vec<&str> =
        video["artifacts"].as_array().expect("artifacts").iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["video-2026-9x16.mp4", "video-2026-9x16.jpg"], "{demo}");
    // An export of the last closed hour, and the funnel of the lake.
    assert_eq!(demo["events_export"]["status"], "succeeded", "{demo}");
    let funnel = &demo["funnel"];
    assert_eq!(funnel["status"], "succeeded", "{demo}");
    assert_eq!(funnel["artifacts"].as_array().map(Vec::len), Some(3), "{demo}");
    // The sample import file: eleven good rows and one rejected on purpose.
    let import = &demo["bulk_import"];
    assert_eq!(import["status"], "succeeded", "{demo}");
    assert_eq!((import["result"]["rows"].as_u64(), import["result"]["rejected"].as_u64()), (Some(12), Some(1)));
    assert_eq!(
        import["result"]["imported"].as_u64().unwrap_or(0) + import["result"]["unchanged"].as_u64().unwrap_or(0),
        11
    );
    let names: Vec<&str> =
        import["artifacts"].as_array().expect("artifacts").iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["rejects.csv"], "{demo}");

    // A long job, and a client following it.
    let token = launcher.token("dev", "ops", "admin").await;
    let client = reqwest::Client::new();

    // The demo loaded its sample year, and imported eleven reservations of
    // three travellers: an admin of the tenant sees them all, as
    // reservations and as trips (the sample year's six, one per traveller).
    let page = |path: &str| {
        let request = client.get(format!("{url}{path}")).bearer_auth(&token).send();
        async move { request.await.expect("a list").json::<Value>().await.expect("JSON") }
    };
    // And the flight of the simulated airline it moved: 33 + 11 + 1. It
    // makes a trip of its own, or joins the sample year's last one, as the
    // calendar falls.
    assert_eq!(page("/v1/reservations?limit=200").await["items"].as_array().map(Vec::len), Some(33 + 11 + 1));
    let trips = page("/v1/trips").await["items"].as_array().map_or(0, Vec::len);
    assert!((6 + 3..=6 + 3 + 1).contains(&trips), "{trips} trips");

    // The refresh sweep on the agency simulator `up` runs: the simulated
    // airline moved the demo's flight, a refresh found it, and the demo
    // user (the dev admin) was told.
    let refresh = &demo["reservation_refresh"];
    assert_eq!(refresh["status"], "succeeded", "{demo}");
    assert_eq!(refresh["change"]["provider"], "LATAM Airlines", "{demo}");
    let waited = refresh["notified_after_seconds"].as_f64().unwrap_or(-1.0);
    assert!(waited > 0.0 && waited < 120.0, "{demo}");
    // The sweep that found it shows it at once: in the tenant's sweeps view
    // with its staleness, and in the staleness metric.
    let sweeps = page("/v1/admin/sweeps").await;
    let found = sweeps["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|sweep| sweep["changed"].as_i64() >= Some(1))
        .unwrap_or_else(|| panic!("no sweep shows the change: {sweeps}"));
    assert!(found["staleness"]["count"].as_i64() >= Some(1), "{found}");
    assert!(found["staleness"]["p50_seconds"].as_f64().is_some_and(|p50| p50 >= 0.0), "{found}");
    let metrics = client.get(format!("{url}/metrics")).send().await.expect("metrics").text().await.expect("text");
    let staleness = metrics
        .lines()
        .find(|line| line.starts_with("longhaul_sweep_staleness_seconds_count"))
        .unwrap_or_else(|| panic!("no staleness metric in:\n{metrics}"));
    assert!(!staleness.ends_with(" 0"), "{staleness}");
    let own = launcher.token("dev", "admin", "admin").await;
    let inbox: Value = client
        .get(format!("{url}/v1/me/notifications"))
        .bearer_auth(&own)
        .send()
        .await
        .expect("the inbox")
        .json()
        .await
        .expect("JSON");
    let moved = inbox["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|note| note["data"]["reservation_id"] == refresh["change"]["reservation_id"])
        .unwrap_or_else(|| panic!("no notification of the move in {inbox}"));
    assert_eq!(moved["type"], "reservation.changed");
    assert!(moved["title"].as_str().is_some_and(|title| title.contains("LATAM Airlines")), "{moved}");
    assert!(moved["body"].as_str().is_some_and(|body| body.contains("GRU (was ")), "{moved}");
    // The year report and the film the demo made are in the inbox too, and
    // the trip the demo's flight made.
    let types: Vec<&str> = inbox["items"].as_array().into_iter().flatten().filter_map(|n| n["type"].as_str()).collect();
    for kind in ["report.ready", "video.ready", "trip.ready"] {
        assert!(types.contains(&kind), "no {kind} in {types:?}");
    }

    // The film plays: ffprobe reads H.264 and AAC at 1080×1920 from the file
    // the artifact URL serves.
    let film = client
        .get(video["artifacts"][0]["url"].as_str().expect("a URL"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("the film")
        .bytes()
        .await
        .expect("its bytes");
    let film_path = dir.path().join("demo.mp4");
    std::fs::write(&film_path, &film).expect("write the film");
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"])
        .arg(&film_path)
        .output()
        .expect("ffprobe");
    let streams = String::from_utf8_lossy(&probe.stdout);
    assert!(streams.contains("h264,1080,1920") && streams.contains("aac"), "{streams}");

    // A job's artifact: listed on the job once it succeeded, and served from
    // the local object directory.
    let job = submit(&client, &url, &token, json!({"kind": "noop", "payload": {"artifact": "hello from up"}})).await;
    let path = format!("/v1/jobs/{}", job["id"].as_str().expect("an id"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let job = page(&path).await;
        if job["status"] == "succeeded" {
            break job;
        }
        assert!(Instant::now() < deadline, "the artifact job never succeeded: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let artifact = &done["artifacts"][0];
    assert_eq!(artifact["name"], "noop.txt", "{done}");
    let download = client
        .get(format!("{url}{}", artifact["url"].as_str().expect("a URL")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("a download");
    assert_eq!(download.status(), reqwest::StatusCode::OK);
    assert_eq!(download.text().await.expect("the file"), "hello from up");
    let job = submit(&client, &url, &token, json!({"kind": "noop", "payload": {"sleep_ms": 120_000}})).await;
    let id = job["id"].as_str().expect("an id");
    let mut events = client.get(format!("{url}/v1/jobs/{id}/events")).bearer_auth(&token).send().await.expect("events");
    assert!(events.status().is_success());
    let first = events.chunk().await.expect("a first event").expect("data");
    assert!(String::from_utf8_lossy(&first).contains("event: status"));

    // A job that dies (a video for a user with no photos fails permanently)
    // is announced as job.dead, through the outbox, to the log notifier of
    // embedded defaults.
    let dead =
        submit(&client, &url, &token, json!({"kind": "video_compile", "payload": {"year": 2026, "aspect": "16:9"}}))
            .await;
    let dead_id = dead["id"].as_str().expect("an id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !up.log_tail(200).lines().any(|line| line.contains("job.dead") && line.contains(&dead_id)) {
        assert!(Instant::now() < deadline, "no job.dead event logged for {dead_id}:\n{}", up.log_tail(40));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let asked = Instant::now();
    up.signal(Signal::SIGTERM);
    let status = up.wait_for_exit(Duration::from_secs(20)).await.unwrap_or_else(|| {
        panic!("up did not exit within 20 s of SIGTERM:\n{}", up.log_tail(30));
    });
    assert!(status.success(), "up exited with {status}:\n{}", up.log_tail(30));
    // The worker lanes get their grace period (1 s here); the open stream
    // must not hold the process beyond it.
    assert!(asked.elapsed() < Duration::from_secs(8), "took {:?}:\n{}", asked.elapsed(), up.log_tail(30));
}
