//! `usage_nano_cores`: CPU use averaged between two samples of the cumulative CPU time.
//!
//! As in containerd, the runtime keeps the previous sample of every container and pod;
//! each stats call compares its sample with the one before and keeps the new one. The
//! first call for an id has nothing to compare with and reports zero. Samples that were
//! not refreshed for `FORGET_AFTER_NS` are dropped, so removed containers do not pile up.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Nanoseconds in a second.
const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Samples older than this (10 minutes) are forgotten on the next call.
const FORGET_AFTER_NS: i64 = 600 * 1_000_000_000;

/// One reading of a cumulative CPU counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// When it was read, in nanoseconds since the epoch.
    pub at_ns: i64,
    /// CPU time used so far, in nanoseconds.
    pub usage_ns: u64,
}

/// The previous sample of each container or pod.
#[derive(Debug, Default)]
pub struct CpuSampler {
    previous: Mutex<HashMap<String, CpuSample>>,
}

impl CpuSampler {
    /// The nano cores used by `key` between its previous sample and `sample` (0 without a
    /// previous sample, or if time or usage went backwards); keeps `sample` for next time.
    pub fn nano_cores(&self, key: &str, sample: CpuSample) -> u64 {
        let mut previous = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
        previous.retain(|_, old| sample.at_ns.saturating_sub(old.at_ns) < FORGET_AFTER_NS);
        let rate = previous.get(key).map_or(0, |old| rate(*old, sample));
        previous.insert(key.to_string(), sample);
        rate
    }
}

/// CPU nanoseconds per second of wall time between `old` and `new`.
fn rate(old: CpuSample, new: CpuSample) -> u64 {
    let Ok(elapsed) = u128::try_from(new.at_ns.saturating_sub(old.at_ns)) else {
        return 0;
    };
    if elapsed == 0 {
        return 0;
    }
    let used = u128::from(new.usage_ns.saturating_sub(old.usage_ns));
    u64::try_from(used * NANOS_PER_SECOND / elapsed).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn nano_cores_compare_each_sample_with_the_previous_one() {
        let sampler = CpuSampler::default();
        let at = |s: i64, usage_ns: u64| CpuSample {
            at_ns: s * SECOND,
            usage_ns,
        };
        assert_eq!(
            sampler.nano_cores("c1", at(100, 0)),
            0,
            "the first sample has no window"
        );
        assert_eq!(
            sampler.nano_cores("c1", at(102, 1_000_000_000)),
            500_000_000,
            "1 s of CPU in 2 s is half a core"
        );
        assert_eq!(
            sampler.nano_cores("c1", at(103, 3_000_000_000)),
            2_000_000_000,
            "2 s of CPU in 1 s is two cores"
        );
        assert_eq!(sampler.nano_cores("c2", at(103, 5)), 0, "ids are apart");
        assert_eq!(sampler.nano_cores("c1", at(103, 4_000_000_000)), 0, "no time passed");
        assert_eq!(sampler.nano_cores("c1", at(104, 0)), 0, "a counter that restarted");
    }

    #[test]
    fn stale_samples_are_forgotten() {
        let sampler = CpuSampler::default();
        sampler.nano_cores("gone", CpuSample { at_ns: 0, usage_ns: 0 });
        sampler.nano_cores(
            "live",
            CpuSample {
                at_ns: FORGET_AFTER_NS + 1,
                usage_ns: 0,
            },
        );
        let previous = sampler.previous.lock().expect("lock");
        assert!(!previous.contains_key("gone") && previous.contains_key("live"));
    }
}
