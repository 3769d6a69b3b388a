//! What one caller may take from an API replica: requests that write,
//! event streams held open, and (counted by the routes, through the store)
//! photos and inboxes.
//!
//! **Rate limits.** Writes under `/v1` (POST, PUT, PATCH, DELETE) are
//! counted per user and per tenant, in two classes: job submissions
//! (`POST /v1/jobs`, and `POST /v1/mail-accounts/{id}/poll`, which submits
//! one) and every other write. Each limit is `N` requests per
//! [`Limits::period`], `N` of which may come at once (`governor`'s GCRA:
//! a token bucket of `N` that refills one every `period / N`). The user is
//! checked first, so that a user over their own limit never spends their
//! tenant's. Over a limit: 429 with `Retry-After` and a problem document,
//! counted in `longhaul_http_rate_limited_total{scope,route}`. Reads are not
//! limited here: they cost the database less and are cached by clients.
//!
//! **Stream caps.** Open event streams per user (`/v1/jobs/{id}/events`
//! and the dashboard's `/admin/live`, together), each of which polls the
//! database: over the cap, 429.
//!
//! **Per replica.** The counts live in this process's memory, so a tenant
//! behind a load balancer over `R` replicas gets up to `R` times each limit.
//! That is the price of not asking a shared store on every write; the
//! limits are there to stop floods and runaway clients, not to meter.
//!
//! **Memory.** Keys come only from verified tokens, and a task forgets every
//! key whose bucket is full again (`retain_recent`) once a minute, so the
//! state is bounded by the callers of the last minute or two.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{bearer_token, Principal},
    problem::Problem,
    AppState,
};

/// How much of a replica one caller may take. Every count may be 0, which
/// turns that limit off; the period may not. Start from `Limits::default()`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The window the rate limits count in.
    pub period: Duration,
    /// Job submissions per user per period.
    pub jobs_per_user: u32,
    /// Job submissions per tenant per period.
    pub jobs_per_tenant: u32,
    /// Other writes under `/v1` per user per period.
    pub writes_per_user: u32,
    /// Other writes under `/v1` per tenant per period.
    pub writes_per_tenant: u32,
    /// Event streams one user may hold open at once.
    pub streams_per_user: u32,
    /// Photos one user may have registered (`POST /v1/media`).
    pub media_per_user: u64,
    /// Inboxes one user may have connected (`POST /v1/mail-accounts`).
    pub mail_accounts_per_user: u64,
}

/// Far above what a person with the app does (a few jobs a day, a burst of
/// edits), and above what `longhaul demo` sends as one admin (33
/// reservations, 12 photos of two requests each, 3 jobs, in seconds); low
/// enough that a runaway client or a script cannot take a replica.
impl Default for Limits {
    fn default() -> Self {
        Limits {
            period: Duration::from_secs(60),
            jobs_per_user: 60,
            jobs_per_tenant: 3_000,
            writes_per_user: 300,
            writes_per_tenant: 12_000,
            streams_per_user: 8,
            media_per_user: 5_000,
            mail_accounts_per_user: 10,
        }
    }
}

/// What a client over the stream cap is told to wait: streams end when
/// their jobs do, which no one can predict, so a short, fixed time.
const STREAM_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How often keys with a full bucket again are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// The two classes of writes, with their own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteClass {
    Jobs,
    Writes,
}

/// The class of a request, by method and route template; None when it is
/// not rate limited. The OpenAPI document lists 429 from the same rule.
pub(crate) fn write_class(method: &Method, route: &str) -> Option<WriteClass> {
    if !route.starts_with("/v1/") {
        return None;
    }
    match *method {
        Method::POST if route == "/v1/jobs" || route == "/v1/mail-accounts/{id}/poll" => Some(WriteClass::Jobs),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => Some(WriteClass::Writes),
        _ => None,
    }
}

type UserKey = (String, String);

