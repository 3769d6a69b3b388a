//! A simulated travel-agency HTTP API, for the tests and benchmarks of
//! `reservation_refresh`. Not for production.
//!
//! One server simulates several providers, each under its own base URL
//! (`http://host:port/{provider}`), each with `reservations_per_provider`
//! reservations numbered by [`reservation_number`]. It speaks the wire
//! protocol that is the HTTP JSON adapter's default configuration:
//!
//! - `GET {base}/reservations/{number}`, with an optional `If-None-Match`:
//!   200 with the reservation as JSON and `ETag: "<version>"`, 304 (empty
//!   body, with the ETag) if the ETag matches, 404 for an unknown number.
//! - `POST {base}/reservations/batch` with
//!   `{"items": [{"reservation_number": "X", "etag": "\"3\"" | null}, …]}`
//!   (at most `max_batch` items; more is a 400): 200 with
//!   `{"items": [...]}`, one per requested item in the same order, each
//!   `{"reservation_number", "status": 200, "etag", "reservation"}`,
//!   `{"reservation_number", "status": 304}` or
//!   `{"reservation_number", "status": 404}`.
//! - Injected failures: 503 with a plain body (a provider set down, or the
//!   configured error rate) and 429 with `Retry-After: <seconds>` (a
//!   provider throttled, or the configured throttle rate).
//!
//! Reservations start in the state [`initial`] gives, which is pure, so a
//! benchmark can seed a database with the same states. A background task
//! changes `change_fraction` of all reservations per `period`, at random;
//! only changed reservations are kept in memory. [`Sim`] controls a
//! running simulator in-process; `/_sim/...` does the same over HTTP (see
//! [`start`]); [`run`] is the command-line entry point.

mod cli;
mod data;
mod server;
mod stats;

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, PoisonError, RwLock,
    },
    time::Duration,
};

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveTime, SubsecRound, Utc};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::{CancellationToken, DropGuard};

pub use cli::{run, Args};
pub use data::{
    apply_change, etag_of, initial, initial_changed_at, is_lodging, parse_reservation_number, reservation_number,
    rfc3339, SimReservation, SimStatus, SPREAD_DAYS,
};
pub use stats::{ProviderStats, Stats};

use stats::{Counters, InFlight};

/// How the simulator behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The providers' names: lower-case letters, digits, `-` and `_`, each
    /// the first path segment of its base URL.
    pub providers: Vec<String>,
    /// How many reservations each provider has, numbered from 0.
    pub reservations_per_provider: u64,
    /// The fraction of all reservations (of all providers together) changed
    /// per `period`, spread evenly over time; 0 changes nothing on its own.
    pub change_fraction: f64,
    /// The period `change_fraction` refers to.
    pub period: Duration,
    /// How long every provider request takes before it is answered…
    pub latency: Duration,
    /// …plus a uniformly random extra of up to this much.
    pub latency_jitter: Duration,
    /// The fraction of provider requests answered 503.
    pub error_rate: f64,
    /// The fraction of provider requests answered 429.
    pub throttle_rate: f64,
    /// The `Retry-After` of a 429 the throttle rate injects, in seconds.
    pub retry_after_secs: u64,
    /// The most items a batch request may ask for.
    pub max_batch: usize,
    /// Where initial dates are laid out from (see [`initial`]).
    pub anchor: DateTime<Utc>,
    /// Seeds the choice and content of changes.
    pub seed: u64,
}

impl Default for SimConfig {
    /// Two providers (`skyways`, an airline, and `grandhotels`, a hotel
    /// chain) of 1,000 reservations each, 1 % of them changed every five
    /// minutes, 5 to 10 ms of latency, no injected failures, batches of up
    /// to 100, dates laid out from the start of today (UTC), seed 1.
    fn default() -> Self {
        SimConfig {
            providers: vec!["skyways".into(), "grandhotels".into()],
            reservations_per_provider: 1_000,
            change_fraction: 0.01,
            period: Duration::from_secs(300),
            latency: Duration::from_millis(5),
            latency_jitter: Duration::from_millis(5),
            error_rate: 0.0,
            throttle_rate: 0.0,
            retry_after_secs: 1,
            max_batch: 100,
            anchor: start_of_today(),
            seed: 1,
        }
    }
}

