//! Content digests (`sha256:<64 hex>`), and hashing content while it streams.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// The only digest algorithm OCI images use in practice, and the only one accepted here.
pub const SHA256: &str = "sha256";
/// Length of a sha256 digest in hex.
const SHA256_HEX_LEN: usize = 64;

/// A content digest: `sha256:` followed by 64 lower-case hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// The whole `sha256:<hex>` string.
    text: String,
}

/// A string that is not a digest this runtime accepts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {0:?}: expected sha256: and 64 lower-case hex digits")]
pub struct InvalidDigest(pub String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hash(Sha256::digest(bytes).as_slice())
    }

    fn from_hash(hash: &[u8]) -> Self {
        Self {
            text: format!("{SHA256}:{}", hex::encode(hash)),
        }
    }

    /// The hex part, fit for a file name.
    pub fn hex(&self) -> &str {
        &self.text[SHA256.len() + 1..]
    }

    /// The whole `sha256:<hex>` string.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix(SHA256)
            .and_then(|rest| rest.strip_prefix(':'))
            .filter(|hex| {
                hex.len() == SHA256_HEX_LEN && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            });
        match hex {
            Some(_) => Ok(Self { text: s.to_string() }),
            None => Err(InvalidDigest(s.to_string())),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Hashes everything written to or read through it; [`Hasher::finish`] gives the digest
/// and the byte count.
#[derive(Default, Clone)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    /// Adds `bytes` to the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// The digest and length of everything hashed.
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_hash(self.sha.finalize().as_slice()), self.len)
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Hasher::default(),
        }
    }

    /// The digest and length of what was read so far.
    pub fn finish(self) -> (Digest, u64) {
        self.hasher.finish()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parsing_accepts_only_lower_case_sha256() {
        let good = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let cases = [
            ("valid", good.to_string(), true),
            ("upper-case hex", good.to_uppercase().replace("SHA256", "sha256"), false),
            ("other algorithm", good.replace("sha256", "sha512"), false),
            ("short", good[..70].to_string(), false),
            (
                "path characters",
                format!("sha256:../{}", &good[10..])[..71].to_string(),
                false,
            ),
            ("no algorithm", good[7..].to_string(), false),
        ];
        for (desc, input, ok) in cases {
            assert_eq!(input.parse::<Digest>().is_ok(), ok, "{desc}: {input}");
        }
    }

    #[test]
    fn hashing_reader_matches_digest_of() {
        let data = vec![7u8; 100_000];
        let mut reader = HashingReader::new(&data[..]);
        io::copy(&mut reader, &mut io::sink()).expect("copy");
        assert_eq!(reader.finish(), (Digest::of(&data), 100_000));
    }
}
