//! The CRI log format: one line per write of the container,
//! `<RFC 3339 timestamp> <stream> <tag> <content>\n`, where the stream is `stdout` or
//! `stderr` and the tag `F` (a full line) or `P` (a partial one: the runtime split a long
//! line, and the next `P` or `F` of the same stream continues it). [`Assembler`] joins
//! the pieces back into the lines the container wrote.

use jiff::Timestamp;

/// The tag of a line that ends the container's line.
const FULL: &[u8] = b"F";
/// The tag of a piece of a longer line.
const PARTIAL: &[u8] = b"P";

/// One line the container wrote, joined from its pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The timestamp of its first piece, as written in the file.
    pub timestamp: String,
    /// The same, parsed (`None` if the runtime wrote something else).
    pub time: Option<Timestamp>,
    /// The line, without its newline.
    pub content: Vec<u8>,
    /// Whether the line ended (false for a last piece the runtime has not finished).
    pub complete: bool,
}

/// The fields of one line of the file.
struct Fields<'a> {
    timestamp: &'a [u8],
    stderr: bool,
    tag: &'a [u8],
    content: &'a [u8],
}

/// A line of the file, split into its fields; `None` if it is not in the CRI format.
fn split(line: &[u8]) -> Option<Fields<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let timestamp = fields.next()?;
    let stream = fields.next()?;
    let tag = fields.next()?;
    let content = fields.next().unwrap_or_default();
    let stderr = match stream {
        b"stdout" => false,
        b"stderr" => true,
        _ => return None,
    };
    // Tags may carry more after a ':'; the first says full or partial.
    let tag = tag.split(|b| *b == b':').next().unwrap_or_default();
    if tag != FULL && tag != PARTIAL {
        return None;
    }
    Some(Fields {
        timestamp,
        stderr,
        tag,
        content,
    })
}

/// Joins partial lines, separately for stdout and stderr.
#[derive(Debug, Default)]
pub struct Assembler {
    /// The unfinished line of stdout (0) and stderr (1): its first timestamp and content.
    pending: [Option<(String, Vec<u8>)>; 2],
}

impl Assembler {
    /// Takes one line of the file (without its `\n`); returns the container's line it
    /// completes, if any. Lines not in the CRI format are skipped.
    pub fn push(&mut self, line: &[u8]) -> Option<Entry> {
        let Fields {
            timestamp,
            stderr,
            tag,
            content,
        } = split(line)?;
        let slot = &mut self.pending[usize::from(stderr)];
        let (first_timestamp, mut joined) = match slot.take() {
            Some((first, mut joined)) => {
                joined.extend_from_slice(content);
                (first, joined)
            }
            None => (String::from_utf8_lossy(timestamp).into_owned(), content.to_vec()),
        };
        if tag == PARTIAL {
            *slot = Some((first_timestamp, std::mem::take(&mut joined)));
            return None;
        }
        Some(entry(first_timestamp, joined, true))
    }

    /// The unfinished lines, oldest first, emptying the assembler.
    pub fn drain(&mut self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = (self.pending.iter_mut().filter_map(Option::take))
            .map(|(timestamp, content)| entry(timestamp, content, false))
            .collect();
        entries.sort_by_key(|entry| entry.time);
        entries
    }
}

fn entry(timestamp: String, content: Vec<u8>, complete: bool) -> Entry {
    Entry {
        time: timestamp.parse().ok(),
        timestamp,
        content,
        complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_lines_are_joined_per_stream() {
        let mut assembler = Assembler::default();
        assert_eq!(assembler.push(b"2024-05-01T12:00:00.1Z stdout P hel"), None);
        assert_eq!(assembler.push(b"2024-05-01T12:00:00.2Z stderr P oo"), None);
        let line = assembler.push(b"2024-05-01T12:00:00.3Z stdout F lo world").unwrap();
        assert_eq!(line.content, b"hello world");
        assert_eq!(line.timestamp, "2024-05-01T12:00:00.1Z");
        assert!(line.complete);
        let rest = assembler.drain();
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].content.as_slice(), rest[0].complete), (&b"oo"[..], false));
    }

    #[test]
    fn other_lines_are_skipped_and_empty_lines_kept() {
        let mut assembler = Assembler::default();
        assert_eq!(assembler.push(b"garbage"), None);
        assert_eq!(assembler.push(b"2024-05-01T12:00:00Z stdin F x"), None);
        assert_eq!(assembler.push(b"2024-05-01T12:00:00Z stdout X x"), None);
        let empty = assembler.push(b"2024-05-01T12:00:00Z stdout F").unwrap();
        assert!(empty.content.is_empty());
        let tagged = assembler.push(b"2024-05-01T12:00:00Z stdout F:extra a b").unwrap();
        assert_eq!(tagged.content, b"a b");
    }
}
