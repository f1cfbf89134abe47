//! Reading a CRI log file for `/containerLogs` (kubelet-lite's `copy_log`, without
//! `follow`): any file content, with `timestamps`, `limitBytes`, `sinceTime` and
//! `tailLines`. The copy must not panic; without `tailLines` it sends exactly what a
//! record-by-record reading of the file gives (cut at `limitBytes`); with it, no more
//! complete lines than asked, and finding the tail gives the same start whatever block
//! size the file is read backwards in.

#![no_main]

use arbitrary::Arbitrary;
use jiff::Timestamp;
use kubelet_lite::server::logs::format::{Assembler, Entry, Header, MAX_HEADER};
use kubelet_lite::server::logs::tail::find_tail;
use kubelet_lite::server::logs::{LogFile, LogOptions, copy_log};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    timestamps: bool,
    limit: Option<u16>,
    since: Option<u8>,
    tail: Option<u8>,
    block: u8,
    log: Vec<u8>,
}

/// What `entry` becomes for the client.
fn emit(entry: &Entry<'_>, options: &LogOptions, out: &mut Vec<u8>) {
    if let (Some(since), Some(time)) = (options.since, entry.time)
        && time < since
    {
        return;
    }
    if options.timestamps && !entry.continued {
        out.extend_from_slice(entry.timestamp.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&entry.content);
    if entry.complete {
        out.push(b'\n');
    }
}

/// The file read one whole record at a time.
fn model(log: &[u8], options: &LogOptions) -> Vec<u8> {
    let mut out = Vec::new();
    let mut assembler = Assembler::default();
    let mut rest = log;
    while !rest.is_empty() {
        let (record, has_newline) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..=i], true),
            None => (rest, false),
        };
        rest = &rest[record.len()..];
        let Some(end) = Header::end(record) else { continue };
        let Some(header) = Header::parse(&record[..end]) else {
            continue;
        };
        let content = if record[end] == b'\n' {
            &[][..]
        } else {
            &record[end + 1..record.len() - usize::from(has_newline)]
        };
        if let Some(entry) = assembler.push(&header, content, has_newline) {
            emit(&entry, options, &mut out);
        }
    }
    for entry in assembler.drain() {
        emit(&entry, options, &mut out);
    }
    out
}

fuzz_target!(|input: Input| {
    if input.log.len() > 1 << 20 {
        return;
    }
    let options = LogOptions {
        timestamps: input.timestamps,
        limit_bytes: input.limit.map(|l| u64::from(l) + 1),
        since: input
            .since
            .map(|s| Timestamp::from_second(1_700_000_000 + i64::from(s)).expect("a time")),
        tail_lines: input.tail.map(u64::from),
        ..LogOptions::default()
    };
    let dir = tempfile::Builder::new()
        .prefix("cri-log-")
        .tempdir_in("/dev/shm")
        .expect("a temp dir");
    let path = dir.path().join("0.log");
    std::fs::write(&path, &input.log).expect("the log is written");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let sent = runtime.block_on(async {
        let log = LogFile::open(path.clone()).await.expect("the log opens");
        let (sender, mut receiver) = tokio::sync::mpsc::channel(4);
        let copy = copy_log(log, &options, sender, || async { false });
        let collect = async {
            let mut all = Vec::new();
            while let Some(bytes) = receiver.recv().await {
                all.extend_from_slice(&bytes);
            }
            all
        };
        let (copied, all) = tokio::join!(copy, collect);
        copied.expect("copying a log in memory does not fail");
        all
    });

    if let Some(limit) = options.limit_bytes {
        assert!(
            sent.len() as u64 <= limit,
            "{} bytes sent over the limit of {limit}",
            sent.len()
        );
    }
    match options.tail_lines {
        None => {
            let mut expected = model(&input.log, &options);
            if let Some(limit) = options.limit_bytes {
                expected.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            }
            assert_eq!(
                String::from_utf8_lossy(&sent),
                String::from_utf8_lossy(&expected),
                "what was sent differs from reading the records one by one"
            );
        }
        Some(lines) => {
            let complete = sent.iter().filter(|b| **b == b'\n').count() as u64;
            if !options.timestamps {
                assert!(complete <= lines, "{complete} lines sent for tailLines={lines}");
            }
            let file = std::fs::File::open(&path).expect("the log opens");
            let len = input.log.len() as u64;
            let reference = find_tail(&file, len, lines, 64 * 1024).expect("reading backwards");
            for block in [1, usize::from(input.block) + 1, MAX_HEADER - 1, MAX_HEADER + 1] {
                let found = find_tail(&file, len, lines, block).expect("reading backwards");
                assert_eq!(found, reference, "block size {block}");
            }
        }
    }
});
