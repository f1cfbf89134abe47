//! Copying a CRI log file to a client with the options of `/containerLogs`: what the
//! file holds when asked (from where `tailLines` says, found from the end), then
//! (`follow`) what the container writes next, across rotations of the file (the
//! runtime's log is renamed and a new one created at the same path: the rest of the old
//! one is read first, then the new one from its start).
//!
//! The file is streamed, never held: one block is read at a time, decoded, and sent into
//! a bounded channel whose other end is the response body, so a slow client slows the
//! reading instead of making the server buffer the file. What stays in memory is a
//! block, the lines [`Assembler`] holds (at most [`super::format::MAX_PENDING_LINE`] bytes a
//! stream) and the header of the record being read.

use std::future::Future;
use std::io::{self, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::fs::File;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::mpsc;

use super::format::{Assembler, Entry, Header, MAX_HEADER};
use super::options::LogOptions;
use super::tail::{TailStart, find_tail};

/// How often a followed log is polled for more lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// How often a followed log asks whether its container still runs.
const RUNNING_CHECK: Duration = Duration::from_secs(1);
/// The most read from the file at once (and so, about, the most sent at once).
const READ_BLOCK: usize = 64 * 1024;
/// The size of the blocks read backwards from the end of the file to find `tailLines`.
const TAIL_BLOCK: usize = 64 * 1024;

/// A container's log file, opened: a request fails before its answer starts if its log
/// cannot be opened.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    inode: u64,
    len: u64,
}

impl LogFile {
    /// Opens the log at `path`; what it holds now is what a copy without `follow` sends.
    pub async fn open(path: PathBuf) -> io::Result<LogFile> {
        let file = File::open(&path).await?;
        let metadata = file.metadata().await?;
        Ok(LogFile {
            path,
            file,
            inode: metadata.ino(),
            len: metadata.len(),
        })
    }
}

