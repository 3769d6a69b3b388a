//! A circuit breaker per provider: after repeated failures, stop sending it
//! requests for a while, then let one request find out whether it is back.
//!
//! - **Closed**: requests go through. `failure_threshold` failed requests
//!   in a row (each one failed for good, after its retries) open it; a
//!   successful one resets the count.
//! - **Open**: requests are refused at once, with the time left, for
//!   `open_for`.
//! - **Half-open**: after that, exactly one request (the probe) goes
//!   through; the others are still refused. The probe's success closes the
//!   breaker, its failure opens it again for another `open_for`. A probe
//!   dropped before it was decided lets the next request probe.
//!
//! The gauge `longhaul_agency_circuit_open{provider}` is 1 while the
//! breaker is open or half-open, 0 while it is closed.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Where a [`Breaker`] is, as [`Breaker::state`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests go through; `failures` failed in a row so far.
    Closed { failures: u32 },
    /// Requests are refused until the open period ends.
    Open,
    /// The open period is over: the next request probes (or one already
    /// does, and the others are refused).
    HalfOpen,
}

/// The time source, replaceable in tests.
type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// A thread-safe circuit breaker (see the module documentation).
pub struct Breaker {
    provider: String,
    failure_threshold: u32,
    open_for: Duration,
    clock: Clock,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// `epoch` counts the times the breaker closed, so a request admitted
    /// before it last opened cannot count towards the new run.
    Closed {
        failures: u32,
        epoch: u64,
    },
    Open {
        until: Instant,
        epoch: u64,
    },
    HalfOpen {
        probing: bool,
        epoch: u64,
    },
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("provider", &self.provider)
            .field("failure_threshold", &self.failure_threshold)
            .field("open_for", &self.open_for)
            .field("state", &self.state())
            .finish()
    }
}

/// Permission to send one request, from [`Breaker::admit`]. Report how it
/// ended with [`Ticket::succeeded`] or [`Ticket::failed`].
#[must_use = "report the request's outcome with `succeeded` or `failed`"]
pub struct Ticket<'a> {
    breaker: &'a Breaker,
    epoch: u64,
    probe: bool,
    decided: bool,
}

impl Breaker {
    /// A closed breaker for `provider` that opens after `failure_threshold`
    /// failures in a row (at least 1) and stays open for `open_for`.
    pub fn new(provider: impl Into<String>, failure_threshold: u32, open_for: Duration) -> Self {
        Self::with_clock(provider, failure_threshold, open_for, Instant::now)
    }

    /// [`Breaker::new`] with another source of the current time.
    pub fn with_clock(
        provider: impl Into<String>,
        failure_threshold: u32,
        open_for: Duration,
        clock: impl Fn() -> Instant + Send + Sync + 'static,
    ) -> Self {
        let breaker = Breaker {
            provider: provider.into(),
            failure_threshold: failure_threshold.max(1),
            open_for,
            clock: Arc::new(clock),
            state: Mutex::new(State::Closed { failures: 0, epoch: 0 }),
        };
        breaker.set_gauge(false);
        breaker
    }

