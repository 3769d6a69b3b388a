//! When a failed attempt runs again: exponential backoff with full jitter.
//!
//! Full jitter (a uniform draw between zero and the exponential ceiling) is
//! what spreads a thundering herd best: after an outage, thousands of jobs
//! that failed together do not all come back in the same second. backon
//! computes the ceiling; backon's own jitter only *adds* up to one delay, so
//! the draw is ours.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The ceiling of the first retry's delay.
    pub base: Duration,
    /// No delay grows past this.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { base: Duration::from_secs(1), max: Duration::from_secs(60 * 60) }
    }
}

impl RetryPolicy {
    /// The exponential ceiling after `attempt` failed attempts (1-based).
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let index = usize::try_from(attempt.max(1) - 1).unwrap_or(0);
        ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .without_max_times()
            .build()
            .nth(index)
            .unwrap_or(self.max)
    }

    /// A random delay in `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: i32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_max() {
        let policy = RetryPolicy { base: Duration::from_secs(1), max: Duration::from_secs(10) };
        let ceilings: Vec<_> = (1..=6).map(|attempt| policy.ceiling(attempt).as_secs()).collect();
        assert_eq!(ceilings, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn delays_are_drawn_below_the_ceiling() {
        let policy = RetryPolicy::default();
        for attempt in 1..=12 {
            for _ in 0..50 {
                assert!(policy.delay(attempt) <= policy.ceiling(attempt));
            }
        }
        // Full jitter spreads the draws: 200 of them are not all the same.
        let draws: std::collections::HashSet<_> = (0..200).map(|_| policy.delay(8)).collect();
        assert!(draws.len() > 50);
    }
}
