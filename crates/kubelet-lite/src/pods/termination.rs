//! The termination message of a finished container, as the kubelet reports it in
//! `state.terminated.message`: what the container wrote to its `terminationMessagePath`
//! (the last [`MAX_MESSAGE_BYTES`]), or, with the policy `FallbackToLogsOnError`, a
//! failed container that wrote nothing there, the end of its log (at most
//! [`MAX_LOG_LINES`] lines and [`MAX_LOG_BYTES`] bytes of them). A message the runtime
//! gave comes first, then `": "` and this one.
//!
//! The file is found as the kubelet finds it: the host side of the container's mount at
//! the message path, from ContainerStatus, so it works with any CRI runtime.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::Path;

use cri_api::v1::Mount;

/// The most bytes of a termination-message file that are reported (its end).
pub const MAX_MESSAGE_BYTES: u64 = 4 * 1024;
/// The most log lines a message from the log is made of.
pub const MAX_LOG_LINES: usize = 80;
/// The most bytes of a message from the log (its end).
pub const MAX_LOG_BYTES: usize = 2 * 1024;

/// The policy that falls back to the log.
pub const FALLBACK_TO_LOGS_ON_ERROR: &str = "FallbackToLogsOnError";

/// How much of the file is read backwards at a time while looking for the log's last lines.
const BLOCK: u64 = 4096;
/// The most bytes one log record may hold before the search for lines gives up on it (the
/// runtimes cut records at 16 KiB).
const MAX_RECORD: usize = 1024 * 1024;

/// Where a finished container's termination message comes from.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// `terminationMessagePath` inside the container (empty: none).
    pub message_path: &'a str,
    /// `terminationMessagePolicy`.
    pub policy: &'a str,
    /// The container's mounts, as ContainerStatus reports them.
    pub mounts: &'a [Mount],
    /// The container's log file, as ContainerStatus reports it.
    pub log_path: &'a str,
    /// The exit code.
    pub exit_code: i32,
    /// The runtime's reason for the exit.
    pub reason: &'a str,
    /// The runtime's message.
    pub runtime_message: &'a str,
}

/// The message to report for a container that exited.
pub fn message(sources: &Sources<'_>) -> String {
    // A container that could not even start has no log worth reporting.
    let fallback =
        sources.policy == FALLBACK_TO_LOGS_ON_ERROR && sources.exit_code != 0 && sources.reason != "ContainerCannotRun";
    let host_file = (!sources.message_path.is_empty())
        .then(|| sources.mounts.iter().find(|m| m.container_path == sources.message_path))
        .flatten()
        .map(|m| m.host_path.as_str());
    let from_file = match host_file {
        None => FileMessage::Missing,
        Some(path) => match read_file_end(Path::new(path), MAX_MESSAGE_BYTES) {
            Ok(bytes) => FileMessage::Read(bytes),
            Err(err) if err.kind() == io::ErrorKind::NotFound => FileMessage::Missing,
            Err(err) => FileMessage::Unreadable(format!("Error on reading termination log {path}: {err}")),
        },
    };
    let own = match choose(from_file, fallback) {
        Choice::Text(text) => text,
        Choice::FromLog => match log_end(Path::new(sources.log_path), MAX_LOG_LINES, MAX_LOG_BYTES) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(err) => format!("Error on reading termination message from logs: {err}"),
        },
    };
    join(sources.runtime_message, &own)
}

/// What reading the termination-message file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileMessage {
    /// No file (no mount at the path, or no file behind it).
    Missing,
    /// Its last bytes.
    Read(Vec<u8>),
    /// It could not be read: the message says why.
    Unreadable(String),
}

/// The message, or that it must come from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Choice {
    Text(String),
    FromLog,
}

/// The file's content wins when there is some; the log is read only with the fallback
/// policy (`fallback` already says the container failed) and no message in the file.
fn choose(file: FileMessage, fallback: bool) -> Choice {
    match file {
        FileMessage::Read(bytes) if !bytes.is_empty() => Choice::Text(String::from_utf8_lossy(&bytes).into_owned()),
        FileMessage::Unreadable(why) => Choice::Text(why),
        FileMessage::Read(_) | FileMessage::Missing if fallback => Choice::FromLog,
        FileMessage::Read(_) | FileMessage::Missing => Choice::Text(String::new()),
    }
}

/// The runtime's message, then ours after `": "` when both are there.
fn join(runtime: &str, own: &str) -> String {
    match (runtime.is_empty(), own.is_empty()) {
        (_, true) => runtime.to_owned(),
        (true, false) => own.to_owned(),
        (false, false) => format!("{runtime}: {own}"),
    }
}

