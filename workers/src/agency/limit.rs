//! How hard one provider may be asked: a token-bucket rate limit and a cap
//! on requests in flight, both awaited before each HTTP request.
//!
//! The rate limit is `governor`'s GCRA, which behaves as a token bucket
//! holding `burst` tokens and refilled at `rate_per_sec`: after a quiet
//! spell `burst` requests go at once, then one every `1 / rate_per_sec`.

use std::{
    num::{NonZeroU32, NonZeroUsize},
    time::Duration,
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{AcquireError, Semaphore, SemaphorePermit};

/// The highest rate a limiter takes: one request per microsecond.
pub const MAX_RATE_PER_SEC: f64 = 1_000_000.0;

/// A rate the limiter cannot enforce.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("a rate must be a number above 0 and at most {MAX_RATE_PER_SEC} per second, got {0}")]
pub struct InvalidRate(pub f64);

/// A provider's rate limit and concurrency cap.
pub struct Limiter {
    rate: DefaultDirectRateLimiter,
    slots: Semaphore,
    concurrency: usize,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("concurrency", &self.concurrency)
            .field("available", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

/// The right to send one request: holds its slot under the concurrency cap
/// until dropped.
#[derive(Debug)]
pub struct Permit<'a> {
    _slot: SemaphorePermit<'a>,
}

impl Limiter {
    /// A limiter of `rate_per_sec` requests per second on average, at most
    /// `burst` at once after a quiet spell, and at most `concurrency` in
    /// flight.
    pub fn new(rate_per_sec: f64, burst: NonZeroU32, concurrency: NonZeroUsize) -> Result<Self, InvalidRate> {
        if !rate_per_sec.is_finite() || rate_per_sec <= 0.0 || rate_per_sec > MAX_RATE_PER_SEC {
            return Err(InvalidRate(rate_per_sec));
        }
        let period = Duration::try_from_secs_f64(1.0 / rate_per_sec).map_err(|_| InvalidRate(rate_per_sec))?;
        let quota = Quota::with_period(period).ok_or(InvalidRate(rate_per_sec))?.allow_burst(burst);
        let concurrency = concurrency.get().min(Semaphore::MAX_PERMITS);
        Ok(Limiter { rate: RateLimiter::direct(quota), slots: Semaphore::new(concurrency), concurrency })
    }

    /// Waits for a free slot under the concurrency cap, then for a token of
    /// the rate limit, and returns the slot. The token is spent; the slot
    /// is held until the permit is dropped, so drop it when the response
    /// has been read.
    pub async fn acquire(&self) -> Result<Permit<'_>, AcquireError> {
        let slot = self.slots.acquire().await?;
        self.rate.until_ready().await;
        Ok(Permit { _slot: slot })
    }

    /// The most requests in flight at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
        time::Instant,
    };

    use super::*;

    fn nonzero_u32(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("not zero")
    }

    fn nonzero_usize(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).expect("not zero")
    }

    #[test]
    fn refuses_rates_it_cannot_enforce() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e6] {
            assert!(Limiter::new(rate, nonzero_u32(1), nonzero_usize(1)).is_err(), "{rate}");
        }
        assert!(Limiter::new(0.01, nonzero_u32(1), nonzero_usize(1)).is_ok());
        assert!(Limiter::new(MAX_RATE_PER_SEC, nonzero_u32(1), nonzero_usize(1)).is_ok());
    }

    #[tokio::test]
    async fn burst_goes_at_once_then_the_rate_holds() {
        let limiter = Limiter::new(20.0, nonzero_u32(5), nonzero_usize(100)).expect("a limiter");
        let started = Instant::now();
        for _ in 0..5 {
            drop(limiter.acquire().await.expect("a permit"));
        }
        assert!(started.elapsed() < Duration::from_millis(40), "the burst waited {:?}", started.elapsed());
        for _ in 0..10 {
            drop(limiter.acquire().await.expect("a permit"));
        }
        // Ten more at 20/s: 500 ms.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1_000), "{elapsed:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_concurrency_cap_holds() {
        let limiter =
            Arc::new(Limiter::new(MAX_RATE_PER_SEC, nonzero_u32(1_000), nonzero_usize(3)).expect("a limiter"));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (limiter, now, peak) = (Arc::clone(&limiter), Arc::clone(&now), Arc::clone(&peak));
                tokio::spawn(async move {
                    let _permit = limiter.acquire().await.expect("a permit");
                    let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(inside, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("the task finishes");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(limiter.concurrency(), 3);
    }
}
