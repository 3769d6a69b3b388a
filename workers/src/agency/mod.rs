//! Travel agencies: where `reservation_refresh` asks what a reservation looks
//! like now.
//!
//! [`Agency`] is the port: look up a batch of reservations by number, each
//! with the ETag we last saw, and get back what changed. [`http::HttpJsonAgency`]
//! is the one adapter, configured per provider ([`config`]): conditional
//! requests, batch look-ups where the provider has them, a token-bucket rate
//! limit, a concurrency cap, timeouts, retries with backoff that honour
//! `Retry-After`, and a circuit breaker. [`Agencies`] routes a reservation's
//! provider name to its adapter.

pub mod breaker;
pub mod config;
pub mod http;
pub mod limit;

pub use config::{AgenciesConfig, ConfigError, ProviderConfig};
pub use http::{build, HttpJsonAgency};

use std::{collections::HashMap, fmt, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use longhaul_jobs::travel::ReservationStatus;
use serde_json::Value;

/// One reservation to look up at its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The provider's reservation number (PNR, confirmation number).
    pub reservation_number: String,
    /// The entity tag of the version we hold, if the provider gave one:
    /// sent as `If-None-Match`, so an unchanged reservation costs a 304.
    pub etag: Option<String>,
}

/// A reservation as its provider describes it now.
#[derive(Debug, Clone, PartialEq)]
pub struct AgencyReservation {
    pub status: ReservationStatus,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// The provider's own data (gate, seat, room, terminal, …), kept as the
    /// reservation's `details`.
    pub details: Value,
    /// When the provider says this version came to be, if it says so: the
    /// start of the staleness we measure.
    pub changed_at: Option<DateTime<Utc>>,
}

/// What the provider said about one [`Lookup`].
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// The ETag still matches: nothing changed, nothing to write.
    NotModified,
    /// The current version, with its ETag if the provider sent one.
    Current { etag: Option<String>, reservation: AgencyReservation },
    /// The provider does not know this reservation number.
    NotFound,
    /// The provider answered for this item with something we cannot read.
    /// Only this item is lost; the reason is readable.
    Invalid(String),
}

/// Why a whole request to a provider failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgencyError {
    /// The provider's circuit is open after repeated failures: no request
    /// was sent. It is tried again after `retry_after_secs`.
    #[error("{provider}: circuit open after repeated failures; next try in {retry_after_secs} s")]
    CircuitOpen { provider: String, retry_after_secs: u64 },
    /// The provider failed (5xx, 429, timeout, connection) and retries ran
    /// out.
    #[error("{provider}: {reason}")]
    Unavailable { provider: String, reason: String },
    /// The provider's answer as a whole could not be read (not JSON, wrong
    /// shape, wrong number of items).
    #[error("{provider}: unreadable response: {reason}")]
    BadResponse { provider: String, reason: String },
}

/// A travel provider that can tell us the current state of reservations.
#[async_trait]
pub trait Agency: Send + Sync {
    /// The provider's name, as configured.
    fn name(&self) -> &str;

    /// How many lookups one [`Agency::fetch`] call takes at most.
    fn max_batch(&self) -> usize;

    /// Looks up `lookups` (at most [`Agency::max_batch`] of them). The answer
    /// has one [`Fetched`] per lookup, in the same order.
    ///
    /// The adapter applies its own rate limit, concurrency cap, retries and
    /// circuit breaker: callers may call it from many tasks at once.
    async fn fetch(&self, lookups: &[Lookup]) -> Result<Vec<Fetched>, AgencyError>;
}

/// The configured agencies, by the provider names reservations carry.
#[derive(Clone, Default)]
pub struct Agencies {
    by_name: HashMap<String, Arc<dyn Agency>>,
}

impl fmt::Debug for Agencies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("Agencies").field("names", &names).finish()
    }
}

impl Agencies {
    /// Routes each of `names` (matched without regard to case or the spaces
    /// around them) to `agency`.
    pub fn add(&mut self, names: impl IntoIterator<Item = impl AsRef<str>>, agency: Arc<dyn Agency>) {
        for name in names {
            self.by_name.insert(normalize(name.as_ref()), Arc::clone(&agency));
        }
    }

    /// The agency for a reservation's provider, if one is configured.
    pub fn for_provider(&self, provider: &str) -> Option<&Arc<dyn Agency>> {
        self.by_name.get(&normalize(provider))
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

fn normalize(name: &str) -> String {
    name.trim().to_lowercase()
}
