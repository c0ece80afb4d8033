//! Exponential backoff with full jitter, for reconnecting outputs and retrying sources.
//!
//! Full jitter (a random wait between zero and the exponential ceiling) keeps many collectors that
//! lost the same receiver from reconnecting in lockstep.

use std::time::Duration;

use crate::rng::Rng;

#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Backoff {
            base,
            max,
            attempt: 0,
            rng: Rng::new(seed ^ u64::from(std::process::id())),
        }
    }

    /// The wait before the next attempt; grows with every call until `reset`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let millis = ceiling.as_millis().max(1) as u64;
        // Never zero: a retry loop must yield even on its first failure.
        Duration::from_millis(1 + self.rng.below(millis))
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_ceiling_and_stay_under_it() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(2001)));
        assert!(delays[..2].iter().all(|d| *d <= Duration::from_millis(201)));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(101));
    }
}
