//! Serving the router on a socket, with time limits on what clients send.
//!
//! A client that sends its request slowly holds a connection, a task and
//! often a database slot while it does. Three limits cut such clients off:
//! - **headers**: the whole header block must arrive within
//!   [`HttpTimeouts::header_read`], or hyper closes the connection. hyper
//!   starts that clock when it waits for a request, so it also closes a
//!   keep-alive connection that stays idle that long;
//! - **bodies**: an ordinary body (JSON, a form) must arrive whole within
//!   [`HttpTimeouts::body`], and no body may pause longer than that between
//!   two chunks (tower-http's `TimeoutBody`);
//! - **uploads**: a photo's bytes (`PUT /v1/media/{id}/upload`, up to
//!   25 MiB) get [`HttpTimeouts::upload`] in all instead, which a phone on a
//!   slow network needs, but still no pause longer than `body`;
//! - **import files**: an admin's file for a bulk import
//!   (`PUT /v1/uploads/{id}/upload`, up to 4 GiB) gets
//!   [`HttpTimeouts::upload`] too, but never less than [`IMPORT_UPLOAD_TIME`],
//!   and still no pause longer than `body`.
//!
//! A body that runs out of time is a 408 (from the JSON extractor and the
//! upload), and the connection is closed after it.
//!
//! [`serve`] speaks HTTP/1.1 only. The load balancer speaks it to its
//! targets, and hyper-util's HTTP/1-or-2 detection waits for the first bytes
//! with no timeout at all, so a connection that sends nothing would be held
//! forever. It gives each request the peer's address
//! (`ConnectInfo<SocketAddr>`, for the audit log), and on `stop` it stops
//! accepting and lets open connections finish their requests.

use std::{
    error::Error as StdError,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{ConnectInfo, MatchedPath, Request, State},
    middleware::Next,
    response::Response,
    BoxError, Router,
};
use http_body::{Frame, SizeHint};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, time::Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::timeout::{TimeoutBody, TimeoutError};

use crate::{problem::Problem, AppState};

/// How long clients may take to send their requests. `None` turns a limit
/// off. Start from `HttpTimeouts::default()`.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    /// The whole header block of a request (and the idle time of a
    /// keep-alive connection between requests).
    pub header_read: Option<Duration>,
    /// An ordinary request body, whole; and the longest pause within any body.
    pub body: Option<Duration>,
    /// The body of an upload route, whole.
    pub upload: Option<Duration>,
}

/// 10 s for headers, which a client sends at once; 60 s for an ordinary
/// body (256 KiB at most: 35 kbit/s); 10 minutes for a 25 MiB photo, which
/// a phone at 350 kbit/s still makes.
impl Default for HttpTimeouts {
    fn default() -> Self {
        HttpTimeouts {
            header_read: Some(Duration::from_secs(10)),
            body: Some(Duration::from_secs(60)),
            upload: Some(Duration::from_secs(600)),
        }
    }
}

/// Routes whose bodies are photos, with [`HttpTimeouts::upload`].
const UPLOAD_ROUTES: &[&str] = &["/v1/media/{id}/upload"];

/// Routes whose bodies are import files, with [`HttpTimeouts::upload`] but
/// at least [`IMPORT_UPLOAD_TIME`].
const IMPORT_ROUTES: &[&str] = &["/v1/uploads/{id}/upload"];

/// The least time an import file (up to 4 GiB) gets in all: 2 hours, which
/// takes 4 GiB at 5 Mbit/s, or 500 MB at 0.6 Mbit/s. Only admins send
/// them, and a client that stops sending is still cut off after `body`.
pub const IMPORT_UPLOAD_TIME: Duration = Duration::from_secs(2 * 60 * 60);

/// What a request body is, which decides the total time it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// JSON, a form: [`HttpTimeouts::body`].
    Ordinary,
    /// A photo: [`HttpTimeouts::upload`].
    Upload,
    /// An import file: [`HttpTimeouts::upload`], at least [`IMPORT_UPLOAD_TIME`].
    Import,
}

impl BodyKind {
    fn of_route(route: Option<&str>) -> BodyKind {
        match route {
            Some(route) if UPLOAD_ROUTES.contains(&route) => BodyKind::Upload,
            Some(route) if IMPORT_ROUTES.contains(&route) => BodyKind::Import,
            _ => BodyKind::Ordinary,
        }
    }
}

