//! The CRI log format: one record per line of the file,
//! `<RFC 3339 timestamp> <stream> <tag> <content>\n`, where the stream is `stdout` or
//! `stderr` and the tag `F` (a full line) or `P` (a partial one: the runtime split a long
//! line, and the next `P` or `F` of the same stream continues it). [`Header`] reads the
//! fields before the content; [`Assembler`] joins the pieces back into the lines the
//! container wrote, holding at most [`MAX_PENDING_LINE`] bytes of a line: a longer one
//! is passed on as its pieces come.

use std::borrow::Cow;

use jiff::Timestamp;

/// The tag of a record that ends the container's line.
const FULL: &[u8] = b"F";
/// The tag of a piece of a longer line.
const PARTIAL: &[u8] = b"P";

/// The most bytes of one unfinished container line held while its end is awaited.
///
/// The runtime cuts long lines into records of 16 KiB (containerd's default, and
/// runtime-core's), so lines up to four records are still sent whole (one timestamp,
/// never interleaved with the other stream). Past this, what was held is sent at once
/// and the rest of the line follows as it is read: a container printing one endless
/// line costs this much memory per stream, not the length of its line.
pub const MAX_PENDING_LINE: usize = 64 * 1024;

/// The longest header (timestamp, stream and tag with their spaces) of a record in the
/// CRI format; a line whose first bytes hold no header is not in the format.
pub const MAX_HEADER: usize = 256;

/// A container output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// 0 for stdout, 1 for stderr: an index into per-stream arrays.
    pub fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// The fields of a record before its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The timestamp, as written in the file.
    pub timestamp: String,
    /// The same, parsed (`None` if the runtime wrote something else).
    pub time: Option<Timestamp>,
    /// The stream the container wrote to.
    pub stream: Stream,
    /// Whether the container's line goes on in the next record of the stream.
    pub partial: bool,
}

impl Header {
    /// Parses `bytes`, a record up to the space before its content (or its whole line,
    /// without the newline, when the content is empty); `None` if it is not in the CRI
    /// format.
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        let mut fields = bytes.splitn(4, |b| *b == b' ');
        let timestamp = fields.next()?;
        let stream = match fields.next()? {
            b"stdout" => Stream::Stdout,
            b"stderr" => Stream::Stderr,
            _ => return None,
        };
        // Tags may carry more after a ':'; the first says full or partial.
        let tag = fields.next()?.split(|b| *b == b':').next().unwrap_or_default();
        let partial = match tag {
            FULL => false,
            PARTIAL => true,
            _ => return None,
        };
        let timestamp = String::from_utf8_lossy(timestamp).into_owned();
        Some(Header {
            time: timestamp.parse().ok(),
            timestamp,
            stream,
            partial,
        })
    }

    /// Where the header at the start of `bytes` ends: the index of the space before the
    /// content or of the newline ending a record without content; `None` if neither comes
    /// within [`MAX_HEADER`] bytes or before `bytes` ends.
    pub fn end(bytes: &[u8]) -> Option<usize> {
        let mut spaces = 0;
        bytes.iter().take(MAX_HEADER).position(|b| match b {
            b'\n' => true,
            b' ' => {
                spaces += 1;
                spaces == 3
            }
            _ => false,
        })
    }
}

/// Bytes of one line the container wrote, ready to be sent: the whole line, or (for a
/// line longer than [`MAX_PENDING_LINE`]) a piece of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The timestamp of the line's first record, as written in the file.
    pub timestamp: Cow<'a, str>,
    /// The same, parsed (`None` if the runtime wrote something else).
    pub time: Option<Timestamp>,
    /// The bytes, without a newline.
    pub content: Cow<'a, [u8]>,
    /// Whether the line ends with these bytes (false for a piece of a long line, or for
    /// a last line the runtime has not finished).
    pub complete: bool,
    /// Whether earlier bytes of the same line were sent before these.
    pub continued: bool,
}

