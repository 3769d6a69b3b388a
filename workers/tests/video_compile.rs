//! `video_compile` through the real runtime: photos registered as media,
//! their bytes in an object store (a local directory, or S3 on moto_server),
//! the film made with libav and checked with ffprobe.
#![cfg(feature = "video")]

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use longhaul_jobs::{
    media::{check, NewMedia},
    model::{NewJob, Scope, Status},
    objects::ObjectKey,
    store::InsertOutcome,
    testing::{Backend, ObjectBackend, TestObjectStore, TestStore},
    travel::{sample_year, ReservationSource},
    Job, JobKind, Lane,
};
use longhaul_workers::{runtime::Services, video::Timing, Registry, Runtime, WorkerConfig};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

struct Setup {
    store: TestStore,
    objects: TestObjectStore,
    runtime: Runtime,
}

async fn setup(backend: Backend, objects: ObjectBackend) -> Setup {
    setup_with(backend, objects, Duration::from_secs(30)).await
}

async fn setup_with(backend: Backend, objects: ObjectBackend, lease: Duration) -> Setup {
    let store = TestStore::new(backend).await.expect("a store");
    let objects = TestObjectStore::new(objects).await.expect("an object store");
    let services = Services::embedded(store.store.clone()).with_objects(objects.store.clone());
    let config = WorkerConfig {
        lanes: vec![(Lane::Video, 1)],
        poll_interval: Duration::from_millis(50),
        lease,
        heartbeat: lease / 3,
        // Reap expired leases often: a film that outlived its lease without
        // heartbeats would be taken away and run again.
        reap_interval: Duration::from_millis(200),
        ..WorkerConfig::default()
    };
    let runtime = Runtime::start_with(services, Registry::with_defaults(), config);
    Setup { store, objects, runtime }
}

fn asset(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/photos").join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Registers a photo and stores its bytes, as the media API does, and
/// checks them as the API does once they are uploaded.
async fn upload(setup: &Setup, user: &str, bytes: Vec<u8>, taken_at: &str, caption: Option<&str>) -> String {
    let id = upload_unchecked(setup, user, bytes.clone(), taken_at, caption).await;
    let id_uuid = id.parse().expect("a uuid");
    setup
        .store
        .settle_media(id_uuid, &check(&bytes[..bytes.len().min(256 * 1024)], bytes.len() as u64))
        .await
        .expect("settle");
    id
}

/// The same, left `pending`: bytes PUT straight to S3 that the API has not
/// looked at yet. The worker must judge them itself.
async fn upload_unchecked(setup: &Setup, user: &str, bytes: Vec<u8>, taken_at: &str, caption: Option<&str>) -> String {
    let media = setup
        .store
        .insert_media(NewMedia {
            tenant_id: "acme".into(),
            user_id: user.into(),
            declared_type: "image/jpeg".into(),
            taken_at: Some(taken_at.parse::<DateTime<Utc>>().expect("a date")),
            caption: caption.map(str::to_owned),
        })
        .await
        .expect("insert media");
    let key = media.key().expect("a key");
    setup.objects.store.put_bytes(&key, bytes.into(), "application/octet-stream").await.expect("put");
    media.id.to_string()
}

async fn submit(setup: &Setup, user: &str, payload: Value) -> Job {
    match setup.store.insert_job(NewJob::new("acme", user, JobKind::VIDEO_COMPILE, payload)).await.expect("insert") {
        InsertOutcome::Created(job) => job,
        other => panic!("{other:?}"),
    }
}

async fn wait_until(setup: &Setup, job: &Job, done: impl Fn(&Job) -> bool, within: Duration) -> Job {
    let deadline = Instant::now() + within;
    loop {
        let job = setup.store.get_job(&Scope::Platform, job.id).await.expect("get").expect("the job");
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "timed out waiting on {job:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn finished(setup: &Setup, job: &Job) -> Job {
    wait_until(setup, job, |j| j.status.is_final(), Duration::from_secs(300)).await
}

/// Downloads an artifact of `job` to a file.
async fn artifact_file(setup: &Setup, job: &Job, suffix: &str, dir: &Path) -> PathBuf {
    let artifacts = setup.store.job_artifacts(&[job.id]).await.expect("artifacts");
    let artifact =
        artifacts.iter().find(|a| a.name.ends_with(suffix)).unwrap_or_else(|| panic!("no {suffix} in {artifacts:?}"));
    let path = artifact.object_key.strip_prefix("tenants/acme/").expect("under the tenant");
    let key = ObjectKey::new("acme", path).expect("a key");
    let mut reader = setup.objects.store.get(&key).await.expect("get").expect("stored");
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).await.expect("read");
    assert_eq!(bytes.len() as i64, artifact.size_bytes);
    let file = dir.join(&artifact.name);
    std::fs::write(&file, bytes).expect("write");
    file
}

fn ffprobe(file: &Path) -> Value {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams", "-show_format"])
        .arg(file)
        .output()
        .expect("ffprobe (Debian's ffmpeg package) must be installed");
    assert!(output.status.success(), "ffprobe: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("ffprobe JSON")
}

/// The top-level MP4 boxes, in order.
fn top_level_boxes(file: &Path) -> Vec<String> {
    let bytes = std::fs::read(file).expect("read");
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let mut size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        let name = String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned();
        if size == 1 {
            size = u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap());
        }
        boxes.push(name);
        if size < 8 {
            break;
        }
        at += size as usize;
    }
    boxes
}

