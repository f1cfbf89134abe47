//! Ids of sandboxes and containers: 64 random hex digits, as containerd makes them, and
//! lookup by a unique prefix, as crictl's truncated ids need.

use std::io::Read;

/// Length of an id in hex digits.
const ID_LEN: usize = 64;

/// A fresh random id.
pub fn new_id() -> std::io::Result<String> {
    let mut bytes = [0u8; ID_LEN / 2];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// How a lookup by id or prefix came out.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Exactly one id matches.
    Found(&'a str),
    /// None matches.
    Missing,
    /// The prefix matches several ids.
    Ambiguous,
}

/// The id among `ids` that equals `wanted` or is the only one starting with it.
pub fn find<'a>(ids: impl IntoIterator<Item = &'a String>, wanted: &str) -> Lookup<'a> {
    if wanted.is_empty() {
        return Lookup::Missing;
    }
    let mut found = Lookup::Missing;
    for id in ids {
        if id == wanted {
            return Lookup::Found(id);
        }
        if id.starts_with(wanted) {
            found = match found {
                Lookup::Missing => Lookup::Found(id),
                _ => Lookup::Ambiguous,
            };
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_whole_or_by_a_unique_prefix() {
        let ids: Vec<String> = vec!["abc123".into(), "abd456".into(), "ff".into()];
        let cases = [
            ("whole id", "abc123", Lookup::Found("abc123")),
            ("unique prefix", "abc", Lookup::Found("abc123")),
            ("shared prefix", "ab", Lookup::Ambiguous),
            ("unknown", "zz", Lookup::Missing),
            ("empty", "", Lookup::Missing),
        ];
        for (desc, wanted, expected) in cases {
            assert_eq!(find(&ids, wanted), expected, "{desc}");
        }
    }

    #[test]
    fn new_ids_are_64_hex_digits_and_differ() {
        let (a, b) = (new_id().expect("id"), new_id().expect("id"));
        assert_eq!(a.len(), ID_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
