//! `/v1/uploads`: files tenant admins send for bulk imports.
//!
//! `POST` announces a file (a `pending` [`Upload`]) and answers with where
//! to send it: a presigned S3 PUT of exactly `size_bytes` bytes when the
//! client declared the size and the object store is S3, or else this API's
//! own `PUT /v1/uploads/{id}/upload` (send the same bearer token). The bytes
//! land at `tenants/<tenant>/uploads/<id>`; a `bulk_import` job naming the
//! upload's id then loads them (see `longhaul_jobs::imports`).
//!
//! Only admins (and platform operators) upload. An upload is its tenant's:
//! another tenant's is a 404, as is any id that is not one. Through the
//! API, a file may be up to 4 GiB ([`MAX_UPLOAD_BYTES`]), is spooled to disk
//! as it comes (never held in memory), is sent once (then it is
//! `uploaded`, and another PUT is a 409), and must look like text: a NUL
//! byte near its start is a 415, which leaves the upload `pending` for a
//! better file. What the rows say is for the job to check.

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use longhaul_jobs::{
    imports::{ImportFormat, NewUpload, Upload, UploadPurpose, UploadStatus, MAX_UPLOAD_BYTES, UPLOAD_TYPES},
    Scope,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::Principal,
    extract::JsonBody,
    problem::Problem,
    routes::files::{object_error, objects, spool, UPLOAD_FOR},
    server::BodyKind,
    AppState,
};

/// The longest `content_type`, in characters as sent.
pub(crate) const CONTENT_TYPE_MAX_CHARS: usize = 255;

/// How much of the start of a file is looked at for a NUL byte, which no
/// CSV or JSON Lines file in UTF-8 has (a UTF-16 one, a spreadsheet, an
/// archive does).
const SNIFF_BYTES: usize = 8 * 1024;

/// The body of `POST /v1/uploads`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUploadBody {
    /// The file's type: `text/csv` (with a header row), or JSON Lines as
    /// `application/x-ndjson`, `application/jsonl` or
    /// `application/json-lines`; in any case, and parameters such as
    /// `; charset=utf-8` may follow. A presigned PUT must send it as
    /// `Content-Type`, as given here (surrounding whitespace aside).
    pub content_type: String,
    /// What the file is for: `import`, for a `bulk_import` job.
    pub purpose: UploadPurpose,
    /// The file's size in bytes, 1 to 4,294,967,296 (4 GiB). With it, and an
    /// S3 object store, `upload_url` is a presigned S3 PUT of exactly that
    /// many bytes; without it, the upload goes through the API.
    pub size_bytes: Option<u64>,
}

/// An announced upload and where to send its bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadCreated {
    #[serde(flatten)]
    pub upload: Upload,
    /// PUT the file here: a presigned S3 URL (send `Content-Type` as
    /// declared, and exactly `size_bytes` bytes), or this API's upload path
    /// (send the bearer token too).
    pub upload_url: String,
    /// When a presigned `upload_url` stops working. (The API's own path
    /// takes the file for as long as the upload is `pending`.)
    pub upload_expires_at: DateTime<Utc>,
}

fn not_found(raw: &str) -> Problem {
    Problem::not_found(format!("no upload `{raw}`"))
}

fn parse_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| not_found(raw))
}

/// The declared content type, trimmed, if an import reads it: one of
/// [`UPLOAD_TYPES`] in any case, with parameters or not, at most
/// [`CONTENT_TYPE_MAX_CHARS`] as sent, and only what a header value may
/// carry (it becomes the object's `Content-Type`). Else a 422 naming
/// `content_type`.
pub(crate) fn check_content_type(raw: &str) -> Result<String, Problem> {
    if raw.chars().count() > CONTENT_TYPE_MAX_CHARS {
        return Err(Problem::invalid_field(
            "content_type",
            format!("must be at most {CONTENT_TYPE_MAX_CHARS} characters"),
        ));
    }
    let value = raw.trim();
    let printable = value.bytes().all(|byte| byte == b'\t' || (b' '..=b'~').contains(&byte));
    if !printable || ImportFormat::of_content_type(value).is_none() {
        return Err(Problem::invalid_field(
            "content_type",
            format!(
                "`{value}` is not a file type an import reads; expected one of {} (parameters such as \
                 `; charset=utf-8` may follow)",
                UPLOAD_TYPES.join(", ")
            ),
        ));
    }
    Ok(value.to_owned())
}

