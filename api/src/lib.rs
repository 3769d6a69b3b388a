//! The longhaul HTTP API: jobs for users, queues and operations for admins.
//!
//! Build it with [`router`] from a store and an [`ApiConfig`]; the CLI serves
//! it, and the tests drive the very same router in process. The map:
//! - [`auth`]: bearer tokens to a [`auth::Principal`] (dev HS256, or RS256
//!   from a JWKS);
//! - [`extract`]: the JSON body extractor behind the 408/413/415/400/422 contract;
//! - [`problem`]: every error as `application/problem+json`;
//! - [`limits`]: rate limits and caps per user and tenant (429s);
//! - [`server`]: the HTTP/1.1 server loop, and time limits on what clients send;
//! - `routes`: the handlers; `sse`: job event streams; [`openapi`]: the spec.
//!
//! The API knows nothing of workers. It writes jobs through the [`Store`]
//! port (which also queues them, or writes their dispatch rows for SQS), and
//! uses the [`Queue`] port only for admin redrives and readiness.
//!
//! [`Queue`]: longhaul_jobs::queue::Queue
//!
//! [`Store`]: longhaul_jobs::Store

pub mod audit;
pub mod auth;
mod dashboard;
pub mod extract;
mod idempotency;
pub mod limits;
pub mod metrics;
pub mod openapi;
mod paging;
pub mod problem;
mod routes;
pub mod server;
mod sse;
mod tracecontext;
pub mod views;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::Request,
    http::HeaderName,
    middleware,
    routing::{get, post, put},
    Router,
};
use longhaul_jobs::{
    objects::DynObjectStore,
    queue::{DynQueue, EmbeddedQueue},
    travel::mail::Envelope,
    DynStore,
};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

pub use routes::health::ReadinessCheck;

/// The default request body limit: far more than any job payload needs, small
/// enough that a flood of large bodies cannot exhaust memory.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// How the API behaves. Start from `ApiConfig::default()` and set `auth`.
#[derive(Clone)]
pub struct ApiConfig {
    /// The largest request body accepted, in bytes; larger ones get a 413.
    pub body_limit: usize,
    pub auth: auth::AuthConfig,
    /// Dependencies `/readyz` checks besides the store, which is always checked.
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    /// How often a job event stream re-reads its job.
    pub sse_poll_interval: Duration,
    /// Trips when the process is stopping: event streams end at once (clients
    /// reconnect to another instance) instead of holding the shutdown.
    pub shutdown: CancellationToken,
    /// The job queue, for redrives. `None`: the embedded queue of the store.
    pub queue: Option<DynQueue>,
    /// Where artifacts are, for `/v1/artifacts/{id}`. `None`: downloads
    /// answer 503.
    pub objects: Option<DynObjectStore>,
    /// Renders the process's metrics for `/metrics` (Prometheus text).
    /// `None`: `/metrics` answers 404.
    pub metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    /// Seals mail credentials; without it, connecting an inbox is a 503.
    pub secrets: Option<Envelope>,
    /// Rate limits and caps per user and tenant.
    pub limits: limits::Limits,
    /// How long clients may take to send requests (the body limits; `serve`
    /// applies the header limit).
    pub timeouts: server::HttpTimeouts,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            auth: auth::AuthConfig::default(),
            readiness: Vec::new(),
            sse_poll_interval: Duration::from_millis(300),
            shutdown: CancellationToken::new(),
            queue: None,
            objects: None,
            metrics: None,
            secrets: None,
            limits: limits::Limits::default(),
            timeouts: server::HttpTimeouts::default(),
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("body_limit", &self.body_limit)
            .field("auth", &self.auth)
            .field("readiness", &self.readiness.iter().map(|check| check.name()).collect::<Vec<_>>())
            .field("sse_poll_interval", &self.sse_poll_interval)
            .field("limits", &self.limits)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// What every handler shares. Cheap to clone: everything is behind an `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: DynStore,
    pub(crate) auth: Arc<auth::Authenticator>,
    pub(crate) readiness: Arc<[Arc<dyn ReadinessCheck>]>,
    pub(crate) body_limit: usize,
    pub(crate) sse_poll_interval: Duration,
    pub(crate) shutdown: CancellationToken,
    pub(crate) queue: DynQueue,
    pub(crate) objects: Option<DynObjectStore>,
    pub(crate) metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    pub(crate) secrets: Option<Envelope>,
    pub(crate) limits: Arc<limits::Limiters>,
    pub(crate) timeouts: server::HttpTimeouts,
    pub(crate) media_checks: Arc<routes::media::MediaChecks>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole API as one router, with tracing, request ids, the problem
/// safety net, rate limits and body time limits applied. Fails when no token
/// could ever be verified (neither a dev key nor a JWKS URL) or the JWKS URL
/// is not a URL: better to refuse to start than to answer 401 to everyone.
/// Must be called inside a Tokio runtime (the rate limits' upkeep runs on it).
pub fn router(store: DynStore, config: ApiConfig) -> anyhow::Result<Router> {
    let auth = auth::Authenticator::new(&config.auth)?;
    let limits = limits::Limiters::start(config.limits, config.shutdown.clone())?;
    let mut readiness: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(routes::health::StoreReady(store.clone()))];
    readiness.extend(config.readiness);
    let queue = config.queue.unwrap_or_else(|| Arc::new(EmbeddedQueue::new(store.clone())));
    let state = AppState {
        queue,
        objects: config.objects,
        metrics: config.metrics,
        secrets: config.secrets,
        store,
        auth,
        readiness: readiness.into(),
        body_limit: config.body_limit,
        sse_poll_interval: config.sse_poll_interval,
        shutdown: config.shutdown,
        limits,
        timeouts: config.timeouts,
        media_checks: Arc::default(),
    };

