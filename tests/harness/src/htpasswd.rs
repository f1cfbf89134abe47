//! Apache `htpasswd` files with bcrypt hashes, the only kind docker-registry's `htpasswd`
//! authentication accepts (distribution's `registry/auth/htpasswd`: one `user:hash` per
//! line, hashes checked with Go's `bcrypt.CompareHashAndPassword`).

use std::fs;
use std::path::Path;

use anyhow::{Context, bail};

/// The bcrypt cost of harness passwords: the minimum. The registry checks the hash on every
/// request it authenticates, and these passwords guard throw-away test registries; at
/// cost 4 a check takes about a millisecond, at the usual 10-12 tens to hundreds.
pub const BCRYPT_COST: u32 = 4;

/// One `user:$2b$04$...` line (without a newline) for `user` and `password`.
///
/// Fails on a user name that the file format cannot hold (empty, or with `:` or a line
/// break).
pub fn htpasswd_line(user: &str, password: &str) -> anyhow::Result<String> {
    if user.is_empty() || user.contains([':', '\n', '\r']) {
        bail!("htpasswd user name {user:?} must be non-empty, without ':' or line breaks");
    }
    let hash = bcrypt::hash(password, BCRYPT_COST).context("hashing the password")?;
    Ok(format!("{user}:{hash}"))
}

/// Writes an htpasswd file at `path` granting `user` access with `password`.
pub fn write_htpasswd(path: &Path, user: &str, password: &str) -> anyhow::Result<()> {
    let line = htpasswd_line(user, password)?;
    fs::write(path, format!("{line}\n")).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_hold_a_bcrypt_hash_of_the_password() {
        let line = htpasswd_line("tester", "s3cret").unwrap();
        let (user, hash) = line.split_once(':').unwrap();
        assert_eq!(user, "tester");
        assert!(hash.starts_with("$2b$04$"), "{hash}");
        assert!(bcrypt::verify("s3cret", hash).unwrap());
        assert!(!bcrypt::verify("wrong", hash).unwrap());
    }

    #[test]
    fn user_names_the_format_cannot_hold_are_refused() {
        for user in ["", "a:b", "a\nb"] {
            assert!(htpasswd_line(user, "x").is_err(), "{user:?}");
        }
    }
}
