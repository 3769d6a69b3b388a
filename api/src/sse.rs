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

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Path, State},
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{stream, Stream, StreamExt};
use longhaul_jobs::{Job, Scope, Status};
use uuid::Uuid;

use crate::{
    auth::Principal,
    problem::{Problem, ProblemDocument},
    routes::jobs::visible_job,
    views::JobView,
    AppState,
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
        (status = 200, description = "`status` and `progress` events, each with the job as data, until a final status", content_type = "text/event-stream", body = JobView),
        (status = 404, body = ProblemDocument, content_type = "application/problem+json"),
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
    let watch =
        Watch { state, scope: principal.scope(), id: job.id, last: None, pending: Some(job), errors: 0, done: false };
    let shutdown = watch.state.shutdown.clone().cancelled_owned();
    let events = stream::unfold(watch, |mut watch| async move {
        let event = watch.next_event().await?;
        Some((Ok(event), watch))
    })
    .take_until(shutdown);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
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
