//! The harness's own progress lines: plain text on stderr, no tracing subscriber.

use std::fmt::Display;
use std::sync::OnceLock;
use std::time::Instant;

/// Prints one progress line of the harness on stderr: `[harness +1.234s] message`.
///
/// The time is counted from the first line the process printed, so a run reads as a
/// timeline (registry up, images pushed, containerd ready, cleanup done). Lines go to
/// stderr unbuffered and are not captured by the test runner.
pub fn note(message: impl Display) {
    static START: OnceLock<Instant> = OnceLock::new();
    let elapsed = START.get_or_init(Instant::now).elapsed();
    eprintln!("[harness +{:.3}s] {message}", elapsed.as_secs_f64());
}
