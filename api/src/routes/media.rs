//! `/v1/media`: photos users register for their yearly video.
//!
//! `POST` registers a photo and answers with where to upload it: a
//! presigned S3 PUT, or this API's own `PUT /v1/media/{id}/upload` on a
//! local object directory (send the same bearer token). Uploaded bytes are
//! checked before anything uses them: the type is sniffed from the content,
//! the image's header must parse, and the size and pixel count are capped
//! ([`MAX_MEDIA_BYTES`], 100 megapixels). A client that declares the
//! photo's size (`size_bytes`) gets a presigned S3 PUT for exactly that many
//! bytes (the length is signed, so S3 itself refuses more); one that does
//! not uploads through the API, which counts as it reads. A photo uploaded
//! to S3 is checked when it is read back (`GET /v1/media/{id}`), or in the
//! background after a list showed it pending: a list never reads photos
//! inline. Photos live under the tenant's prefix; someone else's is a 404.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use longhaul_jobs::media::{Media, MediaCheck, MediaStatus, NewMedia, Probe, MAX_MEDIA_BYTES, MEDIA_TYPES};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::Principal,
    extract::JsonBody,
    paging,
    problem::Problem,
    routes::{
        files::{object_error, objects, spool, UPLOAD_FOR},
        travel::{decode_cursor, trim_page},
    },
    server::BodyKind,
    AppState,
};

/// The longest caption, in characters as sent.
pub(crate) const CAPTION_MAX_CHARS: usize = 200;

/// The body of `POST /v1/media`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMediaBody {
    /// `image/jpeg`, `image/png` or `image/webp`. The bytes decide in the end.
    pub content_type: String,
    /// When the photo was taken; its caption's date in the video.
    pub taken_at: Option<DateTime<Utc>>,
    /// At most 200 characters.
    pub caption: Option<String>,
    /// The photo's size in bytes, 1 to 26,214,400 (25 MiB). With it, and an
    /// S3 object store, `upload_url` is a presigned S3 PUT of exactly that
    /// many bytes; without it, the upload goes through the API.
    #[schema(minimum = 1, maximum = 26214400)]
    pub size_bytes: Option<u64>,
}

/// A registered photo and where to upload it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaCreated {
    #[serde(flatten)]
    pub media: Media,
    /// PUT the bytes here: a presigned S3 URL (send `Content-Type` as
    /// declared), or this API's upload path (send the bearer token too).
    pub upload_url: String,
    /// When `upload_url` stops working.
    pub upload_expires_at: DateTime<Utc>,
}

/// One page of photos, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaList {
    pub items: Vec<Media>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct MediaQuery {
    #[param(schema_with = paging::time_cursor_schema)]
    pub cursor: Option<String>,
    #[param(schema_with = paging::items_limit_schema)]
    pub limit: Option<String>,
}

fn not_found(raw: &str) -> Problem {
    Problem::not_found(format!("no photo `{raw}`"))
}

fn parse_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| not_found(raw))
}

/// Checks a pending photo whose bytes may have reached the object store
/// directly (a presigned S3 PUT). Returns it as it is now.
async fn settle(state: &AppState, media: Media) -> Result<Media, Problem> {
    if media.status != MediaStatus::Pending {
        return Ok(media);
    }
    let objects = objects(state)?;
    let key = media.key()?;
    let Some(mut reader) = objects.get(&key).await.map_err(object_error)? else {
        return Ok(media);
    };
    // Keep the head, count the rest, stop past the cap.
    let mut probe = Probe::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer).await.map_err(object_error)?;
        if read == 0 || !probe.feed(&buffer[..read]) {
            break;
        }
    }
    let outcome = probe.check();
    record(state, &media, &outcome).await?;
    let scope = longhaul_jobs::model::Scope::Tenant { tenant_id: media.tenant_id.clone() };
    let id = media.id;
    state.store.get_media(&scope, id).await?.ok_or_else(|| not_found(&id.to_string()))
}

/// Records a check; a rejected photo's bytes are deleted at once.
async fn record(state: &AppState, media: &Media, outcome: &MediaCheck) -> Result<(), Problem> {
    state.store.settle_media(media.id, outcome).await?;
    if let MediaCheck::Rejected { reason } = outcome {
        tracing::info!(media_id = %media.id, tenant_id = %media.tenant_id, reason, "a photo was rejected");
        if let Err(err) = objects(state)?.delete(&media.key()?).await {
            tracing::warn!(media_id = %media.id, error = %err, "a rejected photo's bytes could not be deleted");
        }
    }
    Ok(())
}

