//! `activeDeadlineSeconds`: a pod active on the node longer than that since its
//! `status.startTime` fails, with the reason and message the kubelet's active-deadline
//! handler gives. The deadline is read from the latest pod on each sync, so an update
//! of the field (one of the few a running pod may change) takes effect.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// The pod's reason once its deadline passed.
pub const REASON: &str = "DeadlineExceeded";
/// The pod's message once its deadline passed.
pub const MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// How long the pod started at `start` may still run at `now` with `active_deadline_seconds`:
/// zero once the deadline passed (at the deadline itself too, as the kubelet counts);
/// `None` without a deadline or a start time.
pub fn remaining(active_deadline_seconds: Option<i64>, start: Option<Timestamp>, now: Timestamp) -> Option<Duration> {
    let seconds = active_deadline_seconds?;
    let start = start?;
    let active = now.as_nanosecond() - start.as_nanosecond();
    let allowed = i128::from(seconds) * 1_000_000_000;
    let left = u64::try_from((allowed - active).max(0)).unwrap_or(u64::MAX);
    Some(Duration::from_nanos(left))
}

/// Whether the deadline passed.
pub fn exceeded(active_deadline_seconds: Option<i64>, start: Option<Timestamp>, now: Timestamp) -> bool {
    remaining(active_deadline_seconds, start, now).is_some_and(|left| left.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    #[test]
    fn the_deadline_counts_from_the_start_time() {
        assert_eq!(remaining(None, Some(at(0)), at(100)), None);
        assert_eq!(remaining(Some(5), None, at(100)), None);
        assert_eq!(remaining(Some(5), Some(at(0)), at(2)), Some(Duration::from_secs(3)));
        assert_eq!(remaining(Some(5), Some(at(0)), at(5)), Some(Duration::ZERO));
        assert_eq!(remaining(Some(5), Some(at(0)), at(60)), Some(Duration::ZERO));
        assert!(!exceeded(Some(5), Some(at(0)), at(4)));
        assert!(exceeded(Some(5), Some(at(0)), at(5)));
        assert!(!exceeded(None, Some(at(0)), at(1_000_000)));
        // A clock behind the start time: the whole deadline and then some is left.
        assert_eq!(remaining(Some(5), Some(at(10)), at(8)), Some(Duration::from_secs(7)));
    }

    #[test]
    fn an_updated_deadline_is_what_counts() {
        let start = Some(at(0));
        // A pod running for a minute without a deadline, then given 5 s: it is past it.
        assert!(!exceeded(None, start, at(60)));
        assert!(exceeded(Some(5), start, at(60)));
        // Lengthened before it passed: more time.
        assert_eq!(remaining(Some(3600), start, at(60)), Some(Duration::from_secs(3540)));
    }
}