/// What the assembler knows of one stream's current line.
#[derive(Debug, Default)]
enum Line {
    /// Between lines.
    #[default]
    Idle,
    /// A line whose first pieces are held until its end (or the cap).
    Held {
        timestamp: String,
        time: Option<Timestamp>,
        content: Vec<u8>,
    },
    /// A line too long to hold: its start was sent, the rest goes on as it comes.
    Sending { timestamp: String, time: Option<Timestamp> },
}

/// Joins partial records, separately for stdout and stderr, up to [`MAX_PENDING_LINE`]
/// bytes a line.
#[derive(Debug, Default)]
pub struct Assembler {
    /// The current line of stdout (0) and stderr (1).
    lines: [Line; 2],
}

impl Assembler {
    /// Takes `content`, the next bytes of a record with `header` (a record may come in
    /// several calls); `ends` says whether the record ends with them. Returns what is
    /// ready to be sent, if anything.
    pub fn push<'a>(&'a mut self, header: &'a Header, content: &'a [u8], ends: bool) -> Option<Entry<'a>> {
        let line = &mut self.lines[header.stream.index()];
        let complete = ends && !header.partial;
        match line {
            Line::Idle if complete || content.len() >= MAX_PENDING_LINE => {
                if !complete {
                    *line = Line::Sending {
                        timestamp: header.timestamp.clone(),
                        time: header.time,
                    };
                }
                Some(Entry {
                    timestamp: Cow::Borrowed(&header.timestamp),
                    time: header.time,
                    content: Cow::Borrowed(content),
                    complete,
                    continued: false,
                })
            }
            Line::Idle => {
                *line = Line::Held {
                    timestamp: header.timestamp.clone(),
                    time: header.time,
                    content: content.to_vec(),
                };
                None
            }
            Line::Held { content: held, .. } => {
                held.extend_from_slice(content);
                if !complete && held.len() < MAX_PENDING_LINE {
                    return None;
                }
                let Line::Held {
                    timestamp,
                    time,
                    content,
                } = std::mem::take(line)
                else {
                    return None;
                };
                if !complete {
                    *line = Line::Sending {
                        timestamp: timestamp.clone(),
                        time,
                    };
                }
                Some(Entry {
                    timestamp: Cow::Owned(timestamp),
                    time,
                    content: Cow::Owned(content),
                    complete,
                    continued: false,
                })
            }
            Line::Sending { .. } if complete => {
                let Line::Sending { timestamp, time } = std::mem::take(line) else {
                    return None;
                };
                Some(Entry {
                    timestamp: Cow::Owned(timestamp),
                    time,
                    content: Cow::Borrowed(content),
                    complete,
                    continued: true,
                })
            }
            Line::Sending { .. } if content.is_empty() => None,
            Line::Sending { timestamp, time } => Some(Entry {
                timestamp: Cow::Borrowed(timestamp.as_str()),
                time: *time,
                content: Cow::Borrowed(content),
                complete,
                continued: true,
            }),
        }
    }

    /// The held unfinished lines, oldest first, emptying the assembler (the rest of a
    /// line being sent is forgotten).
    pub fn drain(&mut self) -> Vec<Entry<'static>> {
        let mut entries: Vec<Entry<'static>> = (self.lines.iter_mut().map(std::mem::take))
            .filter_map(|line| match line {
                Line::Held {
                    timestamp,
                    time,
                    content,
                } => Some(Entry {
                    timestamp: Cow::Owned(timestamp),
                    time,
                    content: Cow::Owned(content),
                    complete: false,
                    continued: false,
                }),
                Line::Idle | Line::Sending { .. } => None,
            })
            .collect();
        entries.sort_by_key(|entry| entry.time);
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a whole record line to `assembler`.
    fn push_line(assembler: &mut Assembler, line: &[u8]) -> Option<(Vec<u8>, String, bool, bool)> {
        let end = Header::end(line).unwrap_or(line.len());
        let header = Header::parse(&line[..end])?;
        let content = line.get(end + 1..).unwrap_or_default();
        assembler.push(&header, content, true).map(|entry| {
            (
                entry.content.into_owned(),
                entry.timestamp.into_owned(),
                entry.complete,
                entry.continued,
            )
        })
    }

    #[test]
    fn partial_lines_are_joined_per_stream() {
        let mut assembler = Assembler::default();
        assert_eq!(push_line(&mut assembler, b"2024-05-01T12:00:00.1Z stdout P hel"), None);
        assert_eq!(push_line(&mut assembler, b"2024-05-01T12:00:00.2Z stderr P oo"), None);
        let (content, timestamp, complete, continued) =
            push_line(&mut assembler, b"2024-05-01T12:00:00.3Z stdout F lo world").unwrap();
        assert_eq!(content, b"hello world");
        assert_eq!(timestamp, "2024-05-01T12:00:00.1Z");
        assert!(complete && !continued);
        let rest = assembler.drain();
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].content.as_ref(), rest[0].complete), (&b"oo"[..], false));
    }

    #[test]
    fn other_lines_are_skipped_and_empty_lines_kept() {
        assert_eq!(Header::parse(b"garbage"), None);
        assert_eq!(Header::parse(b"2024-05-01T12:00:00Z stdin F"), None);
        assert_eq!(Header::parse(b"2024-05-01T12:00:00Z stdout X"), None);
        let mut assembler = Assembler::default();
        let (empty, ..) = push_line(&mut assembler, b"2024-05-01T12:00:00Z stdout F").unwrap();
        assert!(empty.is_empty());
        let (tagged, ..) = push_line(&mut assembler, b"2024-05-01T12:00:00Z stdout F:extra a b").unwrap();
        assert_eq!(tagged, b"a b");
    }

    #[test]
    fn a_header_ends_at_its_third_space_or_newline_within_the_limit() {
        assert_eq!(Header::end(b"t stdout F content with spaces"), Some(10));
        assert_eq!(Header::end(b"t stdout F\nnext"), Some(10));
        assert_eq!(Header::end(b"t stdout"), None);
        assert_eq!(Header::end(&[b'x'; MAX_HEADER + 10]), None);
    }

    #[test]
    fn a_line_longer_than_the_cap_is_sent_in_pieces_as_it_comes() {
        let mut assembler = Assembler::default();
        let record = vec![b'x'; 16 * 1024];
        let first = Header::parse(b"2024-05-01T12:00:00.1Z stdout P").unwrap();
        let later = Header::parse(b"2024-05-01T12:00:00.9Z stdout P").unwrap();
        let last = Header::parse(b"2024-05-01T12:00:01Z stdout F").unwrap();
        let mut sent = 0;
        let mut pieces = Vec::new();
        for i in 0..100 {
            let header = if i == 0 { &first } else { &later };
            if let Some(entry) = assembler.push(header, &record, true) {
                assert!(entry.content.len() <= MAX_PENDING_LINE, "{}", entry.content.len());
                assert_eq!(entry.timestamp, "2024-05-01T12:00:00.1Z");
                sent += entry.content.len();
                pieces.push((entry.continued, entry.complete));
            }
        }
        let held = 100 * record.len() - sent;
        assert!(held < MAX_PENDING_LINE, "{held} bytes held");
        let end = assembler.push(&last, b"end", true).unwrap();
        assert_eq!(
            (end.content.as_ref(), end.continued, end.complete),
            (&b"end"[..], true, true)
        );
        assert_eq!(pieces[0], (false, false), "the held start is sent first");
        assert!(pieces[1..].iter().all(|piece| *piece == (true, false)));
        assert_eq!(sent + held, 100 * record.len());
        assert!(assembler.drain().is_empty(), "nothing of the line stays");
    }

    #[test]
    fn one_huge_record_is_not_held_either() {
        let mut assembler = Assembler::default();
        let header = Header::parse(b"2024-05-01T12:00:00Z stderr F").unwrap();
        let chunk = vec![b'y'; 4096];
        let mut sent = 0;
        for _ in 0..64 {
            sent += assembler
                .push(&header, &chunk, false)
                .map_or(0, |entry| entry.content.len());
        }
        assert!(64 * 4096 - sent < MAX_PENDING_LINE);
        assert!(assembler.push(&header, b"", true).is_some_and(|e| e.complete));
    }
}