/// [`start`] on a loopback port of its own ([`Sim::addr`] says which).
pub async fn start_local(config: SimConfig) -> anyhow::Result<Sim> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("agency simulator: binding a loopback port")?;
    start(listener, config).await
}

/// Midnight UTC of the current day.
pub fn start_of_today() -> DateTime<Utc> {
    Utc::now().date_naive().and_time(NaiveTime::MIN).and_utc()
}

impl SimConfig {
    /// The default providers and sizes, held still: nothing changes unless
    /// asked to ([`Sim::change_now`]), no latency, and dates laid out from
    /// `anchor`, so that every answer is known in advance. For tests and
    /// demos.
    pub fn steady(anchor: DateTime<Utc>) -> SimConfig {
        SimConfig {
            change_fraction: 0.0,
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            anchor,
            ..SimConfig::default()
        }
    }

    /// Checks that the configuration describes a simulator that can run.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.providers.is_empty() {
            bail!("providers: at least one provider is needed");
        }
        let mut seen = HashSet::new();
        for name in &self.providers {
            let valid = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !valid {
                bail!("providers: `{name}` must be lower-case letters, digits, `-` and `_`");
            }
            if name == "_sim" {
                bail!("providers: `_sim` is the control API's prefix");
            }
            if !seen.insert(name) {
                bail!("providers: `{name}` is listed twice");
            }
        }
        let fraction = |name: &str, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(anyhow::anyhow!("{name}: must be between 0 and 1, got {value}"))
            }
        };
        fraction("error_rate", self.error_rate)?;
        fraction("throttle_rate", self.throttle_rate)?;
        if self.error_rate + self.throttle_rate > 1.0 {
            bail!("error_rate + throttle_rate: must be at most 1");
        }
        if !self.change_fraction.is_finite() || self.change_fraction < 0.0 {
            bail!("change_fraction: must be a non-negative number, got {}", self.change_fraction);
        }
        if self.change_fraction > 0.0 && self.period.is_zero() {
            bail!("period: must be longer than zero when reservations change");
        }
        if self.max_batch == 0 {
            bail!("max_batch: must be at least 1");
        }
        Ok(())
    }

    /// Changes per second across all providers.
    fn changes_per_sec(&self) -> f64 {
        if self.change_fraction == 0.0 || self.period.is_zero() {
            return 0.0;
        }
        self.providers.len() as f64 * self.reservations_per_provider as f64 * self.change_fraction
            / self.period.as_secs_f64()
    }
}

/// Override maps per provider: changed reservations are spread over this
/// many locks, so look-ups and changes of different reservations seldom
/// wait for each other.
const SHARDS: usize = 64;

/// `throttle` when the provider is not throttled.
const NOT_THROTTLED: u64 = u64::MAX;

/// One simulated provider's state.
pub(crate) struct ProviderState {
    pub name: String,
    /// Changed reservations by index, spread over [`SHARDS`] locks by
    /// `index % SHARDS`. Unchanged reservations are not stored.
    overrides: Box<[RwLock<HashMap<u64, SimReservation>>]>,
    /// Reservations served with an unreadable `starts_at`.
    malformed: RwLock<HashSet<u64>>,
    any_malformed: AtomicBool,
    down: AtomicBool,
    /// The `Retry-After` every request gets while throttled, else
    /// [`NOT_THROTTLED`].
    throttle: AtomicU64,
    pub counters: Counters,
}

impl ProviderState {
    fn new(name: &str) -> Self {
        ProviderState {
            name: name.to_owned(),
            overrides: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            malformed: RwLock::new(HashSet::new()),
            any_malformed: AtomicBool::new(false),
            down: AtomicBool::new(false),
            throttle: AtomicU64::new(NOT_THROTTLED),
            counters: Counters::default(),
        }
    }

