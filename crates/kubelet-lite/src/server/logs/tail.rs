//! `tailLines`: where the last lines of a log start, found by reading the file backwards
//! in blocks from its end, so that the tail of a large log costs a few blocks.
//!
//! Lines are the container's lines, as [`super::format::Assembler`] joins them: a line
//! of a stream is its `P` records up to the `F` that ends it, and the records of stdout
//! and stderr interleave. So the tail starts per stream: the records of a stream before
//! its start belong to lines left out, and the records after it (a line's first pieces,
//! the other stream's lines between them, an unfinished last line) are all kept.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;

use super::format::{Header, MAX_HEADER, Stream};

/// Where the kept records of each stream start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TailStart {
    /// The first kept offset of stdout (0) and stderr (1).
    starts: [u64; 2],
}

impl TailStart {
    /// The offset the kept records start at: where to read from.
    pub fn offset(&self) -> u64 {
        self.starts[0].min(self.starts[1])
    }

    /// Whether the record of `stream` starting at `offset` is kept.
    pub fn keeps(&self, stream: Stream, offset: u64) -> bool {
        offset >= self.starts[stream.index()]
    }
}

/// How far the backward search is for one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    /// No record of the stream seen yet.
    Unseen,
    /// Records seen, their line's start not yet found.
    Open,
    /// Every record from this offset on is kept.
    Found(u64),
}

/// Finds where the last `lines` lines of `file` start, in its first `len` bytes, reading
/// backwards `block` bytes at a time (at least 1).
pub fn find_tail(file: &File, len: u64, lines: u64, block: usize) -> io::Result<TailStart> {
    let mut tail = Backwards {
        left: lines,
        streams: [Search::Unseen; 2],
    };
    let block = block.max(1);
    let mut buffer = vec![0; block];
    // The start of the record after the one being looked at: the end of the file first.
    let mut next = len;
    let mut block_end = len;
    'blocks: while block_end > 0 {
        let block_start = block_end.saturating_sub(block as u64);
        let data = &mut buffer[..usize::try_from(block_end - block_start).unwrap_or(block)];
        file.read_exact_at(data, block_start)?;
        for (at, _) in data.iter().enumerate().rev().filter(|(_, b)| **b == b'\n') {
            let start = block_start + at as u64 + 1;
            if start >= len {
                continue;
            }
            let header = header_at(file, data, block_start, start)?;
            if tail.record(header.as_ref(), start, next) {
                break 'blocks;
            }
            next = start;
        }
        block_end = block_start;
    }
    if block_end == 0 && len > 0 {
        let header = header_at(file, &buffer[..0], 0, 0)?;
        tail.record(header.as_ref(), 0, next);
    }
    let start = |search| match search {
        Search::Found(offset) => offset,
        Search::Unseen | Search::Open => 0,
    };
    Ok(TailStart {
        starts: [start(tail.streams[0]), start(tail.streams[1])],
    })
}

/// The header of the record at `start`, from `data` (the block read at `block_start`)
/// when it holds the whole header, else read from the file.
fn header_at(file: &File, data: &[u8], block_start: u64, start: u64) -> io::Result<Option<Header>> {
    let from = usize::try_from(start - block_start).unwrap_or(usize::MAX);
    if let Some(rest) = data.get(from..)
        && let Some(end) = Header::end(rest)
    {
        return Ok(Header::parse(&rest[..end]));
    }
    let mut bytes = [0; MAX_HEADER];
    let mut read = 0;
    while read < bytes.len() {
        match file.read_at(&mut bytes[read..], start + read as u64)? {
            0 => break,
            n => read += n,
        }
    }
    let bytes = &bytes[..read];
    // A record cut short by the end of the file may hold a header and no more.
    let end = Header::end(bytes).unwrap_or(bytes.len());
    Ok(Header::parse(&bytes[..end]))
}

/// The lines still to find and how far each stream is.
struct Backwards {
    left: u64,
    streams: [Search; 2],
}

