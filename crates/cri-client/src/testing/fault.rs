//! Faults a test injects into an RPC: an error, a delay, or both, for the next calls or
//! for all of them.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::time::Duration;

use tonic::Status;

use super::Rpc;

/// What goes wrong with the calls of one RPC, given to
/// [`FakeRuntime::inject`](super::FakeRuntime::inject).
///
/// The call is recorded first, then waits for the delay, then fails with the error
/// without touching the fake's state (or, with a delay only, goes on as usual). By default
/// a fault applies to the next call only; [`Fault::times`] and [`Fault::always`] say
/// otherwise.
///
/// ```
/// use std::time::Duration;
/// use cri_client::testing::Fault;
///
/// let flaky = Fault::error(tonic::Status::unavailable("restarting")).times(2);
/// let slow = Fault::delay(Duration::from_secs(30)).always();
/// let slow_then_failing = Fault::delay(Duration::from_millis(50))
///     .with_error(tonic::Status::internal("boom"));
/// # let _ = (flaky, slow, slow_then_failing);
/// ```
#[derive(Debug, Clone)]
pub struct Fault {
    delay: Option<Duration>,
    error: Option<Status>,
    times: Times,
}

/// How many more calls a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Times {
    Next(u32),
    Always,
}

impl Fault {
    /// The next call fails with `status`.
    pub fn error(status: Status) -> Fault {
        Fault {
            delay: None,
            error: Some(status),
            times: Times::Next(1),
        }
    }

    /// The next call takes `delay` longer.
    pub fn delay(delay: Duration) -> Fault {
        Fault {
            delay: Some(delay),
            error: None,
            times: Times::Next(1),
        }
    }

    /// Also fails with `status` (after the delay, if any).
    pub fn with_error(self, status: Status) -> Fault {
        Fault {
            error: Some(status),
            ..self
        }
    }

    /// Also waits `delay` first.
    pub fn with_delay(self, delay: Duration) -> Fault {
        Fault {
            delay: Some(delay),
            ..self
        }
    }

    /// Applies to the next `n` calls (0 makes the fault a no-op).
    pub fn times(self, n: u32) -> Fault {
        Fault {
            times: Times::Next(n),
            ..self
        }
    }

    /// Applies to every call from now on, until [`FakeRuntime::clear_faults`](super::FakeRuntime::clear_faults).
    pub fn always(self) -> Fault {
        Fault {
            times: Times::Always,
            ..self
        }
    }
}

/// What one call suffers: the delay and the error of the fault it drew.
#[derive(Debug, Default)]
pub(super) struct Drawn {
    pub(super) delay: Option<Duration>,
    pub(super) error: Option<Status>,
}

/// The faults waiting for each RPC, applied in the order they were injected.
#[derive(Debug, Default)]
pub(super) struct Faults {
    queues: HashMap<Rpc, VecDeque<Fault>>,
}

impl Faults {
    /// Queues `fault` for `rpc`, behind those already waiting.
    pub(super) fn push(&mut self, rpc: Rpc, fault: Fault) {
        if fault.times != Times::Next(0) {
            self.queues.entry(rpc).or_default().push_back(fault);
        }
    }

    /// The fault the next call of `rpc` suffers, used up by one call.
    pub(super) fn draw(&mut self, rpc: Rpc) -> Drawn {
        let Some(queue) = self.queues.get_mut(&rpc) else {
            return Drawn::default();
        };
        let Some(fault) = queue.front_mut() else {
            return Drawn::default();
        };
        let drawn = Drawn {
            delay: fault.delay,
            error: fault.error.clone(),
        };
        if let Times::Next(n) = &mut fault.times {
            *n -= 1;
            if *n == 0 {
                queue.pop_front();
            }
        }
        drawn
    }

    /// Forgets every fault.
    pub(super) fn clear(&mut self) {
        self.queues.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(faults: &mut Faults, rpc: Rpc, calls: usize) -> Vec<Option<tonic::Code>> {
        (0..calls)
            .map(|_| faults.draw(rpc).error.map(|status| status.code()))
            .collect()
    }

    #[test]
    fn a_fault_applies_to_the_next_call_only_by_default() {
        let mut faults = Faults::default();
        faults.push(Rpc::Version, Fault::error(Status::internal("x")));
        assert_eq!(codes(&mut faults, Rpc::Version, 2), [Some(tonic::Code::Internal), None]);
    }

    #[test]
    fn faults_queue_up_per_rpc_in_order() {
        let mut faults = Faults::default();
        faults.push(Rpc::Status, Fault::error(Status::unavailable("a")).times(2));
        faults.push(Rpc::Status, Fault::error(Status::not_found("b")));
        faults.push(Rpc::Status, Fault::error(Status::internal("never")).times(0));
        assert_eq!(codes(&mut faults, Rpc::Version, 1), [None], "another rpc");
        assert_eq!(
            codes(&mut faults, Rpc::Status, 4),
            [
                Some(tonic::Code::Unavailable),
                Some(tonic::Code::Unavailable),
                Some(tonic::Code::NotFound),
                None
            ]
        );
    }

    #[test]
    fn an_always_fault_stays_until_cleared() {
        let mut faults = Faults::default();
        faults.push(Rpc::PullImage, Fault::delay(Duration::from_secs(1)).always());
        for _ in 0..3 {
            let drawn = faults.draw(Rpc::PullImage);
            assert_eq!(drawn.delay, Some(Duration::from_secs(1)));
            assert!(drawn.error.is_none());
        }
        faults.clear();
        assert_eq!(faults.draw(Rpc::PullImage).delay, None);
    }
}
