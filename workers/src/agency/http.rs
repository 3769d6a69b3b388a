//! The HTTP JSON adapter: one provider's API, asked with conditional
//! requests, politely and with patience.
//!
//! Every HTTP request waits for a slot under the provider's concurrency cap
//! and a token of its rate limit ([`Limiter`]), and has a timeout that
//! covers the response body too. A 5xx, a 429, a timeout or a connection
//! error is retried with exponential backoff and jitter (`backon`), waiting
//! at least what `Retry-After` asks on a 429 or 503 (seconds or an HTTP
//! date); a `Retry-After` longer than `backoff_max_ms` ends the request at
//! once instead. Other statuses are not retried. Each request goes through
//! the provider's circuit breaker ([`Breaker`]): requests that failed for
//! good (after their retries, or refused with 401 or 403) count towards
//! opening it; an answer of any kind, even one we cannot read, counts as
//! the provider being there.
//!
//! With a batch endpoint, an [`Agency::fetch`] is one `POST` per
//! `max_batch` look-ups; without one, it is one conditional `GET` per
//! look-up, all at once (the limiter paces them). If any request of a
//! fetch fails, the whole fetch fails.
//!
//! Metrics: `longhaul_agency_requests_total{provider, outcome}` counts each
//! HTTP request sent, by how it ended: `ok` (200, or 404 for a single
//! look-up), `not_modified` (304), `retried` (5xx, timeout or connection
//! error, tried again), `throttled` (429, whether tried again or not),
//! `error` (anything else, including the last failed try); and each
//! request the open circuit refused as `circuit_open`. The breaker keeps
//! `longhaul_agency_circuit_open{provider}`.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use longhaul_jobs::travel::ReservationStatus;
use reqwest::{
    header::{HeaderMap, HeaderValue, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER},
    Client, RequestBuilder, StatusCode, Url,
};
use serde::Serialize;
use serde_json::Value;

use super::{
    breaker::{Breaker, BreakerState},
    config::{AgenciesConfig, ConfigError, FieldsConfig, ProviderConfig},
    limit::Limiter,
    Agencies, Agency, AgencyError, AgencyReservation, Fetched, Lookup,
};

/// The largest response body read; a larger one is a bad response, refused
/// as soon as its length or its bytes pass this, never read whole first.
/// Bodies are parsed by serde_json, whose recursion limit (128, not
/// disabled: the `unbounded_depth` feature is off) keeps a deeply nested
/// answer from overflowing the stack.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// One provider's HTTP JSON API as an [`Agency`] (see the module
/// documentation).
#[derive(Debug)]
pub struct HttpJsonAgency {
    name: String,
    client: Client,
    base_url: String,
    lookup_path: String,
    batch_url: Option<Url>,
    max_batch: usize,
    timeout: Duration,
    headers: HeaderMap,
    reader: Reader,
    limiter: Limiter,
    breaker: Breaker,
    max_retries: usize,
    backoff_base: Duration,
    backoff_max: Duration,
}

impl HttpJsonAgency {
    /// The adapter for `config`, sending through `client` (share one client
    /// between providers: it pools connections; `build` makes one
    /// that follows no redirects). Checks `config` and reads its `env:`
    /// headers from the environment.
    pub fn new(config: &ProviderConfig, client: Client) -> Result<Self, ConfigError> {
        let checked = config.checked(&|var| std::env::var(var).ok())?;
        let limiter = Limiter::new(config.rate_per_sec, checked.burst, checked.concurrency).map_err(|err| {
            ConfigError::Invalid {
                provider: config.name.clone(),
                field: "rate_per_sec".into(),
                message: err.to_string(),
            }
        })?;
        Ok(HttpJsonAgency {
            name: config.name.clone(),
            client,
            base_url: checked.base_url,
            lookup_path: checked.lookup_path,
            batch_url: checked.batch_url,
            max_batch: checked.max_batch,
            timeout: checked.timeout,
            headers: checked.headers,
            reader: Reader { fields: config.fields.clone(), statuses: checked.statuses },
            limiter,
            breaker: Breaker::new(config.name.clone(), config.breaker.failure_threshold, checked.open_for),
            max_retries: config.max_retries,
            backoff_base: checked.backoff_base,
            backoff_max: checked.backoff_max,
        })
    }

