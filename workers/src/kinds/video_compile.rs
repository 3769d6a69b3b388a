//! `video_compile`: a user's year as a short film.
//!
//! The kind gathers the photos (the payload's `media` ids, or every photo of
//! the user's taken in the year), captions each with its date and the trip
//! it was taken on, counts the year for the cards, and hands the rest to
//! [`crate::video`] on a blocking thread. The photos are read from the
//! object store one at a time, as the film needs them.
//!
//! Progress follows the frames; a cancel (or a lost lease, or the shutdown
//! grace running out) stops the encode at the next frame. The MP4 is
//! written to a temporary file and uploaded only once it is complete
//! (multipart on S3), under this attempt's own key, and it is listed on the
//! job only when the job succeeds: a killed worker leaves nothing visible.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Utc};
use longhaul_jobs::{
    kind::{self, Music, VideoCompilePayload},
    media::{Media, MediaStatus, MAX_MEDIA_BYTES},
    model::Scope,
    objects::DynObjectStore,
    travel::Trip,
};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    video::{self, film::describe, Card, FilmError, FilmSpec, PhotoSource, PhotoSpec, Skipped, Timing, Watch, X264},
    Handler, JobContext, JobError, JobResult,
};

/// The most photos one film shows: about 10 minutes.
pub const MAX_PHOTOS: usize = 300;

/// The soundtrack when the payload names none.
pub const DEFAULT_MUSIC: Music = Music::Daybreak;

pub struct VideoCompile;

#[async_trait]
impl Handler for VideoCompile {
    type Kind = kind::VideoCompile;

    async fn run(&self, ctx: &JobContext, payload: VideoCompilePayload) -> JobResult {
        let aspect = payload.aspect;
        let track = payload.music.unwrap_or(DEFAULT_MUSIC).track();
        let music = match track {
            Some(name) => Some(
                video::music(name).ok_or_else(|| JobError::permanent(format!("there is no music called {name:?}")))?,
            ),
            None => None,
        };
        let objects = ctx.objects()?.clone();
        let scope = Scope::User { tenant_id: ctx.job.tenant_id.clone(), user_id: ctx.job.user_id.clone() };

        let (media, mut skipped) = gather(ctx, &scope, &payload).await?;
        if media.is_empty() {
            return Err(JobError::permanent(if skipped.is_empty() {
                format!("there are no photos from {} to make a video of; upload some with POST /v1/media", payload.year)
            } else {
                format!("none of the photos could be used: {}", describe(&skipped))
            }));
        }
        let trips = trips_of(ctx, &scope).await?;
        let summary = ctx
            .store
            .year_summary(&ctx.job.tenant_id, &ctx.job.user_id, payload.year)
            .await
            .map_err(|err| JobError::retryable(format!("cannot count the year: {err}")))?;

        let photos: Vec<PhotoSpec> = media.iter().map(|m| caption(m, &trips)).collect();
        let countries = summary.countries.len();
        let spec = FilmSpec {
            aspect,
            timing: Timing::default(),
            x264: X264::default(),
            title: Card {
                headline: payload.year.to_string(),
                subtitle: match payload.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                    Some(name) => format!("{name}'s year in travel"),
                    None => "A year in travel".to_owned(),
                },
                lines: title_lines(
                    summary.trips,
                    summary.reservations,
                    summary.cities.len(),
                    countries,
                    summary.distance_km,
                ),
            },
            end: Card {
                headline: payload.year.to_string(),
                subtitle: "That was the year".to_owned(),
                lines: vec![
                    "{photos} photos".to_owned(),
                    format!(
                        "{} · {}",
                        plural(summary.trips, "trip", "trips"),
                        plural(countries as i64, "country", "countries")
                    ),
                    format!("See you in {}", payload.year + 1),
                ],
            },
            photos,
            music,
        };

