//! A probe's timing and thresholds with the kubelet's defaults, and the counting of
//! consecutive results that turns attempts into a settled result.

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;

use super::{ProbeKind, ProbeOutcome};

/// Default `periodSeconds`.
pub const DEFAULT_PERIOD_SECONDS: i32 = 10;
/// Default `timeoutSeconds`.
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 1;
/// Default `successThreshold`.
pub const DEFAULT_SUCCESS_THRESHOLD: i32 = 1;
/// Default `failureThreshold`.
pub const DEFAULT_FAILURE_THRESHOLD: i32 = 3;

/// A probe's timing and thresholds, defaults applied, each at least 1 (0 for the delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Wait before the first attempt.
    pub initial_delay: Duration,
    /// Time between attempts.
    pub period: Duration,
    /// Time an attempt may take.
    pub timeout: Duration,
    /// Consecutive successes that make the result Success.
    pub success_threshold: u32,
    /// Consecutive failures that make the result Failure.
    pub failure_threshold: u32,
}

impl ProbeSettings {
    /// The settings of a probe from the pod spec.
    pub fn of(probe: &Probe) -> Self {
        let seconds = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(u64::try_from(v.unwrap_or(default).max(min)).unwrap_or(1))
        };
        let count = |v: Option<i32>, default: i32| u32::try_from(v.unwrap_or(default).max(1)).unwrap_or(1);
        ProbeSettings {
            initial_delay: seconds(probe.initial_delay_seconds, 0, 0),
            period: seconds(probe.period_seconds, DEFAULT_PERIOD_SECONDS, 1),
            timeout: seconds(probe.timeout_seconds, DEFAULT_TIMEOUT_SECONDS, 1),
            success_threshold: count(probe.success_threshold, DEFAULT_SUCCESS_THRESHOLD),
            failure_threshold: count(probe.failure_threshold, DEFAULT_FAILURE_THRESHOLD),
        }
    }
}

/// The result state of one probe of one container: counts consecutive outcomes and says
/// when the published result changes (the kubelet's prober `worker`).
#[derive(Debug, Clone)]
pub struct ProbeWorker {
    kind: ProbeKind,
    settings: ProbeSettings,
    current: Option<ProbeOutcome>,
    last: Option<bool>,
    streak: u32,
}

impl ProbeWorker {
    /// A worker with no result yet.
    pub fn new(kind: ProbeKind, settings: ProbeSettings) -> Self {
        ProbeWorker {
            kind,
            settings,
            current: None,
            last: None,
            streak: 0,
        }
    }

    /// The settled result, `None` until a threshold was first reached.
    pub fn current(&self) -> Option<&ProbeOutcome> {
        self.current.as_ref()
    }

    /// Whether probing is over: a startup probe stops once it succeeded.
    pub fn finished(&self) -> bool {
        self.kind == ProbeKind::Startup && self.current == Some(ProbeOutcome::Success)
    }

    /// Records one attempt; returns the new settled result when it changes (or when a
    /// failure's message changes).
    pub fn observe(&mut self, outcome: ProbeOutcome) -> Option<ProbeOutcome> {
        let success = outcome.is_success();
        if self.last == Some(success) {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.last = Some(success);
            self.streak = 1;
        }
        let threshold = if success {
            self.settings.success_threshold
        } else {
            self.settings.failure_threshold
        };
        if self.streak < threshold || self.current.as_ref() == Some(&outcome) {
            return None;
        }
        // A repeated failure with another message keeps the result Failure: no change
        // unless the kind of result flips or nothing was settled yet.
        if self.current.as_ref().is_some_and(|c| c.is_success() == success) && !success {
            return None;
        }
        self.current = Some(outcome.clone());
        Some(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_minimums() {
        let s = ProbeSettings::of(&Probe::default());
        assert_eq!(
            s,
            ProbeSettings {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
        let s = ProbeSettings::of(&Probe {
            period_seconds: Some(0),
            timeout_seconds: Some(-5),
            failure_threshold: Some(0),
            initial_delay_seconds: Some(7),
            ..Default::default()
        });
        assert_eq!(
            (s.period.as_secs(), s.timeout.as_secs(), s.failure_threshold),
            (1, 1, 1)
        );
        assert_eq!(s.initial_delay, Duration::from_secs(7));
    }

    #[test]
    fn thresholds() {
        let fail = || ProbeOutcome::Failure("no".into());
        let ok = || ProbeOutcome::Success;
        let settings = ProbeSettings {
            success_threshold: 2,
            failure_threshold: 3,
            ..ProbeSettings::of(&Probe::default())
        };
        // (description, outcome, expected change)
        let steps = [
            ("first success is below the success threshold", ok(), None),
            ("second success settles", ok(), Some(ok())),
            ("more successes change nothing", ok(), None),
            ("one failure is tolerated", fail(), None),
            ("two failures are tolerated", fail(), None),
            ("a success resets the failure count", ok(), None),
            ("failure 1", fail(), None),
            ("failure 2", fail(), None),
            ("failure 3 settles", fail(), Some(fail())),
            (
                "a further failure with another message is no change",
                ProbeOutcome::Failure("other".into()),
                None,
            ),
            ("one success is below the threshold", ok(), None),
            ("two successes settle again", ok(), Some(ok())),
        ];
        let mut worker = ProbeWorker::new(ProbeKind::Readiness, settings);
        for (desc, outcome, want) in steps {
            assert_eq!(worker.observe(outcome), want, "{desc}");
        }
        assert!(!worker.finished());
        let mut startup = ProbeWorker::new(ProbeKind::Startup, ProbeSettings::of(&Probe::default()));
        assert_eq!(startup.observe(ok()), Some(ok()));
        assert!(startup.finished(), "a startup probe stops after its success");
    }
}
