//! What the routes that take files share (`/v1/media`, `/v1/uploads`): the
//! object store, how long an upload URL works, and a request body spooled
//! to a temporary file as it arrives, counted and capped.

use std::time::Duration;

use axum::{
    body::Body,
    http::{header, HeaderMap},
};
use futures::StreamExt;
use longhaul_jobs::objects::DynObjectStore;
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;

use crate::{
    problem::Problem,
    server::{is_body_timeout, BodyKind},
    AppState,
};

/// How long an upload URL works.
pub(crate) const UPLOAD_FOR: Duration = Duration::from_secs(15 * 60);

/// The object store, or a 503 when the API runs without one.
pub(crate) fn objects(state: &AppState) -> Result<&DynObjectStore, Problem> {
    state.objects.as_ref().ok_or_else(|| Problem::unavailable("this API was started without an object store"))
}

/// A 503 for an object store that failed; the cause is logged, not sent.
pub(crate) fn object_error(err: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %err, "the object store failed");
    Problem::unavailable("the file store did not answer; try again shortly")
}

/// An upload's bytes, in a temporary file that goes when this is dropped.
pub(crate) struct Spooled {
    pub file: NamedTempFile,
    /// How many bytes came.
    pub size: u64,
}

/// Spools `body` to a temporary file as it comes: a 413 past `max` bytes
/// (on `Content-Length` first, then counted as it is read, so a lying or
/// chunked client cannot get past); a 408 when it runs out of time (`kind`
/// says which limits it had); a 400 when it breaks off. `inspect` sees each
/// chunk before it is written, and may refuse it.
pub(crate) async fn spool(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    max: u64,
    kind: BodyKind,
    mut inspect: impl FnMut(&[u8]) -> Result<(), Problem>,
) -> Result<Spooled, Problem> {
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max) {
        return Err(Problem::payload_too_large(limit));
    }
    let io = |err: std::io::Error| {
        tracing::error!(error = %err, "cannot spool an upload");
        Problem::unavailable("cannot take the upload now; try again shortly")
    };
    let spooled = NamedTempFile::new().map_err(io)?;
    let mut file = tokio::fs::File::from_std(spooled.reopen().map_err(io)?);
    let mut size: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| {
            if is_body_timeout(&err) {
                state.timeouts.body_timed_out(kind)
            } else {
                Problem::bad_request(format!("the upload broke off: {err}"))
            }
        })?;
        size = size.saturating_add(chunk.len() as u64);
        if size > max {
            return Err(Problem::payload_too_large(limit));
        }
        inspect(&chunk)?;
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    Ok(Spooled { file: spooled, size })
}
