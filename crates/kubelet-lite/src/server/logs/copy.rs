//! Copying a CRI log file to a client with the options of `/containerLogs`: the whole
//! file at once, or (`follow`) what is there and then what the container writes next,
//! across rotations of the file (the runtime's log is renamed and a new one created at
//! the same path: the rest of the old one is read first, then the new one from its start).

use std::future::Future;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::fs::File;
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

use super::format::{Assembler, Entry};
use super::options::LogOptions;

/// How often a followed log is polled for more lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// How often a followed log asks whether its container still runs.
const RUNNING_CHECK: Duration = Duration::from_secs(1);
/// The most read from the file at once while following.
const READ_CHUNK: u64 = 1 << 20;

/// Where the log goes.
#[derive(Debug)]
pub enum Sink {
    /// Into memory, for an answer sent whole.
    Buffer(Vec<u8>),
    /// Into a streamed body; a closed channel means the client went away.
    Channel(mpsc::Sender<Bytes>),
}

impl Sink {
    /// Sends `bytes`; false if the client went away.
    async fn send(&mut self, bytes: Vec<u8>) -> bool {
        match self {
            Sink::Buffer(buffer) => {
                buffer.extend_from_slice(&bytes);
                true
            }
            Sink::Channel(sender) => sender.send(Bytes::from(bytes)).await.is_ok(),
        }
    }

    fn is_closed(&self) -> bool {
        matches!(self, Sink::Channel(sender) if sender.is_closed())
    }
}

/// Formats entries into the sink, counting bytes against `limitBytes`.
struct Emitter<'a> {
    options: &'a LogOptions,
    sink: &'a mut Sink,
    written: u64,
}

impl Emitter<'_> {
    /// Sends `entry` if it passes `since`; false once the client is gone or the limit hit.
    async fn emit(&mut self, entry: &Entry) -> bool {
        if let (Some(since), Some(time)) = (self.options.since, entry.time)
            && time < since
        {
            return true;
        }
        let mut text = Vec::with_capacity(entry.content.len() + entry.timestamp.len() + 2);
        if self.options.timestamps {
            text.extend_from_slice(entry.timestamp.as_bytes());
            text.push(b' ');
        }
        text.extend_from_slice(&entry.content);
        if entry.complete {
            text.push(b'\n');
        }
        let mut more = true;
        if let Some(limit) = self.options.limit_bytes {
            let room = usize::try_from(limit.saturating_sub(self.written)).unwrap_or(usize::MAX);
            if text.len() >= room {
                text.truncate(room);
                more = false;
            }
        }
        self.written += text.len() as u64;
        (text.is_empty() || self.sink.send(text).await) && more
    }

    async fn emit_all(&mut self, entries: &[Entry]) -> bool {
        for entry in entries {
            if !self.emit(entry).await {
                return false;
            }
        }
        true
    }
}

/// Splits `data` at newlines into entries; the bytes after the last newline stay in
/// `carry` (prepended to the next read).
fn take_lines(assembler: &mut Assembler, carry: &mut Vec<u8>, data: &[u8]) -> Vec<Entry> {
    carry.extend_from_slice(data);
    let Some(end) = carry.iter().rposition(|b| *b == b'\n') else {
        return Vec::new();
    };
    let rest = carry.split_off(end + 1);
    let entries = carry
        .split(|b| *b == b'\n')
        .filter_map(|line| assembler.push(line))
        .collect();
    *carry = rest;
    entries
}