/// Register a photo for videos; answers with where to upload it.
#[utoipa::path(
    post, path = "/v1/media", tag = "media",
    request_body = NewMediaBody,
    responses(
        (status = 201, description = "Registered; PUT the bytes to `upload_url`", body = MediaCreated),
        (status = 409, description = "The user has the most photos one user may (`urn:longhaul:problem:quota-exceeded`; `limit` says how many)"),
        (status = 422, description = "A field is invalid; `field` names it"),
        (status = 503, description = "The object store did not answer"),
    ),
    security(("bearer" = []))
)]
pub async fn create_media(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<NewMediaBody>,
) -> Result<Response, Problem> {
    let declared = body.content_type.trim().to_ascii_lowercase();
    if !MEDIA_TYPES.contains(&declared.as_str()) {
        return Err(Problem::invalid_field(
            "content_type",
            format!("`{}` is not a photo type; expected one of {}", body.content_type, MEDIA_TYPES.join(", ")),
        ));
    }
    if body.size_bytes.is_some_and(|size| size == 0 || size > MAX_MEDIA_BYTES) {
        return Err(Problem::invalid_field(
            "size_bytes",
            format!("must be between 1 and {MAX_MEDIA_BYTES} (25 MiB), the largest photo longhaul takes"),
        ));
    }
    if body.caption.as_ref().is_some_and(|c| c.chars().count() > CAPTION_MAX_CHARS) {
        return Err(Problem::invalid_field("caption", format!("must be at most {CAPTION_MAX_CHARS} characters")));
    }
    let caption = body.caption.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    let objects = objects(&state)?;
    check_media_quota(&state, &principal).await?;
    let media = state
        .store
        .insert_media(NewMedia {
            tenant_id: principal.tenant_id.clone(),
            user_id: principal.user_id.clone(),
            declared_type: declared.clone(),
            taken_at: body.taken_at,
            caption,
        })
        .await?;
    let direct = match body.size_bytes {
        Some(size) => objects.presign_put(&media.key()?, &declared, size, UPLOAD_FOR).await.map_err(object_error)?,
        None => None,
    };
    let upload_url = direct.unwrap_or_else(|| format!("/v1/media/{}/upload", media.id));
    let expires = Utc::now() + chrono::Duration::from_std(UPLOAD_FOR).unwrap_or_default();
    let location = format!("/v1/media/{}", media.id);
    let created = MediaCreated { media, upload_url, upload_expires_at: expires };
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(created)).into_response())
}

/// A 409 when the caller has as many photos as one user may. Counted, then
/// inserted: requests racing each other can pass the cap by as many as
/// race, which the rate limit keeps to a handful; a lock per user on every
/// registration would cost more than that overshoot.
async fn check_media_quota(state: &AppState, principal: &Principal) -> Result<(), Problem> {
    let cap = state.limits.config().media_per_user;
    if cap == 0 {
        return Ok(());
    }
    let own = longhaul_jobs::Scope::User { tenant_id: principal.tenant_id.clone(), user_id: principal.user_id.clone() };
    if state.store.count_media(&own).await? >= cap {
        return Err(Problem::quota_exceeded("photos", cap));
    }
    Ok(())
}

/// The caller's photos (an admin's: the tenant's), newest first.
#[utoipa::path(
    get, path = "/v1/media", tag = "media",
    params(MediaQuery),
    responses(
        (status = 200, body = MediaList),
        (status = 422, description = "A bad cursor or limit"),
    ),
    security(("bearer" = []))
)]
pub async fn list_media(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<MediaQuery>,
) -> Result<Json<MediaList>, Problem> {
    let limit = paging::ITEMS.limit(query.limit.as_deref())?;
    let after = decode_cursor(&query.cursor)?;
    let mut items = state.store.list_media(&principal.scope(), after, limit + 1).await?;
    let next_cursor = trim_page(&mut items, limit, |m| (m.created_at, m.id));
    for media in items.iter().filter(|media| media.status == MediaStatus::Pending) {
        state.media_checks.schedule(&state, media.clone());
    }
    Ok(Json(MediaList { items, next_cursor }))
}

/// Checks of pending photos that a list showed, in the background: a list
/// answers at once with what is stored, and reading photos (up to 25 MiB
/// each) never holds it up. At most [`MediaChecks::AT_ONCE`] run at once in
/// this process (more are not queued but left to a later list), and a
/// photo is checked at most once per [`MediaChecks::AGAIN_AFTER`], however
/// often it is listed.
pub(crate) struct MediaChecks {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    recent: Mutex<HashMap<Uuid, Instant>>,
}

impl Default for MediaChecks {
    fn default() -> Self {
        MediaChecks {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(Self::AT_ONCE)),
            recent: Mutex::default(),
        }
    }
}

