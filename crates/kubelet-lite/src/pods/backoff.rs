//! The CrashLoopBackOff back-off of one pod's containers: the first restart happens at
//! once, then each waits [`INITIAL`], doubling up to [`MAX`] after the container finished;
//! a container that ran [`RESET_AFTER`] starts over at [`INITIAL`].

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// The first delay.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(300);
/// How long a container must run for its back-off to reset.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// Back-off state per container (by a key the caller chooses: the kubelet's is the
/// container's name and the hash of its spec).
#[derive(Debug, Default, Clone)]
pub struct Backoff {
    delays: HashMap<String, Duration>,
}

/// What to do about a container that finished and should restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Restart it now.
    Restart,
    /// Wait: it is in back-off for `delay` after it finished, `remaining` of it left.
    Wait {
        /// The whole current delay.
        delay: Duration,
        /// What is left of it.
        remaining: Duration,
    },
}

impl Backoff {
    /// Whether the container of key `name`, which ran from `started` to `finished`, may restart at
    /// `now`; when it may, the next delay is recorded (doubled, or reset if it ran long).
    pub fn check(&mut self, name: &str, started: SystemTime, finished: SystemTime, now: SystemTime) -> Verdict {
        let ran = finished.duration_since(started).unwrap_or_default();
        if ran >= RESET_AFTER {
            self.delays.remove(name);
        }
        match self.delays.get(name).copied() {
            Some(delay) => {
                let since = now.duration_since(finished).unwrap_or_default();
                if since < delay {
                    return Verdict::Wait {
                        delay,
                        remaining: delay - since,
                    };
                }
                self.delays.insert(name.to_owned(), (delay * 2).min(MAX));
                Verdict::Restart
            }
            None => {
                self.delays.insert(name.to_owned(), INITIAL);
                Verdict::Restart
            }
        }
    }

    /// The delay the next restart of `name` will wait, if it is in back-off.
    pub fn current(&self, name: &str) -> Option<Duration> {
        self.delays.get(name).copied()
    }
}

/// A delay as Go prints it in the kubelet's messages: `10s`, `1m20s`, `5m0s`.
pub fn go_duration(delay: Duration) -> String {
    let secs = delay.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    #[test]
    fn delays_double_from_ten_seconds_to_five_minutes() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.check("c", at(0), at(1), at(1)), Verdict::Restart);
        assert_eq!(
            backoff.check("c", at(1), at(2), at(5)),
            Verdict::Wait {
                delay: INITIAL,
                remaining: Duration::from_secs(7)
            }
        );
        assert_eq!(backoff.check("c", at(1), at(2), at(12)), Verdict::Restart);
        assert_eq!(backoff.current("c"), Some(Duration::from_secs(20)));
        for _ in 0..10 {
            backoff.check("c", at(0), at(1), at(100_000));
        }
        assert_eq!(backoff.current("c"), Some(MAX));
    }

    #[test]
    fn a_long_run_resets_the_delay() {
        let mut backoff = Backoff::default();
        backoff.check("c", at(0), at(1), at(1));
        backoff.check("c", at(0), at(1), at(100));
        assert_eq!(backoff.current("c"), Some(Duration::from_secs(20)));
        assert_eq!(backoff.check("c", at(100), at(800), at(800)), Verdict::Restart);
        assert_eq!(backoff.current("c"), Some(INITIAL));
    }

    #[test]
    fn go_style_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(MAX), "5m0s");
    }
}