    /// Where the provider's circuit breaker is now.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The URL of one reservation.
    fn lookup_url(&self, number: &str) -> Result<Url, String> {
        if number.is_empty() {
            return Err("the reservation number is empty".into());
        }
        let path = self.lookup_path.replace("{number}", &encode_path_segment(number));
        Url::parse(&format!("{}{path}", self.base_url)).map_err(|err| format!("no URL for this number: {err}"))
    }

    async fn fetch_one(&self, lookup: &Lookup) -> Result<Fetched, AgencyError> {
        let url = match self.lookup_url(&lookup.reservation_number) {
            Ok(url) => url,
            Err(reason) => return Ok(Fetched::Invalid(reason)),
        };
        let if_none_match = lookup.etag.as_deref().and_then(|etag| match HeaderValue::from_str(etag) {
            Ok(value) => Some(value),
            Err(_) => {
                tracing::debug!(provider = %self.name, etag, "agency: ETag not sendable as a header; asking unconditionally");
                None
            }
        });
        let answer = self.call(&Call::Get { url, if_none_match }).await?;
        Ok(match answer.status {
            StatusCode::NOT_MODIFIED if lookup.etag.is_some() => Fetched::NotModified,
            StatusCode::NOT_MODIFIED => Fetched::Invalid("304 Not Modified to a request without an ETag".into()),
            StatusCode::NOT_FOUND => Fetched::NotFound,
            _ => match serde_json::from_slice::<Value>(&answer.body) {
                Ok(value) => match self.reader.read(&value) {
                    Ok(reservation) => Fetched::Current { etag: answer.etag, reservation },
                    Err(reason) => Fetched::Invalid(reason),
                },
                Err(err) => Fetched::Invalid(format!("the body is not JSON: {err}")),
            },
        })
    }

    async fn fetch_batch(&self, url: &Url, lookups: &[Lookup]) -> Result<Vec<Fetched>, AgencyError> {
        let request = BatchRequest {
            items: lookups
                .iter()
                .map(|l| BatchRequestItem { reservation_number: &l.reservation_number, etag: l.etag.as_deref() })
                .collect(),
        };
        let body = serde_json::to_vec(&request)
            .map_err(|err| self.bad_response(format!("the batch request cannot be encoded: {err}")))?;
        let answer = self.call(&Call::Batch { url: url.clone(), body: Bytes::from(body) }).await?;
        read_batch(&answer.body, lookups, &self.reader).map_err(|reason| self.bad_response(reason))
    }