impl MediaChecks {
    const AT_ONCE: usize = 4;
    const AGAIN_AFTER: Duration = Duration::from_secs(30);
    /// Past this many remembered photos, the old entries are dropped.
    const REMEMBER: usize = 10_000;

    /// Whether `id` is due a check now; if so, it is noted as checked.
    fn due(&self, id: Uuid) -> bool {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if recent.get(&id).is_some_and(|at| now.duration_since(*at) < Self::AGAIN_AFTER) {
            return false;
        }
        if recent.len() >= Self::REMEMBER {
            recent.retain(|_, at| now.duration_since(*at) < Self::AGAIN_AFTER);
        }
        recent.insert(id, now);
        true
    }

    pub(crate) fn schedule(&self, state: &AppState, media: Media) {
        if state.objects.is_none() || !self.due(media.id) {
            return;
        }
        // Busy: no task is queued (they would pile up under a flood of
        // lists); the photo is forgotten, so the next list tries again.
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&media.id);
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let id = media.id;
            if let Err(problem) = settle(&state, media).await {
                tracing::warn!(media_id = %id, error = ?problem, "a pending photo could not be checked; a later read tries again");
            }
        });
    }
}

/// One photo.
#[utoipa::path(
    get, path = "/v1/media/{id}", tag = "media",
    params(("id" = Uuid, Path, description = "The photo id")),
    responses(
        (status = 200, body = Media),
        (status = 404),
    ),
    security(("bearer" = []))
)]
pub async fn get_media(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Media>, Problem> {
    let id = parse_id(&raw)?;
    let media = state.store.get_media(&principal.scope(), id).await?.ok_or_else(|| not_found(&raw))?;
    Ok(Json(settle(&state, media).await?))
}

/// Forget a photo, and delete its bytes.
#[utoipa::path(
    delete, path = "/v1/media/{id}", tag = "media",
    params(("id" = Uuid, Path, description = "The photo id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404),
    ),
    security(("bearer" = []))
)]
pub async fn delete_media(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, Problem> {
    let id = parse_id(&raw)?;
    let media = state.store.delete_media(&principal.scope(), id).await?.ok_or_else(|| not_found(&raw))?;
    // The row goes first: a photo whose bytes outlive it is garbage, never
    // a photo without bytes.
    objects(&state)?.delete(&media.key()?).await.map_err(object_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Upload a photo's bytes through the API: on a local object directory, or
/// on S3 when the photo was registered without `size_bytes` (with it, the
/// upload goes to the presigned URL instead).
#[utoipa::path(
    put, path = "/v1/media/{id}/upload", tag = "media",
    params(("id" = Uuid, Path, description = "The photo id")),
    request_body(content = String, description = "The image's bytes: JPEG, PNG or WebP, which the bytes decide", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Stored and checked", body = Media),
        (status = 404),
        (status = 409, description = "Already uploaded"),
        (status = 413, description = "Over the size limit"),
        (status = 415, description = "Not a JPEG, PNG or WebP image; the photo is rejected"),
    ),
    security(("bearer" = []))
)]
pub async fn upload_media(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Media>, Problem> {
    let id = parse_id(&raw)?;
    let media = state.store.get_media(&principal.scope(), id).await?.ok_or_else(|| not_found(&raw))?;
    if media.status != MediaStatus::Pending {
        return Err(Problem::conflict("Already uploaded", format!("photo `{id}` is {} already", media.status)));
    }
    // Spooled to a temporary file, counted as it comes; the probe keeps the head.
    let limit = usize::try_from(MAX_MEDIA_BYTES).unwrap_or(usize::MAX);
    let mut probe = Probe::default();
    let spooled = spool(&state, &headers, body, MAX_MEDIA_BYTES, BodyKind::Upload, |chunk| {
        if probe.feed(chunk) {
            Ok(())
        } else {
            Err(Problem::payload_too_large(limit))
        }
    })
    .await?;
    match probe.check() {
        MediaCheck::Rejected { reason } => {
            state.store.settle_media(media.id, &MediaCheck::Rejected { reason: reason.clone() }).await?;
            Err(Problem::unsupported_media_type(reason))
        }
        ready @ MediaCheck::Ready { content_type, .. } => {
            objects(&state)?.put_file(&media.key()?, spooled.file.path(), content_type).await.map_err(object_error)?;
            state.store.settle_media(media.id, &ready).await?;
            let now = state.store.get_media(&principal.scope(), id).await?.ok_or_else(|| not_found(&raw))?;
            Ok(Json(now))
        }
    }
}
