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
    kind::ReportLocale,
    kind::{self, Music, VideoCompilePayload},
    media::{Media, MediaStatus, MAX_MEDIA_BYTES},
    model::Scope,
    objects::DynObjectStore,
    travel::{Trip, YearSummary, Zone},
};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::report_build::locale::Locale;
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
        // The year, the photos' days and the cards are the owner's: in their
        // zone, and in the payload's language, else their profile's.
        let profile = ctx.owner_profile().await?;
        let zone = Zone::Named(profile.zone());
        let locale = Locale::from(payload.locale.or_else(|| profile.report_locale()).unwrap_or(ReportLocale::En));

        let (media, mut skipped) = gather(ctx, &scope, &payload, zone).await?;
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
            .year_summary(&ctx.job.tenant_id, &ctx.job.user_id, payload.year, zone)
            .await
            .map_err(|err| JobError::retryable(format!("cannot count the year: {err}")))?;

        let photos: Vec<PhotoSpec> = media.iter().map(|m| caption(m, &trips, zone, locale)).collect();
        let name = payload.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        let (title, end) = cards(locale, payload.year, name, &summary);
        let spec = FilmSpec { aspect, timing: Timing::default(), x264: X264::default(), title, end, photos, music };

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

/// The title and end cards of a year, in `locale`'s words.
fn cards(locale: Locale, year: i32, name: Option<&str>, summary: &YearSummary) -> (Card, Card) {
    let w = Words::of(locale);
    let countries = summary.countries.len() as i64;
    let mut lines =
        vec![format!("{} · {}", w.count(summary.trips, w.trip), w.count(summary.reservations, w.reservation))];
    if !summary.cities.is_empty() {
        lines.push(format!("{} · {}", w.count(summary.cities.len() as i64, w.city), w.count(countries, w.country)));
    }
    if summary.distance_km > 0 {
        lines.push(w.flown.replace("{km}", &locale.number(summary.distance_km)));
    }
    let title = Card {
        headline: year.to_string(),
        subtitle: match name {
            Some(name) => w.whose_year.replace("{name}", name),
            None => w.a_year.to_owned(),
        },
        lines,
    };
    let end = Card {
        headline: year.to_string(),
        subtitle: w.that_was.to_owned(),
        lines: vec![
            w.photos.to_owned(),
            format!("{} · {}", w.count(summary.trips, w.trip), w.count(countries, w.country)),
            w.see_you.replace("{year}", &(year + 1).to_string()),
        ],
    };
    (title, end)
}

/// What the cards say, in one language. `(one, many)` pairs are counted
/// nouns.
struct Words {
    whose_year: &'static str,
    a_year: &'static str,
    that_was: &'static str,
    /// `{photos}` is the film's own count.
    photos: &'static str,
    see_you: &'static str,
    flown: &'static str,
    trip: (&'static str, &'static str),
    reservation: (&'static str, &'static str),
    city: (&'static str, &'static str),
    country: (&'static str, &'static str),
    locale: Locale,
}

impl Words {
    fn of(locale: Locale) -> Words {
        match locale {
            Locale::En => Words {
                whose_year: "{name}'s year in travel",
                a_year: "A year in travel",
                that_was: "That was the year",
                photos: "{photos} photos",
                see_you: "See you in {year}",
                flown: "{km} km flown",
                trip: ("trip", "trips"),
                reservation: ("reservation", "reservations"),
                city: ("city", "cities"),
                country: ("country", "countries"),
                locale,
            },
            Locale::PtBr => Words {
                whose_year: "O ano de viagens de {name}",
                a_year: "Um ano de viagens",
                that_was: "Esse foi o ano",
                photos: "{photos} fotos",
                see_you: "Até {year}",
                flown: "{km} km voados",
                trip: ("viagem", "viagens"),
                reservation: ("reserva", "reservas"),
                city: ("cidade", "cidades"),
                country: ("país", "países"),
                locale,
            },
        }
    }