/// One frame at `seconds`, as 8-bit gray.
fn gray_frame(file: &Path, seconds: f64) -> Vec<u8> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &seconds.to_string(), "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg");
    assert!(output.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// A PNG whose header says `width`×`height`, with no pixels behind it.
fn huge_png_header(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    // The start of a zlib stream: enough for a decoder to read the header.
    let idat = b"IDAT\x78\x9c".to_vec();
    png.extend(2u32.to_be_bytes());
    png.extend(&idat);
    png.extend(crc32(&idat).to_be_bytes());
    png.extend(0u32.to_be_bytes());
    png.extend(b"IEND");
    png.extend(crc32(b"IEND").to_be_bytes());
    png
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portrait_film_of_the_year_with_music_captions_and_the_bad_photos_skipped() {
    // On S3 (moto_server): the photos are read from the bucket, the film
    // written to it.
    let setup = setup(Backend::Sqlite, ObjectBackend::S3).await;
    let year = sample_year().expect("sample data");
    setup.store.insert_reservations("acme", "ana", ReservationSource::Manual, &year).await.expect("reservations");

    // Good photos: EXIF-rotated, PNG with alpha, WebP, CMYK and grayscale.
    let mut good = Vec::new();
    for (name, taken_at) in [
        ("05-rio-de-janeiro.jpg", "2026-07-11T18:10:00Z"),
        ("06-copacabana.png", "2026-07-12T10:00:00Z"),
        ("08-pampas.webp", "2026-09-06T12:00:00Z"),
        ("09-madrid.jpg", "2026-10-11T12:00:00Z"),
        ("02-central-park.jpg", "2026-02-16T15:05:00Z"),
    ] {
        good.push(upload(&setup, "ana", asset(name), taken_at, None).await);
    }
    // Bad ones, each skipped with its reason.
    let mut truncated = asset("01-new-york.jpg");
    truncated.truncate(2_000);
    let truncated = upload(&setup, "ana", truncated, "2026-02-14T22:20:00Z", None).await;
    let text = upload(&setup, "ana", b"this is not a photo".to_vec(), "2026-03-01T12:00:00Z", None).await;
    let huge = upload_unchecked(&setup, "ana", huge_png_header(20_000, 10_000), "2026-04-01T12:00:00Z", None).await;
    // Another year and another user: not in this film.
    upload(&setup, "ana", asset("09-madrid.jpg"), "2025-10-11T12:00:00Z", None).await;
    upload(&setup, "bob", asset("10-paris.jpg"), "2026-10-14T12:00:00Z", None).await;

    let job = submit(&setup, "ana", json!({"year": 2026, "aspect": "9:16", "name": "Ana"})).await;
    let job = finished(&setup, &job).await;
    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    let result = job.result.clone().expect("a result");
    assert_eq!(result["photos"], 5, "{result}");
    let skipped: Vec<(String, String)> = result["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s["reason"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    let reason = |id: &str| skipped.iter().find(|(s, _)| s == id).map(|(_, r)| r.clone()).unwrap_or_default();
    assert!(reason(&truncated).contains("corrupt"), "{skipped:?}");
    assert!(reason(&text).contains("rejected when uploaded"), "{skipped:?}");
    assert!(reason(&huge).contains("megapixels"), "{skipped:?}");
    for good in &good {
        assert!(reason(good).is_empty(), "{good} was skipped: {skipped:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let film = artifact_file(&setup, &job, ".mp4", dir.path()).await;
    let probe = ffprobe(&film);
    let streams = probe["streams"].as_array().expect("streams");
    let video = streams.iter().find(|s| s["codec_type"] == "video").expect("a video stream");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").expect("an audio stream");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(1080), Some(1920)));
    assert_eq!(video["pix_fmt"], "yuv420p");
    assert_eq!(video["color_space"], "bt709");
    assert_eq!(video["color_primaries"], "bt709");
    assert_eq!(video["color_transfer"], "bt709");
    assert_eq!(video["color_range"], "tv");
    assert_eq!(audio["codec_name"], "aac");
    assert_eq!(audio["sample_rate"], "48000");
    let planned = Timing::default().seconds(5);
    let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((duration - planned).abs() <= 0.2, "{duration} s, planned {planned} s");
    let video_duration: f64 = video["duration"].as_str().unwrap().parse().unwrap();
    assert!((video_duration - planned).abs() <= 0.2, "video {video_duration} s, planned {planned} s");
    assert_eq!(result["duration_seconds"].as_f64(), Some(planned));

    // faststart: the index before the media data.
    let boxes = top_level_boxes(&film);
    let moov = boxes.iter().position(|b| b == "moov").expect("moov");
    let mdat = boxes.iter().position(|b| b == "mdat").expect("mdat");
    assert!(moov < mdat, "moov must come first: {boxes:?}");

    // The title card has something on it: bright text on a dark card.
    let title = gray_frame(&film, 1.0);
    assert_eq!(title.len(), 1080 * 1920);
    let bright = title.iter().filter(|&&y| y > 200).count();
    let dark = title.iter().filter(|&&y| y < 80).count();
    assert!(bright > 5_000 && dark > 500_000, "bright {bright}, dark {dark}");

    // The thumbnail is a half-size JPEG.
    let thumbnail = artifact_file(&setup, &job, ".jpg", dir.path()).await;
    let image = image::open(&thumbnail).expect("a JPEG thumbnail");
    assert_eq!((image.width(), image.height()), (540, 960));
    setup.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_landscape_film_of_chosen_photos_without_music_outlives_its_lease() {
    // The encode runs for several seconds, many times the 600 ms lease: the
    // heartbeats must keep it ours, and it must succeed on its first attempt.
    let setup = setup_with(Backend::Postgres, ObjectBackend::File, Duration::from_millis(600)).await;
    let one = upload(&setup, "ana", asset("11-tokyo.jpg"), "2026-12-05T12:00:00Z", None).await;
    let two = upload(&setup, "ana", asset("04-porto.jpg"), "2026-05-06T20:35:00Z", None).await;
    let job = submit(
        &setup,
        "ana",
        json!({"year": 2026, "aspect": "16:9", "media": [one, two, "not-a-uuid"], "music": "none"}),
    )
    .await;
    let job = finished(&setup, &job).await;
    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    assert_eq!(job.attempts, 1, "the lease was lost mid-encode: {job:?}");
    let took = job.finished_at.zip(job.started_at).map(|(end, start)| (end - start).num_milliseconds()).unwrap_or(0);
    assert!(took > 1_800, "the film took {took} ms: not long enough to prove anything about the lease");
    let result = job.result.clone().expect("a result");
    assert_eq!(result["photos"], 2);
    assert_eq!(result["skipped"][0]["id"], "not-a-uuid");
    let dir = tempfile::tempdir().unwrap();
    let film = artifact_file(&setup, &job, ".mp4", dir.path()).await;
    let probe = ffprobe(&film);
    let streams = probe["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1, "no music, no audio stream: {streams:?}");
    assert_eq!((streams[0]["width"].as_u64(), streams[0]["height"].as_u64()), (Some(1920), Some(1080)));
    let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((duration - Timing::default().seconds(2)).abs() <= 0.2, "{duration}");
    setup.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_the_encode_within_two_seconds_and_leaves_no_artifact() {
    let setup = setup(Backend::Sqlite, ObjectBackend::File).await;
    for (i, name) in
        ["01-new-york.jpg", "03-lisbon.jpg", "05-rio-de-janeiro.jpg", "07-buenos-aires.jpg"].iter().enumerate()
    {
        for copy in 0..3 {
            upload(&setup, "ana", asset(name), &format!("2026-0{}-1{copy}T12:00:00Z", i + 1), None).await;
        }
    }
    let job = submit(&setup, "ana", json!({"year": 2026, "aspect": "9:16"})).await;
    // Progress moves as the frames are drawn.
    wait_until(&setup, &job, |j| j.status == Status::Running && j.progress >= 2, Duration::from_secs(120)).await;
    let asked = Instant::now();
    let scope = Scope::User { tenant_id: "acme".into(), user_id: "ana".into() };
    setup.store.cancel_job(&scope, job.id).await.expect("cancel").expect("the job");
    let job = wait_until(&setup, &job, |j| j.status.is_final(), Duration::from_secs(30)).await;
    let took = asked.elapsed();
    assert_eq!(job.status, Status::Cancelled, "{job:?}");
    assert!(took <= Duration::from_secs(2), "the encode took {took:?} to stop");
    assert!(setup.store.job_artifacts(&[job.id]).await.expect("artifacts").is_empty());
    setup.runtime.shutdown().await;
}

async fn no_usable_photos_is_a_permanent_error_that_says_why(backend: Backend) {
    let setup = setup(backend, ObjectBackend::File).await;
    let job = submit(&setup, "ana", json!({"year": 2026, "aspect": "9:16"})).await;
    let job = finished(&setup, &job).await;
    assert_eq!(job.status, Status::Dead);
    assert_eq!(job.attempts, 1, "permanent: not retried");
    assert!(job.error.as_deref().unwrap_or_default().contains("no photos from 2026"), "{:?}", job.error);

    let mut broken = asset("03-lisbon.jpg");
    broken.truncate(3_000);
    upload(&setup, "ana", broken, "2026-05-02T19:40:00Z", None).await;
    upload(&setup, "ana", vec![0u8; 100], "2026-05-03T19:40:00Z", None).await;
    let job = submit(&setup, "ana", json!({"year": 2026, "aspect": "16:9"})).await;
    let job = finished(&setup, &job).await;
    assert_eq!(job.status, Status::Dead);
    let error = job.error.unwrap_or_default();
    assert!(error.contains("none of the photos could be used") && error.contains("corrupt"), "{error}");
    setup.runtime.shutdown().await;
}

longhaul_jobs::on_every_backend!(no_usable_photos_is_a_permanent_error_that_says_why);