    /// Sends `call` through the breaker, with retries.
    async fn call(&self, call: &Call) -> Result<Answer, AgencyError> {
        // While another request probes a half-open circuit, wait for its
        // verdict (up to a request's timeout) rather than fail at once: a
        // provider that is back then serves the whole batch of callers.
        let waiting_since = std::time::Instant::now();
        let ticket = loop {
            match self.breaker.admit() {
                Ok(ticket) => break ticket,
                Err(_) if self.breaker.state() == BreakerState::HalfOpen && waiting_since.elapsed() < self.timeout => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(remaining) => {
                    self.count("circuit_open");
                    return Err(self.circuit_open(remaining));
                }
            }
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.backoff_base)
            .with_max_delay(self.backoff_max)
            .with_max_times(self.max_retries)
            .with_jitter();
        let mut retries = 0_usize;
        let result = (|| self.attempt(call))
            .retry(backoff)
            .when(Failure::is_transient)
            .adjust(|failure, next| self.next_wait(failure, next))
            .notify(|failure, wait| {
                retries += 1;
                self.count(if failure.is_throttled() { "throttled" } else { "retried" });
                tracing::debug!(
                    provider = %self.name,
                    reason = %failure,
                    wait_ms = wait.as_millis() as u64,
                    "agency request failed; trying again"
                );
            })
            .await;
        match result {
            Ok(answer) => {
                ticket.succeeded();
                Ok(answer)
            }
            Err(Failure::Transient { reason, retry_after, throttled }) => {
                self.count(if throttled { "throttled" } else { "error" });
                ticket.failed();
                let tries = retries + 1;
                let mut reason = format!("{reason} (after {tries} {})", if tries == 1 { "try" } else { "tries" });
                if let Some(wait) = retry_after.filter(|wait| *wait > self.backoff_max) {
                    reason.push_str(&format!(
                        "; it asked to wait {} s, longer than the {} ms this agency waits at most",
                        wait.as_secs(),
                        self.backoff_max.as_millis()
                    ));
                }
                tracing::warn!(provider = %self.name, %reason, "agency request failed");
                Err(AgencyError::Unavailable { provider: self.name.clone(), reason })
            }
            Err(Failure::Fatal(err @ AgencyError::CircuitOpen { .. })) => {
                // The circuit opened while this request waited for its turn:
                // it was never sent, and says nothing about the provider.
                self.count("circuit_open");
                drop(ticket);
                Err(err)
            }
            Err(Failure::Fatal(err)) => {
                self.count("error");
                if matches!(err, AgencyError::Unavailable { .. }) {
                    ticket.failed();
                } else {
                    ticket.succeeded();
                }
                tracing::warn!(provider = %self.name, error = %err, "agency request failed");
                Err(err)
            }
        }
    }

    /// The wait before the next try: backon's proposal (`None` once the
    /// retries are used up), capped at `backoff_max`, and at least what
    /// `Retry-After` asked for; `None` too if that is more than
    /// `backoff_max`.
    fn next_wait(&self, failure: &Failure, next: Option<Duration>) -> Option<Duration> {
        let next = next?.min(self.backoff_max);
        match failure.retry_after() {
            Some(asked) if asked > self.backoff_max => None,
            Some(asked) => Some(next.max(asked)),
            None => Some(next),
        }
    }