/// Announce a file for a bulk import; answers with where to send it.
///
/// Then PUT the file to `upload_url`, and submit a `bulk_import` job that
/// names the upload's `id` as `upload_id`.
#[utoipa::path(
    post, path = "/v1/uploads", tag = "imports",
    request_body = NewUploadBody,
    responses(
        (status = 201, description = "Announced; PUT the file to `upload_url`", body = UploadCreated,
         headers(("Location" = String, description = "The upload: `/v1/uploads/{id}`"))),
        (status = 403, description = "The caller is not an admin"),
        (status = 413),
        (status = 422, description = "A field is invalid; `field` names it (`content_type`, `purpose`, `size_bytes`)"),
        (status = 503, description = "The object store or the database did not answer"),
    ),
    security(("bearer" = []))
)]
pub async fn create_upload(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<NewUploadBody>,
) -> Result<Response, Problem> {
    principal.require_admin()?;
    let content_type = check_content_type(&body.content_type)?;
    if body.size_bytes.is_some_and(|size| size == 0 || size > MAX_UPLOAD_BYTES) {
        return Err(Problem::invalid_field(
            "size_bytes",
            format!("must be between 1 and {MAX_UPLOAD_BYTES} (4 GiB), the largest file an import takes"),
        ));
    }
    let objects = objects(&state)?;
    let upload = state
        .store
        .insert_upload(NewUpload {
            tenant_id: principal.tenant_id.clone(),
            user_id: principal.user_id.clone(),
            purpose: body.purpose,
            content_type,
            size_bytes: body.size_bytes,
        })
        .await?;
    let direct = match body.size_bytes {
        Some(size) => {
            objects.presign_put(&upload.key()?, &upload.content_type, size, UPLOAD_FOR).await.map_err(object_error)?
        }
        None => None,
    };
    let upload_url = direct.unwrap_or_else(|| format!("/v1/uploads/{}/upload", upload.id));
    let expires = Utc::now() + chrono::Duration::from_std(UPLOAD_FOR).unwrap_or_default();
    let location = format!("/v1/uploads/{}", upload.id);
    let created = UploadCreated { upload, upload_url, upload_expires_at: expires };
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(created)).into_response())
}

/// One upload: the tenant's (a platform operator's: any tenant's).
#[utoipa::path(
    get, path = "/v1/uploads/{id}", tag = "imports",
    params(("id" = Uuid, Path, description = "The upload id")),
    responses(
        (status = 200, body = Upload),
        (status = 403, description = "The caller is not an admin"),
        (status = 404),
    ),
    security(("bearer" = []))
)]
pub async fn get_upload(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Upload>, Problem> {
    principal.require_admin()?;
    let id = parse_id(&raw)?;
    let upload = state.store.get_upload(&principal.scope(), id).await?.ok_or_else(|| not_found(&raw))?;
    Ok(Json(upload))
}

/// Send an upload's file through the API: on a local object directory, or
/// on S3 when the upload was announced without `size_bytes` (with it, the
/// file goes to the presigned URL instead). Only the upload's own tenant
/// sends it.
#[utoipa::path(
    put, path = "/v1/uploads/{id}/upload", tag = "imports",
    params(("id" = Uuid, Path, description = "The upload id")),
    request_body(
        content = String,
        description = "The file's bytes, up to 4 GiB: CSV or JSON Lines, as announced. The upload's declared \
                       type is what is stored, whatever `Content-Type` this request has.",
        content_type = "application/octet-stream"
    ),
    responses(
        (status = 200, description = "Stored; the upload is `uploaded`", body = Upload),
        (status = 400, description = "The body broke off before its end"),
        (status = 403, description = "The caller is not an admin"),
        (status = 404),
        (status = 409, description = "Already uploaded"),
        (status = 413, description = "Over 4 GiB"),
        (status = 415, description = "Not a text file (a NUL byte near its start), or empty; the upload stays pending"),
        (status = 503, description = "The object store or the database did not answer"),
    ),
    security(("bearer" = []))
)]
pub async fn upload_file(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Upload>, Problem> {
    principal.require_admin()?;
    let id = parse_id(&raw)?;
    // The tenant's own, whatever the role: a file is sent by those who
    // announced it.
    let scope = Scope::Tenant { tenant_id: principal.tenant_id.clone() };
    let upload = state.store.get_upload(&scope, id).await?.ok_or_else(|| not_found(&raw))?;
    if upload.status != UploadStatus::Pending {
        return Err(Problem::conflict("Already uploaded", format!("upload `{id}` is {} already", upload.status)));
    }
    let objects = objects(&state)?;
    let mut looked_at = 0;
    let spooled = spool(&state, &headers, body, MAX_UPLOAD_BYTES, BodyKind::Import, |chunk| {
        let head = &chunk[..chunk.len().min(SNIFF_BYTES.saturating_sub(looked_at))];
        looked_at += head.len();
        if head.contains(&0) {
            return Err(Problem::unsupported_media_type(
                "the file is not text (it has a NUL byte near its start); send CSV or JSON Lines in UTF-8",
            ));
        }
        Ok(())
    })
    .await?;
    if spooled.size == 0 {
        return Err(Problem::unsupported_media_type("the file is empty; send CSV with a header row, or JSON Lines"));
    }
    objects.put_file(&upload.key()?, spooled.file.path(), &upload.content_type).await.map_err(object_error)?;
    if !state.store.mark_uploaded(id, spooled.size).await? {
        return Err(not_found(&raw));
    }
    let now = state.store.get_upload(&scope, id).await?.ok_or_else(|| not_found(&raw))?;
    Ok(Json(now))
}
