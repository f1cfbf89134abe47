//! Properties of the CRI log writer: whatever a container writes, in whatever pieces,
//! the records read back into exactly its lines.

use proptest::prelude::*;

use super::*;

/// One stream's bytes, as read: pieces of text rich in `\r` and `\n`.
fn pieces() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let byte = prop_oneof![
        4 => Just(b'\n'),
        3 => Just(b'\r'),
        8 => b'a'..=b'e',
        1 => any::<u8>(),
    ];
    prop::collection::vec(prop::collection::vec(byte, 0..40), 0..12)
}

/// Reads records back: (stream, tag, content) each, checking the record's layout.
fn records(log: &[u8]) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    assert!(
        log.is_empty() || log.ends_with(b"\n"),
        "the log ends with a whole record"
    );
    log.split(|b| *b == b'\n')
        .filter(|r| !r.is_empty())
        .map(|record| {
            let (timestamp, rest) = record.split_at(TIMESTAMP_LEN);
            assert!(timestamp.ends_with(b"Z") && timestamp[10] == b'T', "{timestamp:?}");
            let mut fields = rest[1..].splitn(3, |b| *b == b' ');
            let stream = fields.next().expect("a stream").to_vec();
            let tag = fields.next().expect("a tag").to_vec();
            let content = fields.next().expect("content").to_vec();
            (stream, tag, content)
        })
        .collect()
}

/// What the log keeps of `written`: its lines without the `\r` of a `\r\n`, and the
/// unfinished rest.
fn lines(written: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut lines: Vec<Vec<u8>> = written.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let rest = lines.pop().unwrap_or_default();
    for line in &mut lines {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    (lines, rest)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn records_read_back_as_the_lines_written(pieces in pieces(), max_line in 1usize..24) {
        let mut splitter = LineSplitter::new(Stream::Stderr, max_line);
        let mut log = Vec::new();
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        for piece in &pieces {
            splitter.feed(piece, now, &mut log);
        }
        splitter.finish(now, &mut log);

        let mut read = Vec::new();
        let mut current = Vec::new();
        let mut last_tag = b"F".to_vec();
        for (stream, tag, content) in records(&log) {
            prop_assert_eq!(&stream, b"stderr");
            prop_assert!(content.len() <= max_line, "{} bytes over {}", content.len(), max_line);
            current.extend_from_slice(&content);
            if tag == TAG_FULL {
                read.push(std::mem::take(&mut current));
            } else {
                prop_assert_eq!(&tag, TAG_PARTIAL);
            }
            last_tag = tag;
        }
        let written: Vec<u8> = pieces.concat();
        let (expected, rest) = lines(&written);
        prop_assert_eq!(read, expected);
        prop_assert_eq!(&current, &rest, "the unfinished line");
        if !rest.is_empty() {
            prop_assert_eq!(last_tag, TAG_PARTIAL.to_vec(), "an unfinished line ends partial");
        }
    }
}