    /// "1 trip", "48,213 trips"; "1 viagem", "2 viagens".
    fn count(&self, n: i64, (one, many): (&str, &str)) -> String {
        format!("{} {}", self.locale.number(n), if n == 1 { one } else { many })
    }
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
    zone: Zone,
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
                for media in page.into_iter().filter(|m| zone.local(when(m)).year() == payload.year) {
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
/// trip's place: "Lisbon" of "Lisbon, May 2026"), and its date. Days are
/// the owner's, in their zone: a photo taken late on 31 December west of
/// Greenwich is in that year's film.
fn caption(media: &Media, trips: &[Trip], zone: Zone, locale: Locale) -> PhotoSpec {
    let taken = zone.local(when(media)).date_naive();
    let day = |at: DateTime<Utc>| zone.local(at).date_naive();
    let trip = trips.iter().find(|t| day(t.starts_at) <= taken && taken <= day(t.ends_at));
    let place = trip.map(|t| t.name.split(", ").next().unwrap_or(&t.name).to_owned());
    let title = media.caption.clone().filter(|c| !c.trim().is_empty()).or(place).unwrap_or_default();
    PhotoSpec { id: media.id.to_string(), title, detail: locale.date(taken) }
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

    use longhaul_jobs::travel::{ReservationType, TripSpan, YearFigures, Zone};

    fn year(trips: usize, places: &[(&str, &str)], routes: &[(&str, &str)]) -> YearSummary {
        let at: DateTime<Utc> = "2026-05-01T10:00:00Z".parse().expect("a time");
        let figures = YearFigures {
            by_type: vec![(ReservationType::Flight, 33)],
            trips: vec![TripSpan { name: "Lisbon, May 2026".into(), starts_at: at, ends_at: at }; trips],
            places: places.iter().map(|(c, k)| (Some((*c).to_owned()), Some((*k).to_owned()))).collect(),
            routes: routes.iter().map(|(o, d)| (Some((*o).to_owned()), Some((*d).to_owned()), 1)).collect(),
            ..YearFigures::default()
        };
        YearSummary::assemble(2026, Zone::UTC, figures)
    }

    #[test]
    fn cards_are_in_the_owners_language() {
        let summary = year(1, &[("Lisbon", "PT"), ("Porto", "PT")], &[("GRU", "LIS"), ("LIS", "GRU")]);
        let (title, end) = cards(Locale::En, 2026, Some("Ana"), &summary);
        assert_eq!(title.subtitle, "Ana's year in travel");
        assert_eq!(title.lines, ["1 trip · 33 reservations", "2 cities · 1 country", "15,871 km flown"]);
        assert_eq!(end.subtitle, "That was the year");
        assert_eq!(end.lines, ["{photos} photos", "1 trip · 1 country", "See you in 2027"]);

        let (title, end) = cards(Locale::PtBr, 2026, Some("Ana"), &summary);
        assert_eq!(title.subtitle, "O ano de viagens de Ana");
        assert_eq!(title.lines, ["1 viagem · 33 reservas", "2 cidades · 1 país", "15.871 km voados"]);
        assert_eq!(end.subtitle, "Esse foi o ano");
        assert_eq!(end.lines, ["{photos} fotos", "1 viagem · 1 país", "Até 2027"]);

        // No name, nowhere, no flights: only what there is.
        let (title, _) = cards(Locale::PtBr, 2026, None, &year(6, &[], &[]));
        assert_eq!(
            (title.subtitle.as_str(), title.lines.as_slice()),
            ("Um ano de viagens", &["6 viagens · 33 reservas".to_owned()][..])
        );
    }

    #[test]
    fn photos_are_dated_in_the_owners_zone_and_language() {
        let time = |text: &str| -> DateTime<Utc> { text.parse().expect("a time") };
        let media = Media {
            id: Uuid::nil(),
            tenant_id: "t".into(),
            user_id: "u".into(),
            status: MediaStatus::Ready,
            declared_type: "image/jpeg".into(),
            content_type: Some("image/jpeg".into()),
            size_bytes: Some(1),
            width: Some(1),
            height: Some(1),
            // 23:30 on 31 December in São Paulo.
            taken_at: Some(time("2027-01-01T02:30:00Z")),
            caption: None,
            error: None,
            created_at: time("2027-01-02T00:00:00Z"),
            object_key: String::new(),
        };
        let trip = Trip {
            id: Uuid::nil(),
            name: "São Paulo, December 2026".into(),
            starts_at: time("2026-12-30T12:00:00Z"),
            ends_at: time("2026-12-31T20:00:00Z"),
            reservation_count: 1,
        };
        let sao_paulo = Zone::parse("America/Sao_Paulo").expect("a zone");
        let photo = caption(&media, std::slice::from_ref(&trip), sao_paulo, Locale::PtBr);
        assert_eq!((photo.title.as_str(), photo.detail.as_str()), ("São Paulo", "31 de dezembro de 2026"));
        let photo = caption(&media, &[trip], Zone::UTC, Locale::En);
        assert_eq!((photo.title.as_str(), photo.detail.as_str()), ("", "January 1, 2027"));
    }
}