    fn shard(&self, i: u64) -> &RwLock<HashMap<u64, SimReservation>> {
        &self.overrides[(i % SHARDS as u64) as usize]
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// The `Retry-After` seconds to answer with, while throttled.
    pub fn throttled(&self) -> Option<u64> {
        match self.throttle.load(Ordering::SeqCst) {
            NOT_THROTTLED => None,
            secs => Some(secs),
        }
    }

    pub fn is_malformed(&self, i: u64) -> bool {
        self.any_malformed.load(Ordering::Relaxed)
            && self.malformed.read().unwrap_or_else(PoisonError::into_inner).contains(&i)
    }
}

/// The state the server, the change task and [`Sim`] share.
pub(crate) struct Shared {
    pub config: SimConfig,
    pub providers: Vec<ProviderState>,
    by_name: HashMap<String, usize>,
    /// Requests in flight across all providers.
    pub in_flight: InFlight,
    rng: Mutex<SmallRng>,
}

impl Shared {
    fn new(config: SimConfig) -> Self {
        let providers: Vec<ProviderState> = config.providers.iter().map(|name| ProviderState::new(name)).collect();
        let by_name = config.providers.iter().enumerate().map(|(i, name)| (name.clone(), i)).collect();
        let rng = Mutex::new(SmallRng::seed_from_u64(config.seed));
        Shared { config, providers, by_name, in_flight: InFlight::default(), rng }
    }

    pub fn provider(&self, name: &str) -> Option<&ProviderState> {
        self.by_name.get(name).map(|&i| &self.providers[i])
    }

    /// The index of `number` among `provider`'s reservations, if it is one.
    pub fn index_of(&self, provider: &ProviderState, number: &str) -> Option<u64> {
        parse_reservation_number(&provider.name, number).filter(|&i| i < self.config.reservations_per_provider)
    }

    /// Reservation `i` of `provider` as it is now.
    pub fn current(&self, provider: &ProviderState, i: u64) -> SimReservation {
        let changed = provider.shard(i).read().unwrap_or_else(PoisonError::into_inner).get(&i).cloned();
        changed.unwrap_or_else(|| initial(self.config.anchor, &provider.name, i))
    }

    /// Applies one random change to reservation `i` of `provider`, stamped
    /// with the current time, and returns its new version and `changed_at`.
    fn change(&self, provider: &ProviderState, i: u64, rng: &mut SmallRng) -> (u64, DateTime<Utc>) {
        let mut shard = provider.shard(i).write().unwrap_or_else(PoisonError::into_inner);
        let reservation = shard.entry(i).or_insert_with(|| initial(self.config.anchor, &provider.name, i));
        // Microseconds, the precision PostgreSQL keeps, so a stored copy
        // compares equal.
        apply_change(&provider.name, reservation, rng, Utc::now().trunc_subsecs(6));
        Counters::add(&provider.counters.changes, 1);
        (reservation.version, reservation.changed_at)
    }

    /// Moves reservation `i` of `provider` by `by` (a rebooking): its start
    /// and end together, version up by one, stamped now.
    pub(crate) fn shift(&self, provider: &ProviderState, i: u64, by: chrono::Duration) -> SimReservation {
        let mut shard = provider.shard(i).write().unwrap_or_else(PoisonError::into_inner);
        let reservation = shard.entry(i).or_insert_with(|| initial(self.config.anchor, &provider.name, i));
        reservation.starts_at += by;
        reservation.ends_at = reservation.ends_at.map(|end| end + by);
        reservation.version += 1;
        reservation.changed_at = Utc::now().trunc_subsecs(6);
        Counters::add(&provider.counters.changes, 1);
        reservation.clone()
    }