    /// One HTTP request: waits for the limiter, sends, reads the answer.
    async fn attempt(&self, call: &Call) -> Result<Answer, Failure> {
        let _permit = self
            .limiter
            .acquire()
            .await
            .map_err(|_| Failure::Fatal(self.unavailable("the request limiter was closed".into())))?;
        if let Some(remaining) = self.breaker.open_remaining() {
            return Err(Failure::Fatal(self.circuit_open(remaining)));
        }
        let response = self.request(call).send().await.map_err(|err| self.send_failure(&err))?;
        let status = response.status();
        let accepted = match call {
            Call::Get { .. } => {
                matches!(status, StatusCode::OK | StatusCode::NOT_MODIFIED | StatusCode::NOT_FOUND)
            }
            Call::Batch { .. } => status == StatusCode::OK,
        };
        if accepted {
            let etag = response.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = read_body(response).await.map_err(|failure| match failure {
                BodyFailure::TooLarge => Failure::Fatal(
                    self.bad_response(format!("the response is larger than {} MiB", MAX_BODY_BYTES >> 20)),
                ),
                BodyFailure::Read(err) => self.send_failure(&err),
            })?;
            self.count(if status == StatusCode::NOT_MODIFIED { "not_modified" } else { "ok" });
            return Ok(Answer { status, etag, body });
        }
        let retry_after = || retry_after(response.headers(), SystemTime::now());
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Failure::Transient {
                reason: format!("HTTP {status}"),
                retry_after: retry_after(),
                throttled: true,
            });
        }
        if status.is_server_error() {
            let retry_after = if status == StatusCode::SERVICE_UNAVAILABLE { retry_after() } else { None };
            return Err(Failure::Transient { reason: format!("HTTP {status}"), retry_after, throttled: false });
        }
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(Failure::Fatal(
                self.unavailable(format!("HTTP {status}: the provider refuses our credentials")),
            ));
        }
        Err(Failure::Fatal(self.bad_response(format!("unexpected HTTP {status}"))))
    }

    fn request(&self, call: &Call) -> RequestBuilder {
        let request = match call {
            Call::Get { url, if_none_match } => {
                let request = self.client.get(url.clone());
                match if_none_match {
                    Some(etag) => request.header(IF_NONE_MATCH, etag.clone()),
                    None => request,
                }
            }
            Call::Batch { url, body } => {
                self.client.post(url.clone()).header(CONTENT_TYPE, "application/json").body(body.clone())
            }
        };
        request.headers(self.headers.clone()).timeout(self.timeout)
    }

    /// What a failure to send or read means: a timeout or connection error
    /// is worth another try; a request that cannot be built is not.
    fn send_failure(&self, err: &reqwest::Error) -> Failure {
        if err.is_builder() {
            return Failure::Fatal(self.bad_response(format!("the request cannot be built: {}", describe(err))));
        }
        let reason =
            if err.is_timeout() { format!("timed out after {} ms", self.timeout.as_millis()) } else { describe(err) };
        Failure::Transient { reason, retry_after: None, throttled: false }
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!("longhaul_agency_requests_total", "provider" => self.name.clone(), "outcome" => outcome)
            .increment(1);
    }

    fn circuit_open(&self, remaining: Duration) -> AgencyError {
        let retry_after_secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
        AgencyError::CircuitOpen { provider: self.name.clone(), retry_after_secs }
    }

    fn unavailable(&self, reason: String) -> AgencyError {
        AgencyError::Unavailable { provider: self.name.clone(), reason }
    }

    fn bad_response(&self, reason: String) -> AgencyError {
        AgencyError::BadResponse { provider: self.name.clone(), reason }
    }
}

#[async_trait]
impl Agency for HttpJsonAgency {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    async fn fetch(&self, lookups: &[Lookup]) -> Result<Vec<Fetched>, AgencyError> {
        if lookups.is_empty() {
            return Ok(Vec::new());
        }
        match &self.batch_url {
            Some(url) => {
                let batches = lookups.chunks(self.max_batch).map(|chunk| self.fetch_batch(url, chunk));
                Ok(futures::future::try_join_all(batches).await?.concat())
            }
            None => futures::future::try_join_all(lookups.iter().map(|lookup| self.fetch_one(lookup))).await,
        }
    }
}

/// One HTTP request to make, perhaps several times.
#[derive(Debug)]
enum Call {
    Get { url: Url, if_none_match: Option<HeaderValue> },
    Batch { url: Url, body: Bytes },
}

/// An answer worth reading: 200, or 304 or 404 to a `GET`.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    etag: Option<String>,
    body: Bytes,
}

/// Why one try failed.
#[derive(Debug)]
enum Failure {
    /// Worth another try: a 5xx, a 429, a timeout, a connection error.
    Transient { reason: String, retry_after: Option<Duration>, throttled: bool },
    /// Not worth another try.
    Fatal(AgencyError),
}

impl Failure {
    fn is_transient(&self) -> bool {
        matches!(self, Failure::Transient { .. })
    }

    fn is_throttled(&self) -> bool {
        matches!(self, Failure::Transient { throttled: true, .. })
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Transient { retry_after, .. } => *retry_after,
            Failure::Fatal(_) => None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient { reason, .. } => f.write_str(reason),
            Failure::Fatal(err) => err.fmt(f),
        }
    }
}

enum BodyFailure {
    TooLarge,
    Read(reqwest::Error),
}

/// Reads the body, refusing one larger than [`MAX_BODY_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<Bytes, BodyFailure> {
    if response.content_length().is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(BodyFailure::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyFailure::Read)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyFailure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// What went wrong with a request, and its causes, without the URL (which