        let dir = tempfile::tempdir()
            .map_err(|err| JobError::retryable(format!("cannot make a working directory: {err}")))?;
        let out = dir.path().join("film.mp4");
        let progress = Arc::new(Progress::default());
        let source = StoreSource {
            objects,
            media: media.clone(),
            runtime: tokio::runtime::Handle::current(),
            cancel: ctx.cancel.clone(),
        };
        let watch = JobWatch { progress: progress.clone(), cancel: ctx.cancel.clone() };
        let reporter = tokio::spawn(report_progress(ctx.store.clone(), ctx.attempt(), progress.clone()));
        let compiled = {
            let out = out.clone();
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                let _span = span.enter();
                video::compile(&spec, &source, &watch, &out)
            })
            .await
        };
        reporter.abort();
        let film = match compiled {
            Ok(Ok(film)) => film,
            Ok(Err(FilmError::Cancelled)) => return Err(JobError::Cancelled),
            Ok(Err(FilmError::NoUsablePhotos { skipped: more })) => {
                skipped.extend(more);
                return Err(JobError::permanent(format!("none of the photos could be used: {}", describe(&skipped))));
            }
            Ok(Err(FilmError::Failed(reason))) => {
                return Err(JobError::retryable(format!("the video could not be made: {reason}")))
            }
            Err(join) => return Err(JobError::retryable(format!("the video encoder stopped: {join}"))),
        };
        ctx.set_progress(99).await;
        let name = format!("video-{}-{}.mp4", payload.year, aspect.slug());
        ctx.put_artifact_file(&name, "video/mp4", &out).await?;
        let thumbnail = format!("video-{}-{}.jpg", payload.year, aspect.slug());
        let thumbnail_bytes = film.thumbnail.len();
        ctx.put_artifact_bytes(&thumbnail, "image/jpeg", film.thumbnail.into()).await?;
        skipped.extend(film.skipped);
        Ok(Some(json!({
            "year": payload.year,
            "aspect": aspect.as_str(),
            "width": film.width,
            "height": film.height,
            "fps": film.fps,
            "frames": film.frames,
            "duration_seconds": film.seconds,
            "music": track,
            "photos": film.shown.len(),
            "skipped": skipped,
            "files": [name, thumbnail],
            "thumbnail_bytes": thumbnail_bytes,
        })))
    }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn title_lines(trips: i64, reservations: i64, cities: usize, countries: usize, km: i64) -> Vec<String> {
    let mut lines =
        vec![format!("{} · {}", plural(trips, "trip", "trips"), plural(reservations, "reservation", "reservations"))];
    if cities > 0 {
        lines.push(format!(
            "{} · {}",
            plural(cities as i64, "city", "cities"),
            plural(countries as i64, "country", "countries")
        ));
    }
    if km > 0 {
        lines.push(format!("{} km flown", thousands(km)));
    }
    lines
}

/// 48213 → "48,213": the cards are in English.
fn thousands(n: i64) -> String {
    super::report_build::locale::Locale::En.number(n)
}

/// When a photo was taken, or else when it was uploaded.
fn when(media: &Media) -> DateTime<Utc> {
    media.taken_at.unwrap_or(media.created_at)
}

fn rejected(media: &Media) -> Skipped {
    Skipped {
        id: media.id.to_string(),
        reason: format!("rejected when uploaded: {}", media.error.as_deref().unwrap_or("not a usable image")),
    }
}

/// The photos to show, in the order taken, and those left out.
async fn gather(
    ctx: &JobContext,
    scope: &Scope,
    payload: &VideoCompilePayload,
) -> Result<(Vec<Media>, Vec<Skipped>), JobError> {
    let store_error =
        |err: longhaul_jobs::store::StoreError| JobError::retryable(format!("cannot list the photos: {err}"));
    let mut skipped = Vec::new();
    let mut chosen = Vec::new();
    match &payload.media {
        Some(ids) => {
            for id in ids {
                let found = match Uuid::parse_str(id) {
                    Ok(uuid) => ctx.store.get_media(scope, uuid).await.map_err(store_error)?,
                    Err(_) => None,
                };
                match found {
                    Some(media) if media.status == MediaStatus::Rejected => skipped.push(rejected(&media)),
                    Some(media) => chosen.push(media),
                    None => skipped.push(Skipped { id: id.clone(), reason: "no such photo".to_owned() }),
                }
            }
        }
        None => {
            let mut after = None;
            loop {
                let page = ctx.store.list_media(scope, after, 500).await.map_err(store_error)?;
                let Some(last) = page.last() else { break };
                after = Some((last.created_at, last.id));
                let full = page.len() == 500;
                for media in page.into_iter().filter(|m| when(m).year() == payload.year) {
                    if media.status == MediaStatus::Rejected {
                        skipped.push(rejected(&media));
                    } else {
                        chosen.push(media);
                    }
                }
                if !full {
                    break;
                }
            }
            chosen.sort_by_key(|m| (when(m), m.id));
        }
    }
    if chosen.len() > MAX_PHOTOS {
        for media in chosen.drain(MAX_PHOTOS..) {
            skipped.push(Skipped {
                id: media.id.to_string(),
                reason: format!("a video shows at most {MAX_PHOTOS} photos"),
            });
        }
    }
    Ok((chosen, skipped))
}

