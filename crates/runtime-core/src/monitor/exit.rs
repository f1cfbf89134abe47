//! The exit record: how the container's init process ended, written by the monitor once
//! (temporary file + rename, so a reader sees all of it or nothing) and read by the
//! daemon, also after the daemon restarted.
//!
//! ```json
//! {"exit_code":137,"signal":9,"finished_at_nanos":1700000000123456789,"oom_killed":false}
//! ```
//!
//! The monitor writes the JSON by hand (no serde in the monitor process, to keep it
//! small); the daemon parses it with serde.

use std::io;
use std::path::Path;

use serde::Deserialize;

/// How a container's init process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ExitRecord {
    /// The exit code; 128 + the signal number for a process killed by a signal.
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// When the monitor saw it end, nanoseconds since the Unix epoch.
    pub finished_at_nanos: i64,
    /// True if the kernel's OOM killer killed a process of its memory cgroup while it ran
    /// (best effort: see `monitor::oom`).
    pub oom_killed: bool,
}

impl ExitRecord {
    /// The record of a process that exited with code `exit_status` or died of `signal`
    /// (`waitpid`'s two outcomes; an unknown status records -1).
    pub fn from_wait_status(exit_status: Option<i32>, signal: Option<i32>, finished_at_nanos: i64) -> ExitRecord {
        match signal {
            Some(signal) => ExitRecord {
                exit_code: 128 + signal,
                signal: Some(signal),
                finished_at_nanos,
                oom_killed: false,
            },
            None => ExitRecord {
                exit_code: exit_status.unwrap_or(-1),
                signal: None,
                finished_at_nanos,
                oom_killed: false,
            },
        }
    }

    /// The record as one line of JSON.
    pub fn to_json(&self) -> String {
        let signal = match self.signal {
            Some(signal) => signal.to_string(),
            None => "null".to_owned(),
        };
        format!(
            "{{\"exit_code\":{},\"signal\":{signal},\"finished_at_nanos\":{},\"oom_killed\":{}}}\n",
            self.exit_code, self.finished_at_nanos, self.oom_killed
        )
    }

    /// Parses [`ExitRecord::to_json`]'s output.
    pub fn from_json(text: &[u8]) -> Result<ExitRecord, serde_json::Error> {
        serde_json::from_slice(text)
    }
}

/// Writes a file of the monitor's (the exit record, the pid file) atomically, readable
/// by all (see [`crate::atomic_file`]).
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    crate::atomic_file::write_atomically(path, contents, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_hand_written_json() {
        let cases = [
            (
                "exited",
                ExitRecord::from_wait_status(Some(3), None, 1_700_000_000_123_456_789),
            ),
            ("killed", ExitRecord::from_wait_status(None, Some(9), 1)),
            (
                "oom killed",
                ExitRecord {
                    oom_killed: true,
                    ..ExitRecord::from_wait_status(None, Some(9), i64::MAX)
                },
            ),
        ];
        for (desc, record) in cases {
            let json = record.to_json();
            assert_eq!(
                ExitRecord::from_json(json.as_bytes()).ok(),
                Some(record),
                "{desc}: {json}"
            );
        }
    }

    #[test]
    fn signals_become_128_plus_the_signal() {
        let record = ExitRecord::from_wait_status(None, Some(15), 0);
        assert_eq!((record.exit_code, record.signal), (143, Some(15)));
        let record = ExitRecord::from_wait_status(Some(0), None, 0);
        assert_eq!((record.exit_code, record.signal), (0, None));
    }
}
