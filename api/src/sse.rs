//! `GET /v1/jobs/{id}/events`: a job's status and progress as server-sent events.
//!
//! The stream polls the store rather than subscribing to worker updates:
//! workers may run in other processes (or on other machines) and the store is
//! the one place every change lands. A poll every few hundred milliseconds per
//! open stream is cheap next to the jobs they watch, which run for seconds to
//! hours.
//!
//! Events:
//! - `status`: the job (as `GET /v1/jobs/{id}` returns it), first on connect,
//!   then whenever the status changes;
//! - `progress`: the job, whenever only the progress changed.
//!
//! The stream ends after the event that carries a final status. Comments are
//! sent as keep-alives, so proxies do not close a quiet stream.
//!
//! Every stream, this one and the dashboard's, also ends when the caller's
//! credential expires (the token's `exp`, or the end of the dashboard
//! session): its last event is then `expired`, with a problem document as
//! data, and the client reconnects with a fresh token. A user holds at most
//! [`crate::limits::Limits::streams_per_user`] streams at once; one more is
//! a 429.

use std::{convert::Infallible, future::Future, pin::Pin, time::Duration};

use axum::{
    extract::{Path, State},
    response::sse::{Event, KeepAlive, Sse},
};
use chrono::{DateTime, Utc};
use futures::{stream, Stream, StreamExt};
use longhaul_jobs::{Job, Scope, Status};
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::Principal, limits::StreamSlot, problem::Problem, routes::jobs::visible_job, views::JobView, AppState,
};

/// How often to send a keep-alive comment on a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Store failures in a row after which the stream gives up. The client
/// reconnects (EventSource does so by itself) and gets the current state.
const MAX_CONSECUTIVE_ERRORS: u32 = 10;

/// Follow a job's status and progress until it ends.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = Uuid, Path, description = "The job id")),
    responses(
        (status = 200, description = "`status` and `progress` events, each with the job as data, until a final status; or `expired` (a problem document as data) when the token expires first", content_type = "text/event-stream", body = JobView),
        (status = 404),
        (status = 429, description = "The user holds the most event streams one user may; see `Retry-After`",
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ),
    security(("bearer" = []))
)]
pub async fn job_events(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    // Checked before the stream starts, so a missing job is a plain 404.
    let job = visible_job(&state, &principal, &id).await?;
    let slot = state.limits.open_stream(&principal, "/v1/jobs/{id}/events")?;
    let watch =
        Watch { state, scope: principal.scope(), id: job.id, last: None, pending: Some(job), errors: 0, done: false };
    let shutdown = watch.state.shutdown.clone().cancelled_owned();
    let events = stream::unfold(watch, |mut watch| async move {
        let event = watch.next_event().await?;
        Some((Ok(event), watch))
    });
    let events = until_expiry(events, principal.expires_at, slot).take_until(shutdown);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The longest a stream waits for its credential to expire: far beyond any
/// token's life, short enough for any timer.
const LONGEST_EXPIRY_WAIT: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// `events` until `expires_at`; then one `expired` event, and the end.
/// `slot` is held for as long as the stream lives, however it ends.
pub(crate) fn until_expiry<S>(
    events: S,
    expires_at: Option<DateTime<Utc>>,
    slot: StreamSlot,
) -> impl Stream<Item = Result<Event, Infallible>> + Send
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let expiry: Pin<Box<dyn Future<Output = ()> + Send>> = match expires_at {
        Some(at) => {
            // The token's own `exp`, not plus the leeway: the leeway forgives
            // a clock that differs at the moment of a check, not a stream
            // that would live on after its token.
            let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(LONGEST_EXPIRY_WAIT);
            Box::pin(tokio::time::sleep(left))
        }
        None => Box::pin(std::future::pending()),
    };
    let events: Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> = Box::pin(events);
    stream::unfold(Some((events, expiry, slot)), |state| async move {
        let (mut events, mut expiry, slot) = state?;
        tokio::select! {
            // The expiry first: an expired stream sends nothing more of its own.
            biased;
            () = &mut expiry => Some((Ok(expired_event()), None)),
            event = events.next() => event.map(|event| (event, Some((events, expiry, slot)))),
        }
    })
}

fn expired_event() -> Event {
    let problem = Problem::unauthorized("the token has expired; reconnect with a fresh one");
    let data = serde_json::to_string(problem.document())
        .unwrap_or_else(|_| json!({"title": "Unauthorized", "status": 401}).to_string());
    Event::default().event("expired").data(data)
}

/// The state of one stream between polls.
struct Watch {
    state: AppState,
    scope: Scope,
    id: Uuid,
    /// The status and progress last sent.
    last: Option<(Status, i16)>,
    /// A job read but not yet compared (the one read by the 404 check).
    pending: Option<Job>,
    errors: u32,
    done: bool,
}

impl Watch {
    /// The next event, or None when the stream should end.
    async fn next_event(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        loop {
            let job = match self.pending.take() {
                Some(job) => job,
                None => {
                    tokio::time::sleep(self.state.sse_poll_interval).await;
                    self.poll().await?
                }
            };
            let now = (job.status, job.progress);
            let name = match self.last {
                Some(last) if last == now => continue,
                Some((status, _)) if status == job.status => "progress",
                _ => "status",
            };
            self.last = Some(now);
            self.done = job.status.is_final();
            // The last event of a job that succeeded lists its artifacts.
            let view = match JobView::of(&self.state.store, job.clone()).await {
                Ok(view) => view,
                Err(err) => {
                    tracing::warn!(job_id = %self.id, error = %err, "cannot read the job's artifacts for its event");
                    JobView::from(job)
                }
            };
            return Some(to_event(name, view));
        }
    }

    /// The job now; None ends the stream (it was deleted, or the store keeps failing).
    async fn poll(&mut self) -> Option<Job> {
        loop {
            match self.state.store.get_job(&self.scope, self.id).await {
                Ok(job) => {
                    self.errors = 0;
                    return job;
                }
                Err(err) => {
                    self.errors += 1;
                    tracing::warn!(job_id = %self.id, error = %err, attempt = self.errors, "cannot poll the job for its event stream");
                    if self.errors >= MAX_CONSECUTIVE_ERRORS {
                        return None;
                    }
                    tokio::time::sleep(self.state.sse_poll_interval).await;
                }
            }
        }
    }
}

fn to_event(name: &str, job: JobView) -> Event {
    let event = Event::default().event(name);
    match event.json_data(job) {
        Ok(event) => event,
        // A JobView always serializes; keep the stream valid regardless.
        Err(_) => Event::default().event(name).data("{}"),
    }
}