async fn trips_of(ctx: &JobContext, scope: &Scope) -> Result<Vec<Trip>, JobError> {
    let mut trips = Vec::new();
    let mut after = None;
    loop {
        let page = ctx
            .store
            .list_trips(scope, after, 500)
            .await
            .map_err(|err| JobError::retryable(format!("cannot list the trips: {err}")))?;
        let Some(last) = page.last() else { break };
        after = Some((last.starts_at, last.id));
        let full = page.len() == 500;
        trips.extend(page);
        if !full {
            break;
        }
    }
    Ok(trips)
}

/// The caption of a photo: its own caption or the trip it was taken on (the
/// trip's place: "Lisbon" of "Lisbon, May 2026"), and its date.
///
/// Dates are UTC: longhaul has no time zone for a user yet, so a photo taken
/// late on 31 December west of Greenwich counts in the next year's film.
fn caption(media: &Media, trips: &[Trip]) -> PhotoSpec {
    let taken = when(media);
    let trip = trips
        .iter()
        .find(|t| t.starts_at.date_naive() <= taken.date_naive() && taken.date_naive() <= t.ends_at.date_naive());
    let place = trip.map(|t| t.name.split(", ").next().unwrap_or(&t.name).to_owned());
    let title = media.caption.clone().filter(|c| !c.trim().is_empty()).or(place).unwrap_or_default();
    PhotoSpec { id: media.id.to_string(), title, detail: taken.format("%-d %B %Y").to_string() }
}

/// Reads each photo from the object store when the film asks for it, from
/// the blocking thread the film runs on.
struct StoreSource {
    objects: DynObjectStore,
    media: Vec<Media>,
    runtime: tokio::runtime::Handle,
    /// A read gives up at once on a cancel, and after [`READ_TIMEOUT`].
    cancel: CancellationToken,
}

/// The longest one photo's download may take: 25 MiB at a crawl.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl PhotoSource for StoreSource {
    fn read(&self, index: usize) -> Result<Vec<u8>, String> {
        let media = self.media.get(index).ok_or("no such photo")?;
        let key = media.key().map_err(|err| err.to_string())?;
        let read = async {
            let Some(mut reader) = self.objects.get(&key).await.map_err(|err| format!("cannot read it: {err}"))? else {
                return Err("it was never uploaded".to_owned());
            };
            let mut bytes = Vec::new();
            let limit = MAX_MEDIA_BYTES + 1;
            (&mut reader).take(limit).read_to_end(&mut bytes).await.map_err(|err| format!("cannot read it: {err}"))?;
            if bytes.len() as u64 >= limit {
                return Err(format!("over the {} MiB limit", MAX_MEDIA_BYTES >> 20));
            }
            Ok(bytes)
        };
        self.runtime.block_on(async {
            tokio::select! {
                _ = self.cancel.cancelled() => Err("the job was cancelled".to_owned()),
                read = tokio::time::timeout(READ_TIMEOUT, read) => {
                    read.unwrap_or_else(|_| Err(format!("reading it took over {} s", READ_TIMEOUT.as_secs())))
                }
            }
        })
    }
}

/// Frames drawn and expected, shared with the progress reporter.
#[derive(Debug, Default)]
struct Progress {
    frame: AtomicU64,
    total: AtomicU64,
}

struct JobWatch {
    progress: Arc<Progress>,
    cancel: CancellationToken,
}

impl Watch for JobWatch {
    fn progress(&self, frame: u64, total: u64) {
        self.progress.frame.store(frame, Ordering::Relaxed);
        self.progress.total.store(total, Ordering::Relaxed);
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// Writes progress twice a second while it moves: frames are 0–98 %, the
/// upload the rest.
async fn report_progress(
    store: longhaul_jobs::DynStore,
    attempt: longhaul_jobs::store::AttemptRef,
    progress: Arc<Progress>,
) {
    let mut last = -1;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (frame, total) = (progress.frame.load(Ordering::Relaxed), progress.total.load(Ordering::Relaxed));
        if total == 0 {
            continue;
        }
        let percent = (frame.min(total) * 98 / total) as i16;
        if percent != last {
            last = percent;
            if let Err(err) = store.set_progress(attempt, percent).await {
                tracing::warn!(error = %err, "could not record progress");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        assert_eq!(thousands(48_213), "48,213");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(plural(1, "trip", "trips"), "1 trip");
        assert_eq!(title_lines(6, 33, 0, 0, 0), vec!["6 trips · 33 reservations"]);
    }
}
