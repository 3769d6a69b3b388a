//! Metrics the API records itself: every request by route, and the queues'
//! gauges, read from the store when `/metrics` is scraped.
//!
//! The recorder belongs to the process (the binary installs it); without one
//! these calls cost next to nothing and record nothing.

use std::time::{Duration, Instant};

use axum::{
    extract::{MatchedPath, Request},
    http::Method,
    middleware::Next,
    response::Response,
};
use longhaul_jobs::DynStore;

/// The route label of a request that matched no route. Labels never carry
/// the raw path: every distinct path would be a new series.
const UNMATCHED: &str = "unmatched";

/// Counts a request in `longhaul_http_requests_total{method,route,status}`
/// and times it in `longhaul_http_request_duration_seconds{method,route}`.
/// `route` is the route's template (`/v1/jobs/{id}`). An event stream is
/// timed until its headers are sent, not until it ends.
pub async fn track_http(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED, MatchedPath::as_str).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("longhaul_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("longhaul_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: the standard ones, and `other` for the rest, so
/// that made-up methods cannot mint series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// How long the queue gauges stand before a scrape reads the store again.
pub const QUEUE_GAUGES_TTL: Duration = Duration::from_secs(2);

/// A scrape waits this long for the store at most, then renders the gauges
/// it has.
const QUEUE_STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// When the queue gauges were last read. The gauges belong to the process,
/// and so does this.
static QUEUE_GAUGES_READ: tokio::sync::Mutex<Option<Instant>> = tokio::sync::Mutex::const_new(None);

/// Sets the gauges of every lane from [`lane_stats`], at most once per
/// [`QUEUE_GAUGES_TTL`] however often `/metrics` is scraped:
/// `longhaul_queue_depth`, `longhaul_queue_oldest_age_seconds`,
/// `longhaul_queue_in_flight`, `longhaul_queue_delayed`,
/// `longhaul_queue_dead` and `longhaul_queue_paused` (1 or 0), each by
/// `lane`. A failed read is logged and leaves the previous values.
///
/// [`lane_stats`]: longhaul_jobs::Store::lane_stats
pub async fn refresh_queue_gauges(store: &DynStore) {
    // Held across the read: scrapes that arrive meanwhile wait for it and
    // then find the gauges fresh, rather than all asking the database.
    let mut read = QUEUE_GAUGES_READ.lock().await;
    if read.is_some_and(|at| at.elapsed() < QUEUE_GAUGES_TTL) {
        return;
    }
    *read = Some(Instant::now());
    let stats = match tokio::time::timeout(QUEUE_STATS_TIMEOUT, store.lane_stats(&longhaul_jobs::Scope::Platform)).await
    {
        Ok(Ok(stats)) => stats,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "cannot read the queues for /metrics");
            return;
        }
        Err(_) => {
            tracing::warn!(timeout_secs = QUEUE_STATS_TIMEOUT.as_secs(), "reading the queues for /metrics timed out");
            return;
        }
    };
    for stats in stats {
        let lane = stats.lane.as_str();
        metrics::gauge!("longhaul_queue_depth", "lane" => lane).set(stats.depth as f64);
        metrics::gauge!("longhaul_queue_oldest_age_seconds", "lane" => lane).set(stats.oldest_age_seconds);
        metrics::gauge!("longhaul_queue_in_flight", "lane" => lane).set(stats.in_flight as f64);
        metrics::gauge!("longhaul_queue_delayed", "lane" => lane).set(stats.delayed as f64);
        metrics::gauge!("longhaul_queue_dead", "lane" => lane).set(stats.dead as f64);
        metrics::gauge!("longhaul_queue_paused", "lane" => lane).set(if stats.paused { 1.0 } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").expect("a method")), "other");
    }
}