/// holds the reservation number).
fn describe(err: &reqwest::Error) -> String {
    let mut text = String::from(if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "reading the response failed"
    } else {
        "the request failed"
    });
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How long `Retry-After` asks to wait: whole seconds, or until an HTTP
/// date (zero if it has passed). `None` if absent or unreadable.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Percent-encodes `text` for one path segment: everything but ASCII
/// letters, digits, `-`, `.`, `_` and `~`.
fn encode_path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[derive(Serialize)]
struct BatchRequest<'a> {
    items: Vec<BatchRequestItem<'a>>,
}

#[derive(Serialize)]
struct BatchRequestItem<'a> {
    reservation_number: &'a str,
    etag: Option<&'a str>,
}

/// Reads a batch answer: one item per look-up, in order, each naming the
/// look-up's reservation number. An answer that breaks that is refused as
/// a whole; an item that cannot be read is [`Fetched::Invalid`] alone.
fn read_batch(body: &[u8], lookups: &[Lookup], reader: &Reader) -> Result<Vec<Fetched>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|err| format!("the body is not JSON: {err}"))?;
    let items = value.get("items").and_then(Value::as_array).ok_or("the body has no `items` array")?;
    if items.len() != lookups.len() {
        return Err(format!("{} items answer {} look-ups", items.len(), lookups.len()));
    }
    items
        .iter()
        .zip(lookups)
        .enumerate()
        .map(|(n, (item, lookup))| {
            let number = item.get("reservation_number").and_then(Value::as_str);
            if number != Some(lookup.reservation_number.as_str()) {
                let found = number.map_or_else(|| "no reservation number".to_owned(), |n| format!("`{n}`"));
                return Err(format!("item {n} is for {found}, not `{}`", lookup.reservation_number));
            }
            Ok(read_item(item, lookup, reader))
        })
        .collect()
}

fn read_item(item: &Value, lookup: &Lookup, reader: &Reader) -> Fetched {
    match item.get("status").and_then(Value::as_u64) {
        Some(200) => {
            let etag = match item.get("etag") {
                None | Some(Value::Null) => None,
                Some(Value::String(etag)) => Some(etag.clone()),
                Some(_) => return Fetched::Invalid("`etag` is not a string".into()),
            };
            match item.get("reservation") {
                Some(reservation) => match reader.read(reservation) {
                    Ok(reservation) => Fetched::Current { etag, reservation },
                    Err(reason) => Fetched::Invalid(reason),
                },
                None => Fetched::Invalid("status 200 without a `reservation`".into()),
            }
        }
        Some(304) if lookup.etag.is_some() => Fetched::NotModified,
        Some(304) => Fetched::Invalid("status 304 for an item sent without an ETag".into()),
        Some(404) => Fetched::NotFound,
        Some(other) => Fetched::Invalid(format!("status {other} for this item")),
        None => Fetched::Invalid("the item has no numeric `status`".into()),
    }
}

/// Reads a provider's reservation object through its field pointers and
/// status names.
#[derive(Debug)]
struct Reader {
    fields: FieldsConfig,
    statuses: HashMap<String, ReservationStatus>,
}

impl Reader {
    fn read(&self, value: &Value) -> Result<AgencyReservation, String> {
        let fields = &self.fields;
        let status = match value.pointer(&fields.status) {
            Some(Value::String(text)) => self.status(text)?,
            Some(other) => return Err(format!("status ({}) is not a string: {other}", fields.status)),
            None => return Err(format!("no status ({})", fields.status)),
        };
        let starts_at = date(value, &fields.starts_at, "starts_at")?
            .ok_or_else(|| format!("no starts_at ({})", fields.starts_at))?;
        let ends_at = date(value, &fields.ends_at, "ends_at")?;
        let changed_at = date(value, &fields.changed_at, "changed_at")?;
        let details = match value.pointer(&fields.details) {
            None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
            Some(details) => details.clone(),
        };
        Ok(AgencyReservation { status, starts_at, ends_at, details, changed_at })
    }