/// One limit: its bucket per key, and the numbers to explain a refusal.
struct Keyed<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    per_period: u32,
}

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    /// None when `per_period` is 0 (off).
    fn new(per_period: u32, period: Duration) -> anyhow::Result<Option<Keyed<K>>> {
        let Some(burst) = NonZeroU32::new(per_period) else {
            return Ok(None);
        };
        let quota = Quota::with_period(period / per_period)
            .ok_or_else(|| anyhow::anyhow!("the rate-limit period is too short for {per_period} requests"))?
            .allow_burst(burst);
        Ok(Some(Keyed { limiter: RateLimiter::keyed(quota), per_period }))
    }

    /// How long to wait, if the key is over its limit now.
    fn check(&self, key: &K) -> Option<Duration> {
        self.limiter.check_key(key).err().map(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The limits of one router, with their state.
pub(crate) struct Limiters {
    config: Limits,
    jobs_per_user: Option<Keyed<UserKey>>,
    jobs_per_tenant: Option<Keyed<String>>,
    writes_per_user: Option<Keyed<UserKey>>,
    writes_per_tenant: Option<Keyed<String>>,
    /// Open streams per user; a user without any has no entry.
    streams: Mutex<HashMap<UserKey, u32>>,
}

impl Limiters {
    /// The limiters, with a task that forgets idle keys until `shutdown`
    /// trips or the router is dropped. Must be called inside a Tokio runtime.
    pub(crate) fn start(config: Limits, shutdown: CancellationToken) -> anyhow::Result<Arc<Limiters>> {
        let period = config.period;
        let limiters = Arc::new(Limiters {
            jobs_per_user: Keyed::new(config.jobs_per_user, period)?,
            jobs_per_tenant: Keyed::new(config.jobs_per_tenant, period)?,
            writes_per_user: Keyed::new(config.writes_per_user, period)?,
            writes_per_tenant: Keyed::new(config.writes_per_tenant, period)?,
            streams: Mutex::new(HashMap::new()),
            config,
        });
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("the API's router must be built inside a Tokio runtime"))?;
        runtime.spawn(forget_idle_keys(Arc::downgrade(&limiters), shutdown));
        Ok(limiters)
    }

    pub(crate) fn config(&self) -> &Limits {
        &self.config
    }

    fn limiters(&self, class: WriteClass) -> (Option<&Keyed<UserKey>>, Option<&Keyed<String>>, &'static str) {
        match class {
            WriteClass::Jobs => (self.jobs_per_user.as_ref(), self.jobs_per_tenant.as_ref(), "job submissions"),
            WriteClass::Writes => (self.writes_per_user.as_ref(), self.writes_per_tenant.as_ref(), "write requests"),
        }
    }

    /// A 429 if the caller, or then their tenant, is over the class's limit.
    fn check(&self, class: WriteClass, principal: &Principal, route: &str) -> Result<(), Problem> {
        let (per_user, per_tenant, what) = self.limiters(class);
        if let Some(limit) = per_user {
            let key = (principal.tenant_id.clone(), principal.user_id.clone());
            if let Some(wait) = limit.check(&key) {
                return Err(self.refuse("user", "this user", what, limit.per_period, route, wait));
            }
        }
        if let Some(limit) = per_tenant {
            if let Some(wait) = limit.check(&principal.tenant_id) {
                return Err(self.refuse("tenant", "this user's tenant", what, limit.per_period, route, wait));
            }
        }
        Ok(())
    }

    fn refuse(
        &self,
        scope: &'static str,
        whose: &str,
        what: &str,
        per_period: u32,
        route: &str,
        wait: Duration,
    ) -> Problem {
        metrics::counter!("longhaul_http_rate_limited_total", "scope" => scope, "route" => route.to_owned())
            .increment(1);
        Problem::too_many_requests(
            format!(
                "too many {what} from {whose}: at most {per_period} every {} s on each API server; \
                 wait as Retry-After says",
                self.config.period.as_secs_f64()
            ),
            wait,
        )
    }

    /// Holds one of the caller's stream slots for as long as the returned
    /// guard lives; a 429 when they hold the most already.
    pub(crate) fn open_stream(self: &Arc<Self>, principal: &Principal, route: &str) -> Result<StreamSlot, Problem> {
        let cap = self.config.streams_per_user;
        if cap == 0 {
            return Ok(StreamSlot { limiters: None, key: (String::new(), String::new()) });
        }
        let key = (principal.tenant_id.clone(), principal.user_id.clone());
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let open = streams.entry(key.clone()).or_insert(0);
        if *open >= cap {
            drop(streams);
            metrics::counter!("longhaul_http_rate_limited_total", "scope" => "user", "route" => route.to_owned())
                .increment(1);
            return Err(Problem::too_many_requests(
                format!(
                    "this user has {cap} event streams open, the most one user may hold on each API server; \
                     close one, or follow fewer jobs at once"
                ),
                STREAM_RETRY_AFTER,
            ));
        }
        *open += 1;
        Ok(StreamSlot { limiters: Some(Arc::clone(self)), key })
    }
}

/// One open stream of a user; dropping it (when the stream ends, however it
/// ends) frees the slot.
pub(crate) struct StreamSlot {
    limiters: Option<Arc<Limiters>>,
    key: UserKey,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let Some(limiters) = &self.limiters else {
            return;
        };
        let mut streams = limiters.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = streams.get_mut(&self.key) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.key);
            }
        }
    }
}

