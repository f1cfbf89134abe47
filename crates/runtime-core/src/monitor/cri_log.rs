//! The CRI log format the kubelet reads (`kubectl logs`), as containerd writes it.
//!
//! One record per line:
//!
//! ```text
//! 2016-10-06T00:17:09.669794202Z stdout F log content
//! 2016-10-06T00:17:09.669794202Z stderr P the first part of a long line
//! ```
//!
//! - the time the record was written, RFC 3339 in UTC with nine fraction digits (the
//!   kubelet parses any `RFC3339Nano`; a fixed width in UTC also sorts as text);
//! - the stream, `stdout` or `stderr`;
//! - the tag: [`TAG_FULL`] for the end of a line, [`TAG_PARTIAL`] for a piece of a line that
//!   continues in the next record of the same stream;
//! - the content, without its newline (nor the `\r` of a `\r\n`, as containerd drops
//!   it), other bytes as they are.
//!
//! A line longer than the maximum is cut into partial records of exactly the maximum,
//! then a full record with the rest (containerd's `redirectLogs`). Bytes without a newline
//! wait for the rest of their line; at the end of the stream they are written as a
//! partial record, as containerd does: the kubelet then shows them without adding a
//! newline the container never wrote.

use std::time::{SystemTime, UNIX_EPOCH};

/// The tag of a record that ends a line.
pub const TAG_FULL: &[u8] = b"F";
/// The tag of a record whose line continues in the next record.
pub const TAG_PARTIAL: &[u8] = b"P";
/// The length of a [`format_timestamp`] result: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub const TIMESTAMP_LEN: usize = 30;

/// The buffer of an unfinished line kept between lines; a bigger one is freed.
const KEEP_CAPACITY: usize = 4096;

/// A container output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's standard output (and everything a terminal gives back).
    Stdout,
    /// The container's standard error.
    Stderr,
}

impl Stream {
    /// The stream's name in a record.
    pub fn name(self) -> &'static [u8] {
        match self {
            Stream::Stdout => b"stdout",
            Stream::Stderr => b"stderr",
        }
    }
}

/// Turns one stream's bytes into CRI log records, keeping an unfinished line between
/// reads.
#[derive(Debug)]
pub struct LineSplitter {
    stream: Stream,
    max_line: usize,
    /// The start of a line whose newline has not come yet (never more than `max_line`).
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for `stream` cutting lines longer than `max_line` bytes (at least 1).
    pub fn new(stream: Stream, max_line: usize) -> LineSplitter {
        LineSplitter {
            stream,
            max_line: max_line.max(1),
            pending: Vec::new(),
        }
    }

    /// Appends to `out` the records that `data`, the next bytes read from the stream,
    /// completes, stamped with `now`.
    pub fn feed(&mut self, mut data: &[u8], now: SystemTime, out: &mut Vec<u8>) {
        let timestamp = format_timestamp(now);
        while !data.is_empty() {
            let (mut line, ends_line) = match data.iter().position(|&b| b == b'\n') {
                Some(newline) => (&data[..newline], true),
                None => (data, false),
            };
            data = &data[line.len() + usize::from(ends_line)..];
            if ends_line {
                // The `\r` of a `\r\n` goes with the newline (bufio's `ReadLine`, which
                // containerd's `readLine` copies), also when it came in an earlier read.
                if let Some(stripped) = line.strip_suffix(b"\r") {
                    line = stripped;
                } else if line.is_empty() && self.pending.last() == Some(&b'\r') {
                    self.pending.pop();
                }
            }
            // A `\r` at the end of what has come so far may be half of a `\r\n`: it does not
            // count towards the maximum until the next byte tells.
            let last = if line.is_empty() {
                self.pending.last()
            } else {
                line.last()
            };
            let held = usize::from(!ends_line && last == Some(&b'\r'));
            // Strictly longer than the maximum: a line of exactly `max_line` bytes is one
            // full record, as in containerd.
            while self.pending.len() + line.len() - held > self.max_line {
                self.cut(&timestamp, &mut line, out);
            }
            if ends_line {
                self.write_record(&timestamp, TAG_FULL, line, out);
            } else {
                self.pending.extend_from_slice(line);
            }
        }
        // Give a long line's buffer back once it is written: a monitor idles for days.
        if self.pending.is_empty() && self.pending.capacity() > KEEP_CAPACITY {
            self.pending = Vec::new();
        }
    }