/// The last `max` bytes of the file at `path`.
fn read_file_end(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// What the container wrote in the last `max_lines` lines of its CRI log at `path`, at
/// most the last `max_bytes` of it.
///
/// Lines count as the kubelet counts them for `tailLines`: records of the file, an
/// unfinished last record not counted (but shown). A full record's content ends with a
/// newline, a partial one's does not; records that are not in the CRI format are
/// skipped. The file is read backwards and only as far as needed.
pub fn log_end(path: &Path, max_lines: usize, max_bytes: usize) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let mut start = file.metadata()?.len();
    // The file's bytes from `start` up to the oldest record already taken.
    let mut held: Vec<u8> = Vec::new();
    // Contents of the records taken, newest first.
    let mut contents: Vec<Vec<u8>> = Vec::new();
    let (mut lines, mut bytes) = (0, 0);
    while lines < max_lines && bytes < max_bytes {
        // The newest record still held starts after the last newline before its own end.
        let search = held.len().saturating_sub(1);
        let record_start = match held[..search].iter().rposition(|b| *b == b'\n') {
            Some(newline) => newline + 1,
            None if start == 0 => 0,
            None if held.len() > MAX_RECORD => break,
            None => {
                let read = BLOCK.min(start);
                start -= read;
                let mut block = vec![0; usize::try_from(read).unwrap_or(0)];
                file.seek(SeekFrom::Start(start))?;
                file.read_exact(&mut block)?;
                block.extend_from_slice(&held);
                held = block;
                continue;
            }
        };
        let record = held.split_off(record_start);
        if record.is_empty() {
            break;
        }
        if record.ends_with(b"\n") {
            lines += 1;
        }
        if let Some(content) = record_content(&record) {
            bytes += content.len();
            contents.push(content.to_vec());
        }
    }
    let mut out: Vec<u8> = contents.into_iter().rev().flatten().collect();
    if out.len() > max_bytes {
        out.drain(..out.len() - max_bytes);
    }
    Ok(out)
}