async fn forget_idle_keys(limiters: Weak<Limiters>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(FORGET_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let Some(limiters) = limiters.upgrade() else {
            return;
        };
        for limit in [&limiters.jobs_per_user, &limiters.writes_per_user].into_iter().flatten() {
            limit.forget_idle();
        }
        for limit in [&limiters.jobs_per_tenant, &limiters.writes_per_tenant].into_iter().flatten() {
            limit.forget_idle();
        }
    }
}

/// The rate limits, as a middleware after routing (it needs the route's
/// template). It verifies the caller's token itself, since limits are per
/// user and tenant, and leaves the principal in the request for the
/// handler, so the token is checked once. A request without a valid token
/// goes on untouched: its handler answers 401 (or 503) as usual.
pub(crate) async fn enforce(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(route) = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned()) else {
        return next.run(request).await;
    };
    let Some(class) = write_class(request.method(), &route) else {
        return next.run(request).await;
    };
    let (per_user, per_tenant, _) = state.limits.limiters(class);
    if per_user.is_none() && per_tenant.is_none() {
        return next.run(request).await;
    }
    let Ok(token) = bearer_token(request.headers()) else {
        return next.run(request).await;
    };
    let Ok(principal) = state.auth.verify(token).await else {
        return next.run(request).await;
    };
    if let Err(problem) = state.limits.check(class, &principal, &route) {
        return problem.with_instance(request.uri().path()).into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_under_v1_are_limited_and_job_submissions_are_their_own_class() {
        assert_eq!(write_class(&Method::POST, "/v1/jobs"), Some(WriteClass::Jobs));
        assert_eq!(write_class(&Method::POST, "/v1/mail-accounts/{id}/poll"), Some(WriteClass::Jobs));
        assert_eq!(write_class(&Method::POST, "/v1/media"), Some(WriteClass::Writes));
        assert_eq!(write_class(&Method::PUT, "/v1/media/{id}/upload"), Some(WriteClass::Writes));
        assert_eq!(write_class(&Method::POST, "/v1/uploads"), Some(WriteClass::Writes));
        assert_eq!(write_class(&Method::PUT, "/v1/uploads/{id}/upload"), Some(WriteClass::Writes));
        assert_eq!(write_class(&Method::GET, "/v1/uploads/{id}"), None);
        assert_eq!(write_class(&Method::PATCH, "/v1/reservations/{id}"), Some(WriteClass::Writes));
        assert_eq!(write_class(&Method::DELETE, "/v1/admin/jobs/{id}"), Some(WriteClass::Writes));
        assert_eq!(write_class(&Method::POST, "/v1/admin/lanes/{lane}/redrive"), Some(WriteClass::Writes));
        assert_eq!(write_class(&Method::GET, "/v1/jobs"), None);
        assert_eq!(write_class(&Method::POST, "/admin/login"), None);
    }

    #[tokio::test]
    async fn a_zero_turns_a_limit_off_and_streams_are_counted_per_user() {
        let config = Limits { jobs_per_user: 0, streams_per_user: 1, ..Limits::default() };
        let limiters = Limiters::start(config, CancellationToken::new()).expect("limiters");
        assert!(limiters.jobs_per_user.is_none());
        let principal = |user: &str| Principal {
            tenant_id: "t".into(),
            user_id: user.into(),
            role: crate::auth::Role::User,
            locale: None,
            name: None,
            expires_at: None,
        };
        let held = limiters.open_stream(&principal("u1"), "/v1/jobs/{id}/events").expect("a first stream");
        assert!(limiters.open_stream(&principal("u1"), "/v1/jobs/{id}/events").is_err());
        let other = limiters.open_stream(&principal("u2"), "/v1/jobs/{id}/events").expect("another user's");
        drop(held);
        drop(other);
        assert!(limiters.streams.lock().expect("not poisoned").is_empty(), "closed streams leave no entry");
        assert!(limiters.open_stream(&principal("u1"), "/v1/jobs/{id}/events").is_ok());
    }
}
