//! Waiting between tries of something that keeps failing: exponential back-off with
//! jitter, as client-go's reflector waits between failed lists and watches
//! (`wait.NewExponentialBackoffManager`) and the kubelet between failed registrations.
//!
//! Each failure waits twice as long as the one before, from [`RetryPolicy::initial`] up to
//! [`RetryPolicy::max`], each delay moved by up to ±[`RetryPolicy::jitter`] of itself so
//! that nodes failing at the same moment (an apiserver restart) do not come back at the
//! same moment. A failure that comes [`RetryPolicy::reset_after`] or more after the
//! previous one starts over at [`RetryPolicy::initial`]: what ran in between worked.
//!
//! ```
//! use kubelet_lite::retry::{RetryBackoff, RetryPolicy};
//!
//! let mut backoff = RetryBackoff::new(RetryPolicy::WATCH);
//! let first = backoff.next_delay();
//! assert!(first >= RetryPolicy::WATCH.initial.mul_f64(0.75));
//! assert!(first <= RetryPolicy::WATCH.initial.mul_f64(1.25));
//! ```

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// How a [`RetryBackoff`] grows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The delay after the first failure (before jitter).
    pub initial: Duration,
    /// The longest delay (before jitter).
    pub max: Duration,
    /// How far a delay may move, as a fraction of it: 0.25 is ±25 %.
    pub jitter: f64,
    /// A failure this long after the previous one starts over at `initial`.
    pub reset_after: Duration,
}

impl RetryPolicy {
    /// Lists and watches of the apiserver: 0.8 s doubling to 30 s, reset after 2 minutes
    /// without a failure, as client-go's reflector.
    pub const WATCH: RetryPolicy = RetryPolicy {
        initial: Duration::from_millis(800),
        max: Duration::from_secs(30),
        jitter: 0.25,
        reset_after: Duration::from_secs(120),
    };

    /// Registering the Node: 100 ms doubling to 7 s, as the kubelet's
    /// `registerWithAPIServer`.
    pub const REGISTRATION: RetryPolicy = RetryPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(7),
        jitter: 0.25,
        reset_after: Duration::from_secs(120),
    };

    /// A step of a pod's termination that failed (a CRI call, the volumes, the pod
    /// object): 1 s doubling to 10 s, the kubelet's `backOffPeriod` for a pod whose sync
    /// failed.
    pub const TERMINATION: RetryPolicy = RetryPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(10),
        jitter: 0.25,
        reset_after: Duration::from_secs(120),
    };
}

/// The delays between tries of one thing; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct RetryBackoff {
    policy: RetryPolicy,
    /// The next delay, before jitter.
    next: Duration,
    /// When the last delay was handed out.
    last_failure: Option<Instant>,
}

impl RetryBackoff {
    /// A back-off that has seen no failure yet.
    pub fn new(policy: RetryPolicy) -> RetryBackoff {
        RetryBackoff {
            policy,
            next: policy.initial,
            last_failure: None,
        }
    }

    /// How long to wait after a failure now; the next one waits longer.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_at(Instant::now(), random_unit())
    }

    /// Waits [`RetryBackoff::next_delay`].
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Starts over at [`RetryPolicy::initial`] (what was retried succeeded).
    pub fn reset(&mut self) {
        self.next = self.policy.initial;
        self.last_failure = None;
    }

    /// [`RetryBackoff::next_delay`] for a failure at `now`, with `unit` (in `[0, 1)`)
    /// choosing the jitter.
    fn next_delay_at(&mut self, now: Instant, unit: f64) -> Duration {
        if (self.last_failure).is_some_and(|last| now.saturating_duration_since(last) >= self.policy.reset_after) {
            self.reset();
        }
        let base = self.next;
        self.next = (base * 2).min(self.policy.max);
        self.last_failure = Some(now);
        base.mul_f64(1.0 + self.policy.jitter * (2.0 * unit - 1.0))
    }
}

/// A number in `[0, 1)`, different at each call: std's randomly keyed hasher over the
/// clock, which is all jitter needs.
fn random_unit() -> f64 {
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u128(std::time::UNIX_EPOCH.elapsed().unwrap_or_default().as_nanos());
    // The top 53 bits: as many as an f64 holds exactly.
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy::WATCH;

    /// The delays of `n` failures a second apart, with no jitter.
    fn delays(backoff: &mut RetryBackoff, start: Instant, n: u64) -> Vec<Duration> {
        (0..n)
            .map(|i| backoff.next_delay_at(start + Duration::from_secs(i), 0.5))
            .collect()
    }

    #[test]
    fn delays_double_from_the_initial_one_up_to_the_cap() {
        let mut backoff = RetryBackoff::new(POLICY);
        let ms = |ms| Duration::from_millis(ms);
        assert_eq!(
            delays(&mut backoff, Instant::now(), 8),
            [
                ms(800),
                ms(1600),
                ms(3200),
                ms(6400),
                ms(12_800),
                ms(25_600),
                POLICY.max,
                POLICY.max
            ]
        );
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_varies() {
        let mut backoff = RetryBackoff::new(POLICY);
        let now = Instant::now();
        let (low, high) = (POLICY.initial.mul_f64(0.75), POLICY.initial.mul_f64(1.25));
        for unit in [0.0, 0.25, 0.5, 0.999_999] {
            backoff.reset();
            let delay = backoff.next_delay_at(now, unit);
            assert!(low <= delay && delay <= high, "{delay:?} for {unit}");
        }
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let unit = random_unit();
            assert!((0.0..1.0).contains(&unit), "{unit}");
            backoff.reset();
            let delay = backoff.next_delay();
            assert!(low <= delay && delay <= high, "{delay:?}");
            seen.insert(delay);
        }
        assert!(seen.len() > 1, "the jitter varies: {seen:?}");
        // At the cap too: jitter around the cap, never far beyond it.
        let mut capped = RetryBackoff::new(POLICY);
        delays(&mut capped, now, 10);
        let delay = capped.next_delay_at(now + Duration::from_secs(10), 0.999_999);
        assert!(delay <= POLICY.max.mul_f64(1.25) && delay > POLICY.max, "{delay:?}");
    }

    #[test]
    fn a_failure_long_after_the_last_one_or_a_reset_starts_over() {
        let start = Instant::now();
        let mut backoff = RetryBackoff::new(POLICY);
        delays(&mut backoff, start, 5);
        let later = start + Duration::from_secs(4) + POLICY.reset_after;
        assert_eq!(backoff.next_delay_at(later, 0.5), POLICY.initial);
        assert_eq!(backoff.next_delay_at(later, 0.5), POLICY.initial * 2);
        // Failures that keep coming, even at the cap, never start over by themselves.
        let mut steady = RetryBackoff::new(POLICY);
        let many = delays(&mut steady, start, 200);
        assert_eq!(many.last(), Some(&POLICY.max));
        backoff.reset();
        assert_eq!(backoff.next_delay_at(later, 0.5), POLICY.initial);
    }
}
