//! Errors as RFC 9457 `application/problem+json` documents.
//!
//! Every error the API returns goes through [`Problem`], so clients can rely on
//! one shape: `type`, `title`, `status`, `detail`, and `field` on a 422. The
//! [`problem_safety_net`] middleware rewrites the few error responses axum
//! builds itself (405, a rejected extractor) into the same shape, so no
//! `text/plain` error ever leaks out.

use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The RFC 9457 document: what went wrong, for a person and for a program.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDocument {
    /// A URI naming the problem type, such as `urn:longhaul:problem:validation`.
    /// Programs should branch on it (or on `status`), not on `title` or `detail`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary that is the same for every occurrence of the type.
    pub title: String,
    pub status: u16,
    /// What happened this time, written for the person reading it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path this problem is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// On a 422: the field that is wrong, as a JSON path (`kind`, `payload.year`)
    /// or the name of the query parameter or header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// On a quota problem (`urn:longhaul:problem:quota-exceeded`): the limit
    /// that was reached, so that an app can say it without parsing `detail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// An error response: a [`ProblemDocument`] and the headers its status calls
/// for (`WWW-Authenticate` on a 401). Boxed, because it travels in the `Err`
/// of nearly every function here and should not bloat their `Ok` paths.
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemInner>);

#[derive(Debug, Clone)]
struct ProblemInner {
    document: ProblemDocument,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    fn new(status: StatusCode, slug: &str, title: &str) -> Problem {
        Problem(Box::new(ProblemInner {
            document: ProblemDocument {
                type_uri: format!("urn:longhaul:problem:{slug}"),
                title: title.to_owned(),
                status: status.as_u16(),
                detail: None,
                instance: None,
                field: None,
                limit: None,
            },
            headers: Vec::new(),
        }))
    }

    /// The document this problem is sent as.
    pub fn document(&self) -> &ProblemDocument {
        &self.0.document
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Problem {
        self.0.document.detail = Some(detail.into());
        self
    }

    pub fn with_instance(mut self, instance: impl Into<String>) -> Problem {
        self.0.document.instance = Some(instance.into());
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Problem {
        self.0.headers.push((name, value));
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.document.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// 400: the body is not JSON at all.
    pub fn malformed_json(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON").with_detail(detail)
    }

    /// 400: a request that is broken in a way no field explains.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request").with_detail(detail)
    }

    /// 401, with the `WWW-Authenticate` challenge RFC 6750 asks for. `detail`
    /// says what is wrong with the token, never what the token was.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            .with_detail(detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 403: authenticated, but the role does not allow it.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").with_detail(detail)
    }

    /// Not found (404). Also used for objects of another tenant or user, so
    /// that a caller cannot learn that they exist.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found").with_detail(detail)
    }

    pub fn method_not_allowed() -> Problem {
        Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
            .with_detail("this path does not accept that method; see the Allow header")
    }

    /// 409 on a repeated idempotency key whose request differs.
    pub fn idempotency_conflict() -> Problem {
        Problem::new(StatusCode::CONFLICT, "idempotency-conflict", "Idempotency key reused")
            .with_detail("this Idempotency-Key was already used with a different request; use a new key for a new job")
    }