    /// At the end of the stream: appends the unfinished line, if any, as partial records.
    pub fn finish(&mut self, now: SystemTime, out: &mut Vec<u8>) {
        let timestamp = format_timestamp(now);
        let mut rest: &[u8] = &[];
        while self.pending.len() > self.max_line {
            self.cut(&timestamp, &mut rest, out);
        }
        if !self.pending.is_empty() {
            self.write_record(&timestamp, TAG_PARTIAL, &[], out);
        }
        self.pending = Vec::new();
    }

    /// Writes the first `max_line` bytes of the pending bytes followed by `line` as a
    /// partial record, and keeps the rest.
    fn cut(&mut self, timestamp: &[u8; TIMESTAMP_LEN], line: &mut &[u8], out: &mut Vec<u8>) {
        if self.pending.len() >= self.max_line {
            // Only with a held `\r`: the pending bytes alone fill the record.
            let rest = self.pending.split_off(self.max_line);
            self.write_record(timestamp, TAG_PARTIAL, &[], out);
            self.pending = rest;
        } else {
            let take = self.max_line - self.pending.len();
            self.write_record(timestamp, TAG_PARTIAL, &line[..take], out);
            *line = &line[take..];
        }
    }

    /// True if bytes of an unfinished line wait for their newline.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes one record: the pending bytes, then `rest`; empties `pending`.
    fn write_record(&mut self, timestamp: &[u8; TIMESTAMP_LEN], tag: &[u8], rest: &[u8], out: &mut Vec<u8>) {
        out.reserve(TIMESTAMP_LEN + 10 + self.pending.len() + rest.len());
        out.extend_from_slice(timestamp);
        out.push(b' ');
        out.extend_from_slice(self.stream.name());
        out.push(b' ');
        out.extend_from_slice(tag);
        out.push(b' ');
        out.extend_from_slice(&self.pending);
        out.extend_from_slice(rest);
        out.push(b'\n');
        self.pending.clear();
    }
}

/// `time` as RFC 3339 in UTC with nine fraction digits: `2016-10-06T00:17:09.669794202Z`.
pub fn format_timestamp(time: SystemTime) -> [u8; TIMESTAMP_LEN] {
    let nanos = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    };
    format_unix_nanos(nanos)
}

/// [`format_timestamp`] of a time given as nanoseconds since the Unix epoch. Years
/// outside 0..=9999 are clamped to that range.
pub fn format_unix_nanos(nanos: i128) -> [u8; TIMESTAMP_LEN] {
    const NANOS_PER_SECOND: i128 = 1_000_000_000;
    const MIN: i128 = -62_167_219_200 * NANOS_PER_SECOND; // 0000-01-01T00:00:00Z
    const MAX: i128 = 253_402_300_800 * NANOS_PER_SECOND - 1; // 9999-12-31T23:59:59.999999999Z
    let nanos = nanos.clamp(MIN, MAX);
    let seconds = nanos.div_euclid(NANOS_PER_SECOND);
    let fraction = nanos.rem_euclid(NANOS_PER_SECOND);
    // In range by the clamp above.
    let days = i64::try_from(seconds.div_euclid(86_400)).unwrap_or(0);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);

    let mut out = *b"0000-00-00T00:00:00.000000000Z";
    put_digits(&mut out[0..4], year);
    put_digits(&mut out[5..7], i128::from(month));
    put_digits(&mut out[8..10], i128::from(day));
    put_digits(&mut out[11..13], second_of_day / 3600);
    put_digits(&mut out[14..16], second_of_day % 3600 / 60);
    put_digits(&mut out[17..19], second_of_day % 60);
    put_digits(&mut out[20..29], fraction);
    out
}

