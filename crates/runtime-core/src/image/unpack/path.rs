//! Entry names: what a tar path may look like before anything is created for it.
//!
//! This is the lexical half of the defence; the other half is the kernel-checked
//! resolution in [`super::fs`], which refuses symlinks in every component whatever the
//! name looks like.

use std::fmt;

/// Longest entry name (and hard link target) accepted, in bytes: Linux's `PATH_MAX`.
pub(super) const MAX_NAME_LEN: usize = 4096;

/// Why an entry name (or a hard link target) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathProblem {
    /// The name is empty.
    #[error("empty names are not allowed in image layers")]
    Empty,
    /// The name contains a NUL byte (possible in PAX records and GNU long names).
    #[error("names with a NUL byte are not allowed in image layers")]
    Nul,
    /// The name starts with `/`.
    #[error("absolute paths are not allowed in image layers")]
    Absolute,
    /// A component is `..`.
    #[error("\"..\" components are not allowed in image layers")]
    DotDot,
    /// The name is longer than 4096 bytes (Linux's `PATH_MAX`).
    #[error("names longer than 4096 bytes are not allowed in image layers ({len} bytes)")]
    TooLong {
        /// Length of the refused name.
        len: usize,
    },
}

/// A validated entry path, relative to the layer root: components separated by one `/`,
/// none empty, `.` or `..`, no NUL. The root itself has no components.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct EntryPath {
    /// The normalized path (`a/b/c`; empty for the root).
    normalized: Vec<u8>,
}

impl EntryPath {
    /// Validates a raw tar name and normalizes it: `./a//b/` becomes `a/b`.
    pub(super) fn parse(raw: &[u8]) -> Result<Self, PathProblem> {
        if raw.len() > MAX_NAME_LEN {
            return Err(PathProblem::TooLong { len: raw.len() });
        }
        if raw.is_empty() {
            return Err(PathProblem::Empty);
        }
        if raw.contains(&0) {
            return Err(PathProblem::Nul);
        }
        if raw.starts_with(b"/") {
            return Err(PathProblem::Absolute);
        }
        let mut normalized = Vec::with_capacity(raw.len());
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => continue,
                b".." => return Err(PathProblem::DotDot),
                name => {
                    if !normalized.is_empty() {
                        normalized.push(b'/');
                    }
                    normalized.extend_from_slice(name);
                }
            }
        }
        Ok(Self { normalized })
    }

    /// Whether this is the layer root (`.`, `./`).
    pub(super) fn is_root(&self) -> bool {
        self.normalized.is_empty()
    }

    /// The normalized bytes (`a/b/c`).
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.normalized
    }

    /// The parent path and the last component; `None` for the root.
    pub(super) fn split_last(&self) -> Option<(&[u8], &[u8])> {
        if self.is_root() {
            return None;
        }
        Some(match self.normalized.iter().rposition(|&b| b == b'/') {
            Some(slash) => (&self.normalized[..slash], &self.normalized[slash + 1..]),
            None => (&[][..], &self.normalized[..]),
        })
    }
}

/// The components of a normalized path (none for the root).
pub(super) fn components(normalized: &[u8]) -> impl Iterator<Item = &[u8]> {
    normalized.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

impl fmt::Debug for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryPath({:?})", display(&self.normalized))
    }
}

/// Longest name shown whole in error messages; longer ones are cut.
const MAX_DISPLAY_LEN: usize = 256;

/// A tar name as error messages show it: lossy UTF-8, cut after [`MAX_DISPLAY_LEN`] bytes.
pub(super) fn display(raw: &[u8]) -> String {
    if raw.len() > MAX_DISPLAY_LEN {
        format!("{}...", String::from_utf8_lossy(&raw[..MAX_DISPLAY_LEN]))
    } else {
        String::from_utf8_lossy(raw).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_validated_and_normalized() {
        let long = vec![b'a'; MAX_NAME_LEN + 1];
        let longest = vec![b'a'; MAX_NAME_LEN];
        struct Case<'a> {
            desc: &'a str,
            raw: &'a [u8],
            want: Result<&'a [u8], PathProblem>,
        }
        let cases = [
            Case {
                desc: "plain file",
                raw: b"etc/passwd",
                want: Ok(b"etc/passwd"),
            },
            Case {
                desc: "dot prefix",
                raw: b"./etc/passwd",
                want: Ok(b"etc/passwd"),
            },
            Case {
                desc: "directory slash",
                raw: b"etc/",
                want: Ok(b"etc"),
            },
            Case {
                desc: "doubled slashes",
                raw: b"etc//ssl///certs",
                want: Ok(b"etc/ssl/certs"),
            },
            Case {
                desc: "inner dot",
                raw: b"etc/./passwd",
                want: Ok(b"etc/passwd"),
            },
            Case {
                desc: "root as dot",
                raw: b".",
                want: Ok(b""),
            },
            Case {
                desc: "root as dot slash",
                raw: b"./",
                want: Ok(b""),
            },
            Case {
                desc: "dots inside a name",
                raw: b"a/..b/c..",
                want: Ok(b"a/..b/c.."),
            },
            Case {
                desc: "whiteout name",
                raw: b"a/.wh.b",
                want: Ok(b"a/.wh.b"),
            },
            Case {
                desc: "non-utf8 bytes",
                raw: b"a/\xff\xfe",
                want: Ok(b"a/\xff\xfe"),
            },
            Case {
                desc: "exactly 4096 bytes",
                raw: &longest,
                want: Ok(&longest),
            },
            Case {
                desc: "empty",
                raw: b"",
                want: Err(PathProblem::Empty),
            },
            Case {
                desc: "absolute",
                raw: b"/etc/passwd",
                want: Err(PathProblem::Absolute),
            },
            Case {
                desc: "absolute root",
                raw: b"/",
                want: Err(PathProblem::Absolute),
            },
            Case {
                desc: "leading dotdot",
                raw: b"../etc",
                want: Err(PathProblem::DotDot),
            },
            Case {
                desc: "inner dotdot",
                raw: b"a/../../etc",
                want: Err(PathProblem::DotDot),
            },
            Case {
                desc: "trailing dotdot",
                raw: b"a/..",
                want: Err(PathProblem::DotDot),
            },
            Case {
                desc: "dotdot alone",
                raw: b"..",
                want: Err(PathProblem::DotDot),
            },
            Case {
                desc: "dot then dotdot",
                raw: b"./..",
                want: Err(PathProblem::DotDot),
            },
            Case {
                desc: "nul byte",
                raw: b"a\0/b",
                want: Err(PathProblem::Nul),
            },
            Case {
                desc: "longer than 4096",
                raw: &long,
                want: Err(PathProblem::TooLong { len: 4097 }),
            },
        ];
        for case in cases {
            let got = EntryPath::parse(case.raw);
            let got = got.as_ref().map(EntryPath::as_bytes).map_err(|e| *e);
            assert_eq!(got, case.want, "{}", case.desc);
        }
    }

    #[test]
    fn split_last_gives_parent_and_name() {
        let path = EntryPath::parse(b"a/b/c").expect("valid");
        assert_eq!(path.split_last(), Some((&b"a/b"[..], &b"c"[..])));
        let top = EntryPath::parse(b"c").expect("valid");
        assert_eq!(top.split_last(), Some((&b""[..], &b"c"[..])));
        assert_eq!(EntryPath::parse(b".").expect("valid").split_last(), None);
    }
}