/// The content of one CRI log record (`<time> <stream> <tag> <content>`, with its newline
/// if it has one): with its newline for a full record (`F`), without for a partial one
/// (`P`); `None` if it is not in the format.
fn record_content(record: &[u8]) -> Option<&[u8]> {
    let mut fields = record.splitn(4, |b| *b == b' ');
    let _time = fields.next()?;
    if !matches!(fields.next()?, b"stdout" | b"stderr") {
        return None;
    }
    let tag = fields.next()?;
    let partial = match tag.split(|b| *b == b':').next()? {
        b"P" => true,
        b"F" => false,
        // A record without content ends right after its tag.
        b"P\n" => return Some(b""),
        b"F\n" => return Some(b"\n"),
        _ => return None,
    };
    let content = fields.next().unwrap_or_default();
    Some(match content.strip_suffix(b"\n") {
        Some(line) if partial => line,
        _ => content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(container: &str, host: &Path) -> Mount {
        Mount {
            container_path: container.into(),
            host_path: host.to_string_lossy().into_owned(),
            ..Mount::default()
        }
    }

    fn log(dir: &Path, records: &[&str]) -> String {
        let path = dir.join("0.log");
        std::fs::write(&path, records.concat()).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn sources<'a>(mounts: &'a [Mount], log_path: &'a str, policy: &'a str, exit_code: i32) -> Sources<'a> {
        Sources {
            message_path: "/dev/termination-log",
            policy,
            mounts,
            log_path,
            exit_code,
            reason: if exit_code == 0 { "Completed" } else { "Error" },
            runtime_message: "",
        }
    }

    #[test]
    fn the_file_wins_then_the_log_only_for_a_failure_with_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termination-log");
        let mounts = [mount("/dev/termination-log", &file)];
        let log_path = log(dir.path(), &["2024-01-01T00:00:00.000000000Z stdout P DONE\n"]);
        std::fs::write(&file, "").unwrap();
        // echo -n DONE; false, FallbackToLogsOnError: from the log.
        assert_eq!(
            message(&sources(&mounts, &log_path, FALLBACK_TO_LOGS_ON_ERROR, 1)),
            "DONE"
        );
        // echo -n DONE; true: a success is not reported from the log.
        assert_eq!(message(&sources(&mounts, &log_path, FALLBACK_TO_LOGS_ON_ERROR, 0)), "");
        // The default policy never reads the log.
        assert_eq!(message(&sources(&mounts, &log_path, "File", 1)), "");
        // A message in the file wins, whatever the exit.
        std::fs::write(&file, "OK").unwrap();
        assert_eq!(
            message(&sources(&mounts, &log_path, FALLBACK_TO_LOGS_ON_ERROR, 0)),
            "OK"
        );
        assert_eq!(
            message(&sources(&mounts, &log_path, FALLBACK_TO_LOGS_ON_ERROR, 1)),
            "OK"
        );
        // Found by the mount at the path, wherever it is.
        let custom = [mount("/dev/termination-custom-log", &file)];
        let mut at_custom = sources(&custom, &log_path, "File", 0);
        assert_eq!(message(&at_custom), "");
        at_custom.message_path = "/dev/termination-custom-log";
        assert_eq!(message(&at_custom), "OK");
        // The runtime's message comes first.
        at_custom.runtime_message = "oom";
        assert_eq!(message(&at_custom), "oom: OK");
        // A container that could not run has no log to fall back to.
        std::fs::write(&file, "").unwrap();
        let mut cannot_run = sources(&mounts, &log_path, FALLBACK_TO_LOGS_ON_ERROR, 128);
        cannot_run.reason = "ContainerCannotRun";
        assert_eq!(message(&cannot_run), "");
    }

    #[test]
    fn only_the_end_of_a_long_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termination-log");
        let text: String = (0..5000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        std::fs::write(&file, &text).unwrap();
        let mounts = [mount("/dev/termination-log", &file)];
        let got = message(&sources(&mounts, "", "File", 0));
        assert_eq!(got.len(), 4096);
        assert_eq!(got, text[5000 - 4096..]);
    }

    #[test]
    fn no_file_falls_back_and_an_unreadable_log_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("never-made");
        let mounts = [mount("/dev/termination-log", &gone)];
        let missing_log = dir.path().join("nope.log");
        let missing_log = missing_log.to_string_lossy();
        let got = message(&sources(&mounts, &missing_log, FALLBACK_TO_LOGS_ON_ERROR, 2));
        assert!(
            got.starts_with("Error on reading termination message from logs: "),
            "{got}"
        );
        assert_eq!(message(&sources(&[], &missing_log, "File", 2)), "");
    }

    #[test]
    fn choosing() {
        assert_eq!(choose(FileMessage::Read(b"x".to_vec()), true), Choice::Text("x".into()));
        assert_eq!(choose(FileMessage::Read(Vec::new()), true), Choice::FromLog);
        assert_eq!(choose(FileMessage::Missing, true), Choice::FromLog);
        assert_eq!(choose(FileMessage::Missing, false), Choice::Text(String::new()));
        assert_eq!(
            choose(FileMessage::Unreadable("no".into()), true),
            Choice::Text("no".into())
        );
        assert_eq!(join("", ""), "");
        assert_eq!(join("a", ""), "a");
        assert_eq!(join("", "b"), "b");
        assert_eq!(join("a", "b"), "a: b");
    }

    #[test]
    fn the_log_end_joins_records_and_keeps_the_last_lines_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = log(
            dir.path(),
            &[
                "2024-01-01T00:00:00Z stdout F first\n",
                "not a record\n",
                "2024-01-01T00:00:01Z stderr P hel\n",
                "2024-01-01T00:00:01Z stderr F lo\n",
                "2024-01-01T00:00:02Z stdout F\n",
                "2024-01-01T00:00:03Z stdout P last",
            ],
        );
        let path = Path::new(&path);
        assert_eq!(log_end(path, 80, 2048).unwrap(), b"first\nhello\n\nlast");
        // Two lines: the unfinished last record does not count, as with tailLines.
        assert_eq!(log_end(path, 2, 2048).unwrap(), b"lo\n\nlast");
        assert_eq!(log_end(path, 80, 6).unwrap(), b"\n\nlast");
        let empty = dir.path().join("empty.log");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(log_end(&empty, 80, 2048).unwrap(), b"");
    }

    #[test]
    fn a_long_log_is_read_only_from_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<String> = (0..10_000)
            .map(|i| format!("2024-01-01T00:00:00Z stdout F line {i:05}\n"))
            .collect();
        let path = dir.path().join("long.log");
        std::fs::write(&path, records.concat()).unwrap();
        let tail = log_end(&path, 80, 2048).unwrap();
        let expected: String = (9_920..10_000).map(|i| format!("line {i:05}\n")).collect();
        assert_eq!(String::from_utf8(tail).unwrap(), expected);
        // Fewer bytes than 80 lines: the last ones.
        let tail = log_end(&path, 80, 22).unwrap();
        assert_eq!(tail, b"line 09998\nline 09999\n");
    }

    #[test]
    fn record_contents() {
        assert_eq!(record_content(b"t stdout F a b\n"), Some(&b"a b\n"[..]));
        assert_eq!(record_content(b"t stdout P a b\n"), Some(&b"a b"[..]));
        assert_eq!(record_content(b"t stderr F:x c\n"), Some(&b"c\n"[..]));
        assert_eq!(record_content(b"t stdout F\n"), Some(&b"\n"[..]));
        assert_eq!(record_content(b"t stdout F end"), Some(&b"end"[..]));
        assert_eq!(record_content(b"t other F a\n"), None);
        assert_eq!(record_content(b"garbage\n"), None);
    }
}