/// Writes `value` (non-negative) as decimal digits filling `slot`, zero-padded.
fn put_digits(slot: &mut [u8], mut value: i128) {
    for digit in slot.iter_mut().rev() {
        // 0..=9 by the modulo.
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, <http://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(days: i64) -> (i128, u32, u32) {
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let shifted_month = (5 * day_of_year + 2) / 153; // [0, 11], March first
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1; // [1, 31]
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    // Both in range by construction.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A table case: (desc, chunks read, records written).
    type Case = (&'static str, &'static [&'static [u8]], &'static [&'static str]);

    /// 2016-10-06T00:17:09.669794202Z
    fn sample_time() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_202)
    }

    fn records(splitter: &mut LineSplitter, chunks: &[&[u8]], finish: bool) -> Vec<String> {
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.feed(chunk, sample_time(), &mut out);
        }
        if finish {
            splitter.finish(sample_time(), &mut out);
        }
        String::from_utf8(out)
            .expect("test output is utf-8")
            .split_terminator('\n') // not `lines()`, which eats a `\r` before the `\n`
            .map(|line| {
                line.strip_prefix("2016-10-06T00:17:09.669794202Z ")
                    .unwrap_or(line)
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn timestamps_are_rfc3339_nano_in_utc() {
        let cases: &[(&str, i128, &str)] = &[
            ("the epoch", 0, "1970-01-01T00:00:00.000000000Z"),
            (
                "containerd's example",
                1_475_713_029_669_794_202,
                "2016-10-06T00:17:09.669794202Z",
            ),
            ("a leap day", 951_782_400_000_000_001, "2000-02-29T00:00:00.000000001Z"),
            (
                "the last nanosecond of a year",
                1_704_067_199_999_999_999,
                "2023-12-31T23:59:59.999999999Z",
            ),
            ("before the epoch", -1, "1969-12-31T23:59:59.999999999Z"),
            ("far future clamps", i128::MAX, "9999-12-31T23:59:59.999999999Z"),
            ("far past clamps", i128::MIN, "0000-01-01T00:00:00.000000000Z"),
        ];
        for (desc, nanos, want) in cases {
            let got = format_unix_nanos(*nanos);
            assert_eq!(std::str::from_utf8(&got).ok(), Some(*want), "{desc}");
        }
        assert_eq!(&format_timestamp(sample_time()), b"2016-10-06T00:17:09.669794202Z");
    }

    #[test]
    fn timestamps_agree_with_day_arithmetic_over_centuries() {
        // Every 1st of March from 1900 to 2400 lands on day 1 of month 3.
        let mut days = -25_508; // 1900-03-01
        for year in 1900..2400 {
            assert_eq!(civil_from_days(days), (year, 3, 1), "year {year}");
            let leap_next = (year + 1) % 4 == 0 && ((year + 1) % 100 != 0 || (year + 1) % 400 == 0);
            days += if leap_next { 366 } else { 365 };
        }
    }

    #[test]
    fn complete_lines_become_full_records() {
        let mut splitter = LineSplitter::new(Stream::Stdout, 16);
        assert_eq!(
            records(&mut splitter, &[b"one\ntwo\n\nthree\n"], false),
            ["stdout F one", "stdout F two", "stdout F ", "stdout F three"]
        );
        assert!(!splitter.has_pending());
    }

    #[test]
    fn a_line_split_across_reads_is_one_record() {
        let mut splitter = LineSplitter::new(Stream::Stderr, 16);
        assert_eq!(
            records(&mut splitter, &[b"hel", b"lo\nwor", b"ld", b"\n"], false),
            ["stderr F hello", "stderr F world"]
        );
    }

    #[test]
    fn carriage_returns_before_newlines_are_dropped() {
        let cases: &[Case] = &[
            ("crlf", &[b"dos line\r\n"], &["stdout F dos line"]),
            (
                "a lone cr stays",
                &[b"progress 1\rprogress 2\n"],
                &["stdout F progress 1\rprogress 2"],
            ),
            (
                "crlf split across reads",
                &[b"ab\r", b"\ncd\n"],
                &["stdout F ab", "stdout F cd"],
            ),
            ("cr then more of the line", &[b"ab\r", b"c\n"], &["stdout F ab\rc"]),
            ("only the last cr goes", &[b"\r\r\n"], &["stdout F \r"]),
        ];
        for (desc, chunks, want) in cases {
            let mut splitter = LineSplitter::new(Stream::Stdout, 64);
            assert_eq!(records(&mut splitter, chunks, false), *want, "{desc}");
        }
        let mut splitter = LineSplitter::new(Stream::Stdout, 64);
        assert_eq!(
            records(&mut splitter, &[b"end\r"], true),
            ["stdout P end\r"],
            "a cr at the end of the stream stays"
        );
    }

    #[test]
    fn long_lines_are_cut_into_partial_records_of_the_maximum() {
        let cases: &[Case] = &[
            (
                "exactly the maximum is one full record",
                &[b"abcd\n"],
                &["stdout F abcd"],
            ),
            ("one byte over", &[b"abcde\n"], &["stdout P abcd", "stdout F e"]),
            (
                "twice the maximum",
                &[b"abcdefgh\n"],
                &["stdout P abcd", "stdout F efgh"],
            ),
            (
                "cut across reads",
                &[b"ab", b"cdef", b"ghij\nk\n"],
                &["stdout P abcd", "stdout P efgh", "stdout F ij", "stdout F k"],
            ),
            ("a crlf does not count", &[b"abcd\r\n"], &["stdout F abcd"]),
            ("nor one split across reads", &[b"abcd\r", b"\n"], &["stdout F abcd"]),
            (
                "a held cr followed by more",
                &[b"abcd\r", b"e\n"],
                &["stdout P abcd", "stdout F \re"],
            ),
            ("a lone cr counts", &[b"ab\rcd\n"], &["stdout P ab\rc", "stdout F d"]),
        ];
        for (desc, chunks, want) in cases {
            let mut splitter = LineSplitter::new(Stream::Stdout, 4);
            assert_eq!(records(&mut splitter, chunks, false), *want, "{desc}");
        }
    }

    #[test]
    fn long_unfinished_lines_are_cut_at_the_end() {
        let mut splitter = LineSplitter::new(Stream::Stdout, 4);
        assert_eq!(
            records(&mut splitter, &[b"abcd\r"], true),
            ["stdout P abcd", "stdout P \r"]
        );
    }

    #[test]
    fn an_unfinished_line_waits_and_is_partial_at_the_end() {
        let mut splitter = LineSplitter::new(Stream::Stdout, 16);
        let mut out = Vec::new();
        splitter.feed(b"prompt> ", sample_time(), &mut out);
        assert!(out.is_empty(), "nothing is written before the newline or the end");
        assert!(splitter.has_pending());
        assert_eq!(records(&mut splitter, &[b"yes"], true), ["stdout P prompt> yes"]);
        assert!(!splitter.has_pending());
        assert!(
            records(&mut splitter, &[], true).is_empty(),
            "finishing twice writes nothing"
        );
    }

    #[test]
    fn bytes_are_not_reencoded() {
        let mut splitter = LineSplitter::new(Stream::Stdout, 16);
        let mut out = Vec::new();
        splitter.feed(b"\xff\x00\xfe\n", sample_time(), &mut out);
        assert!(out.ends_with(b" stdout F \xff\x00\xfe\n"));
        assert_eq!(out.len(), TIMESTAMP_LEN + " stdout F ".len() + 4);
    }
}