    /// Applies `n` changes to uniformly random reservations of all
    /// providers.
    fn change_random(&self, n: u64) {
        let per_provider = self.config.reservations_per_provider;
        if per_provider == 0 || n == 0 {
            return;
        }
        let total = per_provider.saturating_mul(self.providers.len() as u64);
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..n {
            let pick = rng.random_range(0..total);
            let provider = &self.providers[(pick / per_provider) as usize];
            self.change(provider, pick % per_provider, &mut rng);
        }
    }

    fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for provider in &self.providers {
            let counts = provider.counters.snapshot();
            let total = &mut stats.total;
            total.requests += counts.requests;
            total.batch_requests += counts.batch_requests;
            total.items += counts.items;
            total.ok += counts.ok;
            total.not_modified += counts.not_modified;
            total.not_found += counts.not_found;
            total.injected_5xx += counts.injected_5xx;
            total.injected_429 += counts.injected_429;
            total.changes += counts.changes;
            stats.providers.insert(provider.name.clone(), counts);
        }
        stats.total.max_in_flight = self.in_flight.max();
        stats
    }

    pub fn set_down(&self, provider: &str, down: bool) -> bool {
        self.provider(provider).map(|p| p.down.store(down, Ordering::SeqCst)).is_some()
    }

    pub fn set_throttle(&self, provider: &str, retry_after_secs: Option<u64>) -> bool {
        // u64::MAX seconds is the "not throttled" mark; a day is as good.
        let value = retry_after_secs.map_or(NOT_THROTTLED, |secs| secs.min(NOT_THROTTLED - 1));
        self.provider(provider).map(|p| p.throttle.store(value, Ordering::SeqCst)).is_some()
    }
}

/// How often the change task wakes up.
const CHANGE_TICK: Duration = Duration::from_millis(100);

/// Applies `config.changes_per_sec()` changes per second until cancelled.
/// Whole changes are applied as they come due; the fraction left over is
/// carried to the next tick, so the average rate is exact.
async fn change_loop(shared: Arc<Shared>, token: CancellationToken) {
    let per_sec = shared.config.changes_per_sec();
    let mut ticks = tokio::time::interval(CHANGE_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = tokio::time::Instant::now();
    let mut due = 0.0_f64;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = tokio::time::Instant::now();
        due += per_sec * now.duration_since(last).as_secs_f64();
        last = now;
        let whole = due.floor();
        due -= whole;
        if whole >= 1.0 {
            let shared = Arc::clone(&shared);
            // Many changes per tick hold a core for a while: off the
            // request threads.
            let applied = tokio::task::spawn_blocking(move || shared.change_random(whole as u64)).await;
            if let Err(err) = applied {
                tracing::warn!(error = %err, "agency simulator: applying changes failed");
            }
        }
    }
}

/// A running simulator. Clones control the same simulator; it stops when
/// [`Sim::shutdown`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    token: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    _stop_on_drop: DropGuard,
}

/// Starts a simulator on `listener` (bind it to `127.0.0.1:0` for a free
/// port) and returns its handle once it accepts requests.
///
/// Besides the providers' APIs it serves a control API:
/// `GET /_sim/stats` ([`Stats`] as JSON), `POST /_sim/{provider}/down`,
/// `POST /_sim/{provider}/up`, `POST /_sim/{provider}/throttle?retry_after=N`
/// (N defaults to `retry_after_secs`) and `POST /_sim/{provider}/unthrottle`,
/// each answering 204, or 404 for an unknown provider; and
/// `POST /_sim/{provider}/reservations/{number}/move?minutes=N`, a known
/// change ([`Sim::move_now`] over HTTP), answering the reservation as it now
/// is, 404 for an unknown provider or number, 422 for N = 0 or beyond a year.
///
/// Fails if `config` does not validate or the listener has no local
/// address.
pub async fn start(listener: TcpListener, config: SimConfig) -> anyhow::Result<Sim> {
    config.validate().context("agency simulator configuration")?;
    let addr = listener.local_addr().context("agency simulator: the listener's address")?;
    let shared = Arc::new(Shared::new(config));
    let token = CancellationToken::new();
    let mut tasks = Vec::new();
    let app = server::router(Arc::clone(&shared));
    let stop = token.clone();
    tasks.push(tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        if let Err(err) = served {
            tracing::warn!(error = %err, "agency simulator: the server failed");
        }
    }));
    if shared.config.changes_per_sec() > 0.0 {
        tasks.push(tokio::spawn(change_loop(Arc::clone(&shared), token.clone())));
    }
    let inner =
        Inner { shared, addr, token: token.clone(), tasks: Mutex::new(tasks), _stop_on_drop: token.drop_guard() };
    Ok(Sim { inner: Arc::new(inner) })
}

