//! The harness's own progress lines: plain text on stderr, no tracing subscriber.

use std::fmt::Display;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
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

/// The last `lines` lines of a log file, reading from `offset` on (what one process
/// wrote into a file shared by several runs).
pub fn tail_from(path: &Path, offset: u64, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let start = offset.max(file.metadata().map(|m| m.len()).unwrap_or(0).saturating_sub(64 * 1024));
        let _ = file.seek(SeekFrom::Start(start));
        let mut raw = Vec::new();
        let _ = file.read_to_end(&mut raw);
        text = String::from_utf8_lossy(&raw).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
