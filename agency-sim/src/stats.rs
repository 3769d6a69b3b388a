//! What the simulator counts: per provider and in total.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};

/// The counts of one provider, or of all of them together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStats {
    /// HTTP requests received for the provider's API (single and batch,
    /// including those answered with an injected failure).
    pub requests: u64,
    /// Of those, batch requests.
    pub batch_requests: u64,
    /// Reservations looked up: one per `GET`, one per batch item; requests
    /// answered with an injected failure look up nothing.
    pub items: u64,
    /// Look-ups answered with the current version (200).
    pub ok: u64,
    /// Look-ups answered 304, the ETag matching.
    pub not_modified: u64,
    /// Look-ups of unknown reservation numbers (404).
    pub not_found: u64,
    /// Requests answered 503 because the provider was down or by the
    /// configured error rate.
    pub injected_5xx: u64,
    /// Requests answered 429 because the provider was throttled or by the
    /// configured throttle rate.
    pub injected_429: u64,
    /// The most requests in flight at once that the simulator saw (for the
    /// total: across all providers).
    pub max_in_flight: u64,
    /// Changes applied to the provider's reservations.
    pub changes: u64,
}

/// The simulator's counts since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// All providers together.
    pub total: ProviderStats,
    /// Each provider, by name.
    pub providers: BTreeMap<String, ProviderStats>,
}

impl Stats {
    /// The counts of `provider`, zero if it is not simulated.
    pub fn provider(&self, provider: &str) -> ProviderStats {
        self.providers.get(provider).cloned().unwrap_or_default()
    }
}

/// Live counters, updated by the request handlers and the change task.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub batch_requests: AtomicU64,
    pub items: AtomicU64,
    pub ok: AtomicU64,
    pub not_modified: AtomicU64,
    pub not_found: AtomicU64,
    pub injected_5xx: AtomicU64,
    pub injected_429: AtomicU64,
    pub changes: AtomicU64,
    pub in_flight: InFlight,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ProviderStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ProviderStats {
            requests: get(&self.requests),
            batch_requests: get(&self.batch_requests),
            items: get(&self.items),
            ok: get(&self.ok),
            not_modified: get(&self.not_modified),
            not_found: get(&self.not_found),
            injected_5xx: get(&self.injected_5xx),
            injected_429: get(&self.injected_429),
            max_in_flight: self.in_flight.max(),
            changes: get(&self.changes),
        }
    }
}

/// Requests in flight now, and the most seen at once.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    now: AtomicU64,
    max: AtomicU64,
}

impl InFlight {
    /// Counts one more request in flight until the guard is dropped.
    pub fn enter(&self) -> InFlightGuard<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        InFlightGuard(self)
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::SeqCst)
    }
}

/// One request in flight; dropping it (the handler finished or was
/// cancelled because the client went away) counts it out.
pub(crate) struct InFlightGuard<'a>(&'a InFlight);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_tracks_the_peak() {
        let flight = InFlight::default();
        let a = flight.enter();
        let b = flight.enter();
        drop(a);
        let c = flight.enter();
        assert_eq!(flight.max(), 2);
        let d = flight.enter();
        assert_eq!(flight.max(), 3);
        drop((b, c, d));
        let _e = flight.enter();
        assert_eq!(flight.max(), 3);
    }
}