/// Copies `log` into `sender` (the response body) as `options` say. While following,
/// `running` is asked now and then whether the container still runs: once it does not,
/// the rest of the file is sent and the copy ends. It also ends when the client goes
/// away (the receiver is dropped) or `limitBytes` is reached.
pub async fn copy_log<F, R>(
    log: LogFile,
    options: &LogOptions,
    sender: mpsc::Sender<Bytes>,
    mut running: F,
) -> io::Result<()>
where
    F: FnMut() -> R,
    R: Future<Output = bool>,
{
    let LogFile {
        path,
        mut file,
        mut inode,
        len,
    } = log;
    let tail = match options.tail_lines {
        None => TailStart::default(),
        Some(lines) => {
            let backwards = file.try_clone().await?.into_std().await;
            tokio::task::spawn_blocking(move || find_tail(&backwards, len, lines, TAIL_BLOCK))
                .await
                .map_err(io::Error::other)??
        }
    };
    file.seek(SeekFrom::Start(tail.offset())).await?;
    let mut copy = Copy {
        file,
        block: vec![0; READ_BLOCK],
        out: Vec::new(),
        decoder: Decoder::new(options, tail),
        sender,
    };
    if !copy.pump(len.saturating_sub(tail.offset())).await? {
        return Ok(());
    }
    if !options.follow {
        copy.finish().await;
        return Ok(());
    }
    let mut last_check = Instant::now();
    loop {
        if !copy.pump(u64::MAX).await? || copy.sender.is_closed() {
            return Ok(());
        }
        if let Ok(metadata) = tokio::fs::metadata(&path).await
            && metadata.ino() != inode
        {
            // Rotated: the old file was read to its end just above; go on in the new one.
            copy.file = File::open(&path).await?;
            inode = copy.file.metadata().await?.ino();
            copy.decoder.next_file();
            continue;
        }
        if last_check.elapsed() >= RUNNING_CHECK {
            last_check = Instant::now();
            if !running().await {
                if copy.pump(u64::MAX).await? {
                    copy.finish().await;
                }
                return Ok(());
            }
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// The state of one copy.
struct Copy<'a> {
    file: File,
    /// The block read into.
    block: Vec<u8>,
    /// What the last block decoded to.
    out: Vec<u8>,
    decoder: Decoder<'a>,
    sender: mpsc::Sender<Bytes>,
}

impl Copy<'_> {
    /// Reads and sends up to `most` bytes of the file, stopping at its end; false once
    /// the copy is over (the client went away or `limitBytes` was reached).
    async fn pump(&mut self, mut most: u64) -> io::Result<bool> {
        while most > 0 {
            let want = usize::try_from(most).unwrap_or(READ_BLOCK).min(READ_BLOCK);
            let read = self.file.read(&mut self.block[..want]).await?;
            if read == 0 {
                break;
            }
            most -= read as u64;
            let more = self.decoder.feed(&self.block[..read], &mut self.out);
            if !self.send().await || !more {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Sends the unfinished lines: the copy is over.
    async fn finish(&mut self) {
        self.decoder.finish(&mut self.out);
        self.send().await;
    }

    /// Sends what was decoded, waiting while the channel is full; false if the client
    /// went away.
    async fn send(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let bytes = Bytes::from(std::mem::take(&mut self.out));
        self.sender.send(bytes).await.is_ok()
    }
}

/// Where the decoder is in the file.
#[derive(Debug)]
enum Position {
    /// In the header of the record starting at this offset.
    Header(u64),
    /// In the content of a record; `keep` is false for a record before the tail.
    Content { header: Header, keep: bool },
    /// In a line that is not in the CRI format, skipped to its newline.
    Skip,
}

/// Turns the bytes of a log file, in any pieces, into what the client gets: records
/// parsed as they come (a record may span reads: its content is passed on as it comes),
/// lines joined, the options applied.
#[derive(Debug)]
struct Decoder<'a> {
    tail: TailStart,
    /// The offset in the file of the next byte fed.
    offset: u64,
    position: Position,
    /// The header read so far (at most [`MAX_HEADER`] bytes).
    header: Vec<u8>,
    assembler: Assembler,
    emitter: Emitter<'a>,
}

impl<'a> Decoder<'a> {
    /// A decoder of a file read from `tail`'s offset.
    fn new(options: &'a LogOptions, tail: TailStart) -> Decoder<'a> {
        Decoder {
            tail,
            offset: tail.offset(),
            position: Position::Header(tail.offset()),
            header: Vec::with_capacity(MAX_HEADER),
            assembler: Assembler::default(),
            emitter: Emitter { options, written: 0 },
        }
    }

    /// Goes on in a new file (after a rotation), read from its start; unfinished lines
    /// go on in it.
    fn next_file(&mut self) {
        self.tail = TailStart::default();
        self.offset = 0;
        self.position = Position::Header(0);
        self.header.clear();
    }

    /// Decodes `data`, the next bytes of the file, appending what the client gets to
    /// `out`; false once `limitBytes` is reached.
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> bool {
        while !data.is_empty() {
            let (used, next) = match &self.position {
                Position::Header(start) => {
                    let start = *start;
                    let had = self.header.len();
                    let room = MAX_HEADER.saturating_sub(had).min(data.len());
                    self.header.extend_from_slice(&data[..room]);
                    match Header::end(&self.header) {
                        Some(end) => {
                            let used = end + 1 - had;
                            let parsed = Header::parse(&self.header[..end]);
                            let newline = self.header[end] == b'\n';
                            self.header.clear();
                            let next = match parsed {
                                Some(header) if newline => {
                                    // A record without content.
                                    if self.tail.keeps(header.stream, start)
                                        && let Some(entry) = self.assembler.push(&header, &[], true)
                                        && !self.emitter.emit(&entry, out)
                                    {
                                        return false;
                                    }
                                    Position::Header(self.offset + used as u64)
                                }
                                Some(header) => Position::Content {
                                    keep: self.tail.keeps(header.stream, start),
                                    header,
                                },
                                None if newline => Position::Header(self.offset + used as u64),
                                None => Position::Skip,
                            };
                            (used, next)
                        }
                        None if self.header.len() >= MAX_HEADER => {
                            self.header.clear();
                            (room, Position::Skip)
                        }
                        None => (room, Position::Header(start)),
                    }
                }
                Position::Content { header, keep } => {
                    let newline = data.iter().position(|b| *b == b'\n');
                    let content = &data[..newline.unwrap_or(data.len())];
                    let ends = newline.is_some();
                    if *keep
                        && let Some(entry) = self.assembler.push(header, content, ends)
                        && !self.emitter.emit(&entry, out)
                    {
                        return false;
                    }
                    let used = content.len() + usize::from(ends);
                    if !ends {
                        self.offset += used as u64;
                        return true;
                    }
                    (used, Position::Header(self.offset + used as u64))
                }
                Position::Skip => match data.iter().position(|b| *b == b'\n') {
                    Some(newline) => (newline + 1, Position::Header(self.offset + newline as u64 + 1)),
                    None => (data.len(), Position::Skip),
                },
            };
            self.position = next;
            self.offset += used as u64;
            data = &data[used..];
        }
        true
    }

    /// Appends the unfinished lines to `out`: the file ends here.
    fn finish(&mut self, out: &mut Vec<u8>) {
        for entry in self.assembler.drain() {
            if !self.emitter.emit(&entry, out) {
                return;
            }
        }
    }
}

/// Formats entries as `timestamps`, `sinceTime` and `limitBytes` say.
#[derive(Debug)]
struct Emitter<'a> {
    options: &'a LogOptions,
    /// The bytes sent so far.
    written: u64,
}

impl Emitter<'_> {
    /// Appends `entry` to `out` if it passes `since`; false once the limit is reached.
    fn emit(&mut self, entry: &Entry<'_>, out: &mut Vec<u8>) -> bool {
        if let (Some(since), Some(time)) = (self.options.since, entry.time)
            && time < since
        {
            return true;
        }
        if self.options.timestamps
            && !entry.continued
            && !(self.write(entry.timestamp.as_bytes(), out) && self.write(b" ", out))
        {
            return false;
        }
        self.write(&entry.content, out) && (!entry.complete || self.write(b"\n", out))
    }

    /// Appends what the limit leaves of `bytes`; false once the limit is reached.
    fn write(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> bool {
        let room = match self.options.limit_bytes {
            Some(limit) => usize::try_from(limit.saturating_sub(self.written)).unwrap_or(usize::MAX),
            None => usize::MAX,
        };
        let take = bytes.len().min(room);
        out.extend_from_slice(&bytes[..take]);
        self.written += take as u64;
        take < room
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::server::logs::format::MAX_PENDING_LINE;

    const LOG: &str = "\
2024-05-01T12:00:01Z stdout F one
2024-05-01T12:00:02Z stderr F two
2024-05-01T12:00:03Z stdout P thr
2024-05-01T12:00:04Z stdout F ee
2024-05-01T12:00:05Z stdout F four
";

    fn write_log(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// Everything `copy_log` sends for `text` with `options`, a container not running.
    async fn copy_all(text: &str, options: LogOptions) -> String {
        let (_dir, path) = write_log(text);
        let log = LogFile::open(path).await.unwrap();
        let (sender, mut receiver) = mpsc::channel(1);
        let copy = copy_log(log, &options, sender, || async { false });
        let collect = async {
            let mut all = Vec::new();
            while let Some(bytes) = receiver.recv().await {
                all.extend_from_slice(&bytes);
            }
            all
        };
        let (copied, all) = tokio::join!(copy, collect);
        copied.unwrap();
        String::from_utf8(all).unwrap()
    }

    async fn read(options: LogOptions) -> String {
        copy_all(LOG, options).await
    }

    /// What a decoder makes of `text` fed `piece` bytes at a time.
    fn decode(text: &[u8], options: &LogOptions, piece: usize) -> Vec<u8> {
        let mut decoder = Decoder::new(options, TailStart::default());
        let mut out = Vec::new();
        for data in text.chunks(piece) {
            if !decoder.feed(data, &mut out) {
                return out;
            }
        }
        decoder.finish(&mut out);
        out
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

    #[test]
    fn records_split_anywhere_between_reads_decode_the_same() {
        let text =
            format!("{LOG}garbage line\n2024-05-01T12:00:06Z stderr F\n2024-05-01T12:00:07Z stdout P unfinished");
        let options = LogOptions {
            timestamps: true,
            ..LogOptions::default()
        };
        let whole = decode(text.as_bytes(), &options, text.len());
        assert_eq!(
            String::from_utf8_lossy(&whole),
            "2024-05-01T12:00:01Z one\n2024-05-01T12:00:02Z two\n2024-05-01T12:00:03Z three\n\
             2024-05-01T12:00:05Z four\n2024-05-01T12:00:06Z \n2024-05-01T12:00:07Z unfinished"
        );
        for piece in [1, 2, 7, 33] {
            assert_eq!(decode(text.as_bytes(), &options, piece), whole, "pieces of {piece}");
        }
    }

    #[test]
    fn limit_bytes_counts_timestamps_and_newlines_and_stops_the_copy() {
        for (limit, expected) in [
            (1, "2"),
            (22, "2024-05-01T12:00:01Z o"),
            (25, "2024-05-01T12:00:01Z one\n"),
            (30, "2024-05-01T12:00:01Z one\n2024-"),
        ] {
            let options = LogOptions {
                timestamps: true,
                limit_bytes: Some(limit),
                ..LogOptions::default()
            };
            let mut decoder = Decoder::new(&options, TailStart::default());
            let mut out = Vec::new();
            assert!(!decoder.feed(LOG.as_bytes(), &mut out), "the limit ends the copy");
            assert_eq!(String::from_utf8_lossy(&out), expected);
        }
    }

    #[test]
    fn an_endless_line_is_passed_on_with_bounded_memory() {
        // The runtime cuts it into records of 16 KiB; each read is one block.
        let record = format!("2024-05-01T12:00:00Z stdout P {}\n", "x".repeat(16 * 1024));
        let options = LogOptions {
            timestamps: true,
            ..LogOptions::default()
        };
        let mut decoder = Decoder::new(&options, TailStart::default());
        let mut sent = 0;
        let stream = record.repeat(64);
        for _ in 0..8 {
            for block in stream.as_bytes().chunks(READ_BLOCK) {
                let mut out = Vec::new();
                assert!(decoder.feed(block, &mut out));
                assert!(
                    out.len() <= READ_BLOCK + MAX_PENDING_LINE,
                    "{} bytes at once",
                    out.len()
                );
                sent += out.len();
            }
        }
        let content = 8 * 64 * 16 * 1024;
        let stamp = "2024-05-01T12:00:00Z ".len();
        assert!(
            content + stamp - sent <= MAX_PENDING_LINE,
            "{} bytes held",
            content + stamp - sent
        );
        // The same holds for one record without its newline yet (another runtime's).
        let mut decoder = Decoder::new(&options, TailStart::default());
        let mut out = Vec::new();
        assert!(decoder.feed(b"2024-05-01T12:00:00Z stderr F ", &mut out));
        for _ in 0..100 {
            let mut out = Vec::new();
            assert!(decoder.feed(&[b'y'; READ_BLOCK], &mut out));
            assert!(out.len() <= READ_BLOCK + MAX_PENDING_LINE + stamp);
        }
        assert!(decoder.feed(b"\n", &mut out));
        assert_eq!(out, b"\n", "the line ends, with no second timestamp");
    }

    #[tokio::test]
    async fn a_long_log_is_streamed_and_its_tail_found_from_the_end() {
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("2024-05-01T12:00:00Z stdout F line {i}\n"));
        }
        let all = copy_all(&text, LogOptions::default()).await;
        assert_eq!(all.lines().count(), 20_000);
        let tail = LogOptions {
            tail_lines: Some(3),
            ..LogOptions::default()
        };
        assert_eq!(copy_all(&text, tail).await, "line 19997\nline 19998\nline 19999\n");
    }

    #[tokio::test]
    async fn a_client_that_goes_away_ends_the_copy() {
        let text = "2024-05-01T12:00:00Z stdout F some line\n".repeat(100_000);
        let (_dir, path) = write_log(&text);
        let log = LogFile::open(path).await.unwrap();
        let (sender, mut receiver) = mpsc::channel(1);
        let options = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        let copy = tokio::spawn(async move { copy_log(log, &options, sender, || async { true }).await });
        assert!(receiver.recv().await.is_some_and(|bytes| bytes.len() <= READ_BLOCK));
        drop(receiver);
        tokio::time::timeout(Duration::from_secs(5), copy)
            .await
            .expect("the copy ends")
            .unwrap()
            .unwrap();
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
                let running = || {
                    let running = running.clone();
                    async move { running.load(Ordering::SeqCst) }
                };
                copy_log(LogFile::open(path).await?, &options, sender, running).await
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