impl Sim {
    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The base URL of `provider`: `http://ADDR/{provider}`.
    pub fn base_url(&self, provider: &str) -> String {
        format!("http://{}/{provider}", self.inner.addr)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.shared.config
    }

    /// Takes `provider` down (every request to it is answered 503) or
    /// brings it back. False if `provider` is not simulated.
    pub fn set_down(&self, provider: &str, down: bool) -> bool {
        self.inner.shared.set_down(provider, down)
    }

    /// Throttles `provider` (every request to it is answered 429 with
    /// `Retry-After: retry_after_secs`) while `Some`; `None` ends it. False
    /// if `provider` is not simulated.
    pub fn set_throttle(&self, provider: &str, retry_after_secs: Option<u64>) -> bool {
        self.inner.shared.set_throttle(provider, retry_after_secs)
    }

    /// Serves reservation `i` of `provider` with `starts_at` set to a string
    /// that is not a date, or stops doing so: for tests of how clients treat
    /// a bad item. False if there is no such reservation.
    pub fn set_malformed(&self, provider: &str, i: u64, malformed: bool) -> bool {
        let shared = &self.inner.shared;
        let Some(p) = shared.provider(provider).filter(|_| i < shared.config.reservations_per_provider) else {
            return false;
        };
        let mut set = p.malformed.write().unwrap_or_else(PoisonError::into_inner);
        if malformed {
            set.insert(i);
        } else {
            set.remove(&i);
        }
        p.any_malformed.store(!set.is_empty(), Ordering::Relaxed);
        true
    }

    /// Changes reservation `i` of `provider` now (as the change task would)
    /// and returns its new version and `changed_at`; `None` if there is no
    /// such reservation.
    pub fn change_now(&self, provider: &str, i: u64) -> Option<(u64, DateTime<Utc>)> {
        let shared = &self.inner.shared;
        let p = shared.provider(provider).filter(|_| i < shared.config.reservations_per_provider)?;
        let mut rng = shared.rng.lock().unwrap_or_else(PoisonError::into_inner);
        Some(shared.change(p, i, &mut rng))
    }

    /// Moves reservation `i` of `provider` by `by`, start and end together,
    /// as a rebooking does: a known change (where [`Sim::change_now`] picks
    /// one at random). The reservation as it now is; `None` if there is no
    /// such reservation.
    pub fn move_now(&self, provider: &str, i: u64, by: chrono::Duration) -> Option<SimReservation> {
        let shared = &self.inner.shared;
        let p = shared.provider(provider).filter(|_| i < shared.config.reservations_per_provider)?;
        Some(shared.shift(p, i, by))
    }

    /// Reservation `i` of `provider` as it is now; `None` if there is no
    /// such reservation.
    pub fn current(&self, provider: &str, i: u64) -> Option<SimReservation> {
        let shared = &self.inner.shared;
        let p = shared.provider(provider).filter(|_| i < shared.config.reservations_per_provider)?;
        Some(shared.current(p, i))
    }

    /// The counts so far.
    pub fn stats(&self) -> Stats {
        self.inner.shared.stats()
    }

    /// Stops accepting requests, lets those in flight finish (for at most
    /// five seconds), stops the change task, and waits for all of it.
    pub async fn shutdown(&self) {
        self.inner.token.cancel();
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for mut task in tasks {
            if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("addr", &self.inner.addr).field("providers", &self.config().providers).finish()
    }
}