    /// The provider's status `text` as ours: its configured meaning, else
    /// our own name for it (in any case).
    fn status(&self, text: &str) -> Result<ReservationStatus, String> {
        if let Some(status) = self.statuses.get(text) {
            return Ok(*status);
        }
        text.trim().to_ascii_lowercase().parse().map_err(|_| format!("unknown status `{text}`"))
    }
}

/// The RFC 3339 time at `pointer`; `None` if absent or null.
fn date(value: &Value, pointer: &str, field: &str) -> Result<Option<DateTime<Utc>>, String> {
    match value.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => DateTime::parse_from_rfc3339(text)
            .map(|at| Some(at.with_timezone(&Utc)))
            .map_err(|err| format!("{field} ({pointer}) `{text}` is not an RFC 3339 time: {err}")),
        Some(other) => Err(format!("{field} ({pointer}) is not a string: {other}")),
    }
}

/// The agencies `config` describes, sharing one HTTP client, each routed by
/// its name and aliases. Reads the `env:` headers from the environment.
pub fn build(config: &AgenciesConfig) -> Result<Agencies, ConfigError> {
    config.validate()?;
    // An agency's address is the operator's choice, not a user's, so it is
    // neither checked against private ranges nor pinned against DNS
    // rebinding as mail hosts are. What the agency answers is not trusted,
    // though: bodies are capped and JSON depth limited (`http.rs`), and
    // redirects are not followed, since one could lead the request (and
    // the reservation details read from its answer) to any address the
    // worker can reach, such as the cloud's metadata service.
    let client = reqwest::Client::builder()
        .user_agent(concat!("longhaul/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|err| ConfigError::Client(err.to_string()))?;
    let mut agencies = Agencies::default();
    for provider in &config.providers {
        let agency = HttpJsonAgency::new(provider, client.clone())?;
        agencies.add(provider.routed_names(), std::sync::Arc::new(agency));
    }
    Ok(agencies)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    #[test]
    fn build_routes_names_and_aliases() {
        let config = super::super::config::from_json(
            r#"{"providers": [
                {"name": "skyways", "base_url": "http://127.0.0.1:9", "aliases": ["Skyways Airlines"], "max_batch": 25,
                 "batch_path": "/reservations/batch"},
                {"name": "grandhotels", "base_url": "http://127.0.0.1:9"}
            ]}"#,
        )
        .expect("a config");
        let agencies = build(&config).expect("agencies");
        let sky = agencies.for_provider("  skyways airlines ").expect("routed");
        assert_eq!(sky.name(), "skyways");
        assert_eq!(sky.max_batch(), 25);
        assert_eq!(agencies.for_provider("SKYWAYS").map(|a| a.name()), Some("skyways"));
        assert_eq!(agencies.for_provider("GrandHotels").map(|a| a.max_batch()), Some(100));
        assert!(agencies.for_provider("nope").is_none());
    }

    fn reader() -> Reader {
        Reader { fields: FieldsConfig::default(), statuses: HashMap::new() }
    }

    fn lookup(number: &str, etag: Option<&str>) -> Lookup {
        Lookup { reservation_number: number.into(), etag: etag.map(str::to_owned) }
    }

    fn reservation() -> Value {
        json!({
            "reservation_number": "A1", "status": "confirmed",
            "starts_at": "2030-01-01T10:00:00+01:00", "ends_at": null,
            "details": {"gate": "B2"}, "changed_at": "2029-12-01T00:00:00.250Z",
        })
    }

    #[test]
    fn reads_a_reservation() {
        let read = reader().read(&reservation()).expect("readable");
        assert_eq!(read.status, ReservationStatus::Confirmed);
        assert_eq!(read.starts_at, Utc.with_ymd_and_hms(2030, 1, 1, 9, 0, 0).single().expect("a date"));
        assert_eq!(read.ends_at, None);
        assert_eq!(read.details, json!({"gate": "B2"}));
        assert_eq!(read.changed_at.map(|at| at.timestamp_millis()), Some(1_890_777_600_250));
    }

    #[test]
    fn missing_optional_fields_are_none_and_details_empty() {
        let read =
            reader().read(&json!({"status": "CANCELLED", "starts_at": "2030-01-01T00:00:00Z"})).expect("readable");
        assert_eq!(read.status, ReservationStatus::Cancelled);
        assert_eq!((read.ends_at, read.changed_at), (None, None));
        assert_eq!(read.details, json!({}));
    }

    #[test]
    fn unreadable_fields_are_named() {
        let cases = [
            ("status", json!("booked"), "unknown status `booked`"),
            ("status", json!(1), "status (/status) is not a string"),
            ("starts_at", json!("soon"), "starts_at (/starts_at) `soon` is not an RFC 3339 time"),
            ("starts_at", Value::Null, "no starts_at (/starts_at)"),
            ("ends_at", json!("2030-13-01T00:00:00Z"), "ends_at (/ends_at)"),
            ("changed_at", json!(12), "changed_at (/changed_at) is not a string"),
        ];
        for (field, value, expected) in cases {
            let mut item = reservation();
            item[field] = value;
            let reason = reader().read(&item).expect_err("unreadable");
            assert!(reason.contains(expected), "{field}: {reason}");
        }
        let mut item = reservation();
        item.as_object_mut().map(|map| map.remove("status"));
        assert_eq!(reader().read(&item).expect_err("unreadable"), "no status (/status)");
    }

    #[test]
    fn configured_pointers_and_statuses_apply() {
        let reader = Reader {
            fields: FieldsConfig {
                status: "/booking/state".into(),
                starts_at: "/segments/0/departure".into(),
                ends_at: "/segments/0/arrival".into(),
                details: "".into(),
                changed_at: "/meta/updated".into(),
            },
            statuses: HashMap::from([("HK".to_owned(), ReservationStatus::Confirmed)]),
        };
        let value = json!({
            "booking": {"state": "HK"},
            "segments": [{"departure": "2030-01-01T10:00:00Z", "arrival": "2030-01-01T12:00:00Z"}],
        });
        let read = reader.read(&value).expect("readable");
        assert_eq!(read.status, ReservationStatus::Confirmed);
        assert_eq!(read.ends_at.map(|at| at.to_rfc3339()), Some("2030-01-01T12:00:00+00:00".into()));
        assert_eq!(read.details, value, "the empty pointer is the whole object");
        assert_eq!(read.changed_at, None);
    }

    #[test]
    fn batch_items_are_read_one_by_one() {
        let body = json!({"items": [
            {"reservation_number": "A1", "status": 200, "etag": "\"4\"", "reservation": reservation()},
            {"reservation_number": "A2", "status": 304},
            {"reservation_number": "A3", "status": 404},
            {"reservation_number": "A4", "status": 200, "reservation": {"status": "confirmed"}},
            {"reservation_number": "A5", "status": 500},
            {"reservation_number": "A6", "status": 304},
            {"reservation_number": "A7", "status": 200, "etag": 4, "reservation": reservation()},
            {"reservation_number": "A8", "status": 200},
        ]});
        let lookups = [
            lookup("A1", Some("\"3\"")),
            lookup("A2", Some("\"1\"")),
            lookup("A3", None),
            lookup("A4", None),
            lookup("A5", None),
            lookup("A6", None),
            lookup("A7", None),
            lookup("A8", None),
        ];
        let fetched = read_batch(body.to_string().as_bytes(), &lookups, &reader()).expect("readable");
        assert_eq!(fetched.len(), 8);
        match &fetched[0] {
            Fetched::Current { etag, reservation } => {
                assert_eq!(etag.as_deref(), Some("\"4\""));
                assert_eq!(reservation.details, json!({"gate": "B2"}));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fetched[1], Fetched::NotModified);
        assert_eq!(fetched[2], Fetched::NotFound);
        assert!(matches!(&fetched[3], Fetched::Invalid(reason) if reason.contains("starts_at")), "{:?}", fetched[3]);
        assert!(matches!(&fetched[4], Fetched::Invalid(reason) if reason.contains("500")), "{:?}", fetched[4]);
        assert!(matches!(&fetched[5], Fetched::Invalid(reason) if reason.contains("304")), "{:?}", fetched[5]);
        assert!(matches!(&fetched[6], Fetched::Invalid(reason) if reason.contains("etag")), "{:?}", fetched[6]);
        assert!(matches!(&fetched[7], Fetched::Invalid(reason) if reason.contains("reservation")), "{:?}", fetched[7]);
    }

    #[test]
    fn batch_answers_that_do_not_match_the_request_are_refused() {
        let lookups = [lookup("A1", None), lookup("A2", None)];
        let item = |n: &str| json!({"reservation_number": n, "status": 404});
        let cases = [
            (b"<html>".to_vec(), "not JSON"),
            (json!({"results": []}).to_string().into_bytes(), "no `items` array"),
            (json!({"items": [item("A1")]}).to_string().into_bytes(), "1 items answer 2 look-ups"),
            (json!({"items": [item("A2"), item("A1")]}).to_string().into_bytes(), "item 0 is for `A2`, not `A1`"),
            (json!({"items": [item("A1"), {"status": 404}]}).to_string().into_bytes(), "item 1 is for no reservation"),
        ];
        for (body, expected) in cases {
            let reason = read_batch(&body, &lookups, &reader()).expect_err("refused");
            assert!(reason.contains(expected), "{reason}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("a header value"));
            headers
        };
        assert_eq!(retry_after(&headers("3"), now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&headers(" 0 "), now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(retry_after(&headers(&later), now), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(retry_after(&headers(&earlier), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&headers("-1"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_path_segment("SKYWAYS00000042"), "SKYWAYS00000042");
        assert_eq!(encode_path_segment("a b/c?d#é"), "a%20b%2Fc%3Fd%23%C3%A9");
        assert_eq!(encode_path_segment("x-y_z.~"), "x-y_z.~");
    }

    #[test]
    fn lookup_urls_fill_in_the_number() {
        let mut config = ProviderConfig::new("sky", "http://127.0.0.1:9/api/");
        config.lookup_path = "/v1/pnr/{number}?full=1".into();
        let agency = HttpJsonAgency::new(&config, Client::new()).expect("an agency");
        assert_eq!(
            agency.lookup_url("AB/1").map(String::from),
            Ok("http://127.0.0.1:9/api/v1/pnr/AB%2F1?full=1".to_owned())
        );
        assert!(agency.lookup_url("").is_err());
    }

    #[test]
    fn waits_honour_retry_after_within_the_maximum() {
        let mut config = ProviderConfig::new("sky", "http://127.0.0.1:9");
        config.backoff_max_ms = 5_000;
        let agency = HttpJsonAgency::new(&config, Client::new()).expect("an agency");
        let transient = |retry_after: Option<u64>| Failure::Transient {
            reason: "HTTP 429".into(),
            retry_after: retry_after.map(Duration::from_secs),
            throttled: true,
        };
        let ms = Duration::from_millis;
        assert_eq!(agency.next_wait(&transient(None), Some(ms(300))), Some(ms(300)));
        assert_eq!(agency.next_wait(&transient(None), Some(ms(9_000))), Some(ms(5_000)));
        assert_eq!(agency.next_wait(&transient(Some(2)), Some(ms(300))), Some(ms(2_000)));
        assert_eq!(agency.next_wait(&transient(Some(0)), Some(ms(300))), Some(ms(300)));
        assert_eq!(agency.next_wait(&transient(Some(6)), Some(ms(300))), None);
        assert_eq!(agency.next_wait(&transient(Some(1)), None), None, "retries used up");
    }
}
