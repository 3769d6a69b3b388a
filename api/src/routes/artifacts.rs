//! `/v1/artifacts/{id}`: the files jobs produced.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use longhaul_jobs::objects::ObjectKey;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use crate::{auth::Principal, problem::Problem, AppState};

/// How long a presigned download URL works: long enough to start a large
/// download on a slow phone, short enough that a leaked link soon dies.
const PRESIGNED_FOR: Duration = Duration::from_secs(15 * 60);

fn object_error(err: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %err, "the object store failed");
    Problem::unavailable("the file store did not answer; try again shortly")
}

/// Download an artifact: a 302 to a short-lived presigned URL on S3, or the
/// file itself from a local object directory.
#[utoipa::path(
    get, path = "/v1/artifacts/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "The artifact id, from the job's `artifacts`")),
    responses(
        (status = 200, description = "The file (local object store)"),
        (status = 302, description = "Redirect to a presigned URL (S3), valid for 15 minutes"),
        (status = 404, description = "No such artifact, or not yours"),
        (status = 503, description = "The object store did not answer"),
    ),
    security(("bearer" = []))
)]
pub async fn download_artifact(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
) -> Result<Response, Problem> {
    download(&state, &principal, &raw_id).await
}

/// The artifact `raw_id` as `principal` may see it: shared with the
/// dashboard, whose session is not a bearer token.
pub(crate) async fn download(state: &AppState, principal: &Principal, raw_id: &str) -> Result<Response, Problem> {
    let not_found = || Problem::not_found(format!("no artifact `{raw_id}`"));
    let id = Uuid::parse_str(raw_id).map_err(|_| not_found())?;
    let artifact = state.store.get_artifact(&principal.scope(), id).await?.ok_or_else(not_found)?;
    let objects =
        state.objects.as_ref().ok_or_else(|| Problem::unavailable("this API was started without an object store"))?;
    let path = artifact.object_key.strip_prefix(&format!("tenants/{}/", artifact.tenant_id));
    let key = path.and_then(|path| ObjectKey::new(&artifact.tenant_id, path).ok()).ok_or_else(|| {
        tracing::error!(artifact_id = %id, key = %artifact.object_key, "an artifact's key is outside its tenant");
        Problem::internal()
    })?;
    if let Some(url) = objects.presign_get(&key, PRESIGNED_FOR).await.map_err(object_error)? {
        let location = HeaderValue::from_str(&url).map_err(|_| Problem::internal())?;
        return Ok((
            StatusCode::FOUND,
            [(header::LOCATION, location), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        )
            .into_response());
    }
    let reader = objects.get(&key).await.map_err(object_error)?.ok_or_else(|| {
        tracing::error!(artifact_id = %id, key = %artifact.object_key, "an artifact's object is missing");
        not_found()
    })?;
    // A quote or a control character cannot end the header value early.
    let filename: String =
        artifact.name.chars().map(|c| if c == '"' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    let mut response = Response::new(Body::from_stream(ReaderStream::new(reader)));
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&artifact.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(artifact.size_bytes.max(0) as u64));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