    /// Where the breaker is now.
    pub fn state(&self) -> BreakerState {
        let now = (self.clock)();
        match *self.lock() {
            State::Closed { failures, .. } => BreakerState::Closed { failures },
            State::Open { until, .. } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// How long the breaker stays open, while it is open. A request
    /// admitted while it was closed checks this again just before it is
    /// sent: it may have waited for the rate limit or a free slot while
    /// others failed.
    pub fn open_remaining(&self) -> Option<Duration> {
        let now = (self.clock)();
        match *self.lock() {
            State::Open { until, .. } if now < until => Some(until - now),
            _ => None,
        }
    }

    /// Lets one request through, or refuses it with how long the breaker
    /// stays open (at least one second while another request probes).
    pub fn admit(&self) -> Result<Ticket<'_>, Duration> {
        let now = (self.clock)();
        let mut state = self.lock();
        match *state {
            State::Closed { epoch, .. } => Ok(Ticket { breaker: self, epoch, probe: false, decided: false }),
            State::Open { until, .. } if now < until => Err(until - now),
            State::Open { epoch, .. } | State::HalfOpen { probing: false, epoch } => {
                *state = State::HalfOpen { probing: true, epoch };
                tracing::debug!(provider = %self.provider, "agency circuit half-open: probing");
                Ok(Ticket { breaker: self, epoch, probe: true, decided: false })
            }
            State::HalfOpen { probing: true, .. } => Err(Duration::from_secs(1)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_gauge(&self, open: bool) {
        metrics::gauge!("longhaul_agency_circuit_open", "provider" => self.provider.clone()).set(if open {
            1.0
        } else {
            0.0
        });
    }

    fn record(&self, ticket_epoch: u64, probe: bool, success: bool) {
        let now = (self.clock)();
        let mut state = self.lock();
        match (*state, probe, success) {
            (State::HalfOpen { epoch, .. }, true, true) => {
                *state = State::Closed { failures: 0, epoch: epoch + 1 };
                drop(state);
                self.set_gauge(false);
                tracing::info!(provider = %self.provider, "agency circuit closed: the probe succeeded");
            }
            (State::HalfOpen { epoch, .. }, true, false) => {
                *state = State::Open { until: now + self.open_for, epoch };
                drop(state);
                tracing::warn!(
                    provider = %self.provider,
                    open_secs = self.open_for.as_secs(),
                    "agency circuit open again: the probe failed"
                );
            }
            (State::Closed { epoch, .. }, false, true) if epoch == ticket_epoch => {
                *state = State::Closed { failures: 0, epoch };
            }
            (State::Closed { failures, epoch }, false, false) if epoch == ticket_epoch => {
                let failures = failures.saturating_add(1);
                if failures >= self.failure_threshold {
                    *state = State::Open { until: now + self.open_for, epoch };
                    drop(state);
                    self.set_gauge(true);
                    tracing::warn!(
                        provider = %self.provider,
                        failures,
                        open_secs = self.open_for.as_secs(),
                        "agency circuit open after repeated failures"
                    );
                } else {
                    *state = State::Closed { failures, epoch };
                }
            }
            // A request admitted before the breaker last changed: its
            // outcome says nothing about the provider now.
            _ => {}
        }
    }

    /// A probe was dropped undecided: let the next request probe.
    fn abandon_probe(&self) {
        let mut state = self.lock();
        if let State::HalfOpen { probing: true, epoch } = *state {
            *state = State::HalfOpen { probing: false, epoch };
        }
    }
}

impl Ticket<'_> {
    /// Whether this request is the half-open breaker's probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The request got an answer from the provider.
    pub fn succeeded(mut self) {
        self.decided = true;
        self.breaker.record(self.epoch, self.probe, true);
    }

    /// The request failed for good (its retries ran out).
    pub fn failed(mut self) {
        self.decided = true;
        self.breaker.record(self.epoch, self.probe, false);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.decided && self.probe {
            self.breaker.abandon_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock the test moves by hand.
    #[derive(Clone)]
    struct ManualClock(Arc<Mutex<Instant>>);

    impl ManualClock {
        fn new() -> Self {
            ManualClock(Arc::new(Mutex::new(Instant::now())))
        }

        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) += by;
        }

        fn breaker(&self, threshold: u32, open_for: Duration) -> Breaker {
            let clock = self.clone();
            Breaker::with_clock("test", threshold, open_for, move || {
                *clock.0.lock().unwrap_or_else(PoisonError::into_inner)
            })
        }
    }

    fn fail(breaker: &Breaker) {
        breaker.admit().expect("admitted").failed();
    }

    fn succeed(breaker: &Breaker) {
        breaker.admit().expect("admitted").succeeded();
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let clock = ManualClock::new();
        let breaker = clock.breaker(3, Duration::from_secs(30));
        fail(&breaker);
        fail(&breaker);
        succeed(&breaker);
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 0 });
        fail(&breaker);
        fail(&breaker);
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 2 });
        fail(&breaker);
        assert_eq!(breaker.state(), BreakerState::Open);
        clock.advance(Duration::from_secs(10));
        assert_eq!(breaker.admit().err(), Some(Duration::from_secs(20)));
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through_and_success_closes() {
        let clock = ManualClock::new();
        let breaker = clock.breaker(1, Duration::from_secs(5));
        fail(&breaker);
        clock.advance(Duration::from_secs(5));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let probe = breaker.admit().expect("the probe");
        assert!(probe.is_probe());
        assert!(breaker.admit().is_err(), "a second request while probing");
        assert!(breaker.admit().is_err());
        probe.succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 0 });
        let ticket = breaker.admit().expect("closed");
        assert!(!ticket.is_probe());
        ticket.succeeded();
    }

    #[test]
    fn a_failed_probe_opens_it_for_another_period() {
        let clock = ManualClock::new();
        let breaker = clock.breaker(2, Duration::from_secs(5));
        fail(&breaker);
        fail(&breaker);
        clock.advance(Duration::from_secs(6));
        breaker.admit().expect("the probe").failed();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.admit().err(), Some(Duration::from_secs(5)));
        clock.advance(Duration::from_secs(5));
        breaker.admit().expect("the next probe").succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn a_dropped_probe_lets_another_one_probe() {
        let clock = ManualClock::new();
        let breaker = clock.breaker(1, Duration::from_secs(1));
        fail(&breaker);
        clock.advance(Duration::from_secs(1));
        drop(breaker.admit().expect("the probe"));
        assert!(breaker.admit().expect("another probe").is_probe());
    }

    #[test]
    fn outcomes_of_requests_from_before_it_opened_are_ignored() {
        let clock = ManualClock::new();
        let breaker = clock.breaker(2, Duration::from_secs(1));
        let early_success = breaker.admit().expect("closed");
        let early_failure = breaker.admit().expect("closed");
        fail(&breaker);
        fail(&breaker);
        // Open: a late success must not close it.
        early_success.succeeded();
        assert_eq!(breaker.state(), BreakerState::Open);
        clock.advance(Duration::from_secs(1));
        succeed(&breaker);
        // Closed again: a late failure from the old run must not count.
        early_failure.failed();
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn concurrent_use_is_consistent() {
        let breaker = Arc::new(Breaker::new("test", 1_000_000, Duration::from_secs(60)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let breaker = Arc::clone(&breaker);
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        fail(&breaker);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("the thread finishes");
        }
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 4_000 });
    }
}