/// Copies the log at `path` into `sink` as `options` say. While following, `running` is
/// asked now and then whether the container still runs: once it does not, the rest of
/// the file is sent and the copy ends. It also ends when the client goes away.
pub async fn copy_log<F, R>(path: &Path, options: &LogOptions, sink: &mut Sink, mut running: F) -> std::io::Result<()>
where
    F: FnMut() -> R,
    R: Future<Output = bool>,
{
    let mut file = File::open(path).await?;
    let mut inode = file.metadata().await?.ino();
    let mut data = Vec::new();
    file.read_to_end(&mut data).await?;
    let mut assembler = Assembler::default();
    let mut carry = Vec::new();
    let mut entries = take_lines(&mut assembler, &mut carry, &data);
    drop(data);
    if let Some(since) = options.since {
        entries.retain(|entry| entry.time.is_none_or(|time| time >= since));
    }
    if let Some(tail) = options.tail_lines {
        let keep = usize::try_from(tail).unwrap_or(usize::MAX);
        entries.drain(..entries.len().saturating_sub(keep));
    }
    let mut emitter = Emitter {
        options,
        sink,
        written: 0,
    };
    if !emitter.emit_all(&entries).await {
        return Ok(());
    }
    if !options.follow {
        let _ = emitter.emit_all(&assembler.drain()).await;
        return Ok(());
    }
    let mut last_check = Instant::now();
    loop {
        let mut chunk = Vec::new();
        (&mut file).take(READ_CHUNK).read_to_end(&mut chunk).await?;
        if !chunk.is_empty() {
            if !emitter.emit_all(&take_lines(&mut assembler, &mut carry, &chunk)).await {
                return Ok(());
            }
            continue;
        }
        if emitter.sink.is_closed() {
            return Ok(());
        }
        if let Ok(metadata) = tokio::fs::metadata(path).await
            && metadata.ino() != inode
        {
            // Rotated: the old file was read to its end just above; go on in the new one.
            file = File::open(path).await?;
            inode = file.metadata().await?.ino();
            carry.clear();
            continue;
        }
        if last_check.elapsed() >= RUNNING_CHECK {
            last_check = Instant::now();
            if !running().await {
                let mut rest = Vec::new();
                file.read_to_end(&mut rest).await?;
                let _ = emitter.emit_all(&take_lines(&mut assembler, &mut carry, &rest)).await;
                return Ok(());
            }
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    const LOG: &str = "\
2024-05-01T12:00:01Z stdout F one
2024-05-01T12:00:02Z stderr F two
2024-05-01T12:00:03Z stdout P thr
2024-05-01T12:00:04Z stdout F ee
2024-05-01T12:00:05Z stdout F four
";

    fn write_log(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    async fn read(options: LogOptions) -> String {
        let (_dir, path) = write_log(LOG);
        let mut sink = Sink::Buffer(Vec::new());
        copy_log(&path, &options, &mut sink, || async { false }).await.unwrap();
        match sink {
            Sink::Buffer(bytes) => String::from_utf8(bytes).unwrap(),
            Sink::Channel(_) => unreachable!(),
        }
    }

    #[tokio::test]
    async fn the_whole_log_joins_partial_lines_and_mixes_streams() {
        assert_eq!(read(LogOptions::default()).await, "one\ntwo\nthree\nfour\n");
    }

    #[tokio::test]
    async fn tail_timestamps_since_and_limit_apply() {
        let tail = LogOptions {
            tail_lines: Some(2),
            ..LogOptions::default()
        };
        assert_eq!(read(tail).await, "three\nfour\n");
        let stamped = LogOptions {
            tail_lines: Some(1),
            timestamps: true,
            ..LogOptions::default()
        };
        assert_eq!(read(stamped).await, "2024-05-01T12:00:05Z four\n");
        let since = LogOptions {
            since: Some("2024-05-01T12:00:02Z".parse().unwrap()),
            ..LogOptions::default()
        };
        assert_eq!(read(since).await, "two\nthree\nfour\n");
        let limited = LogOptions {
            limit_bytes: Some(6),
            ..LogOptions::default()
        };
        assert_eq!(read(limited).await, "one\ntw");
        let none = LogOptions {
            tail_lines: Some(0),
            ..LogOptions::default()
        };
        assert_eq!(read(none).await, "");
    }

    #[tokio::test]
    async fn follow_sends_new_lines_and_goes_on_after_a_rotation() {
        let (dir, path) = write_log("2024-05-01T12:00:01Z stdout F before\n");
        let (sender, mut receiver) = mpsc::channel(16);
        let running = Arc::new(AtomicBool::new(true));
        let options = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        let task = {
            let (path, running) = (path.clone(), running.clone());
            tokio::spawn(async move {
                let mut sink = Sink::Channel(sender);
                let running = || {
                    let running = running.clone();
                    async move { running.load(Ordering::SeqCst) }
                };
                copy_log(&path, &options, &mut sink, running).await
            })
        };
        assert_eq!(receiver.recv().await.unwrap(), "before\n");
        let append = |text: &str| {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            file.write_all(text.as_bytes()).unwrap();
        };
        append("2024-05-01T12:00:02Z stdout F after\n");
        assert_eq!(receiver.recv().await.unwrap(), "after\n");
        std::fs::rename(&path, dir.path().join("0.log.20240501")).unwrap();
        std::fs::write(&path, "2024-05-01T12:00:03Z stdout F rotated\n").unwrap();
        assert_eq!(receiver.recv().await.unwrap(), "rotated\n");
        running.store(false, Ordering::SeqCst);
        assert!(
            receiver.recv().await.is_none(),
            "the copy ends once the container stops"
        );
        task.await.unwrap().unwrap();
    }
}
