//! The CRI log round trip: what a container writes on stdout and stderr, in any pieces,
//! becomes CRI log records (runtime-core's monitor, `LineSplitter`), and those records
//! read back (kubelet-lite's `Header` and `Assembler`, what `kubectl logs` goes through)
//! give each stream's lines exactly as written (a `\r` before a newline dropped, as
//! containerd does), records no longer than the maximum, and every record parsing.

#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use kubelet_lite::server::logs::format::{Assembler, Header, Stream as ReadStream};
use libfuzzer_sys::fuzz_target;
use runtime_core::monitor::cri_log::{LineSplitter, Stream, TIMESTAMP_LEN};

#[derive(Debug, Arbitrary)]
struct Input {
    max_line: u8,
    writes: Vec<(bool, Vec<u8>)>,
    seconds: u32,
}

/// The lines of `written` as the log keeps them, and the unfinished rest.
fn lines(written: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut out: Vec<Vec<u8>> = written.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let rest = out.pop().unwrap_or_default();
    for line in &mut out {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    (out, rest)
}

fuzz_target!(|input: Input| {
    let max_line = match input.max_line {
        0 => 16 * 1024,
        n => usize::from(n),
    };
    let mut splitters = [
        LineSplitter::new(Stream::Stdout, max_line),
        LineSplitter::new(Stream::Stderr, max_line),
    ];
    let mut written = [Vec::new(), Vec::new()];
    let mut log = Vec::new();
    let now = UNIX_EPOCH + Duration::from_secs(u64::from(input.seconds));
    for (stderr, data) in &input.writes {
        let i = usize::from(*stderr);
        written[i].extend_from_slice(data);
        splitters[i].feed(data, now, &mut log);
    }
    for splitter in &mut splitters {
        splitter.finish(SystemTime::now(), &mut log);
    }
    assert_eq!(
        log.last().copied().unwrap_or(b'\n'),
        b'\n',
        "the log ends with a whole record"
    );

    // One assembler per stream, so that what each still holds at the end is known.
    let mut assemblers = [Assembler::default(), Assembler::default()];
    let mut current = [Vec::new(), Vec::new()];
    let mut read = [Vec::new(), Vec::new()];
    for record in log.split(|b| *b == b'\n').filter(|r| !r.is_empty()) {
        let end = Header::end(record).unwrap_or(record.len());
        let header = Header::parse(&record[..end]).unwrap_or_else(|| {
            panic!(
                "a record the monitor wrote does not parse: {:?}",
                String::from_utf8_lossy(record)
            )
        });
        assert_eq!(header.timestamp.len(), TIMESTAMP_LEN);
        assert!(header.time.is_some(), "timestamp {:?}", header.timestamp);
        let content = record.get(end + 1..).unwrap_or_default();
        assert!(
            content.len() <= max_line,
            "a record of {} bytes over the maximum {max_line}",
            content.len()
        );
        let i = match header.stream {
            ReadStream::Stdout => 0,
            ReadStream::Stderr => 1,
        };
        if let Some(entry) = assemblers[i].push(&header, content, true) {
            current[i].extend_from_slice(&entry.content);
            if entry.complete {
                read[i].push(std::mem::take(&mut current[i]));
            }
        }
    }
    for i in 0..2 {
        for entry in assemblers[i].drain() {
            assert!(!entry.complete);
            current[i].extend_from_slice(&entry.content);
        }
        let (expected_lines, expected_rest) = lines(&written[i]);
        assert_eq!(read[i], expected_lines, "stream {i}: lines");
        assert_eq!(current[i], expected_rest, "stream {i}: the unfinished line");
    }
});