    let api = Router::new()
        .route("/v1/jobs", post(routes::jobs::submit_job).get(routes::jobs::list_jobs))
        .route("/v1/jobs/{id}", get(routes::jobs::get_job))
        .route("/v1/jobs/{id}/cancel", post(routes::jobs::cancel_job))
        .route("/v1/jobs/{id}/events", get(sse::job_events))
        .route("/v1/artifacts/{id}", get(routes::artifacts::download_artifact))
        .route("/v1/reservations", post(routes::travel::create_reservation).get(routes::travel::list_reservations))
        .route(
            "/v1/reservations/{id}",
            get(routes::travel::get_reservation)
                .patch(routes::travel::update_reservation)
                .delete(routes::travel::delete_reservation),
        )
        .route("/v1/reservations/{id}/changes", get(routes::travel::reservation_changes))
        .route("/v1/trips", get(routes::travel::list_trips))
        .route("/v1/mail-accounts", post(routes::mail::create_mail_account).get(routes::mail::list_mail_accounts))
        .route(
            "/v1/mail-accounts/{id}",
            get(routes::mail::get_mail_account)
                .patch(routes::mail::update_mail_account)
                .delete(routes::mail::delete_mail_account),
        )
        .route("/v1/mail-accounts/{id}/poll", post(routes::mail::poll_mail_account))
        .route("/v1/media", post(routes::media::create_media).get(routes::media::list_media))
        .route("/v1/media/{id}", get(routes::media::get_media).delete(routes::media::delete_media))
        .route("/v1/media/{id}/upload", put(routes::media::upload_media))
        .route("/v1/uploads", post(routes::uploads::create_upload))
        .route("/v1/uploads/{id}", get(routes::uploads::get_upload))
        .route("/v1/uploads/{id}/upload", put(routes::uploads::upload_file))
        .route("/v1/me", get(routes::me::get_me).patch(routes::me::update_me))
        .route("/v1/me/devices", post(routes::me::register_device).get(routes::me::list_devices))
        .route("/v1/me/devices/{id}", axum::routing::delete(routes::me::delete_device))
        .route("/v1/me/notifications", get(routes::me::list_notifications))
        .route("/v1/me/notifications/{id}/read", post(routes::me::read_notification))
        .route("/v1/events", post(routes::events::ingest))
        .route("/v1/me/events", axum::routing::delete(routes::events::delete_my_events))
        .route("/v1/admin/users/{user}/events", axum::routing::delete(routes::events::delete_user_events))
        .route("/v1/admin/event-catalogue", get(routes::events::get_catalogue).put(routes::events::put_catalogue))
        .route("/v1/admin/queues", get(routes::admin::queues))
        .route("/v1/admin/sweeps", get(routes::admin::sweeps))
        .route("/v1/admin/jobs", get(routes::admin::list_jobs))
        .route("/v1/admin/jobs/{id}", axum::routing::delete(routes::admin::delete_job))
        .route("/v1/admin/jobs/{id}/retry", post(routes::admin::retry_job))
        .route("/v1/admin/audit", get(routes::admin::audit_log))
        .route("/v1/admin/workers", get(routes::admin::workers))
        .route("/v1/admin/lanes/{lane}/pause", post(routes::admin::pause_lane))
        .route("/v1/admin/lanes/{lane}/resume", post(routes::admin::resume_lane))
        .route("/v1/admin/lanes/{lane}/redrive", post(routes::admin::redrive_lane))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/metrics", get(routes::health::metrics))
        .merge(dashboard::routes())
        .fallback(problem::not_found_fallback)
        // After routing, since both look at the route: the body's time
        // limits, and outside them the rate limits, so a refused request
        // costs no more than its token check.
        .layer(middleware::from_fn_with_state(state.clone(), server::limit_body_time))
        .layer(middleware::from_fn_with_state(state.clone(), limits::enforce))
        .with_state(state);

    // Outermost first: the id is set before the span opens so the span can
    // carry it, and the safety net sees the 500 a caught panic becomes.
    let layers = ServiceBuilder::new()
        .layer(middleware::from_fn(metrics::track_http))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(middleware::from_fn(problem::problem_safety_net))
        .layer(CatchPanicLayer::new());
    Ok(api.layer(layers))
}

/// The span of one request: the method, the path, the request id and the
/// trace id. Other headers are left out because `Authorization` carries a
/// credential, and the query because it can carry user data.
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request.headers().get(&REQUEST_ID).and_then(|value| value.to_str().ok()).unwrap_or_default();
    // The caller's trace id when it sent one; a handler that starts a job
    // records the one the job carries (see `tracecontext`).
    let trace_id = tracecontext::incoming(request.headers()).and_then(tracecontext::trace_id);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
        trace_id = tracing::field::Empty
    );
    if let Some(trace_id) = trace_id {
        span.record("trace_id", trace_id);
    }
    span
}