    /// 409 when the job's state does not allow the operation.
    pub fn conflict(title: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "conflict", title).with_detail(detail)
    }

    pub fn payload_too_large(limit: usize) -> Problem {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Request body too large")
            .with_detail(format!("the body is over the limit of {limit} bytes"))
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            .with_detail(detail)
    }

    /// 422: the request is well-formed JSON but a field is wrong.
    pub fn invalid_field(field: impl Into<String>, detail: impl Into<String>) -> Problem {
        let mut problem =
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid request").with_detail(detail);
        problem.0.document.field = Some(field.into());
        problem
    }

    /// 408: the client took too long to send its request body. The
    /// connection is closed after the answer (RFC 9110, 15.5.9): the rest of
    /// the body may still be on its way, and cannot be told from a next
    /// request.
    pub fn request_timeout(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::REQUEST_TIMEOUT, "request-timeout", "Request timeout")
            .with_detail(detail)
            .with_header(header::CONNECTION, HeaderValue::from_static("close"))
    }

    /// 409: creating one more would pass a per-user quota of `limit` items.
    ///
    /// A 409, not a 429 or a 403: waiting does not help (so not 429, whose
    /// `Retry-After` promises it will), the caller's role is not the matter
    /// (so not 403), and the body is valid (so not 422). The collection's
    /// state conflicts with the request, and deleting items resolves it,
    /// which is what 409 says (RFC 9110, 15.5.10).
    pub fn quota_exceeded(what: &str, limit: u64) -> Problem {
        let mut problem = Problem::new(StatusCode::CONFLICT, "quota-exceeded", "Quota exceeded")
            .with_detail(format!("you have {limit} {what}, the most one user may have; delete some to add more"));
        problem.0.document.limit = Some(limit);
        problem
    }

    /// 429 with `Retry-After` in whole seconds (at least 1): `detail` says
    /// which limit, and that limits count per API replica.
    pub fn too_many_requests(detail: impl Into<String>, retry_after: Duration) -> Problem {
        let seconds = retry_after_secs(retry_after);
        Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
            .with_detail(detail)
            .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
    }

    /// 503: a dependency (the database, the JWKS endpoint) cannot be reached.
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable").with_detail(detail)
    }

    /// A bug (500). The detail is generic on purpose: the cause is logged,
    /// not sent, because it may name tables, hosts or other tenants' data.
    pub fn internal() -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal server error")
            .with_detail("the server failed to handle this request; it has been logged")
    }

    /// A problem for a status axum produced on its own, keeping its text as detail.
    fn for_status(status: StatusCode, detail: Option<String>) -> Problem {
        let title = status.canonical_reason().unwrap_or("Error");
        let slug = title.to_ascii_lowercase().replace(' ', "-");
        let mut problem = Problem::new(status, &slug, title);
        problem.0.document.detail = detail;
        problem
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let ProblemInner { document, headers } = *self.0;
        let body = match serde_json::to_vec(&document) {
            Ok(body) => body,
            // A struct of strings always serializes; keep a valid body regardless.
            Err(_) => {
                br#"{"type":"urn:longhaul:problem:internal","title":"Internal server error","status":500}"#.to_vec()
            }
        };
        let mut response =
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))], body).into_response();
        for (name, value) in headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// Logs a store failure and turns it into a 500. A store error reaching a
/// client is always a bug or an outage, so it is logged at `error`.
impl From<longhaul_jobs::queue::QueueError> for Problem {
    fn from(err: longhaul_jobs::queue::QueueError) -> Problem {
        match err {
            longhaul_jobs::queue::QueueError::Store(err) => err.into(),
            other => {
                tracing::error!(error = %other, "queue operation failed");
                Problem::unavailable("the job queue did not answer; try again shortly")
            }
        }
    }
}

/// How long a client is told to wait when the database is out of reach: a
/// restart or a failover takes seconds.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

/// A store failure: 503 with `Retry-After` when the database is out of
/// reach for now (a restart, a failover, no free connection), so clients
/// back off and try again; otherwise a 500, logged at `error`, since a store
/// error reaching a client is then a bug.
impl From<longhaul_jobs::StoreError> for Problem {
    fn from(err: longhaul_jobs::StoreError) -> Problem {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "the database is out of reach; answering 503");
            return Problem::unavailable("the database is out of reach for a moment; try again shortly")
                .with_header(header::RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS));
        }
        tracing::error!(error = %err, "store operation failed");
        Problem::internal()
    }
}

/// `Retry-After` is whole seconds (RFC 9110, 10.2.3): round up, so that a
/// client that waits as told is not refused again, and never say 0.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

/// Handles requests that match no route.
pub async fn not_found_fallback(request: Request) -> Problem {
    Problem::not_found(format!("no route for {}", request.uri().path())).with_instance(request.uri().path())
}

/// Rewrites error responses that axum or a layer built as plain text into
/// problem documents, keeping their status, headers (`Allow`) and text.
///
/// Handlers return [`Problem`] themselves; this catches the rest (a rejected
/// `Query`, a 405, a panic turned into a 500) so the contract holds everywhere.
pub async fn problem_safety_net(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&response) || is_html(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let detail = if status.is_server_error() {
        // Server-side text may carry internals (a panic message); do not echo it.
        Some("the server failed to handle this request; it has been logged".to_owned())
    } else {
        axum::body::to_bytes(body, 4096)
            .await
            .ok()
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .filter(|text| !text.trim().is_empty())
    };
    let problem = if status == StatusCode::METHOD_NOT_ALLOWED {
        Problem::method_not_allowed()
    } else {
        Problem::for_status(status, detail)
    };
    let rebuilt = problem.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    let (_, body) = rebuilt.into_parts();
    Response::from_parts(parts, Body::new(body))
}

/// The dashboard's error pages are HTML on purpose: people read them.
fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"))
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with(PROBLEM_JSON))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