impl Backwards {
    /// Takes the record from `start` to `end` (the next one's start), going backwards;
    /// true once both streams' starts are found.
    fn record(&mut self, header: Option<&Header>, start: u64, end: u64) -> bool {
        if let Some(header) = header {
            let search = &mut self.streams[header.stream.index()];
            if !matches!(search, Search::Found(_)) {
                if header.partial {
                    *search = Search::Open;
                } else if self.left == 0 {
                    // The end of a line left out: what follows it in this stream is kept.
                    *search = Search::Found(end);
                } else {
                    self.left -= 1;
                    *search = Search::Open;
                }
            }
        }
        if self.left == 0 {
            // Every line wanted ends after `start`: a stream with no record after it has
            // none in the tail.
            for search in &mut self.streams {
                if *search == Search::Unseen {
                    *search = Search::Found(start);
                }
            }
        }
        self.streams.iter().all(|search| matches!(search, Search::Found(_)))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::server::logs::format::Assembler;

    /// stdout and stderr interleaved, lines of several records, a last unfinished line.
    const LOG: &str = "\
2024-05-01T12:00:01Z stdout F one
2024-05-01T12:00:02Z stdout P tw
2024-05-01T12:00:03Z stderr F err-a
2024-05-01T12:00:04Z stdout P o-
2024-05-01T12:00:05Z stdout F lines
not a record
2024-05-01T12:00:06Z stderr P err-
2024-05-01T12:00:07Z stdout F three
2024-05-01T12:00:08Z stderr P b-and-a-rather-long-piece-of-it
2024-05-01T12:00:09Z stderr F
2024-05-01T12:00:10Z stdout F four
2024-05-01T12:00:11Z stderr P unfini";

    /// The lines (complete ones, then the unfinished) of `text` from `tail` on, joined
    /// as the copy joins them.
    fn lines_from(text: &str, tail: TailStart) -> Vec<String> {
        let mut assembler = Assembler::default();
        let mut lines = Vec::new();
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let record = line.strip_suffix('\n').unwrap_or(line).as_bytes();
            let end = Header::end(record).unwrap_or(record.len());
            if let Some(header) = Header::parse(&record[..end])
                && tail.keeps(header.stream, offset)
                && let Some(entry) = assembler.push(&header, record.get(end + 1..).unwrap_or_default(), true)
            {
                lines.push(String::from_utf8_lossy(&entry.content).into_owned());
            }
            offset += line.len() as u64;
        }
        let rest = assembler.drain().into_iter();
        lines.extend(rest.map(|entry| format!("{}...", String::from_utf8_lossy(&entry.content))));
        lines
    }

    fn log_file(text: &str) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn the_tail_is_the_last_lines_whatever_the_block_size() {
        let file = log_file(LOG);
        let len = LOG.len() as u64;
        let all = lines_from(LOG, TailStart::default());
        assert_eq!(
            all,
            [
                "one",
                "err-a",
                "two-lines",
                "three",
                "err-b-and-a-rather-long-piece-of-it",
                "four",
                "unfini..."
            ]
        );
        let complete = all.len() - 1;
        // Blocks smaller than a record, than a header, and larger than the file.
        for block in [1, 5, 17, 40, 64 * 1024] {
            for lines in 0..=complete as u64 + 2 {
                let tail = find_tail(&file, len, lines, block).unwrap();
                let keep = usize::try_from(lines).unwrap().min(complete);
                let mut expected = all[complete - keep..complete].to_vec();
                expected.push(all[complete].clone());
                assert_eq!(lines_from(LOG, tail), expected, "{lines} lines in blocks of {block}");
            }
        }
    }

    #[test]
    fn the_tail_of_a_long_log_reads_only_its_end() {
        let mut text = String::new();
        for i in 0..10_000 {
            text.push_str(&format!("2024-05-01T12:00:00Z stdout F line {i}\n"));
        }
        let file = log_file(&text);
        let tail = find_tail(&file, text.len() as u64, 2, 4096).unwrap();
        let last_two = "2024-05-01T12:00:00Z stdout F line 9998\n".len() * 2;
        assert_eq!(tail.offset(), (text.len() - last_two) as u64);
        assert_eq!(lines_from(&text, tail), ["line 9998", "line 9999"]);
    }

    #[test]
    fn an_empty_log_has_an_empty_tail() {
        let file = log_file("");
        assert_eq!(find_tail(&file, 0, 10, 8).unwrap(), TailStart::default());
    }
}