impl HttpTimeouts {
    /// The 408 of a body that ran out of time, saying what the limits are.
    pub(crate) fn body_timed_out(&self, kind: BodyKind) -> Problem {
        let total = self.total_for(kind);
        let mut rules = Vec::new();
        if let Some(total) = total {
            rules.push(format!("arrive whole within {} s", total.as_secs_f64()));
        }
        if let Some(pause) = self.body {
            rules.push(format!("never pause for {} s", pause.as_secs_f64()));
        }
        Problem::request_timeout(format!("the request body was too slow: it must {}", rules.join(" and ")))
    }

    /// The total time a body of this kind may take; `None`: no limit.
    pub(crate) fn total_for(&self, kind: BodyKind) -> Option<Duration> {
        match kind {
            BodyKind::Ordinary => self.body,
            BodyKind::Upload => self.upload,
            BodyKind::Import => self.upload.map(|upload| upload.max(IMPORT_UPLOAD_TIME)),
        }
    }

    /// The total time the body of a request to `route` may take.
    pub(crate) fn body_limit_for(&self, route: Option<&str>) -> Option<Duration> {
        self.total_for(BodyKind::of_route(route))
    }
}

/// Gives the request's body its time limits (see the module's docs). After
/// routing, since the route decides which.
pub(crate) async fn limit_body_time(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let total = state.timeouts.body_limit_for(route);
    let pause = state.timeouts.body;
    let request = request.map(|body| {
        let body = match total {
            Some(total) => Body::new(DeadlineBody::new(body, total)),
            None => body,
        };
        match pause {
            Some(pause) => Body::new(TimeoutBody::new(pause, body)),
            None => body,
        }
    });
    next.run(request).await
}

/// A body that fails once `deadline` passes, however steadily it trickles.
/// (tower-http's `TimeoutBody` only bounds the pauses.)
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Body, limit: Duration) -> DeadlineBody {
        DeadlineBody { inner, deadline: Box::pin(tokio::time::sleep(limit)) }
    }
}

/// The body did not arrive within its total time.
#[derive(Debug)]
struct BodyDeadlinePassed;

impl std::fmt::Display for BodyDeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive within its time")
    }
}

impl StdError for BodyDeadlinePassed {}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        // Data that is ready is taken first: only a client that makes us
        // wait can run out of time.
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|frame| frame.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyDeadlinePassed)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a body read failed because the client ran out of time (either
/// limit), anywhere in the error's chain of sources.
pub(crate) fn is_body_timeout(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<BodyDeadlinePassed>() || err.is::<TimeoutError>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// Serves `router` on `listener` until `stop` trips, then waits for the
/// open connections to finish (the caller bounds that wait). Each request
/// carries the peer's `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: HttpTimeouts,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(timeouts.header_read);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // The peer gave up before we took it: nothing to do.
                Err(err) if is_connection_error(&err) => continue,
                // Out of file descriptors, most likely: wait for some to free
                // up rather than spin.
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept a connection; retrying in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        // Event streams write small frames that should not wait for more.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let service = router.clone().map_request(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.map(Body::new)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            // A client that hangs up or times out ends its connection with
            // an error; that is its business, not ours.
            if let Err(err) = connection.await {
                tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Errors of one connection that `accept` reports, after which it can go on
/// at once.
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_get_longer_than_ordinary_bodies_and_import_files_longest() {
        let timeouts = HttpTimeouts::default();
        assert_eq!(timeouts.body_limit_for(Some("/v1/jobs")), timeouts.body);
        assert_eq!(timeouts.body_limit_for(None), timeouts.body);
        assert_eq!(timeouts.body_limit_for(Some("/v1/media/{id}/upload")), timeouts.upload);
        assert_eq!(timeouts.body_limit_for(Some("/v1/uploads/{id}/upload")), Some(IMPORT_UPLOAD_TIME));
        let generous = HttpTimeouts { upload: Some(IMPORT_UPLOAD_TIME * 2), ..timeouts };
        assert_eq!(generous.body_limit_for(Some("/v1/uploads/{id}/upload")), Some(IMPORT_UPLOAD_TIME * 2));
        let off = HttpTimeouts { upload: None, ..timeouts };
        assert_eq!(off.body_limit_for(Some("/v1/uploads/{id}/upload")), None, "off stays off");
    }
}
